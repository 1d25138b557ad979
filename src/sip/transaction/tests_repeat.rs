//! Byte-identical repeats handled from their bytes (`absorb_repeat`):
//! each case is checked against what `on_request` does with the parsed
//! repeat on a twin layer fed the same history.

use std::time::{Duration, Instant};

use rsip::prelude::UntypedHeader;
use rsip::{Request, SipMessage, StatusCode};

use super::*;
use crate::sip::headers::response_with_status;
use crate::sip::message::{parse, peek_request};
use crate::sip::Peer;

fn udp() -> Peer {
    Peer::udp("10.0.0.1:5060".parse().expect("addr"))
}

fn raw(method: &str, branch: &str, cseq: u32, to_tag: &str) -> Vec<u8> {
    format!(
        "{method} sip:queue@acd.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};rport\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:queue@acd.example.com>{to_tag}\r\n\
         Call-ID: call-1@10.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn req(bytes: &[u8]) -> Request {
    match parse(bytes) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// Two layers fed the same history: one to absorb repeats, one to parse them.
struct Twins {
    fast: TransactionLayer,
    slow: TransactionLayer,
}

impl Twins {
    fn new() -> Twins {
        Twins {
            fast: TransactionLayer::new(TimerConfig::default()),
            slow: TransactionLayer::new(TimerConfig::default()),
        }
    }

    fn feed(&mut self, bytes: &[u8], from: Peer, now: Instant) -> Option<ServerEvent> {
        let a = self.fast.on_request_raw(req(bytes), bytes, from, now);
        let b = self.slow.on_request_raw(req(bytes), bytes, from, now);
        assert_eq!(a, b);
        self.sent();
        a
    }

    fn respond(&mut self, key: &TxKey, code: u16, bytes: &[u8], now: Instant) {
        let mut resp = response_with_status(&req(bytes), StatusCode::from(code), None);
        resp.headers.retain(|h| !matches!(h, rsip::Header::To(_)));
        resp.headers
            .push(rsip::headers::To::new("<sip:queue@acd.example.com>;tag=b1").into());
        for l in [&mut self.fast, &mut self.slow] {
            l.send_response(key, resp.clone(), now).expect("sent");
        }
        self.sent();
    }

    /// What both sent (the same, or the test fails).
    fn sent(&mut self) -> Vec<Transmit> {
        let a: Vec<_> = std::iter::from_fn(|| self.fast.poll_transmit()).collect();
        let b: Vec<_> = std::iter::from_fn(|| self.slow.poll_transmit()).collect();
        assert_eq!(a, b);
        a
    }

    /// A repeat: absorbed from its bytes by one layer, parsed by the other;
    /// returns whether it was absorbed (the twins then agree on the rest).
    /// Parsed, a repeated ACK for a 2xx still reaches the TU, which finds
    /// its call confirmed already (the endpoint tests check that).
    fn repeat(&mut self, bytes: &[u8], from: Peer, now: Instant) -> bool {
        let ids = peek_request(bytes).expect("plain layout");
        let absorbed = self.fast.absorb_repeat(&ids, bytes, now);
        if absorbed {
            let ev = self.slow.on_request_raw(req(bytes), bytes, from, now);
            let ack_2xx = ids.method == rsip::Method::Ack && self.slow.pending_2xx() == 0;
            match ev {
                None => {}
                Some(ServerEvent::Ack { .. }) if ack_2xx => {}
                other => panic!("the parsed repeat gave {other:?}"),
            }
        } else {
            let a = self.fast.on_request_raw(req(bytes), bytes, from, now);
            let b = self.slow.on_request_raw(req(bytes), bytes, from, now);
            assert_eq!(a, b);
        }
        self.sent();
        assert_eq!(self.fast.len(), self.slow.len());
        absorbed
    }

    fn run(&mut self, until: Instant) {
        for l in [&mut self.fast, &mut self.slow] {
            while let Some(at) = l.poll_timeout().filter(|&at| at <= until) {
                l.handle_timeout(at);
            }
        }
        self.sent();
    }
}

fn key_of(ev: Option<ServerEvent>) -> TxKey {
    match ev {
        Some(ServerEvent::NewRequest { key, .. }) => key,
        other => panic!("expected a new request, got {other:?}"),
    }
}

#[test]
fn retransmitted_requests_are_answered_again_from_their_bytes() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut l = Twins::new();
    let invite = raw("INVITE", "z9hG4bKi1", 1, "");
    let key = key_of(l.feed(&invite, udp(), t0));
    assert!(l.repeat(&invite, udp(), t0 + ms(50)));
    l.respond(&key, 486, &invite, t0 + ms(100));
    assert!(l.repeat(&invite, udp(), t0 + ms(150)));
    // Same branch, other bytes: not a repeat, parsed (and absorbed there).
    let other = [&invite[..invite.len() - 2], b"X: 1\r\n\r\n"].concat();
    assert!(!l.repeat(&other, udp(), t0 + ms(160)));

    let bye = raw("BYE", "z9hG4bKb1", 2, ";tag=b1");
    let bye_key = key_of(l.feed(&bye, udp(), t0 + ms(200)));
    l.respond(&bye_key, 200, &bye, t0 + ms(210));
    assert!(l.repeat(&bye, udp(), t0 + ms(220)));
    // Timer J ends the BYE's transaction: its bytes are forgotten with it.
    l.run(t0 + ms(40_000));
    assert!(!l.repeat(&bye, udp(), t0 + ms(40_001)));
}

#[test]
fn retransmitted_answered_invite_is_absorbed_silently() {
    let t0 = Instant::now();
    let mut l = Twins::new();
    let invite = raw("INVITE", "z9hG4bKi2", 1, "");
    let key = key_of(l.feed(&invite, udp(), t0));
    l.respond(&key, 200, &invite, t0);
    assert!(l.repeat(&invite, udp(), t0 + Duration::from_millis(10)));
    assert_eq!(l.fast.pending_2xx(), 1);
}

#[test]
fn repeated_acks_are_absorbed_only_after_one_matched() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut l = Twins::new();
    // An ACK for no 2xx is not remembered: its repeat is parsed again.
    let stray = raw("ACK", "z9hG4bKa0", 7, ";tag=b1");
    assert!(matches!(
        l.feed(&stray, udp(), t0),
        Some(ServerEvent::Ack { .. })
    ));
    assert!(!l.repeat(&stray, udp(), t0));

    let invite = raw("INVITE", "z9hG4bKi3", 1, "");
    let key = key_of(l.feed(&invite, udp(), t0));
    l.respond(&key, 200, &invite, t0);
    let ack = raw("ACK", "z9hG4bKa3", 1, ";tag=b1");
    assert!(matches!(
        l.feed(&ack, udp(), t0 + ms(5)),
        Some(ServerEvent::Ack { .. })
    ));
    assert_eq!(l.fast.pending_2xx(), 0);
    assert!(l.repeat(&ack, udp(), t0 + ms(600)));
    // Kept for 64*T1 only.
    assert!(!l.repeat(&ack, udp(), t0 + ms(5 + 32_000)));

    // The ACK of a 486 is absorbed by its INVITE transaction in Confirmed.
    let invite = raw("INVITE", "z9hG4bKi4", 2, "");
    let key = key_of(l.feed(&invite, udp(), t0));
    l.respond(&key, 486, &invite, t0);
    let ack = raw("ACK", "z9hG4bKi4", 2, ";tag=b1");
    assert_eq!(l.feed(&ack, udp(), t0 + ms(5)), None);
    assert!(l.repeat(&ack, udp(), t0 + ms(6)));
}

#[test]
fn nothing_is_kept_for_reliable_transports() {
    let t0 = Instant::now();
    let tcp = Peer::tcp("10.0.0.1:5060".parse().expect("addr"));
    let mut l = Twins::new();
    let invite = raw("INVITE", "z9hG4bKi5", 1, "");
    key_of(l.feed(&invite, tcp, t0));
    assert!(!l.repeat(&invite, tcp, t0));
    assert_eq!(l.fast.len(), 1);
}
