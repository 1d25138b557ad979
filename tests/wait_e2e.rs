//! Estimated wait against the running daemon: a SIPp agent (static
//! contact) takes one SIPp caller, whose talk time plus the queue's wrap-up
//! is the queue's first handle time; while that agent is in wrap-up, the
//! next SIPp caller waits and the API shows its place and estimate.

mod common;

use common::http::{get_json, request};
use common::sipp::{run_sipp, run_sipp_at, sipp_or_skip};
use common::{free_port, wait_until, ConfigSpec, Daemon};
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
