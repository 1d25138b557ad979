//! A daemon that is behind turns new calls away and keeps the calls it
//! has: the daemon is stopped (SIGSTOP) while a new INVITE and a BYE of a
//! call in progress wait in its socket, then let go. The INVITE waited
//! longer than the overload threshold: it gets a stateless 503 with
//! Retry-After, counted in `sipacd_sip_overload_rejected_total`; the BYE
//! gets its 200; a call placed once the backlog is read is answered.

mod common;

use common::phone::Caller;
use common::sip::Uac;
use common::Daemon;
use std::process::Command;
use std::time::Duration;

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn a_daemon_behind_refuses_new_calls_and_keeps_the_ones_it_has() {
    let d = Daemon::start();
    let port = d.sip_port();
    let mut up = Caller::dial(port, "1500");

    signal(d.pid(), "STOP");
    let newcomer =
        std::thread::spawn(move || Uac::new(port).invite("1500", Duration::from_secs(5)));
    let hang_up = std::thread::spawn(move || up.bye());
    // Both wait in the socket buffer longer than the threshold (100 ms).
    std::thread::sleep(Duration::from_millis(400));
    signal(d.pid(), "CONT");

    let codes = newcomer.join().expect("newcomer");
    assert_eq!(
        codes.last(),
        Some(&503),
        "a new call read 400 ms late was not turned away: {codes:?}\n{}",
        d.stderr()
    );
    hang_up
        .join()
        .expect("the BYE of the call in progress got no 200");

    // The backlog is read: new calls are let in again.
    std::thread::sleep(Duration::from_millis(200));
    let codes = Uac::new(port).invite("1500", Duration::from_secs(5));
    assert!(codes.contains(&200), "after the backlog: {codes:?}");

    let (status, _, body) = common::http::get_bytes(&format!("{}/metrics", d.admin_url()));
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let shed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("sipacd_sip_overload_rejected_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no overload counter:\n{text}"));
    assert_eq!(shed, 1, "one INVITE turned away");
}
