//! Blind transfer by the agent's REFER: where it may go (a queue or IVR
//! number; not an agent id, not an outside number), the 202 and NOTIFYs the
//! transferor gets, the BYE of its leg, the caller's next queue with its
//! IVR variables and the queue's `transfer_priority`, and what the event
//! stream's consumers make of it.

use std::sync::Arc;

use super::super::transfer::{refer_target, ReferTarget, NO_TRUNK};
use super::super::{MediaCommand, MediaEvent};
use super::mid_call::{answered_by, from_agent, responses_to, Bridged};
use super::*;
use crate::config::Target;
use crate::events::EventKind;

/// Adds queue `billing` (only agent 2002 has its skill; transferred
/// callers get priority 7) behind number 1700, and a wrap-up to `support`.
fn with_billing(h: &mut Harness) {
    let mut cfg = (*h.ep.config()).clone();
    let mut billing = cfg.queues["support"].clone();
    billing.name = "billing".into();
    billing.skills = [("billing".to_owned(), 1)].into();
    billing.transfer_priority = 7;
    cfg.queues.insert("billing".into(), billing);
    if let Some(q) = cfg.queues.get_mut("support") {
        q.wrapup_s = 30;
    }
    if let Some(a) = cfg.agents.get_mut("2002") {
        a.skills.insert("billing".into(), 1);
    }
    let mut number = cfg.numbers[0].clone();
    number.number = "1700".into();
    number.to = Target::Queue("billing".into());
    number.ring_s = 0;
    cfg.numbers.push(number);
    h.ep.apply_config(Arc::new(cfg), h.now);
}

/// A caller through IVR `main` (account 4242) into `support`, answered
/// by agent 2001.
fn bridged_from_ivr(h: &mut Harness, call_id: &str) -> Bridged {
    let out = h.send(&invite("1550", call_id, &format!("z9hG4bK{call_id}")));
    let tag = to_tag(&out[0]);
    h.send_from(
        h.phone,
        &in_dialog(
            "ACK",
            "1550",
            call_id,
            &tag,
            1,
            &format!("z9hG4bKa{call_id}"),
        ),
    );
    let leg = media_cmds(h)
        .iter()
        .find_map(|c| match c {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("caller leg opened");
    h.ep.handle_media_event(MediaEvent::PromptEnded { leg }, h.now);
    for d in ['1', '4', '2', '4', '2'] {
        h.ep.handle_media_event(MediaEvent::Digit { leg, digit: d }, h.now);
    }
    let out = h.drain_all();
    let inv = requests_to(&out, agent(5080)).remove(0);
    answered_by(h, agent(5080), &inv, tag, leg)
}

fn refer(b: &Bridged, to: &str) -> String {
    from_agent(b, "REFER", 1, &format!("Refer-To: <{to}>\n"), "")
}

fn header(req: &rsip::Request, name: &str) -> String {
    crate::sip::headers::header_value(req, name).unwrap_or_default()
}

#[test]
fn refer_to_a_queue_number_moves_the_caller_and_tells_the_transferor() {
    let mut h = Harness::new();
    with_billing(&mut h);
    let b = bridged_from_ivr(&mut h, "bt1");
    h.records();
    let out = h.send_from(agent(5080), &refer(&b, "sip:1700@127.0.0.1"));

    let codes: Vec<u16> = responses_to(&out, agent(5080))
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert_eq!(codes, vec![202]);
    // To the transferor: NOTIFY 100 Trying, NOTIFY 200 OK (the end of the
    // subscription), then the BYE of its leg; CSeq goes up one by one.
    let to_agent = requests_to(&out, agent(5080));
    let methods: Vec<String> = to_agent.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(methods, ["NOTIFY", "NOTIFY", "BYE"], "{out:?}");
    for n in &to_agent[..2] {
        assert_eq!(header(n, "Event"), "refer");
        assert_eq!(header(n, "Content-Type"), "message/sipfrag;version=2.0");
        assert!(!header(n, "Contact").is_empty(), "{n}");
    }
    assert_eq!(to_agent[0].body, b"SIP/2.0 100 Trying\r\n");
    assert!(header(&to_agent[0], "Subscription-State").starts_with("active"));
    assert_eq!(to_agent[1].body, b"SIP/2.0 200 OK\r\n");
    assert!(header(&to_agent[1], "Subscription-State").starts_with("terminated"));
    let cseqs: Vec<u32> = to_agent
        .iter()
        .map(|r| crate::sip::headers::cseq(r).expect("CSeq").0)
        .collect();
    assert_eq!(cseqs, [2, 3, 4], "our INVITE was 1");

    // The caller is offered to the billing agent with its IVR variables;
    // nothing was sent to the caller (it stays up, hearing the queue).
    let offer = requests_to(&out, agent(5081));
    assert_eq!(offer.len(), 1, "{out:?}");
    let text = offer[0].to_string();
    assert!(text.contains("X-Sipacd-Queue: billing"), "{text}");
    assert!(text.contains("X-Sipacd-Var-account: 4242"), "{text}");
    assert!(requests_to(&out, h.phone).is_empty(), "{out:?}");
    assert_eq!(h.ep.active_calls(), 1);
    let media = media_cmds(&mut h);
    assert!(
        media
            .iter()
            .any(|c| matches!(c, MediaCommand::Close { leg } if *leg == b.agent_leg)),
        "{media:?}"
    );

    // The agent's BYE answered: nothing more happens to the caller.
    let bye = to_agent[2].clone();
    let out = h.send_from(agent(5080), &answer(&bye, 200, "agt", ""));
    assert!(requests_to(&out, h.phone).is_empty(), "{out:?}");

    // The second agent answers; then the caller hangs up.
    let second = answered_by(
        &mut h,
        agent(5081),
        &offer[0],
        b.caller_tag.clone(),
        b.caller_leg,
    );
    let bye = in_dialog("BYE", "1550", "bt1", &second.caller_tag, 3, "z9hG4bKbye");
    h.send_from(h.phone, &bye);

    h.seen.pump(&mut h.ep, h.now);
    let events = &h.seen.events;
    let transferred = events.iter().find_map(|e| match &e.kind {
        EventKind::Transferred {
            queue, agent, to, ..
        } => Some((queue.clone(), agent.clone(), to.clone())),
        _ => None,
    });
    assert_eq!(
        transferred,
        Some((
            Some("support".into()),
            "2001".into(),
            "queue:billing".into()
        ))
    );
    let billing_priority = events.iter().find_map(|e| match &e.kind {
        EventKind::Queued {
            queue, priority, ..
        } if queue == "billing" => Some(*priority),
        _ => None,
    });
    assert_eq!(billing_priority, Some(7), "the queue's transfer_priority");
    let wrapup = events.iter().any(|e| {
        matches!(&e.kind, EventKind::AgentState { agent, state, .. }
            if agent == "2001" && *state == "wrapup")
    });
    assert!(wrapup, "the transferring agent goes to wrap-up");

    let recs = h.records();
    let last = recs.last().expect("final record");
    assert_eq!(last.disposition, crate::cdr::Disposition::Answered);
    assert_eq!(last.agent.as_deref(), Some("2002"));
    assert_eq!(last.queue.as_deref(), Some("billing"));
    assert_eq!(
        last.variables.get("account").map(String::as_str),
        Some("4242")
    );
    let legs: Vec<(&str, Option<&str>, Option<&str>)> = last
        .legs
        .iter()
        .map(|l| {
            (
                l.agent.as_str(),
                l.queue.as_deref(),
                l.transferred_to.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            ("2001", Some("support"), Some("queue:billing")),
            ("2002", Some("billing"), None)
        ]
    );
    assert!(last.legs.iter().all(|l| l.ended_ms.is_some()));
    assert!(last.ivr_path.contains(&"queue:billing".to_string()));

    let qlog: Vec<&'static str> = h.queue_log().iter().map(|l| l.event).collect();
    let at = |e: &str| qlog.iter().position(|x| *x == e);
    assert!(at("BLINDTRANSFER").is_some(), "{qlog:?}");
    assert!(at("BLINDTRANSFER") < qlog.iter().rposition(|x| *x == "ENTERQUEUE"));
    assert!(qlog.ends_with(&["CONNECT", "COMPLETECALLER"]), "{qlog:?}");
    let live = h.live();
    assert!(live.iter().any(|e| matches!(
        &e.kind,
        crate::admin::live::EventKind::CallTransferred { to, .. } if to == "queue:billing"
    )));
}

#[test]
fn refer_to_an_outside_number_is_403_and_the_call_goes_on() {
    let mut h = Harness::new();
    let b = bridged(&mut h);
    let cases = [
        ("sip:0049301234567@127.0.0.1", 403, NO_TRUNK),
        // A Replaces without both tags names no dialog.
        (
            "sip:1500@127.0.0.1?Replaces=abc%3Bto-tag%3Dx",
            400,
            "Bad Refer-To",
        ),
        ("tel:+15550100", 400, "Bad Refer-To"),
    ];
    for (cseq, (to, code, phrase)) in (1..).zip(cases) {
        let req = from_agent(&b, "REFER", cseq, &format!("Refer-To: <{to}>\n"), "");
        // The bytes as sent: a parsed status line forgets its reason phrase.
        let wire = req.replace('\n', "\r\n");
        h.ep.handle_inbound(wire.as_bytes(), agent(5080), h.now);
        let sent: Vec<(Peer, String)> = std::iter::from_fn(|| h.ep.poll_transmit())
            .map(|(p, b)| (p, String::from_utf8_lossy(&b).into_owned()))
            .filter(|(_, m)| !m.starts_with("OPTIONS"))
            .collect();
        assert_eq!(
            sent.len(),
            1,
            "{to}: only the answer, no NOTIFY or BYE: {sent:?}"
        );
        assert_eq!(sent[0].0, agent(5080));
        let status = format!("SIP/2.0 {code} {phrase}\r\n");
        assert!(sent[0].1.starts_with(&status), "{to}: {}", sent[0].1);
    }
    // No Refer-To at all.
    let out = h.send_from(agent(5080), &from_agent(&b, "REFER", 9, "", ""));
    assert_eq!(responses_to(&out, agent(5080))[0].status_code.code(), 400);
    assert_eq!(h.ep.active_calls(), 1);
    h.seen.pump(&mut h.ep, h.now);
    assert!(!h
        .seen
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Transferred { .. })));
}

/// A caller of 1500 bridged to agent 2001.
fn bridged(h: &mut Harness) -> Bridged {
    let (caller_tag, out) = queued_caller(h, "bt2");
    let caller_leg = media_cmds(h)
        .iter()
        .find_map(|c| match c {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("caller leg opened");
    let inv = requests_to(&out, agent(5080)).remove(0);
    answered_by(h, agent(5080), &inv, caller_tag, caller_leg)
}

#[test]
fn refer_to_an_ivr_number_walks_the_ivr_again() {
    let mut h = Harness::new();
    let b = bridged(&mut h);
    let out = h.send_from(agent(5080), &refer(&b, "sip:1550@127.0.0.1"));
    assert_eq!(responses_to(&out, agent(5080))[0].status_code.code(), 202);
    let media = media_cmds(&mut h);
    let menu = media.iter().any(|c| {
        matches!(c, MediaCommand::Play { leg, prompts, .. }
            if *leg == b.caller_leg && prompts[0].ends_with("menu.wav"))
    });
    assert!(menu, "the caller hears the IVR's menu: {media:?}");
    let notify = requests_to(&out, agent(5080));
    assert_eq!(notify[1].body, b"SIP/2.0 200 OK\r\n");
}

#[test]
fn refer_targets_are_read_from_the_numbers_and_agents() {
    let h = Harness::new();
    let cfg = h.ep.config();
    let numbers = super::super::number_index(&cfg);
    let t = |v: &str| refer_target(&cfg, &numbers, Some(v));
    assert_eq!(
        t("<sip:1500@127.0.0.1>"),
        ReferTarget::Known(Target::Queue("support".into()))
    );
    assert!(matches!(
        t("sip:1550@x"),
        ReferTarget::Known(Target::Ivr { .. })
    ));
    assert_eq!(
        t("<sip:2001@test.local>"),
        ReferTarget::Agent("2001".into())
    );
    assert_eq!(t("<sip:9999@test.local>"), ReferTarget::Outside);
    assert_eq!(
        t("<sip:1500@x?Replaces=a%3Bto-tag%3Db%3Bfrom-tag%3Dc>"),
        ReferTarget::Attended(crate::endpoint::Replaces {
            call_id: "a".into(),
            to_tag: "b".into(),
            from_tag: "c".into(),
        })
    );
    assert_eq!(
        t("<sip:1500@x?Replaces=a%3Bto-tag%3Db>"),
        ReferTarget::Unreadable
    );
    assert_eq!(t("<sip:test.local>"), ReferTarget::Unreadable);
    assert_eq!(refer_target(&cfg, &numbers, None), ReferTarget::Unreadable);
}
