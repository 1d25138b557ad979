//! Request floods from one source, end to end, in a network namespace of
//! the test's own: a 50x INVITE flood from 127.0.0.2 (never ACKed) while a
//! legitimate SIPp caller on 127.0.0.3 keeps its calls; the flooding
//! source shows in the block list (`GET /api/v1/blocked`), is let in again
//! after `pike_block_s` or at once by `DELETE /api/v1/blocked/ADDR`.

mod common;

use common::netns::{http, inside_netns};
use common::sipp::{scenario_path, sipp_or_skip};
use common::{ConfigSpec, Daemon};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "flood-token";
const FLOODER: &str = "127.0.0.2";
const CALLER: &str = "127.0.0.3";
const BLOCK_S: u64 = 4;
/// Legitimate calls and their rate; the flood is 50 times the rate.
const CALLS: u32 = 100;
const CPS: u32 = 10;

fn spec() -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.admin_token = TOKEN.into();
    spec.max_calls = 200;
    // Loopback is allow-listed by default: here only 127.0.0.1 (the
    // harness's own OPTIONS probes) is.
    spec.server_extra = format!(
        "allow_networks = [\"127.0.0.1\"]\npike_window_s = 1\npike_max_requests = 60\n\
         pike_block_s = {BLOCK_S}\nmax_calls_in_setup_per_source = 20\n"
    );
    spec
}

fn invite(from_port: u16, target: u16, n: u64) -> String {
    format!(
        "INVITE sip:1500@127.0.0.1:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {FLOODER}:{from_port};branch=z9hG4bKflood{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:flood@{FLOODER}>;tag=f{n}\r\n\
         To: <sip:1500@127.0.0.1>\r\nCall-ID: flood-{n}@{FLOODER}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:flood@{FLOODER}:{from_port}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// OPTIONS from `sock`; whether any final answer came within `wait`.
fn answered(sock: &UdpSocket, target: u16, wait: Duration) -> bool {
    let port = sock.local_addr().unwrap().port();
    let cid = format!("probe-{}", common::sip::token());
    let msg = format!(
        "OPTIONS sip:ping@127.0.0.1:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {FLOODER}:{port};branch=z9hG4bK{cid};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{FLOODER}>;tag={cid}\r\n\
         To: <sip:ping@127.0.0.1>\r\nCall-ID: {cid}\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", target)).unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.contains(&cid) && text.starts_with("SIP/2.0 2") {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

fn blocked_list(admin: u16) -> Vec<serde_json::Value> {
    let (code, v) = http("GET", admin, "/api/v1/blocked", Some(TOKEN));
    assert_eq!(code, 200, "{v}");
    v["blocked"].as_array().cloned().unwrap_or_default()
}

fn lists(admin: u16, ip: &str) -> bool {
    blocked_list(admin)
        .iter()
        .any(|b| b["source"] == ip && b["reason"] == "flood")
}

/// Sends `n` OPTIONS from `sock` at once (enough to trip the limit).
fn burst(sock: &UdpSocket, target: u16, n: u64) {
    for i in 0..n {
        let _ = sock.send_to(
            invite(0, target, 1_000_000 + i).as_bytes(),
            ("127.0.0.1", target),
        );
    }
}

fn metric(admin: u16, name: &str) -> f64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn a_50x_invite_flood_from_one_source_leaves_other_callers_their_calls() {
    if !inside_netns("a_50x_invite_flood_from_one_source_leaves_other_callers_their_calls") {
        return;
    }
    if !sipp_or_skip() {
        return;
    }
    let d = Daemon::start_with(spec());
    let (port, admin) = (d.sip_port(), d.cfg.spec.admin_port);

    // The legitimate caller: SIPp from 127.0.0.3, CALLS calls at CPS.
    let dir = tempfile::tempdir().unwrap();
    let mut sipp = Command::new("sipp")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-sf")
        .arg(scenario_path("call_daemon_hangs_up"))
        .args(["-s", "1600", "-i", CALLER, "-p", "5070"])
        .args(["-m", &CALLS.to_string(), "-r", &CPS.to_string(), "-l", "50"])
        .args(["-timeout", "60s", "-nostdin", "-trace_stat", "-stf"])
        .arg(dir.path().join("stat.csv"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sipp");

    // The flood: 50x the caller's rate of INVITEs, never ACKed, for as
    // long as the caller runs.
    let flood = UdpSocket::bind((FLOODER, 0)).unwrap();
    let fport = flood.local_addr().unwrap().port();
    let rate = u64::from(50 * CPS);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut saw_block = false;
    let mut next_look = start;
    let status = loop {
        if let Some(st) = sipp.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = sipp.kill();
            break None;
        }
        let due = start.elapsed().as_millis() as u64 * rate / 1000;
        while sent < due {
            let _ = flood.send_to(invite(fport, port, sent).as_bytes(), ("127.0.0.1", port));
            sent += 1;
        }
        if !saw_block && Instant::now() >= next_look {
            saw_block = lists(admin, FLOODER);
            next_look += Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stat = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".csv"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .unwrap_or_default();
    // The last line of SIPp's statistics: SuccessfulCall(C) and FailedCall(C).
    let head: Vec<&str> = stat.lines().next().unwrap_or("").split(';').collect();
    let last: Vec<&str> = stat.lines().last().unwrap_or("").split(';').collect();
    let col = |name: &str| {
        head.iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ok = col("SuccessfulCall(C)");
    eprintln!(
        "flood: {sent} INVITEs from {FLOODER}; caller: {ok}/{CALLS} calls ok (sipp {status:?}); \
         dropped {} blocks {} setup-limited {}",
        metric(admin, "sipacd_sip_flood_dropped"),
        metric(admin, "sipacd_sip_flood_blocks"),
        metric(admin, "sipacd_sip_setup_limited"),
    );
    assert!(sent >= u64::from(CALLS) * 40, "the flood ran ({sent} sent)");
    assert!(
        ok * 100 >= u64::from(CALLS) * 95,
        "the legitimate caller kept {ok} of {CALLS} calls; stats:\n{stat}\n{}",
        d.stderr()
    );
    assert!(
        saw_block,
        "the flooding source was in the block list during the flood"
    );
    assert!(metric(admin, "sipacd_sip_flood_blocks") >= 1.0);
    assert!(metric(admin, "sipacd_sip_flood_dropped") > 0.0);

    // Blocked now (a burst makes sure), unanswered; the caller is not listed.
    burst(&flood, port, 200);
    common::wait_until("the flooder listed", Duration::from_secs(5), || {
        lists(admin, FLOODER)
    });
    assert!(!blocked_list(admin).iter().any(|b| b["source"] == CALLER));
    let probe = UdpSocket::bind((FLOODER, 0)).unwrap();
    assert!(
        !answered(&probe, port, Duration::from_millis(500)),
        "a blocked source is not answered"
    );
    let (code, _) = http("GET", admin, "/api/v1/blocked", None);
    assert_eq!(code, 401, "the block list needs the token");

    // Let in again after pike_block_s, by itself.
    let freed = Instant::now() + Duration::from_secs(BLOCK_S + 3);
    let mut back = false;
    while Instant::now() < freed && !back {
        std::thread::sleep(Duration::from_millis(500));
        back = !lists(admin, FLOODER) && answered(&probe, port, Duration::from_millis(500));
    }
    assert!(
        back,
        "the source was answered again after its block of {BLOCK_S} s"
    );

    // Blocked again, then lifted at once through the API.
    burst(&flood, port, 200);
    common::wait_until("the flooder listed again", Duration::from_secs(5), || {
        lists(admin, FLOODER)
    });
    // The rest of the burst is still being read, and a blocked source
    // that goes on sending is blocked again: lift the block once it has
    // all been read.
    std::thread::sleep(Duration::from_millis(1500));
    let (code, v) = http(
        "DELETE",
        admin,
        &format!("/api/v1/blocked/{FLOODER}"),
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{v}");
    assert!(!lists(admin, FLOODER));
    // Right after a burst on loopback the kernel may drop the first probe.
    assert!(
        (0..3).any(|_| answered(&probe, port, Duration::from_secs(1))),
        "answered once lifted"
    );
    let (code, _) = http(
        "DELETE",
        admin,
        &format!("/api/v1/blocked/{FLOODER}"),
        Some(TOKEN),
    );
    assert_eq!(code, 404, "nothing left to lift");
}

/// Whether a probe is answered within a few tries: right after a burst
/// the kernel may have dropped the first one (the socket's buffer full).
fn answered_soon(sock: &UdpSocket, target: u16) -> bool {
    (0..4).any(|_| answered(sock, target, Duration::from_millis(700)))
}

/// Sends `n` OPTIONS from `sock` at once.
fn options_burst(sock: &UdpSocket, target: u16, n: u64) {
    let port = sock.local_addr().unwrap().port();
    for i in 0..n {
        let msg = format!(
            "OPTIONS sip:ping@127.0.0.1:{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {FLOODER}:{port};branch=z9hG4bKob{i}-{port};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@{FLOODER}>;tag=ob{i}\r\n\
             To: <sip:ping@127.0.0.1>\r\nCall-ID: ob-{i}-{port}\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let _ = sock.send_to(msg.as_bytes(), ("127.0.0.1", target));
    }
}

/// The flooder's block: seconds left, if it is listed.
fn seconds_left(admin: u16) -> Option<f64> {
    blocked_list(admin)
        .iter()
        .find(|b| b["source"] == FLOODER && b["reason"] == "flood")
        .and_then(|b| b["seconds_left"].as_f64())
}

/// The flooder's block once it shows in the list (within 2 s).
fn listed_block(admin: u16) -> Option<f64> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let left = seconds_left(admin);
        if left.is_some() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reloads through the admin API; the changes it names.
fn reload(admin: u16) -> Vec<String> {
    let (code, v) = http("POST", admin, "/api/v1/reload", Some(TOKEN));
    assert_eq!(code, 200, "{v}");
    v["changed"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pike_keys_apply_on_reload_and_a_source_that_keeps_flooding_stays_blocked_longer_each_time() {
    if !inside_netns(
        "pike_keys_apply_on_reload_and_a_source_that_keeps_flooding_stays_blocked_longer_each_time",
    ) {
        return;
    }
    const BLOCK: u64 = 3;
    let mut spec = ConfigSpec::new();
    spec.admin_token = TOKEN.into();
    let limits = |max: u32, allow: &str| {
        format!(
            "allow_networks = [{allow}]\npike_window_s = 1\npike_max_requests = {max}\n\
             pike_block_s = {BLOCK}\n"
        )
    };
    spec.server_extra = limits(1000, "\"127.0.0.1\"");
    let mut d = Daemon::start_with(spec);
    let (port, admin) = (d.sip_port(), d.cfg.spec.admin_port);
    let flood = UdpSocket::bind((FLOODER, 0)).unwrap();
    let probe = UdpSocket::bind((FLOODER, 0)).unwrap();

    // 200 at once is under the limit the daemon started with.
    options_burst(&flood, port, 200);
    assert!(
        answered_soon(&probe, port),
        "under the limit; dropped {} blocks {}; sipacd:\n{}",
        metric(admin, "sipacd_sip_flood_dropped"),
        metric(admin, "sipacd_sip_flood_blocks"),
        d.stderr()
    );
    assert!(seconds_left(admin).is_none());

    // A reload lowers the limit: it applies at once, and says so.
    d.cfg.spec.server_extra = limits(50, "\"127.0.0.1\"");
    d.cfg.write();
    let changed = reload(admin);
    assert_eq!(changed, ["server.pike_max_requests changed"], "{changed:?}");
    std::thread::sleep(Duration::from_millis(1100)); // a fresh window
    options_burst(&flood, port, 200);
    let first = listed_block(admin).expect("blocked under the reloaded limit");
    assert!(first <= BLOCK as f64, "first block {first} s");
    assert!(!answered(&probe, port, Duration::from_millis(300)));

    // Still flooding (100 a second, twice the limit) for longer than the
    // block: it stays blocked all along.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(BLOCK + 3) {
        options_burst(&flood, port, 10);
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() > Duration::from_secs(BLOCK + 1) {
            assert!(
                seconds_left(admin).is_some(),
                "let in at {:?} while still flooding",
                start.elapsed()
            );
        }
    }
    assert!(metric(admin, "sipacd_sip_flood_block_extensions") >= 1.0);
    // Quiet: let in within a block's time of its last flooding message.
    common::wait_until(
        "the block ends once the flood stops",
        Duration::from_secs(BLOCK + 2),
        || seconds_left(admin).is_none(),
    );
    assert!(answered_soon(&probe, port));

    // Back soon: the next block is twice as long.
    options_burst(&flood, port, 200);
    let second = listed_block(admin).expect("blocked again");
    // Each block in a row doubles. On a loaded machine the flooding loop
    // above can stall past a block's end, so the source was blocked anew
    // in it: the daemon's own count of blocks says which block this is.
    let blocks = metric(admin, "sipacd_sip_flood_blocks");
    assert!(blocks >= 2.0, "blocks {blocks}");
    let this_one = BLOCK as f64 * 2f64.powf(blocks - 1.0);
    assert!(
        second > this_one / 2.0 && second <= this_one,
        "block {blocks} lasts {second} s, the first {BLOCK} s"
    );

    // A reload allow-lists the source: answered at once, though blocked.
    d.cfg.spec.server_extra = limits(50, "\"127.0.0.1\", \"127.0.0.2\"");
    d.cfg.write();
    let changed = reload(admin);
    assert_eq!(changed, ["server.allow_networks changed"], "{changed:?}");
    assert!(
        answered_soon(&probe, port),
        "an allow-listed source is answered"
    );
    options_burst(&flood, port, 200);
    assert!(answered_soon(&probe, port));
}
