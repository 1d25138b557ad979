//! Housekeeping of recordings: files under `data_dir/recordings/` older
//! than `server.retention_days` (by modification time, i.e. when the call
//! ended) are deleted, and day directories left empty with them. Run at
//! start and then hourly, on a blocking thread.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::endpoint::RECORDINGS_DIR;

/// How often the sweep runs.
pub const EVERY: Duration = Duration::from_secs(3600);

const DAY: Duration = Duration::from_secs(86_400);

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub removed: usize,
    pub kept: usize,
}

/// Deletes the recordings under `data_dir` last written before
/// `now - days`. `days` = 0 keeps everything.
pub fn sweep(data_dir: &Path, now: SystemTime, days: u64) -> std::io::Result<Swept> {
    let mut swept = Swept::default();
    let root = data_dir.join(RECORDINGS_DIR);
    if days == 0 || !root.is_dir() {
        return Ok(swept);
    }
    let cutoff = now
        .checked_sub(DAY.saturating_mul(u32::try_from(days).unwrap_or(u32::MAX)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for day in std::fs::read_dir(&root)? {
        let day = day?.path();
        if !day.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&day)? {
            let f = f?;
            let old = f
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            let is_wav = f.path().extension().is_some_and(|e| e == "wav");
            if old && is_wav {
                std::fs::remove_file(f.path())?;
                swept.removed += 1;
            } else {
                swept.kept += 1;
            }
        }
        // Fails (and is left) while it still holds something.
        let _ = std::fs::remove_dir(&day);
    }
    Ok(swept)
}

/// Sweeps `data_dir` now and every [`EVERY`], with the retention in force
/// (`days`, which a reload updates).
pub fn spawn(data_dir: std::path::PathBuf, days: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let d = days.load(Ordering::Relaxed);
            let dir = data_dir.clone();
            let r = tokio::task::spawn_blocking(move || sweep(&dir, SystemTime::now(), d)).await;
            match r {
                Ok(Ok(s)) if s.removed > 0 => {
                    info!(removed = s.removed, kept = s.kept, "old recordings deleted")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "recordings housekeeping failed"),
                Err(e) => warn!(error = %e, "recordings housekeeping panicked"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};

    fn touch(p: &Path, at: SystemTime) {
        fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        let f = File::create(p).expect("create");
        f.set_modified(at).expect("mtime");
    }

    #[test]
    fn files_past_the_retention_go_and_their_empty_day_with_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let old = dir.path().join("recordings/2020-01-01/a.wav");
        let young = dir.path().join("recordings/2020-01-09/b.wav");
        let other = dir.path().join("recordings/2020-01-09/notes.txt");
        touch(&old, now - DAY * 10);
        touch(&young, now - DAY * 2);
        touch(&other, now - DAY * 10);
        let calls = dir.path().join("calls.sqlite");
        touch(&calls, now - DAY * 100);

        assert_eq!(sweep(dir.path(), now, 0).expect("sweep"), Swept::default());
        assert!(old.exists(), "0 days keeps everything");

        let s = sweep(dir.path(), now, 7).expect("sweep");
        assert_eq!(
            s,
            Swept {
                removed: 1,
                kept: 2
            }
        );
        assert!(!old.exists() && !old.parent().expect("day").exists());
        assert!(young.exists() && other.exists() && calls.exists());

        let s = sweep(dir.path(), now, 1).expect("sweep");
        assert_eq!(s.removed, 1);
        assert!(!young.exists() && other.exists());
    }
}
