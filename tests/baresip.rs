//! A real softphone, baresip 1.0, against the running daemon: it registers
//! with digest authentication (and is refused with a wrong password), and two
//! of them, a caller and an agent, talk through sipacd's bridge: each one's
//! recording must hold the other's tone, by frequency. A baresip caller
//! leaves a message in a `voicemail` node: the WAV the admin API serves
//! holds its tone.
//!
//! Without baresip these tests fail (see `common::require`).

mod common;

use common::baresip::{
    agent_account, assert_tone, baresip_or_skip, caller_account, read_wav_8k_mono, rms, sine_wav,
    tone_share, Baresip,
};
use common::http::{get_bytes, get_json};
use common::{ConfigSpec, Daemon, AGENT_PASSWORD};
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

/// A number whose IVR goes straight to a message: no prompt, 1 s of
/// silence ends it.
const MESSAGE_IVR: &str = r#"
[[numbers]]
number = "1900"
to = "ivr:message"

[ivr.message]
start = "record"

[ivr.message.nodes.record]
type = "voicemail"
silence_s = 1
max_s = 20
"#;

#[test]
fn a_baresip_callers_message_holds_its_tone() {
    if !baresip_or_skip() {
        return;
    }
    const CALLER_HZ: f64 = 600.0;
    let mut spec = ConfigSpec::new();
    spec.extra = MESSAGE_IVR.into();
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    // Its microphone: 3 s of tone, then silence (zeros, sent as RTP like
    // the tone) until the daemon hangs up.
    let mut source: Vec<i16> = (0..3 * 8000)
        .map(|i| {
            let t = f64::from(i) / 8000.0;
            (16000.0 * (2.0 * std::f64::consts::PI * CALLER_HZ * t).sin()) as i16
        })
        .collect();
    source.extend(std::iter::repeat_n(0i16, 8000 * 10));
    let mut caller = Baresip::start(
        "caller",
        &caller_account(port),
        &common::wav_from_samples(&source),
    );
    let mut ctrl = caller.ctrl();
    let r = ctrl.command("dial", &format!("sip:1900@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some(),
        "the IVR did not answer; baresip:\n{}\nsipacd:\n{}",
        caller.output(),
        d.stderr()
    );
    // The tone, then a second of silence: the node ends the message and
    // hangs up (the phone does not).
    assert!(
        ctrl.wait_event("CALL_CLOSED", Duration::from_secs(15))
            .is_some(),
        "the IVR did not hang up after the silence; sipacd:\n{}",
        d.stderr()
    );
    caller.stop();

    let api = d.admin_url();
    let mut list = serde_json::Value::Null;
    common::wait_until("the message listed", WAIT, || {
        list = get_json(&format!("{api}/api/v1/voicemail"));
        list.as_array().is_some_and(|l| !l.is_empty())
    });
    let m = &list[0];
    assert_eq!(m["caller"], "5551234", "{m}");
    assert_eq!(m["number"], "1900", "{m}");
    let secs = m["seconds"].as_f64().unwrap_or_else(|| panic!("{m}"));
    assert!(
        (2.5..=6.0).contains(&secs),
        "about 3 s of tone and 1 s of silence: {m}"
    );
    let cid = m["call"].as_str().unwrap_or_else(|| panic!("{m}"));
    let (code, kind, wav) = get_bytes(&format!("{api}/api/v1/voicemail/{cid}"));
    assert_eq!((code, kind.as_str()), (200, "audio/wav"));
    let file = d.cfg.root().join("message.wav");
    std::fs::write(&file, &wav).expect("write the fetched WAV");
    let samples = read_wav_8k_mono(&file);
    // Half-second windows of the caller's tone: most of its 3 s, and no
    // window of it after the silence began (the end is silence).
    let windows: Vec<bool> = samples
        .chunks_exact(4000)
        .map(|w| rms(w) > 1000.0 && tone_share(w, CALLER_HZ) > 0.5)
        .collect();
    let toned = windows.iter().filter(|t| **t).count();
    assert!(
        toned >= 4,
        "the message holds {toned} half-seconds of {CALLER_HZ} Hz: {windows:?}"
    );
    assert_eq!(windows.last(), Some(&false), "{windows:?}");
    eprintln!(
        "message: {secs} s, {toned} of {} half-seconds hold the tone",
        windows.len()
    );
    let rec = get_json(&format!("{api}/api/v1/cdr"));
    let row = rec
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == cid))
        .unwrap_or_else(|| panic!("no record of {cid}: {rec}"));
    assert_eq!(row["voicemail"], m["path"], "{row}");
}
