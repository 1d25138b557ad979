//! Agents on TCP connections that close, against the running daemon
//! (RFC 5626 §5.3). An outbound flow that closes logs its agent out at
//! once (the admin API says so before any call is offered) and a
//! REGISTER on a new connection brings it back; during a call, the
//! caller's BYE still ends the call cleanly and nothing is sent over a new
//! connection to the phone. A plain TCP phone without outbound is
//! reconnected to at its Contact for the BYE, as Asterisk and Kamailio do.

mod common;

use common::http::get_json;
use common::phone::{sdp, Caller};
use common::sip::{header, method, status_code, token};
use common::tls::response;
use common::{wait_until, Daemon, AGENT_PASSWORD, DOMAIN};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
const INSTANCE: &str = "5b3c1d2e-7a8f-4e6d-9c0b-a1b2c3d4e5f6";

/// SIP messages read off one TCP stream, one at a time.
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    fn new(s: TcpStream) -> Wire {
        Wire { s, buf: Vec::new() }
    }

    fn send(&mut self, text: &str) {
        self.s.write_all(text.as_bytes()).unwrap();
    }

    /// The next whole message (head and Content-Length body), within `t`.
    fn next_message(&mut self, t: Duration) -> Option<String> {
        let deadline = Instant::now() + t;
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            let start = text.len() - text.trim_start_matches(['\r', '\n']).len();
            if let Some(end) = text[start..].find("\r\n\r\n").map(|e| start + e + 4) {
                let len = header(&text[start..end], "Content-Length", Some("l"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if text.len() >= end + len {
                    let msg = text[start..end + len].to_string();
                    self.buf.drain(..end + len);
                    return Some(msg);
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// The next message `want` accepts, within `t`.
    fn next(&mut self, t: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + t;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let m = self.next_message(left)?;
            if want(&m) {
                return Some(m);
            }
        }
        None
    }

    /// REGISTER with digest for 1001; the final answer.
    fn register(&mut self, contact: &str, extra: &str) -> String {
        let (local, cid, tag) = (self.s.local_addr().unwrap(), token(), token());
        let register = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
                 Via: SIP/2.0/TCP {local};branch=z9hG4bK{br};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:1001@{DOMAIN}>;tag={tag}\r\n\
                 To: <sip:1001@{DOMAIN}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: {contact}\r\nExpires: 300\r\n{extra}{auth}Content-Length: 0\r\n\r\n",
                br = token(),
            )
        };
        let final_for = |cseq: u32| {
            let want = format!("{cseq} REGISTER");
            move |m: &str| {
                header(m, "CSeq", None) == Some(want.as_str()) && status_code(m) >= Some(200)
            }
        };
        self.send(&register(1, ""));
        let challenge = self.next(T, final_for(1)).expect("an answer to REGISTER");
        assert_eq!(status_code(&challenge), Some(401), "{challenge}");
        let auth = common::sip::digest_authorization(
            &challenge,
            "1001",
            AGENT_PASSWORD,
            &format!("sip:{DOMAIN}"),
        );
        self.send(&register(2, &auth));
        self.next(T, final_for(2)).expect("an answer to REGISTER")
    }

    /// Takes the offer: 200 with `contact` and an SDP, then its ACK.
    fn answer_offer(&mut self, contact: &str, rtp: &std::net::UdpSocket) -> String {
        let invite = self
            .next(T, |m| method(m) == Some("INVITE"))
            .expect("an offer down the agent's connection");
        let tag = token();
        let body = sdp(rtp.local_addr().unwrap().port());
        self.send(&response(
            &invite,
            200,
            "OK",
            &tag,
            Some(contact),
            Some(&body),
        ));
        let ack = self.next(T, |m| method(m) == Some("ACK"));
        assert!(ack.is_some(), "no ACK for the agent's 200");
        tag
    }
}

fn connect(d: &Daemon) -> Wire {
    Wire::new(TcpStream::connect(("127.0.0.1", d.sip_port())).unwrap())
}

const OUTBOUND: &str = "Supported: outbound\r\n";

/// An outbound-flow Contact (RFC 5626: `;ob`, reg-id, instance) at `port`.
fn flow_contact(port: u16) -> String {
    format!(
        "<sip:1001@127.0.0.1:{port};transport=tcp;ob>;reg-id=1;+sip.instance=\"<urn:uuid:{INSTANCE}>\""
    )
}

/// 1001 registers `flow` on a new connection and is available.
fn register_flow(d: &Daemon, flow: &str) -> Wire {
    let mut w = connect(d);
    let ok = w.register(flow, OUTBOUND);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    wait_until("1001 available", T, || {
        agent_1001(d)["state"] == "available"
    });
    w
}

/// Agent 1001 as `GET /api/v1/agents` shows it.
fn agent_1001(d: &Daemon) -> serde_json::Value {
    let all = get_json(&format!("{}/api/v1/agents", d.admin_url()));
    all.as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "1001").cloned())
        .unwrap_or_default()
}

/// The final record of call `cid` (`GET /api/v1/cdr`).
fn final_record(d: &Daemon, cid: &str) -> serde_json::Value {
    let mut rec = serde_json::Value::Null;
    wait_until("the call's final record", T, || {
        let all = get_json(&format!("{}/api/v1/cdr", d.admin_url()));
        rec = all
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == cid).cloned())
            .unwrap_or_default();
        rec["disposition"].is_string() && rec["disposition"] != "in_progress"
    });
    rec
}

#[test]
fn a_closed_outbound_flow_logs_the_agent_out_at_once_and_a_call_on_it_still_ends_cleanly() {
    let d = Daemon::start();
    // The Contact's port listens: nothing may ever connect to it.
    let contact_port = TcpListener::bind("127.0.0.1:0").unwrap();
    contact_port.set_nonblocking(true).unwrap();
    let port = contact_port.local_addr().unwrap().port();
    let (flow, outbound) = (flow_contact(port), OUTBOUND);
    let first = register_flow(&d, &flow);

    // The connection closes with no call anywhere: the API shows the
    // agent logged out at once, before any offer could find it out.
    drop(first);
    wait_until("1001 logged out after its flow closed", T, || {
        let a = agent_1001(&d);
        a["state"] == "logged_out" && a["registered"] == false
    });
    assert!(
        d.wait_for_log(T, |l| l
            .contains("connection the agent registered on closed")),
        "{}",
        d.stderr()
    );

    // A REGISTER on a new connection restores it.
    let mut second = connect(&d);
    let ok = second.register(&flow, outbound);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    wait_until("1001 available again", T, || {
        let a = agent_1001(&d);
        a["state"] == "available" && a["registered"] == true
    });

    // A call on that flow; the phone's connection closes mid-call.
    let mut caller = Caller::dial(d.sip_port(), "1500");
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    second.answer_offer(&format!("sip:1001@127.0.0.1:{port};transport=tcp;ob"), &rtp);
    wait_until("1001 on the call", T, || {
        agent_1001(&d)["state"] == "on_call"
    });
    drop(second);
    wait_until("1001 no longer registered", T, || {
        agent_1001(&d)["registered"] == false
    });
    // The caller's BYE is answered and ends the call; the agent leg ends
    // without a BYE (never over a new connection to the phone).
    caller.bye();
    assert!(
        d.wait_for_log(T, |l| l.contains("its leg ended without a BYE")),
        "{}",
        d.stderr()
    );
    let rec = final_record(&d, &caller.call_id);
    assert_eq!(rec["disposition"], "answered", "{rec}");
    assert_eq!(rec["hangup_by"], "caller", "{rec}");
    assert_eq!(rec["agent"], "1001", "{rec}");
    assert!(
        rec["answered_ms"].is_i64() && rec["ended_ms"].is_i64(),
        "{rec}"
    );
    assert!(
        contact_port.accept().is_err(),
        "sipacd opened a connection to the phone's Contact for a closed outbound flow"
    );
    // Logged out after the call (not back to available on a dead flow).
    wait_until("1001 logged out after the call", T, || {
        agent_1001(&d)["state"] == "logged_out"
    });
}

#[test]
fn a_plain_tcp_agent_whose_connection_closed_gets_the_bye_on_a_new_connection_to_its_contact() {
    let d = Daemon::start();
    let contact_port = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = contact_port.local_addr().unwrap().port();
    let contact = format!("sip:1001@127.0.0.1:{port};transport=tcp");
    let mut phone = connect(&d);
    let ok = phone.register(&format!("<{contact}>"), "");
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    wait_until("1001 available", T, || {
        agent_1001(&d)["state"] == "available"
    });

    let mut caller = Caller::dial(d.sip_port(), "1500");
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tag = phone.answer_offer(&contact, &rtp);
    drop(phone);
    // No flow: still registered (reached anew when needed).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent_1001(&d)["registered"], true, "{}", d.stderr());

    caller.bye();
    contact_port.set_nonblocking(false).unwrap();
    let (s, _) = contact_port
        .accept()
        .expect("sipacd connects to the phone's Contact");
    let mut back = Wire::new(s);
    let bye = back
        .next(T, |m| method(m) == Some("BYE"))
        .unwrap_or_else(|| panic!("no BYE on the new connection; sipacd:\n{}", d.stderr()));
    let line = bye.lines().next().unwrap_or_default().to_ascii_lowercase();
    assert_eq!(line, format!("bye {contact} sip/2.0"), "{bye}");
    back.send(&response(&bye, 200, "OK", &tag, None, None));
    let rec = final_record(&d, &caller.call_id);
    assert_eq!(rec["disposition"], "answered", "{rec}");
    assert_eq!(rec["hangup_by"], "caller", "{rec}");
    assert_eq!(rec["agent"], "1001", "{rec}");
}

#[test]
fn a_restored_outbound_binding_is_not_offered_after_a_restart_until_the_phone_registers_again() {
    let mut d = Daemon::start();
    let contact_port = TcpListener::bind("127.0.0.1:0").unwrap();
    contact_port.set_nonblocking(true).unwrap();
    let port = contact_port.local_addr().unwrap().port();
    let (flow, outbound) = (flow_contact(port), OUTBOUND);
    let first = register_flow(&d, &flow);

    // The process dies with the connection (past the README's 1 s for a
    // binding to reach the disk); the binding is restored from data_dir,
    // but its flow is gone: not registered, not offered.
    std::thread::sleep(Duration::from_millis(1500));
    d.kill9_and_restart();
    drop(first);
    assert!(
        d.wait_for_log(T, |l| l.contains("registrations restored bindings=1")),
        "{}",
        d.stderr()
    );
    let a = agent_1001(&d);
    assert_eq!(a["registered"], false, "{a}\n{}", d.stderr());
    assert_eq!(a["state"], "logged_out", "{a}");
    let mut caller = Caller::dial(d.sip_port(), "1500");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent_1001(&d)["state"], "logged_out", "{}", d.stderr());
    assert!(
        contact_port.accept().is_err(),
        "sipacd connected to a restored flow's Contact"
    );

    // The phone registers again on a new connection: the waiting caller
    // is offered down it.
    let mut second = connect(&d);
    let ok = second.register(&flow, outbound);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    second.answer_offer(&format!("sip:1001@127.0.0.1:{port};transport=tcp;ob"), &rtp);
    wait_until("1001 on the call", T, || {
        agent_1001(&d)["state"] == "on_call"
    });
    caller.bye();
    let bye = second.next(T, |m| method(m) == Some("BYE"));
    assert!(bye.is_some(), "no BYE down the new flow\n{}", d.stderr());
}

#[test]
fn an_agent_that_registers_again_on_a_new_connection_mid_call_keeps_the_call_on_the_old_one() {
    let d = Daemon::start();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (flow, outbound) = (flow_contact(port), OUTBOUND);
    let mut first = register_flow(&d, &flow);
    let mut caller = Caller::dial(d.sip_port(), "1500");
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    first.answer_offer(&format!("sip:1001@127.0.0.1:{port};transport=tcp;ob"), &rtp);
    wait_until("1001 on the call", T, || {
        agent_1001(&d)["state"] == "on_call"
    });

    // Mid-call, the phone registers the same instance on a second
    // connection (as a phone does after a network change it survived).
    let mut second = connect(&d);
    let ok = second.register(&flow, outbound);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    assert_eq!(agent_1001(&d)["state"], "on_call", "{}", d.stderr());

    // The call's requests stay on the connection its dialog was made on.
    caller.bye();
    let bye = first
        .next(T, |m| method(m) == Some("BYE"))
        .unwrap_or_else(|| panic!("no BYE on the call's own connection\n{}", d.stderr()));
    // Its To already holds the phone's tag.
    first.send(&response(&bye, 200, "OK", "", None, None));
    assert!(
        second
            .next(Duration::from_millis(500), |m| method(m) == Some("BYE"))
            .is_none(),
        "the BYE went down the new registration's connection too"
    );
    let rec = final_record(&d, &caller.call_id);
    assert_eq!(rec["disposition"], "answered", "{rec}");
    assert_eq!(rec["agent"], "1001", "{rec}");
    // After the call, the agent is offered calls on the new flow.
    wait_until("1001 available after the call", T, || {
        agent_1001(&d)["state"] == "available" || agent_1001(&d)["state"] == "wrap_up"
    });
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        agent_1001(&d)["registered"],
        true,
        "closing the old connection took away the new binding\n{}",
        d.stderr()
    );
}
