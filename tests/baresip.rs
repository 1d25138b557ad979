//! A real softphone, baresip 1.0, against the running daemon: it registers
//! with digest authentication (and is refused with a wrong password), and two
//! of them, a caller and an agent, talk through sipacd's bridge: each one's
//! recording must hold the other's tone, by frequency.
//!
//! Without baresip these tests fail (see `common::require`).

mod common;

use common::baresip::{
    agent_account, assert_tone, baresip_or_skip, caller_account, sine_wav, Baresip,
};
use common::{Daemon, AGENT_PASSWORD};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn wait_binding(d: &Daemon, user: &str, timeout: Duration) -> Option<serde_json::Value> {
    d.wait_binding(user, timeout)
}

#[test]
fn baresip_registers_with_the_right_password() {
    if !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let agent = Baresip::start(
        "agent",
        &agent_account(d.sip_port(), AGENT_PASSWORD),
        &sine_wav(1000.0, 1.0),
    );
    assert!(
        agent.wait_for_output(WAIT, |o| o
            .contains("1001@support.example.com: {0/UDP/v4} 200 OK")),
        "baresip did not report its registration; output:\n{}\n--- sipacd ---\n{}",
        agent.output(),
        d.stderr()
    );
    let b = wait_binding(&d, "1001", WAIT)
        .unwrap_or_else(|| panic!("sipacd stored no binding for 1001; sipacd:\n{}", d.stderr()));
    assert_eq!(b["transport"], "udp", "{b}");
    // The binding points at the phone: its Contact names the port the
    // REGISTER came from (baresip listens on one UDP port).
    let source_port = b["source"].as_str().unwrap().rsplit(':').next().unwrap();
    let contact = b["contact"].as_str().unwrap();
    assert!(
        contact.contains("1001") && contact.ends_with(&format!("127.0.0.1:{source_port}")),
        "{b}"
    );
    assert!(d
        .stderr()
        .lines()
        .any(|l| l.contains("registration updated") && l.contains("user=1001")));
}

#[test]
fn baresip_with_a_wrong_password_gets_no_binding() {
    if !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let agent = Baresip::start(
        "agent",
        &agent_account(d.sip_port(), "not-the-password"),
        &sine_wav(1000.0, 1.0),
    );
    assert!(
        agent.wait_for_output(WAIT, |o| o.contains("403 Forbidden")),
        "baresip did not report 403; output:\n{}\n--- sipacd ---\n{}",
        agent.output(),
        d.stderr()
    );
    // Give a wrongly made binding time to reach the disk: none must.
    assert_eq!(wait_binding(&d, "1001", Duration::from_secs(2)), None);
    let log = d.stderr();
    assert!(log.contains("REGISTER with failing credentials"), "{log}");
    assert!(!log.contains("registration updated"), "{log}");
    assert!(!agent.output().contains("200 OK"), "{}", agent.output());
}

/// Checks that `who`'s one recording holds the other phone's `want` Hz and
/// never its own `own` Hz (see `assert_tone`).
fn assert_heard(who: &Baresip, want: f64, own: f64, min_s: f64) {
    let files = who.heard();
    assert_eq!(files.len(), 1, "{}: recordings {files:?}", who.name);
    assert_tone(&who.name, &files[0], want, own, min_s);
}

#[test]
fn two_softphones_talk_through_sipacd() {
    if !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let port = d.sip_port();
    let mut agent = Baresip::start(
        "agent",
        &agent_account(port, AGENT_PASSWORD),
        &sine_wav(1000.0, 20.0),
    );
    let mut agent_ctrl = agent.ctrl();
    assert!(
        wait_binding(&d, "1001", WAIT).is_some(),
        "agent did not register; baresip:\n{}\nsipacd:\n{}",
        agent.output(),
        d.stderr()
    );
    // The caller never registers (regint=0): it just dials the number.
    let mut caller = Baresip::start("caller", &caller_account(port), &sine_wav(440.0, 20.0));
    let mut caller_ctrl = caller.ctrl();
    let r = caller_ctrl.command("dial", &format!("sip:1500@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");

    let established = agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT);
    assert!(
        established.is_some(),
        "the agent's phone never got the call; agent:\n{}\ncaller:\n{}\nsipacd:\n{}",
        agent.output(),
        caller.output(),
        d.stderr()
    );
    assert!(caller_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some());
    assert!(d.wait_for_log(WAIT, |l| l.contains("agent answered: bridged")));
    // Talk for 3 s from the moment both phones receive RTP (on a loaded
    // machine that can lag the call's establishment).
    for (who, ctrl) in [("agent", &mut agent_ctrl), ("caller", &mut caller_ctrl)] {
        assert!(
            ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some(),
            "the {who}'s phone never received RTP; sipacd:\n{}",
            d.stderr()
        );
    }

    std::thread::sleep(Duration::from_secs(3));
    let r = caller_ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(caller_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    assert!(
        agent_ctrl.wait_event("CALL_CLOSED", WAIT).is_some(),
        "the agent's call did not end after the caller hung up; sipacd:\n{}",
        d.stderr()
    );
    // Stopping the phones closes (and finalises) their recordings.
    caller.stop();
    agent.stop();

    assert_heard(&agent, 440.0, 1000.0, 2.0);
    assert_heard(&caller, 1000.0, 440.0, 2.0);
}
