//! SIP over TLS for the tests: a certificate authority and server
//! certificates made at test time (rcgen), and [`TlsAgent`], an agent's
//! phone speaking SIP over one TLS connection it opens itself (rustls,
//! blocking). It listens on no port at all: whatever reaches it came down
//! the connection it registered on.
//!
//! Every wait is bounded by the timeout the test passes.

use super::sip::{digest_authorization, header, method, status_code, token};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A certificate authority in a directory, issuing server certificates for
/// `localhost` and `127.0.0.1`.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("sipacd-pki-")
            .tempdir()
            .unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sipacd test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    /// The CA certificate's PEM file (for phones that verify).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Issues a server certificate and writes `NAME.crt` (the chain: leaf,
    /// then the CA) and `NAME.key`; returns both paths and the leaf (DER).
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let leaf = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let crt = self.dir.path().join(format!("{name}.crt"));
        let keyp = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&crt, format!("{}{}", leaf.pem(), self.ca.pem())).unwrap();
        std::fs::write(&keyp, key.serialize_pem()).unwrap();
        (crt, keyp, leaf.der().to_vec())
    }

    /// The `[server]` lines naming a certificate and key.
    pub fn server_lines(cert: &Path, key: &Path) -> String {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        )
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// What came down the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    Message(String),
    /// A bare CRLF: the answer to a CRLFCRLF keep-alive (RFC 5626 §3.5.1).
    Pong,
}

/// An agent's phone on one TLS connection to the daemon.
pub struct TlsAgent {
    pub id: String,
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
    /// The connection's local address (what the daemon sees as the source).
    pub local: SocketAddr,
}

impl TlsAgent {
    /// Opens a TLS connection to `port`, verifying the daemon's certificate
    /// for `127.0.0.1` against `pki`'s CA; panics if the handshake fails.
    pub fn connect(id: &str, port: u16, pki: &Pki) -> TlsAgent {
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let local = tcp.local_addr().unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(pki.client_config(), name).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream
            .sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .unwrap_or_else(|e| panic!("TLS handshake with sipacd failed: {e}"));
        }
        TlsAgent {
            id: id.to_string(),
            stream,
            buf: Vec::new(),
            local,
        }
    }

    /// The daemon's leaf certificate as it was presented.
    pub fn peer_leaf(&self) -> Vec<u8> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c: &CertificateDer| c.to_vec())
            .unwrap_or_default()
    }

    pub fn send(&mut self, msg: &str) {
        self.stream.write_all(msg.as_bytes()).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next message or pong within `timeout`; None on timeout or when
    /// the daemon closed the connection.
    pub fn recv(&mut self, timeout: Duration) -> Option<Got> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(got) = self.frame() {
                return Some(got);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    /// One frame off the buffer: CRLFs alone are a pong, else a message
    /// by its Content-Length.
    fn frame(&mut self) -> Option<Got> {
        let crlfs = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if crlfs > 0 {
            self.buf.drain(..crlfs);
            return Some(Got::Pong);
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        let end = text.find("\r\n\r\n")?;
        let len: usize = header(&text[..end + 2], "Content-Length", Some("l"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let total = end + 4 + len;
        if self.buf.len() < total {
            return None;
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        Some(Got::Message(String::from_utf8_lossy(&msg).into_owned()))
    }

    /// The next message satisfying `want` within `timeout`; OPTIONS are
    /// answered 200 and pongs skipped meanwhile.
    pub fn next(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.recv(left)? {
                Got::Pong => {}
                Got::Message(m) if method(&m) == Some("OPTIONS") => {
                    let ok = response(&m, 200, "OK", &token(), None, None);
                    self.send(&ok);
                }
                Got::Message(m) if want(&m) => return Some(m),
                Got::Message(_) => {}
            }
        }
    }

    /// Registers `contact` for this agent with digest (MD5, qop=auth) over
    /// the connection; returns the final answer to the authenticated
    /// REGISTER. `extra` is more header lines (each ending in CRLF).
    pub fn register(&mut self, domain: &str, password: &str, contact: &str, extra: &str) -> String {
        let cid = format!("reg-{}", token());
        let (id, local, tag) = (self.id.clone(), self.local, token());
        let register = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sips:{domain} SIP/2.0\r\n\
                 Via: SIP/2.0/TLS {local};branch=z9hG4bK{br};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sips:{id}@{domain}>;tag={tag}\r\n\
                 To: <sips:{id}@{domain}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: {contact}\r\nExpires: 300\r\n{extra}{auth}\
                 Content-Length: 0\r\n\r\n",
                br = token(),
            )
        };
        let final_for = |agent: &mut TlsAgent, cseq: u32| {
            let want = format!("{cseq} REGISTER");
            agent
                .next(Duration::from_secs(5), |m| {
                    status_code(m).is_some_and(|c| c >= 200)
                        && header(m, "CSeq", None) == Some(want.as_str())
                })
                .unwrap_or_else(|| panic!("agent {}: no answer to REGISTER over TLS", agent.id))
        };
        self.send(&register(1, ""));
        let challenge = final_for(self, 1);
        assert_eq!(status_code(&challenge), Some(401), "{challenge}");
        let auth = digest_authorization(&challenge, &id, password, &format!("sips:{domain}"));
        self.send(&register(2, &auth));
        final_for(self, 2)
    }
}

/// A response to `req`: Via(s), From, Call-ID, CSeq echoed; To gets `to_tag`
/// unless it has one; optional Contact and SDP body.
pub fn response(
    req: &str,
    code: u16,
    reason: &str,
    to_tag: &str,
    contact: Option<&str>,
    body: Option<&str>,
) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in req.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        let name = line.split(':').next().unwrap_or("").trim();
        match name.to_ascii_lowercase().as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" | "t" => {
                out.push_str(line);
                if !line.contains(";tag=") {
                    out.push_str(&format!(";tag={to_tag}"));
                }
                out.push_str("\r\n");
            }
            _ => {}
        }
    }
    if let Some(c) = contact {
        out.push_str(&format!("Contact: <{c}>\r\n"));
    }
    match body {
        Some(b) => out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out
}
