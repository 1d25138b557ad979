//! Blind transfer to an outside number through `[features] transfer_trunk`
//! against a scripted gateway: the caller stays with the transferor while
//! the number rings, is relayed to it once it answers (the transferor gets
//! `200 OK` and its BYE), stays on a failure (the NOTIFY carries it), and
//! a BYE on either side ends the other.

use std::sync::Arc;

use super::super::transfer_trunk::NOT_ALLOWED;
use super::super::MediaCommand;
use super::mid_call::{answered_by, from_agent, responses_to, Bridged};
use super::*;
use crate::config::OutsideTransfer;
use crate::events::EventKind;

const NUMBER: &str = "0049301234567";

fn gw() -> Peer {
    agent(5090)
}

/// Outside transfers go through trunk `gw`, to numbers starting with 00;
/// queue `support` has music.
fn with_transfer_trunk(h: &mut Harness) {
    let mut cfg = (*h.ep.config()).clone();
    if let Some(q) = cfg.queues.get_mut("support") {
        q.music = Some("moh.wav".into());
    }
    cfg.features.transfer = Some(OutsideTransfer {
        trunk: "gw".into(),
        prefixes: vec!["00".into()],
        ring_s: 20,
    });
    h.ep.apply_config(Arc::new(cfg), h.now);
}

/// A caller of 1500 (Call-ID `call_id`) bridged to agent 2001.
fn bridged(h: &mut Harness, call_id: &str) -> Bridged {
    let (caller_tag, out) = queued_caller(h, call_id);
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

/// The agent REFERs its caller to `number`: what went out.
fn refer(h: &mut Harness, b: &Bridged, number: &str) -> Vec<(Peer, rsip::SipMessage)> {
    let refer_to = format!("Refer-To: <sip:{number}@127.0.0.1>\n");
    h.send_from(agent(5080), &from_agent(b, "REFER", 1, &refer_to, ""))
}

const GW_SDP: &str = "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";

fn sipfrag(req: &rsip::Request) -> String {
    String::from_utf8_lossy(&req.body).into_owned()
}

#[test]
fn an_answered_outside_number_is_relayed_to_the_caller_and_its_bye_ends_the_call() {
    let mut h = Harness::new();
    with_transfer_trunk(&mut h);
    let b = bridged(&mut h, "tt1");
    media_cmds(&mut h);
    h.records();
    let out = refer(&mut h, &b, NUMBER);
    let codes: Vec<u16> = responses_to(&out, agent(5080))
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert_eq!(codes, [202]);
    let notify = requests_to(&out, agent(5080));
    assert_eq!(notify.len(), 1, "only 100 Trying while it rings: {out:?}");
    assert_eq!(sipfrag(&notify[0]), "SIP/2.0 100 Trying\r\n");
    let invite = requests_to(&out, gw());
    assert_eq!(invite.len(), 1, "{out:?}");
    assert_eq!(
        invite[0].uri.to_string(),
        format!("sip:{NUMBER}@127.0.0.1:5090")
    );
    // The caller is still bridged to the transferor while it rings.
    assert!(media_cmds(&mut h).is_empty());

    let out = h.send_from(gw(), &answer(&invite[0], 200, "gw1", GW_SDP));
    let to_agent = requests_to(&out, agent(5080));
    let methods: Vec<String> = to_agent.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(methods, ["NOTIFY", "BYE"], "{out:?}");
    assert_eq!(sipfrag(&to_agent[0]), "SIP/2.0 200 OK\r\n");
    let media = media_cmds(&mut h);
    let trunk_leg = h.ep.trunk_calls.values().next().and_then(|l| l.leg);
    assert!(trunk_leg.is_some());
    assert!(
        media.iter().any(|c| *c
            == MediaCommand::Bridge {
                a: b.caller_leg,
                b: trunk_leg.unwrap_or_default()
            }),
        "{media:?}"
    );
    assert!(
        media
            .iter()
            .any(|c| matches!(c, MediaCommand::Close { leg } if *leg == b.agent_leg)),
        "{media:?}"
    );
    h.send_from(agent(5080), &answer(&to_agent[1], 200, "agt", ""));

    // The far end hangs up: the caller gets sipacd's BYE.
    let bye = format!(
        "BYE sip:sipacd@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKgwbye\n\
         From: {};tag=gw1\nTo: {}\nCall-ID: {}\nCSeq: 1 BYE\nContent-Length: 0\n\n",
        crate::sip::headers::header_value(&invite[0], "To").unwrap_or_default(),
        crate::sip::headers::header_value(&invite[0], "From").unwrap_or_default(),
        crate::sip::headers::call_id(&invite[0]).unwrap_or_default(),
    );
    let out = h.send_from(gw(), &bye);
    assert_eq!(responses_to(&out, gw())[0].status_code.code(), 200);
    let to_caller = requests_to(&out, h.phone);
    assert_eq!(to_caller.len(), 1, "{out:?}");
    assert_eq!(to_caller[0].method, rsip::Method::Bye);
    h.send_from(h.phone, &answer(&to_caller[0], 200, "c1", ""));
    assert_eq!(h.ep.active_calls(), 0);

    h.seen.pump(&mut h.ep, h.now);
    let order: Vec<&str> = h
        .seen
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Transferred { to, .. } if to == "number:0049301234567" => {
                Some("transferred")
            }
            EventKind::TrunkBridged { trunk, to, .. } if trunk == "gw" && to == NUMBER => {
                Some("bridged")
            }
            EventKind::Ended(_) => Some("ended"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["transferred", "bridged", "ended"]);
    let recs = h.records();
    let last = recs.last().expect("final record");
    assert_eq!(last.hangup_by, Some(crate::cdr::HangupBy::Agent));
    let legs: Vec<(&str, Option<&str>, Option<&str>)> = last
        .legs
        .iter()
        .map(|l| (l.agent.as_str(), l.trunk.as_deref(), l.number.as_deref()))
        .collect();
    assert_eq!(legs, [("2001", None, None), ("", Some("gw"), Some(NUMBER))]);
    assert!(last.legs.iter().all(|l| l.ended_ms.is_some()));
    let qlog: Vec<(&'static str, Vec<String>)> = h
        .queue_log()
        .into_iter()
        .map(|l| (l.event, l.data))
        .collect();
    assert!(
        qlog.iter()
            .any(|(e, d)| *e == "BLINDTRANSFER" && d.first().map(String::as_str) == Some(NUMBER)),
        "{qlog:?}"
    );
    assert!(h.live().iter().any(|e| matches!(
        &e.kind,
        crate::admin::live::EventKind::CallTrunkBridged { trunk, to, .. }
            if trunk == "gw" && to == NUMBER
    )));
}

#[test]
fn a_busy_number_is_reported_and_the_caller_stays_with_the_transferor() {
    let mut h = Harness::new();
    with_transfer_trunk(&mut h);
    let b = bridged(&mut h, "tt2");
    let out = refer(&mut h, &b, NUMBER);
    let invite = requests_to(&out, gw()).remove(0);
    media_cmds(&mut h);
    let out = h.send_from(gw(), &answer(&invite, 486, "gw2", ""));
    let to_agent = requests_to(&out, agent(5080));
    assert_eq!(to_agent.len(), 1, "a NOTIFY, no BYE: {out:?}");
    assert_eq!(sipfrag(&to_agent[0]), "SIP/2.0 486 Busy Here\r\n");
    assert!(
        crate::sip::headers::header_value(&to_agent[0], "Subscription-State")
            .unwrap_or_default()
            .starts_with("terminated")
    );
    assert!(media_cmds(&mut h).is_empty(), "the bridge is untouched");
    assert_eq!(h.ep.active_calls(), 1);
    assert_eq!(h.ep.trunk_calls_in_progress(), 0);
}

#[test]
fn the_caller_hanging_up_while_the_number_rings_cancels_it() {
    let mut h = Harness::new();
    with_transfer_trunk(&mut h);
    let b = bridged(&mut h, "tt3");
    let out = refer(&mut h, &b, NUMBER);
    let invite = requests_to(&out, gw()).remove(0);
    let bye = in_dialog("BYE", "1500", "tt3", &b.caller_tag, 3, "z9hG4bKtt3bye");
    let out = h.send_from(h.phone, &bye);
    let to_gw = requests_to(&out, gw());
    assert_eq!(to_gw.len(), 1, "{out:?}");
    assert_eq!(to_gw[0].method, rsip::Method::Cancel);
    // The 487 that follows tells nobody anything.
    let out = h.send_from(gw(), &answer(&invite, 487, "gw3", ""));
    assert!(requests_to(&out, agent(5080)).is_empty(), "{out:?}");
    assert_eq!(h.ep.trunk_calls_in_progress(), 0);
}

#[test]
fn numbers_outside_the_prefixes_and_a_second_refer_while_one_rings_are_refused() {
    let mut h = Harness::new();
    with_transfer_trunk(&mut h);
    let b = bridged(&mut h, "tt4");
    let wire =
        from_agent(&b, "REFER", 1, "Refer-To: <sip:900123@127.0.0.1>\n", "").replace('\n', "\r\n");
    h.ep.handle_inbound(wire.as_bytes(), agent(5080), h.now);
    let sent: Vec<String> = std::iter::from_fn(|| h.ep.poll_transmit())
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .filter(|m| !m.starts_with("OPTIONS"))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].starts_with(&format!("SIP/2.0 403 {NOT_ALLOWED}\r\n")),
        "{}",
        sent[0]
    );
    let out = h.send_from(
        agent(5080),
        &from_agent(
            &b,
            "REFER",
            2,
            &format!("Refer-To: <sip:{NUMBER}@127.0.0.1>\n"),
            "",
        ),
    );
    assert_eq!(requests_to(&out, gw()).len(), 1);
    let out = h.send_from(
        agent(5080),
        &from_agent(
            &b,
            "REFER",
            3,
            &format!("Refer-To: <sip:{NUMBER}@127.0.0.1>\n"),
            "",
        ),
    );
    assert_eq!(responses_to(&out, agent(5080))[0].status_code.code(), 491);
    assert!(requests_to(&out, gw()).is_empty());
}

#[test]
fn a_transferor_that_hangs_up_while_the_number_rings_leaves_the_transfer_going() {
    let mut h = Harness::new();
    with_transfer_trunk(&mut h);
    let b = bridged(&mut h, "tt5");
    h.records();
    let out = refer(&mut h, &b, NUMBER);
    let invite = requests_to(&out, gw()).remove(0);
    let out = h.send_from(agent(5080), &from_agent(&b, "BYE", 2, "", ""));
    assert_eq!(responses_to(&out, agent(5080))[0].status_code.code(), 200);
    assert!(
        requests_to(&out, h.phone).is_empty(),
        "the caller stays: {out:?}"
    );
    assert!(requests_to(&out, gw()).is_empty(), "the number still rings");
    assert!(
        media_cmds(&mut h).iter().any(
            |c| matches!(c, MediaCommand::Play { leg, looped: true, .. } if *leg == b.caller_leg)
        ),
        "the caller hears the queue's music"
    );
    let out = h.send_from(gw(), &answer(&invite, 200, "gw5", GW_SDP));
    assert!(requests_to(&out, agent(5080)).is_empty(), "{out:?}");
    assert!(media_cmds(&mut h)
        .iter()
        .any(|c| matches!(c, MediaCommand::Bridge { a, .. } if *a == b.caller_leg)));
    let bye = in_dialog("BYE", "1500", "tt5", &b.caller_tag, 3, "z9hG4bKtt5bye");
    let out = h.send_from(h.phone, &bye);
    assert_eq!(requests_to(&out, gw())[0].method, rsip::Method::Bye);
    let recs = h.records();
    let last = recs.last().expect("final record");
    assert_eq!(last.hangup_by, Some(crate::cdr::HangupBy::Caller));
    let legs: Vec<(&str, Option<&str>, Option<&str>)> = last
        .legs
        .iter()
        .map(|l| {
            (
                l.agent.as_str(),
                l.transferred_to.as_deref(),
                l.number.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            ("2001", Some("number:0049301234567"), None),
            ("", None, Some(NUMBER))
        ]
    );
}

#[test]
fn a_failure_after_the_transferor_left_hangs_the_caller_up() {
    let mut h = Harness::new();
    with_transfer_trunk(&mut h);
    let b = bridged(&mut h, "tt6");
    let out = refer(&mut h, &b, NUMBER);
    let invite = requests_to(&out, gw()).remove(0);
    h.send_from(agent(5080), &from_agent(&b, "BYE", 2, "", ""));
    let out = h.send_from(gw(), &answer(&invite, 503, "gw6", ""));
    let to_caller = requests_to(&out, h.phone);
    assert_eq!(to_caller.len(), 1, "{out:?}");
    assert_eq!(to_caller[0].method, rsip::Method::Bye);
}
