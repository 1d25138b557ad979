//! Writes the bindings file on its own thread, so that no signalling task
//! waits on the disk: a REGISTER only marks the registrar changed and
//! nudges this writer, which waits a short window for more changes to join
//! the same write, takes one snapshot (under the registrar's lock, memory
//! only) and writes it atomically without holding any lock.
//!
//! Durability: a binding acknowledged with 200 is on disk within the window
//! plus one write (well under [`DURABLE_WITHIN`] on a healthy disk). A write
//! that fails is retried every [`RETRY`] with the newest state, logged once
//! per failing streak. On [`BindingsWriter::shutdown`] (or drop) the last
//! state is written before the thread ends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::store::{Snapshot, StoreError};

/// A state the writer saves whole to its file (the bindings, the waiting
/// callbacks).
pub trait FileState: Send + 'static {
    fn save(&self, path: &std::path::Path) -> Result<(), StoreError>;
}

impl FileState for Snapshot {
    fn save(&self, path: &std::path::Path) -> Result<(), StoreError> {
        Snapshot::save(self, path)
    }
}

/// Changes arriving this soon after the first are written together.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(250);
/// What the documentation promises: a 200 is on disk within this.
pub const DURABLE_WITHIN: Duration = Duration::from_secs(1);
/// Pause before retrying a failed write.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Flags {
    changed: bool,
    stop: bool,
}

#[derive(Debug, Default)]
struct Signal {
    flags: Mutex<Flags>,
    wake: Condvar,
}

impl Signal {
    fn flags(&self) -> MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Tells the writer that the bindings changed: one uncontended lock and at
/// most one wake-up, no I/O. Cheap enough for every REGISTER.
#[derive(Debug, Clone)]
pub struct Nudge(Arc<Signal>);

impl Nudge {
    pub fn changed(&self) {
        let mut f = self.0.flags();
        if !f.changed {
            f.changed = true;
            self.0.wake.notify_one();
        }
    }
}

/// Counts, for the metrics and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Files written.
    pub writes: AtomicU64,
    /// Writes that failed (each retried).
    pub failures: AtomicU64,
    /// The last write failed (`/health` says degraded); cleared by the
    /// next that succeeds.
    pub failing: std::sync::atomic::AtomicBool,
    /// Its error, while failing.
    pub last_error: Mutex<Option<String>>,
}

impl WriterStats {
    /// The error of the last failed write, while writes fail.
    pub fn failing_because(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The writer thread; [`BindingsWriter::shutdown`] writes the last state.
#[derive(Debug)]
pub struct BindingsWriter {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<WriterStats>,
}

impl BindingsWriter {
    /// Starts the thread writing to `path`. `take` returns the bindings if
    /// they changed since it was last called (it locks the registrar and
    /// calls [`super::Registrar::take_snapshot`]).
    pub fn spawn(
        path: PathBuf,
        window: Duration,
        take: impl FnMut() -> Option<Snapshot> + Send + 'static,
    ) -> std::io::Result<BindingsWriter> {
        BindingsWriter::spawn_for("sipacd-bindings", "registrations", path, window, take)
    }

    /// The same writer for another state: thread `thread`, logs naming
    /// `what`.
    pub fn spawn_for<S: FileState>(
        thread: &str,
        what: &'static str,
        path: PathBuf,
        window: Duration,
        take: impl FnMut() -> Option<S> + Send + 'static,
    ) -> std::io::Result<BindingsWriter> {
        let signal = Arc::new(Signal::default());
        let stats = Arc::new(WriterStats::default());
        let (sig, st) = (signal.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || run(&sig, &st, &path, window, what, take))?;
        Ok(BindingsWriter {
            signal,
            thread: Some(thread),
            stats,
        })
    }

    /// The handle the registrar calls on every change.
    pub fn nudge(&self) -> Nudge {
        Nudge(self.signal.clone())
    }

    pub fn stats(&self) -> Arc<WriterStats> {
        self.stats.clone()
    }

    /// Writes what changed since the last write and stops the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        {
            let mut f = self.signal.flags();
            f.stop = true;
            self.signal.wake.notify_one();
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("file writer panicked");
            }
        }
    }
}

impl Drop for BindingsWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for a change (or for a retry to be due, or the stop), then for the
/// window; true when stopping.
fn wait_for_work(sig: &Signal, window: Duration, retrying: bool) -> bool {
    let mut f = sig.flags();
    let retry_at = retrying.then(|| Instant::now() + RETRY);
    while !f.changed && !f.stop {
        match retry_at {
            None => f = sig.wake.wait(f).unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                f = sig
                    .wake
                    .wait_timeout(f, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
    // Let the changes of the next moments join this write; stopping cuts
    // the window short.
    let until = Instant::now() + window;
    while f.changed && !f.stop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        f = sig
            .wake
            .wait_timeout(f, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    // Cleared before taking the snapshot: a change made after the take
    // nudges again and gets its own write.
    f.changed = false;
    f.stop
}

fn run<S: FileState>(
    sig: &Signal,
    stats: &WriterStats,
    path: &std::path::Path,
    window: Duration,
    what: &'static str,
    mut take: impl FnMut() -> Option<S>,
) {
    // A snapshot whose write failed, kept until a newer one replaces it.
    let mut pending: Option<S> = None;
    let mut failing = false;
    loop {
        let stopping = wait_for_work(sig, window, pending.is_some());
        if let Some(s) = take() {
            pending = Some(s);
        }
        if let Some(s) = &pending {
            match s.save(path) {
                Ok(()) => {
                    stats.writes.fetch_add(1, Ordering::Relaxed);
                    if failing {
                        tracing::info!(path = %path.display(), "{what} saved again");
                    }
                    failing = false;
                    stats.failing.store(false, Ordering::Relaxed);
                    pending = None;
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(e.to_string());
                    stats.failing.store(true, Ordering::Relaxed);
                    if !failing {
                        tracing::warn!(error = %e, "could not save {what}; retrying");
                    }
                    failing = true;
                }
            }
        }
        if stopping {
            if pending.is_some() {
                tracing::error!(path = %path.display(), "{what} changed since the last successful save are lost");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::bindings::{Binding, BindingTable};
    use crate::sip::Peer;
    use std::sync::atomic::AtomicUsize;
    use std::time::SystemTime;

    fn table(n: usize) -> BindingTable {
        let mut t = BindingTable::default();
        for i in 0..n {
            t.insert(
                &format!("u{i}"),
                Binding {
                    contact: format!("sip:u{i}@127.0.0.1:{}", 5000 + i),
                    source: Peer::udp(([127, 0, 0, 1], 5000 + i as u16).into()),
                    expires_at: SystemTime::now() + Duration::from_secs(600),
                    call_id: format!("c{i}"),
                    cseq: 1,
                    q: None,
                    instance: None,
                    reg_id: None,
                    outbound: false,
                    restored: false,
                },
            );
        }
        t
    }

    /// A registrar stand-in: `bump` changes it, `take` reads it like
    /// `Registrar::take_snapshot` (Some only when changed), counting calls.
    #[derive(Clone, Default)]
    struct Fake {
        state: Arc<Mutex<(usize, bool)>>,
        takes: Arc<AtomicUsize>,
    }

    impl Fake {
        fn bump(&self, n: &Nudge) {
            let mut s = self.state.lock().unwrap();
            s.0 += 1;
            s.1 = true;
            drop(s);
            n.changed();
        }
        fn take(&self) -> impl FnMut() -> Option<Snapshot> + Send + 'static {
            let me = self.clone();
            move || {
                me.takes.fetch_add(1, Ordering::Relaxed);
                let mut s = me.state.lock().unwrap();
                let dirty = std::mem::replace(&mut s.1, false);
                dirty.then(|| Snapshot::of(&table(s.0)))
            }
        }
    }

    fn stored(path: &std::path::Path) -> usize {
        crate::registrar::store::load(path, SystemTime::now())
            .unwrap()
            .len()
    }

    fn wait(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_burst_of_changes_is_one_write_of_the_newest_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let fake = Fake::default();
        let w =
            BindingsWriter::spawn(path.clone(), Duration::from_millis(300), fake.take()).unwrap();
        let nudge = w.nudge();
        for _ in 0..50 {
            fake.bump(&nudge);
        }
        let stats = w.stats();
        wait("the write", || stats.writes.load(Ordering::Relaxed) >= 1);
        // Nothing changed since: no further write however long we wait for
        // one (the window passed twice over).
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(stats.writes.load(Ordering::Relaxed), 1);
        assert_eq!(stored(&path), 50, "the newest state, not the first");
        // A later change is a second write.
        fake.bump(&nudge);
        wait("the second write", || {
            stats.writes.load(Ordering::Relaxed) == 2
        });
        assert_eq!(stored(&path), 51);
        w.shutdown();
    }

    #[test]
    fn nothing_is_written_until_something_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let fake = Fake::default();
        let w =
            BindingsWriter::spawn(path.clone(), Duration::from_millis(10), fake.take()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(fake.takes.load(Ordering::Relaxed), 0, "no polling");
        assert!(!path.exists());
        let stats = w.stats();
        w.shutdown();
        // The stop looks once more; nothing changed, nothing written.
        assert_eq!(fake.takes.load(Ordering::Relaxed), 1);
        assert_eq!(stats.writes.load(Ordering::Relaxed), 0);
        assert!(!path.exists());
    }

    #[test]
    fn shutdown_writes_the_last_change_without_waiting_for_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let fake = Fake::default();
        // A window far longer than the test: only the stop can write.
        let w =
            BindingsWriter::spawn(path.clone(), Duration::from_secs(3600), fake.take()).unwrap();
        let nudge = w.nudge();
        fake.bump(&nudge);
        fake.bump(&nudge);
        let stats = w.stats();
        let started = Instant::now();
        w.shutdown();
        assert!(started.elapsed() < Duration::from_secs(60));
        assert_eq!(stats.writes.load(Ordering::Relaxed), 1);
        assert_eq!(stored(&path), 2);
    }

    #[test]
    fn a_failed_write_is_retried_with_the_newest_state() {
        let dir = tempfile::tempdir().unwrap();
        // The parent "directory" is a file: every write fails until it goes.
        let blocker = dir.path().join("data");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let path = blocker.join("r.json");
        let fake = Fake::default();
        let w =
            BindingsWriter::spawn(path.clone(), Duration::from_millis(10), fake.take()).unwrap();
        let nudge = w.nudge();
        fake.bump(&nudge);
        let stats = w.stats();
        wait("a failure", || stats.failures.load(Ordering::Relaxed) >= 1);
        assert_eq!(stats.writes.load(Ordering::Relaxed), 0);
        std::fs::remove_file(&blocker).unwrap();
        // No new change: the retry alone writes the kept snapshot.
        wait("the retry", || stats.writes.load(Ordering::Relaxed) == 1);
        assert_eq!(stored(&path), 1);
        w.shutdown();
    }
}
