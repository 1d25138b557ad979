//! The endpoint driven with raw messages and a virtual clock: what a phone
//! sees, without sockets or sleeps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Endpoint, Now};
use crate::sip::Peer;

const CONFIG: &str = r#"
[server]
sip = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
advertise = "127.0.0.1"
domain = "test.local"
rtp_ports = "20000-20005"
max_calls = 2
data_dir = "DATA"

[agents.1001]
password = "secret"

[queues.support]

[[numbers]]
number = "1500"
to = "queue:support"

[[numbers]]
number = "1501"
to = "queue:support"
ring_s = 3

[[numbers]]
number = "1600"
to = "ivr:bye"

[ivr.bye]
start = "end"

[ivr.bye.nodes.end]
type = "hangup"
"#;

struct Harness {
    ep: Endpoint,
    now: Now,
    phone: Peer,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let text = CONFIG.replace("DATA", data.to_str().unwrap());
        let cfg = crate::config::parse_str(&text, &dir.path().join("t.toml")).unwrap();
        let now = Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        };
        Harness {
            ep: Endpoint::new(Arc::new(cfg), now),
            now,
            phone: Peer::udp("127.0.0.1:5070".parse::<SocketAddr>().unwrap()),
            _dir: dir,
        }
    }

    /// Sends raw text (LF line ends are turned into CRLF) and returns every
    /// message the endpoint sent in reply, parsed.
    fn send(&mut self, text: &str) -> Vec<rsip::SipMessage> {
        let wire = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.ep
            .handle_inbound(wire.as_bytes(), self.phone, self.now);
        self.drain()
    }

    fn advance(&mut self, d: Duration) -> Vec<rsip::SipMessage> {
        self.now.mono += d;
        self.now.wall += d;
        self.ep.handle_timeout(self.now);
        self.drain()
    }

    fn drain(&mut self) -> Vec<rsip::SipMessage> {
        let mut out = Vec::new();
        while let Some((to, bytes)) = self.ep.poll_transmit() {
            assert_eq!(to, self.phone, "everything goes back to the sender");
            out.push(rsip::SipMessage::try_from(&bytes[..]).expect("we send valid SIP"));
        }
        out
    }
}

fn codes(msgs: &[rsip::SipMessage]) -> Vec<u16> {
    msgs.iter()
        .filter_map(|m| match m {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            _ => None,
        })
        .collect()
}

fn invite(number: &str, call_id: &str, branch: &str) -> String {
    let sdp = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\n";
    let sdp = sdp.replace('\n', "\r\n");
    format!(
        "INVITE sip:{number}@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\n\
         Max-Forwards: 70\n\
         From: <sip:caller@127.0.0.1>;tag=c1\n\
         To: <sip:{number}@127.0.0.1>\n\
         Call-ID: {call_id}\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:caller@127.0.0.1:5070>\n\
         Content-Type: application/sdp\n\
         Content-Length: {}\n\n{sdp}",
        sdp.len()
    )
}

fn in_dialog(
    method: &str,
    number: &str,
    call_id: &str,
    to_tag: &str,
    cseq: u32,
    branch: &str,
) -> String {
    format!(
        "{method} sip:{number}@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\n\
         Max-Forwards: 70\n\
         From: <sip:caller@127.0.0.1>;tag=c1\n\
         To: <sip:{number}@127.0.0.1>;tag={to_tag}\n\
         Call-ID: {call_id}\n\
         CSeq: {cseq} {}\n\
         Content-Length: 0\n\n",
        if method == "ACK" { "ACK" } else { method }
    )
}

fn to_tag(m: &rsip::SipMessage) -> String {
    use rsip::prelude::*;
    let rsip::SipMessage::Response(r) = m else {
        panic!("not a response")
    };
    r.to_header()
        .unwrap()
        .tag()
        .unwrap()
        .unwrap()
        .value()
        .to_string()
}

#[test]
fn options_gets_200_with_allow() {
    let mut h = Harness::new();
    let out = h.send(
        "OPTIONS sip:127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKo1\nMax-Forwards: 70\nFrom: <sip:mon@x>;tag=1\nTo: <sip:127.0.0.1>\nCall-ID: o1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
    );
    assert_eq!(codes(&out), vec![200]);
    assert!(out[0].to_string().contains("Allow: INVITE"));
}

#[test]
fn unknown_number_is_404() {
    let mut h = Harness::new();
    let out = h.send(&invite("9999", "c404", "z9hG4bKi404"));
    assert_eq!(codes(&out), vec![100, 404]);
}

#[test]
fn answered_call_then_caller_bye() {
    let mut h = Harness::new();
    let out = h.send(&invite("1500", "call1", "z9hG4bKi1"));
    assert_eq!(codes(&out), vec![100, 200]);
    let ok = out[1].to_string();
    assert!(ok.contains("m=audio 2000"), "{ok}");
    assert!(ok.contains("PCMU"));
    assert!(ok.contains("telephone-event"));
    assert!(ok.contains("Contact: <sip:1500@127.0.0.1:5060>"));
    let tag = to_tag(&out[1]);
    assert_eq!(h.ep.active_calls(), 1);
    assert!(h
        .send(&in_dialog("ACK", "1500", "call1", &tag, 1, "z9hG4bKa1"))
        .is_empty());
    let out = h.send(&in_dialog("BYE", "1500", "call1", &tag, 2, "z9hG4bKb1"));
    assert_eq!(codes(&out), vec![200]);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn unacked_200_is_retransmitted() {
    let mut h = Harness::new();
    let out = h.send(&invite("1500", "call2", "z9hG4bKi2"));
    assert_eq!(codes(&out), vec![100, 200]);
    let again = h.advance(Duration::from_millis(500));
    assert_eq!(codes(&again), vec![200]);
}

#[test]
fn retransmitted_invite_makes_one_call() {
    let mut h = Harness::new();
    let inv = invite("1500", "call3", "z9hG4bKi3");
    let first = h.send(&inv);
    assert_eq!(codes(&first), vec![100, 200]);
    let second = h.send(&inv);
    assert!(codes(&second).iter().all(|c| *c == 200 || *c == 100));
    assert_eq!(h.ep.active_calls(), 1);
}

#[test]
fn ivr_hangup_node_answers_then_byes() {
    let mut h = Harness::new();
    let out = h.send(&invite("1600", "call4", "z9hG4bKi4"));
    assert_eq!(codes(&out), vec![100, 200]);
    let tag = to_tag(&out[1]);
    let out = h.send(&in_dialog("ACK", "1600", "call4", &tag, 1, "z9hG4bKa4"));
    assert_eq!(out.len(), 1);
    let rsip::SipMessage::Request(bye) = &out[0] else {
        panic!("expected BYE")
    };
    assert_eq!(bye.method, rsip::Method::Bye);
    // The caller answers the BYE: the call is gone.
    let bye_text = bye.to_string();
    let branch = bye_text
        .split("branch=")
        .nth(1)
        .unwrap()
        .split([';', '\r'])
        .next()
        .unwrap();
    let cseq_line = bye_text.lines().find(|l| l.starts_with("CSeq")).unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\nFrom: <sip:1600@127.0.0.1>;tag={tag}\nTo: <sip:caller@127.0.0.1>;tag=c1\nCall-ID: call4\n{cseq_line}\nContent-Length: 0\n\n"
    );
    assert!(h.send(&ok).is_empty());
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn ringing_number_can_be_cancelled() {
    let mut h = Harness::new();
    let out = h.send(&invite("1501", "call5", "z9hG4bKi5"));
    assert_eq!(codes(&out), vec![100, 180]);
    let cancel = "CANCEL sip:1501@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKi5;rport\nMax-Forwards: 70\nFrom: <sip:caller@127.0.0.1>;tag=c1\nTo: <sip:1501@127.0.0.1>\nCall-ID: call5\nCSeq: 1 CANCEL\nContent-Length: 0\n\n";
    let out = h.send(cancel);
    let mut got = codes(&out);
    got.sort();
    assert_eq!(got, vec![200, 487]);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn ringing_number_answers_after_ring_s() {
    let mut h = Harness::new();
    assert_eq!(
        codes(&h.send(&invite("1501", "call6", "z9hG4bKi6"))),
        vec![100, 180]
    );
    assert!(codes(&h.advance(Duration::from_secs(2))).is_empty());
    assert_eq!(codes(&h.advance(Duration::from_secs(1))), vec![200]);
}

#[test]
fn over_max_calls_is_503_with_retry_after() {
    let mut h = Harness::new();
    for i in 0..2 {
        let out = h.send(&invite("1500", &format!("m{i}"), &format!("z9hG4bKm{i}")));
        assert_eq!(codes(&out), vec![100, 200]);
    }
    let out = h.send(&invite("1500", "m3", "z9hG4bKm3"));
    assert_eq!(codes(&out), vec![100, 503]);
    assert!(out[1].to_string().contains("Retry-After: "));
}

#[test]
fn unsupported_method_is_405_with_allow() {
    let mut h = Harness::new();
    let out = h.send(
        "SUBSCRIBE sip:1500@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKs1\nMax-Forwards: 70\nFrom: <sip:x@y>;tag=1\nTo: <sip:1500@127.0.0.1>\nCall-ID: s1\nCSeq: 1 SUBSCRIBE\nEvent: presence\nContent-Length: 0\n\n",
    );
    assert_eq!(codes(&out), vec![405]);
    assert!(out[0]
        .to_string()
        .contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO"));
}

#[test]
fn bye_for_unknown_call_is_481() {
    let mut h = Harness::new();
    let out = h.send(&in_dialog("BYE", "1500", "nope", "t", 2, "z9hG4bKb9"));
    assert_eq!(codes(&out), vec![481]);
}

#[test]
fn draining_rejects_new_calls() {
    let mut h = Harness::new();
    h.ep.start_drain();
    assert_eq!(
        codes(&h.send(&invite("1500", "d1", "z9hG4bKd1"))),
        vec![100, 503]
    );
}

#[test]
fn garbage_is_counted_not_answered() {
    let mut h = Harness::new();
    h.ep.handle_inbound(b"\x00\x01garbage", h.phone, h.now);
    assert!(h.drain().is_empty());
    assert_eq!(h.ep.stats.parse_errors, 1);
}
