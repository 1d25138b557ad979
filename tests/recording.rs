//! A recorded call, end to end: a baresip caller playing one tone reaches a
//! baresip agent playing another through a queue with `record = "all"` and
//! a `record_prompt`; the call record links a stereo WAV that holds the
//! caller's tone on the left channel and the agent's on the right, served
//! by `GET /api/v1/calls/ID/recording` behind the admin token.
//!
//! Without baresip this test fails (see `common::require`).

mod common;

use common::baresip::{
    agent_account, baresip_or_skip, caller_account, rms, sine_wav, tone_share, Baresip,
};
use common::{ConfigSpec, Daemon, AGENT_PASSWORD};
use std::io::{Read, Write};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const CALLER_HZ: f64 = 600.0;
const AGENT_HZ: f64 = 1000.0;
const TOKEN: &str = "rec-token";

/// One HTTP/1.0 GET; the status and the raw body.
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&all[..head_end]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, all[head_end + 4..].to_vec())
}

/// Left and right channels of a 16-bit stereo 8 kHz WAV.
fn stereo(wav: &[u8]) -> (Vec<i16>, Vec<i16>) {
    assert!(wav.len() > 44, "no WAV: {} bytes", wav.len());
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "channels");
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        8000
    );
    let len = u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]) as usize;
    assert_eq!(len, wav.len() - 44, "header sizes patched at the end");
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let l = samples.iter().step_by(2).copied().collect();
    let r = samples.iter().skip(1).step_by(2).copied().collect();
    (l, r)
}

/// Seconds of `track` (in half-second windows of real level) where `want`
/// dominates and `other` is absent; panics if `other` ever dominates.
fn seconds_of(name: &str, track: &[i16], want: f64, other: f64) -> f64 {
    let windows: Vec<(f64, f64, f64)> = track
        .chunks_exact(4000)
        .map(|w| (rms(w), tone_share(w, want), tone_share(w, other)))
        .collect();
    let detail = format!("{name} per 0.5 s (rms, {want} Hz, {other} Hz): {windows:.2?}");
    assert!(
        windows.iter().all(|&(_, _, o)| o < 0.2),
        "{name} holds the other side's tone\n{detail}"
    );
    eprintln!("{detail}");
    windows
        .iter()
        .filter(|&&(level, w, o)| level > 1000.0 && w > 0.5 && o < 0.05)
        .count() as f64
        * 0.5
}

#[test]
fn a_recorded_call_has_the_caller_left_and_the_agent_right() {
    if !baresip_or_skip() {
        return;
    }
    let mut spec = ConfigSpec::new();
    spec.admin_token = TOKEN.into();
    spec.server_extra = "retention_days = 30\n".into();
    spec.extra = r#"
[queues.recorded]
skills = { support = 1 }
music = "moh.wav"
record = "all"
record_prompt = "moh.wav"

[[numbers]]
number = "1700"
to = "queue:recorded"
"#
    .into();
    let admin = spec.admin_port;
    let d = Daemon::start_with(spec);
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
    let r = caller_ctrl.command("dial", &format!("sip:1700@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some(),
        "the agent never got the call:\n{}",
        d.stderr()
    );
    assert!(agent_ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some());
    std::thread::sleep(Duration::from_secs(5));
    let r = caller_ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(agent_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("recording written")),
        "the recorder never finished the file:\n{}",
        d.stderr()
    );
    caller.stop();
    agent.stop();

    // The record links the file.
    let (code, body) = get(admin, "/api/v1/cdr", Some(TOKEN));
    assert_eq!(code, 200);
    let records: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let rec = records
        .as_array()
        .and_then(|a| a.iter().find(|r| r["disposition"] == "answered"))
        .unwrap_or_else(|| panic!("no answered record: {records}"));
    let id = rec["id"].as_str().expect("id");
    let link = rec["recording"].as_str().expect("a recording link");
    assert!(
        link.starts_with("recordings/") && link.ends_with(".wav"),
        "{link}"
    );
    assert!(d.cfg.root().join("data").join(link).is_file(), "{link}");

    // Served behind the token, and only there.
    let path = format!("/api/v1/calls/{id}/recording");
    assert_eq!(get(admin, &path, None).0, 401);
    assert_eq!(
        get(admin, "/api/v1/calls/no-such-call/recording", Some(TOKEN)).0,
        404
    );
    let (code, wav) = get(admin, &path, Some(TOKEN));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&wav));
    let (left, right) = stereo(&wav);
    assert!(
        left.len() >= 4 * 8000,
        "{} samples for a 5 s call",
        left.len()
    );
    let l = seconds_of("left (caller)", &left, CALLER_HZ, AGENT_HZ);
    let r = seconds_of("right (agent)", &right, AGENT_HZ, CALLER_HZ);
    assert!(l >= 3.0, "caller's tone on the left for only {l} s");
    assert!(r >= 3.0, "agent's tone on the right for only {r} s");
}
