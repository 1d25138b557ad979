//! Coverage across daylight-saving changes (Europe, the Americas, and
//! Jakarta without DST), windows that cross midnight, closed dates and
//! relax steps; replay on a history whose waits are computable by hand.

use super::coverage::{coverage, CoverageOptions, QueueCoverage, Status};
use super::replay::{replay, ReplayCall, ReplayOptions};
use crate::config::{parse_str, Config};
use chrono::{NaiveDate, TimeZone, Utc};
use std::path::Path;

fn cfg(text: &str) -> Config {
    parse_str(text, Path::new("/nonexistent/plan.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn cov(c: &Config, from: NaiveDate, days_weeks: u32, interval: u32) -> Vec<QueueCoverage> {
    coverage(
        c,
        &CoverageOptions {
            from: Some(from),
            weeks: days_weeks,
            interval_min: interval,
            queue: None,
            now: Utc::now(),
        },
    )
    .unwrap()
}

/// Eligible count (queue's own skills) of `q` on local `d` at `hh:mm`.
fn at(q: &QueueCoverage, d: NaiveDate, hhmm: &str) -> Option<(bool, u32, Status)> {
    let day = q.days.iter().find(|r| r.date == d)?;
    let c = day.cells.iter().flatten().find(|c| c.local == hhmm)?;
    Some((c.open, c.eligible[0], c.status))
}

const ALWAYS_UTC: &str = r#"
[server]
timezone = "UTC"
[schedules.always]
timezone = "UTC"
open = ["00:00-24:00"]
"#;

#[test]
fn new_york_shift_moves_against_utc_in_march_and_november() {
    let c = cfg(&format!(
        r#"{ALWAYS_UTC}
[agents.carmen]
password = "x"
timezone = "America/New_York"
shift = ["mon-fri 09:00-17:00", "fri 22:00-02:00"]
[queues.q]
schedule = "always"
"#
    ));
    // US DST starts Sunday 2026-03-08: EST (UTC-5) before, EDT after.
    let q = &cov(&c, date(2026, 3, 2), 2, 30)[0];
    assert_eq!(at(q, date(2026, 3, 6), "13:30").map(|x| x.1), Some(0));
    assert_eq!(at(q, date(2026, 3, 6), "14:00").map(|x| x.1), Some(1));
    assert_eq!(at(q, date(2026, 3, 6), "21:30").map(|x| x.1), Some(1));
    assert_eq!(at(q, date(2026, 3, 6), "22:00").map(|x| x.1), Some(0));
    assert_eq!(at(q, date(2026, 3, 9), "13:00").map(|x| x.1), Some(1));
    assert_eq!(at(q, date(2026, 3, 9), "21:00").map(|x| x.1), Some(0));
    // Friday 22:00-02:00 New York crosses midnight: Saturday 03:00-07:00 UTC.
    assert_eq!(at(q, date(2026, 3, 7), "02:30").map(|x| x.1), Some(0));
    assert_eq!(at(q, date(2026, 3, 7), "03:00").map(|x| x.1), Some(1));
    assert_eq!(at(q, date(2026, 3, 7), "06:30").map(|x| x.1), Some(1));
    assert_eq!(at(q, date(2026, 3, 7), "07:00").map(|x| x.1), Some(0));
    // And back on Sunday 2026-11-01.
    let q = &cov(&c, date(2026, 10, 26), 2, 30)[0];
    assert_eq!(at(q, date(2026, 10, 30), "13:00").map(|x| x.1), Some(1));
    assert_eq!(at(q, date(2026, 11, 2), "13:30").map(|x| x.1), Some(0));
    assert_eq!(at(q, date(2026, 11, 2), "14:00").map(|x| x.1), Some(1));
    // Gaps are the open hours without her, listed in UTC.
    let first = q.ranges_of(Status::Gap).next().unwrap();
    assert_eq!(first.start_local, "2026-10-26 00:00");
    assert_eq!(first.end_local, "2026-10-26 13:00");
}

#[test]
fn berlin_days_of_23_and_25_hours() {
    let c = cfg(r#"
[server]
timezone = "UTC"
[schedules.berlin]
timezone = "Europe/Berlin"
open = ["00:00-24:00"]
[agents.night]
password = "x"
timezone = "UTC"
shift = ["sun 01:00-02:00"]
[queues.q]
schedule = "berlin"
"#);
    let q = &cov(&c, date(2026, 3, 23), 1, 30)[0];
    let spring = q.days.iter().find(|d| d.date == date(2026, 3, 29)).unwrap();
    // 02:00 and 02:30 do not exist on 2026-03-29.
    assert_eq!(spring.cells.iter().filter(|c| c.is_none()).count(), 2);
    assert!(spring.cells[4].is_none() && spring.cells[5].is_none());
    assert_eq!(spring.cells[6].as_ref().unwrap().local, "03:00");
    // 01:00 UTC that Sunday is 03:00 CEST.
    assert_eq!(at(q, date(2026, 3, 29), "03:00").map(|x| x.1), Some(1));
    let monday = &q.days[0];
    assert!(monday.cells.iter().all(Option::is_some));
    // Autumn, 2026-10-25: 02:00-03:00 happens twice (00:00 and 01:00 UTC).
    // The agent covers only the second: the cell is judged by the worse.
    let q = &cov(&c, date(2026, 10, 19), 1, 30)[0];
    let autumn = q
        .days
        .iter()
        .find(|d| d.date == date(2026, 10, 25))
        .unwrap();
    assert_eq!(autumn.cells.len(), 48);
    let two = at(q, date(2026, 10, 25), "02:00").unwrap();
    assert_eq!(two.2, Status::Gap);
    assert_eq!(at(q, date(2026, 10, 25), "01:30").unwrap().2, Status::Gap);
}

#[test]
fn jakarta_queue_sees_berlin_agent_move_and_never_skips_an_hour() {
    let c = cfg(r#"
[server]
timezone = "Asia/Jakarta"
[schedules.office]
timezone = "Asia/Jakarta"
open = ["mon-fri 08:00-24:00"]
[agents.bernd]
password = "x"
timezone = "Europe/Berlin"
shift = ["mon-fri 08:00-18:00"]
[queues.q]
schedule = "office"
"#);
    // Berlin's 08:00-18:00 is 13:00-23:00 in Jakarta in summer (UTC+2 vs
    // +7) and 14:00-24:00 in winter (UTC+1), after 2026-10-25.
    let q = &cov(&c, date(2026, 10, 19), 2, 60)[0];
    assert!(q
        .days
        .iter()
        .all(|d| d.cells.len() == 24 && d.cells.iter().all(Option::is_some)));
    assert_eq!(at(q, date(2026, 10, 23), "12:00").unwrap().1, 0);
    assert_eq!(at(q, date(2026, 10, 23), "13:00").unwrap().1, 1);
    assert_eq!(at(q, date(2026, 10, 23), "22:00").unwrap().1, 1);
    assert_eq!(at(q, date(2026, 10, 23), "23:00").unwrap().1, 0);
    assert_eq!(at(q, date(2026, 10, 26), "13:00").unwrap().1, 0);
    assert_eq!(at(q, date(2026, 10, 26), "14:00").unwrap().1, 1);
    assert_eq!(at(q, date(2026, 10, 26), "23:00").unwrap().1, 1);
    let gaps: Vec<_> = q
        .ranges_of(Status::Gap)
        .map(|r| r.start_local.clone())
        .collect();
    assert_eq!(gaps[0], "2026-10-19 08:00");
    // Saturday is closed, not a gap.
    assert_eq!(
        at(q, date(2026, 10, 24), "10:00").unwrap().2,
        Status::Closed
    );
}

#[test]
fn closed_dates_and_windows_crossing_midnight() {
    let c = cfg(r#"
[server]
timezone = "UTC"
[schedules.nights]
timezone = "America/Sao_Paulo"
open = ["mon-sun 22:00-06:00"]
closed_dates = ["2026-12-25"]
[agents.a]
password = "x"
timezone = "America/Sao_Paulo"
shift = ["mon-sun 20:00-04:00"]
[queues.q]
schedule = "nights"
"#);
    let q = &cov(&c, date(2026, 12, 21), 1, 60)[0];
    // The night starting the 24th runs into the 25th...
    assert_eq!(
        at(q, date(2026, 12, 25), "03:00").unwrap().2,
        Status::Fragile
    );
    assert_eq!(at(q, date(2026, 12, 25), "05:00").unwrap().2, Status::Gap);
    // ...the one starting on the closed 25th does not open.
    assert_eq!(
        at(q, date(2026, 12, 25), "23:00").unwrap().2,
        Status::Closed
    );
    assert_eq!(
        at(q, date(2026, 12, 26), "02:00").unwrap().2,
        Status::Closed
    );
    assert_eq!(
        at(q, date(2026, 12, 26), "23:00").unwrap().2,
        Status::Fragile
    );
    let gap_hours: i64 = q
        .ranges_of(Status::Gap)
        .map(|r| (r.end - r.start).num_hours())
        .sum();
    // 04:00-06:00 on the mornings of the 21st..27th (the 21st's from the
    // night of Sunday the 20th) except the 26th.
    assert_eq!(gap_hours, 2 * 6);
}

#[test]
fn relax_steps_and_fragile_agents() {
    let c = cfg(r#"
[server]
timezone = "UTC"
[agents.expert]
password = "x"
shift = ["mon-fri 09:00-17:00"]
skills = { billing = 8 }
[agents.junior]
password = "x"
shift = ["mon-fri 09:00-19:00"]
skills = { billing = 2 }
[agents.second]
password = "x"
shift = ["mon-fri 09:00-12:00"]
skills = { billing = 9 }
[queues.q]
skills = { billing = 5 }
relax = [{ after_s = 30, skills = { billing = 1 } }]
"#);
    let q = &cov(&c, date(2026, 6, 1), 1, 60)[0];
    let m = date(2026, 6, 1);
    assert_eq!(at(q, m, "10:00").unwrap(), (true, 2, Status::Covered));
    assert_eq!(at(q, m, "13:00").unwrap(), (true, 1, Status::Fragile));
    assert_eq!(at(q, m, "17:00").unwrap(), (true, 0, Status::RelaxOnly));
    assert_eq!(at(q, m, "20:00").unwrap(), (true, 0, Status::Gap));
    let relax = q.ranges_of(Status::RelaxOnly).next().unwrap();
    assert_eq!(relax.agents, vec!["junior".to_owned()]);
    assert_eq!(
        (relax.start_local.as_str(), relax.end_local.as_str()),
        ("2026-06-01 17:00", "2026-06-01 19:00")
    );
    let fragile = q.ranges_of(Status::Fragile).next().unwrap();
    assert_eq!(fragile.agents, vec!["expert".to_owned()]);
    assert_eq!(q.levels[1].after_s, 30);
}

fn call(id: u32, enter_s: i64, talk_s: i64, patience_s: Option<i64>) -> ReplayCall {
    ReplayCall {
        id: format!("c{id}"),
        number: "1501".into(),
        queue: "q".into(),
        priority: 0,
        enter_ms: base_ms() + enter_s * 1000,
        talk_ms: talk_s * 1000,
        patience_ms: patience_s.map(|p| p * 1000),
    }
}

fn base_ms() -> i64 {
    Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0)
        .unwrap()
        .timestamp_millis()
}

const ONE_AGENT: &str = r#"
[server]
timezone = "UTC"
[agents.solo]
password = "x"
[queues.q]
service_level_s = 20
"#;

#[test]
fn replay_one_agent_waits_by_hand() {
    let c = cfg(ONE_AGENT);
    // Arrivals at 0, 10, 20, 200 s, 60 s of talk each, no wrap-up: the
    // agent answers at 0, 60, 120 and 200: waits 0, 50, 100, 0. The third
    // caller gives up after 90 s instead (at 110): then the second waits
    // 50 and the fourth 0.
    let opts = ReplayOptions {
        since_ms: base_ms(),
        until_ms: base_ms() + 3_600_000,
        seed: 1,
        answer_s: 0,
    };
    let calls = vec![
        call(1, 0, 60, None),
        call(2, 10, 60, None),
        call(3, 20, 60, None),
        call(4, 200, 60, None),
    ];
    let r = replay(&c, &calls, &[], &[], &opts);
    let waits: Vec<i64> = r
        .records
        .iter()
        .map(|x| (x.answered_ms.unwrap() - x.queued_ms.unwrap()) / 1000)
        .collect();
    assert_eq!(waits, vec![0, 50, 100, 0]);
    let q = r.queues.iter().find(|q| q.queue == "q").unwrap();
    let p = q.predicted.as_ref().unwrap();
    assert_eq!((p.offered, p.answered, p.abandoned), (4, 4, 0));
    assert_eq!(p.answered_within_sl, 2);
    assert!((p.asa_s.unwrap() - 37.5).abs() < 1e-9);
    // Talk 240 s in the hour the agent is on: 6.7%.
    assert!((r.occupancy_pct.unwrap() - 240.0 / 36.0).abs() < 1e-6);

    let mut calls = calls;
    calls[2].patience_ms = Some(90_000);
    let r = replay(&c, &calls, &[], &[], &opts);
    let p = r.queues[0].predicted.clone().unwrap();
    assert_eq!((p.answered, p.abandoned), (3, 1));
    let gave_up = &r.records[2];
    assert_eq!(
        gave_up.ended_ms.unwrap() - gave_up.queued_ms.unwrap(),
        90_000
    );
    assert_eq!(r.records[3].answered_ms.unwrap() - base_ms(), 200_000);
}

#[test]
fn replay_with_wrapup_and_a_second_agent() {
    let two = ONE_AGENT.replace(
        "[queues.q]",
        "[agents.duo]\npassword = \"x\"\n[queues.q]\nwrapup_s = 10",
    );
    let c = cfg(&two);
    let opts = ReplayOptions {
        since_ms: base_ms(),
        until_ms: base_ms() + 3_600_000,
        seed: 1,
        answer_s: 2,
    };
    // Two agents, answer after 2 s ringing, 10 s wrap-up: callers at 0, 0,
    // 0: the first two wait 2 s, the third waits for the first agent to end
    // (2 + 30) and wrap up (10), then rings 2 s: 44 s.
    let calls = vec![
        call(1, 0, 30, None),
        call(2, 0, 30, None),
        call(3, 0, 30, None),
    ];
    let r = replay(&c, &calls, &[], &[], &opts);
    let waits: Vec<i64> = r
        .records
        .iter()
        .map(|x| (x.answered_ms.unwrap() - x.queued_ms.unwrap()) / 1000)
        .collect();
    assert_eq!(waits, vec![2, 2, 44]);
    // Deterministic: the same input gives the same records.
    let again = replay(&c, &calls, &[], &[], &opts);
    assert_eq!(r.records, again.records);
}

#[test]
fn replay_follows_closed_schedules_and_overflow() {
    let c = cfg(r#"
[server]
timezone = "UTC"
[schedules.morning]
timezone = "UTC"
open = ["mon-sun 00:00-10:00"]
[agents.a]
password = "x"
skills = { x = 1 }
[queues.q]
skills = { y = 1 }
schedule = "morning"
max_wait_s = 30
overflow = "queue:spill"
[queues.spill]
"#);
    let opts = ReplayOptions {
        since_ms: base_ms() - 3_600_000,
        until_ms: base_ms() + 3_600_000,
        seed: 1,
        answer_s: 0,
    };
    // At 09:00 q is open but nobody has skill y: after 30 s the caller
    // overflows to spill, where agent a answers. At 10:00 q is closed.
    let calls = vec![call(1, -3600, 60, None), call(2, 0, 60, None)];
    let r = replay(&c, &calls, &[], &[], &opts);
    let first = &r.records[0];
    assert_eq!(
        first.ivr_path,
        vec!["queue:q".to_owned(), "queue:spill".to_owned()]
    );
    assert_eq!(first.agent.as_deref(), Some("a"));
    assert_eq!(first.answered_ms.unwrap() - (base_ms() - 3_600_000), 30_000);
    assert_eq!(r.records[1].disposition, crate::cdr::Disposition::Closed);
    let q = r
        .queues
        .iter()
        .find(|q| q.queue == "q")
        .unwrap()
        .predicted
        .clone()
        .unwrap();
    assert_eq!((q.offered, q.overflowed, q.closed), (1, 1, 1));
}

#[test]
fn demand_counts_handle_time_and_patience_per_interval() {
    use crate::cdr::{CallRecord, Disposition};
    let c = cfg(r#"
[server]
timezone = "UTC"
[schedules.jkt]
timezone = "Asia/Jakarta"
open = ["00:00-24:00"]
[agents.a]
password = "x"
[queues.q]
schedule = "jkt"
wrapup_s = 10
"#);
    // Monday 2026-06-01 03:00 UTC is 10:00 in Jakarta: interval 20 of the
    // week (30 minutes) on the queue's clock.
    let t0 = Utc
        .with_ymd_and_hms(2026, 6, 1, 3, 0, 0)
        .unwrap()
        .timestamp_millis();
    let rec = |i: i64, wait_s: i64, talk_s: Option<i64>| {
        let mut r = CallRecord::arrival(&format!("c{i}"), "", "1", t0 + i * 1000);
        r.queue = Some("q".into());
        r.queued_ms = Some(t0 + i * 1000);
        let end = t0 + i * 1000 + wait_s * 1000;
        match talk_s {
            Some(t) => {
                r.answered_ms = Some(end);
                r.ended_ms = Some(end + t * 1000);
                r.disposition = Disposition::Answered;
            }
            None => {
                r.ended_ms = Some(end);
                r.disposition = Disposition::Abandoned;
            }
        }
        r
    };
    let records = vec![
        rec(0, 10, Some(100)),
        rec(1, 20, Some(200)),
        rec(2, 30, Some(300)),
        rec(3, 40, None),
    ];
    let d = super::demand(
        &c,
        &records,
        &super::DemandOptions {
            since_ms: t0 - 86_400_000,
            until_ms: t0 + 86_400_000,
            interval_min: 30,
        },
    );
    let q = &d.queues["q"];
    assert_eq!((q.offered, q.answered, q.abandoned), (4, 3, 1));
    assert_eq!(q.slots.keys().copied().collect::<Vec<_>>(), vec![20]);
    assert_eq!(q.weeks, 1.0);
    assert!((q.calls_per_week(20) - 4.0).abs() < 1e-12);
    // Talk 200 s on average plus 10 s wrap-up.
    assert!((q.handle_for(20).unwrap() - 210.0).abs() < 1e-9);
    // Everyone's waiting (10+20+30+40 s) over one abandon.
    assert!((q.patience_s.unwrap() - 100.0).abs() < 1e-9);
    assert!((q.abandon_wait_s.unwrap() - 40.0).abs() < 1e-9);
}
