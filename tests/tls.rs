//! SIP over TLS against the running daemon, with a certificate made at
//! test time: an agent registers over a TLS connection and is called down
//! that same connection (it listens on no port at all); CRLF keep-alives
//! are answered; a flow that is gone is not dialled anew; a reload hands
//! new connections the new certificate; `sipacd check` refuses a bad
//! certificate or key at its line and column.

mod common;

use common::phone::{sdp, Caller};
use common::sip::{header, method, status_code, token};
use common::tls::{response, Got, Pki, TlsAgent};
use common::{parse_diagnostics, sipacd_bin, ConfigDir, ConfigSpec, Daemon};
use common::{AGENT_PASSWORD, DOMAIN};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
const INSTANCE: &str = "0e4b3cc6-4b8e-4a1c-9a5a-1f2f3e4d5c6b";

/// A daemon with a `tls:` listener on its own port and `pki`'s `name`
/// certificate; returns it and the TLS port.
fn start(pki: &Pki, name: &str) -> (Daemon, u16) {
    let (cert, key, _) = pki.issue(name);
    let tls_port = common::free_port();
    let mut spec = ConfigSpec::new();
    spec.sip_extra = format!(", \"tls:127.0.0.1:{tls_port}\"");
    spec.server_extra = Pki::server_lines(&cert, &key);
    (Daemon::start_with(spec), tls_port)
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

/// A TCP port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn an_agent_registered_over_tls_is_called_down_that_connection() {
    let pki = Pki::new();
    let (d, tls_port) = start(&pki, "server");
    let mut agent = TlsAgent::connect("1001", tls_port, &pki);
    // The Contact names a port nothing listens on: the call can only come
    // down the connection the agent registered on (an RFC 5626 flow).
    let contact = format!(
        "<sips:1001@127.0.0.1:{};ob>;reg-id=1;+sip.instance=\"<urn:uuid:{INSTANCE}>\"",
        closed_port()
    );
    let ok = agent.register(DOMAIN, AGENT_PASSWORD, &contact, "Supported: outbound\r\n");
    assert_eq!(status_code(&ok), Some(200), "REGISTER refused:\n{ok}");
    assert_eq!(header(&ok, "Require", None), Some("outbound"), "{ok}");
    assert!(header(&ok, "Flow-Timer", None).is_some(), "{ok}");
    let b = d.wait_binding("1001", T).expect("no binding written");
    assert_eq!(b["transport"], "tls", "{b}");
    assert_eq!(b["source"], agent.local.to_string(), "{b}");

    // A CRLFCRLF keep-alive gets its CRLF pong.
    agent.send("\r\n\r\n");
    assert_eq!(agent.recv(T), Some(Got::Pong), "no pong to a keep-alive");

    let mut caller = Caller::dial(d.sip_port(), "1500");
    let invite = agent
        .next(T, |m| method(m) == Some("INVITE"))
        .unwrap_or_else(|| panic!("no INVITE over TLS; sipacd:\n{}", d.stderr()));
    let via = header(&invite, "Via", Some("v")).unwrap_or_default();
    assert!(via.starts_with("SIP/2.0/TLS "), "Via of the offer: {via}");
    assert!(invite.starts_with("INVITE sips:1001@"), "{invite}");
    // A sips: target gets a sips: Contact (the others `;transport=tls`).
    let ours = header(&invite, "Contact", Some("m")).unwrap_or_default();
    assert!(ours.starts_with("<sips:"), "Contact of the offer: {ours}");
    assert!(
        ours.contains(&format!(":{tls_port}")),
        "Contact names the TLS port: {ours}"
    );
    let tag = token();
    agent.send(&response(&invite, 180, "Ringing", &tag, None, None));
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let body = sdp(rtp.local_addr().unwrap().port());
    let me = format!("sip:1001@{};transport=tls", agent.local);
    agent.send(&response(&invite, 200, "OK", &tag, Some(&me), Some(&body)));
    let cid = header(&invite, "Call-ID", Some("i")).unwrap().to_string();
    let ack = agent.next(T, |m| {
        method(m) == Some("ACK") && header(m, "Call-ID", Some("i")) == Some(cid.as_str())
    });
    assert!(ack.is_some(), "no ACK over TLS for the agent's 200");

    caller.bye();
    let bye = agent
        .next(T, |m| method(m) == Some("BYE"))
        .expect("no BYE over TLS after the caller hung up");
    agent.send(&response(&bye, 200, "OK", &tag, None, None));
    let m = metrics(&d);
    assert_eq!(sample(&m, "sipacd_sip_tls_no_flow_total"), 0.0, "{m}");
}

#[test]
fn an_agent_whose_tls_connection_is_gone_is_not_dialled_anew() {
    let pki = Pki::new();
    let (d, tls_port) = start(&pki, "server");
    // This time the Contact's port listens: nothing may connect to it.
    let contact_port = TcpListener::bind("127.0.0.1:0").unwrap();
    contact_port.set_nonblocking(true).unwrap();
    let port = contact_port.local_addr().unwrap().port();
    let mut agent = TlsAgent::connect("1001", tls_port, &pki);
    let contact = format!("<sip:1001@127.0.0.1:{port};transport=tls>");
    let ok = agent.register(DOMAIN, AGENT_PASSWORD, &contact, "");
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    d.wait_binding("1001", T).expect("no binding written");
    drop(agent);

    // The caller waits in the queue: the agent is logged out, not rung.
    let mut caller = Caller::dial(d.sip_port(), "1500");
    // Logged out when the connection closed (or, failing that, at the offer).
    let gone = |l: &str| {
        l.contains("TLS connection the agent registered on is gone")
            || l.contains("TLS connection the agent registered on closed")
    };
    assert!(
        d.wait_for_log(T, gone),
        "the agent whose connection closed was not logged out; sipacd:\n{}",
        d.stderr()
    );
    assert!(
        contact_port.accept().is_err(),
        "sipacd opened a connection to the agent's Contact"
    );

    // Registered again on a new connection: the waiting call comes down it.
    let mut again = TlsAgent::connect("1001", tls_port, &pki);
    let ok = again.register(DOMAIN, AGENT_PASSWORD, &contact, "");
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    let invite = again
        .next(T, |m| method(m) == Some("INVITE"))
        .unwrap_or_else(|| panic!("no offer after registering again; sipacd:\n{}", d.stderr()));
    let tag = token();
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let body = sdp(rtp.local_addr().unwrap().port());
    let me = format!("sip:1001@{};transport=tls", again.local);
    again.send(&response(&invite, 200, "OK", &tag, Some(&me), Some(&body)));
    let cid = header(&invite, "Call-ID", Some("i")).unwrap().to_string();
    assert!(again
        .next(T, |m| method(m) == Some("ACK")
            && header(m, "Call-ID", Some("i")) == Some(cid.as_str()))
        .is_some());
    caller.bye();
    assert!(contact_port.accept().is_err());
    let m = metrics(&d);
    assert_eq!(sample(&m, "sipacd_sip_tls_no_flow_total"), 0.0, "{m}");
    let log = d.stderr();
    assert!(!log.contains(" WARN ") && !log.contains("ERROR"), "{log}");
}

#[test]
fn a_reload_hands_new_connections_the_new_certificate() {
    let pki = Pki::new();
    let (cert, key, first) = pki.issue("server");
    let tls_port = common::free_port();
    let mut spec = ConfigSpec::new();
    spec.sip_extra = format!(", \"tls:127.0.0.1:{tls_port}\"");
    spec.server_extra = Pki::server_lines(&cert, &key);
    let d = Daemon::start_with(spec);
    let mut old = TlsAgent::connect("1001", tls_port, &pki);
    assert_eq!(old.peer_leaf(), first);

    // A renewed certificate at the same paths, then a reload.
    let (new_cert, new_key, second) = pki.issue("renewed");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    d.signal("HUP");
    let loaded = |line: &str| line.contains("new TLS connections use it");
    assert!(
        d.wait_for_log(T, loaded),
        "no reload of the certificate; sipacd:\n{}",
        d.stderr()
    );
    let fresh = TlsAgent::connect("1001", tls_port, &pki);
    assert_eq!(fresh.peer_leaf(), second, "a new connection after reload");

    // The connection made before the reload still carries SIP.
    let cid = token();
    old.send(&format!(
        "OPTIONS sip:127.0.0.1:{tls_port};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK{br};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@{DOMAIN}>;tag={tag}\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {cid}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        local = old.local,
        br = token(),
        tag = token(),
    ));
    let answer = old.next(T, |m| status_code(m).is_some());
    assert_eq!(
        answer.as_deref().and_then(status_code),
        Some(200),
        "{answer:?}"
    );
}

/// `sipacd check` on a configuration with a `tls:` listener and `lines`
/// in `[server]`: its diagnostics (path, line, column, message).
/// `sipacd check`'s diagnostics: path, line, column, message.
type Diagnostics = Vec<(String, u32, u32, String)>;

fn check_with(lines: &str) -> (bool, Diagnostics, String) {
    let mut spec = ConfigSpec::new();
    spec.sip_extra = format!(", \"tls:127.0.0.1:{}\"", common::free_port());
    spec.server_extra = lines.to_string();
    let cfg = ConfigDir::new(spec);
    let out = std::process::Command::new(sipacd_bin())
        .arg("check")
        .arg("--config")
        .arg(cfg.config_path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let lines_of = cfg.spec.render(cfg.root());
    (out.status.success(), parse_diagnostics(&text), lines_of)
}

/// The 1-based line of `key = ` in `text`.
fn line_of(text: &str, key: &str) -> u32 {
    let i = text
        .lines()
        .position(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} line"));
    u32::try_from(i + 1).unwrap()
}

#[test]
fn check_refuses_a_bad_certificate_or_key_at_its_position() {
    let pki = Pki::new();
    let (cert, key, _) = pki.issue("a");
    let (_, other_key, _) = pki.issue("b");
    let junk = pki.dir.path().join("junk.crt");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = pki.dir.path().join("missing.crt");

    let (ok, diags, _) = check_with(&Pki::server_lines(&cert, &key));
    assert!(ok && diags.is_empty(), "a good pair refused: {diags:?}");

    let cases = [
        (
            Pki::server_lines(&cert, &other_key),
            "tls_key",
            "does not match",
        ),
        (
            Pki::server_lines(&junk, &key),
            "tls_cert",
            "no PEM certificate",
        ),
        (Pki::server_lines(&missing, &key), "tls_cert", "cannot read"),
        (
            Pki::server_lines(&cert, &cert),
            "tls_key",
            "no PEM private key",
        ),
        (String::new(), "sip", "needs tls_cert and tls_key"),
    ];
    for (lines, key_name, want) in cases {
        let (ok, diags, text) = check_with(&lines);
        assert!(!ok, "check passed with {lines}");
        let line = line_of(&text, key_name);
        assert!(
            diags
                .iter()
                .any(|(_, l, c, m)| *l == line && *c > 1 && m.contains(want)),
            "want `{want}` at line {line} ({key_name}), got {diags:?}"
        );
    }
}

/// True if the daemon closed `s` within `within` (EOF or reset).
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::{ErrorKind, Read};
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn tls_connections_obey_the_tcp_limits() {
    let pki = Pki::new();
    let (cert, key, _) = pki.issue("server");
    let tls_port = common::free_port();
    let mut spec = ConfigSpec::new();
    spec.sip_extra = format!(", \"tls:127.0.0.1:{tls_port}\"");
    spec.server_extra =
        Pki::server_lines(&cert, &key) + "tcp_message_timeout_s = 1\ntcp_max_per_source = 2\n";
    let d = Daemon::start_with(spec);

    // A connection that never says hello is closed by the message timeout.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "a silent TLS connection was kept"
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    let deadline = Instant::now() + T;
    while sample(&metrics(&d), "sipacd_sip_tls_handshake_failures_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the handshake timeout was not counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Two connections from one address are taken; a third is closed at once.
    let _a = TlsAgent::connect("1001", tls_port, &pki);
    let _b = TlsAgent::connect("1001", tls_port, &pki);
    let mut third = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    assert!(
        closed_within(&mut third, Duration::from_millis(900)),
        "a third TLS connection from one address was accepted"
    );
    let m = metrics(&d);
    assert!(
        sample(&m, "sipacd_sip_tcp_refused_per_source_total") >= 1.0,
        "{m}"
    );
}

/// One REGISTER over a plain TCP connection, with digest: the final
/// answer. `contact` is the Contact value, `extra` more header lines.
fn tcp_register(s: &mut std::net::TcpStream, contact: &str, extra: &str) -> String {
    use std::io::{Read, Write};
    let (local, cid, tag) = (s.local_addr().unwrap(), token(), token());
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/TCP {local};branch=z9hG4bK{br};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@{DOMAIN}>;tag={tag}\r\n\
             To: <sip:1001@{DOMAIN}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: {contact}\r\nExpires: 300\r\n{extra}{auth}Content-Length: 0\r\n\r\n",
            br = token(),
        )
    };
    let answer = |s: &mut std::net::TcpStream, msg: String, cseq: u32| {
        s.write_all(msg.as_bytes()).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut text = String::new();
        let want = format!("CSeq: {cseq} REGISTER");
        loop {
            if let Some(end) = text.find("\r\n\r\n") {
                let head = text[..end].to_string();
                text.drain(..end + 4);
                if head.contains(&want) && !head.starts_with("SIP/2.0 1") {
                    return head;
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).expect("an answer to REGISTER over TCP");
            assert!(n > 0, "sipacd closed the TCP connection");
            text.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    };
    let challenge = answer(s, register(1, ""), 1);
    assert_eq!(status_code(&challenge), Some(401), "{challenge}");
    let auth = common::sip::digest_authorization(
        &challenge,
        "1001",
        AGENT_PASSWORD,
        &format!("sip:{DOMAIN}"),
    );
    answer(s, register(2, &auth), 2)
}

#[test]
fn a_phone_back_on_a_new_connection_replaces_its_binding_and_a_closed_flow_is_skipped_at_once() {
    let pki = Pki::new();
    let (d, tls_port) = start(&pki, "server");
    let outbound = "Supported: outbound\r\n";
    let flow = |port: u16| {
        format!("<sips:1001@127.0.0.1:{port};ob>;reg-id=1;+sip.instance=\"<urn:uuid:{INSTANCE}>\"")
    };
    // Registered on one TLS connection, then again on a second one (a NAT
    // rebinding, a new connection) with another Contact URI: one binding,
    // on the new connection.
    let mut first = TlsAgent::connect("1001", tls_port, &pki);
    let ok = first.register(DOMAIN, AGENT_PASSWORD, &flow(closed_port()), outbound);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    let mut second = TlsAgent::connect("1001", tls_port, &pki);
    let ok = second.register(DOMAIN, AGENT_PASSWORD, &flow(closed_port()), outbound);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    assert_eq!(
        ok.matches("\r\nContact:").count(),
        1,
        "the 200 lists one binding:\n{ok}"
    );
    common::wait_until("one binding on disk", T, || {
        let b = d.bindings_of("1001");
        b.len() == 1 && b[0]["source"] == second.local.to_string()
    });
    let b = d.bindings_of("1001");
    assert_eq!(b[0]["reg_id"], "1", "{b:?}");
    assert_eq!(b[0]["outbound"], true, "{b:?}");

    // The call comes down the new connection, never the old one.
    let mut caller = Caller::dial(d.sip_port(), "1500");
    let invite = second
        .next(T, |m| method(m) == Some("INVITE"))
        .unwrap_or_else(|| panic!("no INVITE on the new connection; sipacd:\n{}", d.stderr()));
    second.send(&response(&invite, 486, "Busy Here", &token(), None, None));
    assert!(
        first
            .next(Duration::from_secs(1), |m| method(m) == Some("INVITE"))
            .is_none(),
        "the replaced binding was offered a call"
    );
    caller.bye();
    drop((first, second));

    // Over plain TCP, an outbound flow whose connection closes is skipped
    // at once: the agent is logged out at the offer (no connect to the
    // phone's address, no ring timeout waited for).
    let contact_port = TcpListener::bind("127.0.0.1:0").unwrap();
    contact_port.set_nonblocking(true).unwrap();
    let port = contact_port.local_addr().unwrap().port();
    let tcp_flow = format!(
        "<sip:1001@127.0.0.1:{port};transport=tcp;ob>;reg-id=1;+sip.instance=\"<urn:uuid:{INSTANCE}>\""
    );
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", d.sip_port())).unwrap();
    let ok = tcp_register(&mut tcp, &tcp_flow, outbound);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    common::wait_until("the TCP binding on disk", T, || {
        d.bindings_of("1001")
            .first()
            .is_some_and(|b| b["transport"] == "tcp" && b["outbound"] == true)
    });
    drop(tcp);
    std::thread::sleep(Duration::from_millis(300));
    let gone = |l: &str| {
        l.contains("TCP connection the agent registered on is gone")
            || l.contains("TCP connection the agent registered on closed")
    };
    assert!(
        d.wait_for_log(T, gone),
        "the agent whose TCP flow closed was not logged out; sipacd:\n{}",
        d.stderr()
    );
    assert!(
        contact_port.accept().is_err(),
        "sipacd connected to the phone's address instead of skipping the flow"
    );

    // Registered again on a new connection: usable again, offered the call.
    let mut again = std::net::TcpStream::connect(("127.0.0.1", d.sip_port())).unwrap();
    let ok = tcp_register(&mut again, &tcp_flow, outbound);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    // Logged out at the close, so the caller comes now (a queue with no
    // agent logged in would turn it away).
    let _caller = Caller::dial(d.sip_port(), "1500");
    use std::io::Read;
    again.set_read_timeout(Some(T)).unwrap();
    let mut text = String::new();
    while !text.contains("INVITE sip:1001@") {
        let mut chunk = [0u8; 4096];
        let n = again
            .read(&mut chunk)
            .expect("an offer down the new TCP flow");
        assert!(n > 0, "closed before the offer");
        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}
