//! The writer thread: the call path sends records over a channel and never
//! waits; the thread writes whatever has piled up in one transaction.
//!
//! A batch that cannot be written (disk full, locked file) is not lost: it
//! waits in a bounded buffer ([`MAX_PENDING`] records) and is tried again
//! every [`RETRY_EVERY`] with whatever arrived since, until the disk takes
//! it. While writes fail the writer says so (`failing`, the last error) for
//! `/health` and `/metrics`; only records beyond the buffer, oldest first,
//! are dropped and counted in `failed`.

use super::record::{now_ms, CallRecord, UnixMs};
use super::store::{CdrError, CdrStore, SessionEvent};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most records per transaction: bounds the time a reader may wait.
const MAX_BATCH: usize = 1000;
/// Records kept while writes fail (a few hundred bytes each: tens of MB at
/// most); beyond it the oldest are dropped and counted in `failed`.
pub const MAX_PENDING: usize = 100_000;
/// How often records waiting on a failing disk are tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How long a batch waits for more records after its first (a group
/// commit): every SQLite commit writes its pages to the WAL whole, so
/// committing each record of a busy contact center alone cost a quarter
/// of the daemon's CPU. A record is at most this much later on disk; a
/// `flush` or a stop does not wait.
pub const LINGER: Duration = Duration::from_millis(20);

enum Msg {
    Record(Box<CallRecord>),
    Session(SessionEvent),
    Flush(mpsc::SyncSender<()>),
    Stop,
}

#[derive(Default, Debug)]
struct Counters {
    sent: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    /// Records waiting for a write that failed (a gauge).
    pending: AtomicU64,
    /// The last write failed; cleared by the next that succeeds.
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// What the writer has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Records handed over but not yet written (nor given up on).
    pub backlog: u64,
    pub written: u64,
    /// Records dropped after repeated write errors.
    pub failed: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Records kept for a retry because the last write failed.
    pub pending: u64,
    /// Whether the last write failed.
    pub failing: bool,
}

/// Cheap, clonable sender the call path holds.
#[derive(Clone)]
pub struct CdrHandle {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

impl CdrHandle {
    /// Queues a record (insert or replace by call id). Never blocks.
    pub fn record(&self, r: CallRecord) -> Result<(), CdrError> {
        self.record_boxed(Box::new(r))
    }

    /// [`Self::record`] for a record already on the heap (the fold's).
    pub fn record_boxed(&self, r: Box<CallRecord>) -> Result<(), CdrError> {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Msg::Record(r)).map_err(|_| {
            self.counters.sent.fetch_sub(1, Ordering::Relaxed);
            CdrError::WriterGone
        })
    }

    /// An agent's state changed at `at_ms`: `logged_in` is whether it is
    /// in any state but `logged_out` and `off_shift`. The writer keeps the
    /// agents' logged-in spans (for occupancy); other changes cost it
    /// nothing but the message. Never blocks.
    pub fn agent_state(&self, agent: &str, logged_in: bool, at_ms: UnixMs) -> Result<(), CdrError> {
        let ev = SessionEvent {
            agent: agent.to_owned(),
            logged_in,
            at_ms,
        };
        self.tx
            .send(Msg::Session(ev))
            .map_err(|_| CdrError::WriterGone)
    }

    pub fn stats(&self) -> WriterStats {
        self.stats_source().read()
    }

    /// Reads the writer's counters without holding its channel open (for
    /// `/metrics`).
    pub fn stats_source(&self) -> WriterStatsSource {
        WriterStatsSource(self.counters.clone())
    }
}

/// The writer's counters, readable from anywhere.
#[derive(Clone, Debug)]
pub struct WriterStatsSource(Arc<Counters>);

impl WriterStatsSource {
    pub fn read(&self) -> WriterStats {
        let c = &self.0;
        let written = c.written.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        let sent = c.sent.load(Ordering::Relaxed);
        WriterStats {
            backlog: sent.saturating_sub(written + failed),
            written,
            failed,
            batches: c.batches.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
            failing: c.failing.load(Ordering::Relaxed),
        }
    }

    /// The error of the last failed write, while writes fail.
    pub fn last_error(&self) -> Option<String> {
        if !self.0.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.0
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl CdrHandle {
    /// Blocks until every record queued before this call is written. Call it
    /// from a blocking context (`spawn_blocking` under tokio).
    pub fn flush(&self) -> Result<(), CdrError> {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Flush(done_tx))
            .map_err(|_| CdrError::WriterGone)?;
        done_rx.recv().map_err(|_| CdrError::WriterGone)
    }
}

/// Owns the writer thread; dropping it writes what is queued and joins.
pub struct CdrWriter {
    handle: CdrHandle,
    thread: Option<JoinHandle<()>>,
}

impl CdrWriter {
    pub fn spawn(store: CdrStore) -> Result<CdrWriter, CdrError> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("cdr-writer".into())
            .spawn(move || run(store, rx, &c))
            .map_err(|source| CdrError::Dir {
                path: "cdr-writer thread".into(),
                source,
            })?;
        Ok(CdrWriter {
            handle: CdrHandle { tx, counters },
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> CdrHandle {
        self.handle.clone()
    }

    pub fn stats(&self) -> WriterStats {
        self.handle.stats()
    }

    pub fn flush(&self) -> Result<(), CdrError> {
        self.handle.flush()
    }

    /// Writes everything queued so far, stops the thread, returns the final
    /// counters. Records sent afterwards through a handle get `WriterGone`.
    pub fn shutdown(mut self) -> WriterStats {
        self.stop();
        self.handle.stats()
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.handle.tx.send(Msg::Stop);
            let _ = t.join();
        }
    }
}

impl Drop for CdrWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The records of one transaction, at most one per call: a call's later
/// record replaces its earlier one in place (rows are written whole, so
/// the earlier is superseded). Under load a short call's arrival and end
/// then cost one row write instead of two.
#[derive(Default)]
struct Batch {
    records: Vec<CallRecord>,
    by_id: HashMap<String, usize>,
}

impl Batch {
    /// Adds `r`; true when it replaced an earlier record of the same call.
    fn push(&mut self, r: CallRecord) -> bool {
        if let Some(slot) = self.by_id.get(&r.id).and_then(|&i| self.records.get_mut(i)) {
            *slot = r;
            return true;
        }
        self.by_id.insert(r.id.clone(), self.records.len());
        self.records.push(r);
        false
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Moves the records out, in the order their calls first appeared.
    fn take_into(&mut self, out: &mut Vec<CallRecord>) {
        self.by_id.clear();
        out.append(&mut self.records);
    }
}

fn run(mut store: CdrStore, rx: mpsc::Receiver<Msg>, c: &Counters) {
    let mut batch = Batch::default();
    // Records a failed write left behind, oldest first.
    let mut pending: Vec<CallRecord> = Vec::new();
    let mut sessions: Vec<SessionEvent> = Vec::new();
    // Agents with a session open: only a change of this is written. The
    // store closed every session when it was opened.
    let mut logged_in: HashSet<String> = HashSet::new();
    let mut waiters: Vec<mpsc::SyncSender<()>> = Vec::new();
    // Blocks for the first message (or, with records waiting on a failed
    // write, until the retry is due), then takes whatever else is already
    // queued: under load batches grow by themselves, idle costs nothing.
    loop {
        let first = if pending.is_empty() {
            match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            }
        } else {
            match rx.recv_timeout(RETRY_EVERY) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Stop),
            }
        };
        let mut stop = false;
        let mut next = first;
        let linger_until = Instant::now() + LINGER;
        loop {
            let Some(msg) = next else {
                // Nothing more queued: wait for more until the linger is
                // over, unless someone waits for this batch.
                let idle = batch.is_empty() && sessions.is_empty();
                if stop || idle || !waiters.is_empty() || batch.len() >= MAX_BATCH {
                    break;
                }
                let left = linger_until.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(m) => {
                        next = Some(m);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        stop = true;
                        break;
                    }
                }
            };
            match msg {
                Msg::Record(r) => {
                    if batch.push(*r) {
                        // Its row is the newer record's: done with it.
                        c.written.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Msg::Session(e) => {
                    let changed = if e.logged_in {
                        logged_in.insert(e.agent.clone())
                    } else {
                        logged_in.remove(&e.agent)
                    };
                    if changed {
                        sessions.push(e);
                    }
                }
                Msg::Flush(w) => waiters.push(w),
                Msg::Stop => stop = true,
            }
            // After Stop, keep draining: records queued before the channel
            // closes are still written.
            if !stop && batch.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() || !pending.is_empty() {
            batch.take_into(&mut pending);
            write_pending(&mut store, &mut pending, c);
        }
        if !sessions.is_empty() {
            // Spans are figures, not evidence of a call: a failed write is
            // logged, not retried.
            if let Err(e) = store.write_sessions(&sessions) {
                tracing::error!(error = %e, "writing agent sessions failed");
            }
            sessions.clear();
        }
        if stop {
            if let Err(e) = store.close_sessions(now_ms()) {
                tracing::error!(error = %e, "closing agent sessions failed");
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
        if stop {
            break;
        }
    }
    if !pending.is_empty() {
        let n = pending.len() as u64;
        c.failed.fetch_add(n, Ordering::Relaxed);
        c.pending.store(0, Ordering::Relaxed);
        tracing::error!(
            records = n,
            "call records lost at exit: the disk would not take them"
        );
    }
}

/// Writes `pending` in transactions of [`MAX_BATCH`]; what a failure
/// leaves stays in `pending` (bounded by [`MAX_PENDING`]) for the retry.
fn write_pending(store: &mut CdrStore, pending: &mut Vec<CallRecord>, c: &Counters) {
    let mut done = 0;
    let mut error = None;
    while done < pending.len() {
        let end = (done + MAX_BATCH).min(pending.len());
        let chunk = pending.get(done..end).unwrap_or_default();
        match store.write_batch(chunk) {
            Ok(()) => {
                c.written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                c.batches.fetch_add(1, Ordering::Relaxed);
                done = end;
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    pending.drain(..done);
    match error {
        None => {
            if c.failing.swap(false, Ordering::Relaxed) {
                tracing::info!("call records are written again");
            }
        }
        Some(e) => {
            if !c.failing.swap(true, Ordering::Relaxed) {
                tracing::error!(error = %e, waiting = pending.len(), "writing call records failed; they wait and are retried every second");
            }
            *c.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    }
    if pending.len() > MAX_PENDING {
        let over = pending.len() - MAX_PENDING;
        pending.drain(..over);
        c.failed.fetch_add(over as u64, Ordering::Relaxed);
        tracing::error!(
            dropped = over,
            "call record buffer full: oldest records dropped"
        );
    }
    if pending.is_empty() && pending.capacity() > MAX_BATCH {
        pending.shrink_to_fit();
    }
    c.pending.store(pending.len() as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, ended: Option<UnixMs>) -> CallRecord {
        let mut r = CallRecord::arrival(id, "100", "1500", 1_000);
        r.ended_ms = ended;
        r
    }

    #[test]
    fn a_later_record_of_a_call_replaces_its_earlier_one_in_place() {
        let mut b = Batch::default();
        assert!(!b.push(rec("a", None)));
        assert!(!b.push(rec("b", None)));
        assert!(b.push(rec("a", Some(2_000))));
        assert_eq!(b.len(), 2);
        let mut out = Vec::new();
        b.take_into(&mut out);
        let ids: Vec<_> = out.iter().map(|r| (r.id.as_str(), r.ended_ms)).collect();
        assert_eq!(ids, [("a", Some(2_000)), ("b", None)]);
        // A new batch knows nothing of the last one's calls.
        assert!(b.is_empty());
        assert!(!b.push(rec("a", Some(3_000))));
    }

    #[test]
    fn superseded_records_count_as_written_so_the_backlog_drains() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = CdrStore::open(dir.path()).unwrap();
        let w = CdrWriter::spawn(store).unwrap();
        let h = w.handle();
        for i in 0..200 {
            h.record(rec(&format!("c{}", i % 50), Some(i))).unwrap();
        }
        w.flush().unwrap();
        let s = w.stats();
        assert_eq!(s.backlog, 0, "{s:?}");
        assert_eq!(s.written, 200);
        let rows = CdrStore::open_reader(dir.path())
            .unwrap()
            .query(&crate::cdr::CdrFilter::default())
            .unwrap();
        assert_eq!(rows.len(), 50);
        // Each call's row is its last record.
        for r in rows {
            let n: i64 = r.id.trim_start_matches('c').parse().unwrap();
            assert_eq!(r.ended_ms, Some(150 + n));
        }
    }

    #[test]
    fn records_arriving_close_together_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = CdrStore::open(dir.path()).unwrap();
        let w = CdrWriter::spawn(store).unwrap();
        let h = w.handle();
        // Ten records 2 ms apart: committed one by one, they would be ten
        // batches (a one-row WAL commit takes well under 2 ms).
        for i in 0..10 {
            h.record(rec(&format!("c{i}"), None)).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        w.flush().unwrap();
        let s = w.stats();
        assert_eq!(s.written, 10, "{s:?}");
        assert!(s.batches <= 5, "a batch waits {LINGER:?} for more: {s:?}");
    }

    #[test]
    fn a_flush_does_not_wait_for_the_linger() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = CdrStore::open(dir.path()).unwrap();
        let w = CdrWriter::spawn(store).unwrap();
        w.handle().record(rec("c1", None)).unwrap();
        w.flush().unwrap();
        assert_eq!(w.stats().written, 1);
        let rows = CdrStore::open_reader(dir.path())
            .unwrap()
            .query(&crate::cdr::CdrFilter::default())
            .unwrap();
        assert_eq!(rows.len(), 1, "written before flush returned");
    }
}
