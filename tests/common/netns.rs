//! Tests that throw hostile traffic run in a network namespace of their
//! own (loopback only), so floods never touch the host's stack and the
//! extra loopback sources (127.0.0.2, 127.0.0.3) are ours alone.
//!
//! The test binary runs itself again inside the namespace, for that one
//! test: [`inside_netns`] is true in the inner run (which does the work)
//! and, in the outer one, creates the namespace, runs the inner, checks
//! its outcome, removes the namespace and returns false.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const INNER: &str = "SIPACD_TEST_IN_NETNS";

/// See the module comment. `test` is the test function's name.
pub fn inside_netns(test: &str) -> bool {
    if std::env::var(INNER).as_deref() == Ok(test) {
        return true;
    }
    let have_ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !super::require(have_ip, "ip (Debian package iproute2)") {
        return false;
    }
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "sipacd-t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let ok = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    let made = ok(&["netns", "add", &name]);
    if !super::require(made, "a network namespace (`ip netns add`, as root)") {
        return false;
    }
    let _cleanup = Cleanup(name.clone());
    assert!(
        ok(&["-n", &name, "link", "set", "lo", "up"]),
        "lo up in {name}"
    );
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &name])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(INNER, test)
        .spawn()
        .expect("run the test inside the namespace");
    // Bounded: a hung inner run fails the test.
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "{test} failed inside network namespace {name}: {status:?} (its output is above)"
    );
    false
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One HTTP/1.0 request to the admin API on 127.0.0.1:`port`; the status
/// and the body as JSON (Null if it is not JSON).
pub fn http(method: &str, port: u16, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        code,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}
