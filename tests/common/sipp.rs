//! Running SIPp scenarios from `tests/sipp/` against a daemon on loopback.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// True if a `sipp` binary runs; when it does not, fails under CI and
/// otherwise prints a skip note. Call at the top of each SIPp test.
pub fn sipp_or_skip() -> bool {
    let present = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    super::require(present, "sipp (Debian package sip-tester)")
}

pub fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(format!("{name}.xml"))
}

/// The outcome of one SIPp run, with its logs read back.
pub struct SippRun {
    pub scenario: String,
    pub command: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub errors: String,
    pub messages: String,
    _dir: tempfile::TempDir,
}

impl SippRun {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Panics with every log when SIPp did not end with all calls successful.
    pub fn assert_ok(&self) {
        assert!(self.success(), "{}", self.report());
    }

    pub fn report(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(80)..].join("\n")
        };
        format!(
            "sipp scenario {} failed: status {:?} (0 = all calls ok, 1 = a call failed, \
             255/254 = fatal)\ncommand: {}\n--- error log ---\n{}\n--- stderr ---\n{}\n\
             --- message log (tail) ---\n{}\n--- screen (tail) ---\n{}",
            self.scenario,
            self.status.and_then(|s| s.code()),
            self.command,
            self.errors,
            self.stderr,
            tail(&self.messages),
            tail(&self.stdout),
        )
    }
}

/// Runs `tests/sipp/<scenario>.xml` against `127.0.0.1:<target>` from a free
/// loopback port. `args` adds SIPp options (`-t t1`, `-s 1500`, `-au`...);
/// `-m 1` is the default call count. `timeout` bounds the run twice: as SIPp's
/// own `-timeout` (a failure thanks to `-timeout_error`) and, a few seconds
/// later, by killing the process.
pub fn run_sipp(target: u16, scenario: &str, args: &[&str], timeout: Duration) -> SippRun {
    run_sipp_at(super::free_port(), target, scenario, args, timeout)
}

/// Like [`run_sipp`], with SIPp's own SIP port chosen by the caller (a SIPp
/// agent whose address the daemon's configuration names).
pub fn run_sipp_at(
    local: u16,
    target: u16,
    scenario: &str,
    args: &[&str],
    timeout: Duration,
) -> SippRun {
    let dir = tempfile::Builder::new().prefix("sipp-").tempdir().unwrap();
    let d = dir.path();
    let local = local.to_string();
    let secs = timeout.as_secs().max(1).to_string();
    let mut cmd = Command::new("sipp");
    cmd.arg(format!("127.0.0.1:{target}"))
        .arg("-sf")
        .arg(scenario_path(scenario))
        .args(["-i", "127.0.0.1", "-p", &local])
        .args(["-timeout", &format!("{secs}s"), "-timeout_error"])
        .args(["-trace_err", "-trace_msg", "-nostdin"])
        .arg("-error_file")
        .arg(d.join("errors.log"))
        .arg("-message_file")
        .arg(d.join("messages.log"));
    if !args.contains(&"-m") {
        cmd.args(["-m", "1"]);
    }
    cmd.args(args)
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(fs::File::create(d.join("stdout.log")).unwrap())
        .stderr(fs::File::create(d.join("stderr.log")).unwrap());
    let command = format!("{cmd:?}");
    let mut child = cmd.spawn().expect("cannot run sipp");
    let deadline = Instant::now() + timeout + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &str| fs::read_to_string(d.join(f)).unwrap_or_default();
    SippRun {
        scenario: scenario.to_string(),
        command,
        status,
        stdout: read("stdout.log"),
        stderr: read("stderr.log"),
        errors: read("errors.log"),
        messages: read("messages.log"),
        _dir: dir,
    }
}
