//! SRTP under `media_encryption`: what the endpoint answers and offers,
//! the 488s, and the keys it hands the media engine before a leg opens.

use std::sync::Arc;

use super::super::MediaCommand;
use super::*;
use crate::config::{MediaEncryption, NumberRoute, Target};
use crate::media::crypto_attr::{CryptoAttr, Suite};

/// Number 1502 (queue hold) and agent 2001 set to `policy`.
fn harness(policy: MediaEncryption) -> Harness {
    let mut h = Harness::new();
    let mut cfg = (*h.ep.config()).clone();
    cfg.numbers.push(NumberRoute {
        number: "1502".into(),
        // Nobody has the skill: callers wait, no agent is offered.
        to: Target::Queue("hold".into()),
        ring_s: 0,
        media_encryption: policy,
    });
    if let Some(a) = cfg.agents.get_mut("2001") {
        a.media_encryption = policy;
    }
    h.ep.apply_config(Arc::new(cfg), h.now);
    h
}

fn invite_with(number: &str, call_id: &str, sdp: &str) -> String {
    let plain = invite(number, call_id, &format!("z9hG4bK{call_id}"));
    let (head, _) = plain.split_once("Content-Length:").unwrap();
    format!("{head}Content-Length: {}\n\n{sdp}", sdp.len())
}

fn savp_offer(c: &CryptoAttr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:{}\r\n",
        c.value()
    )
}

fn body(m: &rsip::SipMessage) -> String {
    match m {
        rsip::SipMessage::Response(r) => String::from_utf8_lossy(&r.body).into_owned(),
        rsip::SipMessage::Request(r) => String::from_utf8_lossy(&r.body).into_owned(),
    }
}

#[test]
fn an_srtp_number_refuses_plain_offers_and_answers_srtp_ones() {
    let mut h = harness(MediaEncryption::Srtp);
    let out = h.send(&invite("1502", "s1", "z9hG4bKs1"));
    assert!(codes(&out).contains(&488), "{out:?}");
    assert!(media_cmds(&mut h).is_empty());

    let theirs = CryptoAttr::generate(3, Suite::AesCm128HmacSha1_32);
    let out = h.send(&invite_with("1502", "s2", &savp_offer(&theirs)));
    assert!(codes(&out).contains(&200), "{out:?}");
    let ok = out.iter().find(|m| body(m).contains("m=audio")).unwrap();
    let sdp = body(ok);
    assert!(sdp.contains("RTP/SAVP 0 101"), "{sdp}");
    let ours = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=crypto:"))
        .map(|v| CryptoAttr::parse(v).unwrap())
        .expect("our a=crypto");
    assert_eq!((ours.tag, ours.suite), (3, Suite::AesCm128HmacSha1_32));
    assert_ne!(ours.key, theirs.key);
    match media_cmds(&mut h).as_slice() {
        [MediaCommand::Srtp { leg, keys: Some(k) }, MediaCommand::Open { leg: open, .. }, ..] => {
            assert_eq!(leg, open, "keys come before the leg opens");
            assert_eq!((&k.local, &k.remote), (&ours, &theirs));
        }
        other => panic!("expected Srtp then Open, got {other:?}"),
    }
    // Plain numbers ignore a=crypto: unchanged behaviour.
    let out = h.send(&invite_with("1500", "s3", &savp_offer(&theirs)));
    let ok = out.iter().find(|m| body(m).contains("m=audio")).unwrap();
    assert!(!body(ok).contains("crypto"), "{}", body(ok));
}

#[test]
fn an_optional_number_takes_both() {
    let mut h = harness(MediaEncryption::Optional);
    let out = h.send(&invite("1502", "o1", "z9hG4bKo1"));
    assert!(codes(&out).contains(&200), "{out:?}");
    assert!(!media_cmds(&mut h)
        .iter()
        .any(|c| matches!(c, MediaCommand::Srtp { .. })));
    // RTP/SAVP with nothing usable cannot be answered.
    let unusable = savp_offer(&CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80))
        .replace("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM");
    let out = h.send(&invite_with("1502", "o2", &unusable));
    assert!(codes(&out).contains(&488), "{out:?}");
}

fn agent_answer_sdp(c: Option<&CryptoAttr>) -> String {
    let mut s = AGENT_SDP.replace("RTP/AVP", "RTP/SAVP");
    if let Some(c) = c {
        s.push_str(&format!("a=crypto:{}\r\n", c.value()));
    }
    s
}

#[test]
fn an_srtp_agent_gets_an_savp_offer_and_a_plain_answer_is_refused() {
    let mut h = harness(MediaEncryption::Srtp);
    let (_, out) = queued_caller(&mut h, "a1");
    let _ = media_cmds(&mut h);
    let inv = requests_to(&out, agent(5080)).remove(0);
    let offer = String::from_utf8_lossy(&inv.body).into_owned();
    assert!(offer.contains("RTP/SAVP 0 8 101"), "{offer}");
    let offered: Vec<CryptoAttr> = offer
        .lines()
        .filter_map(|l| l.strip_prefix("a=crypto:"))
        .map(|v| CryptoAttr::parse(v).unwrap())
        .collect();
    assert_eq!(offered.len(), 2);
    // The phone picks tag 2 and answers with its own key.
    let phone = CryptoAttr::generate(2, Suite::AesCm128HmacSha1_32);
    let sdp = agent_answer_sdp(Some(&phone));
    h.send_from(agent(5080), &answer(&inv, 200, "ag", &sdp));
    match media_cmds(&mut h).as_slice() {
        [MediaCommand::Srtp { leg, keys: Some(k) }, MediaCommand::Open { leg: open, .. }, MediaCommand::Bridge { .. }] =>
        {
            assert_eq!(leg, open);
            assert_eq!((&k.local, &k.remote), (&offered[1], &phone));
        }
        other => panic!("expected Srtp, Open, Bridge; got {other:?}"),
    }

    // Another call; this time the agent's phone answers without a key.
    let mut h = harness(MediaEncryption::Srtp);
    let (_, out) = queued_caller(&mut h, "a2");
    let _ = media_cmds(&mut h);
    let inv = requests_to(&out, agent(5080)).remove(0);
    let out = h.send_from(
        agent(5080),
        &answer(&inv, 200, "ag", &agent_answer_sdp(None)),
    );
    let to_agent = requests_to(&out, agent(5080));
    assert!(
        to_agent.iter().any(|r| r.method == rsip::Method::Bye),
        "the plain answer is hung up: {to_agent:?}"
    );
    assert!(!media_cmds(&mut h)
        .iter()
        .any(|c| matches!(c, MediaCommand::Open { .. } | MediaCommand::Bridge { .. })));
}

fn reinvite(call_id: &str, tag: &str, cseq: u32, sdp: &str) -> String {
    let plain = in_dialog(
        "INVITE",
        "1502",
        call_id,
        tag,
        cseq,
        &format!("z9hG4bKr{cseq}"),
    );
    let (head, _) = plain.split_once("Content-Length:").unwrap();
    format!(
        "{head}Contact: <sip:caller@127.0.0.1:5070>\nContent-Type: application/sdp\nContent-Length: {}\n\n{sdp}",
        sdp.len()
    )
}

fn our_crypto(out: &[rsip::SipMessage]) -> Option<CryptoAttr> {
    out.iter().find_map(|m| {
        body(m)
            .lines()
            .find_map(|l| l.strip_prefix("a=crypto:"))
            .and_then(|v| CryptoAttr::parse(v).ok())
    })
}

#[test]
fn a_reinvite_keeps_our_key_and_hands_over_only_a_new_peer_key() {
    let mut h = harness(MediaEncryption::Srtp);
    let k1 = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
    let out = h.send(&invite_with("1502", "r1", &savp_offer(&k1)));
    let tag = to_tag(&out[0]);
    let ours = our_crypto(&out).expect("answered with a key");
    h.send(&in_dialog("ACK", "1502", "r1", &tag, 1, "z9hG4bKar1"));
    let _ = media_cmds(&mut h);

    // The same offer again (a session refresh): same key, no new keys.
    let out = h.send(&reinvite("r1", &tag, 2, &savp_offer(&k1)));
    assert!(codes(&out).contains(&200), "{out:?}");
    assert_eq!(our_crypto(&out).as_ref(), Some(&ours));
    let cmds = media_cmds(&mut h);
    assert!(
        !cmds.iter().any(|c| matches!(c, MediaCommand::Srtp { .. })),
        "{cmds:?}"
    );

    // The phone re-keys: our key stays, its new one goes to the engine.
    let k2 = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
    let out = h.send(&reinvite("r1", &tag, 3, &savp_offer(&k2)));
    assert_eq!(our_crypto(&out).as_ref(), Some(&ours));
    match media_cmds(&mut h).as_slice() {
        [MediaCommand::Srtp { keys: Some(k), .. }, MediaCommand::Update { .. }, ..] => {
            assert_eq!((&k.local, &k.remote), (&ours, &k2));
        }
        other => panic!("expected Srtp then Update, got {other:?}"),
    }

    // Dropping SRTP mid-call on an SRTP number: 488, the call goes on.
    let plain = savp_offer(&k2)
        .replace("RTP/SAVP", "RTP/AVP")
        .replace(&format!("a=crypto:{}\r\n", k2.value()), "");
    let out = h.send(&reinvite("r1", &tag, 4, &plain));
    assert!(codes(&out).contains(&488), "{out:?}");
}

#[test]
fn an_optional_agent_gets_a_best_effort_offer_and_may_answer_plain() {
    let mut h = harness(MediaEncryption::Optional);
    let (_, out) = queued_caller(&mut h, "b1");
    let _ = media_cmds(&mut h);
    let inv = requests_to(&out, agent(5080)).remove(0);
    let offer = String::from_utf8_lossy(&inv.body).into_owned();
    assert!(offer.contains("m=audio 20002 RTP/AVP 0 8 101"), "{offer}");
    assert_eq!(offer.matches("a=crypto:").count(), 2, "{offer}");
    h.send_from(agent(5080), &answer(&inv, 200, "ag", AGENT_SDP));
    let cmds = media_cmds(&mut h);
    assert!(
        matches!(
            cmds.as_slice(),
            [MediaCommand::Open { .. }, MediaCommand::Bridge { .. }]
        ),
        "a plain answer bridges plain: {cmds:?}"
    );
}
