//! `sipacd replay` as the real binary, on a synthetic call history whose
//! waits are computable by hand: one agent, fixed arrivals and talk times.
//!
//! History (queue `q`, service level 20 s, agent `solo`, 60 s talks):
//! callers enter at 0, 10, 20, 200, 230 and 240 s. `solo` answers them at
//! 0, 60, 120, 200 and 260 s (waits 0, 50, 100, 0, 30); the caller of
//! 240 s gives up at 280 s, still waiting. Replaying with the same
//! configuration must give back exactly that; with a second agent the
//! waits become 0, 0, 40, 0, 0 and 20 (the last caller is answered at
//! 260 s, before its patience of 40 s runs out).

mod common;

use chrono::{TimeZone, Utc};
use common::sipacd_bin;
use serde_json::Value;
use sipacd::cdr::{CallRecord, CdrStore, Disposition, HangupBy};
use std::path::Path;
use std::process::Command;

const ONE: &str = r#"
[server]
timezone = "UTC"
data_dir = "data"

[agents.solo]
password = "x"

[queues.q]
service_level_s = 20

[[numbers]]
number = "1501"
to = "queue:q"
"#;

fn base() -> i64 {
    Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0)
        .unwrap()
        .timestamp_millis()
}

/// (enter s, answered s or None, end s)
const HISTORY: [(i64, Option<i64>, i64); 6] = [
    (0, Some(0), 60),
    (10, Some(60), 120),
    (20, Some(120), 180),
    (200, Some(200), 260),
    (230, Some(260), 320),
    (240, None, 280),
];

fn write_history(data: &Path) {
    let (mut store, _) = CdrStore::open(data).expect("open store");
    let records: Vec<CallRecord> = HISTORY
        .iter()
        .enumerate()
        .map(|(i, (enter, ans, end))| {
            let at = |s: i64| base() + s * 1000;
            let mut r = CallRecord::arrival(&format!("call-{i}"), "sip:c@x", "1501", at(*enter));
            r.ivr_path = vec!["queue:q".into()];
            r.queue = Some("q".into());
            r.queued_ms = Some(at(*enter));
            r.offered_ms = ans.map(at);
            r.answered_ms = ans.map(at);
            r.ended_ms = Some(at(*end));
            r.agent = ans.map(|_| "solo".to_owned());
            r.disposition = if ans.is_some() {
                Disposition::Answered
            } else {
                Disposition::Abandoned
            };
            r.hangup_by = Some(HangupBy::Caller);
            r
        })
        .collect();
    store.write_batch(&records).expect("write records");
}

fn replay(config: &Path, extra: &[&str]) -> Value {
    let out = Command::new(sipacd_bin())
        .args([
            "replay",
            "--since",
            "2026-06-01 09:00",
            "--until",
            "2026-06-01 11:00",
            "--format",
            "json",
        ])
        .args(extra)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run sipacd replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn queue<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {v}"))
}

#[test]
fn replay_with_the_config_in_force_gives_back_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sipacd.toml");
    std::fs::write(&config, ONE).unwrap();
    write_history(&tmp.path().join("data"));
    let v = replay(&config, &[]);
    assert_eq!(v["calls"], 6);
    let q = queue(&v, "q");
    let (p, r) = (&q["predicted"], &q["recorded"]);
    for key in [
        "offered",
        "answered",
        "abandoned",
        "answered_within_sl",
        "asa_s",
        "service_level_pct",
    ] {
        assert_eq!(p[key], r[key], "{key}: replayed {p} recorded {r}");
    }
    assert_eq!(p["answered"], 5);
    assert_eq!(p["abandoned"], 1);
    assert_eq!(p["answered_within_sl"], 2);
    // (0 + 50 + 100 + 0 + 30) / 5
    assert!((p["asa_s"].as_f64().unwrap() - 36.0).abs() < 1e-9, "{p}");
    // Deterministic: a second run prints the same.
    assert_eq!(replay(&config, &[]), v);
}

#[test]
fn replay_with_a_second_agent_predicts_shorter_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("new.toml");
    let two = ONE.replace("[queues.q]", "[agents.duo]\npassword = \"x\"\n\n[queues.q]");
    std::fs::write(&config, two).unwrap();
    write_history(&tmp.path().join("data"));
    let v = replay(&config, &[]);
    let p = &queue(&v, "q")["predicted"];
    assert_eq!(p["answered"], 6, "{p}");
    assert_eq!(p["abandoned"], 0, "{p}");
    // Waits 0, 0, 40, 0, 0, 20.
    assert!((p["asa_s"].as_f64().unwrap() - 10.0).abs() < 1e-9, "{p}");
    assert_eq!(p["answered_within_sl"], 5);
    // And the text form names both columns.
    let out = Command::new(sipacd_bin())
        .args([
            "replay",
            "--since",
            "2026-06-01 09:00",
            "--until",
            "2026-06-01 11:00",
        ])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("replayed") && text.contains("recorded"),
        "{text}"
    );
}
