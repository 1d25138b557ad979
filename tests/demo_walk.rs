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
//!
//! Three more walks follow what the demo's comments promise beyond the
//! agent, each on the demo file with the same rewrites:
//! * The callback: a support caller (1501) is offered the callback (its
//!   `after_s` cut to 1 s), presses its digit and `#` (its own number) and
//!   is hung up on; when agent 1004 registers, sipacd calls it, then the
//!   caller's number through `demo_gateway`, whose uri is moved to the
//!   port of the demo's SIPp gateway (`tests/sipp/demo_gateway.xml`, the
//!   one the README starts on 5080): the gateway answers and echoes the
//!   agent's audio, and the callback is recorded as reached.
//! * After hours: both schedules closed (their `closed_dates` hold
//!   yesterday, today and tomorrow), 1500 leads to the support queue's
//!   `closed` branch, `main.after_hours`: the caller leaves a message,
//!   ends it with `#`, is hung up on, and the message is listed by
//!   `GET /api/v1/voicemail`.
//! * The survey: once agent 1004 hangs up on a support caller, the caller
//!   hears the queue's `survey` (`ivr:rate`), presses 4, is hung up on,
//!   and the call's record holds csat 4.

mod common;

use common::demo::{demo_on, repo};
use common::http::get_json;
use common::phone::{echoed, AgentPhone, Caller};
use common::sip::header;
use common::sipp::{run_sipp_at, sipp_or_skip};
use common::tone::ToneStream;
use common::{free_port, wait_until, ConfigSpec, Daemon};
use serde_json::Value;
use sipacd::media::{Codec, Prompt};
use std::collections::HashSet;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};
use toml_edit::{value, Array, DocumentMut};

const WAIT: Duration = Duration::from_secs(10);
const ANNOUNCE_S: i64 = 3;

/// The demo file on the test's ports, open all day (see the module doc).
fn demo_open(spec: &ConfigSpec, data: &Path) -> DocumentMut {
    let mut doc = demo_on(spec, data);
    for name in ["office", "support_hours"] {
        let sched = &mut doc["schedules"][name];
        sched["open"] = value(Array::from_iter(["mon-sun 00:00-24:00"]));
        if let Some(t) = sched.as_table_like_mut() {
            t.remove("closed_dates");
        }
    }
    doc["queues"]["support"]["announce_position_s"] = value(ANNOUNCE_S);
    doc
}

/// The demo's SIP domain and agent `id`'s password, read from `doc`.
fn login(doc: &DocumentMut, id: &str) -> (String, String) {
    let domain = doc["server"]["domain"].as_str().unwrap().to_string();
    let password = doc["agents"][id]["password"].as_str().unwrap().to_string();
    (domain, password)
}

/// The demo configuration with the test's rewrites (see the module doc).
fn demo_config(spec: &ConfigSpec, data: &Path) -> (String, String, String) {
    let doc = demo_open(spec, data);
    // What the walk relies on, read from the demo itself.
    let (domain, password) = login(&doc, "1004");
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

const T: Duration = Duration::from_secs(30);
/// The caller of the walks below: its number is the one called back.
const CUSTOMER: &str = "6285512345";

fn logged(d: &Daemon, what: &str) {
    assert!(
        d.wait_for_log(T, |l| l.contains(what)),
        "never logged `{what}`:\n{}",
        d.stderr()
    );
}

fn get_list(d: &Daemon, path: &str) -> Vec<Value> {
    get_json(&format!("{}{path}", d.admin_url()))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The record of call `id` once it is finished.
fn finished_record(d: &Daemon, id: &str) -> Value {
    let mut rec = Value::Null;
    wait_until("the finished call record", T, || {
        rec = get_list(d, "/api/v1/cdr")
            .into_iter()
            .find(|r| r["id"] == id)
            .unwrap_or_default();
        rec["ended_ms"].is_number()
    });
    rec
}

/// sipacd's RTP port in its SDP offer to an agent.
fn offered_port(invite: &str) -> u16 {
    invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next()?.parse().ok())
        .expect("an SDP offer to the agent")
}

#[test]
fn a_demo_caller_takes_the_callback_and_is_called_back_through_the_demo_gateway() {
    if !sipp_or_skip() {
        return;
    }
    let spec = ConfigSpec::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut doc = demo_open(&spec, tmp.path());
    let (domain, password) = login(&doc, "1004");
    // The callback as the demo sets it up, offered after 1 s instead of
    // a minute, through its own trunk moved to the SIPp gateway's port.
    let callback = &mut doc["queues"]["support"]["callback"];
    let trunk = callback["trunk"].as_str().unwrap_or_default().to_string();
    let digit = callback
        .get("digit")
        .and_then(|v| v.as_str())
        .unwrap_or("1")
        .to_string();
    callback["after_s"] = value(1);
    let gw_port = free_port();
    let uri = doc["trunks"][&trunk]["uri"].as_str().unwrap().to_string();
    assert_eq!(
        uri, "sip:gw@127.0.0.1:5080",
        "the README starts the demo gateway on 5080"
    );
    doc["trunks"][&trunk]["uri"] = value(format!("sip:gw@127.0.0.1:{gw_port}"));
    let d = Daemon::start_with_text(spec, &doc.to_string());

    // 1501, nobody logged in: the caller waits, is offered the callback,
    // presses its digit and `#` (its own number), hears the goodbye and is
    // hung up on.
    let caller = Caller::dial_from(d.sip_port(), "1501", CUSTOMER);
    logged(&d, "callback offered");
    caller.press(&format!("{digit}#"), 0);
    logged(&d, "callback accepted: the caller's place is kept");
    assert!(
        caller.expect_bye(T).is_some(),
        "sipacd hangs up after the goodbye\n{}",
        d.stderr()
    );
    let list = get_list(&d, "/api/v1/callbacks");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (&list[0]["number"], &list[0]["call"], &list[0]["state"]),
        (
            &Value::from(CUSTOMER),
            &Value::from(caller.call_id.as_str()),
            &Value::from("waiting")
        ),
        "{list:?}"
    );

    // The demo gateway, as the README starts it but on the test's port.
    let port = d.sip_port();
    let gateway = std::thread::spawn(move || {
        let media = free_port().to_string();
        let args = ["-rtp_echo", "-mp", &media];
        run_sipp_at(
            gw_port,
            port,
            "demo_gateway",
            &args,
            Duration::from_secs(60),
        )
    });
    std::thread::sleep(Duration::from_millis(500));

    // Agent 1004 logs in: sipacd calls it first, showing whom it calls back.
    let mut agent = AgentPhone::new("1004");
    agent.register(d.sip_port(), &domain, &password);
    let invite = agent
        .expect_invite(T)
        .unwrap_or_else(|| panic!("no callback offer to 1004:\n{}", d.stderr()));
    assert_eq!(
        header(&invite, "X-Sipacd-Callback", None),
        Some(CUSTOMER),
        "{invite}"
    );
    agent.answer(&invite);
    logged(&d, "callback: calling the customer");
    logged(&d, "callback: the customer answered; bridged to the agent");
    // The customer (the gateway's echo) hears the agent, and back.
    let heard = echoed(agent.rtp_socket(), offered_port(&invite), 50);
    assert!(
        heard >= 25,
        "only {heard} of 50 packets came back from the customer\n{}",
        d.stderr()
    );
    assert!(
        get_list(&d, "/api/v1/callbacks").is_empty(),
        "a reached callback is done"
    );
    let bye = agent.request_in_dialog(&invite, "BYE", 2, None);
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    let gw = gateway.join().expect("sipp");
    assert!(
        gw.success(),
        "{}\n--- sipacd ---\n{}",
        gw.report(),
        d.stderr()
    );
    let ruri = format!("INVITE sip:{CUSTOMER}@127.0.0.1:{gw_port} SIP/2.0");
    assert!(
        gw.messages.contains(&ruri),
        "the gateway got no `{ruri}`:\n{}",
        gw.report()
    );
    assert!(gw.messages.contains("BYE sip:"), "{}", gw.report());

    // The records: the asking call, and the call placed for it, reached.
    let asked = finished_record(&d, &caller.call_id);
    assert_eq!(asked["disposition"], "callback", "{asked}");
    assert_eq!(asked["callback"]["number"], CUSTOMER, "{asked}");
    let mut placed = Value::Null;
    wait_until("the record of the call placed", T, || {
        placed = get_list(&d, "/api/v1/cdr")
            .into_iter()
            .find(|r| r["callback"]["origin"] == caller.call_id.as_str())
            .unwrap_or_default();
        placed["ended_ms"].is_number()
    });
    assert_eq!(
        (
            &placed["callback"]["outcome"],
            &placed["callback"]["attempt"],
            &placed["agent"],
            &placed["caller"],
            &placed["disposition"]
        ),
        (
            &Value::from("reached"),
            &Value::from(1),
            &Value::from("1004"),
            &Value::from(CUSTOMER),
            &Value::from("answered")
        ),
        "{placed}"
    );
    assert!(placed["callback"]["reached_ms"].is_i64(), "{placed}");
}

#[test]
fn a_demo_caller_after_hours_leaves_a_message_that_is_listed() {
    let spec = ConfigSpec::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut doc = demo_on(&spec, tmp.path());
    // Closed whatever the hour: yesterday, today and tomorrow (UTC) are
    // closed dates of both schedules, in any of their zones.
    let today = chrono::Utc::now().date_naive();
    let days = [today.pred_opt(), Some(today), today.succ_opt()]
        .into_iter()
        .flatten()
        .map(|d| d.to_string());
    let closed = Array::from_iter(days);
    for name in ["office", "support_hours"] {
        doc["schedules"][name]["closed_dates"] = value(closed.clone());
    }
    let node = &doc["ivr"]["main"]["nodes"]["after_hours"];
    assert_eq!(node["type"].as_str(), Some("voicemail"));
    let end_key = node["end_key"].as_str().unwrap_or("#").to_string();
    let d = Daemon::start_with_text(spec, &doc.to_string());

    // 1500: the office is closed, so the support queue; closed too: its
    // `closed` branch, the message.
    let caller = Caller::dial_from(d.sip_port(), "1500", CUSTOMER);
    let port = caller.leg_port.expect("an SDP answer with sipacd's port");
    assert!(
        hear(caller.rtp_socket(), "voicemail.wav", 25, WAIT),
        "voicemail.wav was not heard:\n{}",
        d.stderr()
    );
    let cid = caller.call_id.clone();
    assert!(
        d.wait_for_log(T, |l| l.contains("recording a message") && l.contains(&cid)),
        "no message recorded:\n{}",
        d.stderr()
    );
    let voice = ToneStream::start(caller.rtp_socket(), 700.0, port);
    std::thread::sleep(Duration::from_secs(2));
    drop(voice);
    // The end key ends the message well before its 5 s of silence would.
    caller.press(&end_key, 0);
    assert!(
        caller.expect_bye(Duration::from_secs(4)).is_some(),
        "no hang-up after {end_key}:\n{}",
        d.stderr()
    );

    let mut list = Vec::new();
    wait_until("the message listed", T, || {
        list = get_list(&d, "/api/v1/voicemail");
        !list.is_empty()
    });
    assert_eq!(list.len(), 1, "{list:?}");
    let m = &list[0];
    assert_eq!(
        (&m["call"], &m["caller"], &m["number"]),
        (
            &Value::from(caller.call_id.as_str()),
            &Value::from(CUSTOMER),
            &Value::from("1500")
        ),
        "{m}"
    );
    let secs = m["seconds"].as_f64().unwrap_or_default();
    assert!((1.5..5.0).contains(&secs), "about 2 s of voice: {m}");
    let rec = finished_record(&d, &caller.call_id);
    assert_eq!(rec["voicemail"], m["path"], "{rec}");
}

#[test]
fn a_demo_caller_rates_the_call_once_the_agent_hangs_up() {
    let spec = ConfigSpec::new();
    let tmp = tempfile::tempdir().unwrap();
    let doc = demo_open(&spec, tmp.path());
    let (domain, password) = login(&doc, "1004");
    let survey = doc["queues"]["support"]["survey"]
        .as_str()
        .map(str::to_owned);
    assert_eq!(survey.as_deref(), Some("ivr:rate"), "support's survey");
    let score = &doc["ivr"]["rate"]["nodes"]["score"];
    assert_eq!(score["type"].as_str(), Some("survey"));
    let prompt = score["prompt"].as_str().unwrap_or_default().to_string();
    let d = Daemon::start_with_text(spec, &doc.to_string());

    let mut agent = AgentPhone::new("1004");
    agent.register(d.sip_port(), &domain, &password);
    let caller = Caller::dial_from(d.sip_port(), "1501", CUSTOMER);
    let leg = caller.leg_port.expect("an SDP answer with sipacd's port");
    let inv = agent
        .expect_invite(T)
        .unwrap_or_else(|| panic!("agent 1004 got no offer:\n{}", d.stderr()));
    assert_eq!(header(&inv, "X-Sipacd-Queue", None), Some("support"));
    agent.answer(&inv);
    assert!(
        talk_until_heard(caller.rtp_socket(), leg, agent.rtp_socket(), &tone(440.0)),
        "the agent does not hear the caller"
    );

    // The agent hangs up: the caller stays, hears the survey and keys 4.
    let bye = agent.request_in_dialog(&inv, "BYE", 2, None);
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    logged(&d, "agent hung up: caller to the survey");
    assert!(
        hear(caller.rtp_socket(), &prompt, 25, WAIT),
        "{prompt} was not heard:\n{}",
        d.stderr()
    );
    caller.press("4", 0);
    assert!(
        caller.expect_bye(T).is_some(),
        "the survey did not hang up after the score:\n{}",
        d.stderr()
    );
    let rec = finished_record(&d, &caller.call_id);
    assert_eq!(
        (
            &rec["csat"],
            &rec["queue"],
            &rec["agent"],
            &rec["hangup_by"]
        ),
        (
            &Value::from(4),
            &Value::from("support"),
            &Value::from("1004"),
            &Value::from("agent")
        ),
        "{rec}"
    );
}
