//! Agents' feature codes: an INVITE from agent 1001's own phone to the
//! pause code (with a reason code) or the unpause code is challenged,
//! then changes the agent's state as the admin API does, and is answered
//! and hung up; wrong codes and someone else's identity get 403.

use std::sync::Arc;

use super::contacts::register_1001;
use super::*;
use crate::config::Features;
use crate::events::EventKind;
use crate::registrar::{parse_authorization, Algorithm};
use crate::views::AgentStateRequest;
use rsip::message::HasHeaders;

fn with_features(h: &mut Harness) {
    let mut cfg = (*h.ep.config()).clone();
    cfg.features = Features {
        pause: Some("*45".into()),
        unpause: Some("*46".into()),
        login: Some("*47".into()),
        logout: Some("*48".into()),
        pause_reasons: [("1".to_owned(), "lunch".to_owned())].into(),
        transfer: None,
    };
    h.ep.apply_config(Arc::new(cfg), h.now);
}

/// An INVITE to `code` from `user`'s phone, with `auth` (an Authorization
/// line or nothing).
fn dial(user: &str, code: &str, cseq: u32, auth: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:{code}@test.local SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKf{code}{cseq};rport\n\
         Max-Forwards: 70\n\
         From: <sip:{user}@test.local>;tag=f{cseq}\n\
         To: <sip:{code}@test.local>\n\
         Call-ID: fc-{code}-{cseq}\n\
         CSeq: {cseq} INVITE\n\
         Contact: <sip:{user}@127.0.0.1:5072>\n\
         {auth}Content-Type: application/sdp\n\
         Content-Length: {}\n\n{sdp}",
        sdp.len()
    )
}

fn responses(out: &[(Peer, rsip::SipMessage)]) -> Vec<rsip::Response> {
    out.iter()
        .filter_map(|(_, m)| match m {
            rsip::SipMessage::Response(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Dials `code` as 1001 (password "secret"), answering the challenge.
pub(super) fn dial_authenticated(h: &mut Harness, code: &str, cseq: u32) -> Vec<rsip::Response> {
    let out = h.send_from(agent(5072), &dial("1001", code, cseq, ""));
    let challenge = responses(&out)
        .iter()
        .find(|r| r.status_code.code() == 401)
        .and_then(|r| {
            r.headers().iter().find_map(|h| match h {
                rsip::Header::WwwAuthenticate(w) => Some(w.to_string()),
                _ => None,
            })
        })
        .unwrap_or_else(|| panic!("a 401 with a challenge: {out:?}"));
    let value = challenge.split_once(':').map_or("", |(_, v)| v.trim());
    let c = parse_authorization(&value.replacen(
        "Digest",
        "Digest username=\"x\", uri=\"u\", response=\"r\",",
        1,
    ))
    .expect("challenge");
    let uri = format!("sip:{code}@test.local");
    let ha1 = Algorithm::Md5.ha1("1001", "test.local", "secret");
    let ha2 = Algorithm::Md5.hash_hex(&["INVITE", &uri]);
    let resp = Algorithm::Md5.hash_hex(&[&ha1, &c.nonce, "00000001", "c0ffee", "auth", &ha2]);
    let opaque = c
        .opaque
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    let auth = format!(
        "Authorization: Digest username=\"1001\", realm=\"test.local\", nonce=\"{}\", \
         uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, cnonce=\"c0ffee\", \
         qop=auth, nc=00000001{opaque}\n",
        c.nonce
    );
    let out = h.send_from(agent(5072), &dial("1001", code, cseq + 1, &auth));
    responses(&out)
}

/// The phone ACKs the 200 of its INVITE `cseq` to `code`; sipacd's BYE
/// follows at once and is answered.
fn finish(h: &mut Harness, resp: &[rsip::Response], code: &str, cseq: u32) {
    let ok = rsip::SipMessage::Response(resp.last().expect("200").clone());
    let tag = to_tag(&ok);
    let ack = format!(
        "ACK sip:{code}@test.local SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKfack{cseq}\n\
         Max-Forwards: 70\n\
         From: <sip:1001@test.local>;tag=f{cseq}\n\
         To: <sip:{code}@test.local>;tag={tag}\n\
         Call-ID: fc-{code}-{cseq}\n\
         CSeq: {cseq} ACK\n\
         Content-Length: 0\n\n"
    );
    let out = h.send_from(agent(5072), &ack);
    let byes = requests_to(&out, agent(5072));
    assert_eq!(byes.len(), 1, "{out:?}");
    assert_eq!(byes[0].method, rsip::Method::Bye);
    h.send_from(agent(5072), &answer(&byes[0], 200, "f", ""));
}

fn state_of_1001(h: &Harness) -> (String, Option<String>) {
    let v =
        h.ep.agent_views(h.now)
            .into_iter()
            .find(|a| a.id == "1001")
            .expect("agent 1001");
    (v.state, v.pause_reason)
}

fn paused_events(h: &mut Harness) -> Vec<Option<String>> {
    h.seen.pump(&mut h.ep, h.now);
    h.seen
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AgentPaused { agent, reason } if agent == "1001" => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pause_code_with_a_reason_pauses_the_agent_and_unpause_frees_it() {
    let mut h = Harness::new();
    with_features(&mut h);
    register_1001(&mut h, agent(5072), "<sip:1001@127.0.0.1:5072>");
    assert_eq!(state_of_1001(&h).0, "available");

    let resp = dial_authenticated(&mut h, "*451", 1);
    let codes: Vec<u16> = resp.iter().map(|r| r.status_code.code()).collect();
    assert!(codes.ends_with(&[200]), "{codes:?}");
    assert!(!resp.last().expect("200").body.is_empty(), "an SDP answer");
    assert_eq!(state_of_1001(&h), ("paused".into(), Some("lunch".into())));
    assert_eq!(paused_events(&mut h), [Some("lunch".to_owned())]);

    // The phone's ACK: sipacd hangs up at once.
    finish(&mut h, &resp, "*451", 2);
    assert!(
        h.records().is_empty(),
        "a feature code is not a call to record"
    );
    let qlog: Vec<_> = h
        .queue_log()
        .into_iter()
        .filter(|l| l.event == "PAUSE")
        .collect();
    assert_eq!(qlog.len(), 1);
    assert_eq!(qlog[0].data, ["lunch"]);

    let resp = dial_authenticated(&mut h, "*46", 5);
    assert_eq!(resp.last().map(|r| r.status_code.code()), Some(200));
    finish(&mut h, &resp, "*46", 6);
    assert_eq!(state_of_1001(&h).0, "available");
    assert_eq!(paused_events(&mut h), [Some("lunch".to_owned()), None]);

    // The pause code alone: paused without a reason.
    let resp = dial_authenticated(&mut h, "*45", 7);
    finish(&mut h, &resp, "*45", 8);
    assert_eq!(state_of_1001(&h), ("paused".into(), None));
    assert_eq!(h.ep.active_calls(), 0, "every answer was hung up");
}

#[test]
fn wrong_reason_codes_and_other_identities_are_refused() {
    let mut h = Harness::new();
    with_features(&mut h);
    register_1001(&mut h, agent(5072), "<sip:1001@127.0.0.1:5072>");
    let resp = dial_authenticated(&mut h, "*459", 1);
    assert_eq!(resp.last().map(|r| r.status_code.code()), Some(403));
    assert_eq!(state_of_1001(&h).0, "available");

    // 1001's credentials on a request claiming to be 2001: 403.
    let out = h.send_from(agent(5072), &dial("2001", "*45", 3, ""));
    let challenged = responses(&out).iter().any(|r| r.status_code.code() == 401);
    assert!(challenged, "{out:?}");
    let forged = dial("2001", "*45", 4, "Authorization: Digest username=\"1001\", realm=\"test.local\", nonce=\"x\", uri=\"sip:*45@test.local\", response=\"00\"\n");
    let out = h.send_from(agent(5072), &forged);
    let codes: Vec<u16> = responses(&out)
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert!(!codes.contains(&200), "{codes:?}");
    assert_eq!(state_of_1001(&h).0, "available");
    assert!(paused_events(&mut h).is_empty());
    assert!(h.records().is_empty());
}

#[test]
fn feature_codes_are_read_from_the_table() {
    use crate::config::FeatureAction as A;
    let f = Features {
        pause: Some("*45".into()),
        unpause: Some("*46".into()),
        pause_reasons: [("12".to_owned(), "training".to_owned())].into(),
        ..Features::default()
    };
    assert_eq!(f.action("*45"), Some(A::Pause(None)));
    assert_eq!(f.action("*4512"), Some(A::Pause(Some("training".into()))));
    assert_eq!(f.action("*459"), Some(A::UnknownReason("9".into())));
    assert_eq!(f.action("*46"), Some(A::Unpause));
    assert_eq!(f.action("1500"), None);
    assert_eq!(Features::default().action("*45"), None);
}

#[test]
fn logout_keeps_a_registered_agent_out_until_it_dials_login() {
    let mut h = Harness::new();
    with_features(&mut h);
    register_1001(&mut h, agent(5072), "<sip:1001@127.0.0.1:5072>");
    let resp = dial_authenticated(&mut h, "*48", 1);
    assert_eq!(resp.last().map(|r| r.status_code.code()), Some(200));
    finish(&mut h, &resp, "*48", 2);
    assert_eq!(state_of_1001(&h).0, "logged_out");

    // A registration refresh, the unpause code and the API do not log it in.
    register_1001(&mut h, agent(5072), "<sip:1001@127.0.0.1:5072>");
    assert_eq!(state_of_1001(&h).0, "logged_out");
    let resp = dial_authenticated(&mut h, "*46", 3);
    assert_eq!(resp.last().map(|r| r.status_code.code()), Some(403));
    let api =
        h.ep.set_agent_state("1001", AgentStateRequest::Available, h.now);
    assert!(api.is_err(), "{api:?}");
    assert_eq!(state_of_1001(&h).0, "logged_out");

    let resp = dial_authenticated(&mut h, "*47", 5);
    assert_eq!(resp.last().map(|r| r.status_code.code()), Some(200));
    finish(&mut h, &resp, "*47", 6);
    assert_eq!(state_of_1001(&h).0, "available");

    h.seen.pump(&mut h.ep, h.now);
    let logins: Vec<bool> = h
        .seen
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AgentLogin { agent, logged_in } if agent == "1001" => Some(*logged_in),
            _ => None,
        })
        .collect();
    assert_eq!(logins, [false, true]);
    let qlog: Vec<&str> = h
        .queue_log()
        .iter()
        .filter(|l| l.agent == "1001")
        .map(|l| l.event)
        .collect();
    assert_eq!(qlog, ["AGENTLOGIN", "AGENTLOGOFF", "AGENTLOGIN"]);
    assert!(h.records().is_empty());
}
