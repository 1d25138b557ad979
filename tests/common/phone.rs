//! Raw-UDP phones for end-to-end routing tests: a [`Caller`] that dials a
//! number and sits in the queue, and an [`AgentPhone`] that plays an agent's
//! softphone behind a static `contact`. Each owns a SIP socket and an RTP
//! socket (so sipacd's media has somewhere to go) and answers what a phone
//! must answer (OPTIONS pings, retransmissions) by itself.
//!
//! Every wait is bounded by the timeout the test passes.

use super::sip::{call_id, digest_authorization, header, method, ok_for, status_code, token};
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long a step that must happen promptly may take (an answer, an ACK).
pub const PROMPT: Duration = Duration::from_secs(5);

fn bind() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = s.local_addr().unwrap().port();
    (s, p)
}

/// Next datagram within `timeout` (None on timeout or ICMP noise).
fn recv(sock: &UdpSocket, timeout: Duration) -> Option<(String, SocketAddr)> {
    if timeout.is_zero() {
        return None;
    }
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = vec![0u8; 65536];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) => Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            None
        }
        Err(e) => panic!("recv: {e}"),
    }
}

/// An SDP body offering or answering PCMU on `rtp`.
pub fn sdp(rtp: u16) -> String {
    format!(
        "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    )
}

/// A response to `req`: Via(s), From, Call-ID, CSeq echoed; To gets `to_tag`
/// unless it has one; optional Contact and SDP body.
fn response(
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
        let name = name.to_ascii_lowercase();
        match name.as_str() {
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

/// Sends `packets` PCMU packets (20 ms apart) with a payload of their own
/// from `rtp` to sipacd's `port` and counts those that come back
/// unchanged: with a far end that echoes what it hears (SIPp
/// `-rtp_echo`), audio went both ways through sipacd's relay. Music and
/// prompts never match.
pub fn echoed(rtp: &UdpSocket, port: u16, packets: u16) -> usize {
    const MARK: &[u8] = b"sipacd-echo-test";
    let mut got = 0;
    let mut buf = [0u8; 2048];
    rtp.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut count = |rtp: &UdpSocket| {
        while let Ok((n, _)) = rtp.recv_from(&mut buf) {
            if n > 12 && buf[12..n].starts_with(MARK) {
                got += 1;
            }
        }
    };
    for seq in 0..packets {
        let mut pkt = vec![0x80, 0x00];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        pkt.extend_from_slice(&0x5eed_u32.to_be_bytes());
        pkt.extend(MARK.iter().cycle().take(160));
        rtp.send_to(&pkt, ("127.0.0.1", port)).unwrap();
        count(rtp);
    }
    // What is still on its way back.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        count(rtp);
    }
    got
}

/// The URI inside the first `<...>` of a header value.
fn angle_uri(v: &str) -> Option<String> {
    Some(v.split('<').nth(1)?.split('>').next()?.to_string())
}

/// A caller: dials a number on the daemon, is answered (the queue's music),
/// ACKs, and later hangs up or is hung up on.
pub struct Caller {
    sock: UdpSocket,
    port: u16,
    rtp: UdpSocket,
    /// sipacd's RTP port for this call (from the 200's SDP).
    pub leg_port: Option<u16>,
    daemon: u16,
    number: String,
    pub call_id: String,
    from: String,
    to: String,
    ruri: String,
    cseq: u32,
}

impl Caller {
    /// Dials `number` on the daemon at `daemon` (its SIP port), from
    /// `sip:5551234@…`; panics unless a 200 comes within [`PROMPT`]. The 200
    /// is ACKed before returning: the caller is now in the IVR or queue.
    pub fn dial(daemon: u16, number: &str) -> Caller {
        Self::dial_from(daemon, number, "5551234")
    }

    pub fn dial_from(daemon: u16, number: &str, from_user: &str) -> Caller {
        Self::dial_as(daemon, number, from_user, format!("caller-{}", token()))
    }

    /// The same with Call-ID `cid` (which picks the daemon's shard).
    pub fn dial_as(daemon: u16, number: &str, from_user: &str, cid: String) -> Caller {
        let (sock, port) = bind();
        let (rtp, rtp_port) = bind();
        let from = format!("<sip:{from_user}@127.0.0.1:{port}>;tag={}", token());
        let body = sdp(rtp_port);
        let invite = format!(
            "INVITE sip:{number}@127.0.0.1:{daemon} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{br};rport\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: <sip:{number}@127.0.0.1:{daemon}>\r\nCall-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:{from_user}@127.0.0.1:{port}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{body}",
            br = token(),
            len = body.len(),
        );
        sock.send_to(invite.as_bytes(), ("127.0.0.1", daemon))
            .unwrap();
        let deadline = Instant::now() + PROMPT;
        let ok = loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no 200 for the call to {number} within {PROMPT:?}"));
            let Some((m, _)) = recv(&sock, left) else {
                continue;
            };
            if call_id(&m) != Some(cid.as_str()) {
                continue;
            }
            match status_code(&m) {
                Some(200) => break m,
                Some(c) if c >= 300 => panic!("call to {number} refused with {c}:\n{m}"),
                _ => {}
            }
        };
        let to = header(&ok, "To", Some("t")).unwrap().to_string();
        let ruri = header(&ok, "Contact", Some("m"))
            .and_then(angle_uri)
            .unwrap_or(format!("sip:{number}@127.0.0.1:{daemon}"));
        let leg_port = ok
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|m| m.split(' ').next()?.parse().ok());
        let c = Caller {
            sock,
            port,
            rtp,
            leg_port,
            daemon,
            number: number.to_owned(),
            call_id: cid,
            from,
            to,
            ruri,
            cseq: 1,
        };
        c.send(&c.in_dialog("ACK", 1));
        c
    }

    fn send(&self, msg: &str) {
        self.sock
            .send_to(msg.as_bytes(), ("127.0.0.1", self.daemon))
            .unwrap();
    }

    /// The caller's RTP socket (its INVITE's SDP names it).
    pub fn rtp_socket(&self) -> &UdpSocket {
        &self.rtp
    }

    /// Sends `packets` PCMU packets (20 ms apart) with a payload of their
    /// own to sipacd's leg and counts those that come back unchanged: with
    /// a far end that echoes what it hears (SIPp `-rtp_echo`), audio went
    /// both ways through sipacd's relay. Music and prompts never match.
    pub fn echoed(&self, packets: u16) -> usize {
        match self.leg_port {
            Some(port) => echoed(&self.rtp, port, packets),
            None => 0,
        }
    }

    /// Presses `keys` (0-9, `*`, `#`) as RFC 4733 telephone-events on the
    /// caller's RTP, 300 ms apart; `first` numbers the first press (each
    /// press is a new event, with a timestamp of its own).
    pub fn press(&self, keys: &str, first: u16) {
        let leg = self.leg_port.expect("sipacd's RTP port in the 200");
        for (k, key) in keys.chars().enumerate() {
            let code = match key {
                '*' => 10,
                '#' => 11,
                d => d.to_digit(10).map_or(0, |v| v as u8),
            };
            let n = first + k as u16;
            for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
                let seq = 100 + 10 * n + i as u16;
                let dur = 160u16 * (i as u16 + 1);
                let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&(8000 * u32::from(n + 1)).to_be_bytes());
                p.extend_from_slice(&[0x0D, 0xE3, 0x00, 0x02]);
                p.extend_from_slice(&[code, if end { 0x80 | 10 } else { 10 }]);
                p.extend_from_slice(&dur.to_be_bytes());
                self.rtp.send_to(&p, ("127.0.0.1", leg)).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn in_dialog(&self, method: &str, cseq: u32) -> String {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{br};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            ruri = self.ruri,
            p = self.port,
            br = token(),
            from = self.from,
            to = self.to,
            cid = self.call_id,
        )
    }

    /// The dialog's tags: (ours, sipacd's), what a `Replaces` names.
    pub fn tags(&self) -> (String, String) {
        let tag = |v: &str| {
            v.split(";tag=")
                .nth(1)
                .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
                .unwrap_or_default()
        };
        (tag(&self.from), tag(&self.to))
    }

    /// Presses `digit` by SIP INFO (`application/dtmf-relay`) and waits
    /// (bounded) for its 200; a BYE from sipacd meanwhile is answered and
    /// returned as the error.
    pub fn dtmf_info(&mut self, digit: char) -> Result<(), String> {
        self.cseq += 1;
        let cseq = self.cseq;
        let body = format!("Signal={digit}\r\nDuration=160\r\n");
        let msg = self.in_dialog("INFO", cseq).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        self.send(&msg);
        let deadline = Instant::now() + PROMPT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some((m, _)) = recv(&self.sock, left) else {
                continue;
            };
            if call_id(&m) != Some(self.call_id.as_str()) {
                continue;
            }
            if method(&m) == Some("BYE") {
                self.send(&ok_for(&m));
                return Err(format!("sipacd hung up before the INFO's answer:\n{m}"));
            }
            if header(&m, "CSeq", None) == Some(format!("{cseq} INFO").as_str()) {
                return match status_code(&m) {
                    Some(200) => Ok(()),
                    _ => Err(format!("INFO answered with:\n{m}")),
                };
            }
        }
        Err(format!("no answer to the INFO within {PROMPT:?}"))
    }

    /// Hangs up: BYE, and waits (bounded) for its 200. Panics without one.
    pub fn bye(&mut self) {
        self.cseq += 1;
        let cseq = self.cseq;
        self.send(&self.in_dialog("BYE", cseq));
        let deadline = Instant::now() + PROMPT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some((m, _)) = recv(&self.sock, left) else {
                continue;
            };
            if call_id(&m) != Some(self.call_id.as_str()) {
                continue;
            }
            if method(&m) == Some("BYE") {
                self.send(&ok_for(&m)); // crossed BYEs
            } else if status_code(&m).is_some()
                && header(&m, "CSeq", None) == Some(format!("{cseq} BYE").as_str())
            {
                assert_eq!(status_code(&m), Some(200), "BYE answered with:\n{m}");
                return;
            }
        }
        panic!("no answer to the BYE of {} within {PROMPT:?}", self.number);
    }

    /// Waits up to `timeout` for sipacd's BYE, answering it 200. Returns
    /// the BYE.
    pub fn expect_bye(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let (m, _) = recv(&self.sock, left)?;
            if call_id(&m) == Some(self.call_id.as_str()) && method(&m) == Some("BYE") {
                self.send(&ok_for(&m));
                return Some(m);
            }
        }
        None
    }
}

/// What the phone answered to a request, for its retransmissions.
type TxId = (String, String, String); // Call-ID, CSeq, top Via

fn tx_id(req: &str) -> TxId {
    let g = |n: &str, c: Option<&str>| header(req, n, c).unwrap_or_default().to_string();
    (
        g("Call-ID", Some("i")),
        g("CSeq", None),
        g("Via", Some("v")),
    )
}

/// An agent's softphone behind a static contact (`sip:ID@127.0.0.1:PORT`).
///
/// OPTIONS pings are answered 200 whenever the phone reads its socket; a
/// retransmitted request gets the phone's previous answer again; messages
/// that arrive while the test waits for something else are kept for later.
pub struct AgentPhone {
    pub id: String,
    sock: UdpSocket,
    pub port: u16,
    rtp: UdpSocket,
    daemon: Option<SocketAddr>,
    backlog: VecDeque<String>,
    answered: HashMap<TxId, String>,
    /// INVITEs already handed to the test, by Call-ID, with our To tag.
    invites: HashMap<String, (String, String)>,
}

impl AgentPhone {
    pub fn new(id: &str) -> AgentPhone {
        let (sock, port) = bind();
        let (rtp, _) = bind();
        AgentPhone {
            id: id.to_owned(),
            sock,
            port,
            rtp,
            daemon: None,
            backlog: VecDeque::new(),
            answered: HashMap::new(),
            invites: HashMap::new(),
        }
    }

    pub fn contact(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.id, self.port)
    }

    /// The phone's RTP socket (its answers' SDP names it): for tests that
    /// check what audio sipacd relays to the agent, or talk back.
    pub fn rtp_socket(&self) -> &UdpSocket {
        &self.rtp
    }

    /// The `[agents.ID]` table for this phone; `more` is extra TOML lines
    /// (skills, timezone, shift...).
    pub fn toml(&self, more: &str) -> String {
        format!(
            "\n[agents.{}]\ncontact = \"{}\"\n{more}\n",
            self.id,
            self.contact()
        )
    }

    /// Registers `contact()` as agent `id` on the daemon at `daemon` with
    /// digest authentication (MD5, qop=auth), as a softphone does; panics
    /// unless the REGISTER is accepted within [`PROMPT`].
    pub fn register(&mut self, daemon: u16, domain: &str, password: &str) {
        self.daemon = Some(SocketAddr::from(([127, 0, 0, 1], daemon)));
        let cid = format!("reg-{}", token());
        let (id, port, tag) = (self.id.clone(), self.port, token());
        let register = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:{domain} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{br};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{id}@{domain}>;tag={tag}\r\n\
                 To: <sip:{id}@{domain}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: <sip:{id}@127.0.0.1:{port}>\r\nExpires: 300\r\n{auth}\
                 Content-Length: 0\r\n\r\n",
                br = token(),
            )
        };
        let answer = |phone: &mut AgentPhone, cseq: u32| {
            let want = format!("{cseq} REGISTER");
            phone
                .next(PROMPT, |m| {
                    status_code(m).is_some_and(|c| c >= 200)
                        && header(m, "CSeq", None) == Some(want.as_str())
                })
                .unwrap_or_else(|| panic!("agent {}: no answer to REGISTER", phone.id))
        };
        self.send(&register(1, ""));
        let challenge = answer(self, 1);
        assert_eq!(status_code(&challenge), Some(401), "{challenge}");
        let auth = digest_authorization(&challenge, &id, password, &format!("sip:{domain}"));
        self.send(&register(2, &auth));
        let ok = answer(self, 2);
        assert_eq!(status_code(&ok), Some(200), "REGISTER refused:\n{ok}");
    }

    fn send(&self, msg: &str) {
        let to = self.daemon.expect("nothing received from sipacd yet");
        self.sock.send_to(msg.as_bytes(), to).unwrap();
    }

    /// Answers `req` with `resp` and remembers it for retransmissions.
    fn reply(&mut self, req: &str, resp: String) {
        self.send(&resp);
        self.answered.insert(tx_id(req), resp);
    }

    /// The next message satisfying `want` within `timeout`. Meanwhile:
    /// OPTIONS get 200, retransmissions get the previous answer again, ACKs
    /// are absorbed and anything else is kept for a later wait.
    fn next(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(i) = self.backlog.iter().position(|m| want(m)) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some((m, from)) = recv(&self.sock, left) else {
                continue;
            };
            self.daemon = Some(from);
            let is_request = method(&m).is_some();
            if is_request && method(&m) != Some("ACK") {
                if let Some(prev) = self.answered.get(&tx_id(&m)) {
                    let prev = prev.clone();
                    self.send(&prev);
                    continue;
                }
            }
            if method(&m) == Some("OPTIONS") {
                let ok = ok_for(&m);
                self.reply(&m, ok);
                continue;
            }
            if want(&m) {
                return Some(m);
            }
            if method(&m) != Some("ACK") && status_code(&m).is_none() {
                self.backlog.push_back(m);
            }
        }
        None
    }

    /// Waits up to `timeout` for a new INVITE (an offer); rings (180) and
    /// returns it. Retransmissions of INVITEs already seen are not offers.
    pub fn expect_invite(&mut self, timeout: Duration) -> Option<String> {
        let seen: Vec<String> = self.invites.keys().cloned().collect();
        let inv = self.next(timeout, |m| {
            method(m) == Some("INVITE") && !seen.iter().any(|c| Some(c.as_str()) == call_id(m))
        })?;
        let cid = call_id(&inv).unwrap_or_default().to_string();
        let tag = token();
        self.invites.insert(cid, (inv.clone(), tag.clone()));
        let ringing = response(&inv, 180, "Ringing", &tag, Some(&self.contact()), None);
        self.reply(&inv, ringing);
        Some(inv)
    }

    /// Asserts no new INVITE arrives within `window` (OPTIONS answered).
    pub fn expect_no_invite(&mut self, window: Duration, why: &str) {
        if let Some(inv) = self.expect_invite(window) {
            panic!("agent {} was offered a call {why}:\n{inv}", self.id);
        }
    }

    fn tag_of(&self, invite: &str) -> String {
        let cid = call_id(invite).unwrap_or_default();
        self.invites
            .get(cid)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(token)
    }

    /// Answers the offer 200 with SDP and waits for sipacd's ACK (panics
    /// without one within [`PROMPT`]).
    pub fn answer(&mut self, invite: &str) {
        let tag = self.tag_of(invite);
        let rtp = self.rtp.local_addr().unwrap().port();
        let ok = response(
            invite,
            200,
            "OK",
            &tag,
            Some(&self.contact()),
            Some(&sdp(rtp)),
        );
        self.reply(invite, ok);
        let cid = call_id(invite).unwrap_or_default().to_string();
        let ack = self.next(PROMPT, |m| {
            method(m) == Some("ACK") && call_id(m) == Some(cid.as_str())
        });
        assert!(ack.is_some(), "agent {}: no ACK for its 200", self.id);
    }

    /// Refuses the offer with `code` (486 Busy Here, 603 Decline...).
    pub fn refuse(&mut self, invite: &str, code: u16) {
        let tag = self.tag_of(invite);
        let reason = match code {
            486 => "Busy Here",
            603 => "Decline",
            _ => "Refused",
        };
        let resp = response(invite, code, reason, &tag, None, None);
        self.reply(invite, resp);
    }

    /// Waits for a CANCEL of an offer; answers it 200 and the INVITE 487,
    /// as a ringing phone does. Returns the CANCEL.
    pub fn expect_cancel(&mut self, timeout: Duration) -> Option<String> {
        let cancel = self.next(timeout, |m| method(m) == Some("CANCEL"))?;
        let ok = ok_for(&cancel);
        self.reply(&cancel, ok);
        let cid = call_id(&cancel).unwrap_or_default();
        if let Some((inv, tag)) = self.invites.get(cid).cloned() {
            let resp = response(&inv, 487, "Request Terminated", &tag, None, None);
            self.reply(&inv, resp);
        }
        Some(cancel)
    }

    /// Sends `method_name` (CSeq `cseq`) from the phone in the dialog the
    /// answered `invite` made, as the phone's own request (its From is the
    /// INVITE's To with our tag); `body`: none, `Some("")` for the phone's
    /// own SDP, or that SDP. Returns sipacd's final answer, ACKing a 2xx to
    /// an INVITE. Panics without one within [`PROMPT`].
    pub fn request_in_dialog(
        &mut self,
        invite: &str,
        method_name: &str,
        cseq: u32,
        body: Option<&str>,
    ) -> String {
        self.request_in_dialog_with(invite, method_name, cseq, body, "")
    }

    /// The same with `extra` header lines (each ending in CRLF), e.g. a
    /// REFER's `Refer-To`.
    pub fn request_in_dialog_with(
        &mut self,
        invite: &str,
        method_name: &str,
        cseq: u32,
        body: Option<&str>,
        extra: &str,
    ) -> String {
        let tag = self.tag_of(invite);
        let g = |n: &str, c: Option<&str>| header(invite, n, c).unwrap_or_default().to_string();
        let target = header(invite, "Contact", Some("m"))
            .and_then(angle_uri)
            .expect("sipacd's INVITE has a Contact");
        let (from, to, cid) = (
            format!("{};tag={tag}", g("To", Some("t"))),
            g("From", Some("f")),
            g("Call-ID", Some("i")),
        );
        let (port, contact) = (self.port, self.contact());
        let request = |m: &str, n: u32, body: Option<&str>| {
            let (ctype, body) = match body {
                Some(b) => ("Content-Type: application/sdp\r\n", b),
                None => ("", ""),
            };
            format!(
                "{m} {target} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{br};rport\r\n\
                 Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
                 CSeq: {n} {m}\r\nContact: <{contact}>\r\n{extra}{ctype}Content-Length: {len}\r\n\r\n{body}",
                p = port,
                br = token(),
                len = body.len(),
            )
        };
        let sdp_body = body.map(|b| {
            if b.is_empty() {
                sdp(self.rtp.local_addr().unwrap().port())
            } else {
                b.to_owned()
            }
        });
        self.send(&request(method_name, cseq, sdp_body.as_deref()));
        let want = format!("{cseq} {method_name}");
        let resp = self
            .next(PROMPT, |m| {
                status_code(m).is_some_and(|c| c >= 200)
                    && header(m, "CSeq", None) == Some(want.as_str())
            })
            .unwrap_or_else(|| panic!("{}: no answer to its {method_name}", self.id));
        if method_name == "INVITE" && status_code(&resp).is_some_and(|c| c < 300) {
            self.send(&request("ACK", cseq, None));
        }
        resp
    }

    /// Waits for a BYE and answers it 200. Returns the BYE.
    pub fn expect_bye(&mut self, timeout: Duration) -> Option<String> {
        self.expect_request(timeout, |m| method(m) == Some("BYE"))
    }

    /// Waits for a request `want` accepts (a NOTIFY with some sipfrag...)
    /// and answers it 200. Returns it.
    pub fn expect_request(
        &mut self,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let req = self.next(timeout, |m| method(m).is_some() && want(m))?;
        let ok = ok_for(&req);
        self.reply(&req, ok);
        Some(req)
    }
}
