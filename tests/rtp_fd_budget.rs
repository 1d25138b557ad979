//! Parked RTP sockets stay within the descriptors set aside for RTP: the
//! daemon runs under a hard limit of 256 descriptors with a range of 500
//! port pairs, and 200 short calls in a row each get their RTP port. Before,
//! the pairs kept open for reuse after their calls (up to the whole range)
//! took every descriptor: calls were refused with 503 and legs hung up with
//! "out of file descriptors" (what failed the routed bench at 1,800
//! calls/s under a limit of 20,000).

mod common;

use common::phone::Caller;
use common::{ConfigDir, ConfigSpec};
use std::fs;
use std::time::Instant;

const OPEN_FILES: u64 = 256;
/// Far more pairs than the descriptors hold (500 pairs: 1,000 sockets).
const RTP_PORTS: u16 = 1000;
/// More than the descriptors hold pairs, placed faster than a released
/// pair rests before it is reused (1 s): without the budget each would be
/// parked and kept.
const CALLS: usize = 200;

#[test]
fn parked_rtp_sockets_never_take_the_descriptors_of_new_calls() {
    assert!(common::limited::have_prlimit(), "skipped");
    let mut spec = ConfigSpec::new();
    spec.rtp_base = 40_000;
    spec.rtp_count = RTP_PORTS;
    let cfg = ConfigDir::new(spec);
    let (daemon, log) = common::limited::start(&cfg, OPEN_FILES);
    let port = cfg.spec.sip_port;

    let started = Instant::now();
    let mut ports = std::collections::HashSet::new();
    for i in 0..CALLS {
        // Dial panics on a refusal (the 503 of no RTP port).
        let mut c = Caller::dial(port, "1500");
        let leg = c
            .leg_port
            .unwrap_or_else(|| panic!("call {i} answered without an RTP port"));
        ports.insert(leg);
        c.bye();
    }
    let took = started.elapsed();
    let text = fs::read_to_string(&log).unwrap();
    for bad in [
        "out of file descriptors",
        "cannot bind RTP port",
        "Too many open files",
    ] {
        assert!(!text.contains(bad), "{bad}:\n{text}");
    }
    // The calls went through new ports, not a handful reused, or the
    // test would not have reached the limit (it says how fast they came).
    assert!(
        ports.len() > 100,
        "only {} distinct RTP ports in {took:?}: the calls came too slowly to pile up parked pairs",
        ports.len()
    );
    // And the daemon still has descriptors for more.
    let fds = fs::read_dir(format!("/proc/{}/fd", daemon.0.id()))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        fds > 0 && (fds as u64) < OPEN_FILES,
        "{fds} descriptors open"
    );
    let last = Caller::dial(port, "1500");
    assert!(last.leg_port.is_some());
}
