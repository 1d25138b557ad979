//! The Asterisk `queue_log` file (`server.queue_log`): one line per queue
//! event, `epoch|callid|queue|agent|event|data1|data2|...`, appended by a
//! thread of its own. The call path hands over finished lines and never
//! waits; the thread writes whatever has piled up and flushes, so a line is
//! in the file (page cache) within moments of its event, and what reached
//! the thread survives a crash of the daemon's other threads.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use tracing::error;

/// Cheap, clonable sender the run loop holds.
#[derive(Clone)]
pub struct QueueLogHandle {
    tx: mpsc::Sender<String>,
}

impl QueueLogHandle {
    /// Queues one line (without its newline). Never blocks; false once the
    /// writer has stopped.
    pub fn write(&self, line: String) -> bool {
        self.tx.send(line).is_ok()
    }
}

/// Owns the writer thread; [`QueueLogWriter::shutdown`] writes what is
/// queued and joins.
pub struct QueueLogWriter {
    handle: Option<QueueLogHandle>,
    thread: Option<JoinHandle<()>>,
}

impl QueueLogWriter {
    /// Opens `path` for appending (creating it and its directory) and
    /// writes Asterisk's `QUEUESTART` line, as Asterisk does at startup.
    pub fn open(path: &Path, now: SystemTime) -> std::io::Result<QueueLogWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::channel();
        let epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let _ = tx.send(format!("{epoch}|NONE|NONE|NONE|QUEUESTART|"));
        let owned = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("queue-log".into())
            .spawn(move || run(file, &owned, &rx))?;
        Ok(QueueLogWriter {
            handle: Some(QueueLogHandle { tx }),
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> Option<QueueLogHandle> {
        self.handle.clone()
    }

    /// Writes what is queued, flushes and joins the thread. Blocking: call
    /// it from a blocking context under tokio. Every handle must be dropped
    /// first, or this waits for them.
    pub fn shutdown(mut self) {
        self.handle = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(file: File, path: &Path, rx: &mpsc::Receiver<String>) {
    let mut w = BufWriter::new(file);
    while let Ok(first) = rx.recv() {
        let mut res = writeln!(w, "{first}");
        while let Ok(line) = rx.try_recv() {
            res = res.and_then(|()| writeln!(w, "{line}"));
        }
        if let Err(e) = res.and_then(|()| w.flush()) {
            error!(path = %path.display(), error = %e, "queue_log lines lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn appends_lines_after_queuestart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/queue_log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "1|old|q|a|ENTERQUEUE||1|1\n").unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let w = QueueLogWriter::open(&path, at).unwrap();
        let h = w.handle().unwrap();
        assert!(h.write("1700000001|c1|support|NONE|ENTERQUEUE||555|1".into()));
        drop(h);
        w.shutdown();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "1|old|q|a|ENTERQUEUE||1|1\n\
             1700000000|NONE|NONE|NONE|QUEUESTART|\n\
             1700000001|c1|support|NONE|ENTERQUEUE||555|1\n"
        );
    }
}
