//! Hold and resume from either side of a call, with Linphone (`linphonec`
//! 5.1: `pause`, `resume`) and baresip 1.0 (`hold`, `resume`) against the
//! running daemon:
//! * an agent that holds: the caller hears the queue's music (`moh.wav`, a
//!   400 Hz square wave) instead of the agent, then the agent again;
//! * a caller that holds: sipacd takes the new SDP, the call stays up, and
//!   after resume the agent hears the caller's tone again.
//!
//! Each time sipacd logs `hold changed … side=… held=…` with the method the
//! phone held by (re-INVITE or UPDATE), and the call record counts the
//! time on hold. Audio is checked by tone frequency in the recordings.
//!
//! Without linphonec or baresip these tests fail (see `common::require`).

mod common;

use common::baresip::{
    agent_account, baresip_or_skip, caller_account, read_wav_8k_mono, sine_wav, timeline, Baresip,
    Ctrl,
};
use common::linphone::{linphonec_or_skip, Linphone, Role};
use common::{Daemon, AGENT_PASSWORD, DOMAIN};
use sipacd::cdr::{CallRecord, CdrFilter, CdrStore, Disposition, HangupBy};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
/// How long each test stays on hold, and talks before and after.
const HOLD: Duration = Duration::from_secs(3);
const AGENT_HZ: f64 = 1000.0;
const CALLER_HZ: f64 = 600.0;
/// The harness's `moh.wav`.
const MUSIC_HZ: f64 = 400.0;
/// `timeline` letters: the agent's tone, the caller's, the music.
const TONES: &[(char, f64, f64)] = &[
    ('A', AGENT_HZ, 0.5),
    ('C', CALLER_HZ, 0.5),
    ('M', MUSIC_HZ, 0.4),
];

fn baresip_agent(port: u16) -> Baresip {
    Baresip::start(
        "agent",
        &agent_account(port, AGENT_PASSWORD),
        &sine_wav(AGENT_HZ, 40.0),
    )
}

fn baresip_caller(port: u16) -> Baresip {
    Baresip::start("caller", &caller_account(port), &sine_wav(CALLER_HZ, 40.0))
}

fn linphone_agent(port: u16) -> Linphone {
    Linphone::start(
        "agent",
        Role::Agent {
            user: "1001",
            password: AGENT_PASSWORD,
            domain: DOMAIN,
            proxy_port: port,
        },
        &sine_wav(AGENT_HZ, 40.0),
    )
}

/// Dials the queue from a baresip caller and waits until both phones have
/// audio (the agent being Linphone, told by its console).
fn baresip_calls_linphone(d: &Daemon, caller: &mut Ctrl, agent: &Linphone) {
    let r = caller.command("dial", &format!("sip:1500@127.0.0.1:{}", d.sip_port()));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        agent.wait_for_output(WAIT, |o| o.contains("Media streams established")),
        "the Linphone agent never got the call up\n{}\n{}",
        agent.output(),
        d.stderr()
    );
    assert!(
        caller.wait_event("CALL_ESTABLISHED", WAIT).is_some()
            && caller.wait_event("CALL_RTPESTAB", WAIT).is_some(),
        "the caller never got audio\n{}",
        d.stderr()
    );
}

/// Waits for sipacd's `hold changed` line for `side` and `held`; returns
/// the method the phone used (INVITE or UPDATE).
fn wait_hold(d: &Daemon, side: &str, held: bool) -> String {
    let matches = |l: &str| {
        l.contains("hold changed")
            && l.contains(&format!("side={side}"))
            && l.contains(&format!("held={held}"))
    };
    assert!(
        d.wait_for_log(WAIT, matches),
        "sipacd saw no hold change side={side} held={held}:\n{}",
        d.stderr()
    );
    let log = d.stderr();
    let line = log.lines().find(|l| matches(l)).unwrap_or_default();
    let method = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("method="))
        .unwrap_or_default()
        .to_string();
    assert!(
        method == "INVITE" || method == "UPDATE",
        "hold by neither re-INVITE nor UPDATE: {line}"
    );
    eprintln!("{side} held={held} by {method}");
    method
}

/// The one finished call record: answered, with about `HOLD` on hold.
fn finished_record(d: &Daemon) -> CallRecord {
    let store = CdrStore::open_reader(&d.cfg.root().join("data")).expect("records");
    let rec = store
        .query(&CdrFilter::default())
        .expect("query")
        .into_iter()
        .find(|r| r.ended_ms.is_some())
        .unwrap_or_else(|| panic!("no finished record\n{}", d.stderr()));
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    let hold_ms = HOLD.as_millis() as i64;
    assert!(
        (hold_ms - 500..hold_ms + 3_000).contains(&rec.hold_ms),
        "hold_ms {} for a {HOLD:?} hold",
        rec.hold_ms
    );
    rec
}

/// Linphone held with `a=sendonly` and sipacd answered `a=recvonly` (its
/// own offers and answers are otherwise `sendrecv`).
fn assert_mirrored(phone: &Linphone) {
    let log = phone.log();
    assert!(
        log.contains("a=sendonly") && log.contains("a=recvonly"),
        "{}: no sendonly hold answered recvonly in its log",
        phone.name
    );
}

/// The timeline of one recording, printed for the test's output.
fn heard(who: &str, wav: &Path) -> String {
    let line = timeline(&read_wav_8k_mono(wav), TONES);
    eprintln!("{who} heard (0.5 s each): {line}");
    line
}

/// `first`, then `held` while on hold, then `first` again, in that order.
fn assert_order(who: &str, line: &str, first: &str, held: &str) {
    let talk = line
        .find(first)
        .unwrap_or_else(|| panic!("{who}: no talk before hold: {line}"));
    let hold = line[talk..]
        .find(held)
        .map(|i| i + talk)
        .unwrap_or_else(|| panic!("{who}: not {held:?} while held: {line}"));
    assert!(
        line[hold..].contains(first),
        "{who}: no talk after resume: {line}"
    );
}

/// A Linphone agent pauses and resumes: the baresip caller hears the agent,
/// the queue's music, the agent again.
#[test]
fn linphone_agent_pauses_and_resumes_a_baresip_caller() {
    if !linphonec_or_skip() || !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let mut agent = linphone_agent(d.sip_port());
    assert!(
        d.wait_binding("1001", WAIT).is_some(),
        "linphonec did not register\n{}\n{}",
        agent.output(),
        d.stderr()
    );
    let mut caller = baresip_caller(d.sip_port());
    let mut caller_ctrl = caller.ctrl();
    baresip_calls_linphone(&d, &mut caller_ctrl, &agent);
    std::thread::sleep(HOLD);

    agent.command("pause");
    let method = wait_hold(&d, "Agent", true);
    std::thread::sleep(HOLD);
    agent.command("resume");
    wait_hold(&d, "Agent", false);
    std::thread::sleep(HOLD);
    assert!(
        caller_ctrl
            .events
            .iter()
            .all(|e| e["type"] != "CALL_CLOSED"),
        "the call was cut off\n{}",
        d.stderr()
    );
    // What Linphone held by, in its own log.
    if method == "INVITE" {
        assert!(agent.invite_transactions() >= 3, "{}", agent.log());
    } else {
        assert!(!agent.messages("UPDATE ").is_empty(), "{}", agent.log());
    }
    assert_mirrored(&agent);

    let r = caller_ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(caller_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    caller.stop();
    agent.stop();

    let files = caller.heard();
    assert_eq!(files.len(), 1, "caller recordings {files:?}");
    assert_order("caller", &heard("caller", &files[0]), "AAAA", "MMMM");
    let rec = finished_record(&d);
    assert_eq!(rec.hangup_by, Some(HangupBy::Caller), "{rec:?}");
}

/// A baresip caller holds and resumes while a Linphone agent talks to it:
/// the call stays up and the agent hears the caller again after resume.
#[test]
fn baresip_caller_holds_and_resumes_with_a_linphone_agent() {
    if !linphonec_or_skip() || !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let mut agent = linphone_agent(d.sip_port());
    assert!(
        d.wait_binding("1001", WAIT).is_some(),
        "linphonec did not register\n{}\n{}",
        agent.output(),
        d.stderr()
    );
    let mut caller = baresip_caller(d.sip_port());
    let mut caller_ctrl = caller.ctrl();
    baresip_calls_linphone(&d, &mut caller_ctrl, &agent);
    std::thread::sleep(HOLD);

    let r = caller_ctrl.command("hold", "");
    assert_eq!(r["ok"], true, "hold: {r}");
    wait_hold(&d, "Caller", true);
    std::thread::sleep(HOLD);
    let r = caller_ctrl.command("resume", "");
    assert_eq!(r["ok"], true, "resume: {r}");
    wait_hold(&d, "Caller", false);
    std::thread::sleep(HOLD + Duration::from_secs(1));
    assert!(
        caller_ctrl
            .events
            .iter()
            .all(|e| e["type"] != "CALL_CLOSED")
            && !agent.output().contains("ended"),
        "the call was cut off\n{}\n{}",
        agent.output(),
        d.stderr()
    );

    let r = caller_ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(caller_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    assert!(agent.wait_for_output(WAIT, |o| o.contains("ended")));
    caller.stop();
    agent.stop();

    // baresip sends nothing while it holds, and sipacd adds nothing: the
    // agent hears the caller, silence, then (the last 3.5 s of the call)
    // the caller again.
    let line = heard("agent", agent.heard());
    assert_order("agent", &line, "CCCC", "....");
    let tail = &line[line.len().saturating_sub(7)..];
    assert!(
        tail.contains("CCCC"),
        "agent: no caller after resume: {line}"
    );
    let rec = finished_record(&d);
    assert_eq!(rec.hangup_by, Some(HangupBy::Caller), "{rec:?}");
}

/// A Linphone caller pauses and resumes while a baresip agent talks to it.
#[test]
fn linphone_caller_pauses_and_resumes_with_a_baresip_agent() {
    if !linphonec_or_skip() || !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let mut agent = baresip_agent(d.sip_port());
    let mut agent_ctrl = agent.ctrl();
    assert!(
        d.wait_binding("1001", WAIT).is_some(),
        "the baresip agent did not register\n{}\n{}",
        agent.output(),
        d.stderr()
    );
    let mut caller = Linphone::start(
        "caller",
        Role::Caller { user: "5551234" },
        &sine_wav(CALLER_HZ, 40.0),
    );
    caller.command(&format!("call sip:1500@127.0.0.1:{}", d.sip_port()));
    assert!(
        caller.wait_for_output(WAIT, |o| o.contains("Media streams established")),
        "the Linphone caller's call never came up\n{}\n{}",
        caller.output(),
        d.stderr()
    );
    assert!(
        agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some()
            && agent_ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some(),
        "the baresip agent never got audio\n{}",
        d.stderr()
    );
    std::thread::sleep(HOLD);

    caller.command("pause");
    let method = wait_hold(&d, "Caller", true);
    std::thread::sleep(HOLD);
    caller.command("resume");
    wait_hold(&d, "Caller", false);
    std::thread::sleep(HOLD + Duration::from_secs(1));
    assert!(
        agent_ctrl.events.iter().all(|e| e["type"] != "CALL_CLOSED")
            && !caller.output().contains("ended"),
        "the call was cut off\n{}\n{}",
        caller.output(),
        d.stderr()
    );
    if method == "INVITE" {
        assert!(caller.invite_transactions() >= 3, "{}", caller.log());
    } else {
        assert!(!caller.messages("UPDATE ").is_empty(), "{}", caller.log());
    }
    assert_mirrored(&caller);

    caller.command("terminate");
    assert!(
        agent_ctrl.wait_event("CALL_CLOSED", WAIT).is_some(),
        "the agent's call did not end after Linphone hung up\n{}",
        d.stderr()
    );
    caller.stop();
    agent.stop();

    let files = agent.heard();
    assert_eq!(files.len(), 1, "agent recordings {files:?}");
    // linphonec goes on sending its file while paused, and the agent hears
    // whatever the caller sends: the caller's tone before, during and (the
    // last 3.5 s of the call) after the hold.
    let line = heard("agent", &files[0]);
    let (before, tail) = line.split_at(line.len().saturating_sub(7));
    assert!(
        before.contains("CCCC"),
        "agent: no caller before hold: {line}"
    );
    assert!(
        tail.contains("CCCC"),
        "agent: no caller after resume: {line}"
    );
    let rec = finished_record(&d);
    assert_eq!(rec.hangup_by, Some(HangupBy::Caller), "{rec:?}");
}
