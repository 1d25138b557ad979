//! TCP limits of the running daemon, with small values set in `[server]`:
//! connections per source address and in all, the first-message and
//! slowloris timeouts, the idle timeout (a connection a registration came
//! over is kept), and the admin port's connection limit and header timeout.
//! Loopback has many source addresses (127.0.0.x), which tells "per
//! source" from "in all". Every connection here is closed by the daemon
//! within a few seconds; the test opens at most a dozen.

mod common;

use common::sip::{header, status_code, token};
use common::{ConfigSpec, Daemon, AGENT_PASSWORD, DOMAIN};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
const MESSAGE_TIMEOUT_S: u64 = 2;
/// Three times the message timeout: a dribbling connection must be closed
/// by the message timeout, well before idleness would close it.
const IDLE_S: u64 = 6;

/// A daemon with small limits; `message_s` and `idle_s` are the TCP
/// timeouts.
fn daemon(message_s: u64, idle_s: u64) -> Daemon {
    let mut spec = ConfigSpec::new();
    spec.server_extra = format!(
        "tcp_max_per_source = 3\ntcp_max_connections = 5\n\
         tcp_message_timeout_s = {message_s}\ntcp_idle_s = {idle_s}\n\
         admin_max_connections = 3\nadmin_header_timeout_s = 2\n"
    );
    Daemon::start_with(spec)
}

/// A TCP connection to `port` from 127.0.0.`from`.
fn connect(from: u8, port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)), 0);
    s.bind(&local.into()).unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    s.connect_timeout(&to.into(), T).unwrap();
    s.into()
}

/// Reads until the peer closes (true) or `within` passes quietly (false).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true, // reset
        }
    }
}

fn options(s: &TcpStream) -> String {
    let local = s.local_addr().unwrap();
    format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{DOMAIN}>;tag={}\r\nTo: <sip:{DOMAIN}>\r\n\
         Call-ID: {}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        token(),
        token(),
        token()
    )
}

/// Reads one SIP message (headers, no body) off `s`.
fn read_message(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(T)).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => got.push(b[0]),
            other => panic!(
                "connection ended before a whole message ({other:?}): {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8(got).unwrap()
}

fn options_ok(s: &mut TcpStream) {
    s.write_all(options(s).as_bytes()).unwrap();
    let m = read_message(s);
    assert_eq!(status_code(&m), Some(200), "{m}");
}

/// Registers agent 1001 over `s` (digest, MD5), its contact the
/// connection's own address.
fn register_over(s: &mut TcpStream) {
    use md5::{Digest, Md5};
    let hex = |v: String| format!("{:x}", Md5::digest(v.as_bytes()));
    let local = s.local_addr().unwrap();
    let (cid, tag) = (token(), token());
    let req = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@{DOMAIN}>;tag={tag}\r\nTo: <sip:1001@{DOMAIN}>\r\n\
             Call-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:1001@{local};transport=tcp>\r\nExpires: 300\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            token()
        )
    };
    s.write_all(req(1, "").as_bytes()).unwrap();
    let challenge = read_message(s);
    assert_eq!(status_code(&challenge), Some(401), "{challenge}");
    let www = header(&challenge, "WWW-Authenticate", None).unwrap();
    let param = |name: &str| {
        www.split(',')
            .map(|p| p.trim().trim_start_matches("Digest ").trim())
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    let (realm, nonce) = (param("realm").unwrap(), param("nonce").unwrap());
    let uri = format!("sip:{DOMAIN}");
    let cnonce = token();
    let ha1 = hex(format!("1001:{realm}:{AGENT_PASSWORD}"));
    let ha2 = hex(format!("REGISTER:{uri}"));
    let response = hex(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    let mut auth = format!(
        "Authorization: Digest username=\"1001\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
         cnonce=\"{cnonce}\""
    );
    if let Some(o) = param("opaque") {
        auth.push_str(&format!(", opaque=\"{o}\""));
    }
    auth.push_str("\r\n");
    s.write_all(req(2, &auth).as_bytes()).unwrap();
    let ok = read_message(s);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
}

fn metrics(d: &Daemon) -> String {
    let url = format!("{}/metrics", d.admin_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() })
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn sip_tcp_connections_are_limited_per_source_and_in_all() {
    // Timeouts far longer than the test: only the limits close anything.
    let d = daemon(60, 60);
    let port = d.sip_port();
    // Three from .1 are served; a fourth from .1 is closed at once.
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(1, port)).collect();
    for s in &mut held {
        options_ok(s);
    }
    let mut fourth = connect(1, port);
    assert!(closed_within(&mut fourth, T), "over the per-source limit");
    // Other addresses still get in, up to five in all.
    let mut two = connect(2, port);
    options_ok(&mut two);
    let mut three = connect(3, port);
    options_ok(&mut three);
    let mut sixth = connect(4, port);
    assert!(closed_within(&mut sixth, T), "over the total limit");
    let m = metrics(&d);
    assert_eq!(
        sample(&m, "sipacd_sip_tcp_refused_per_source_total"),
        1.0,
        "{m}"
    );
    assert_eq!(sample(&m, "sipacd_sip_tcp_refused_total"), 1.0, "{m}");
    assert_eq!(sample(&m, "sipacd_sip_tcp_connections"), 5.0, "{m}");
    // The ones let in were served all along.
    options_ok(&mut held[0]);
    options_ok(&mut two);
}

#[test]
fn silent_slow_and_idle_connections_are_closed_registered_ones_kept() {
    let d = daemon(MESSAGE_TIMEOUT_S, IDLE_S);
    let port = d.sip_port();
    let mut silent = connect(1, port);
    let mut registered = connect(2, port);
    register_over(&mut registered);
    let mut idle = connect(3, port);
    options_ok(&mut idle);
    // Slowloris: after one message, the next begun and fed a byte every
    // 300 ms never ends.
    let mut slow = connect(4, port);
    options_ok(&mut slow);
    let started = Instant::now();
    let msg = options(&slow);
    let mut closed_slow = false;
    for b in msg.as_bytes()[..msg.len() - 4].iter() {
        if slow.write_all(&[*b]).is_err() || closed_within(&mut slow, Duration::from_millis(300)) {
            closed_slow = true;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(IDLE_S),
            "the dribbling connection was not closed by the message timeout"
        );
    }
    assert!(closed_slow, "the whole message was sent: make it longer");
    // The silent one owed a first message within the message timeout.
    assert!(
        closed_within(&mut silent, T),
        "the silent connection stayed open"
    );
    // The idle one is closed after tcp_idle_s without a message...
    assert!(
        closed_within(&mut idle, T),
        "the idle connection stayed open"
    );
    // ...the registered one is not, well past that (twice the idle time).
    assert!(
        !closed_within(&mut registered, Duration::from_secs(2 * IDLE_S)),
        "the connection a registration came over was closed"
    );
    options_ok(&mut registered);
    let m = metrics(&d);
    assert!(sample(&m, "sipacd_sip_tcp_timed_out_total") >= 3.0, "{m}");
}

/// An HTTP/1.1 GET on `s`; the status code.
fn get(s: &mut TcpStream, path: &str) -> u16 {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head}"))
}

#[test]
fn the_admin_port_limits_connections_and_times_out_idle_ones() {
    let d = daemon(60, 60);
    let admin: u16 = d.admin_url().rsplit(':').next().unwrap().parse().unwrap();
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(1, admin)).collect();
    assert_eq!(get(&mut held[0], "/health"), 200);
    let mut fourth = connect(1, admin);
    assert!(closed_within(&mut fourth, T), "over admin_max_connections");
    // Idle keep-alive and silent connections are closed by the header
    // timeout; the port then serves new clients again.
    for s in &mut held {
        assert!(closed_within(s, T), "an idle admin connection stayed open");
    }
    let mut again = connect(1, admin);
    assert_eq!(get(&mut again, "/health"), 200);
    // A request body that stops coming fails the request (a reply or a
    // close) instead of holding the connection.
    let mut slow = connect(1, admin);
    slow.write_all(
        b"POST /api/v1/agents/1001/state HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"state\"",
    )
    .unwrap();
    slow.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 1024];
    match slow.read(&mut buf) {
        Ok(n) if n > 0 => {
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(!head.contains(" 200 "), "a half body was accepted: {head}");
        }
        Ok(_) => {} // closed
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the request with a stalled body was still open after {T:?}"
        ),
    }
}
