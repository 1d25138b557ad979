//! `sipacd plan` and `sipacd check` on a config with known gaps, run as
//! the real binary: the gaps must be reported at the right local times of
//! the queue's zone, across Europe's spring daylight-saving change and a
//! closed date, in text, CSV and JSON.
//!
//! The queue opens 08:00-20:00 Berlin time on weekdays and needs skill
//! `s`. Bernd works 12:00-18:00 Berlin time, Dewi 09:00-17:00 Jakarta time
//! (no DST: 03:00-11:00 in Berlin's winter, 04:00-12:00 in its summer).
//! So every open weekday has a gap 18:00-20:00, and until Europe moves its
//! clocks (Sunday 2027-03-28) one more 11:00-12:00. Wednesday 2027-03-31
//! is a closed date.

mod common;

use common::sipacd_bin;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = r#"
[server]
timezone = "UTC"
data_dir = "data"

[schedules.hours]
timezone = "Europe/Berlin"
open = ["mon-fri 08:00-20:00"]
closed_dates = ["2027-03-31"]

[agents.bernd]
password = "x"
timezone = "Europe/Berlin"
shift = ["mon-fri 12:00-18:00"]
skills = { s = 5 }

[agents.dewi]
password = "x"
timezone = "Asia/Jakarta"
shift = ["mon-fri 09:00-17:00"]
skills = { s = 5 }

[agents.other]
password = "x"
skills = { t = 5 }

[queues.help]
skills = { s = 3 }
schedule = "hours"

[[numbers]]
number = "1500"
to = "queue:help"
"#;

struct Dir {
    _tmp: tempfile::TempDir,
    config: PathBuf,
}

fn write_config() -> Dir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("sipacd.toml");
    std::fs::write(&config, CONFIG).expect("write config");
    Dir { _tmp: tmp, config }
}

fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(sipacd_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run sipacd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The gap lines of the text output, trimmed.
fn gap_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with("gaps:") {
            inside = true;
            continue;
        }
        if inside {
            if !l.starts_with("  ") {
                break;
            }
            lines.push(l.trim().to_owned());
        }
    }
    lines
}

#[test]
fn plan_reports_the_gaps_at_local_times_across_dst_and_closed_dates() {
    let dir = write_config();
    let (code, out, err) = run(
        &dir.config,
        &[
            "plan",
            "--from",
            "2027-03-22",
            "--weeks",
            "2",
            "--history-weeks",
            "0",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("queue help (Europe/Berlin, 30-minute intervals)"),
        "{out}"
    );
    let gaps = gap_lines(&out);
    let mut want = Vec::new();
    for d in [
        "2027-03-22",
        "2027-03-23",
        "2027-03-24",
        "2027-03-25",
        "2027-03-26",
    ] {
        let wd = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .unwrap()
            .format("%a");
        want.push(format!("{wd} {d} 11:00 - 12:00"));
        want.push(format!("{wd} {d} 18:00 - 20:00"));
    }
    // After the change: Dewi's shift ends at 12:00 Berlin time; Wednesday
    // the 31st is closed.
    for d in ["2027-03-29", "2027-03-30", "2027-04-01", "2027-04-02"] {
        let wd = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .unwrap()
            .format("%a");
        want.push(format!("{wd} {d} 18:00 - 20:00"));
    }
    assert_eq!(gaps, want, "{out}");
    // The heat map: Monday 22 March, 11:00 is X, 12:00 covered by one.
    let row = out
        .lines()
        .find(|l| l.starts_with("Mon 2027-03-22"))
        .expect("a row for Monday");
    let cells: Vec<&str> = row.split_whitespace().skip(2).collect();
    assert_eq!(cells.len(), 24, "{row}");
    assert_eq!(cells[7], "..", "{row}");
    assert_eq!(cells[11], "XX", "{row}");
    assert_eq!(cells[12], "11", "{row}");
    assert_eq!(cells[19], "XX", "{row}");
    assert_eq!(cells[20], "..", "{row}");
    let wed = out
        .lines()
        .find(|l| l.starts_with("Wed 2027-03-31"))
        .expect("a row for the closed date");
    assert!(wed.split_whitespace().skip(2).all(|c| c == ".."), "{wed}");
}

#[test]
fn plan_csv_and_json_carry_the_same_gaps() {
    let dir = write_config();
    let args = [
        "plan",
        "--from",
        "2027-03-29",
        "--history-weeks",
        "0",
        "--interval",
        "60",
    ];
    let (code, csv, err) = run(&dir.config, &[&args[..], &["--format", "csv"]].concat());
    assert_eq!(code, 0, "{err}");
    let header: Vec<&str> = csv.lines().next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let gaps: Vec<(String, String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| f[col("status")] == "gap")
        .map(|f| {
            (
                f[col("date")].clone(),
                f[col("local_start")].clone(),
                f[col("utc_start")].clone(),
            )
        })
        .collect();
    // 4 open weekdays (the 31st is closed) x 18:00 and 19:00 (CEST, UTC+2).
    assert_eq!(gaps.len(), 8, "{csv}");
    assert_eq!(
        gaps[0],
        (
            "2027-03-29".to_owned(),
            "18:00".to_owned(),
            "2027-03-29T16:00:00Z".to_owned()
        )
    );
    assert!(gaps.iter().all(|g| g.0 != "2027-03-31"));
    let (code, json, err) = run(&dir.config, &[&args[..], &["--format", "json"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&json).expect("JSON");
    let q = &v["queues"][0];
    assert_eq!(q["queue"], "help");
    assert_eq!(q["timezone"], "Europe/Berlin");
    let ranges: Vec<(&str, &str)> = q["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "gap")
        .map(|r| {
            (
                r["start_local"].as_str().unwrap(),
                r["end_local"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    assert_eq!(ranges[0], ("2027-03-29 18:00", "2027-03-29 20:00"));
    // Who could take calls: Bernd alone at 12:00 (fragile), nobody at 18:00.
    let day = &q["days"][0]["cells"];
    assert_eq!(day[12]["status"], "fragile");
    assert_eq!(day[12]["agents"], serde_json::json!(["bernd"]));
    assert_eq!(day[18]["eligible"], serde_json::json!([0]));
}

#[test]
fn check_warns_about_the_gaps_but_passes() {
    let dir = write_config();
    let text = std::fs::read_to_string(&dir.config).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("[queues.help]"))
        .unwrap()
        + 1;
    let (code, out, err) = run(&dir.config, &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "ok");
    let warning = err
        .lines()
        .find(|l| l.contains("warning:"))
        .unwrap_or_else(|| panic!("no warning in:\n{err}"));
    let prefix = format!("{}:{line}:1: warning: queue `help`", dir.config.display());
    assert!(warning.starts_with(&prefix), "{warning}\nwant {prefix}");
    // Every weekday from today has the evening gap.
    assert!(warning.contains("18:00 to "), "{warning}");
    assert!(warning.contains("Europe/Berlin"), "{warning}");
}

#[test]
fn check_is_quiet_when_every_open_hour_is_covered() {
    let dir = write_config();
    let covered = CONFIG.replace("mon-fri 12:00-18:00", "mon-fri 07:00-21:00");
    std::fs::write(&dir.config, covered).unwrap();
    let (code, out, err) = run(&dir.config, &["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn plan_rejects_a_bad_interval_and_an_unknown_queue() {
    let dir = write_config();
    let (code, _, err) = run(&dir.config, &["plan", "--interval", "20"]);
    assert_eq!(code, 1);
    assert!(err.contains("--interval must be 15, 30 or 60"), "{err}");
    let (code, _, err) = run(&dir.config, &["plan", "--queue", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown queue `nope`"), "{err}");
}

/// Demand from the call records in data_dir: 100 calls in one half hour
/// three days ago, 180 s talk each, nobody gave up: Erlang C says 14
/// agents for 80% in 20 s (13 reach only 79.6%). The same half hour of
/// the coming week must say so, next to the one agent on shift.
#[test]
fn plan_staffs_from_the_call_records() {
    use sipacd::cdr::{CallRecord, CdrStore, Disposition};
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sipacd.toml");
    std::fs::write(
        &config,
        r#"
[server]
timezone = "UTC"
data_dir = "data"
[agents.solo]
password = "x"
[queues.q]
service_level_s = 20
[[numbers]]
number = "1500"
to = "queue:q"
"#,
    )
    .unwrap();
    let now = chrono::Utc::now();
    let slot_ms = {
        let t = (now - chrono::Duration::days(3)).timestamp_millis();
        t - t.rem_euclid(1_800_000)
    };
    let (mut store, _) = CdrStore::open(&tmp.path().join("data")).unwrap();
    let records: Vec<CallRecord> = (0..100)
        .map(|i| {
            let at = slot_ms + i * 18_000;
            let mut r = CallRecord::arrival(&format!("c{i}"), "sip:x@y", "1500", at);
            r.queue = Some("q".into());
            r.ivr_path = vec!["queue:q".into()];
            r.queued_ms = Some(at);
            r.offered_ms = Some(at);
            r.answered_ms = Some(at);
            r.ended_ms = Some(at + 180_000);
            r.agent = Some("solo".into());
            r.disposition = Disposition::Answered;
            r
        })
        .collect();
    store.write_batch(&records).unwrap();
    drop(store);
    let slot = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(slot_ms).unwrap()
        + chrono::Duration::days(7);
    let (date, time) = (
        slot.format("%Y-%m-%d").to_string(),
        slot.format("%H:%M").to_string(),
    );
    for (shrinkage, scheduled) in [("0", "14"), ("0.3", "20")] {
        let (code, csv, err) = run(
            &config,
            &[
                "plan",
                "--history-weeks",
                "1",
                "--format",
                "csv",
                "--shrinkage",
                shrinkage,
            ],
        );
        assert_eq!(code, 0, "{err}");
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let row: Vec<&str> = csv
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f[col("date")] == date && f[col("local_start")] == time)
            .unwrap_or_else(|| panic!("no row {date} {time} in\n{csv}"));
        assert_eq!(row[col("calls")], "100.00", "{row:?}");
        assert_eq!(row[col("needed")], "14", "{row:?}");
        assert_eq!(row[col("scheduled")], scheduled, "{row:?}");
        assert_eq!(row[col("eligible")], "1", "{row:?}");
        // Other half hours of the week expect no calls.
        let quiet = csv
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() == header.len() && f[col("calls")] == "0.00")
            .count();
        assert_eq!(quiet, 7 * 48 - 1, "{csv}");
    }
    let (code, text, _) = run(&config, &["plan", "--history-weeks", "1"]);
    assert_eq!(code, 0);
    assert!(text.contains("Erlang C"), "{text}");
    let line = format!(
        "{} {time}  100.0 calls, need 14 on the phones (14 scheduled), 1 on shift",
        date
    );
    assert!(text.contains(&line), "want {line:?} in:\n{text}");
}

/// The demo's comments (config/sipacd.toml) say what `sipacd plan` shows:
/// no queue has a gap; support's nights and Saturday morning rest on Dewi
/// (1004) alone, two or more agents 07:00-22:00 UTC on weekdays in winter
/// and 06:00-21:00 in summer; billing is covered only after its relax
/// step 17:00-20:00 Jakarta time on weekdays, by Alice alone before.
#[test]
fn the_demo_follows_the_sun_as_its_comments_say() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sipacd.toml");
    for (from, day_utc) in [("2027-01-04", (7, 22)), ("2027-06-07", (6, 21))] {
        let (code, json, err) = run(
            &demo,
            &[
                "plan",
                "--from",
                from,
                "--history-weeks",
                "0",
                "--format",
                "json",
                "--interval",
                "60",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&json).unwrap();
        let queue = |name: &str| {
            v["queues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["queue"] == name)
                .cloned()
                .unwrap()
        };
        for q in v["queues"].as_array().unwrap() {
            assert!(
                q["ranges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["status"] != "gap"),
                "{from}: a gap in {}",
                q["queue"]
            );
        }
        let support = queue("support");
        for r in support["ranges"].as_array().unwrap() {
            assert_eq!(r["status"], "fragile", "{r}");
            assert_eq!(r["agents"], serde_json::json!(["1004"]), "{r}");
        }
        for day in &support["days"].as_array().unwrap()[..5] {
            for (h, cell) in day["cells"].as_array().unwrap().iter().enumerate() {
                let n = cell["eligible"][0].as_u64().unwrap();
                let wide = h >= day_utc.0 && h < day_utc.1;
                assert_eq!(n >= 2, wide, "{from} support {} {h}:00: {n}", day["date"]);
            }
        }
        let billing = queue("billing");
        let relax: Vec<(String, String)> = billing["ranges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "relax_only")
            .map(|r| {
                let s = r["start_local"].as_str().unwrap();
                let e = r["end_local"].as_str().unwrap();
                (s[11..].to_owned(), e[11..].to_owned())
            })
            .collect();
        assert_eq!(
            relax,
            vec![("17:00".to_owned(), "20:00".to_owned()); 5],
            "{from}"
        );
        let fragile: Vec<&Value> = billing["ranges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "fragile")
            .collect();
        assert!(fragile
            .iter()
            .all(|r| r["agents"] == serde_json::json!(["1001"])));
        assert_eq!(fragile[0]["start_local"], format!("{from} 08:00"));
        assert_eq!(fragile[0]["end_local"], format!("{from} 17:00"));
    }
    let (code, out, err) = run(&demo, &["check"]);
    assert_eq!((code, out.trim()), (0, "ok"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}
