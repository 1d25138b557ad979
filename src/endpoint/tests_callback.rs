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

/// `CONFIG` with queue `cb` (number 1580) offering a callback after 1 s;
/// both agents have its skill.
fn with_cb_queue(t: &str) -> String {
    both_agents_take_cb(t).replace(
        "[queues.sales]\n",
        "[queues.cb]\nring_timeout_s = 10\n\n[queues.cb.callback]\ntrunk = \"gw\"\n\
         after_s = 1\nprompt = \"you-are-number.wav\"\nnumber_prompt = \"in-the-queue.wav\"\n\
         accepted_prompt = \"menu.wav\"\nagent_prompt = \"menu.wav\"\n\n\
         [[numbers]]\nnumber = \"1580\"\nto = \"queue:cb\"\n\n[queues.sales]\n",
    )
}

/// `CONFIG` without queue `cb`, its agents' skills as with it.
fn both_agents_take_cb(t: &str) -> String {
    t.replace(
        "skills = { support = 5 }",
        "skills = { support = 5, cb = 5 }",
    )
}

/// `support` offering a callback after 1 s.
fn with_support_callback(t: &str) -> String {
    t.replace(
        "[queues.support]\nring_timeout_s = 10\n",
        "[queues.support]\nring_timeout_s = 10\n\n[queues.support.callback]\n\
         trunk = \"gw\"\nafter_s = 1\nprompt = \"you-are-number.wav\"\n\
         number_prompt = \"in-the-queue.wav\"\naccepted_prompt = \"menu.wav\"\n\
         agent_prompt = \"menu.wav\"\n",
    )
}

/// The configuration `edit` makes of `CONFIG`, in the harness's
/// directories (what a reload reads).
fn config_of(h: &Harness, edit: impl Fn(&str) -> String) -> Arc<crate::config::Config> {
    let dir = h._dir.path();
    let text = edit(CONFIG)
        .replace("DATA", dir.join("data").to_str().unwrap())
        .replace("PROMPTS", dir.join("prompts").to_str().unwrap());
    Arc::new(crate::config::parse_str(&text, &dir.join("t.toml")).unwrap())
}

fn pause_both(h: &mut Harness) {
    for a in ["2001", "2002"] {
        h.ep.set_agent_state(a, AgentStateRequest::Paused { reason: None }, h.now)
            .unwrap();
    }
}

/// A caller of `number` answered and waiting (its call id `call_id`);
/// returns its To tag.
fn waiting_caller(h: &mut Harness, number: &str, call_id: &str) -> String {
    let out = h.send(&invite(number, call_id, &format!("z9hG4bK{call_id}")));
    let tag = to_tag(&out[0]);
    let ack = in_dialog(
        "ACK",
        number,
        call_id,
        &tag,
        1,
        &format!("z9hG4bKa{call_id}"),
    );
    h.ep.handle_inbound(ack.replace('\n', "\r\n").as_bytes(), h.phone, h.now);
    h.drain_all();
    tag
}

/// The callback offer plays to the one caller it is due for (1 s on):
/// 1, `number`, `#` accept; the goodbye ends and sipacd's BYE is
/// answered. The caller's call is over, its callback waits.
fn accept_offer(h: &mut Harness, number: &str) {
    accept_offer_after(h, number, Duration::from_secs(1));
}

/// [`accept_offer`], the offer due `after` from now.
fn accept_offer_after(h: &mut Harness, number: &str, after: Duration) {
    plays(h);
    h.advance_all(after);
    let played = plays(h);
    let offers: Vec<LegId> = played
        .iter()
        .filter(|(_, p)| p == &["you-are-number.wav"])
        .map(|(leg, _)| *leg)
        .collect();
    assert_eq!(offers.len(), 1, "one offer due: {played:?}");
    let leg = offers[0];
    for digit in format!("1{number}#").chars() {
        h.ep.handle_media_event(MediaEvent::Digit { leg, digit }, h.now);
    }
    assert!(
        plays(h)
            .iter()
            .any(|(l, p)| *l == leg && p == &["menu.wav"]),
        "the goodbye"
    );
    h.ep.handle_media_event(MediaEvent::PromptEnded { leg }, h.now);
    let bye = h
        .drain()
        .iter()
        .find_map(|m| match m {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Bye => Some(r.to_string()),
            _ => None,
        })
        .expect("sipacd's BYE after the goodbye");
    h.send(&ok_for_request(&bye));
}

fn header_of(r: &rsip::Request, name: &str) -> Option<String> {
    r.headers.iter().find_map(|h| {
        let s = h.to_string();
        let (n, v) = s.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn from_user(r: &rsip::Request) -> String {
    header_of(r, "From").unwrap_or_default()
}

#[test]
fn a_callback_whose_queue_a_reload_removes_is_held_then_waits_at_its_place_when_it_returns() {
    let mut h = Harness::with_config(with_cb_queue);
    pause_both(&mut h);
    waiting_caller(&mut h, "1580", "a1");
    accept_offer(&mut h, "0301234");
    let cbs = h.ep.callback_views(h.now);
    assert_eq!(cbs.len(), 1, "{cbs:?}");
    let (key, accepted) = (cbs[0].id.clone(), cbs[0].accepted_ms);
    assert_eq!(
        (cbs[0].state.as_str(), cbs[0].position),
        ("waiting", Some(1))
    );
    h.live();

    // The reload removes `cb`: the callback is neither cancelled nor
    // offered anywhere; it is held, listed and kept in the book the file
    // is written from.
    let without = config_of(&h, both_agents_take_cb);
    h.ep.apply_config(without, h.now);
    let cbs = h.ep.callback_views(h.now);
    assert_eq!(cbs.len(), 1, "{cbs:?}");
    assert_eq!(
        (cbs[0].id.as_str(), cbs[0].state.as_str(), cbs[0].position),
        (key.as_str(), "held", None)
    );
    assert_eq!(cbs[0].accepted_ms, accepted);
    {
        let book = super::super::shard::lock(&h.ep.shared.callbacks);
        assert_eq!(book.len(), 1, "still saved");
    }
    assert!(
        !h.live().iter().any(|e| matches!(
            e.kind,
            crate::admin::live::EventKind::CallbackCancelled { .. }
        )),
        "not cancelled"
    );
    // Never called while held, though an agent is free.
    h.ep.set_agent_state("2001", AgentStateRequest::Available, h.now)
        .unwrap();
    // (Under the 30 s between OPTIONS to static agents, which nobody
    // answers here.)
    for _ in 0..5 {
        let out = h.advance_all(Duration::from_secs(4));
        assert!(
            requests_to(&out, agent(5080)).is_empty(),
            "a held callback is not offered: {out:?}"
        );
    }
    assert_eq!(h.ep.callback_views(h.now)[0].state, "held");
    pause_both(&mut h);
    h.drain_all();

    // The queue comes back: the callback waits again at its place (it
    // has waited since its caller arrived), ahead of a later caller.
    let with = config_of(&h, with_cb_queue);
    h.ep.apply_config(with, h.now);
    let cbs = h.ep.callback_views(h.now);
    assert_eq!(
        (cbs[0].id.as_str(), cbs[0].state.as_str(), cbs[0].position),
        (key.as_str(), "waiting", Some(1))
    );
    assert!(cbs[0].waited_s >= 20.0, "{cbs:?}");
    waiting_caller(&mut h, "1580", "later");
    h.ep.set_agent_state("2001", AgentStateRequest::Available, h.now)
        .unwrap();
    let out = h.drain_all();
    let invites = requests_to(&out, agent(5080));
    let first = invites.first().expect("the agent is offered a call");
    assert_eq!(
        header_of(first, "X-Sipacd-Callback").as_deref(),
        Some("0301234"),
        "the callback first: {first}"
    );
    // Cancelled over the API, it is gone for good.
    assert!(h.ep.cancel_callback(&key, h.now));
    assert!(h.ep.callback_views(h.now).is_empty());
}

#[test]
fn a_held_callback_cancelled_over_the_api_is_gone_from_the_book() {
    let mut h = Harness::with_config(with_cb_queue);
    pause_both(&mut h);
    waiting_caller(&mut h, "1580", "a1");
    accept_offer(&mut h, "0301234");
    let key = h.ep.callback_views(h.now)[0].id.clone();
    let without = config_of(&h, both_agents_take_cb);
    h.ep.apply_config(without, h.now);
    assert_eq!(h.ep.callback_views(h.now)[0].state, "held");
    assert!(h.ep.cancel_callback(&key, h.now));
    assert!(h.ep.callback_views(h.now).is_empty());
    assert_eq!(super::super::shard::lock(&h.ep.shared.callbacks).len(), 0);
    // The queue returning brings nothing back.
    let with = config_of(&h, with_cb_queue);
    h.ep.apply_config(with, h.now);
    assert!(h.ep.callback_views(h.now).is_empty());
}

#[test]
fn an_earlier_callers_callback_is_served_before_a_later_live_caller() {
    let mut h = Harness::with_config(with_support_callback);
    pause_both(&mut h);
    // A arrives first; a second later B (its offer not yet due).
    waiting_caller(&mut h, "1500", "A");
    plays(&mut h);
    h.advance_all(Duration::from_millis(500));
    waiting_caller(&mut h, "1500", "B");
    // A's offer is due at 1 s, B's at 1.5 s: A accepts; B goes on waiting.
    accept_offer_after(&mut h, "0301234", Duration::from_millis(500));
    let cbs = h.ep.callback_views(h.now);
    assert_eq!(cbs.len(), 1);
    assert_eq!(cbs[0].call, "A");
    assert_eq!(cbs[0].position, Some(1), "A's place: {cbs:?}");
    let calls = h.ep.call_views(h.now);
    let b = calls.iter().find(|c| c.id == "B").expect("B waits");
    assert_eq!(b.position, Some(2), "B behind A's callback: {calls:?}");

    // One agent free: the agent's first INVITE is the callback's, not B's.
    h.ep.set_agent_state("2001", AgentStateRequest::Available, h.now)
        .unwrap();
    let out = h.drain_all();
    let invites = requests_to(&out, agent(5080));
    assert_eq!(invites.len(), 1, "one offer: {out:?}");
    assert_eq!(
        header_of(&invites[0], "X-Sipacd-Callback").as_deref(),
        Some("0301234"),
        "A's callback is served first: {}",
        invites[0]
    );
    assert!(
        from_user(&invites[0]).contains("sip:0301234@"),
        "{}",
        invites[0]
    );
    let cbs = h.ep.callback_views(h.now);
    assert_eq!(cbs[0].state, "calling");
    let calls = h.ep.call_views(h.now);
    let b = calls.iter().find(|c| c.id == "B").expect("B still waits");
    assert_eq!(b.position, Some(1), "B is next: {calls:?}");
}

#[test]
fn a_saved_callback_whose_queue_is_gone_at_start_is_held_until_a_reload_brings_it_back() {
    use crate::registrar::FileState;
    let mut h = Harness::with_config(with_cb_queue);
    pause_both(&mut h);
    waiting_caller(&mut h, "1580", "a1");
    accept_offer(&mut h, "0301234");
    let key = h.ep.callback_views(h.now)[0].id.clone();
    // What the writer saves; then a start on a file without `cb`.
    let path = h.ep.callbacks_path();
    let snapshot = super::super::shard::lock(&h.ep.shared.callbacks)
        .take_snapshot()
        .expect("a change to save");
    snapshot.save(&path).unwrap();
    h.advance_all(Duration::from_secs(30));
    h.ep = Endpoint::new(config_of(&h, both_agents_take_cb), h.now);
    pause_both(&mut h);
    assert_eq!(h.ep.restore_callbacks(h.now).unwrap(), 1);
    let cbs = h.ep.callback_views(h.now);
    assert_eq!(
        (cbs[0].id.as_str(), cbs[0].state.as_str()),
        (key.as_str(), "held")
    );
    assert_eq!(super::super::shard::lock(&h.ep.shared.callbacks).len(), 1);
    // The reload that brings `cb` back puts it at its place.
    h.ep.apply_config(config_of(&h, with_cb_queue), h.now);
    let cbs = h.ep.callback_views(h.now);
    assert_eq!(
        (cbs[0].state.as_str(), cbs[0].position),
        ("waiting", Some(1))
    );
    assert!(cbs[0].waited_s >= 30.0, "{cbs:?}");
}
