//! The post-call survey against the running daemon: a SIPp agent (static
//! contact) answers a SIPp caller in a queue with `survey = "ivr:rate"`
//! and hangs up after a second; the caller goes on to the survey node and
//! presses 4 (RFC 4733, from sip-tester's pcap); the node hangs up. The
//! call record served by `/api/v1/cdr` holds csat 4 for that queue and
//! agent, the day's figures in the API hold it too, and `sipacd report`
//! on the daemon's data directory shows CSAT 4.00 (one score) for the
//! queue and the agent, with an AHT of the agent's talk time plus the
//! queue's wrap-up (not the time the caller spent in the survey).
//!
//! A raw-UDP caller then shows what it hears: the agent's tone (a raw
//! phone streaming 1000 Hz) and nothing of the survey's prompt while they
//! talk; the prompt's tone and nothing of the agent once the agent hangs
//! up. Its RFC 4733 digit 2 is then the record's csat.

mod common;

use common::baresip::{rms, tone_share};
use common::http::get_json;
use common::phone::{AgentPhone, Caller};
use common::sipp::{run_sipp, run_sipp_at, sipp_or_skip, SippRun};
use common::sse::Stream;
use common::tone::ToneStream;
use common::{free_port, sipacd_bin, wait_until, ConfigSpec, Daemon};
use serde_json::Value;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const WRAPUP_S: u64 = 7;
const PCAP: &str = "/usr/share/sip-tester/dtmf_2833_4.pcap";

fn check(name: &str, run: &SippRun, d: &Daemon) {
    assert!(
        run.success(),
        "{name}: {}\n--- sipacd ---\n{}",
        run.report(),
        d.stderr()
    );
}

/// The cells of the row of `t` whose first cell is `first`.
fn row(t: &str, first: &str) -> Vec<String> {
    t.lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in:\n{t}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The cell under `column` of the table whose header row starts with
/// `table` (`queue`, `agent`) in the row starting with `first`. Header
/// names may hold a space (`AHT s`): cells are found by position among
/// the header's columns, each a run of text separated by 2+ spaces.
fn cell(t: &str, table: &str, first: &str, column: &str) -> String {
    let header = t
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no {table} table in:\n{t}"));
    let names: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let i = names
        .iter()
        .position(|n| *n == column)
        .unwrap_or_else(|| panic!("no column {column:?} in {names:?}"));
    row(t, first)
        .get(i)
        .cloned()
        .unwrap_or_else(|| panic!("row {first} has no cell {i} in:\n{t}"))
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Queue `rated` (number 1830) sends its callers to the survey `rate`
/// once their agent hangs up; `agents` is the agents' TOML.
fn survey_spec(agents: &str) -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        r#"
{agents}
[queues.rated]
skills = {{ rate = 1 }}
wrapup_s = {WRAPUP_S}
survey = "ivr:rate"

[[numbers]]
number = "1830"
to = "queue:rated"

[ivr.rate]
start = "score"

[ivr.rate.nodes.score]
type = "survey"
prompt = "moh.wav"
min = 1
max = 5
timeout_s = 5
retries = 1
next = "hangup"
"#
    );
    spec
}

/// Key `digit` (0-9) pressed for 80 ms, as RFC 4733 telephone-events
/// (payload type 101, as the callers' SDP offers), from `sock` to
/// sipacd's leg on `port`: three updates, then the end packet three times.
fn press(sock: &UdpSocket, port: u16, digit: u8) {
    let (ssrc, ts) = (0x4733_u32, 0x1000_u32);
    for (i, (end, duration)) in [(false, 160u16), (false, 320), (false, 480)]
        .into_iter()
        .chain([(true, 640); 3])
        .enumerate()
    {
        let first = i == 0;
        let mut pkt = vec![0x80, if first { 0x80 | 101 } else { 101 }];
        pkt.extend_from_slice(&(100 + i as u16).to_be_bytes());
        pkt.extend_from_slice(&ts.to_be_bytes());
        pkt.extend_from_slice(&ssrc.to_be_bytes());
        pkt.extend_from_slice(&[digit, if end { 0x80 | 10 } else { 10 }]);
        pkt.extend_from_slice(&duration.to_be_bytes());
        sock.send_to(&pkt, ("127.0.0.1", port)).expect("send RTP");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Tenths of a second in `samples` that are loud and mostly `hz` (the
/// prompt, moh.wav, is a 400 Hz square wave).
fn tenths_of(samples: &[i16], hz: f64) -> usize {
    samples
        .chunks_exact(800)
        .filter(|w| rms(w) > 300.0 && tone_share(w, hz) > 0.5)
        .count()
}

/// The audio port sipacd offers in an INVITE to an agent.
fn offered_port(invite: &str) -> u16 {
    invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next()?.parse().ok())
        .expect("SDP with m=audio")
}

const PROMPT_HZ: f64 = 400.0;
const AGENT_HZ: f64 = 1000.0;

#[test]
fn the_caller_rates_the_call_after_the_agent_hangs_up_and_the_record_and_report_hold_the_score() {
    if !sipp_or_skip() || !common::require(Path::new(PCAP).is_file(), "sip-tester's pcap files") {
        return;
    }
    let agent_port = free_port();
    let agent_toml = format!(
        "[agents.2301]\ncontact = \"sip:2301@127.0.0.1:{agent_port}\"\nskills = {{ rate = 1 }}\n"
    );
    let d = Daemon::start_with(survey_spec(&agent_toml));
    let port = d.sip_port();
    let api = d.admin_url();
    let mut events = Stream::open(d.cfg.spec.admin_port, "", "");
    events.until("hello", |v| v["type"] == "hello");

    let agent = std::thread::spawn(move || {
        run_sipp_at(agent_port, port, "agent_hangs_up", &["-m", "2"], T)
    });
    // The agent's ping answered: it is reachable before the call.
    std::thread::sleep(Duration::from_millis(1500));
    let media = free_port().to_string();
    let caller = run_sipp(port, "caller_rates_4", &["-s", "1830", "-mp", &media], T);
    check("agent", &agent.join().expect("sipp"), &d);
    check("caller", &caller, &d);

    // The agent's hang-up sent the caller to the survey, which took 4.
    let survey = events.until("call_survey", |v| v["type"] == "call_survey");
    assert_eq!(
        (&survey["queue"], &survey["agent"], &survey["to"]),
        (
            &Value::from("rated"),
            &Value::from("2301"),
            &Value::from("ivr:rate.score")
        ),
        "{survey}"
    );
    let rated = events.until("call_rated", |v| v["type"] == "call_rated");
    assert_eq!(rated["call"], survey["call"], "{rated}");
    assert_eq!(
        (&rated["queue"], &rated["agent"], &rated["score"]),
        (&Value::from("rated"), &Value::from("2301"), &Value::from(4)),
        "{rated}"
    );

    let mut rec = Value::Null;
    wait_until("the finished call record", T, || {
        rec = get_json(&format!("{api}/api/v1/cdr"))
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == survey["call"]).cloned())
            .unwrap_or_default();
        rec["ended_ms"].is_number()
    });
    assert_eq!(rec["csat"], 4, "{rec}");
    assert_eq!(rec["queue"], "rated", "{rec}");
    assert_eq!(rec["agent"], "2301", "{rec}");
    assert_eq!(rec["disposition"], "answered", "{rec}");
    assert_eq!(rec["hangup_by"], "agent", "{rec}");
    // It entered the queue on arrival (the survey's IVR came later).
    assert!(rec["queued_ms"].is_number(), "{rec}");
    let legs = rec["legs"].as_array().expect("legs");
    assert_eq!(legs.len(), 1, "{rec}");
    let leg = &legs[0];
    assert_eq!(leg["agent"], "2301", "{rec}");
    // The agent's leg ended with its hang-up, before the survey's.
    let talk_ms = number(&leg["ended_ms"]) - number(&leg["answered_ms"]);
    let survey_ms = number(&rec["ended_ms"]) - number(&leg["ended_ms"]);
    assert!(
        (500.0..5000.0).contains(&talk_ms),
        "the agent talks about a second: {rec}"
    );
    assert!(
        survey_ms >= 1000.0,
        "the caller spent seconds in the survey: {rec}"
    );

    // Today's figures in the API.
    let queues = get_json(&format!("{api}/api/v1/queues"));
    let q = queues
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == "rated"))
        .unwrap_or_else(|| panic!("{queues}"));
    assert_eq!(
        (&q["csat_today"], &q["csat_responses_today"]),
        (&Value::from(4.0), &Value::from(1)),
        "{q}"
    );
    let agents = get_json(&format!("{api}/api/v1/agents"));
    let a = agents
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "2301"))
        .unwrap_or_else(|| panic!("{agents}"));
    assert_eq!(
        (&a["csat_today"], &a["csat_responses_today"]),
        (&Value::from(4.0), &Value::from(1)),
        "{a}"
    );
    // The queue learnt one handle time: the agent's talk plus wrap-up.
    let learnt = number(&q["handle_time_s"]);
    let handle_s = talk_ms / 1000.0 + WRAPUP_S as f64;
    assert!(
        (learnt - handle_s).abs() <= 0.5,
        "handle time {learnt} s, the agent's talk plus wrap-up is {handle_s} s: {q}\n{rec}"
    );

    // `sipacd report` on the daemon's configuration and data directory.
    let out = Command::new(sipacd_bin())
        .args(["report", "--config"])
        .arg(d.cfg.config_path())
        .output()
        .expect("run sipacd report");
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{t}");
    assert_eq!(cell(&t, "queue", "rated", "answered"), "1", "{t}");
    assert_eq!(cell(&t, "queue", "rated", "CSAT"), "4.00", "{t}");
    assert_eq!(cell(&t, "queue", "rated", "CSAT n"), "1", "{t}");
    assert_eq!(cell(&t, "agent", "2301", "calls"), "1", "{t}");
    assert_eq!(cell(&t, "agent", "2301", "CSAT"), "4.00", "{t}");
    assert_eq!(cell(&t, "agent", "2301", "CSAT n"), "1", "{t}");
    // AHT: the agent's talk (to its hang-up) plus the queue's wrap-up;
    // the agent's talk time likewise ends with its leg.
    let aht: f64 = cell(&t, "queue", "rated", "AHT s")
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {t}"));
    assert!(
        (aht - handle_s).abs() <= 0.06,
        "AHT {aht} s, the agent's talk plus wrap-up is {handle_s} s\n{t}\n{rec}"
    );
    let talk: f64 = cell(&t, "agent", "2301", "talk s")
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {t}"));
    assert!(
        (talk - talk_ms / 1000.0).abs() <= 0.06,
        "talk {talk} s, the agent's leg lasted {talk_ms} ms\n{t}\n{rec}"
    );
}

#[test]
fn the_caller_hears_the_survey_once_the_agent_hangs_up_and_its_digit_is_the_score() {
    let mut agent = AgentPhone::new("2302");
    let d = Daemon::start_with(survey_spec(&agent.toml("skills = { rate = 1 }")));
    let api = d.admin_url();
    let caller = Caller::dial_from(d.sip_port(), "1830", "5550202");
    let port = caller.leg_port.expect("sipacd's RTP port for the caller");
    // The caller listens (and sends nothing but its digit).
    let ears = ToneStream::start(caller.rtp_socket(), 1000.0, 0);
    let inv = agent
        .expect_invite(T)
        .unwrap_or_else(|| panic!("no offer\n{}", d.stderr()));
    agent.answer(&inv);
    let voice = ToneStream::start(agent.rtp_socket(), AGENT_HZ, offered_port(&inv));
    let talking = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    drop(voice);
    let bye = agent.request_in_dialog(&inv, "BYE", 1, None);
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    let surveyed = Instant::now();
    let before = ears.heard_since(talking);
    // The talk: up to the agent's last packet (1.5 s of it).
    let before = &before[..before.len().min(11_200)];
    std::thread::sleep(Duration::from_millis(1500));
    let after = ears.heard_since(surveyed);
    let figures = format!(
        "while talking {} samples: {} tenths of the agent, {} of the prompt; \
         after the hang-up {} samples: {} tenths of the agent, {} of the prompt",
        before.len(),
        tenths_of(before, AGENT_HZ),
        tenths_of(before, PROMPT_HZ),
        after.len(),
        tenths_of(&after, AGENT_HZ),
        tenths_of(&after, PROMPT_HZ),
    );
    eprintln!("{figures}");
    assert!(
        tenths_of(before, AGENT_HZ) >= 5 && tenths_of(before, PROMPT_HZ) == 0,
        "the caller talks to the agent: {figures}\n{}",
        d.stderr()
    );
    assert!(
        tenths_of(&after, PROMPT_HZ) >= 3 && tenths_of(&after, AGENT_HZ) == 0,
        "the caller hears the survey: {figures}\n{}",
        d.stderr()
    );
    press(caller.rtp_socket(), port, 2);
    assert!(
        caller.expect_bye(T).is_some(),
        "the survey did not hang up after the score\n{}",
        d.stderr()
    );
    let mut rec = Value::Null;
    wait_until("the finished call record", T, || {
        rec = get_json(&format!("{api}/api/v1/cdr"))
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|r| r["id"] == caller.call_id.as_str())
                    .cloned()
            })
            .unwrap_or_default();
        rec["ended_ms"].is_number()
    });
    assert_eq!(
        (&rec["csat"], &rec["agent"], &rec["queue"]),
        (&Value::from(2), &Value::from("2302"), &Value::from("rated")),
        "{rec}"
    );
}
