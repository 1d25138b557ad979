//! Blind transfer against the running daemon: SIPp plays the caller and
//! two agents' softphones (static contacts). Agent 2001 answers the caller
//! in queue `support` and REFERs it to 1700 (queue `billing`); the SIPp
//! scenario checks the 202 and the NOTIFY sequence (100 Trying, then 200 OK
//! ending the subscription) before sipacd's BYE. Agent 2002, the only one
//! with `billing`'s skill, is offered the caller and answers; the call
//! record keeps one call with both legs in order.
//!
//! A REFER naming an agent id (`sip:2002@…`) rings that agent alone in the
//! caller's queue (the caller then talks to it, and the transferor wraps
//! up); one naming an agent that cannot ring (1001, never registered: 480)
//! or is on a call (486) ends the subscription with that status and leaves
//! the caller with the transferor.
//!
//! A REFER to an outside number goes out through `[features]
//! transfer_trunk`: a SIPp gateway challenges (401), answers, and the
//! caller talks to it; a busy one (486) leaves the caller with the agent.
//!
//! Audio is checked from a raw-UDP caller (`common::phone::Caller`): the
//! far end it should be talking to runs SIPp with `-rtp_echo`, so its own
//! packets coming back prove both directions of the relay.
//!
//! Without SIPp these tests fail (see `common::require`).

mod common;

use common::http::get_json;
use common::phone::Caller;
use common::sipp::{run_sipp, run_sipp_at, sipp_or_skip, SippRun};
use common::sse::Stream;
use common::{free_port, ConfigSpec, Daemon};
use sipacd::cdr::{CdrFilter, CdrStore, Disposition, HangupBy};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// The one finished call record in `d`'s store.
fn final_record(d: &Daemon) -> sipacd::cdr::CallRecord {
    let data = d.cfg.root().join("data");
    let mut rec = None;
    common::wait_until("the final call record", Duration::from_secs(10), || {
        let store = CdrStore::open_reader(&data).expect("records");
        rec = store
            .query(&CdrFilter::default())
            .expect("query")
            .into_iter()
            .find(|r| r.ended_ms.is_some());
        rec.is_some()
    });
    rec.expect("record")
}

/// Agent, queue and transfer target of each leg of `rec`, in order.
fn legs(rec: &sipacd::cdr::CallRecord) -> Vec<(&str, Option<&str>, Option<&str>)> {
    rec.legs
        .iter()
        .map(|l| {
            (
                l.agent.as_str(),
                l.queue.as_deref(),
                l.transferred_to.as_deref(),
            )
        })
        .collect()
}

/// Two SIPp agents on static contacts: 2001 takes queue `support`, 2002
/// has no skill any queue asks for (only a transfer to its id reaches it).
fn two_agents(first: u16, second: u16) -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2001]\ncontact = \"sip:2001@127.0.0.1:{first}\"\nskills = {{ support = 5 }}\n\
         \n[agents.2002]\ncontact = \"sip:2002@127.0.0.1:{second}\"\nskills = {{ billing = 1 }}\n"
    );
    spec
}

/// A SIPp agent phone on `port` (its static contact) playing `scenario`
/// against the daemon's SIP port `daemon`, with `-m 2` (sipacd's OPTIONS
/// ping is its second call) and `args`. `echo`: it echoes the RTP it gets
/// (`-rtp_echo` on a media port of its own).
fn sipp_agent(
    port: u16,
    daemon: u16,
    scenario: &'static str,
    args: &[&str],
    echo: bool,
) -> JoinHandle<SippRun> {
    let mut args: Vec<String> = ["-m", "2"]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect();
    if echo {
        args.extend(["-rtp_echo".into(), "-mp".into(), free_port().to_string()]);
    }
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_sipp_at(port, daemon, scenario, &args, T)
    })
}

/// Waits (bounded) for `what` in sipacd's log.
fn logged(d: &Daemon, what: &str) {
    assert!(
        d.wait_for_log(T, |l| l.contains(what)),
        "no {what:?} in sipacd's log:\n{}",
        d.stderr()
    );
}

/// Agent `id`'s state in `GET /api/v1/agents`.
fn agent_state(d: &Daemon, id: &str) -> String {
    let agents = get_json(&format!("{}/api/v1/agents", d.admin_url()));
    agents
        .as_array()
        .and_then(|a| a.iter().find(|v| v["id"] == id))
        .and_then(|v| v["state"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// Polls agent `id` until its state is `state`; panics after `within`.
fn wait_state(d: &Daemon, id: &str, state: &str, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let now = agent_state(d, id);
        if now == state {
            return;
        }
        assert!(
            Instant::now() < until,
            "agent {id} is {now:?}, not {state:?}, after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The caller hears its own audio back from the echoing far end.
fn assert_talks(caller: &Caller, to: &str, d: &Daemon) {
    let n = caller.echoed(50);
    assert!(
        n >= 25,
        "only {n} of 50 packets came back from {to}\n{}",
        d.stderr()
    );
}

#[test]
fn a_sipp_agent_transfers_its_caller_to_an_agent_id_and_they_talk_while_it_wraps_up() {
    if !sipp_or_skip() {
        return;
    }
    let (first, second) = (free_port(), free_port());
    let mut spec = two_agents(first, second);
    spec.support_extra = "wrapup_s = 3\n".into();
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let mut events = Stream::open(d.cfg.spec.admin_port, "", "");
    events.until("hello", |v| v["type"] == "hello");
    let state_of_2001 = |want: &'static str| {
        move |v: &serde_json::Value| {
            v["type"] == "agent_state" && v["agent"] == "2001" && v["state"] == want
        }
    };
    let target_arg = ["-key", "target", "2002"];
    let transferor = sipp_agent(first, port, "agent_transfers_to_agent", &target_arg, false);
    let target = sipp_agent(second, port, "agent_takes_direct_transfer", &[], true);
    // Both agents' pings answered: they are reachable before the call.
    std::thread::sleep(Duration::from_millis(1500));
    let mut caller = Caller::dial_from(port, "1500", "caller");
    logged(&d, "blind transfer");
    // The transferor wraps up (wrapup_s = 3), then is offered calls again.
    let wrapup = events.until("2001 in wrap-up", state_of_2001("wrapup"));
    assert_eq!(agent_state(&d, "2001"), "wrapup", "{wrapup}");
    wait_state(&d, "2002", "on_call", T);
    // Only 2002 echoes: what comes back went through its leg.
    assert_talks(&caller, "agent 2002", &d);
    let available = events.until("2001 available again", state_of_2001("available"));
    let waited = available["ts_ms"].as_i64().unwrap_or(0) - wrapup["ts_ms"].as_i64().unwrap_or(0);
    assert!(waited >= 2500, "wrap-up lasted {waited} ms, not wrapup_s");
    assert_eq!(agent_state(&d, "2001"), "available");
    caller.bye();
    check("transferring agent", &transferor.join().expect("sipp"), &d);
    check("agent 2002", &target.join().expect("sipp"), &d);

    let rec = final_record(&d);
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    assert_eq!(rec.agent.as_deref(), Some("2002"), "{rec:?}");
    assert_eq!(
        legs(&rec),
        [
            ("2001", Some("support"), Some("agent:2002")),
            ("2002", Some("support"), None)
        ],
        "{rec:?}"
    );
    assert!(
        rec.legs[0].ended_ms <= Some(rec.legs[1].answered_ms),
        "legs in order: {rec:?}"
    );
}

#[test]
fn a_transfer_to_an_agent_that_cannot_ring_fails_with_480_and_the_caller_stays() {
    if !sipp_or_skip() {
        return;
    }
    let (first, second) = (free_port(), free_port());
    let d = Daemon::start_with(two_agents(first, second));
    let port = d.sip_port();
    // 1001 is configured but has never registered.
    let target_arg = ["-key", "target", "1001"];
    let transferor = sipp_agent(first, port, "agent_transfer_fails", &target_arg, false);
    std::thread::sleep(Duration::from_millis(1500));
    let caller = run_sipp(port, "call_caller_waits", &["-s", "1500"], T);
    check("caller", &caller, &d);
    let transferor = transferor.join().expect("sipp");
    check("transferring agent", &transferor, &d);
    assert!(
        transferor
            .messages
            .contains("SIP/2.0 480 Temporarily Unavailable"),
        "{}",
        transferor.report()
    );

    let rec = final_record(&d);
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    assert_eq!(rec.agent.as_deref(), Some("2001"), "{rec:?}");
    assert_eq!(legs(&rec), [("2001", Some("support"), None)], "{rec:?}");
    logged(&d, "transfer to agent failed");
}

#[test]
fn a_transfer_to_an_agent_on_a_call_fails_with_486_and_the_caller_still_talks_to_the_transferor() {
    if !sipp_or_skip() {
        return;
    }
    let (first, second) = (free_port(), free_port());
    let mut spec = two_agents(first, second);
    spec.extra.push_str(
        "\n[queues.billing]\nskills = { billing = 1 }\n\
         \n[[numbers]]\nnumber = \"1700\"\nto = \"queue:billing\"\n",
    );
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let target_arg = ["-key", "target", "2002"];
    let transferor = sipp_agent(first, port, "agent_transfer_fails", &target_arg, true);
    let busy = sipp_agent(second, port, "agent_takes_transfer", &[], false);
    std::thread::sleep(Duration::from_millis(1500));
    // 2002 is on a call from queue billing when 2001 names it.
    let mut other = Caller::dial_from(port, "1700", "caller");
    wait_state(&d, "2002", "on_call", T);
    let mut caller = Caller::dial_from(port, "1500", "caller");
    logged(&d, "transfer to agent failed: 486 Busy Here");
    // The caller is still with 2001 (the one that echoes).
    assert_talks(&caller, "the transferor", &d);
    caller.bye();
    other.bye();
    let transferor = transferor.join().expect("sipp");
    check("transferring agent", &transferor, &d);
    check("agent 2002", &busy.join().expect("sipp"), &d);
    assert!(
        transferor.messages.contains("SIP/2.0 486 Busy Here"),
        "{}",
        transferor.report()
    );
    assert_eq!(agent_state(&d, "2001"), "available");
}

/// Agent 2001 (queue `support`) and trunk `gw` to a SIPp gateway on
/// `gw_port`, the trunk outside transfers use.
fn trunk_spec(first: u16, gw_port: u16) -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2001]\ncontact = \"sip:2001@127.0.0.1:{first}\"\nskills = {{ support = 5 }}\n\
         \n[trunks.gw]\nuri = \"sip:gw@127.0.0.1:{gw_port}\"\nusername = \"acme\"\n\
         password = \"pw\"\ncaller_id = \"1500\"\nmax_calls = 2\n\
         \n[features]\ntransfer_trunk = \"gw\"\ntransfer_prefixes = [\"00\"]\n"
    );
    spec
}

const OUTSIDE: &str = "0049301234567";

#[test]
fn a_transfer_to_an_outside_number_goes_out_through_the_trunk_and_the_caller_talks_to_it() {
    if !sipp_or_skip() {
        return;
    }
    let (first, gw_port) = (free_port(), free_port());
    let mut spec = trunk_spec(first, gw_port);
    spec.support_extra = "wrapup_s = 30\n".into();
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let mut events = Stream::open(d.cfg.spec.admin_port, "", "");
    events.until("hello", |v| v["type"] == "hello");
    let media = free_port().to_string();
    let gateway = std::thread::spawn(move || {
        let args = ["-rtp_echo", "-mp", &media];
        run_sipp_at(gw_port, port, "gateway_answers_transfer", &args, T)
    });
    let target_arg = ["-key", "target", OUTSIDE];
    let transferor = sipp_agent(first, port, "agent_transfers_to_agent", &target_arg, false);
    std::thread::sleep(Duration::from_millis(1500));
    let mut caller = Caller::dial_from(port, "1500", "caller");
    logged(&d, "outside number answered: bridged to the trunk");
    // The gateway echoes; the transferor (detached by now) never did.
    assert_talks(&caller, "the outside number", &d);
    events.until("call_transferred", |v| {
        v["type"] == "call_transferred" && v["to"] == "number:0049301234567"
    });
    events.until("call_trunk_bridged", |v| {
        v["type"] == "call_trunk_bridged" && v["trunk"] == "gw" && v["to"] == OUTSIDE
    });
    wait_state(&d, "2001", "wrapup", T);
    let calls = get_json(&format!("{}/api/v1/calls", d.admin_url()));
    assert_eq!(calls[0]["state"], "connected", "{calls}");
    // The caller hangs up: sipacd ends the trunk leg (the gateway's BYE).
    caller.bye();
    check("transferring agent", &transferor.join().expect("sipp"), &d);
    let gateway = gateway.join().expect("sipp");
    check("gateway", &gateway, &d);
    assert!(
        gateway.messages.contains("CSeq: 2 INVITE"),
        "{}",
        gateway.report()
    );

    events.until("call_ended", |v| {
        v["type"] == "call_ended" && v["disposition"] == "answered" && v["hangup_by"] == "caller"
    });
    let rec = final_record(&d);
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    assert_eq!(rec.hangup_by, Some(HangupBy::Caller), "{rec:?}");
    assert_eq!(
        legs(&rec),
        [
            ("2001", Some("support"), Some("number:0049301234567")),
            ("", None, None)
        ],
        "{rec:?}"
    );
    let outside = &rec.legs[1];
    assert_eq!(
        (outside.trunk.as_deref(), outside.number.as_deref()),
        (Some("gw"), Some(OUTSIDE)),
        "{rec:?}"
    );
    assert!(
        rec.legs[0].ended_ms <= Some(outside.answered_ms) && outside.ended_ms.is_some(),
        "legs in order: {rec:?}"
    );
}

#[test]
fn a_busy_outside_number_fails_the_transfer_with_486_and_the_caller_stays_with_the_agent() {
    if !sipp_or_skip() {
        return;
    }
    let (first, gw_port) = (free_port(), free_port());
    let d = Daemon::start_with(trunk_spec(first, gw_port));
    let port = d.sip_port();
    let gateway = std::thread::spawn(move || run_sipp_at(gw_port, port, "gateway_busy", &[], T));
    let target_arg = ["-key", "target", OUTSIDE];
    let transferor = sipp_agent(first, port, "agent_transfer_fails", &target_arg, true);
    std::thread::sleep(Duration::from_millis(1500));
    let mut caller = Caller::dial_from(port, "1500", "caller");
    logged(&d, "transfer to an outside number failed: 486 Busy Here");
    assert_talks(&caller, "the transferor", &d);
    caller.bye();
    let transferor = transferor.join().expect("sipp");
    check("transferring agent", &transferor, &d);
    check("gateway", &gateway.join().expect("sipp"), &d);
    assert!(
        transferor.messages.contains("SIP/2.0 486 Busy Here"),
        "{}",
        transferor.report()
    );
    let rec = final_record(&d);
    assert_eq!(rec.agent.as_deref(), Some("2001"), "{rec:?}");
    assert_eq!(legs(&rec), [("2001", Some("support"), None)], "{rec:?}");
}

fn check(name: &str, run: &SippRun, d: &Daemon) {
    assert!(
        run.success(),
        "{name}: {}\n--- sipacd ---\n{}",
        run.report(),
        d.stderr()
    );
}

#[test]
fn a_sipp_agent_transfers_its_caller_to_another_queue_where_a_second_agent_answers() {
    if !sipp_or_skip() {
        return;
    }
    let (first, second) = (free_port(), free_port());
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2001]\ncontact = \"sip:2001@127.0.0.1:{first}\"\nskills = {{ support = 5 }}\n\
         \n[agents.2002]\ncontact = \"sip:2002@127.0.0.1:{second}\"\nskills = {{ billing = 1 }}\n\
         \n[queues.billing]\nskills = {{ billing = 1 }}\ntransfer_priority = 5\n\
         \n[[numbers]]\nnumber = \"1700\"\nto = \"queue:billing\"\n"
    );
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let transferor = sipp_agent(first, port, "agent_transfers", &[], false);
    let target = sipp_agent(second, port, "agent_takes_transfer", &[], false);
    // Both agents' pings answered: they are reachable before the call.
    std::thread::sleep(Duration::from_millis(1500));
    let caller = run_sipp(port, "call_caller_waits", &["-s", "1500"], T);
    check("caller", &caller, &d);
    check("transferring agent", &transferor.join().expect("sipp"), &d);
    check("second agent", &target.join().expect("sipp"), &d);

    let rec = final_record(&d);
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    assert_eq!(rec.agent.as_deref(), Some("2002"), "{rec:?}");
    assert_eq!(rec.queue.as_deref(), Some("billing"), "{rec:?}");
    assert_eq!(
        legs(&rec),
        [
            ("2001", Some("support"), Some("queue:billing")),
            ("2002", Some("billing"), None)
        ],
        "{rec:?}"
    );
    assert!(
        rec.legs[0].ended_ms <= Some(rec.legs[1].answered_ms),
        "legs in order: {rec:?}"
    );
    assert!(d.stderr().contains("blind transfer"), "{}", d.stderr());
}
