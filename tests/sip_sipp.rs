//! The real `sipacd` binary on free loopback ports, driven by the SIPp
//! scenarios in `tests/sipp/`. Without `sipp` on PATH these tests fail (see
//! `common::require`).

mod common;

use common::sip::header;
use common::sipp::{run_sipp, sipp_or_skip, SippRun};
use common::{Daemon, AGENT_PASSWORD};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

/// Starts a daemon, runs one scenario against it, checks that SIPp saw every
/// call succeed and that the daemon is still up and answering afterwards.
fn scenario(name: &str, args: &[&str]) -> Option<SippRun> {
    if !sipp_or_skip() {
        return None;
    }
    let mut d = Daemon::start();
    let run = run_sipp(d.sip_port(), name, args, T);
    assert!(
        run.success(),
        "{}\n--- sipacd stderr ---\n{}",
        run.report(),
        d.stderr()
    );
    assert!(d.is_alive(), "sipacd died:\n{}", d.stderr());
    assert_eq!(
        common::sip::options_status(d.sip_port(), Duration::from_secs(2)),
        Some(200),
        "sipacd stopped answering OPTIONS after {name}"
    );
    Some(run)
}

/// The SIP messages SIPp received, from its `-trace_msg` log.
fn received(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in log.lines() {
        let framing = line.starts_with("-----------------------------------------------")
            || line.starts_with("Unexpected ")
            || line.contains("message sent (");
        if framing || line.contains("message received [") {
            out.extend(cur.take().map(|m| m.trim().to_string()));
            if line.contains("message received [") {
                cur = Some(String::new());
            }
            continue;
        }
        if let Some(m) = cur.as_mut() {
            m.push_str(line.trim_end_matches('\r'));
            m.push_str("\r\n");
        }
    }
    out.extend(cur.map(|m| m.trim().to_string()));
    out
}

#[test]
fn options_over_udp() {
    scenario("options_udp", &["-s", "ping"]);
}

#[test]
fn options_over_tcp() {
    scenario("options_udp", &["-s", "ping", "-t", "t1"]);
}

#[test]
fn register_with_right_password() {
    scenario(
        "register_ok",
        &["-s", "1001", "-au", "1001", "-ap", AGENT_PASSWORD],
    );
}

#[test]
fn register_with_wrong_password_is_forbidden() {
    scenario("register_wrong_password", &[]);
}

#[test]
fn register_unknown_user_is_forbidden() {
    scenario("register_unknown_user", &[]);
}

#[test]
fn invite_to_unknown_number_gets_404() {
    scenario("invite_unknown_number", &["-s", "4999"]);
}

#[test]
fn call_ended_by_caller() {
    scenario("call_caller_hangs_up", &["-s", "1500"]);
}

#[test]
fn call_ended_by_daemon() {
    // 1600 routes to an IVR whose start node is `hangup`.
    scenario("call_daemon_hangs_up", &["-s", "1600"]);
}

#[test]
fn cancel_before_answer() {
    // 1501 rings (ring_s) before it is answered.
    scenario("cancel", &["-s", "1501"]);
}

#[test]
fn retransmitted_invite_makes_one_dialog() {
    // The copy arrives after the 200: a new call would answer it with a
    // 200 with another To tag.
    let Some(run) = scenario("invite_retransmit", &["-s", "1500"]) else {
        return;
    };
    let msgs = received(&run.messages);
    // Answered at once, the INVITE needs no 100 Trying (RFC 3261
    // §17.2.1); a second transaction would show in the 200s' To tags.
    let trying = msgs.iter().filter(|m| m.starts_with("SIP/2.0 100")).count();
    assert_eq!(
        trying,
        0,
        "a 100 for an INVITE answered in the same turn\n{}",
        run.report()
    );
    let ok_tags: std::collections::BTreeSet<String> = msgs
        .iter()
        .filter(|m| m.starts_with("SIP/2.0 200"))
        .filter(|m| header(m, "CSeq", None).is_some_and(|c| c.ends_with("INVITE")))
        .map(|m| {
            let to = header(m, "To", Some("t")).unwrap_or("");
            to.split(";tag=").nth(1).unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(
        ok_tags.len(),
        1,
        "expected every 200 OK to the INVITE in one dialog, got To tags {ok_tags:?}\n{}",
        run.report()
    );
    assert!(
        !ok_tags.iter().next().unwrap().is_empty(),
        "200 OK without To tag"
    );
    let invites = run
        .messages
        .lines()
        .filter(|l| l.starts_with("INVITE "))
        .count();
    // The copy, plus one more for each 200 retransmission SIPp saw.
    assert!(
        (2..=6).contains(&invites),
        "the INVITE was sent {invites} times"
    );
}

#[test]
fn sipp_log_parser_finds_received_messages() {
    let log = "----------------------------------------------- 2026-01-01 00:00:00.0\n\
               UDP message sent (10 bytes):\n\nINVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n\n\
               ----------------------------------------------- 2026-01-01 00:00:00.1\n\
               UDP message received [10] bytes :\n\nSIP/2.0 200 OK\r\nTo: <sip:a@b>;tag=x1\r\n\
               CSeq: 1 INVITE\r\n\r\n\nUnexpected UDP message received:\n\nSIP/2.0 200 OK\r\n\n";
    let got = received(log);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(header(&got[0], "To", None), Some("<sip:a@b>;tag=x1"));
}

/// A caller dials a queue; sipacd offers the call to the agent (a SIPp
/// softphone at a static contact), which answers; the caller hangs up and
/// sipacd hangs up the agent.
#[test]
fn queued_call_reaches_the_agent_and_both_legs_end() {
    if !sipp_or_skip() {
        return;
    }
    let agent_port = common::free_port();
    let mut spec = common::ConfigSpec::new();
    spec.extra = format!(
        r#"
[queues.agents]
ring_timeout_s = 5

[agents.2001]
contact = "sip:2001@127.0.0.1:{agent_port}"

[[numbers]]
number = "1800"
to = "queue:agents"
"#
    );
    let mut d = Daemon::start_with(spec);
    let port = d.sip_port();
    let agent = std::thread::spawn(move || {
        common::sipp::run_sipp_at(agent_port, port, "agent_answers", &["-m", "2"], T)
    });
    // Let the agent's SIPp bind its port first.
    std::thread::sleep(Duration::from_millis(500));
    let caller = run_sipp(port, "call_caller_hangs_up", &["-s", "1800"], T);
    let agent = agent.join().unwrap();
    assert!(
        caller.success(),
        "caller: {}\n{}",
        caller.report(),
        d.stderr()
    );
    assert!(agent.success(), "agent: {}\n{}", agent.report(), d.stderr());
    assert!(d.is_alive());
    assert!(
        d.stderr().contains("agent answered"),
        "no bridge logged:\n{}",
        d.stderr()
    );
}
