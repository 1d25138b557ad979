//! Report figures on a hand-built day of calls, every number worked out by
//! hand below, read back through the store and writer.

use sipacd::cdr::{
    compute_report, render_text, report_json, to_csv, to_json, AgentLegRecord, AgentSession,
    Bucket, CallRecord, CdrFilter, CdrStore, CdrWriter, Disposition, HangupBy, ReportOptions,
};
use std::collections::BTreeMap;

const T0: i64 = 1_777_622_400_000; // 2026-05-01T08:00:00Z
const S: i64 = 1000;

fn call(id: &str, queue: Option<&str>, queued: i64) -> CallRecord {
    let mut r = CallRecord::arrival(id, "+62811", "1500", T0 + queued - 2 * S);
    r.queue = queue.map(str::to_owned);
    r.queued_ms = queue.map(|_| T0 + queued);
    r.ivr_path = queue
        .map(|q| vec![format!("queue:{q}")])
        .unwrap_or_default();
    r
}

fn answered(id: &str, q: &str, queued: i64, wait: i64, talk: i64, agent: &str) -> CallRecord {
    let mut r = call(id, Some(q), queued);
    r.offered_ms = Some(T0 + queued + wait - S);
    r.answered_ms = Some(T0 + queued + wait);
    r.ended_ms = Some(T0 + queued + wait + talk);
    r.agent = Some(agent.into());
    r.disposition = Disposition::Answered;
    r.hangup_by = Some(HangupBy::Agent);
    r
}

fn abandoned(id: &str, q: &str, queued: i64, wait: i64) -> CallRecord {
    let mut r = call(id, Some(q), queued);
    r.ended_ms = Some(T0 + queued + wait);
    r.disposition = Disposition::Abandoned;
    r.hangup_by = Some(HangupBy::Caller);
    r
}

fn day() -> Vec<CallRecord> {
    // billing (service_level_s = 20):
    let a1 = answered("a1", "billing", 0, 10 * S, 120 * S, "1001"); // in SL
    let a2 = answered("a2", "billing", 60 * S, 30 * S, 60 * S, "1002"); // out of SL
    let b1 = abandoned("b1", "billing", 100 * S, 3 * S); // short abandon
    let b2 = abandoned("b2", "billing", 110 * S, 45 * S);
    // o1 overflowed billing -> general, answered there after 5 s, talk 100 s.
    let mut o1 = answered("o1", "general", 200 * S, 5 * S, 100 * S, "1001");
    o1.ivr_path = vec![
        "main.menu".into(),
        "queue:billing".into(),
        "queue:general".into(),
    ];
    // o2 overflowed billing -> ivr (after max_wait_s), ended there.
    let mut o2 = call("o2", Some("billing"), 300 * S);
    o2.ended_ms = Some(T0 + 900 * S);
    o2.disposition = Disposition::Overflowed;
    o2.hangup_by = Some(HangupBy::System);
    // c1 reached billing while closed.
    let mut c1 = call("c1", Some("billing"), 400 * S);
    c1.ended_ms = Some(T0 + 410 * S);
    c1.disposition = Disposition::Closed;
    // r1 rejected at the door (503), no queue: in no queue row.
    let mut r1 = call("r1", None, 500 * S);
    r1.disposition = Disposition::Rejected;
    // After hours. n1: the IVR's closed branch hung up (no queue).
    let mut n1 = call("n1", None, 600 * S);
    n1.ended_ms = Some(T0 + 610 * S);
    n1.disposition = Disposition::Closed;
    n1.hangup_by = Some(HangupBy::System);
    n1.closed_by = Some("ivr:main.hours".into());
    // n2: the closed branch led to general, answered there by 1003 after
    // 2 s, talk 50 s.
    let mut n2 = answered("n2", "general", 700 * S, 2 * S, 50 * S, "1003");
    n2.closed_by = Some("ivr:main.hours".into());
    // n3: billing was closed to it, its redirect sent it to general, where
    // the caller gave up after 8 s: not offered to billing.
    let mut n3 = abandoned("n3", "general", 800 * S, 8 * S);
    n3.ivr_path = vec!["queue:billing".into(), "queue:general".into()];
    n3.closed_by = Some("queue:billing".into());
    // Outside the window: must not be read at all.
    let late = answered("late", "billing", 7200 * S, S, S, "1002");
    vec![a1, a2, b1, b2, o1, o2, c1, r1, n1, n2, n3, late]
}

/// Logins and logouts as the daemon reports agent states (a state change
/// that keeps the agent logged in, and one outside the window, included).
fn logins() -> Vec<(&'static str, bool, i64)> {
    vec![
        ("1001", true, T0 - 600 * S), // before the window
        ("1002", true, T0),
        ("1003", true, T0 + 100 * S),
        ("1003", false, T0 + 400 * S),
        ("1002", true, T0 + 500 * S), // still logged in: no new session
        ("1002", false, T0 + 1200 * S),
        ("1001", false, T0 + 1740 * S),
        ("1001", true, T0 + 3000 * S), // still open when the writer stops
        ("1004", true, T0 + 4000 * S),
        ("1004", false, T0 + 5000 * S),
    ]
}

fn window() -> CdrFilter {
    CdrFilter {
        since_ms: Some(T0 - 60 * S),
        until_ms: Some(T0 + 3540 * S),
    }
}

/// Writes `records` and `logins()` through the writer thread, then reads
/// the window back: (records, sessions).
fn read_back(records: &[CallRecord]) -> (tempfile::TempDir, Vec<CallRecord>, Vec<AgentSession>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = CdrStore::open(dir.path()).unwrap();
    let writer = CdrWriter::spawn(store).unwrap();
    for r in records {
        writer.handle().record(r.clone()).unwrap();
    }
    for (agent, on, at) in logins() {
        writer.handle().agent_state(agent, on, at).unwrap();
    }
    writer.shutdown();
    let reader = CdrStore::open_reader(dir.path()).unwrap();
    let got = reader.query(&window()).unwrap();
    let sessions = reader.sessions(&window()).unwrap();
    (dir, got, sessions)
}

fn opts() -> ReportOptions {
    ReportOptions {
        since_ms: Some(T0 - 60 * S),
        until_ms: Some(T0 + 3540 * S), // one hour
        service_level_s: BTreeMap::from([("billing".into(), 20), ("general".into(), 30)]),
        ..ReportOptions::default()
    }
}

#[test]
fn per_queue_and_per_agent_figures_match_the_hand_count() {
    let (_dir, recs, sessions) = read_back(&day());
    assert_eq!(recs.len(), 11, "`late` is outside the window");
    assert_eq!(
        recs[9].closed_by.as_deref(),
        Some("ivr:main.hours"),
        "{:?}",
        recs[9]
    );
    // 1004's session is outside the window; 1001's second one was closed
    // when the writer stopped (now, long after T0).
    let spans: Vec<_> = sessions
        .iter()
        .map(|s| (s.agent.as_str(), (s.login_ms - T0) / S))
        .collect();
    assert_eq!(
        spans,
        [("1001", -600), ("1001", 3000), ("1002", 0), ("1003", 100)]
    );
    assert_eq!(sessions[0].logout_ms, Some(T0 + 1740 * S));
    assert!(sessions[1].logout_ms.is_some_and(|t| t > T0 + 3540 * S));
    let rep = compute_report(&recs, &sessions, &opts());
    assert_eq!(rep.queues.len(), 2);

    let b = &rep.queues[0];
    assert_eq!(b.queue, "billing");
    assert_eq!(b.period, None);
    // a1 a2 b1 b2 o1 o2
    assert_eq!(b.offered, 6);
    assert_eq!(b.answered, 2);
    assert_eq!(b.abandoned, 2);
    assert_eq!(b.abandoned_short, 1);
    assert_eq!(b.overflowed, 2);
    // c1 (a record without closed_by) and n3 (closed to it, then general).
    assert_eq!(b.closed, 2);
    // abandoned / (answered + abandoned) = 2 / 4
    assert_eq!(b.abandon_rate_pct, Some(50.0));
    assert_eq!(b.rejected, 0);
    assert_eq!(b.answered_within_sl, 1);
    // 1 in SL / (6 offered - 1 short abandon)
    assert_eq!(b.service_level_pct, Some(20.0));
    assert_eq!(b.asa_s, Some(20.0)); // (10 + 30) / 2
    assert_eq!(b.aht_s, Some(90.0)); // (120 + 60) / 2
    assert_eq!(b.longest_wait_s, 45.0); // b2

    // o1, n2 answered; n3 abandoned after 8 s.
    let g = &rep.queues[1];
    assert_eq!(g.queue, "general");
    assert_eq!((g.offered, g.answered, g.abandoned), (3, 2, 1));
    assert_eq!(g.closed, 0);
    let rate = g.abandon_rate_pct.unwrap();
    assert!((rate - 100.0 / 3.0).abs() < 1e-9, "{rate}");
    // 2 within 30 s / 3 offered
    let sl = g.service_level_pct.unwrap();
    assert!((sl - 200.0 / 3.0).abs() < 1e-9, "{sl}");
    assert_eq!(g.asa_s, Some(3.5)); // (5 + 2) / 2
    assert_eq!(g.aht_s, Some(75.0)); // (100 + 50) / 2
    assert_eq!(g.longest_wait_s, 8.0);

    // Logged in within the window: 1001 from its start (-60 s) to 1740 s,
    // and 3000 s to its end (3540 s); 1002 0..1200 s; 1003 100..400 s.
    let agents: Vec<_> = rep
        .agents
        .iter()
        .map(|a| (a.agent.as_str(), a.calls_taken, a.talk_s, a.logged_in_s))
        .collect();
    assert_eq!(
        agents,
        [
            ("1001", 2, 220.0, 2340.0),
            ("1002", 1, 60.0, 1200.0),
            ("1003", 1, 50.0, 300.0),
        ]
    );
    let occ: Vec<f64> = rep
        .agents
        .iter()
        .map(|a| a.occupancy_pct.unwrap())
        .collect();
    let want = [220.0 / 23.4, 5.0, 50.0 / 3.0];
    for (got, want) in occ.iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "{occ:?}");
    }

    // After-hours demand, per closed branch.
    let closed: Vec<_> = rep
        .closed
        .iter()
        .map(|c| (c.branch.as_str(), c.calls, c.answered_after))
        .collect();
    assert_eq!(closed, [("ivr:main.hours", 2, 1), ("queue:billing", 2, 0)]);

    let text = render_text(&rep);
    let line = text.lines().find(|l| l.starts_with("billing")).unwrap();
    let cells: Vec<_> = line.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "billing", "6", "2", "2", "50.0", "1", "2", "2", "20.0", "20.0", "90.0",
            // AHT's parts: talk, hold, wrap-up
            "90.0", "0.0", "0.0", "45.0",
            // no scores; both answered callers (one number) called again
            "-", "0", "0.0"
        ]
    );
    assert!(text.lines().any(|l| l
        .split_whitespace()
        .eq(["1001", "2", "220.0", "2340.0", "9.4", "-", "0"])));
    assert!(text
        .lines()
        .any(|l| l.split_whitespace().eq(["ivr:main.hours", "2", "1"])));
    assert!(text.contains("aband% = abandoned / (answered + abandoned)"));
}

#[test]
fn queue_filter_and_hourly_buckets() {
    let mut recs = day();
    recs.pop();
    // One more billing call answered in the next hour (09:xx UTC).
    recs.push(answered("n1", "billing", 3700 * S, 4 * S, 30 * S, "1002"));
    let rep = compute_report(
        &recs,
        &[],
        &ReportOptions {
            queue: Some("billing".into()),
            by: Some(Bucket::Hour),
            ..opts()
        },
    );
    let rows: Vec<_> = rep
        .queues
        .iter()
        .map(|q| (q.queue.as_str(), q.period.as_deref(), q.offered, q.answered))
        .collect();
    assert_eq!(
        rows,
        [
            ("billing", Some("2026-05-01 08:00"), 6, 2),
            ("billing", Some("2026-05-01 09:00"), 1, 1),
        ]
    );
    assert_eq!(rep.queues[1].service_level_pct, Some(100.0));
    // Only the branch of the queue asked for.
    let closed: Vec<_> = rep
        .closed
        .iter()
        .map(|c| (c.branch.as_str(), c.period.as_deref(), c.calls))
        .collect();
    assert_eq!(closed, [("queue:billing", Some("2026-05-01 08:00"), 2)]);
}

/// A `calls.sqlite` as the first release wrote it (no `closed_by`, no
/// `agent_sessions`, `user_version` 0; the store's tests use the same
/// frozen file), with two of that release's rows.
const V0_SCHEMA: &str = include_str!("fixtures/calls_sqlite/v0.sql");
const V0_ROWS: &str = "
INSERT INTO calls (id, caller, number, queue, arrived_ms, queued_ms, ended_ms, disposition)
    VALUES ('old1', '+62811', '1500', 'billing', 1777622400000, 1777622401000, 1777622460000, 'closed'),
           ('old2', '+62812', '1500', 'billing', 1777622500000, NULL, NULL, 'in_progress');
";

#[test]
fn a_data_dir_of_the_first_release_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join(sipacd::cdr::DB_FILE)).unwrap();
        c.execute_batch(V0_SCHEMA).unwrap();
        c.execute_batch(V0_ROWS).unwrap();
    }
    let (store, interrupted) = CdrStore::open(dir.path()).unwrap();
    assert_eq!(interrupted, 1, "old2 was in progress");
    let writer = CdrWriter::spawn(store).unwrap();
    let mut new = answered("new1", "billing", 0, 3 * S, 10 * S, "1001");
    new.closed_by = Some("ivr:main.hours".into());
    writer.handle().record(new).unwrap();
    writer
        .handle()
        .agent_state("1001", true, T0 - 60 * S)
        .unwrap();
    writer
        .handle()
        .agent_state("1001", false, T0 + 100 * S)
        .unwrap();
    writer.shutdown();

    let reader = CdrStore::open_reader(dir.path()).unwrap();
    let recs = reader.query(&CdrFilter::default()).unwrap();
    let got: Vec<_> = recs
        .iter()
        .map(|r| (r.id.as_str(), r.disposition, r.closed_by.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("new1", Disposition::Answered, Some("ivr:main.hours")),
            ("old1", Disposition::Closed, None),
            ("old2", Disposition::Interrupted, None),
        ]
    );
    let sessions = reader.sessions(&CdrFilter::default()).unwrap();
    assert_eq!(
        sessions,
        [AgentSession {
            agent: "1001".into(),
            login_ms: T0 - 60 * S,
            logout_ms: Some(T0 + 100 * S),
        }]
    );
    let version: i64 = rusqlite::Connection::open(dir.path().join(sipacd::cdr::DB_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, 7,
        "closed_by and agent_sessions, then hold_ms, legs, recording, monitors, voicemail and csat, callback"
    );
    // Opening again changes nothing.
    drop(reader);
    let (again, _) = CdrStore::open(dir.path()).unwrap();
    assert_eq!(again.query(&CdrFilter::default()).unwrap(), recs);
}

#[test]
fn sessions_a_crash_left_open_end_at_the_last_call_event() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = CdrStore::open(dir.path()).unwrap();
    store
        .write_batch(&[answered("x1", "billing", 0, 3 * S, 10 * S, "1001")])
        .unwrap();
    store
        .write_sessions(&[sipacd::cdr::SessionEvent {
            agent: "1001".into(),
            logged_in: true,
            at_ms: T0 - 60 * S,
        }])
        .unwrap();
    drop(store); // no close_sessions: the process died
    let (store, _) = CdrStore::open(dir.path()).unwrap();
    let s = store.sessions(&CdrFilter::default()).unwrap();
    // x1 ended at 13 s.
    assert_eq!(s[0].logout_ms, Some(T0 + 13 * S));
}

#[test]
fn exports_carry_every_record() {
    let mut recs = day();
    recs[0]
        .variables
        .insert("note".into(), "said \"hi\", twice".into());
    let json: serde_json::Value = serde_json::from_str(&to_json(&recs)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), recs.len());
    assert_eq!(json[0]["disposition"], "answered");
    assert_eq!(json[0]["variables"]["note"], "said \"hi\", twice");

    let csv = to_csv(&recs);
    let lines: Vec<_> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), recs.len() + 1);
    assert!(lines[0].starts_with("id,caller,number,queue,arrived,"));
    assert!(lines[1]
        .starts_with("a1,+62811,1500,billing,2026-05-01T07:59:58.000Z,2026-05-01T08:00:00.000Z,"));
    // The JSON column with a quote and comma is quoted, quotes doubled.
    assert!(lines[1].contains(r#""{""note"":""said \""hi\"", twice""}""#));
}

/// CSAT, first-contact resolution and AHT with wrap-up on calls whose
/// answers are worked out by hand.
#[test]
fn outcome_figures_csat_fcr_and_aht_with_wrapup() {
    const H: i64 = 3_600 * S;
    // FCR goes by the number called from (`caller`), not the number
    // dialled: every record here dialled 1500.
    let from = |mut r: CallRecord, number: &str| {
        r.caller = number.into();
        r
    };
    // x1 (+1) answered by 1001, scored 5; +1 calls again 2 h after x1's end:
    // not resolved in 24 h, resolved in a 1 h window.
    let mut x1 = from(answered("x1", "sales", 0, 10 * S, 100 * S, "1001"), "+1");
    x1.csat = Some(5);
    x1.hold_ms = 20 * S; // inside its 100 s of talk
    let x1_end = 110 * S;
    // x2 (+1) again, answered by 1002, scored 2; no later call from +1.
    let mut x2 = from(
        answered("x2", "sales", x1_end + 2 * H + 2 * S, 4 * S, 60 * S, "1002"),
        "+1",
    );
    x2.csat = Some(2);
    // y1 (+2) answered by 1001, no score; +2 calls again 30 h later.
    let y1 = from(answered("y1", "sales", 0, 6 * S, 40 * S, "1001"), "+2");
    let y2 = from(
        abandoned("y2", "sales", 46 * S + 30 * H + 2 * S, 20 * S),
        "+2",
    );
    // An abandoned call's score-less caller is no FCR case.
    let records = vec![x1, x2, y1, y2];
    let mut opts = ReportOptions::default();
    opts.wrapup_s.insert("sales".into(), 15);

    let r = compute_report(&records, &[], &opts);
    let q = &r.queues[0];
    assert_eq!(q.queue, "sales");
    assert_eq!((q.answered, q.abandoned), (3, 1));
    assert_eq!(q.csat_count, 2);
    assert_eq!(q.csat_mean, Some(3.5)); // (5 + 2) / 2
                                        // 24 h window: x1 not resolved (+1 again after 2 h), x2 and y1 are.
    let fcr = q.fcr_pct.expect("fcr");
    assert!((fcr - 200.0 / 3.0).abs() < 1e-9, "{fcr}");
    assert_eq!(q.abandon_rate_pct, Some(25.0));
    // AHT: ((100 + 15) + (60 + 15) + (40 + 15)) / 3
    let aht = q.aht_s.expect("aht");
    assert!((aht - 245.0 / 3.0).abs() < 1e-9, "{aht}");
    // Its parts: talk ((100 - 20) + 60 + 40) / 3, hold 20 / 3, wrap-up 15.
    let close = |v: Option<f64>, want: f64| v.is_some_and(|x| (x - want).abs() < 1e-9);
    assert!(close(q.aht_talk_s, 60.0), "{:?}", q.aht_talk_s);
    assert!(close(q.aht_hold_s, 20.0 / 3.0), "{:?}", q.aht_hold_s);
    assert!(close(q.aht_wrapup_s, 15.0), "{:?}", q.aht_wrapup_s);
    let a1001 = r.agents.iter().find(|a| a.agent == "1001").expect("1001");
    assert_eq!((a1001.csat_mean, a1001.csat_count), (Some(5.0), 1));
    let a1002 = r.agents.iter().find(|a| a.agent == "1002").expect("1002");
    assert_eq!((a1002.csat_mean, a1002.csat_count), (Some(2.0), 1));

    // A 1 h window: every answered caller resolved; 40 h: y1 not either.
    opts.fcr_window_ms = H;
    let q1 = compute_report(&records, &[], &opts).queues[0].clone();
    assert_eq!(q1.fcr_pct, Some(100.0));
    opts.fcr_window_ms = 40 * H;
    let q40 = compute_report(&records, &[], &opts).queues[0].clone();
    let fcr40 = q40.fcr_pct.expect("fcr");
    assert!((fcr40 - 100.0 / 3.0).abs() < 1e-9, "{fcr40}");

    let text = render_text(&r);
    assert!(text.contains("CSAT") && text.contains("FCR%"), "{text}");
    assert!(text.contains("3.50"), "{text}");
}

#[test]
fn callback_figures_count_offers_acceptances_tries_and_the_time_to_the_callback() {
    use sipacd::cdr::CallbackRecord;
    // w1 waits in sales, is offered a callback and accepts it after 50 s;
    // w2 is offered one and takes its call in the queue; w3 never is.
    let mut w1 = call("w1", Some("sales"), 0);
    w1.ended_ms = Some(T0 + 55 * S);
    w1.disposition = Disposition::Callback;
    w1.hangup_by = Some(HangupBy::System);
    w1.callback = Some(CallbackRecord {
        id: Some("cb-1".into()),
        number: Some("0301234567".into()),
        offered_ms: Some(T0 + 30 * S),
        accepted_ms: Some(T0 + 50 * S),
        ..Default::default()
    });
    let mut w2 = answered("w2", "sales", 10 * S, 40 * S, 60 * S, "1002");
    w2.callback = Some(CallbackRecord {
        offered_ms: Some(T0 + 40 * S),
        ..Default::default()
    });
    let w3 = answered("w3", "sales", 20 * S, 5 * S, 60 * S, "1001");
    // Two tries for cb-1: busy 100 s after it was accepted, then reached
    // 400 s after (agent 1001 talks 90 s).
    let placed = |id: &str, attempt: u32, outcome: &str, reached: Option<i64>| {
        let mut r = answered(id, "sales", 150 * S, 0, 90 * S, "1001");
        r.caller = "0301234567".into();
        r.number = "callback".into();
        r.callback = Some(CallbackRecord {
            id: Some("cb-1".into()),
            number: Some("0301234567".into()),
            accepted_ms: Some(T0 + 50 * S),
            attempt: Some(attempt),
            origin: Some("w1".into()),
            outcome: Some(outcome.into()),
            reached_ms: reached,
            gave_up: false,
            offered_ms: None,
        });
        r
    };
    let p1 = placed("p1", 1, "busy", None);
    let p2 = placed("p2", 2, "reached", Some(T0 + 450 * S));
    let records = vec![w1, w2, w3, p1, p2];
    let r = compute_report(&records, &[], &ReportOptions::default());

    let q = &r.queues[0];
    // The placed calls are no offers to the queue; the accepted callback
    // is neither answered nor abandoned.
    assert_eq!((q.offered, q.answered, q.abandoned), (2, 2, 0), "{q:?}");
    // The overall classes count the callers' calls only.
    assert_eq!(r.overall[0].calls, 3, "{:?}", r.overall);
    let c = &r.callbacks[0];
    assert_eq!(c.queue, "sales");
    assert_eq!(
        (c.offered, c.accepted, c.tries, c.reached, c.gave_up),
        (2, 1, 2, 1, 0)
    );
    assert_eq!(c.accepted_pct, Some(50.0));
    assert_eq!(c.time_to_callback_s, Some(400.0));
    // The agent did the placed calls' work: w3 plus the two tries.
    let a1001 = r.agents.iter().find(|a| a.agent == "1001").expect("1001");
    assert_eq!(a1001.calls_taken, 3);
    let text = render_text(&r);
    assert!(text.contains("callbacks (queue)"), "{text}");
    assert!(text.contains("400.0"), "{text}");
}

#[test]
fn a_surveyed_calls_talk_and_aht_end_with_the_agents_leg() {
    // The agent talks 40 s and hangs up; the caller then spends 25 s in the
    // post-call survey before the call ends.
    let mut r = answered("s1", "sales", 0, 5 * S, 65 * S, "1001");
    let answered_ms = r.answered_ms.expect("answered");
    let mut leg = AgentLegRecord::agent("1001", Some("sales".into()), answered_ms);
    leg.ended_ms = Some(answered_ms + 40 * S);
    r.legs = vec![leg];
    r.csat = Some(4);
    let mut opts = ReportOptions::default();
    opts.wrapup_s.insert("sales".into(), 10);
    let rep = compute_report(&[r], &[], &opts);
    assert_eq!(rep.queues[0].aht_s, Some(50.0), "40 s talk + 10 s wrap-up");
    assert_eq!(rep.agents[0].talk_s, 40.0);
    assert_eq!(rep.agents[0].csat_mean, Some(4.0));
}

/// The overall figures: every call in one class (queued, voicemail, turned
/// away, IVR abandoned, self-served), the self-service rate, and the
/// queues' abandonment rate and AHT (talk + hold + wrap-up) taken together,
/// each call counted once; worked out by hand, read back through the store.
#[test]
fn overall_self_service_abandonment_and_aht_with_hold() {
    let ivr = |id: &str, path: &[&str], disposition: Disposition| {
        let mut r = call(id, None, 5 * S); // arrived at 08:00:03
        r.ivr_path = path.iter().map(|p| p.to_string()).collect();
        r.ended_ms = Some(T0 + 30 * S);
        r.disposition = disposition;
        r.hangup_by = Some(match disposition {
            Disposition::Abandoned => HangupBy::Caller,
            _ => HangupBy::System,
        });
        r
    };
    // Queued (4). q1: sales, talk 100 s of which 30 s on hold.
    let mut q1 = answered("q1", "sales", 0, 10 * S, 100 * S, "1001");
    q1.hold_ms = 30 * S;
    q1.ivr_path = vec!["main.welcome".into(), "queue:sales".into()];
    let q2 = abandoned("q2", "sales", 10 * S, 20 * S);
    let q3 = answered("q3", "support", 20 * S, 5 * S, 50 * S, "1002");
    // o1: support overflowed to sales, answered there (talk 70 s).
    let mut o1 = answered("o1", "sales", 30 * S, 5 * S, 70 * S, "1002");
    o1.ivr_path = vec!["queue:support".into(), "queue:sales".into()];
    // Self-served (2): the IVR hung up after the balance, or the caller
    // left the menu after the welcome had played.
    let s1 = ivr(
        "s1",
        &["main.welcome", "main.balance", "main.bye"],
        Disposition::Closed,
    );
    let s2 = ivr("s2", &["main.welcome", "main.menu"], Disposition::Abandoned);
    // IVR abandoned (2): gone during the first node, or before the IVR.
    let e1 = ivr("e1", &["main.welcome"], Disposition::Abandoned);
    let e2 = ivr("e2", &[], Disposition::Abandoned);
    // Voicemail (2): after hours, and sales closed to the caller.
    let mut v1 = ivr("v1", &["main.hours", "main.vm"], Disposition::Abandoned);
    v1.closed_by = Some("ivr:main.hours".into());
    v1.voicemail = Some("voicemail/2026-05-01/v1.wav".into());
    let mut v2 = call("v2", Some("sales"), 40 * S);
    v2.ivr_path = vec!["queue:sales".into(), "main.vm".into()];
    v2.closed_by = Some("queue:sales".into());
    v2.voicemail = Some("voicemail/2026-05-01/v2.wav".into());
    v2.ended_ms = Some(T0 + 90 * S);
    v2.disposition = Disposition::Abandoned;
    v2.hangup_by = Some(HangupBy::Caller);
    // Turned away (1): the closed branch played its prompt and hung up.
    let mut t1 = ivr("t1", &["main.hours", "main.closed"], Disposition::Closed);
    t1.closed_by = Some("ivr:main.hours".into());
    // Rejected at the door: not a call of the IVR.
    let mut r1 = call("r1", None, 0);
    r1.disposition = Disposition::Rejected;
    // Cut off in the menu by the daemon's stop: in no class either.
    let i1 = ivr(
        "i1",
        &["main.welcome", "main.menu"],
        Disposition::Interrupted,
    );
    let records = vec![q1, q2, q3, o1, s1, s2, e1, e2, v1, v2, t1, r1, i1];
    let (_dir, got, sessions) = read_back(&records);
    assert_eq!(got.len(), records.len());
    let mut opts = opts();
    opts.wrapup_s = BTreeMap::from([("sales".into(), 10)]);

    let r = compute_report(&got, &sessions, &opts);
    assert_eq!(r.overall.len(), 1);
    let o = &r.overall[0];
    assert_eq!(o.calls, 11);
    assert_eq!(
        (
            o.queued,
            o.voicemail,
            o.turned_away,
            o.ivr_abandoned,
            o.self_served
        ),
        (4, 2, 1, 2, 2)
    );
    let close = |v: Option<f64>, want: f64| v.is_some_and(|x| (x - want).abs() < 1e-9);
    assert!(close(o.self_service_pct, 200.0 / 11.0), "{o:?}");
    // Queues together: q1, q3, o1 answered, q2 abandoned.
    assert_eq!((o.answered, o.abandoned), (3, 1));
    assert_eq!(o.abandon_rate_pct, Some(25.0));
    // AHT: (100 + 10) + (50 + 0) + (70 + 10) = 240 s over 3 calls; talk
    // (70 + 50 + 70) / 3, hold 30 / 3, wrap-up 20 / 3.
    assert!(close(o.aht_s, 80.0), "{o:?}");
    assert!(close(o.aht_talk_s, 190.0 / 3.0), "{o:?}");
    assert!(close(o.aht_hold_s, 10.0), "{o:?}");
    assert!(close(o.aht_wrapup_s, 20.0 / 3.0), "{o:?}");

    // Per queue: sales answered q1 and o1, abandoned q2; v2 closed there.
    let sales = r.queues.iter().find(|q| q.queue == "sales").expect("sales");
    assert_eq!((sales.answered, sales.abandoned, sales.closed), (2, 1, 1));
    assert!(close(sales.abandon_rate_pct, 100.0 / 3.0), "{sales:?}");
    assert!(close(sales.aht_s, 95.0), "{sales:?}");
    assert!(close(sales.aht_talk_s, 70.0), "{sales:?}");
    assert!(close(sales.aht_hold_s, 15.0), "{sales:?}");
    assert!(close(sales.aht_wrapup_s, 10.0), "{sales:?}");
    let support = r
        .queues
        .iter()
        .find(|q| q.queue == "support")
        .expect("support");
    assert_eq!(
        (support.offered, support.answered, support.overflowed),
        (2, 1, 1)
    );
    assert!(close(support.aht_s, 50.0) && close(support.aht_hold_s, 0.0));
    assert_eq!(support.abandon_rate_pct, Some(0.0));

    // Text: the overall table with the rate; JSON: the same figures.
    let text = render_text(&r);
    assert!(
        text.contains("self-served") && text.contains("self%"),
        "{text}"
    );
    let all = text
        .lines()
        .find(|l| l.starts_with("all "))
        .expect("overall row");
    let cells: Vec<&str> = all.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["11", "4", "2", "18.2"], "{all}");
    assert!(cells.contains(&"25.0") && cells.contains(&"80.0"), "{all}");
    let json: serde_json::Value = serde_json::from_str(&report_json(&r)).unwrap();
    assert_eq!(json["overall"][0]["self_served"], 2);
    assert_eq!(json["overall"][0]["abandon_rate_pct"], 25.0);
    let jsales = json["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "sales")
        .unwrap();
    assert_eq!(jsales["aht_hold_s"], 15.0);

    // By hour: the same call in one bucket; one queue: no overall rows.
    opts.by = Some(Bucket::Hour);
    let hourly = compute_report(&got, &sessions, &opts);
    assert_eq!(hourly.overall.len(), 1);
    assert_eq!(
        hourly.overall[0].period.as_deref(),
        Some("2026-05-01 08:00")
    );
    opts.by = None;
    opts.queue = Some("sales".into());
    assert!(compute_report(&got, &sessions, &opts).overall.is_empty());
}
