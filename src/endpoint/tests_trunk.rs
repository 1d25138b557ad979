//! Outbound calls through a trunk against a scripted gateway: the 401
//! challenge answered once, ringing, answer, hang-up, failures and limits.

use std::time::Duration;

use super::Harness;
use crate::events::{EventKind, TrunkStep};
use crate::registrar::{parse_authorization, Algorithm};
use crate::sip::headers;
use crate::sip::Peer;

fn gw() -> Peer {
    Peer::udp("127.0.0.1:5090".parse().unwrap())
}

/// The gateway's answer to `req`: its Via, From, Call-ID and CSeq, our To
/// tag, `extra` headers and an optional SDP body.
fn answer(req: &rsip::Request, code: u16, extra: &str, sdp: bool) -> String {
    let h = |n: &str| headers::header_value(req, n).unwrap();
    let body = if sdp {
        "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n"
    } else {
        ""
    };
    let ctype = if sdp {
        "Content-Type: application/sdp\n"
    } else {
        ""
    };
    format!(
        "SIP/2.0 {code} X\nVia: {}\nFrom: {}\nTo: {};tag=gw1\nCall-ID: {}\nCSeq: {}\n\
         Contact: <sip:gw@127.0.0.1:5090>\n{extra}{ctype}Content-Length: {}\n\n{body}",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq"),
        body.len()
    )
}

fn requests(out: &[(Peer, rsip::SipMessage)], method: rsip::Method) -> Vec<rsip::Request> {
    out.iter()
        .filter_map(|(to, m)| match m {
            rsip::SipMessage::Request(r) if r.method == method => {
                assert_eq!(*to, gw(), "requests go to the gateway");
                Some(r.clone())
            }
            _ => None,
        })
        .collect()
}

fn trunk_steps(h: &mut Harness) -> Vec<TrunkStep> {
    h.seen.pump(&mut h.ep, h.now);
    h.seen
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Trunk { step, .. } => Some(step.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_challenged_call_is_authenticated_answered_and_hung_up_by_the_far_end() {
    let mut h = Harness::new();
    let call =
        h.ep.place_trunk_call("gw", "5551234", Duration::from_secs(30), h.now)
            .unwrap();
    let out = h.drain_all();
    let first = requests(&out, rsip::Method::Invite);
    assert_eq!(first.len(), 1);
    let first = &first[0];
    assert_eq!(first.uri.to_string(), "sip:5551234@127.0.0.1:5090");
    assert_eq!(headers::call_id(first).as_deref(), Some(&*call.call_id));
    assert!(headers::header_value(first, "From")
        .unwrap()
        .contains("sip:1500@"));
    assert_eq!(headers::cseq(first).map(|c| c.0), Some(1));
    assert!(headers::header_value(first, "Authorization").is_none());

    let challenge =
        "WWW-Authenticate: Digest realm=\"gw\", nonce=\"abc\", qop=\"auth\", algorithm=MD5\n";
    let out = h.send_from(gw(), &answer(first, 401, challenge, false));
    assert_eq!(
        requests(&out, rsip::Method::Ack).len(),
        1,
        "the 401 is ACKed"
    );
    let second = requests(&out, rsip::Method::Invite);
    assert_eq!(second.len(), 1, "the INVITE goes again with credentials");
    let second = &second[0];
    assert_eq!(headers::call_id(second), headers::call_id(first));
    assert_eq!(headers::cseq(second).map(|c| c.0), Some(2));
    assert_eq!(
        headers::header_value(second, "From"),
        headers::header_value(first, "From"),
        "same From tag"
    );
    assert_ne!(
        headers::header_value(second, "Via"),
        headers::header_value(first, "Via")
    );
    let creds =
        parse_authorization(&headers::header_value(second, "Authorization").unwrap()).unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.realm.as_str()),
        ("acme", "gw")
    );
    let ha1 = Algorithm::Md5.ha1("acme", "gw", "pw");
    let want = Algorithm::Md5.response(
        &ha1,
        "abc",
        creds.nc.as_deref().unwrap(),
        creds.cnonce.as_deref().unwrap(),
        "INVITE",
        &creds.uri,
    );
    assert_eq!(creds.response, want, "the gateway would accept this answer");

    h.send_from(gw(), &answer(second, 180, "", false));
    let out = h.send_from(gw(), &answer(second, 200, "", true));
    let ack = requests(&out, rsip::Method::Ack);
    assert_eq!(ack.len(), 1, "the 200 is ACKed");
    assert_eq!(headers::cseq(&ack[0]).map(|c| c.0), Some(2));
    assert!(h.ep.trunk_media_leg(call.id).is_some(), "media opened");
    // The 2xx again (our ACK lost): ACKed again.
    let out = h.send_from(gw(), &answer(second, 200, "", true));
    assert_eq!(
        requests(&out, rsip::Method::Ack).len(),
        1,
        "the repeated 200 is ACKed"
    );

    let bye = format!(
        "BYE sip:sipacd@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKgwbye\n\
         From: <sip:5551234@127.0.0.1:5090>;tag=gw1\nTo: {}\nCall-ID: {}\nCSeq: 1 BYE\nContent-Length: 0\n\n",
        headers::header_value(second, "From").unwrap(),
        call.call_id
    );
    let out = h.send_from(gw(), &bye);
    assert!(out
        .iter()
        .any(|(_, m)| matches!(m, rsip::SipMessage::Response(r) if r.status_code.code() == 200)));
    assert_eq!(h.ep.trunk_calls_in_progress(), 0);

    let steps = trunk_steps(&mut h);
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert_eq!(steps[0], TrunkStep::Placed);
    assert_eq!(steps[1], TrunkStep::Authenticated { code: 401 });
    assert_eq!(steps[2], TrunkStep::Ringing { code: 180 });
    assert_eq!(steps[3], TrunkStep::Answered);
    assert!(matches!(
        steps[4],
        TrunkStep::Ended {
            by_remote: true,
            ..
        }
    ));

    let live = h.live();
    let kinds: Vec<String> = live
        .iter()
        .map(|e| serde_json::to_value(e).unwrap()["step"].to_string())
        .collect();
    assert!(
        kinds.contains(&"\"authenticated\"".to_string()),
        "{kinds:?}"
    );
    let text = h.metrics().render(&[], &[], false);
    assert!(
        text.contains("sipacd_trunk_calls_total{trunk=\"gw\",result=\"answered\"} 1"),
        "{text}"
    );
}

#[test]
fn a_proxy_challenge_is_answered_with_proxy_authorization() {
    let mut h = Harness::new();
    let call =
        h.ep.place_trunk_call("gw", "5551234", Duration::from_secs(30), h.now)
            .unwrap();
    let out = h.drain_all();
    let first = requests(&out, rsip::Method::Invite);
    assert_eq!(first.len(), 1);
    let first = &first[0];
    let challenge =
        "Proxy-Authenticate: Digest realm=\"px\", nonce=\"n407\", qop=\"auth\", algorithm=MD5\n";
    let out = h.send_from(gw(), &answer(first, 407, challenge, false));
    assert_eq!(
        requests(&out, rsip::Method::Ack).len(),
        1,
        "the 407 is ACKed"
    );
    let second = requests(&out, rsip::Method::Invite);
    assert_eq!(second.len(), 1, "the INVITE goes again with credentials");
    let second = &second[0];
    assert_eq!(headers::cseq(second).map(|c| c.0), Some(2));
    assert!(
        headers::header_value(second, "Authorization").is_none(),
        "a proxy's challenge is not answered in Authorization"
    );
    let creds = parse_authorization(
        &headers::header_value(second, "Proxy-Authorization").expect("Proxy-Authorization"),
    )
    .unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.realm.as_str()),
        ("acme", "px")
    );
    let ha1 = Algorithm::Md5.ha1("acme", "px", "pw");
    let want = Algorithm::Md5.response(
        &ha1,
        "n407",
        creds.nc.as_deref().unwrap(),
        creds.cnonce.as_deref().unwrap(),
        "INVITE",
        &creds.uri,
    );
    assert_eq!(creds.response, want, "the proxy would accept this answer");
    h.send_from(gw(), &answer(second, 200, "", true));
    assert!(h.ep.trunk_media_leg(call.id).is_some(), "media opened");
    let steps = trunk_steps(&mut h);
    assert_eq!(
        steps[1],
        TrunkStep::Authenticated { code: 407 },
        "{steps:?}"
    );
    assert_eq!(steps.last(), Some(&TrunkStep::Answered), "{steps:?}");
}

#[test]
fn wrong_credentials_fail_with_the_second_challenge() {
    let mut h = Harness::new();
    h.ep.place_trunk_call("gw", "555", Duration::from_secs(30), h.now)
        .unwrap();
    let out = h.drain_all();
    let inv = requests(&out, rsip::Method::Invite).remove(0);
    let challenge = "WWW-Authenticate: Digest realm=\"gw\", nonce=\"n1\"\n";
    let out = h.send_from(gw(), &answer(&inv, 401, challenge, false));
    let inv2 = requests(&out, rsip::Method::Invite).remove(0);
    let out = h.send_from(gw(), &answer(&inv2, 401, challenge, false));
    assert!(
        requests(&out, rsip::Method::Invite).is_empty(),
        "no third try"
    );
    let steps = trunk_steps(&mut h);
    assert!(
        matches!(steps.last(), Some(TrunkStep::Failed { code: 401, .. })),
        "{steps:?}"
    );
    assert_eq!(h.ep.trunk_calls_in_progress(), 0);
}

#[test]
fn a_trunk_without_credentials_fails_on_a_challenge_and_busy_is_reported() {
    let mut h = Harness::new();
    let gw2 = Peer::udp("127.0.0.1:5091".parse().unwrap());
    h.ep.place_trunk_call("open", "555", Duration::from_secs(30), h.now)
        .unwrap();
    let out = h.drain_all();
    let inv = match &out[0].1 {
        rsip::SipMessage::Request(r) => r.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(out[0].0, gw2);
    h.send_from(
        gw2,
        &answer(
            &inv,
            407,
            "Proxy-Authenticate: Digest realm=\"x\", nonce=\"y\"\n",
            false,
        ),
    );
    h.ep.place_trunk_call("open", "556", Duration::from_secs(30), h.now)
        .unwrap();
    let out = h.drain_all();
    let inv = match &out[0].1 {
        rsip::SipMessage::Request(r) => r.clone(),
        other => panic!("{other:?}"),
    };
    h.send_from(gw2, &answer(&inv, 486, "", false));
    let steps = trunk_steps(&mut h);
    let failed: Vec<u16> = steps
        .iter()
        .filter_map(|s| match s {
            TrunkStep::Failed { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [407, 486]);
    assert!(h
        .metrics()
        .render(&[], &[], false)
        .contains("sipacd_trunk_calls_total{trunk=\"open\",result=\"failed\"} 2"));
}

#[test]
fn max_calls_unknown_trunks_and_bad_numbers_are_refused() {
    let mut h = Harness::new();
    let t = Duration::from_secs(30);
    h.ep.place_trunk_call("gw", "555", t, h.now).unwrap();
    assert!(matches!(
        h.ep.place_trunk_call("gw", "556", t, h.now),
        Err(crate::endpoint::TrunkCallError::Full { max: 1, .. })
    ));
    assert!(matches!(
        h.ep.place_trunk_call("nope", "556", t, h.now),
        Err(crate::endpoint::TrunkCallError::UnknownTrunk(_))
    ));
    assert!(matches!(
        h.ep.place_trunk_call("open", "55 6\r\nX: y", t, h.now),
        Err(crate::endpoint::TrunkCallError::BadNumber(_))
    ));
}

#[test]
fn an_unanswered_call_is_cancelled_at_its_ring_timeout_and_frees_its_place() {
    let mut h = Harness::new();
    h.ep.place_trunk_call("gw", "555", Duration::from_secs(5), h.now)
        .unwrap();
    let out = h.drain_all();
    let inv = requests(&out, rsip::Method::Invite).remove(0);
    h.send_from(gw(), &answer(&inv, 180, "", false));
    assert!(h.ep.poll_timeout().is_some());
    let out = h.advance_all(Duration::from_secs(6));
    assert_eq!(requests(&out, rsip::Method::Cancel).len(), 1);
    h.send_from(gw(), &answer(&inv, 487, "", false));
    let steps = trunk_steps(&mut h);
    assert!(
        matches!(steps.last(), Some(TrunkStep::Failed { code: 487, .. })),
        "{steps:?}"
    );
    // Its place on the trunk is free again.
    h.ep.place_trunk_call("gw", "556", Duration::from_secs(5), h.now)
        .unwrap();
}

#[test]
fn a_reload_keeps_a_call_in_progress_on_the_old_trunk_settings() {
    let mut h = Harness::new();
    h.ep.place_trunk_call("gw", "555", Duration::from_secs(30), h.now)
        .unwrap();
    let out = h.drain_all();
    let inv = requests(&out, rsip::Method::Invite).remove(0);
    // The new file drops the trunk's credentials.
    let old = h.ep.config();
    let mut cfg = (*old).clone();
    let mut t = (*cfg.trunks["gw"]).clone();
    t.auth = None;
    cfg.trunks.insert("gw".into(), std::sync::Arc::new(t));
    h.ep.apply_config(std::sync::Arc::new(cfg), h.now);
    let challenge = "WWW-Authenticate: Digest realm=\"gw\", nonce=\"n1\"\n";
    let out = h.send_from(gw(), &answer(&inv, 401, challenge, false));
    assert_eq!(
        requests(&out, rsip::Method::Invite).len(),
        1,
        "the call placed before the reload still has its credentials"
    );
}

/// CANCELs sent, wherever they go (the `open` trunk's gateway too).
fn cancels(out: &[(Peer, rsip::SipMessage)]) -> Vec<&rsip::Request> {
    out.iter()
        .filter_map(|(_, m)| match m {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Cancel => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn turns_before_any_ring_timeout_visit_no_trunk_leg() {
    let mut h = Harness::with_config(|t| t.replace("20000-20005", "20000-20099"));
    let ring = Duration::from_secs(30);
    for n in 0..20 {
        h.ep.place_trunk_call("open", &format!("55{n}"), ring, h.now)
            .unwrap();
    }
    h.drain_all();
    assert_eq!(h.ep.trunk_calls_in_progress(), 20);
    let placed = h.now.mono;
    assert_eq!(h.ep.trunk_calls.next_deadline(), Some(placed + ring));
    // Turn after turn with nothing due: no leg is handed out.
    for _ in 0..29 {
        let out = h.advance_all(Duration::from_secs(1));
        assert!(cancels(&out).is_empty());
    }
    assert_eq!(h.ep.trunk_calls.visited(), 0);
    // At the ring timeout every leg is due, and each is visited once.
    let out = h.advance_all(Duration::from_secs(1));
    assert_eq!(cancels(&out).len(), 20);
    assert_eq!(h.ep.trunk_calls.visited(), 20);
    // Cancelling has no deadline: later turns visit none again.
    h.advance_all(Duration::from_secs(1));
    assert_eq!(h.ep.trunk_calls.visited(), 20);
    assert_eq!(h.ep.trunk_calls.next_deadline(), None);
}

#[test]
fn an_answered_or_failed_leg_leaves_no_ring_deadline() {
    let mut h = Harness::with_config(|t| t.replace("20000-20005", "20000-20099"));
    let gw2 = Peer::udp("127.0.0.1:5091".parse().unwrap());
    let ring = Duration::from_secs(5);
    let a = h.ep.place_trunk_call("open", "551", ring, h.now).unwrap();
    let a_due = h.now.mono + ring;
    h.advance_all(Duration::from_secs(1));
    let b = h.ep.place_trunk_call("open", "552", ring, h.now).unwrap();
    let b_due = h.now.mono + ring;
    h.drain_all();
    assert_eq!(h.ep.trunk_calls.next_deadline(), Some(a_due));
    assert_eq!(h.ep.poll_timeout().map(|t| t <= a_due), Some(true));
    let invite = |h: &Harness, id| h.ep.trunk_calls.get(&id).unwrap().invite.clone();
    // The first fails: its deadline goes with it.
    let a_inv = invite(&h, a.id);
    h.send_from(gw2, &answer(&a_inv, 486, "", false));
    assert_eq!(h.ep.trunk_calls.next_deadline(), Some(b_due));
    // The second is answered: no ring deadline any more.
    let b_inv = invite(&h, b.id);
    h.send_from(gw2, &answer(&b_inv, 200, "", true));
    assert_eq!(h.ep.trunk_calls.next_deadline(), None);
    let out = h.advance_all(Duration::from_secs(10));
    assert!(cancels(&out).is_empty());
    assert_eq!(h.ep.trunk_calls.visited(), 0);
    assert_eq!(h.ep.trunk_calls_in_progress(), 1, "the answered call stays");
}
