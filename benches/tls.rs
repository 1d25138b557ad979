//! What SIP over TLS costs next to TCP, printed (not asserted), over
//! loopback sockets with the daemon's own TLS server configuration
//! (`config::tls::server_config`: rustls with ring, TLS 1.3, an ECDSA
//! P-256 certificate made here):
//!
//! * `connect + call`: a phone connects (TCP, or TCP and a TLS handshake)
//!   and one routed call's agent leg crosses it: sipacd's INVITE, the
//!   phone's 180 and 200 with SDP, sipacd's ACK and BYE, the phone's 200;
//! * `call on an open flow`: the same messages on a connection already up
//!   (the usual case: an agent's calls go down the connection it
//!   registered on, so the handshake is paid once per registration).
//!
//! Each figure is wall time per call for both ends on one thread of a
//! current-thread runtime (client and server share it, as a loaded
//! daemon's worker would its connections).
//!
//! `cargo bench --bench tls` (`TLS_BENCH_CALLS` sets the count, default
//! 2,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use sipacd::config::tls::{server_config, TlsFiles};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const INVITE: &str = "INVITE sip:1001@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK0123456789abcdef;rport\r\n\
Max-Forwards: 70\r\nFrom: \"5551234\" <sip:5551234@bench.local>;tag=0123456789abcdef\r\n\
To: <sip:1001@bench.local>\r\nCall-ID: 0123456789abcdef-0@127.0.0.1\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:sipacd@127.0.0.1:5061;transport=tls>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\nSupported: timer, replaces\r\n\
X-Sipacd-Queue: support\r\nX-Sipacd-Wait: 3\r\nContent-Type: application/sdp\r\n\
Content-Length: 190\r\n\r\n\
v=0\r\no=sipacd 10000 1 IN IP4 127.0.0.1\r\ns=sipacd\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn answer(code: &str, sdp: bool) -> String {
    let body = if sdp {
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    } else {
        ""
    };
    format!(
        "SIP/2.0 {code}\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK0123456789abcdef;rport\r\n\
         From: \"5551234\" <sip:5551234@bench.local>;tag=0123456789abcdef\r\n\
         To: <sip:1001@bench.local>;tag=fedcba9876543210\r\n\
         Call-ID: 0123456789abcdef-0@127.0.0.1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:1001@127.0.0.1:40000;transport=tls>\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The messages of one agent leg: (sent by sipacd?, bytes).
fn call() -> Vec<(bool, Vec<u8>)> {
    let ack = INVITE.replacen("INVITE sip", "ACK sip", 1);
    let bye = INVITE.replacen("INVITE sip", "BYE sip", 1);
    vec![
        (true, INVITE.as_bytes().to_vec()),
        (false, answer("180 Ringing", false).into_bytes()),
        (false, answer("200 OK", true).into_bytes()),
        (true, ack.into_bytes()),
        (true, bye.into_bytes()),
        (false, answer("200 OK", false).into_bytes()),
    ]
}

/// One call across `server` (sipacd) and `phone`: each message written by
/// one end, flushed and read whole by the other.
async fn one_call<S, P>(server: &mut S, phone: &mut P, msgs: &[(bool, Vec<u8>)], buf: &mut [u8])
where
    S: AsyncRead + AsyncWrite + Unpin,
    P: AsyncRead + AsyncWrite + Unpin,
{
    for (ours, m) in msgs {
        let read = &mut buf[..m.len()];
        if *ours {
            let (w, r) = tokio::join!(
                async {
                    server.write_all(m).await?;
                    server.flush().await
                },
                phone.read_exact(read)
            );
            w.and(r.map(drop)).expect("message across");
        } else {
            let (w, r) = tokio::join!(
                async {
                    phone.write_all(m).await?;
                    phone.flush().await
                },
                server.read_exact(read)
            );
            w.and(r.map(drop)).expect("message across");
        }
    }
}

struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    _dir: tempfile::TempDir,
}

fn tls() -> Tls {
    let dir = tempfile::tempdir().expect("dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let files = TlsFiles {
        cert: dir.path().join("c.crt"),
        key: dir.path().join("c.key"),
    };
    std::fs::write(&files.cert, cert.pem()).expect("write");
    std::fs::write(&files.key, key.serialize_pem()).expect("write");
    let server = server_config(&files).expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Tls {
        acceptor: TlsAcceptor::from(server),
        connector: TlsConnector::from(Arc::new(client)),
        _dir: dir,
    }
}

async fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = l.local_addr().expect("addr");
    let (a, b) = tokio::join!(l.accept(), TcpStream::connect(addr));
    let (server, _) = a.expect("accept");
    let phone = b.expect("connect");
    server.set_nodelay(true).expect("nodelay");
    phone.set_nodelay(true).expect("nodelay");
    (server, phone)
}

fn per_call(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

async fn run(n: usize) {
    let msgs = call();
    let mut buf = vec![0u8; 4096];
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let t = tls();
    let name = ServerName::try_from("localhost").expect("name");

    let start = Instant::now();
    for _ in 0..n {
        let (mut s, mut p) = pair(&l).await;
        one_call(&mut s, &mut p, &msgs, &mut buf).await;
    }
    let tcp_fresh = per_call(start.elapsed(), n);

    let start = Instant::now();
    for _ in 0..n {
        let (s, p) = pair(&l).await;
        let (s, p) = tokio::join!(t.acceptor.accept(s), t.connector.connect(name.clone(), p));
        let (mut s, mut p) = (s.expect("server handshake"), p.expect("client handshake"));
        one_call(&mut s, &mut p, &msgs, &mut buf).await;
    }
    let tls_fresh = per_call(start.elapsed(), n);

    let (mut s, mut p) = pair(&l).await;
    let start = Instant::now();
    for _ in 0..n {
        one_call(&mut s, &mut p, &msgs, &mut buf).await;
    }
    let tcp_open = per_call(start.elapsed(), n);

    let (s, p) = pair(&l).await;
    let (s, p) = tokio::join!(t.acceptor.accept(s), t.connector.connect(name.clone(), p));
    let (mut s, mut p) = (s.expect("server handshake"), p.expect("client handshake"));
    let start = Instant::now();
    for _ in 0..n {
        one_call(&mut s, &mut p, &msgs, &mut buf).await;
    }
    let tls_open = per_call(start.elapsed(), n);

    let bytes: usize = msgs.iter().map(|(_, m)| m.len()).sum();
    println!(
        "tls bench: {n} calls, {} messages ({bytes} bytes) per call",
        msgs.len()
    );
    println!(
        "  connect + call:        TCP {tcp_fresh:8.1} us   TLS {tls_fresh:8.1} us   TLS adds {:8.1} us ({:.1}x)",
        tls_fresh - tcp_fresh,
        tls_fresh / tcp_fresh
    );
    println!(
        "  call on an open flow:  TCP {tcp_open:8.1} us   TLS {tls_open:8.1} us   TLS adds {:8.1} us ({:.2}x)",
        tls_open - tcp_open,
        tls_open / tcp_open
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it small.
    let n = if std::env::args().any(|a| a == "--bench") {
        std::env::var("TLS_BENCH_CALLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000)
    } else {
        20
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n));
}
