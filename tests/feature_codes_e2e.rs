//! Agents' feature codes against the running daemon: SIPp plays agent
//! 1001's phone, registers, dials the pause code with reason code 1
//! (`*451`), answers the digest challenge, and is answered and hung up;
//! the admin API then shows the agent paused with the reason the
//! `[features]` table gives that code. A second test dials the logout
//! code (`*48`, the agent stays registered but `logged_out` in the API,
//! the metrics and queue_log) and then the login code (`*47`, available).
//!
//! Without SIPp this test fails (see `common::require`).

mod common;

use common::sipp::{run_sipp, sipp_or_skip};
use common::{ConfigSpec, Daemon, AGENT_PASSWORD};
use std::io::{Read, Write};
use std::time::Duration;

/// `GET path` on the admin API; the body as JSON.
fn get_json(d: &Daemon, path: &str) -> serde_json::Value {
    let addr = d.admin_url().trim_start_matches("http://").to_owned();
    let mut s = std::net::TcpStream::connect(&addr).expect("admin API");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn agent_1001(d: &Daemon) -> serde_json::Value {
    let agents = get_json(d, "/api/v1/agents");
    let list = agents
        .as_array()
        .cloned()
        .or_else(|| agents["agents"].as_array().cloned())
        .unwrap_or_else(|| panic!("agents: {agents}"));
    list.into_iter()
        .find(|a| a["id"] == "1001")
        .unwrap_or_else(|| panic!("no agent 1001: {agents}"))
}

#[test]
fn a_sipp_agent_dials_the_pause_code_and_is_paused_with_its_reason() {
    if !sipp_or_skip() {
        return;
    }
    let mut spec = ConfigSpec::new();
    spec.extra = "\n[features]\npause = \"*45\"\nunpause = \"*46\"\n\
                  pause_reasons = { \"1\" = \"lunch\" }\n"
        .into();
    let d = Daemon::start_with(spec);
    let run = run_sipp(
        d.sip_port(),
        "agent_dials_code",
        &[
            "-s",
            "1001",
            "-au",
            "1001",
            "-ap",
            AGENT_PASSWORD,
            "-key",
            "code",
            "*451",
        ],
        Duration::from_secs(15),
    );
    assert!(
        run.success(),
        "{}\n--- sipacd ---\n{}",
        run.report(),
        d.stderr()
    );
    let agent = agent_1001(&d);
    assert_eq!(agent["state"], "paused", "{agent}");
    assert_eq!(agent["pause_reason"], "lunch", "{agent}");
    assert!(d.stderr().contains("feature code"), "{}", d.stderr());
}

/// Agent 1001 dials `code` from a SIPp phone (registering first).
fn dial_code(d: &Daemon, code: &str) {
    let run = run_sipp(
        d.sip_port(),
        "agent_dials_code",
        &[
            "-s",
            "1001",
            "-au",
            "1001",
            "-ap",
            AGENT_PASSWORD,
            "-key",
            "code",
            code,
        ],
        Duration::from_secs(15),
    );
    assert!(
        run.success(),
        "{code}: {}\n--- sipacd ---\n{}",
        run.report(),
        d.stderr()
    );
}

/// The `sipacd_queue_agents` sample for queue support in `state`.
fn queue_agents(d: &Daemon, state: &str) -> Option<String> {
    let (status, text) = common::http::request("GET", &format!("{}/metrics", d.admin_url()), None);
    assert_eq!(status, 200, "{text}");
    let want = format!("state=\"{state}\"");
    text.lines()
        .find(|l| {
            l.contains("queue_agents{") && l.contains("queue=\"support\"") && l.contains(&want)
        })
        .map(str::to_owned)
}

#[test]
fn a_sipp_agent_logs_out_and_back_in_with_its_codes() {
    if !sipp_or_skip() {
        return;
    }
    let mut spec = ConfigSpec::new();
    spec.server_extra = "queue_log = \"queue_log\"\n".into();
    spec.extra = "\n[features]\nlogin = \"*47\"\nlogout = \"*48\"\n".into();
    let d = Daemon::start_with(spec);

    dial_code(&d, "*48");
    let agent = agent_1001(&d);
    assert_eq!(agent["state"], "logged_out", "{agent}");
    assert_eq!(agent["registered"], true, "still registered: {agent}");
    let available = queue_agents(&d, "available").expect("an available sample");
    assert!(available.ends_with(" 0"), "{available}");

    dial_code(&d, "*47");
    let agent = agent_1001(&d);
    assert_eq!(agent["state"], "available", "{agent}");
    let available = queue_agents(&d, "available").expect("an available sample");
    assert!(available.ends_with(" 1"), "{available}");

    let path = d.cfg.root().join("data/queue_log");
    let mut events = Vec::new();
    common::wait_until("queue_log lines", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        events = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (f.get(3) == Some(&"1001")).then(|| f.get(4).map_or("", |e| *e).to_owned())
            })
            .collect();
        events.len() >= 3
    });
    assert_eq!(
        events,
        ["AGENTLOGIN", "AGENTLOGOFF", "AGENTLOGIN"],
        "{}",
        d.stderr()
    );
}
