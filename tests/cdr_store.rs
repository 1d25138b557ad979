//! Call record store and writer: batching, drop, interrupted marking.

use sipacd::cdr::{CallRecord, CdrFilter, CdrStore, CdrWriter, Disposition, HangupBy, DB_FILE};
use std::time::Duration;

fn finished(id: &str, t: i64) -> CallRecord {
    let mut r = CallRecord::arrival(id, "+6281234", "1500", t);
    r.queue = Some("billing".into());
    r.queued_ms = Some(t + 1_000);
    r.answered_ms = Some(t + 5_000);
    r.ended_ms = Some(t + 65_000);
    r.agent = Some("1001".into());
    r.disposition = Disposition::Answered;
    r.hangup_by = Some(HangupBy::Caller);
    r.ivr_path = vec!["main.menu".into(), "queue:billing".into()];
    r.variables.insert("account".into(), "42".into());
    r
}

#[test]
fn writer_batches_while_the_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (store, n) = CdrStore::open(dir.path()).unwrap();
    assert_eq!(n, 0);
    let writer = CdrWriter::spawn(store).unwrap();
    let h = writer.handle();

    // Another connection holds the write lock: the writer's first batch waits.
    let blocker = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    h.record(finished("c0", 0)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for i in 1..1000 {
        h.record(finished(&format!("c{i}"), i)).unwrap();
    }
    let s = h.stats();
    assert_eq!(s.backlog, 1000, "nothing written while locked: {s:?}");
    assert_eq!(s.written, 0);
    blocker.execute_batch("COMMIT").unwrap();

    h.flush().unwrap();
    let s = writer.stats();
    assert_eq!(s.written, 1000);
    assert_eq!(s.backlog, 0);
    assert!(
        s.batches <= 2,
        "the 999 queued records go in one transaction: {s:?}"
    );

    let reader = CdrStore::open_reader(dir.path()).unwrap();
    let all = reader.query(&CdrFilter::default()).unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(reader.get("c7").unwrap().unwrap(), finished("c7", 7));
}

#[test]
fn dropping_the_writer_writes_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = CdrStore::open(dir.path()).unwrap();
    let writer = CdrWriter::spawn(store).unwrap();
    let h = writer.handle();
    for i in 0..300 {
        // Arrival row first, then the final record replaces it.
        h.record(CallRecord::arrival(&format!("d{i}"), "a", "1500", i))
            .unwrap();
        h.record(finished(&format!("d{i}"), i)).unwrap();
    }
    drop(writer);
    assert!(
        h.record(finished("late", 0)).is_err(),
        "writer is gone after drop"
    );

    let reader = CdrStore::open_reader(dir.path()).unwrap();
    let all = reader.query(&CdrFilter::default()).unwrap();
    assert_eq!(all.len(), 300);
    assert!(all.iter().all(|r| r.disposition == Disposition::Answered));
    assert_eq!(all[0], finished("d0", 0));
}

#[test]
fn in_progress_rows_become_interrupted_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = CdrStore::open(dir.path()).unwrap();
        let writer = CdrWriter::spawn(store).unwrap();
        let h = writer.handle();
        for id in ["live1", "live2", "done"] {
            h.record(CallRecord::arrival(id, "caller", "1500", 1_000))
                .unwrap();
        }
        h.record(finished("done", 1_000)).unwrap();
        h.flush().unwrap();
        // "Crash": the process goes away without finishing live1/live2.
        drop(writer);
    }
    let (store, n) = CdrStore::open(dir.path()).unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        store.get("live1").unwrap().unwrap().disposition,
        Disposition::Interrupted
    );
    assert_eq!(
        store.get("live2").unwrap().unwrap().disposition,
        Disposition::Interrupted
    );
    assert_eq!(store.get("done").unwrap().unwrap(), finished("done", 1_000));
    drop(store);
    let (_, again) = CdrStore::open(dir.path()).unwrap();
    assert_eq!(again, 0, "marking happens once");
}

#[test]
fn query_limits_by_arrival_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = CdrStore::open(dir.path()).unwrap();
    let recs: Vec<_> = (0..10)
        .map(|i| finished(&format!("q{i}"), i * 1000))
        .collect();
    store.write_batch(&recs).unwrap();
    let got = store
        .query(&CdrFilter {
            since_ms: Some(3000),
            until_ms: Some(6000),
        })
        .unwrap();
    let ids: Vec<_> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["q3", "q4", "q5"]);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}
