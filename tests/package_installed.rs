//! The installed Debian package's daemon, started the way its unit starts
//! it: `/usr/bin/sipacd` as the `sipacd` system user, on the installed
//! `/etc/sipacd/sipacd.toml` with only its addresses, ports and data
//! directory moved to loopback test ports and a scratch directory.
//!
//! Needs the package installed and root (to switch user), so it is
//! `#[ignore]`d in the plain test run; `tests/package/check.sh` runs it with
//! `--ignored` right after `dpkg -i`.

mod common;

use common::ConfigSpec;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use toml_edit::{value, Array, DocumentMut};

const BIN: &str = "/usr/bin/sipacd";
const CONF: &str = "/etc/sipacd/sipacd.toml";
const USER: &str = "sipacd";

/// `id -u NAME` / `id -g NAME`.
fn id(flag: &str) -> u32 {
    let out = Command::new("id").args([flag, USER]).output().unwrap();
    assert!(
        out.status.success(),
        "no user {USER}: is the package installed?"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// GET `path` on the admin port: (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((code, body.to_string()))
}

#[test]
#[ignore = "needs the installed package and root: run by tests/package/check.sh"]
fn the_installed_daemon_runs_as_the_sipacd_user() {
    let (uid, gid) = (id("-u"), id("-g"));
    let spec = ConfigSpec::new();
    let tmp = tempfile::Builder::new()
        .prefix("sipacd-pkg-")
        .tempdir()
        .unwrap();
    let root = tmp.path();
    let data = root.join("data");
    std::fs::create_dir(&data).unwrap();
    for dir in [root, data.as_path()] {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    }

    // The installed file, moved to test ports and the scratch data dir;
    // prompts stay the packaged ones.
    let text = std::fs::read_to_string(CONF).unwrap();
    let mut doc: DocumentMut = text.parse().unwrap();
    let p = spec.sip_port;
    let s = &mut doc["server"];
    assert_eq!(
        s["prompts"].as_str(),
        Some("/usr/share/sipacd/prompts"),
        "the packaged config uses the packaged prompts"
    );
    s["sip"] = value(Array::from_iter([
        format!("udp:127.0.0.1:{p}"),
        format!("tcp:127.0.0.1:{p}"),
    ]));
    s["admin"] = value(format!("127.0.0.1:{}", spec.admin_port));
    s["rtp_ports"] = value(format!("{}-{}", spec.rtp_base, spec.rtp_base + 99));
    s["data_dir"] = value(data.display().to_string());
    s["drain_s"] = value(1);
    let conf = root.join("sipacd.toml");
    std::fs::write(&conf, doc.to_string()).unwrap();
    std::os::unix::fs::chown(&conf, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();

    // As the unit does: the user's own uid, gid and groups, nothing else.
    let log = root.join("sipacd.stderr.log");
    let mut child = Command::new("setpriv")
        .args(["--reuid", USER, "--regid", USER, "--init-groups", "--"])
        .arg(BIN)
        .arg("--config")
        .arg(&conf)
        .current_dir(root)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut health = None;
    while Instant::now() < deadline && health.is_none() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{BIN} exited at start ({st}):\n{}", stderr());
        }
        health = http_get(spec.admin_port, "/health").filter(|(c, _)| *c == 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, body) = health.unwrap_or_else(|| panic!("no /health within 20 s:\n{}", stderr()));
    assert!(body.contains("\"ok\""), "/health: {body}");
    assert_eq!(
        common::sip::options_status(p, Duration::from_secs(2)),
        Some(200),
        "OPTIONS on the SIP port:\n{}",
        stderr()
    );

    // A few seconds of running, then the same answers.
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "{}", stderr());
    assert_eq!(
        http_get(spec.admin_port, "/health").map(|(c, _)| c),
        Some(200)
    );
    // The daemon's files are the sipacd user's, not root's.
    let owned: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name(), e.metadata().unwrap().uid()))
        .collect();
    assert!(!owned.is_empty(), "nothing written in {}", data.display());
    assert!(owned.iter().all(|(_, u)| *u == uid), "{owned:?}");

    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{BIN} did not stop on SIGTERM:\n{}", stderr());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit {status}:\n{}", stderr());
    assert!(Path::new(&conf).exists());
}
