//! The IVR with real media against the running daemon: the menu prompt is
//! heard as paced RTP, and a menu choice made by each of the three DTMF
//! methods (RFC 4733 telephone-events, SIP INFO, in-band tones in G.711)
//! sends the caller to the queue, whose agent then gets the call; digits
//! collected by the IVR reach the agent as screen-pop headers.

mod common;

use common::sip::{header, method, status_code};
use common::{ConfigSpec, Daemon};
use sipacd::media::g711::linear_to_ulaw;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

struct Call {
    sip: UdpSocket,
    sip_port: u16,
    rtp: UdpSocket,
    daemon_port: u16,
    /// sipacd's RTP port for this call.
    leg_port: u16,
    to: String,
    call_id: String,
}

fn sock() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let p = s.local_addr().unwrap().port();
    (s, p)
}

fn expect(s: &UdpSocket, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if pred(&m) {
                return m;
            }
        }
    }
    panic!("no {what} within {WAIT:?}");
}

/// A daemon whose number 1550 runs a menu: 1 → queue `ivrq`, served by
/// a static-contact agent on `agent_port`.
fn daemon(agent_port: u16) -> Daemon {
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        r#"
[queues.ivrq]

[agents.4001]
contact = "sip:4001@127.0.0.1:{agent_port}"

[[numbers]]
number = "1550"
to = "ivr:menu"

[ivr.menu]
start = "choose"

[ivr.menu.nodes.choose]
type = "menu"
prompt = "moh.wav"
timeout_s = 5
retries = 1
options = {{ "1" = "queue:ivrq" }}
on_fail = "ivr:bye"
"#
    );
    Daemon::start_with(spec)
}

fn call(d: &Daemon, number: &str) -> Call {
    let (sip, sip_port) = sock();
    let (rtp, rtp_port) = sock();
    let port = d.sip_port();
    let call_id = format!("ivr-media-{sip_port}");
    let body = format!("v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n");
    let invite = format!(
        "INVITE sip:{number}@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bKim{sip_port};rport\r\nMax-Forwards: 70\r\nFrom: <sip:555@127.0.0.1>;tag=im1\r\nTo: <sip:{number}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:{sip_port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    sip.send_to(invite.as_bytes(), ("127.0.0.1", port)).unwrap();
    let ok = expect(&sip, "200", |m| status_code(m) == Some(200));
    let m = ok.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    let leg_port = m.split(' ').nth(1).unwrap().parse().unwrap();
    let to = header(&ok, "To", None).unwrap().to_string();
    let c = Call {
        sip,
        sip_port,
        rtp,
        daemon_port: port,
        leg_port,
        to,
        call_id,
    };
    c.send_in_dialog("ACK", 1, "", "");
    c
}

impl Call {
    fn send_in_dialog(&self, m: &str, cseq: u32, ctype: &str, body: &str) {
        let (port, sp) = (self.daemon_port, self.sip_port);
        let ct = if ctype.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ctype}\r\n")
        };
        let msg = format!(
            "{m} sip:1550@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bK{m}{cseq}{sp};rport\r\nMax-Forwards: 70\r\nFrom: <sip:555@127.0.0.1>;tag=im1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {m}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            self.to,
            self.call_id,
            body.len()
        );
        self.sip
            .send_to(msg.as_bytes(), ("127.0.0.1", port))
            .unwrap();
    }

    fn send_rtp(&self, pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0xAB, 0xCD, 0xEF, 0x01]);
        p.extend_from_slice(payload);
        self.rtp.send_to(&p, ("127.0.0.1", self.leg_port)).unwrap();
    }
}

fn agent_gets_the_call(agent: &UdpSocket) {
    let inv = expect(agent, "INVITE to the agent", |m| {
        method(m) == Some("INVITE")
    });
    assert_eq!(header(&inv, "X-Sipacd-Queue", None), Some("ivrq"));
}

fn agent_socket() -> (UdpSocket, u16) {
    sock()
}

#[test]
fn menu_prompt_is_heard_as_paced_rtp() {
    let (_agent, agent_port) = agent_socket();
    let d = daemon(agent_port);
    let c = call(&d, "1550");
    let mut buf = [0u8; 2048];
    let mut seqs = Vec::new();
    let start = Instant::now();
    while seqs.len() < 25 && start.elapsed() < WAIT {
        if let Ok((n, _)) = c.rtp.recv_from(&mut buf) {
            assert!(n >= 12 + 160, "a 20 ms G.711 frame");
            assert_eq!(buf[1] & 0x7f, 0, "PCMU, as negotiated");
            seqs.push(u16::from_be_bytes([buf[2], buf[3]]));
        }
    }
    let took = start.elapsed();
    assert_eq!(seqs.len(), 25, "the prompt was not heard");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    // 25 frames of 20 ms: paced, not a burst.
    assert!(took >= Duration::from_millis(350), "25 frames in {took:?}");
}

#[test]
fn menu_choice_by_rfc4733_event() {
    let (agent, agent_port) = agent_socket();
    let d = daemon(agent_port);
    let c = call(&d, "1550");
    // Digit 1: event 1, a start packet and three end packets (E bit).
    for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
        let dur = 160u16 * (i as u16 + 1);
        let mut ev = vec![1u8, if end { 0x80 | 10 } else { 10 }];
        ev.extend_from_slice(&dur.to_be_bytes());
        c.send_rtp(101, i == 0, 100 + i as u16, 8000, &ev);
        std::thread::sleep(Duration::from_millis(20));
    }
    agent_gets_the_call(&agent);
}

#[test]
fn menu_choice_by_sip_info() {
    let (agent, agent_port) = agent_socket();
    let d = daemon(agent_port);
    let c = call(&d, "1550");
    c.send_in_dialog(
        "INFO",
        2,
        "application/dtmf-relay",
        "Signal=1\r\nDuration=160\r\n",
    );
    expect(&c.sip, "200 to INFO", |m| {
        status_code(m) == Some(200) && m.contains("INFO")
    });
    agent_gets_the_call(&agent);
}

#[test]
fn menu_choice_by_inband_tone() {
    let (agent, agent_port) = agent_socket();
    let d = daemon(agent_port);
    let c = call(&d, "1550");
    // Digit 1 = 697 Hz + 1209 Hz, 120 ms, then 100 ms of silence.
    let mut n = 0u32;
    for frame in 0..11u16 {
        let payload: Vec<u8> = (0..160)
            .map(|_| {
                let t = n as f64 / 8000.0;
                n += 1;
                let v = if frame < 6 {
                    8000.0
                        * ((2.0 * std::f64::consts::PI * 697.0 * t).sin()
                            + (2.0 * std::f64::consts::PI * 1209.0 * t).sin())
                } else {
                    0.0
                };
                linear_to_ulaw(v as i16)
            })
            .collect();
        c.send_rtp(0, frame == 0, 200 + frame, 160 * u32::from(frame), &payload);
        std::thread::sleep(Duration::from_millis(20));
    }
    agent_gets_the_call(&agent);
}

/// Screen pop: digits collected by the IVR (here sent as SIP INFO) reach
/// the agent's phone as `X-Sipacd-Var-NAME` headers of the offer, one per
/// variable, along with the queue.
#[test]
fn collected_digits_reach_the_agent_as_screen_pop_headers() {
    let (agent, agent_port) = agent_socket();
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        r##"
[queues.ivrq]

[agents.4001]
contact = "sip:4001@127.0.0.1:{agent_port}"

[[numbers]]
number = "1550"
to = "ivr:pop"

[ivr.pop]
start = "account"

[ivr.pop.nodes.account]
type = "collect"
prompt = "moh.wav"
variable = "account"
max_digits = 4
timeout_s = 5
next = "pin"

[ivr.pop.nodes.pin]
type = "collect"
variable = "pin"
max_digits = 6
terminator = "#"
timeout_s = 5
next = "queue:ivrq"
"##
    );
    let d = Daemon::start_with(spec);
    let c = call(&d, "1550");
    let mut cseq = 1;
    for digit in "4711".chars().chain("93#".chars()) {
        cseq += 1;
        c.send_in_dialog(
            "INFO",
            cseq,
            "application/dtmf-relay",
            &format!("Signal={digit}\r\nDuration=160\r\n"),
        );
        expect(&c.sip, "200 to INFO", |m| {
            status_code(m) == Some(200) && m.contains(&format!("{cseq} INFO"))
        });
    }
    let inv = expect(&agent, "INVITE to the agent", |m| {
        method(m) == Some("INVITE")
    });
    assert_eq!(header(&inv, "X-Sipacd-Queue", None), Some("ivrq"));
    assert_eq!(header(&inv, "X-Sipacd-Var-account", None), Some("4711"));
    assert_eq!(header(&inv, "X-Sipacd-Var-pin", None), Some("93"));
    assert!(header(&inv, "X-Sipacd-Wait", None).is_some(), "{inv}");
}
