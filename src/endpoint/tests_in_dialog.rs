//! In-dialog requests routed from their peeked ids (`in_dialog.rs`): an
//! ACK builds nothing, a BYE or a request for an unknown dialog only a
//! lean request, and every answer is byte for byte the one a whole parse
//! gives. Bytes the check refuses are never routed by their ids.

use super::super::{Builds, Need};
use super::*;
use crate::sip::headers;
use crate::sip::message::{parse, peek_request, serialize};

/// Everything the endpoint sent, as bytes.
fn sent(h: &mut Harness) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| h.ep.poll_transmit())
        .map(|(_, b)| b.to_vec())
        .collect()
}

/// Sends `text` (LF line ends made CRLF) from the caller's phone.
fn inbound(h: &mut Harness, text: &str) -> Vec<Vec<u8>> {
    let wire = text.replace('\n', "\r\n");
    h.ep.handle_inbound(wire.as_bytes(), h.phone, h.now);
    sent(h)
}

/// The answer `code` to `text` as built from its whole parse: what the
/// endpoint sent before requests were routed by their ids. `text` carries
/// a To tag, so the answer has no random part.
fn answer_from_whole(h: &Harness, text: &str, code: u16) -> Vec<u8> {
    let wire = text.replace('\n', "\r\n");
    let Ok(rsip::SipMessage::Request(mut req)) = parse(wire.as_bytes()) else {
        panic!("parses: {text}");
    };
    headers::stamp_via_received(&mut req, h.phone.addr);
    let reason = crate::sip::message::reason_phrase(code);
    let resp = headers::response_to(&req, code, reason, Some("unused"));
    serialize(&resp.into())
}

/// A caller of the hold queue (1560: answered at once, never offered);
/// returns our To tag, the ACK not sent yet.
fn answered(h: &mut Harness, call_id: &str) -> String {
    let out = h.send(&invite("1560", call_id, &format!("z9hG4bK{call_id}")));
    assert_eq!(codes(&out), vec![200]);
    to_tag(&out[0])
}

fn plus(b: Builds, ids_only: u64, lean: u64, full: u64) -> Builds {
    Builds {
        ids_only: b.ids_only + ids_only,
        lean: b.lean + lean,
        full: b.full + full,
    }
}

#[test]
fn ack_of_a_known_dialog_is_matched_without_building_it() {
    let mut h = Harness::new();
    let tag = answered(&mut h, "ida1");
    let before = h.ep.builds();
    let ack = in_dialog("ACK", "1560", "ida1", &tag, 1, "z9hG4bKida1a");
    assert!(inbound(&mut h, &ack).is_empty());
    assert_eq!(h.ep.builds(), plus(before, 1, 0, 0));
    // It confirmed the call: the 200 is retransmitted no more...
    let later = h.advance(Duration::from_millis(4000));
    assert!(codes(&later).is_empty(), "{later:?}");
    // ...and the caller waits in its queue (a wait the router counts).
    assert_eq!(h.ep.active_calls(), 1);
    assert_eq!(requests_in(&mut h, "ACK"), 1);
}

#[test]
fn an_unacked_call_keeps_its_200_going_whatever_the_ids_of_a_refused_ack() {
    let mut h = Harness::new();
    let tag = answered(&mut h, "ida2");
    let before = h.ep.builds();
    // Peekable (ids intact) but refused by the check: never routed.
    let ack = in_dialog("ACK", "1560", "ida2", &tag, 1, "z9hG4bKida2a")
        .replace("Max-Forwards: 70", "Max-Forwards: many");
    assert!(peek_request(ack.replace('\n', "\r\n").as_bytes()).is_some());
    let out = inbound(&mut h, &ack);
    assert_eq!(h.ep.builds(), before, "nothing routed");
    assert_eq!(h.metrics().sip_parse_errors.get(), 1);
    assert!(
        out.iter().all(|m| !m.starts_with(b"SIP/2.0 200")),
        "{out:?}"
    );
    let again = h.advance(Duration::from_millis(500));
    assert_eq!(codes(&again), vec![200], "the call is not confirmed");
}

#[test]
fn bye_of_a_call_is_answered_from_a_lean_request_as_from_a_whole_one() {
    let mut h = Harness::new();
    let tag = answered(&mut h, "idb1");
    inbound(
        &mut h,
        &in_dialog("ACK", "1560", "idb1", &tag, 1, "z9hG4bKidb1a"),
    );
    let before = h.ep.builds();
    let bye = in_dialog("BYE", "1560", "idb1", &tag, 2, "z9hG4bKidb1b").replace(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nUser-Agent: Phone/1\nReason: Q.850;cause=16\n",
    );
    let out = inbound(&mut h, &bye);
    assert_eq!(out, vec![answer_from_whole(&h, &bye, 200)]);
    assert_eq!(h.ep.builds(), plus(before, 0, 1, 0));
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn a_refused_bye_of_a_known_call_gets_400_and_the_call_goes_on() {
    let mut h = Harness::new();
    let tag = answered(&mut h, "idb2");
    inbound(
        &mut h,
        &in_dialog("ACK", "1560", "idb2", &tag, 1, "z9hG4bKidb2a"),
    );
    let before = h.ep.builds();
    let bye = in_dialog("BYE", "1560", "idb2", &tag, 2, "z9hG4bKidb2b")
        .replace("Max-Forwards: 70", "Max-Forwards: many");
    assert!(peek_request(bye.replace('\n', "\r\n").as_bytes()).is_some());
    let out = inbound(&mut h, &bye);
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with(b"SIP/2.0 400 Bad Request\r\n"),
        "{out:?}"
    );
    assert_eq!(h.ep.builds(), before);
    assert_eq!(h.ep.active_calls(), 1, "a refused BYE ends nothing");
}

#[test]
fn requests_of_unknown_dialogs_get_481_from_lean_requests() {
    let mut h = Harness::new();
    for (i, method) in ["BYE", "INFO", "UPDATE", "INVITE", "REFER"]
        .iter()
        .enumerate()
    {
        let before = h.ep.builds();
        let branch = format!("z9hG4bKidu{i}");
        let req = in_dialog(method, "1560", "nobody-knows", "gone", 5, &branch);
        let out = inbound(&mut h, &req);
        assert_eq!(out, vec![answer_from_whole(&h, &req, 481)], "{method}");
        assert_eq!(h.ep.builds(), plus(before, 0, 1, 0), "{method}");
    }
    // Screening reads a lean request as a whole one: 420 before 481.
    let req = in_dialog("BYE", "1560", "nobody-knows", "gone", 6, "z9hG4bKidu9").replace(
        "Max-Forwards: 70",
        "Max-Forwards: 70\nRequire: frobnication",
    );
    let out = inbound(&mut h, &req);
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with(b"SIP/2.0 420 Bad Extension\r\n"),
        "{out:?}"
    );
}

#[test]
fn requests_a_known_dialog_reads_whole_are_built_whole() {
    let mut h = Harness::new();
    let tag = answered(&mut h, "idk1");
    inbound(
        &mut h,
        &in_dialog("ACK", "1560", "idk1", &tag, 1, "z9hG4bKidk1a"),
    );
    let before = h.ep.builds();
    let info = in_dialog("INFO", "1560", "idk1", &tag, 2, "z9hG4bKidk1i");
    let out = inbound(&mut h, &info);
    assert_eq!(out, vec![answer_from_whole(&h, &info, 200)]);
    assert_eq!(h.ep.builds(), plus(before, 0, 0, 1));
    // A new call (no To tag) and a response are whole too.
    let before = h.ep.builds();
    h.send(&invite("1560", "idk2", "z9hG4bKidk2"));
    assert_eq!(h.ep.builds(), plus(before, 0, 0, 1));
}

#[test]
fn the_need_of_a_request_is_told_from_its_bytes() {
    let mut h = Harness::new();
    let tag = answered(&mut h, "idn1");
    let need = |h: &Harness, method: &str, tag: &str| {
        let text = in_dialog(method, "1560", "idn1", tag, 3, "z9hG4bKidn").replace('\n', "\r\n");
        let ids = peek_request(text.as_bytes()).expect("plain layout");
        h.ep.need_of(&ids)
    };
    assert_eq!(need(&h, "ACK", &tag), Need::Ids);
    assert_eq!(need(&h, "BYE", &tag), Need::Lean);
    for method in ["INFO", "UPDATE", "INVITE", "REFER"] {
        assert_eq!(
            need(&h, method, &tag),
            Need::Full,
            "{method} of a known call"
        );
        assert_eq!(need(&h, method, "other"), Need::Lean, "{method} of no call");
    }
    assert_eq!(need(&h, "OPTIONS", &tag), Need::Full);
    let new_call = invite("1560", "idn2", "z9hG4bKidn2").replace('\n', "\r\n");
    let ids = peek_request(new_call.as_bytes()).expect("plain layout");
    assert_eq!(h.ep.need_of(&ids), Need::Full);
}

#[test]
fn an_ack_with_a_tab_in_its_cseq_confirms_the_call_by_either_path() {
    let mut h = Harness::new();
    // By its ids, and whole (LWS before a Via parameter: peek declines).
    let layouts = [("idt1", ";branch="), ("idt2", " ;branch=")];
    for (call_id, via_params) in layouts {
        let tag = answered(&mut h, call_id);
        let ack = in_dialog("ACK", "1560", call_id, &tag, 1, "z9hG4bKidta")
            .replace("CSeq: 1 ACK", "CSeq: 1\tACK")
            .replace(";branch=", via_params);
        let peeked = peek_request(ack.replace('\n', "\r\n").as_bytes()).is_some();
        assert_eq!(peeked, via_params == ";branch=", "{ack}");
        assert!(inbound(&mut h, &ack).is_empty());
    }
    assert_eq!(h.ep.builds().ids_only, 1);
    // Neither 200 is retransmitted, and neither call is hung up when the
    // 200's 64*T1 would have run out.
    let later = h.advance(Duration::from_millis(4000));
    assert!(codes(&later).is_empty(), "{later:?}");
    let later = h.advance(Duration::from_secs(40));
    assert!(
        later
            .iter()
            .all(|m| !matches!(m, rsip::SipMessage::Request(r) if r.method == rsip::Method::Bye)),
        "{later:?}"
    );
    assert_eq!(h.ep.active_calls(), 2);
}
