//! SRTP under `media_encryption`: what the endpoint answers and offers,
//! the 488s, and the keys it hands the media engine before a leg opens.

use std::sync::Arc;

use super::super::MediaCommand;
use super::*;
use crate::config::{MediaEncryption, NumberRoute, Target};
use crate::media::crypto_attr::{CryptoAttr, Suite};

/// Number 1502 (queue support) and agent 2001 set to `policy`.
fn harness(policy: MediaEncryption) -> Harness {
    let mut h = Harness::new();
    let mut cfg = (*h.ep.config()).clone();
    cfg.numbers.push(NumberRoute {
        number: "1502".into(),
        to: Target::Queue("support".into()),
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
