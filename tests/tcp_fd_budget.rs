//! The TCP limit comes from the open-file limit and keeps room for RTP: the
//! daemon runs under a hard limit of 256 descriptors (it cannot raise it),
//! 250 idle TCP connections are opened at it, and calls still get their
//! RTP ports (before, idle connections could take every descriptor and
//! every call failed with 503, logged as a port "in use").

mod common;

use common::phone::Caller;
use common::{ConfigDir, ConfigSpec};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const OPEN_FILES: u64 = 256;
/// More than the daemon has descriptors: unbounded, they would take them all.
const CONNECTIONS: usize = 250;

fn connect(from: u8, port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)), 0);
    s.bind(&local.into()).unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    s.into()
}

/// `key=N` in `line`.
fn field(line: &str, key: &str) -> Option<u64> {
    let rest = line.split(&format!("{key}=")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn calls_keep_their_rtp_ports_when_idle_tcp_connections_pile_up() {
    assert!(common::limited::have_prlimit(), "skipped");
    let cfg = ConfigDir::new(ConfigSpec::new());
    let (_daemon, log) = common::limited::start(&cfg, OPEN_FILES);
    let port = cfg.spec.sip_port;
    let text = fs::read_to_string(&log).unwrap();
    let budget = text
        .lines()
        .find(|l| l.contains("descriptor budget"))
        .unwrap_or_else(|| panic!("no budget logged:\n{text}"));
    assert_eq!(field(budget, "open_files"), Some(OPEN_FILES), "{budget}");
    let tcp_max = field(budget, "tcp_max_connections").expect("tcp_max_connections");
    // The harness's 100 RTP ports are 50 pairs, two sockets each.
    assert!(
        tcp_max + 100 < OPEN_FILES,
        "TCP may take the descriptors RTP needs: {budget}"
    );

    // Half from each of two addresses (under the per-source limit).
    let held: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| connect(if i % 2 == 0 { 1 } else { 2 }, port))
        .collect();
    // Two calls at once, each answered with its RTP port.
    let a = Caller::dial(port, "1500");
    let b = Caller::dial(port, "1500");
    assert!(a.leg_port.is_some() && b.leg_port.is_some());
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("TCP connection closed at once"),
        "the connections over the limit were not refused:\n{text}"
    );
    assert!(!text.contains("in use by another process"), "{text}");
    drop(held);
}
