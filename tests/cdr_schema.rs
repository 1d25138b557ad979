//! A `calls.sqlite` a newer sipacd wrote (then downgraded): the daemon
//! refuses to start on it and `sipacd report` refuses to read it, each
//! naming the file and both schema versions, and neither writes to it.

mod common;

use common::{sipacd_bin, ConfigDir, ConfigSpec};
use sipacd::cdr::{DB_FILE, SCHEMA_VERSION};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The harness's configuration whose data directory holds a file of
/// schema version `SCHEMA_VERSION + 2`, with a call in progress in it.
fn newer_data_dir() -> (ConfigDir, PathBuf, Vec<u8>) {
    let cfg = ConfigDir::new(ConfigSpec::new());
    let db = cfg.root().join("data").join(DB_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(include_str!("fixtures/calls_sqlite/v7.sql"))
        .unwrap();
    conn.execute_batch(&format!(
        "ALTER TABLE calls ADD COLUMN from_the_future TEXT;
         INSERT INTO calls (id, caller, number, arrived_ms, disposition)
             VALUES ('live', '555', '1500', 1000, 'in_progress');
         PRAGMA user_version = {};",
        SCHEMA_VERSION + 2
    ))
    .unwrap();
    drop(conn);
    let bytes = std::fs::read(&db).unwrap();
    (cfg, db, bytes)
}

fn assert_names_file_and_versions(stderr: &str, db: &std::path::Path) {
    for part in [
        db.display().to_string(),
        format!("schema version {}", SCHEMA_VERSION + 2),
        format!("knows up to {SCHEMA_VERSION}"),
    ] {
        assert!(stderr.contains(&part), "stderr names {part:?}:\n{stderr}");
    }
}

#[test]
fn the_daemon_refuses_to_start_on_a_file_a_newer_sipacd_wrote() {
    let (cfg, db, before) = newer_data_dir();
    let mut child = Command::new(sipacd_bin())
        .arg("--config")
        .arg(cfg.config_path())
        .current_dir(cfg.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sipacd kept running on a file of a newer schema");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "exit status {status}; stderr:\n{stderr}");
    assert_names_file_and_versions(&stderr, &db);
    // Not marked interrupted, not migrated, not switched to WAL.
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the file was written"
    );
    assert!(!cfg
        .root()
        .join("data")
        .join(format!("{DB_FILE}-wal"))
        .exists());
}

#[test]
fn sipacd_report_refuses_a_file_a_newer_sipacd_wrote() {
    let (cfg, db, before) = newer_data_dir();
    let out = Command::new(sipacd_bin())
        .arg("report")
        .arg("--config")
        .arg(cfg.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr:\n{stderr}");
    assert_names_file_and_versions(&stderr, &db);
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the file was written"
    );
}
