//! A daemon run under a hard open-file limit it cannot raise (`prlimit`),
//! for the tests of the descriptor budget.

use super::{sipacd_bin, ConfigDir};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon's process, killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `prlimit` (util-linux) is there; a missing tool fails under CI.
pub fn have_prlimit() -> bool {
    super::require(
        Command::new("prlimit").arg("--version").output().is_ok(),
        "prlimit (util-linux)",
    )
}

/// Starts the daemon of `cfg` with `open_files` descriptors (soft and hard)
/// and waits until it answers OPTIONS. Returns it and its stderr log.
pub fn start(cfg: &ConfigDir, open_files: u64) -> (Killed, PathBuf) {
    let log = cfg.root().join("stderr.log");
    let child = Command::new("prlimit")
        .arg(format!("--nofile={open_files}:{open_files}"))
        .arg(sipacd_bin())
        .arg("--config")
        .arg(cfg.config_path())
        .current_dir(cfg.root())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let daemon = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while super::sip::options_status(cfg.spec.sip_port, Duration::from_millis(300)) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "no answer: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    (daemon, log)
}
