//! A baresip agent holds and resumes in the middle of a call, then tries a
//! transfer: while held the caller hears the queue's music (not the agent,
//! and the call is not cut off); after resume they hear each other again;
//! a transfer to an outside number is refused (403: no trunk) without
//! ending anything; the call record
//! counts the time on hold. Checked by tone frequency in the caller's
//! recording.
//!
//! Without baresip these tests fail (see `common::require`).

mod common;

use common::baresip::{
    agent_account, baresip_or_skip, caller_account, read_wav_8k_mono, sine_wav, timeline, Baresip,
};
use common::{Daemon, AGENT_PASSWORD};
use sipacd::cdr::{CdrFilter, CdrStore, Disposition, HangupBy};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
/// The agent's tone, the caller's, and the harness's music (`moh.wav`: a
/// 400 Hz square wave).
const AGENT_HZ: f64 = 1000.0;
const CALLER_HZ: f64 = 600.0;
const MUSIC_HZ: f64 = 400.0;

/// Agent and music, as `timeline` letters.
const TONES: &[(char, f64, f64)] = &[('A', AGENT_HZ, 0.5), ('M', MUSIC_HZ, 0.4)];

#[test]
fn baresip_agent_holds_resumes_and_a_refused_refer_does_not_drop_the_call() {
    if !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let port = d.sip_port();
    let mut agent = Baresip::start(
        "agent",
        &agent_account(port, AGENT_PASSWORD),
        &sine_wav(AGENT_HZ, 40.0),
    );
    let mut agent_ctrl = agent.ctrl();
    assert!(
        agent.wait_for_output(WAIT, |o| o.contains("200 OK")),
        "agent did not register:\n{}\n{}",
        agent.output(),
        d.stderr()
    );
    let mut caller = Baresip::start("caller", &caller_account(port), &sine_wav(CALLER_HZ, 40.0));
    let mut caller_ctrl = caller.ctrl();
    let r = caller_ctrl.command("dial", &format!("sip:1500@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some(),
        "the agent never got the call:\n{}",
        d.stderr()
    );
    assert!(agent_ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some());
    assert!(caller_ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some());
    std::thread::sleep(Duration::from_secs(3));

    // Hold: the agent's phone sends a re-INVITE with a=sendonly.
    let r = agent_ctrl.command("hold", "");
    assert_eq!(r["ok"], true, "hold: {r}");
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("hold changed")
            && l.contains("held=true")),
        "sipacd saw no hold:\n{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    let r = agent_ctrl.command("resume", "");
    assert_eq!(r["ok"], true, "resume: {r}");
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("hold changed")
            && l.contains("held=false")),
        "sipacd saw no resume:\n{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));

    // A blind transfer to an outside number: no trunk, so sipacd refuses
    // the REFER (403) and ends nothing. baresip 1.0's menu hangs its own
    // call up when a transfer fails, so here the call ends by the agent's
    // BYE, after the refusal.
    let r = agent_ctrl.command("transfer", &format!("sip:0049301234567@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "transfer: {r}");
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("transfer refused")),
        "no REFER reached sipacd:\n{}",
        d.stderr()
    );
    assert!(
        agent.wait_for_output(WAIT, |o| o.contains("403")),
        "the agent's phone did not see the refusal:\n{}",
        agent.output()
    );
    assert!(caller_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    let log = d.stderr();
    let declined = log.find("transfer refused").expect("refused");
    let agent_bye = log.find("agent hung up").unwrap_or_else(|| {
        panic!("the call must end by the agent's own BYE, not by sipacd:\n{log}")
    });
    assert!(declined < agent_bye, "{log}");
    caller.stop();
    agent.stop();

    // The caller heard: the agent, then music while held, then the agent.
    let files = caller.heard();
    assert_eq!(files.len(), 1, "caller recordings {files:?}");
    let line = timeline(&read_wav_8k_mono(&files[0]), TONES);
    let talk = line
        .find("AAAA")
        .unwrap_or_else(|| panic!("no talk before hold: {line}"));
    let held = line[talk..]
        .find("MMMM")
        .map(|i| i + talk)
        .unwrap_or_else(|| panic!("no music while held: {line}"));
    assert!(
        line[held..].contains("AAAA"),
        "no talk after resume: {line}"
    );
    eprintln!("caller timeline (0.5 s each): {line}");

    // The call record: answered, ended by the agent, ~3 s on hold.
    // The record reaches the file shortly after the call's end (the
    // writer gathers a commit): waited for, not assumed.
    let store = CdrStore::open_reader(&d.cfg.root().join("data")).expect("records");
    let finished = || {
        store
            .query(&CdrFilter::default())
            .expect("query")
            .into_iter()
            .find(|r| r.ended_ms.is_some())
    };
    let deadline = std::time::Instant::now() + WAIT;
    let mut rec = finished();
    while rec.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        rec = finished();
    }
    let rec = rec.expect("a finished record");
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    assert_eq!(rec.hangup_by, Some(HangupBy::Agent), "{rec:?}");
    assert!(
        (2_500..6_000).contains(&rec.hold_ms),
        "hold_ms {} for a 3 s hold",
        rec.hold_ms
    );
}
