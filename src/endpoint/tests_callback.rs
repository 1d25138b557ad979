//! The callback offer as the engine runs it, without sockets: offered when
//! the estimated wait is above `above_wait_s`; `#` alone asks again when
//! the number called from cannot be called; a keyed number and `#`
//! accept; the caller is hung up on after the goodbye, its place kept as
//! a callback counted in the queue's waiting figures.

use super::*;
use crate::views::AgentStateRequest;

fn support(h: &mut Harness) -> crate::views::QueueView {
    h.queue_views()
        .into_iter()
        .find(|q| q.name == "support")
        .unwrap()
}

fn offered(out: &[(Peer, rsip::SipMessage)]) -> (u16, rsip::Request) {
    for port in [5080, 5081] {
        if let Some(r) = requests_to(out, agent(port)).into_iter().next() {
            return (port, r);
        }
    }
    panic!("no agent offered: {out:?}");
}

/// Prompts of the non-looped plays since the last look, by file name.
fn plays(h: &mut Harness) -> Vec<(LegId, Vec<String>)> {
    std::iter::from_fn(|| h.ep.poll_media())
        .filter_map(|c| match c {
            MediaCommand::Play {
                leg,
                prompts,
                looped: false,
            } => Some((
                leg,
                prompts
                    .iter()
                    .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                    .collect(),
            )),
            _ => None,
        })
        .collect()
}

use super::super::{LegId, MediaCommand, MediaEvent};

#[test]
fn a_long_estimated_wait_brings_the_offer_and_a_keyed_number_keeps_the_place() {
    let mut h = Harness::with_config(|t| {
        t.replace(
            "[queues.support]\nring_timeout_s = 10\n",
            "[queues.support]\nring_timeout_s = 10\n\n[queues.support.callback]\n\
             trunk = \"gw\"\nabove_wait_s = 30\nprompt = \"you-are-number.wav\"\n\
             number_prompt = \"in-the-queue.wav\"\naccepted_prompt = \"menu.wav\"\n\
             agent_prompt = \"menu.wav\"\n",
        )
    });
    // A first call teaches a 60 s handle time; nobody waits long yet.
    let (tag, out) = queued_caller(&mut h, "c1");
    let (port, inv) = offered(&out);
    h.send_from(agent(port), &answer(&inv, 200, "agc1", AGENT_SDP));
    h.advance_all(Duration::from_secs(60));
    h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "c1", &tag, 2, "z9hG4bKbc1"),
    );
    // One agent paused, the other on a call: the next caller would wait
    // 60 s, above the 30 s that bring the offer.
    let paused = if port == 5080 { "2002" } else { "2001" };
    h.ep.set_agent_state(paused, AgentStateRequest::Paused { reason: None }, h.now)
        .unwrap();
    let (_, out) = queued_caller(&mut h, "c2");
    let (p2, inv2) = offered(&out);
    h.send_from(agent(p2), &answer(&inv2, 200, "agc2", AGENT_SDP));
    plays(&mut h);
    let _ = queued_caller(&mut h, "c3");
    assert_eq!(
        support(&mut h).estimated_wait_s,
        Some(120.0),
        "c3 waits, the next 2 handle times"
    );
    h.advance_all(Duration::from_secs(1));
    let played = plays(&mut h);
    let offer = played
        .iter()
        .find(|(_, p)| p == &["you-are-number.wav"])
        .unwrap_or_else(|| panic!("the offer plays: {played:?}"));
    let leg = offer.0;
    assert!(
        h.live()
            .iter()
            .any(|e| matches!(&e.kind, crate::admin::live::EventKind::CallbackOffered { call, .. } if call == "c3")),
        "a callback_offered event"
    );

    // 1, then # alone: the caller's own number (`caller`) cannot be
    // called, so the number is asked again; then 0301234 #.
    let press = |h: &mut Harness, keys: &str| {
        for digit in keys.chars() {
            h.ep.handle_media_event(MediaEvent::Digit { leg, digit }, h.now);
        }
    };
    press(&mut h, "1");
    assert!(plays(&mut h)
        .iter()
        .any(|(_, p)| p == &["in-the-queue.wav"]));
    press(&mut h, "#");
    assert!(
        plays(&mut h)
            .iter()
            .any(|(_, p)| p == &["in-the-queue.wav"]),
        "asked again"
    );
    assert_eq!(support(&mut h).callbacks_waiting, 0);
    press(&mut h, "0301234#");
    assert!(
        plays(&mut h).iter().any(|(_, p)| p == &["menu.wav"]),
        "the goodbye"
    );
    let q = support(&mut h);
    assert_eq!((q.waiting, q.callbacks_waiting), (1, 1), "{q:?}");
    let cbs = h.ep.callback_views(h.now);
    assert_eq!(cbs.len(), 1);
    assert_eq!(
        (cbs[0].number.as_str(), cbs[0].state.as_str()),
        ("0301234", "waiting")
    );
    assert_eq!(cbs[0].position, Some(1));
    // The goodbye ends: sipacd hangs up on the caller.
    h.ep.handle_media_event(MediaEvent::PromptEnded { leg }, h.now);
    let out = h.drain();
    let bye = out
        .iter()
        .find_map(|m| match m {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Bye => Some(r.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("sipacd's BYE: {out:?}"));
    // The caller answers it: the call ends.
    let ok = ok_for_request(&bye);
    h.send(&ok);
    let recs = h.records();
    let c3 = recs
        .iter()
        .rev()
        .find(|r| r.id == "c3")
        .expect("c3's record");
    assert_eq!(c3.disposition, crate::cdr::Disposition::Callback, "{c3:?}");
    let cb = c3.callback.as_ref().expect("callback field");
    assert_eq!(cb.number.as_deref(), Some("0301234"));
    assert!(cb.offered_ms.is_some() && cb.accepted_ms.is_some());
    // The callback still waits after its caller's call is gone.
    assert_eq!(support(&mut h).callbacks_waiting, 1);
    assert!(super::super::shard::lock(&h.ep.shared.callbacks).len() == 1);
}

/// A callback of `support` whose next try is at `at`, as a failed try
/// leaves it.
fn retrying(n: u64, at: Instant) -> crate::call::callback::Callback {
    crate::call::callback::Callback {
        stored: crate::call::callback::StoredCallback {
            id: format!("cb-{n}"),
            queue: "support".into(),
            number: format!("030{n}"),
            caller: format!("030{n}"),
            origin: format!("c{n}"),
            waiting_since_ms: 0,
            accepted_ms: 0,
            priority: 0,
            attempts: 1,
            trunk: "gw".into(),
        },
        arrival: at,
        state: crate::call::callback::CallbackState::RetryAt(at),
    }
}

fn retry_states(h: &Harness) -> usize {
    h.ep.callback_views(h.now)
        .iter()
        .filter(|c| c.state == "retry")
        .count()
}

#[test]
fn turns_before_a_retry_is_due_visit_no_callback() {
    let mut h = Harness::new();
    let t0 = h.now.mono;
    // Nobody is logged in to take them: they go back to waiting only.
    for a in ["2001", "2002"] {
        h.ep.set_agent_state(a, AgentStateRequest::Paused { reason: None }, h.now)
            .unwrap();
    }
    for n in 0..30 {
        let at = t0 + Duration::from_secs(if n < 3 { 5 } else { 60 });
        h.ep.callbacks
            .insert(crate::acd::CallId(1_000_000 + n), retrying(n, at));
    }
    assert_eq!(
        h.ep.poll_timeout()
            .map(|t| t <= t0 + Duration::from_secs(5)),
        Some(true)
    );
    for _ in 0..4 {
        h.advance_all(Duration::from_secs(1));
    }
    assert_eq!(h.ep.callbacks.visited(), 0, "nothing due: none looked at");
    assert_eq!(retry_states(&h), 30);
    // At 5 s the three that are due go back in the queue; only they.
    h.advance_all(Duration::from_secs(1));
    assert_eq!(h.ep.callbacks.visited(), 3);
    assert_eq!(retry_states(&h), 27);
    // Put in place by hand, without their events: the engine's own count.
    let engine = h.ep.queue_views(h.now);
    let q = engine.iter().find(|q| q.name == "support").unwrap();
    assert_eq!(q.callbacks_waiting, 30, "waiting and retrying");
    assert_eq!(
        h.ep.callbacks.next_deadline(),
        Some(t0 + Duration::from_secs(60))
    );
    // A cancelled one takes its retry with it.
    assert!(h.ep.cancel_callback("cb-29", h.now));
    for _ in 0..10 {
        h.advance_all(Duration::from_secs(1));
    }
    assert_eq!(h.ep.callbacks.visited(), 3);
    h.advance_all(Duration::from_secs(60));
    assert_eq!(h.ep.callbacks.visited(), 3 + 26);
    assert_eq!(retry_states(&h), 0);
}

#[test]
fn while_draining_no_retry_is_waited_for() {
    let mut h = Harness::new();
    let at = h.now.mono + Duration::from_secs(5);
    h.ep.callbacks
        .insert(crate::acd::CallId(1_000_000), retrying(0, at));
    assert_eq!(h.ep.callback_deadline(), Some(at));
    h.ep.start_drain();
    assert_eq!(h.ep.callback_deadline(), None);
    h.advance_all(Duration::from_secs(10));
    assert_eq!(h.ep.callbacks.visited(), 0);
    assert_eq!(retry_states(&h), 1, "it waits for the restart");
}
