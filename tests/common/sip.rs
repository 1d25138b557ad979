//! Raw-UDP SIP helpers for small checks (readiness, reload, torture) where a
//! SIPp scenario would be heavier than the check itself.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A unique token for branches, tags and Call-IDs.
pub fn token() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The status code of a response, None for a request or garbage.
pub fn status_code(msg: &str) -> Option<u16> {
    let first = msg.lines().next()?;
    let rest = first.strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

/// The method of a request, None for a response.
pub fn method(msg: &str) -> Option<&str> {
    let first = msg.lines().next()?;
    if first.starts_with("SIP/") {
        return None;
    }
    first.split(' ').next()
}

/// First value of a header (long or compact name), case-insensitive.
pub fn header<'a>(msg: &'a str, name: &str, compact: Option<&str>) -> Option<&'a str> {
    for line in msg.split('\n').skip(1) {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let n = n.trim();
        if n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)) {
            return Some(v.trim());
        }
    }
    None
}

pub fn call_id(msg: &str) -> Option<&str> {
    header(msg, "Call-ID", Some("i"))
}

/// A UDP user agent on an ephemeral loopback port.
pub struct Uac {
    pub sock: UdpSocket,
    pub port: u16,
    pub target: u16,
}

impl Uac {
    pub fn new(target: u16) -> Uac {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        Uac { sock, port, target }
    }

    pub fn send(&self, msg: &[u8]) {
        self.sock.send_to(msg, ("127.0.0.1", self.target)).unwrap();
    }

    /// Next datagram within `timeout`, as (lossy) text.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        if timeout.is_zero() {
            return None;
        }
        let mut buf = vec![0u8; 65536];
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                None
            }
            // ICMP port unreachable from an earlier send, on Linux: not fatal.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => None,
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// Every datagram received within `window`.
    pub fn drain(&self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(m) => out.push(m),
                None => break,
            }
        }
        out
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK{branch};rport",
            self.port
        )
    }

    /// An out-of-dialog request with no body.
    pub fn request(&self, method: &str, user: &str, call_id: &str, cseq: u32) -> String {
        let t = self.target;
        format!(
            "{method} sip:{user}@127.0.0.1:{t} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
             From: <sip:test@127.0.0.1:{p}>;tag={tag}\r\nTo: <sip:{user}@127.0.0.1:{t}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:test@127.0.0.1:{p}>\r\nContent-Length: 0\r\n\r\n",
            via = self.via(&token()),
            p = self.port,
            tag = token(),
        )
    }

    /// Sends OPTIONS and returns the final status code, if any came in time.
    pub fn options(&self, timeout: Duration) -> Option<u16> {
        let cid = format!("opt-{}", token());
        self.send(self.request("OPTIONS", "ping", &cid, 1).as_bytes());
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let m = self.recv(left)?;
            if call_id(&m) == Some(cid.as_str()) {
                if let Some(c) = status_code(&m).filter(|c| *c >= 200) {
                    return Some(c);
                }
            }
        }
        None
    }

    /// Places an INVITE to `number` and sees it through: returns every status
    /// code received for it (provisionals first). A 2xx is ACKed and the call
    /// ended with BYE (a BYE from the daemon is answered 200); a non-2xx is
    /// ACKed as RFC 3261 §17.1.1.3 says.
    pub fn invite(&self, number: &str, timeout: Duration) -> Vec<u16> {
        self.invite_with(number, timeout, true)
    }

    /// As [`Uac::invite`]; with `hang_up` false a 2xx is ACKed and the call
    /// left up (for drain tests).
    pub fn invite_with(&self, number: &str, timeout: Duration, hang_up: bool) -> Vec<u16> {
        let t = self.target;
        let p = self.port;
        let branch = token();
        let from_tag = token();
        let cid = format!("inv-{}", token());
        let sdp = format!(
            "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n",
            rtp = p + 1,
        );
        let from = format!("From: <sip:caller@127.0.0.1:{p}>;tag={from_tag}");
        let invite = format!(
            "INVITE sip:{number}@127.0.0.1:{t} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
             {from}\r\nTo: <sip:{number}@127.0.0.1:{t}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:caller@127.0.0.1:{p}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            via = self.via(&branch),
            len = sdp.len(),
        );
        self.send(invite.as_bytes());

        let mut codes = Vec::new();
        let deadline = Instant::now() + timeout;
        let final_msg = loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return codes;
            };
            let Some(m) = self.recv(left) else {
                return codes;
            };
            if call_id(&m) != Some(cid.as_str()) {
                continue;
            }
            if let Some(c) = status_code(&m) {
                codes.push(c);
                if c >= 200 {
                    break m;
                }
            }
        };
        let to = header(&final_msg, "To", Some("t"))
            .unwrap_or_default()
            .to_string();
        let code = *codes.last().unwrap();
        if code >= 300 {
            // ACK for a non-2xx: same branch, the To of the response.
            let ack = format!(
                "ACK sip:{number}@127.0.0.1:{t} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\n\
                 To: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                via = self.via(&branch),
            );
            self.send(ack.as_bytes());
            return codes;
        }
        // 2xx: ACK and BYE go to the Contact, a new transaction each.
        let ruri = header(&final_msg, "Contact", Some("m"))
            .and_then(|c| Some(c.split('<').nth(1)?.split('>').next()?.to_string()))
            .unwrap_or(format!("sip:{number}@127.0.0.1:{t}"));
        let ack = format!(
            "ACK {ruri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\nTo: {to}\r\n\
             Call-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            via = self.via(&token()),
        );
        self.send(ack.as_bytes());
        if !hang_up {
            return codes;
        }
        let bye = format!(
            "BYE {ruri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\nTo: {to}\r\n\
             Call-ID: {cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            via = self.via(&token()),
        );
        self.send(bye.as_bytes());
        // Answer a BYE from the daemon, wait for the answer to ours.
        let end = Instant::now() + Duration::from_secs(3);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Some(m) = self.recv(left) else { break };
            if call_id(&m) != Some(cid.as_str()) {
                continue;
            }
            if method(&m) == Some("BYE") {
                self.send(ok_for(&m).as_bytes());
            } else if status_code(&m).is_some()
                && header(&m, "CSeq", None).is_some_and(|c| c.ends_with("BYE"))
            {
                break;
            }
        }
        codes
    }
}

/// A 200 OK for `req`, echoing Via, From, To, Call-ID and CSeq.
pub fn ok_for(req: &str) -> String {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in req.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        ) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// One OPTIONS from a fresh socket: the final status code, if any in time.
pub fn options_status(port: u16, timeout: Duration) -> Option<u16> {
    Uac::new(port).options(timeout)
}

/// The `Authorization` header line (CRLF included) answering the MD5
/// challenge in the 401 `challenge` for user `id` with `password`, for a
/// REGISTER to `uri`.
pub fn digest_authorization(challenge: &str, id: &str, password: &str, uri: &str) -> String {
    use md5::{Digest as _, Md5};
    let hex = |s: String| format!("{:x}", Md5::digest(s.as_bytes()));
    // Of the challenges (one per algorithm), the MD5 one.
    let www = challenge
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate:"))
        .map(str::trim)
        .find(|v| !v.contains("algorithm=") || v.contains("algorithm=MD5,"))
        .unwrap_or_else(|| panic!("no MD5 challenge:\n{challenge}"));
    let param = |name: &str| {
        www.split(',')
            .map(|p| p.trim().trim_start_matches("Digest ").trim())
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    let realm = param("realm").expect("realm");
    let nonce = param("nonce").expect("nonce");
    let cnonce = token();
    let ha1 = hex(format!("{id}:{realm}:{password}"));
    let ha2 = hex(format!("REGISTER:{uri}"));
    let response = hex(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    let mut auth = format!(
        "Authorization: Digest username=\"{id}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
         cnonce=\"{cnonce}\""
    );
    if let Some(opaque) = param("opaque") {
        auth.push_str(&format!(", opaque=\"{opaque}\""));
    }
    auth.push_str("\r\n");
    auth
}
