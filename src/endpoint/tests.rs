//! The endpoint driven with raw messages and a virtual clock: what a phone
//! sees, without sockets or sleeps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Endpoint, Now};
use crate::sip::Peer;

#[path = "tests_attended.rs"]
mod attended;
#[path = "tests_callback.rs"]
mod callback;
#[path = "tests_contacts.rs"]
mod contacts;
#[path = "tests_events.rs"]
mod events;
#[path = "tests_features.rs"]
mod features;
#[path = "tests_in_dialog.rs"]
mod in_dialog;
#[path = "tests_mid_call.rs"]
mod mid_call;
#[path = "tests_monitor.rs"]
mod monitor;
#[path = "tests_recording.rs"]
mod recording;
#[path = "tests_shards.rs"]
mod shards;
#[path = "tests_srtp.rs"]
mod srtp;
#[path = "tests_transfer.rs"]
mod transfer;
#[path = "tests_transfer_trunk.rs"]
mod transfer_trunk;
#[path = "tests_trunk.rs"]
mod trunk;
#[path = "tests_wait.rs"]
mod wait;

const CONFIG: &str = r#"
[server]
sip = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
advertise = "127.0.0.1"
domain = "test.local"
rtp_ports = "20000-20005"
max_calls = 2
data_dir = "DATA"
prompts = "PROMPTS"

[agents.1001]
password = "secret"

[agents.2001]
contact = "sip:2001@127.0.0.1:5080"
skills = { support = 5 }

[agents.2002]
contact = "sip:2002@127.0.0.1:5081"
skills = { support = 5 }

[queues.support]
ring_timeout_s = 10

[queues.sales]
skills = { sales = 1 }

[queues.hold]
skills = { nobody = 1 }
announce_position_s = 2

[[numbers]]
number = "1560"
to = "queue:hold"

[queues.ov]
skills = { nobody = 1 }
max_wait_s = 1
overflow = "hangup"

[[numbers]]
number = "1570"
to = "queue:ov"

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

[[numbers]]
number = "1550"
to = "ivr:main"

[ivr.main]
start = "menu"

[ivr.main.nodes.menu]
type = "menu"
prompt = "menu.wav"
timeout_s = 3
retries = 0
options = { "1" = "acct" }
on_fail = "bye"

[ivr.main.nodes.acct]
type = "collect"
max_digits = 4
variable = "account"
next = "q"

[ivr.main.nodes.q]
type = "queue"
queue = "support"

[ivr.main.nodes.bye]
type = "hangup"

[ivr.bye]
start = "end"

[ivr.bye.nodes.end]
type = "hangup"

[trunks.gw]
uri = "sip:gw@127.0.0.1:5090"
username = "acme"
password = "pw"
caller_id = "1500"
max_calls = 1

[trunks.open]
uri = "sip:127.0.0.1:5091"
"#;

struct Harness {
    ep: Endpoint,
    now: Now,
    phone: Peer,
    /// The event stream's consumers, as the daemon runs them.
    seen: Seen,
    _dir: tempfile::TempDir,
}

/// What the consumers of the event stream made of it so far.
#[derive(Default)]
struct Seen {
    records: crate::cdr::fold::RecordFold,
    qlog: crate::cdr::queue_log_fold::QueueLogFold,
    metrics: Option<crate::metrics::fold::MetricsFold>,
    /// The counters the folds count into.
    registry: std::sync::Arc<crate::metrics::Metrics>,
    today: crate::admin::today::TodayBoard,
    board: crate::admin::board::LiveBoard,
    calls: Vec<crate::cdr::CallRecord>,
    lines: Vec<crate::cdr::queue_log_fold::QueueLogLine>,
    live: Vec<crate::admin::live::LiveEvent>,
    events: Vec<crate::events::Event>,
}

impl Seen {
    /// Folds what `ep` queued into every consumer.
    fn pump(&mut self, ep: &mut Endpoint, now: Now) {
        let cfg = ep.config();
        let registry = self.registry.clone();
        let metrics = self
            .metrics
            .get_or_insert_with(|| crate::metrics::fold::MetricsFold::new(registry));
        ep.drain_tally(|t| metrics.absorb(0, t));
        while let Some(ev) = ep.poll_event(now) {
            self.records.fold(&ev);
            while let Some(out) = self.records.poll() {
                if let crate::cdr::fold::RecordOut::Call(r) = out {
                    self.calls.push(*r);
                }
            }
            self.qlog.fold(&ev);
            while let Some(l) = self.qlog.poll() {
                self.lines.push(l);
            }
            metrics.fold(&ev, &cfg);
            self.today.fold(&ev, &cfg);
            self.board.fold(&ev, &cfg);
            self.live.extend(crate::admin::live::live_events(&ev));
            self.events.push(ev);
        }
    }
}

impl Harness {
    /// The queues as the live board folded them from the events, checked
    /// against the engine's own count of the same moment.
    fn queue_views(&mut self) -> Vec<crate::views::QueueView> {
        self.seen.pump(&mut self.ep, self.now);
        let folded = self.seen.board.queue_views(&self.ep.config(), self.now);
        assert_eq!(
            folded,
            self.ep.queue_views(self.now),
            "board and engine differ"
        );
        folded
    }

    fn new() -> Harness {
        Self::with_config(|t| t.to_owned())
    }

    /// The harness on `CONFIG` as `edit` rewrites it.
    fn with_config(edit: impl Fn(&str) -> String) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let prompts = dir.path().join("prompts");
        std::fs::create_dir_all(&prompts).unwrap();
        let names = ["menu.wav", "you-are-number.wav", "in-the-queue.wav"];
        let digits: Vec<String> = (0..10).map(|d| format!("{d}.wav")).collect();
        for name in names
            .iter()
            .copied()
            .chain(digits.iter().map(String::as_str))
        {
            std::fs::write(prompts.join(name), wav_8k_pcm16(800)).unwrap();
        }
        let text = edit(CONFIG)
            .replace("DATA", data.to_str().unwrap())
            .replace("PROMPTS", prompts.to_str().unwrap());
        let cfg = crate::config::parse_str(&text, &dir.path().join("t.toml")).unwrap();
        let now = Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        };
        Harness {
            ep: Endpoint::new(Arc::new(cfg), now),
            now,
            phone: Peer::udp("127.0.0.1:5070".parse::<SocketAddr>().unwrap()),
            seen: Seen::default(),
            _dir: dir,
        }
    }

    /// Call records written since the last look.
    fn records(&mut self) -> Vec<crate::cdr::CallRecord> {
        self.seen.pump(&mut self.ep, self.now);
        std::mem::take(&mut self.seen.calls)
    }

    /// queue_log lines written since the last look.
    fn queue_log(&mut self) -> Vec<crate::cdr::queue_log_fold::QueueLogLine> {
        self.seen.pump(&mut self.ep, self.now);
        std::mem::take(&mut self.seen.lines)
    }

    /// The Prometheus counters, up to date.
    fn metrics(&mut self) -> std::sync::Arc<crate::metrics::Metrics> {
        self.seen.pump(&mut self.ep, self.now);
        self.seen.registry.clone()
    }

    /// Live events published since the last look.
    fn live(&mut self) -> Vec<crate::admin::live::LiveEvent> {
        self.seen.pump(&mut self.ep, self.now);
        std::mem::take(&mut self.seen.live)
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
        self.drain_all()
            .into_iter()
            .map(|(to, m)| {
                assert_eq!(to, self.phone, "everything goes back to the sender");
                m
            })
            .collect()
    }

    /// Everything sent, with its destination, but the OPTIONS pings to
    /// static contacts (see the qualify test).
    fn drain_all(&mut self) -> Vec<(Peer, rsip::SipMessage)> {
        self.drain_raw()
            .into_iter()
            .filter(|(_, m)| !matches!(m, rsip::SipMessage::Request(r) if r.method == rsip::Method::Options))
            .collect()
    }

    fn drain_raw(&mut self) -> Vec<(Peer, rsip::SipMessage)> {
        let mut out = Vec::new();
        while let Some((to, bytes)) = self.ep.poll_transmit() {
            out.push((
                to,
                // Our own parser: rsip's refuses valid URIs (`;gr=urn:uuid:…`).
                crate::sip::message::parse(&bytes[..]).expect("we send valid SIP"),
            ));
        }
        out
    }

    /// A message from `from` (an agent's phone); returns all output.
    fn send_from(&mut self, from: Peer, text: &str) -> Vec<(Peer, rsip::SipMessage)> {
        let wire = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.ep.handle_inbound(wire.as_bytes(), from, self.now);
        self.drain_all()
    }

    fn advance_all(&mut self, d: Duration) -> Vec<(Peer, rsip::SipMessage)> {
        self.now.mono += d;
        self.now.wall += d;
        self.ep.handle_timeout(self.now);
        self.drain_all()
    }
}

/// A valid 8 kHz mono 16-bit WAV of `samples` samples of silence.
fn wav_8k_pcm16(samples: u32) -> Vec<u8> {
    let data = samples * 2;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    w.resize(w.len() + data as usize, 0);
    w
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

/// The 200 a phone sends for `req` (Via, From, To, Call-ID and CSeq as
/// the request has them).
fn ok_for_request(req: &str) -> String {
    let copied: Vec<&str> = req
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| {
            let name = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(name.as_str(), "via" | "from" | "to" | "call-id" | "cseq")
        })
        .map(str::trim_end)
        .collect();
    format!(
        "SIP/2.0 200 OK\n{}\nContent-Length: 0\n\n",
        copied.join("\n")
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
    assert_eq!(codes(&out), vec![404]);
}

#[test]
fn answered_call_then_caller_bye() {
    let mut h = Harness::new();
    let out = h.send(&invite("1500", "call1", "z9hG4bKi1"));
    assert_eq!(codes(&out), vec![200]);
    let ok = out[0].to_string();
    assert!(ok.contains("m=audio 2000"), "{ok}");
    assert!(ok.contains("PCMU"));
    assert!(ok.contains("telephone-event"));
    assert!(ok.contains("Contact: <sip:1500@127.0.0.1:5060>"));
    let tag = to_tag(&out[0]);
    assert_eq!(h.ep.active_calls(), 1);
    let out = h.send_from(
        h.phone,
        &in_dialog("ACK", "1500", "call1", &tag, 1, "z9hG4bKa1"),
    );
    assert!(
        out.iter().all(|(p, _)| *p != h.phone),
        "nothing for the caller on ACK"
    );
    let out = h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "call1", &tag, 2, "z9hG4bKb1"),
    );
    let to_caller: Vec<_> = out
        .into_iter()
        .filter(|(p, _)| *p == h.phone)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(codes(&to_caller), vec![200]);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn unacked_200_is_retransmitted() {
    let mut h = Harness::new();
    let out = h.send(&invite("1500", "call2", "z9hG4bKi2"));
    assert_eq!(codes(&out), vec![200]);
    let again = h.advance(Duration::from_millis(500));
    assert_eq!(codes(&again), vec![200]);
}

#[test]
fn retransmitted_invite_makes_one_call() {
    let mut h = Harness::new();
    let inv = invite("1500", "call3", "z9hG4bKi3");
    let first = h.send(&inv);
    assert_eq!(codes(&first), vec![200]);
    let second = h.send(&inv);
    // RFC 6026 "Accepted": the retransmission is absorbed, no new call...
    assert!(second.is_empty(), "{second:?}");
    assert_eq!(h.ep.active_calls(), 1);
    // ...and the caller still gets the one call's 200, retransmitted at T1.
    let again = h.advance(Duration::from_millis(500));
    assert_eq!(codes(&again), vec![200], "{again:?}");
    assert_eq!(to_tag(&again[0]), to_tag(&first[0]));
    let arrivals = h
        .records()
        .into_iter()
        .filter(|r| r.ended_ms.is_none())
        .count();
    assert_eq!(arrivals, 1, "one call record");
}

/// Requests counted `in` for `method`.
fn requests_in(h: &mut Harness, method: &'static str) -> u64 {
    h.metrics()
        .sip_requests
        .get_or_create(&crate::metrics::RequestLabels {
            direction: "in",
            method,
        })
        .get()
}

#[test]
fn repeated_invite_ack_and_bye_are_handled_as_before_and_counted() {
    let mut h = Harness::new();
    let phone = h.phone;
    // What the caller gets (agents' phones may be offered the call).
    let send = |h: &mut Harness, text: &str| -> Vec<rsip::SipMessage> {
        let out = h.send_from(phone, text);
        out.into_iter()
            .filter(|(p, _)| *p == phone)
            .map(|(_, m)| m)
            .collect()
    };
    let inv = invite("1560", "call-rep", "z9hG4bKrep1");
    let first = send(&mut h, &inv);
    assert_eq!(codes(&first), vec![200]);
    let tag = to_tag(&first[0]);
    assert!(send(&mut h, &inv).is_empty(), "absorbed in Accepted");
    let ack = in_dialog("ACK", "1560", "call-rep", &tag, 1, "z9hG4bKrepa");
    assert!(send(&mut h, &ack).is_empty());
    assert!(
        send(&mut h, &ack).is_empty(),
        "a repeated ACK changes nothing"
    );
    // The ACK stopped the 200's retransmissions; the repeat restarted nothing.
    let later = h.advance_all(Duration::from_millis(4000));
    assert!(later.iter().all(|(p, _)| *p != phone), "{later:?}");
    assert_eq!(h.ep.active_calls(), 1);
    let bye = in_dialog("BYE", "1560", "call-rep", &tag, 2, "z9hG4bKrepb");
    assert_eq!(codes(&send(&mut h, &bye)), vec![200]);
    assert_eq!(h.ep.active_calls(), 0);
    // The BYE's transaction answers its retransmission with the same 200.
    let again = send(&mut h, &bye);
    assert_eq!(codes(&again), vec![200]);
    assert_eq!(to_tag(&again[0]), tag);
    assert_eq!(requests_in(&mut h, "INVITE"), 2);
    assert_eq!(requests_in(&mut h, "ACK"), 2);
    assert_eq!(requests_in(&mut h, "BYE"), 2);
    // Not the same bytes: a new request, parsed (481, the call is gone).
    let other = bye
        .replace("CSeq: 2 BYE", "CSeq: 3 BYE")
        .replace("repb", "repc");
    assert_eq!(codes(&send(&mut h, &other)), vec![481]);
}

#[test]
fn ivr_hangup_node_answers_then_byes() {
    let mut h = Harness::new();
    let out = h.send(&invite("1600", "call4", "z9hG4bKi4"));
    assert_eq!(codes(&out), vec![200]);
    let tag = to_tag(&out[0]);
    let out = h.send(&in_dialog("ACK", "1600", "call4", &tag, 1, "z9hG4bKa4"));
    assert_eq!(out.len(), 1);
    let rsip::SipMessage::Request(bye) = &out[0] else {
        panic!("expected BYE")
    };
    assert_eq!(bye.method, rsip::Method::Bye);
    // The caller answers the BYE: the call is gone.
    let ok = ok_for_request(&bye.to_string());
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
        assert_eq!(codes(&out), vec![200]);
    }
    let out = h.send(&invite("1500", "m3", "z9hG4bKm3"));
    assert_eq!(codes(&out), vec![503]);
    assert!(out[0].to_string().contains("Retry-After: "));
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
        vec![503]
    );
}

#[test]
fn garbage_is_counted_not_answered() {
    let mut h = Harness::new();
    h.ep.handle_inbound(b"\x00\x01garbage", h.phone, h.now);
    assert!(h.drain().is_empty());
    assert_eq!(h.metrics().sip_parse_errors.get(), 1);
}

#[test]
fn crlf_keep_alives_are_not_parse_errors() {
    let mut h = Harness::new();
    for ping in [&b"\r\n\r\n"[..], b"\r\n", b"\r\n\r\n\r\n\r\n"] {
        h.ep.handle_inbound(ping, h.phone, h.now);
    }
    assert!(h.drain().is_empty());
    assert_eq!(h.metrics().sip_parse_errors.get(), 0);
}

fn agent(port: u16) -> Peer {
    Peer::udp(SocketAddr::from(([127, 0, 0, 1], port)))
}

fn requests_to(out: &[(Peer, rsip::SipMessage)], to: Peer) -> Vec<rsip::Request> {
    out.iter()
        .filter(|(p, _)| *p == to)
        .filter_map(|(_, m)| match m {
            rsip::SipMessage::Request(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The agent phone's answer to `req` (an INVITE or BYE it received).
fn answer(req: &rsip::Request, code: u16, tag: &str, body: &str) -> String {
    let text = req.to_string();
    let line = |name: &str| {
        text.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .unwrap()
            .to_string()
    };
    let to = line("To");
    let to = if to.contains("tag=") {
        to
    } else {
        format!("{to};tag={tag}")
    };
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\n".into()
    };
    format!(
        "SIP/2.0 {code} X\n{}\n{}\n{to}\n{}\n{}\nContact: <sip:agent@127.0.0.1:5080>\n{ctype}Content-Length: {}\n\n{body}",
        line("Via"),
        line("From"),
        line("Call-ID"),
        line("CSeq"),
        body.len()
    )
}

const AGENT_SDP: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// The caller's ACK for the 200 of its INVITE to 1500 (`queued_caller`).
fn queued_ack(call_id: &str, to_tag: &str) -> String {
    in_dialog(
        "ACK",
        "1500",
        call_id,
        to_tag,
        1,
        &format!("z9hG4bKa{call_id}"),
    )
}

/// A caller in queue `support` (number 1500), answered and ACKed; returns
/// the caller leg's To tag and what the endpoint sent on the ACK.
fn queued_caller(h: &mut Harness, call_id: &str) -> (String, Vec<(Peer, rsip::SipMessage)>) {
    let out = h.send(&invite("1500", call_id, &format!("z9hG4bK{call_id}")));
    let tag = to_tag(&out[0]);
    let wire = queued_ack(call_id, &tag).replace('\n', "\r\n");
    h.ep.handle_inbound(wire.as_bytes(), h.phone, h.now);
    (tag, h.drain_all())
}

#[test]
fn queued_call_is_offered_to_an_agent_with_context_headers() {
    let mut h = Harness::new();
    let (_, out) = queued_caller(&mut h, "q1");
    let invites = requests_to(&out, agent(5080));
    assert_eq!(invites.len(), 1, "{out:?}");
    let inv = invites[0].to_string();
    assert!(
        inv.starts_with("INVITE sip:2001@127.0.0.1:5080 SIP/2.0"),
        "{inv}"
    );
    assert!(
        inv.contains("From: \"caller\" <sip:caller@test.local>;tag="),
        "{inv}"
    );
    assert!(inv.contains("X-Sipacd-Queue: support"), "{inv}");
    assert!(inv.contains("X-Sipacd-Wait: 0"), "{inv}");
    assert!(
        inv.contains("m=audio 2000"),
        "agent leg gets its own port: {inv}"
    );
    assert!(
        requests_to(&out, agent(5081)).is_empty(),
        "one agent at a time"
    );
}

#[test]
fn agent_answer_is_acked_and_caller_bye_hangs_up_the_agent() {
    let mut h = Harness::new();
    let (tag, out) = queued_caller(&mut h, "q2");
    let inv = requests_to(&out, agent(5080)).remove(0);
    let out = h.send_from(agent(5080), &answer(&inv, 200, "ag1", AGENT_SDP));
    let acks = requests_to(&out, agent(5080));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method, rsip::Method::Ack);
    assert!(acks[0].to_string().contains("tag=ag1"));
    // The caller hangs up: 200 to the caller, BYE to the agent.
    let out = h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "q2", &tag, 2, "z9hG4bKbq2"),
    );
    let to_agent = requests_to(&out, agent(5080));
    assert_eq!(to_agent.len(), 1);
    assert_eq!(to_agent[0].method, rsip::Method::Bye);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn agent_bye_hangs_up_the_caller() {
    let mut h = Harness::new();
    let (_, out) = queued_caller(&mut h, "q3");
    let inv = requests_to(&out, agent(5080)).remove(0);
    let out = h.send_from(agent(5080), &answer(&inv, 200, "ag3", AGENT_SDP));
    let ack = requests_to(&out, agent(5080)).remove(0).to_string();
    // The agent's BYE, in the agent leg's dialog.
    let from_line = ack.lines().find(|l| l.starts_with("From:")).unwrap();
    let to_line = ack.lines().find(|l| l.starts_with("To:")).unwrap();
    let cid = ack.lines().find(|l| l.starts_with("Call-ID:")).unwrap();
    let bye = format!(
        "BYE sip:sipacd@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKagbye\nMax-Forwards: 70\n{}\n{}\n{cid}\nCSeq: 2 BYE\nContent-Length: 0\n\n",
        to_line.replacen("To:", "From:", 1),
        from_line.replacen("From:", "To:", 1),
    );
    let out = h.send_from(agent(5080), &bye);
    let codes_to_agent: Vec<u16> = out
        .iter()
        .filter(|(p, _)| *p == agent(5080))
        .filter_map(|(_, m)| match m {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            _ => None,
        })
        .collect();
    assert_eq!(codes_to_agent, vec![200]);
    let to_caller = requests_to(&out, h.phone);
    assert_eq!(to_caller.len(), 1);
    assert_eq!(to_caller[0].method, rsip::Method::Bye);
}

#[test]
fn busy_agent_is_skipped_and_the_next_one_offered() {
    let mut h = Harness::new();
    let (_, out) = queued_caller(&mut h, "q4");
    let inv = requests_to(&out, agent(5080)).remove(0);
    let out = h.send_from(agent(5080), &answer(&inv, 486, "ag4", ""));
    // The transaction layer ACKs the 486; the call goes to the other agent.
    assert_eq!(requests_to(&out, agent(5080))[0].method, rsip::Method::Ack);
    let next = requests_to(&out, agent(5081));
    assert_eq!(next.len(), 1, "{out:?}");
    assert!(next[0]
        .to_string()
        .starts_with("INVITE sip:2002@127.0.0.1:5081"));
}

#[test]
fn ring_no_answer_cancels_and_reoffers() {
    let mut h = Harness::new();
    let (_, out) = queued_caller(&mut h, "q5");
    assert_eq!(requests_to(&out, agent(5080)).len(), 1);
    let out = h.advance_all(Duration::from_secs(9));
    assert!(requests_to(&out, agent(5080))
        .iter()
        .all(|r| r.method == rsip::Method::Invite));
    let out = h.advance_all(Duration::from_secs(1));
    let cancels: Vec<_> = requests_to(&out, agent(5080))
        .into_iter()
        .filter(|r| r.method == rsip::Method::Cancel)
        .collect();
    assert_eq!(cancels.len(), 1, "{out:?}");
    assert_eq!(
        requests_to(&out, agent(5081)).len(),
        1,
        "re-offered to the next agent"
    );
}

#[test]
fn caller_hanging_up_while_agent_rings_cancels_the_agent() {
    let mut h = Harness::new();
    let (tag, _) = queued_caller(&mut h, "q6");
    let out = h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "q6", &tag, 2, "z9hG4bKbq6"),
    );
    let to_agent = requests_to(&out, agent(5080));
    assert_eq!(to_agent.len(), 1);
    assert_eq!(to_agent[0].method, rsip::Method::Cancel);
}

#[test]
fn agent_without_the_skill_is_never_offered() {
    let mut h = Harness::new();
    // A caller of a sales queue: neither agent has `sales`.
    let mut cfg = (*h.ep.config()).clone();
    cfg.numbers.push(crate::config::NumberRoute {
        number: "1700".into(),
        to: crate::config::Target::Queue("sales".into()),
        ring_s: 0,
        media_encryption: Default::default(),
    });
    h.ep.apply_config(Arc::new(cfg), h.now);
    let out = h.send(&invite("1700", "q7", "z9hG4bKq7"));
    let tag = to_tag(&out[0]);
    let out = h.send_from(
        h.phone,
        &in_dialog("ACK", "1700", "q7", &tag, 1, "z9hG4bKaq7"),
    );
    assert!(out.is_empty(), "{out:?}");
    assert!(h
        .advance_all(Duration::from_secs(2))
        .iter()
        .all(|(p, _)| *p == h.phone));
}

fn media_cmds(h: &mut Harness) -> Vec<super::MediaCommand> {
    std::iter::from_fn(|| h.ep.poll_media()).collect()
}

#[test]
fn answer_opens_the_caller_leg_and_bye_closes_it() {
    use super::MediaCommand;
    let mut h = Harness::new();
    let out = h.send(&invite("1600", "m1", "z9hG4bKm1"));
    let tag = to_tag(&out[0]);
    let cmds = media_cmds(&mut h);
    let [MediaCommand::Open {
        leg,
        port,
        remote,
        codec,
        telephone_event,
    }] = cmds.as_slice()
    else {
        panic!("expected one Open, got {cmds:?}");
    };
    assert_eq!(*port, 20000);
    assert_eq!(*remote, Some("127.0.0.1:6000".parse().unwrap()));
    assert_eq!((*codec, *telephone_event), (0, Some(101)));
    let leg = *leg;
    h.send(&in_dialog("ACK", "1600", "m1", &tag, 1, "z9hG4bKam1"));
    // We hang up; the caller never answers our BYE: at its timeout the
    // call ends and its leg is closed.
    h.ep.shutdown(h.now);
    h.drain_all();
    let _ = h.advance_all(Duration::from_secs(40));
    let cmds = media_cmds(&mut h);
    assert!(cmds.contains(&MediaCommand::Close { leg }), "{cmds:?}");
}

#[test]
fn agent_answer_opens_the_agent_leg_and_bridges_it() {
    use super::MediaCommand;
    let mut h = Harness::new();
    let (_, out) = queued_caller(&mut h, "m2");
    let caller_leg = match media_cmds(&mut h).first() {
        Some(MediaCommand::Open { leg, .. }) => *leg,
        other => panic!("expected Open, got {other:?}"),
    };
    let inv = requests_to(&out, agent(5080)).remove(0);
    h.send_from(agent(5080), &answer(&inv, 200, "ag", AGENT_SDP));
    let cmds = media_cmds(&mut h);
    let agent_leg = match cmds.as_slice() {
        [MediaCommand::Open {
            leg, remote, codec, ..
        }, MediaCommand::Bridge { a, b }] => {
            assert_eq!(*remote, Some("127.0.0.1:7000".parse().unwrap()));
            assert_eq!(*codec, 8, "the agent answered PCMA");
            assert_eq!((*a, *b), (caller_leg, *leg));
            *leg
        }
        other => panic!("expected Open + Bridge, got {other:?}"),
    };
    assert_ne!(agent_leg, caller_leg);
}

#[test]
fn rtp_timeout_hangs_the_call_up() {
    use super::{MediaCommand, MediaEvent};
    let mut h = Harness::new();
    let (_, _) = queued_caller(&mut h, "m3");
    let leg = match media_cmds(&mut h).first() {
        Some(MediaCommand::Open { leg, .. }) => *leg,
        other => panic!("expected Open, got {other:?}"),
    };
    h.ep.handle_media_event(MediaEvent::Timeout { leg }, h.now);
    let out = h.drain_all();
    let byes: Vec<_> = requests_to(&out, h.phone)
        .into_iter()
        .filter(|r| r.method == rsip::Method::Bye)
        .collect();
    assert_eq!(byes.len(), 1, "{out:?}");
    assert!(
        byes[0]
            .to_string()
            .contains("Reason: SIP;cause=408;text=\"RTP timeout\""),
        "{}",
        byes[0]
    );
}

#[test]
fn static_contacts_are_qualified_and_an_unreachable_agent_is_skipped() {
    let mut h = Harness::new();
    h.now.mono += Duration::from_secs(1);
    h.ep.handle_timeout(h.now);
    let out = h.drain_raw();
    let pings: Vec<_> = out
        .iter()
        .filter(
            |(_, m)| matches!(m, rsip::SipMessage::Request(r) if r.method == rsip::Method::Options),
        )
        .map(|(p, _)| *p)
        .collect();
    assert!(
        pings.contains(&agent(5080)) && pings.contains(&agent(5081)),
        "{out:?}"
    );
    // Agent 2002 answers; 2001 never does (timer F, 32 s).
    let ping = requests_to(&out, agent(5081)).remove(0);
    h.send_from(agent(5081), &answer(&ping, 200, "q", ""));
    h.advance_all(Duration::from_secs(32));
    // A caller now goes to 2002, the reachable one, though 2001 sorts first.
    let (_, out) = queued_caller(&mut h, "qual1");
    assert!(
        requests_to(&out, agent(5080)).is_empty(),
        "unreachable agent offered"
    );
    assert_eq!(requests_to(&out, agent(5081)).len(), 1, "{out:?}");
}

#[test]
fn response_with_a_foreign_via_is_dropped() {
    let mut h = Harness::new();
    let out = h.send(
        "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\nCall-ID: foreign\nCSeq: 1 BYE\nContent-Length: 0\n\n",
    );
    assert!(out.is_empty());
    let dropped = h
        .metrics()
        .sip_dropped
        .get_or_create(&crate::metrics::ReasonLabel {
            reason: "foreign_via",
        })
        .get();
    assert_eq!(dropped, 1);
}

#[test]
fn ivr_menu_collect_and_queue_reach_the_agent_with_variables() {
    use super::{MediaCommand, MediaEvent};
    let mut h = Harness::new();
    let out = h.send(&invite("1550", "ivr1", "z9hG4bKivr1"));
    let tag = to_tag(&out[0]);
    h.send_from(
        h.phone,
        &in_dialog("ACK", "1550", "ivr1", &tag, 1, "z9hG4bKaivr1"),
    );
    let cmds = media_cmds(&mut h);
    let leg = match cmds.as_slice() {
        [MediaCommand::Open { leg, .. }, MediaCommand::Play {
            prompts,
            looped: false,
            ..
        }] => {
            assert!(prompts[0].ends_with("menu.wav"), "{prompts:?}");
            *leg
        }
        other => panic!("expected Open + Play(menu), got {other:?}"),
    };
    h.ep.handle_media_event(MediaEvent::PromptEnded { leg }, h.now);
    for d in ['1', '4', '2', '4', '2'] {
        h.ep.handle_media_event(MediaEvent::Digit { leg, digit: d }, h.now);
    }
    let out = h.drain_all();
    let inv = requests_to(&out, agent(5080));
    assert_eq!(inv.len(), 1, "{out:?}");
    let text = inv[0].to_string();
    assert!(text.contains("X-Sipacd-Queue: support"), "{text}");
    assert!(text.contains("X-Sipacd-Var-account: 4242"), "{text}");
}

#[test]
fn ivr_menu_timeout_goes_to_on_fail() {
    use super::{MediaCommand, MediaEvent};
    let mut h = Harness::new();
    let out = h.send(&invite("1550", "ivr2", "z9hG4bKivr2"));
    let tag = to_tag(&out[0]);
    h.send_from(
        h.phone,
        &in_dialog("ACK", "1550", "ivr2", &tag, 1, "z9hG4bKaivr2"),
    );
    let Some(MediaCommand::Open { leg, .. }) = media_cmds(&mut h).first().cloned() else {
        panic!("no Open");
    };
    h.ep.handle_media_event(MediaEvent::PromptEnded { leg }, h.now);
    assert!(h.advance_all(Duration::from_secs(2)).is_empty());
    // timeout_s = 3 and no retries: on_fail is the hangup node.
    let out = h.advance_all(Duration::from_secs(1));
    let byes = requests_to(&out, h.phone);
    assert_eq!(byes.len(), 1, "{out:?}");
    assert_eq!(byes[0].method, rsip::Method::Bye);
}

#[test]
fn queued_callers_hear_their_position() {
    use super::MediaCommand;
    let mut h = Harness::new();
    for cid in ["pos1", "pos2"] {
        let out = h.send(&invite("1560", cid, &format!("z9hG4bK{cid}")));
        let tag = to_tag(&out[0]);
        h.send_from(
            h.phone,
            &in_dialog("ACK", "1560", cid, &tag, 1, &format!("z9hG4bKa{cid}")),
        );
        h.advance_all(Duration::from_millis(100));
    }
    media_cmds(&mut h);
    h.advance_all(Duration::from_secs(2));
    let plays: Vec<Vec<String>> = media_cmds(&mut h)
        .into_iter()
        .filter_map(|c| match c {
            MediaCommand::Play {
                prompts,
                looped: false,
                ..
            } => Some(
                prompts
                    .iter()
                    .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert!(
        plays.contains(&vec![
            "you-are-number.wav".into(),
            "1.wav".into(),
            "in-the-queue.wav".into()
        ]),
        "{plays:?}"
    );
    assert!(
        plays.contains(&vec![
            "you-are-number.wav".into(),
            "2.wav".into(),
            "in-the-queue.wav".into()
        ]),
        "{plays:?}"
    );
}

#[test]
fn hold_by_reinvite_is_mirrored_and_inactive_stops_the_rtp_clock() {
    use super::MediaCommand;
    let mut h = Harness::new();
    let out = h.send(&invite("1600", "hold1", "z9hG4bKh1"));
    let tag = to_tag(&out[0]);
    media_cmds(&mut h);
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=inactive\r\n";
    let reinvite = format!(
        "INVITE sip:1600@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKh2\nMax-Forwards: 70\nFrom: <sip:caller@127.0.0.1>;tag=c1\nTo: <sip:1600@127.0.0.1>;tag={tag}\nCall-ID: hold1\nCSeq: 2 INVITE\nContact: <sip:caller@127.0.0.1:5070>\nContent-Type: application/sdp\nContent-Length: {}\n\n{sdp}",
        sdp.len()
    );
    let out = h.send(&reinvite);
    let ok = out
        .iter()
        .find(|m| codes(std::slice::from_ref(m)) == vec![200])
        .expect("200");
    assert!(ok.to_string().contains("a=inactive"), "{ok}");
    let cmds = media_cmds(&mut h);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, MediaCommand::Update { sending: false, .. })),
        "{cmds:?}"
    );
}

#[test]
fn overflow_on_max_wait_is_recorded_as_overflowed() {
    let mut h = Harness::new();
    let out = h.send(&invite("1570", "ov1", "z9hG4bKov1"));
    let tag = to_tag(&out[0]);
    h.send_from(
        h.phone,
        &in_dialog("ACK", "1570", "ov1", &tag, 1, "z9hG4bKaov1"),
    );
    let out = h.advance_all(Duration::from_millis(1100));
    let bye = requests_to(&out, h.phone);
    assert_eq!(bye.len(), 1, "{out:?}");
    assert_eq!(bye[0].method, rsip::Method::Bye);
    // Our BYE times out unanswered (timer F): the call ends, its record goes out.
    h.advance_all(Duration::from_secs(33));
    let recs: Vec<_> = h.records().into_iter().collect();
    let last = recs.iter().rev().find(|r| r.id == "ov1").expect("a record");
    assert_eq!(
        last.disposition,
        crate::cdr::Disposition::Overflowed,
        "{last:?}"
    );
    assert_eq!(last.queue.as_deref(), Some("ov"));
}

/// With RTP ports exhausted, an offer to an agent must not bounce back into
/// the router (which would re-offer at once, recursively): the caller is
/// hung up with a Reason instead.
#[test]
fn no_ports_for_the_agent_leg_hangs_the_caller_up() {
    let mut h = Harness::new();
    // Three port pairs: caller 1, agent leg 1, caller 2; none for agent leg 2.
    let (_, out) = queued_caller(&mut h, "np1");
    assert_eq!(requests_to(&out, agent(5080)).len(), 1);
    let (_, out) = queued_caller(&mut h, "np2");
    assert!(requests_to(&out, agent(5081)).is_empty(), "{out:?}");
    let byes = requests_to(&out, h.phone);
    assert_eq!(byes.len(), 1, "{out:?}");
    assert!(
        byes[0].to_string().contains("No RTP ports left"),
        "{}",
        byes[0]
    );
}

#[test]
fn agent_hangup_is_logged_completeagent_and_counted_answered() {
    let mut h = Harness::new();
    let (_, out) = queued_caller(&mut h, "ql1");
    let inv = requests_to(&out, agent(5080)).remove(0);
    let out = h.send_from(agent(5080), &answer(&inv, 200, "agq", AGENT_SDP));
    let ack = requests_to(&out, agent(5080)).remove(0).to_string();
    let header = |name: &str| ack.lines().find(|l| l.starts_with(name)).unwrap();
    let bye = format!(
        "BYE sip:sipacd@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKagqbye\nMax-Forwards: 70\n{}\n{}\n{}\nCSeq: 2 BYE\nContent-Length: 0\n\n",
        header("To:").replacen("To:", "From:", 1),
        header("From:").replacen("From:", "To:", 1),
        header("Call-ID:"),
    );
    let out = h.send_from(agent(5080), &bye);
    let bye_to_caller = requests_to(&out, h.phone).remove(0);
    // The caller's 200 for sipacd's BYE ends the call.
    h.send_from(h.phone, &answer(&bye_to_caller, 200, "x", ""));
    assert_eq!(h.ep.active_calls(), 0);

    let lines: Vec<String> = h.queue_log().iter().map(|l| l.format()).collect();
    let events: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split('|').skip(1).collect::<Vec<_>>())
        .filter(|f| f[0] == "ql1")
        .map(|f| f[1..4].to_vec())
        .collect();
    assert_eq!(
        events,
        vec![
            vec!["support", "NONE", "ENTERQUEUE"],
            vec!["support", "2001", "CONNECT"],
            vec!["support", "2001", "COMPLETEAGENT"],
        ],
        "{lines:#?}"
    );
    let m = h.metrics();
    let support = crate::metrics::QueueLabel {
        queue: "support".into(),
    };
    assert_eq!(m.queue_offered.get_or_create(&support).get(), 1);
    assert_eq!(m.queue_answered.get_or_create(&support).get(), 1);
    assert_eq!(m.queue_abandoned.get_or_create(&support).get(), 0);
    let text = m.render(&[], &[], false);
    let routed = text
        .lines()
        .find_map(|l| l.strip_prefix("sipacd_routing_decision_seconds_count "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(routed.is_some_and(|n| n >= 1), "{text}");
}
