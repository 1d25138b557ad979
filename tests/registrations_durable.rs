//! Registrations are written off the signalling tasks, in batches, and
//! still survive: a binding acknowledged with 200 is on disk within the
//! documented second, so a kill -9 after that loses nothing; a SIGTERM
//! right after the 200 writes it on the way out.

mod common;

use common::sipp::{run_sipp, sipp_or_skip};
use common::{Daemon, AGENT_PASSWORD};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);
/// README: "written to disk within 1 s of the 200"; waited a bit past it.
const PAST_THE_WINDOW: Duration = Duration::from_millis(1500);

fn register(d: &Daemon) {
    let run = run_sipp(
        d.sip_port(),
        "register_ok",
        &["-s", "1001", "-au", "1001", "-ap", AGENT_PASSWORD],
        T,
    );
    assert!(run.success(), "{}\n{}", run.report(), d.stderr());
}

/// `registered` of agent 1001 in the admin API.
fn registered(d: &Daemon) -> bool {
    let url = format!("{}/api/v1/agents", d.admin_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let agents: serde_json::Value =
        rt.block_on(async { reqwest::get(&url).await.unwrap().json().await.unwrap() });
    agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "1001")
        .unwrap_or_else(|| panic!("no agent 1001 in {agents}"))["registered"]
        .as_bool()
        .unwrap()
}

#[test]
fn a_registration_survives_kill_9_once_the_window_has_passed() {
    if !sipp_or_skip() {
        return;
    }
    let mut d = Daemon::start();
    assert!(!registered(&d));
    register(&d);
    assert!(registered(&d));
    std::thread::sleep(PAST_THE_WINDOW);
    d.kill9_and_restart();
    assert!(
        d.wait_for_log(T, |l| l.contains("registrations restored")
            && l.contains("bindings=1")),
        "{}",
        d.stderr()
    );
    assert!(registered(&d), "the binding is back after kill -9");
    assert_eq!(d.bindings_of("1001").len(), 1);
}

#[test]
fn a_registration_just_made_is_written_on_sigterm() {
    if !sipp_or_skip() {
        return;
    }
    let mut d = Daemon::start();
    register(&d);
    // At once, well inside the batching window: the stop writes it.
    d.signal("TERM");
    assert!(
        d.wait_exit(T).is_some_and(|s| s.success()),
        "{}",
        d.stderr()
    );
    assert_eq!(d.bindings_of("1001").len(), 1, "{}", d.stderr());
    d.kill9_and_restart(); // (already exited: just starts it again)
    assert!(registered(&d), "the binding is back after the restart");
}
