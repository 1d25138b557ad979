//! The README's walk through the DEMO contact center (`config/sipacd.toml`),
//! against the real binary: a caller dials 1500, hears the menu, presses 2
//! (RFC 4733), hears the support queue's music and then its position; agent
//! 1004 registers with the demo password, is offered the call with the
//! caller's number, answers, and both hear each other; the caller's BYE
//! ends both legs.
//!
//! The demo file is copied with only what a test must change: addresses,
//! ports and directories, the drain time, and two things that depend on
//! the clock. Its office hours (Asia/Jakarta) and support hours are
//! rewritten to "open every day, all day" so the walk does not depend on
//! when it runs (the clock itself is not faked), and the support queue
//! announces the position after 3 s instead of 45 s. Agent 1004 is the
//! demo's floater without a shift, so no shift is touched.

mod common;

use common::demo::{demo_on, repo};
use common::phone::{AgentPhone, Caller};
use common::sip::header;
use common::{ConfigSpec, Daemon};
use sipacd::media::{Codec, Prompt};
use std::collections::HashSet;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};
use toml_edit::{value, Array};

const WAIT: Duration = Duration::from_secs(10);
const ANNOUNCE_S: i64 = 3;

/// The demo configuration with the test's rewrites (see the module doc).
fn demo_config(spec: &ConfigSpec, data: &Path) -> (String, String, String) {
    let mut doc = demo_on(spec, data);
    for name in ["office", "support_hours"] {
        let sched = &mut doc["schedules"][name];
        sched["open"] = value(Array::from_iter(["mon-sun 00:00-24:00"]));
        if let Some(t) = sched.as_table_like_mut() {
            t.remove("closed_dates");
        }
    }
    doc["queues"]["support"]["announce_position_s"] = value(ANNOUNCE_S);
    // What the walk relies on, read from the demo itself.
    let domain = doc["server"]["domain"].as_str().unwrap().to_string();
    let password = doc["agents"]["1004"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        doc["ivr"]["main"]["nodes"]["menu"]["options"]["2"].as_str(),
        Some("support"),
        "the demo menu's option 2 is the support queue"
    );
    (doc.to_string(), domain, password)
}

/// The non-silent PCMU frames of a prompt file.
fn frames_of(prompt: &str) -> HashSet<Vec<u8>> {
    let p = Prompt::load(&repo("prompts").join(prompt)).unwrap();
    (0..p.len())
        .filter_map(|i| p.frame(i, Codec::Pcmu))
        .filter(|f| f.iter().any(|b| *b != f[0]))
        .map(|f| f.to_vec())
        .collect()
}

/// Reads RTP on `rtp` until `n` frames of `prompt` have been heard.
fn hear(rtp: &UdpSocket, prompt: &str, n: usize, within: Duration) -> bool {
    let frames = frames_of(prompt);
    assert!(frames.len() > n, "{prompt} has too few distinct frames");
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut heard = 0;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok((len, _)) = rtp.recv_from(&mut buf) {
            if len > 12 && buf[1] & 0x7F == 0 && frames.contains(&buf[12..len]) {
                heard += 1;
                if heard == n {
                    return true;
                }
            }
        }
    }
    false
}

fn rtp(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, (seq >> 8) as u8, seq as u8];
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&[0x0D, 0xE3, 0x00, 0x01]);
    p.extend_from_slice(payload);
    p
}

/// Streams `payload` from `from` to sipacd's `port` until `at` receives it.
fn talk_until_heard(from: &UdpSocket, port: u16, at: &UdpSocket, payload: &[u8]) -> bool {
    at.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + WAIT;
    let mut seq = 0u16;
    while Instant::now() < deadline {
        seq += 1;
        from.send_to(&rtp(0, seq, payload), ("127.0.0.1", port))
            .unwrap();
        if let Ok((n, _)) = at.recv_from(&mut buf) {
            if n > 12 && &buf[12..n] == payload {
                return true;
            }
        }
    }
    false
}

/// A 20 ms PCMU frame of a tone, different for each `hz`.
fn tone(hz: f64) -> Vec<u8> {
    (0..160)
        .map(|i| {
            let x = (hz * std::f64::consts::TAU * f64::from(i) / 8000.0).sin();
            sipacd::media::g711::linear_to_ulaw((8000.0 * x) as i16)
        })
        .collect()
}

#[test]
fn a_caller_walks_the_demo_to_an_agent() {
    let spec = ConfigSpec::new();
    let tmp = tempfile::tempdir().unwrap();
    let (text, domain, password) = demo_config(&spec, tmp.path());
    let mut d = Daemon::start_with_text(spec, &text);

    // Dial 1500: office open, the menu prompt plays.
    let mut caller = Caller::dial_from(d.sip_port(), "1500", "6285512345");
    let leg = caller.leg_port.expect("an SDP answer with sipacd's port");
    let rtp_sock = caller.rtp_socket();
    assert!(
        hear(rtp_sock, "menu.wav", 25, WAIT),
        "the menu prompt was not heard:\n{}",
        d.stderr()
    );

    // Press 2 (support) as telephone-events: start, then three end packets.
    for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
        let dur = 160u16 * (i as u16 + 1);
        let mut ev = vec![2u8, if end { 0x80 | 10 } else { 10 }];
        ev.extend_from_slice(&dur.to_be_bytes());
        let mut pkt = rtp(101, 100 + i as u16, &ev);
        pkt[4..8].copy_from_slice(&8000u32.to_be_bytes());
        if i == 0 {
            pkt[1] |= 0x80;
        }
        rtp_sock.send_to(&pkt, ("127.0.0.1", leg)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }

    // Queued in support: the music, then "you are number 1 in the queue".
    assert!(
        hear(rtp_sock, "moh.wav", 25, WAIT),
        "no music after pressing 2:\n{}",
        d.stderr()
    );
    let announce = Duration::from_secs(ANNOUNCE_S as u64) + WAIT;
    assert!(
        hear(rtp_sock, "you-are-number.wav", 25, announce),
        "no position announcement:\n{}",
        d.stderr()
    );
    assert!(hear(rtp_sock, "1.wav", 10, WAIT), "position is not 1");
    assert!(
        hear(rtp_sock, "in-the-queue.wav", 10, WAIT),
        "the announcement did not end with in-the-queue"
    );

    // Agent 1004 registers with the demo password and gets the offer.
    let mut agent = AgentPhone::new("1004");
    agent.register(d.sip_port(), &domain, &password);
    let inv = agent
        .expect_invite(WAIT)
        .unwrap_or_else(|| panic!("agent 1004 got no offer:\n{}", d.stderr()));
    assert_eq!(header(&inv, "X-Sipacd-Queue", None), Some("support"));
    assert!(
        header(&inv, "From", Some("f")).is_some_and(|f| f.contains("6285512345")),
        "the agent sees the caller's number:\n{inv}"
    );
    let agent_leg: u16 = inv
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next()?.parse().ok())
        .expect("an SDP offer to the agent");
    agent.answer(&inv);

    // Audio both ways, through sipacd.
    assert!(
        talk_until_heard(rtp_sock, leg, agent.rtp_socket(), &tone(440.0)),
        "the agent does not hear the caller"
    );
    assert!(
        talk_until_heard(agent.rtp_socket(), agent_leg, rtp_sock, &tone(660.0)),
        "the caller does not hear the agent"
    );

    // The caller hangs up: the agent's leg ends too.
    caller.bye();
    assert!(
        agent.expect_bye(WAIT).is_some(),
        "the agent's leg was not ended"
    );
    assert!(d.is_alive());
}
