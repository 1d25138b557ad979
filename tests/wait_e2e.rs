//! Estimated wait against the running daemon: a SIPp agent (static
//! contact) takes one SIPp caller, whose talk time plus the queue's wrap-up
//! is the queue's first handle time; while that agent is in wrap-up, the
//! next SIPp caller waits and the API shows its place and estimate. With
//! three callers waiting on that one agent, a second agent made available
//! through the admin API takes the first of them and the estimates of the
//! queue, of the last caller and on `/metrics` fall. A third test listens
//! to a waiting caller's announcement: its position, then its estimate.

mod common;

use common::http::{get_json, post_json, request};
use common::phone::{AgentPhone, Caller};
use common::sip::header;
use common::sipp::{run_sipp, run_sipp_at, sipp_or_skip};
use common::spoken::Spoken;
use common::{free_port, wait_until, ConfigSpec, Daemon};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const WRAPUP_S: f64 = 30.0;

#[test]
fn a_waiting_caller_sees_the_wait_the_last_call_taught() {
    if !sipp_or_skip() {
        return;
    }
    let agent_port = free_port();
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2101]\ncontact = \"sip:2101@127.0.0.1:{agent_port}\"\nskills = {{ s = 1 }}\n\
         \n[queues.agents]\nskills = {{ s = 1 }}\nwrapup_s = {WRAPUP_S}\n\
         \n[[numbers]]\nnumber = \"1820\"\nto = \"queue:agents\"\n"
    );
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let base = d.admin_url();
    let queue = |field: &str| {
        let qs = get_json(&format!("{base}/api/v1/queues"));
        qs.as_array()
            .and_then(|a| a.iter().find(|q| q["name"] == "agents").cloned())
            .map(|q| q[field].clone())
            .unwrap_or_default()
    };
    assert!(queue("handle_time_s").is_null(), "no call ended yet");

    // One call: answered by the agent, ended by the caller after ~3 s.
    let agent =
        std::thread::spawn(move || run_sipp_at(agent_port, port, "agent_answers", &["-m", "2"], T));
    std::thread::sleep(Duration::from_millis(500));
    let first = run_sipp(port, "call_caller_waits", &["-s", "1820"], T);
    assert!(first.success(), "{}\n{}", first.report(), d.stderr());
    assert!(agent.join().unwrap().success());
    wait_until("the first handle time is learnt", T, || {
        queue("handle_time_s").as_f64().is_some()
    });
    let aht = queue("handle_time_s").as_f64().unwrap();
    assert!(
        (WRAPUP_S..WRAPUP_S + 4.0).contains(&aht),
        "talk (under 3 s) plus wrap-up: {aht}"
    );

    // The agent is in wrap-up: the next caller waits one handle time.
    let second =
        std::thread::spawn(move || run_sipp(port, "call_caller_waits", &["-s", "1820"], T));
    let mut seen = None;
    wait_until("the second caller waits with an estimate", T, || {
        let calls = get_json(&format!("{base}/api/v1/calls"));
        seen = calls
            .as_array()
            .and_then(|a| a.iter().find(|c| c["queue"] == "agents").cloned());
        seen.as_ref()
            .is_some_and(|c| c["estimated_wait_s"].is_number())
    });
    let call = seen.unwrap();
    assert_eq!(call["position"], 1, "{call}");
    let mine = call["estimated_wait_s"].as_f64().unwrap();
    assert!(
        (mine - aht.round()).abs() <= 1.0,
        "{call} vs handle time {aht}"
    );
    // A caller arriving now would be second: two turns of the one agent.
    let next = queue("estimated_wait_s").as_f64().unwrap();
    assert!((next - 2.0 * aht).abs() <= 1.0, "{next} vs 2 x {aht}");
    let metrics = request("GET", &format!("{base}/metrics"), None).1;
    assert!(
        metrics.contains("sipacd_queue_estimated_wait_seconds{queue=\"agents\"}"),
        "{metrics}"
    );
    assert!(second.join().unwrap().success());
}

/// `sipacd_queue_estimated_wait_seconds` of queue `agents` on `/metrics`.
fn metric_estimate(base: &str) -> Option<f64> {
    let metrics = request("GET", &format!("{base}/metrics"), None).1;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sipacd_queue_estimated_wait_seconds{queue=\"agents\"} "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn the_estimated_wait_falls_as_a_second_agent_joins() {
    if !sipp_or_skip() {
        return;
    }
    let agent_port = free_port();
    let mut second = AgentPhone::new("2102");
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2101]\ncontact = \"sip:2101@127.0.0.1:{agent_port}\"\nskills = {{ s = 1 }}\n\
         {}\n[queues.agents]\nskills = {{ s = 1 }}\nwrapup_s = {WRAPUP_S}\n\
         \n[[numbers]]\nnumber = \"1820\"\nto = \"queue:agents\"\n",
        second.toml("skills = { s = 1 }")
    );
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let base = d.admin_url();
    let set_state = |agent: &str, state: &str| {
        let url = format!("{base}/api/v1/agents/{agent}/state");
        let (code, v) = post_json(&url, &json!({ "state": state }));
        assert_eq!(code, 200, "{v}");
    };
    let queue = |field: &str| {
        let qs = get_json(&format!("{base}/api/v1/queues"));
        qs.as_array()
            .and_then(|a| a.iter().find(|q| q["name"] == "agents").cloned())
            .map(|q| q[field].clone())
            .unwrap_or_default()
    };
    let waiting = || -> Vec<Value> {
        let calls = get_json(&format!("{base}/api/v1/calls"));
        let mut v: Vec<Value> = calls
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["queue"] == "agents" && c["position"].is_number())
            .cloned()
            .collect();
        v.sort_by_key(|c| c["position"].as_u64());
        v
    };
    // 2102 stays out until the line has formed.
    set_state("2102", "paused");

    // The handle time, taught as above: 2101 answers, the caller hangs up
    // after ~3 s, 2101 wraps up for WRAPUP_S.
    let agent =
        std::thread::spawn(move || run_sipp_at(agent_port, port, "agent_answers", &["-m", "2"], T));
    std::thread::sleep(Duration::from_millis(500));
    let first = run_sipp(port, "call_caller_waits", &["-s", "1820"], T);
    assert!(first.success(), "{}\n{}", first.report(), d.stderr());
    assert!(agent.join().unwrap().success());
    wait_until("the first handle time is learnt", T, || {
        queue("handle_time_s").as_f64().is_some()
    });
    let aht = queue("handle_time_s").as_f64().unwrap();

    // Three callers wait on the one agent serving (2101, in wrap-up).
    // Each is in the line before the next dials: the order is known.
    let mut callers: Vec<Caller> = Vec::new();
    for n in ["5552001", "5552002", "5552003"] {
        callers.push(Caller::dial_from(port, "1820", n));
        let want = callers.len();
        wait_until("the caller in the line", T, || waiting().len() == want);
    }
    let mut line = Vec::new();
    wait_until("three callers wait with estimates", T, || {
        line = waiting();
        line.len() == 3 && line.iter().all(|c| c["estimated_wait_s"].is_number())
    });
    let last = &line[2];
    assert_eq!(last["id"], callers[2].call_id.as_str(), "{last}");
    assert_eq!(last["position"], 3, "{last}");
    let alone = last["estimated_wait_s"].as_f64().unwrap();
    assert!(
        (alone - 3.0 * aht).abs() <= 1.5,
        "third in line, one agent: {alone} vs 3 x {aht}"
    );
    let queue_alone = queue("estimated_wait_s").as_f64().unwrap();
    assert!(
        (queue_alone - 4.0 * aht).abs() <= 1.5,
        "a fourth caller, one agent: {queue_alone} vs 4 x {aht}"
    );
    let metric_alone = metric_estimate(&base).expect("the queue's estimate on /metrics");
    assert!(
        (metric_alone - queue_alone).abs() <= 1.5,
        "/metrics {metric_alone} vs the API's {queue_alone}"
    );

    // 2102 joins: it is offered the first caller, and two agents serve.
    set_state("2102", "available");
    let inv = second
        .expect_invite(T)
        .unwrap_or_else(|| panic!("2102 was offered nobody\n{}", d.stderr()));
    let from = header(&inv, "From", Some("f")).unwrap_or_default();
    assert!(from.contains("<sip:5552001@"), "{from}");
    second.answer(&inv);
    let mut now = Value::Null;
    wait_until("the last caller's estimate falls", T, || {
        now = waiting()
            .into_iter()
            .find(|c| c["id"] == callers[2].call_id.as_str())
            .unwrap_or_default();
        now["estimated_wait_s"].as_f64().is_some_and(|e| e < alone)
    });
    assert_eq!(now["position"], 2, "{now}");
    let joined = now["estimated_wait_s"].as_f64().unwrap();
    assert!(
        (joined - aht).abs() <= 1.5,
        "second in line, two agents: {joined} vs 2 x {aht} / 2"
    );
    let queue_joined = queue("estimated_wait_s").as_f64().unwrap();
    assert!(
        queue_joined < queue_alone && (queue_joined - 1.5 * aht).abs() <= 1.5,
        "a third caller, two agents: {queue_joined} vs 3 x {aht} / 2 (was {queue_alone})"
    );
    let metric_joined = metric_estimate(&base).expect("the queue's estimate on /metrics");
    assert!(
        metric_joined < metric_alone && (metric_joined - queue_joined).abs() <= 1.5,
        "/metrics {metric_joined} (was {metric_alone}) vs the API's {queue_joined}"
    );

    eprintln!(
        "handle time {aht} s; last caller {alone} -> {joined} s; queue {queue_alone} -> \
         {queue_joined} s; /metrics {metric_alone} -> {metric_joined} s"
    );
    for c in &mut callers {
        c.bye();
    }
    assert!(second.expect_bye(T).is_some(), "no BYE to 2102");
}

/// The prompts of the position and wait announcement, copied from the
/// project's `prompts/` (real speech, so each prompt's frames are its own).
const SPOKEN: [&str; 6] = [
    "you-are-number.wav",
    "1.wav",
    "in-the-queue.wav",
    "estimated-wait.wav",
    "2.wav",
    "minutes.wav",
];

/// One call to 1821 through the SIPp agent on `agent_port` (3 s talk):
/// the queue `agents` learns a handle time above 60 s (its 90 s wrap-up),
/// and the agent is then in wrap-up.
fn teach_handle_time(d: &Daemon, agent_port: u16) {
    let (port, base) = (d.sip_port(), d.admin_url());
    let agent =
        std::thread::spawn(move || run_sipp_at(agent_port, port, "agent_answers", &["-m", "1"], T));
    std::thread::sleep(Duration::from_millis(500));
    let first = run_sipp(port, "call_caller_waits", &["-s", "1821"], T);
    assert!(first.success(), "{}\n{}", first.report(), d.stderr());
    assert!(agent.join().unwrap().success());
    wait_until("the first handle time is learnt", T, || {
        get_json(&format!("{base}/api/v1/queues"))
            .as_array()
            .and_then(|a| a.iter().find(|q| q["name"] == "agents").cloned())
            .is_some_and(|q| q["handle_time_s"].as_f64().is_some_and(|h| h > 60.0))
    });
}

#[test]
fn the_caller_hears_its_position_then_its_estimated_wait() {
    if !sipp_or_skip() {
        return;
    }
    // A handle time of about 93 s (3 s talk, 90 s wrap-up): the first
    // waiting caller's estimate is one handle time, read as "2 minutes".
    let agent_port = free_port();
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2102]\ncontact = \"sip:2102@127.0.0.1:{agent_port}\"\nskills = {{ s = 1 }}\n\
         \n[queues.agents]\nskills = {{ s = 1 }}\nwrapup_s = 90\n\
         \n[[numbers]]\nnumber = \"1821\"\nto = \"queue:agents\"\n"
    );
    let mut d = Daemon::start_with(spec);
    // Announcements need their prompts, which are checked when the
    // configuration is compiled: put them in place, then turn them on.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let digits = (0..10).map(|n| format!("{n}.wav"));
    for name in SPOKEN.iter().map(|s| s.to_string()).chain(digits) {
        std::fs::copy(src.join(&name), d.cfg.root().join("prompts").join(&name)).unwrap();
    }
    d.cfg.spec.extra = d.cfg.spec.extra.replace(
        "wrapup_s = 90\n",
        "wrapup_s = 90\nannounce_position_s = 10\n",
    );
    d.cfg.write();
    d.signal("HUP");
    assert!(
        d.wait_for_log(T, |l| l.contains("reload") && l.contains("applied")),
        "{}",
        d.stderr()
    );
    let (port, base) = (d.sip_port(), d.admin_url());
    teach_handle_time(&d, agent_port);

    // The agent is in wrap-up: this caller waits first in line.
    let caller = Caller::dial_from(port, "1821", "5550021");
    let rtp = caller.rtp_socket();
    // Announced 10 s after joining; the whole announcement lasts ~7 s.
    let names = Spoken::new(&SPOKEN).heard_in_order(rtp, SPOKEN.len(), 5, Duration::from_secs(30));
    assert_eq!(
        names,
        SPOKEN.to_vec(),
        "\"you are number 1 in the queue, estimated wait 2 minutes\" in that order\n{}",
        d.stderr()
    );
    let calls = get_json(&format!("{base}/api/v1/calls"));
    let mine = calls
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["id"] == caller.call_id.as_str())
                .cloned()
        })
        .unwrap_or_else(|| panic!("{calls}"));
    let est = mine["estimated_wait_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("{mine}"));
    assert!((60.0..=120.0).contains(&est), "read as 2 minutes: {mine}");
}

#[test]
fn a_callback_is_offered_once_the_estimated_wait_is_above_the_queues_limit() {
    if !sipp_or_skip() {
        return;
    }
    // The queue offers a callback only by estimate (`above_wait_s = 60`,
    // no `after_s`). The first caller meets a free agent: no wait, no
    // offer. Its call teaches a handle time of about 93 s (3 s talk, 90 s
    // wrap-up), so the next caller's estimate is above 60 s: offered.
    let agent_port = free_port();
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2102]\ncontact = \"sip:2102@127.0.0.1:{agent_port}\"\nskills = {{ s = 1 }}\n\
         \n[queues.agents]\nskills = {{ s = 1 }}\nwrapup_s = 90\n\
         \n[queues.agents.callback]\ntrunk = \"gw\"\nabove_wait_s = 60\nprompt = \"moh.wav\"\n\
         number_prompt = \"moh.wav\"\naccepted_prompt = \"moh.wav\"\nagent_prompt = \"moh.wav\"\n\
         \n[trunks.gw]\nuri = \"sip:gw@127.0.0.1:9\"\n\
         \n[[numbers]]\nnumber = \"1821\"\nto = \"queue:agents\"\n"
    );
    let d = Daemon::start_with(spec);
    let (port, base) = (d.sip_port(), d.admin_url());
    teach_handle_time(&d, agent_port);
    assert!(
        !d.stderr().contains("callback offered"),
        "no offer to a caller with no wait ahead\n{}",
        d.stderr()
    );

    // The agent is in wrap-up: this caller's estimate is one handle time.
    let caller = Caller::dial_from(port, "1821", "5550021");
    let cid = caller.call_id.clone();
    assert!(
        d.wait_for_log(Duration::from_secs(5), |l| {
            l.contains("callback offered") && l.contains(&cid)
        }),
        "no offer by estimate\n{}",
        d.stderr()
    );
    let calls = get_json(&format!("{base}/api/v1/calls"));
    let mine = calls
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == cid.as_str()).cloned())
        .unwrap_or_else(|| panic!("{calls}"));
    let est = mine["estimated_wait_s"].as_f64().unwrap_or_default();
    assert!(
        est > 60.0,
        "offered because the estimate is above 60 s: {mine}"
    );
    // Accepted with its own number: it waits as a callback.
    caller.press("1#", 0);
    assert!(
        d.wait_for_log(T, |l| l.contains("callback accepted")),
        "{}",
        d.stderr()
    );
    assert!(caller.expect_bye(T).is_some(), "the goodbye, then BYE");
    let list = get_json(&format!("{base}/api/v1/callbacks"));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        (&list[0]["number"], &list[0]["call"], &list[0]["queue"]),
        (&json!("5550021"), &json!(cid), &json!("agents")),
        "{list}"
    );
}
