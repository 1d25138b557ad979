//! Report figures on a hand-built day of calls, every number worked out by
//! hand below, read back through the store and writer.

use sipacd::cdr::{
    compute_report, render_text, to_csv, to_json, Bucket, CallRecord, CdrFilter, CdrStore,
    CdrWriter, Disposition, HangupBy, ReportOptions,
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
    // Outside the window: must not be read at all.
    let late = answered("late", "billing", 7200 * S, S, S, "1002");
    vec![a1, a2, b1, b2, o1, o2, c1, r1, late]
}

fn read_back(records: &[CallRecord]) -> (tempfile::TempDir, Vec<CallRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = CdrStore::open(dir.path()).unwrap();
    let writer = CdrWriter::spawn(store).unwrap();
    for r in records {
        writer.handle().record(r.clone()).unwrap();
    }
    writer.shutdown();
    let reader = CdrStore::open_reader(dir.path()).unwrap();
    let got = reader
        .query(&CdrFilter {
            since_ms: Some(T0 - 60 * S),
            until_ms: Some(T0 + 3540 * S),
        })
        .unwrap();
    (dir, got)
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
    let (_dir, recs) = read_back(&day());
    assert_eq!(recs.len(), 8, "`late` is outside the window");
    let rep = compute_report(&recs, &opts());
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
    assert_eq!(b.closed, 1);
    assert_eq!(b.rejected, 0);
    assert_eq!(b.answered_within_sl, 1);
    // 1 in SL / (6 offered - 1 short abandon)
    assert_eq!(b.service_level_pct, Some(20.0));
    assert_eq!(b.asa_s, Some(20.0)); // (10 + 30) / 2
    assert_eq!(b.aht_s, Some(90.0)); // (120 + 60) / 2
    assert_eq!(b.longest_wait_s, 45.0); // b2

    let g = &rep.queues[1];
    assert_eq!(g.queue, "general");
    assert_eq!((g.offered, g.answered, g.abandoned), (1, 1, 0));
    assert_eq!(g.service_level_pct, Some(100.0));
    assert_eq!(g.asa_s, Some(5.0));
    assert_eq!(g.aht_s, Some(100.0));
    assert_eq!(g.longest_wait_s, 5.0);

    assert_eq!(rep.agents.len(), 2);
    let (a, z) = (&rep.agents[0], &rep.agents[1]);
    assert_eq!(
        (a.agent.as_str(), a.calls_taken, a.talk_s),
        ("1001", 2, 220.0)
    );
    assert_eq!(
        (z.agent.as_str(), z.calls_taken, z.talk_s),
        ("1002", 1, 60.0)
    );
    // talk over the 3600 s period
    let occ = a.occupancy_pct.unwrap();
    assert!((occ - 220.0 / 36.0).abs() < 1e-9, "{occ}");

    let text = render_text(&rep);
    let line = text.lines().find(|l| l.starts_with("billing")).unwrap();
    let cells: Vec<_> = line.split_whitespace().collect();
    assert_eq!(
        cells,
        ["billing", "6", "2", "2", "1", "2", "1", "20.0", "20.0", "90.0", "45.0"]
    );
    assert!(text
        .lines()
        .any(|l| l.split_whitespace().eq(["1001", "2", "220.0", "6.1"])));
}

#[test]
fn queue_filter_and_hourly_buckets() {
    let mut recs = day();
    recs.pop();
    // One more billing call answered in the next hour (09:xx UTC).
    recs.push(answered("n1", "billing", 3700 * S, 4 * S, 30 * S, "1002"));
    let rep = compute_report(
        &recs,
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
