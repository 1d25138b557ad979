//! A data disk that fills up: call records wait and are retried, the
//! registrations file is kept whole, `/health` says degraded with the
//! reasons, and once space returns every record is written (no row lost).
//! The data directory is a tiny tmpfs mounted for the test (we are root).

mod common;

use common::netns::http;
use common::sipp::{run_sipp, sipp_or_skip};
use common::{wait_until, ConfigSpec, Daemon, AGENT_PASSWORD};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CALLS: u32 = 40;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until it is full.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

fn health(admin: u16) -> serde_json::Value {
    let (code, v) = http("GET", admin, "/health", None);
    assert_eq!(code, 200, "health stays 200: {v}");
    v
}

#[test]
fn a_full_data_disk_shows_degraded_and_loses_no_record_once_space_returns() {
    if !sipp_or_skip() {
        return;
    }
    let mnt = tempfile::Builder::new()
        .prefix("sipacd-full-")
        .tempdir()
        .unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(mnt.path())
        .status()
        .is_ok_and(|s| s.success());
    if !common::require(mounted, "a tmpfs mount (`mount -t tmpfs`, as root)") {
        return;
    }
    let _umount = Mount(mnt.path().to_path_buf());
    let data = mnt.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    let spec = ConfigSpec::new();
    let text = spec.render(Path::new(".")).replace(
        "data_dir = \"./data\"",
        &format!("data_dir = \"{}\"", data.display()),
    );
    assert!(
        text.contains(&data.display().to_string()),
        "data_dir replaced"
    );
    let d = Daemon::start_with_text(spec, &text);
    let (port, admin) = (d.sip_port(), d.cfg.spec.admin_port);
    assert_eq!(health(admin)["status"], "ok");

    fill(mnt.path());
    // Calls while the disk is full: their records cannot be written.
    let run = run_sipp(
        port,
        "call_daemon_hangs_up",
        &[
            "-s",
            "1600",
            "-m",
            &CALLS.to_string(),
            "-r",
            "20",
            "-l",
            "20",
        ],
        Duration::from_secs(60),
    );
    assert!(run.success(), "{}\n{}", run.report(), d.stderr());
    // A registration while full: registrations.json cannot be saved.
    let reg = run_sipp(
        port,
        "register_ok",
        &["-s", "1001", "-au", "1001", "-ap", AGENT_PASSWORD],
        Duration::from_secs(15),
    );
    assert!(reg.success(), "{}", reg.report());
    let mut last = serde_json::Value::Null;
    wait_until(
        "/health degraded for records and registrations",
        Duration::from_secs(15),
        || {
            last = health(admin);
            let reasons = last["reasons"].to_string();
            last["status"] == "degraded"
                && reasons.contains("records")
                && reasons.contains("registrations")
        },
    );
    eprintln!("while full: {last}");
    let (_, m) = (0, {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
        use std::io::{Read, Write};
        write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        t
    });
    assert!(
        m.contains("sipacd_cdr_write_failing 1"),
        "records metric says why"
    );
    assert!(
        m.contains("sipacd_registrations_save_failing 1"),
        "registrations metric"
    );
    // The old registrations file (if any) is whole, never half-written.
    if let Ok(text) = std::fs::read_to_string(data.join("registrations.json")) {
        serde_json::from_str::<serde_json::Value>(&text).expect("registrations.json is whole");
    }

    // Space returns: everything waiting is written.
    std::fs::remove_file(mnt.path().join("filler")).unwrap();
    wait_until("/health ok again", Duration::from_secs(20), || {
        health(admin)["status"] == "ok"
    });
    let db = rusqlite::Connection::open(data.join("calls.sqlite")).unwrap();
    let rows: u32 = db
        .query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows,
        CALLS,
        "every call's record was written; {}",
        d.stderr()
    );
    let saved = std::fs::read_to_string(data.join("registrations.json")).unwrap();
    assert!(
        saved.contains("1001"),
        "the registration was saved: {saved}"
    );
    drop(d);
}
