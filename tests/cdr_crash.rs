//! A process writing call records is killed with SIGKILL; the database must
//! be intact, keep every committed record, and show the cut-off calls as
//! `interrupted` at the next open.
//!
//! The child is this same test binary, re-run with an environment variable
//! that turns `child_writer` from a no-op into the writer.

use sipacd::cdr::{CallRecord, CdrFilter, CdrStore, CdrWriter, Disposition};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "SIPACD_CDR_CRASH_CHILD_DIR";
const READY_AFTER: usize = 300;

/// Every third call is left in progress forever; the others finish.
fn write_calls(dir: &Path) {
    let (store, _) = CdrStore::open(dir).unwrap();
    let writer = CdrWriter::spawn(store).unwrap();
    let h = writer.handle();
    let start = Instant::now();
    let mut i = 0usize;
    // Bounded: the parent kills us long before this ends.
    while start.elapsed() < Duration::from_secs(30) {
        let id = format!("k{i:06}");
        let t = i as i64 * 1000;
        let mut r = CallRecord::arrival(&id, "+6281234", "1500", t);
        h.record(r.clone()).unwrap();
        if i % 3 != 0 {
            r.queue = Some("billing".into());
            r.queued_ms = Some(t + 10);
            r.answered_ms = Some(t + 20);
            r.ended_ms = Some(t + 30);
            r.agent = Some("1001".into());
            r.disposition = Disposition::Answered;
            h.record(r).unwrap();
        }
        i += 1;
        if i == READY_AFTER {
            h.flush().unwrap();
            println!("READY");
        }
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn child_writer() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        write_calls(Path::new(&dir));
    }
}

#[test]
fn kill_9_keeps_the_database_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest may print "test child_writer ... " on the same line.
    let ready = lines.any(|l| l.map(|l| l.contains("READY")).unwrap_or(false));
    assert!(ready, "child never got ready");
    // Let it write under way, then SIGKILL mid-stream.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();

    let (store, interrupted) = CdrStore::open(dir.path()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let all = store.query(&CdrFilter::default()).unwrap();
    assert!(all.len() > READY_AFTER, "only {} records", all.len());
    assert!(interrupted >= READY_AFTER / 3, "interrupted {interrupted}");
    // Everything flushed before READY is there, with the right outcome.
    for i in 0..READY_AFTER {
        let r = store.get(&format!("k{i:06}")).unwrap().unwrap();
        let want = if i % 3 == 0 {
            Disposition::Interrupted
        } else {
            Disposition::Answered
        };
        assert_eq!(r.disposition, want, "call {i}");
    }
    assert!(all.iter().all(|r| r.disposition != Disposition::InProgress));
}
