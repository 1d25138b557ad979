//! A caller and an agent, both plain UDP sockets in this test, bridged by
//! the running daemon: RTP sent by either side reaches the other through
//! sipacd's two media legs (symmetric RTP, no packet of the caller's ever
//! goes straight to the agent).

mod common;

use common::sip::{header, method, status_code};
use common::{ConfigSpec, Daemon};
use sipacd::media::g711::{linear_to_alaw, linear_to_ulaw, ALAW_TO_ULAW, ULAW_TO_ALAW};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn sock() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let p = s.local_addr().unwrap().port();
    (s, p)
}

/// Next SIP message on `s` matching `pred`, within `WAIT`.
fn expect(s: &UdpSocket, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if pred(&m) {
                return m;
            }
        }
    }
    panic!("no {what} within {WAIT:?}");
}

fn sdp(rtp_port: u16, pt: u8) -> String {
    format!("v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP {pt} 101\r\na=rtpmap:101 telephone-event/8000\r\n")
}

fn sdp_port(msg: &str) -> u16 {
    let m = msg
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("SDP with m=audio");
    m.split(' ').nth(1).unwrap().parse().unwrap()
}

fn rtp(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x80,
        pt,
        (seq >> 8) as u8,
        seq as u8,
        0,
        0,
        0,
        160,
        0x11,
        0x22,
        0x33,
        0x44,
    ];
    p.extend_from_slice(payload);
    p
}

/// The SSRC a test phone sends RTP with: its RTP port, distinct per phone.
fn ssrc_of(phone_rtp: &UdpSocket) -> u32 {
    u32::from(phone_rtp.local_addr().unwrap().port())
}

/// Sends `payload` from `from` to `to` every 40 ms, as a phone streams
/// audio, until it shows up on `at`. Returns the SSRC sipacd sent it with.
fn stream_until_heard(
    from: &UdpSocket,
    pt: u8,
    to: u16,
    at: &UdpSocket,
    payload: &[u8],
    expect: &[u8],
) -> Option<u32> {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 2048];
    at.set_read_timeout(Some(Duration::from_millis(40)))
        .unwrap();
    let mut seq = 0u16;
    while Instant::now() < deadline {
        seq += 1;
        let mut pkt = rtp(pt, seq, payload);
        pkt[8..12].copy_from_slice(&ssrc_of(from).to_be_bytes());
        from.send_to(&pkt, ("127.0.0.1", to)).unwrap();
        if let Ok((n, _)) = at.recv_from(&mut buf) {
            if n >= 12 && buf[12..n].ends_with(expect) {
                return Some(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
            }
        }
    }
    None
}

/// An RTP socket and an RTCP socket on the port above it (RFC 3550 §11),
/// as a phone has.
fn sock_pair() -> (UdpSocket, u16, UdpSocket) {
    for _ in 0..100 {
        let (rtp, port) = sock();
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port.wrapping_add(1))) {
            rtcp.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            return (rtp, port, rtcp);
        }
    }
    panic!("no two adjacent loopback ports free");
}

/// A Receiver Report with `ssrc`, one report block about `about`.
fn receiver_report(ssrc: u32, about: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&about.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0x12, 0x34, 0, 0, 0, 5]);
    p.extend_from_slice(&[0; 8]); // no SR received yet: LSR, DLSR 0
    p
}

/// The next datagram on `s` from sipacd's port `from` that `pred` accepts.
fn recv_from_port(s: &UdpSocket, from: u16, pred: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, a)) = s.recv_from(&mut buf) {
            if a.port() == from && pred(&buf[..n]) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

#[test]
fn caller_and_agent_hear_each_other_through_sipacd() {
    bridge(0, 0, false);
}

/// The caller speaks PCMU, the agent's phone only PCMA: sipacd transcodes
/// each way.
#[test]
fn pcmu_caller_and_pcma_agent_are_transcoded() {
    bridge(0, 8, false);
}

/// RTCP: Sender Reports from sipacd while the caller hears music; once
/// bridged, each phone's RTCP reaches the other phone's RTCP port
/// unchanged; malformed RTCP on either RTCP port is dropped and the call
/// goes on.
#[test]
fn rtcp_reports_then_relay_and_garbage_keeps_the_call() {
    bridge(0, 0, true);
}

/// A 20 ms frame of a 440 Hz tone in the codec of payload type `pt`.
fn tone_frame(pt: u8) -> Vec<u8> {
    (0..160)
        .map(|i| {
            let v =
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16;
            if pt == 8 {
                linear_to_alaw(v)
            } else {
                linear_to_ulaw(v)
            }
        })
        .collect()
}

/// What a frame sent in `from_pt` must look like after sipacd in `to_pt`.
fn as_received(frame: &[u8], from_pt: u8, to_pt: u8) -> Vec<u8> {
    match (from_pt, to_pt) {
        (0, 8) => frame.iter().map(|b| ULAW_TO_ALAW[*b as usize]).collect(),
        (8, 0) => frame.iter().map(|b| ALAW_TO_ULAW[*b as usize]).collect(),
        _ => frame.to_vec(),
    }
}

fn bridge(caller_pt: u8, agent_pt: u8, rtcp: bool) {
    let (agent_sip, agent_sip_port) = sock();
    let (agent_rtp, agent_rtp_port, agent_rtcp) = sock_pair();
    let (caller_sip, caller_sip_port) = sock();
    let (caller_rtp, caller_rtp_port, caller_rtcp) = sock_pair();
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[queues.bridge]\n\n[agents.3001]\ncontact = \"sip:3001@127.0.0.1:{agent_sip_port}\"\n\n[[numbers]]\nnumber = \"1900\"\nto = \"queue:bridge\"\n"
    );
    let mut d = Daemon::start_with(spec);
    let port = d.sip_port();
    let target = ("127.0.0.1", port);

    // Caller: INVITE with its RTP port.
    let body = sdp(caller_rtp_port, caller_pt);
    let invite = format!(
        "INVITE sip:1900@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{caller_sip_port};branch=z9hG4bKmb1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:5551234@127.0.0.1>;tag=cb1\r\nTo: <sip:1900@127.0.0.1>\r\nCall-ID: media-bridge-1\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:{caller_sip_port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    caller_sip.send_to(invite.as_bytes(), target).unwrap();
    let ok = expect(&caller_sip, "200 to the caller", |m| {
        status_code(m) == Some(200)
    });
    let caller_leg_port = sdp_port(&ok);
    let to = header(&ok, "To", None).unwrap().to_string();
    let ack = format!(
        "ACK sip:1900@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{caller_sip_port};branch=z9hG4bKmb2;rport\r\nMax-Forwards: 70\r\nFrom: <sip:5551234@127.0.0.1>;tag=cb1\r\nTo: {to}\r\nCall-ID: media-bridge-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    caller_sip.send_to(ack.as_bytes(), target).unwrap();

    if rtcp {
        // Music on hold is sipacd's own stream: it reports on it (RFC 3550
        // SR + SDES), from the RTCP port to the caller's RTCP port, with a
        // report block on the caller's stream that echoes the caller's SR.
        // Like a phone: RTP every 20 ms, an SR now and then (the first
        // packets may come before sipacd has bound the ports).
        let mut caller_sr = vec![0x80, 200, 0, 6];
        caller_sr.extend_from_slice(&ssrc_of(&caller_rtp).to_be_bytes());
        caller_sr.extend_from_slice(&[0xE0, 0, 0, 1, 0x5A, 0x5A, 0, 0]); // NTP
        caller_sr.extend_from_slice(&[0; 12]);
        caller_rtcp
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(12);
        let mut buf = [0u8; 2048];
        let mut seq = 0u16;
        let sr = loop {
            assert!(
                Instant::now() < deadline,
                "no Sender Report answering the caller's while it hears music"
            );
            seq += 1;
            let mut p = rtp(caller_pt, seq, &tone_frame(caller_pt));
            p[8..12].copy_from_slice(&ssrc_of(&caller_rtp).to_be_bytes());
            caller_rtp
                .send_to(&p, ("127.0.0.1", caller_leg_port))
                .unwrap();
            if seq % 10 == 1 {
                caller_rtcp
                    .send_to(&caller_sr, ("127.0.0.1", caller_leg_port + 1))
                    .unwrap();
            }
            if let Ok((n, a)) = caller_rtcp.recv_from(&mut buf) {
                // Our SRs before the caller's SR came have LSR 0.
                if a.port() == caller_leg_port + 1
                    && n >= 52
                    && buf[0] == 0x81
                    && buf[1] == 200
                    && buf[44..48] != [0; 4]
                {
                    break buf[..n].to_vec();
                }
            }
        };
        assert_eq!(sr[3] as usize, 12, "SR with one report block: 13 words");
        let block = &sr[28..52];
        assert_eq!(&block[0..4], &ssrc_of(&caller_rtp).to_be_bytes());
        let highest = u32::from_be_bytes(block[8..12].try_into().unwrap());
        assert!(
            (1..=u32::from(seq)).contains(&highest),
            "highest sequence {highest}"
        );
        assert_eq!(
            &block[16..20],
            &[0, 1, 0x5A, 0x5A],
            "LSR of the caller's SR"
        );
        assert_eq!(sr[53], 202, "SDES follows the SR");
    }

    // Agent: the offer arrives; answer with our RTP port.
    let inv = expect(&agent_sip, "INVITE to the agent", |m| {
        method(m) == Some("INVITE")
    });
    assert_eq!(header(&inv, "X-Sipacd-Queue", None), Some("bridge"));
    assert!(
        header(&inv, "From", None).unwrap().contains("5551234"),
        "{inv}"
    );
    let agent_leg_port = sdp_port(&inv);
    assert_ne!(agent_leg_port, caller_leg_port);
    let answer_body = sdp(agent_rtp_port, agent_pt);
    let line = |n: &str| header(&inv, n, None).unwrap().to_string();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=ag1\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:3001@127.0.0.1:{agent_sip_port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer_body}",
        line("Via"), line("From"), line("To"), line("Call-ID"), line("CSeq"), answer_body.len()
    );
    agent_sip.send_to(ok.as_bytes(), target).unwrap();
    expect(&agent_sip, "ACK from sipacd", |m| method(m) == Some("ACK"));

    // Audio both ways, through sipacd's legs, each in its own codec.
    let from_caller = tone_frame(caller_pt);
    let from_agent = tone_frame(agent_pt);
    let agent_hears = stream_until_heard(
        &caller_rtp,
        caller_pt,
        caller_leg_port,
        &agent_rtp,
        &from_caller,
        &as_received(&from_caller, caller_pt, agent_pt),
    )
    .expect("the agent never heard the caller");
    let caller_hears = stream_until_heard(
        &agent_rtp,
        agent_pt,
        agent_leg_port,
        &caller_rtp,
        &from_agent,
        &as_received(&from_agent, agent_pt, caller_pt),
    )
    .expect("the caller never heard the agent");

    if rtcp {
        rtcp_relayed_and_garbage_dropped(
            RtcpPhone {
                rtcp: &caller_rtcp,
                leg_rtcp_port: caller_leg_port + 1,
                ssrc: ssrc_of(&caller_rtp),
                hears: caller_hears,
            },
            RtcpPhone {
                rtcp: &agent_rtcp,
                leg_rtcp_port: agent_leg_port + 1,
                ssrc: ssrc_of(&agent_rtp),
                hears: agent_hears,
            },
        );
        // The call is still up: audio still flows both ways, no BYE.
        assert!(
            stream_until_heard(
                &caller_rtp,
                caller_pt,
                caller_leg_port,
                &agent_rtp,
                &from_caller,
                &as_received(&from_caller, caller_pt, agent_pt)
            )
            .is_some(),
            "the agent stopped hearing the caller after RTCP"
        );
        assert!(
            stream_until_heard(
                &agent_rtp,
                agent_pt,
                agent_leg_port,
                &caller_rtp,
                &from_agent,
                &as_received(&from_agent, agent_pt, caller_pt)
            )
            .is_some(),
            "the caller stopped hearing the agent after RTCP"
        );
    }

    // The caller hangs up: the agent gets BYE.
    let bye = format!(
        "BYE sip:1900@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{caller_sip_port};branch=z9hG4bKmb3;rport\r\nMax-Forwards: 70\r\nFrom: <sip:5551234@127.0.0.1>;tag=cb1\r\nTo: {to}\r\nCall-ID: media-bridge-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    caller_sip.send_to(bye.as_bytes(), target).unwrap();
    expect(&caller_sip, "200 for the BYE", |m| {
        status_code(m) == Some(200)
    });
    expect(&agent_sip, "BYE to the agent", |m| method(m) == Some("BYE"));
    assert!(d.is_alive());
}

/// One phone's side for the RTCP checks.
struct RtcpPhone<'a> {
    rtcp: &'a UdpSocket,
    /// sipacd's RTCP port on this phone's leg.
    leg_rtcp_port: u16,
    /// The SSRC the phone sends RTP with.
    ssrc: u32,
    /// The SSRC of the RTP it receives from sipacd.
    hears: u32,
}

/// Each phone's Receiver Report (about the stream it hears) reaches the
/// other phone with the SSRCs that phone knows: sent by the stream it
/// hears, about its own. An RTCP SSRC sipacd cannot place passes as it is.
/// Malformed RTCP sent first goes nowhere.
fn rtcp_relayed_and_garbage_dropped(caller: RtcpPhone, agent: RtcpPhone) {
    for (from, to) in [(&caller, &agent), (&agent, &caller)] {
        let rr = receiver_report(from.ssrc, from.hears);
        // Garbage first: truncated, wrong version, RTP, a length past the end.
        let mut lying = rr.clone();
        lying[3] = 40;
        for junk in [
            &[0x80, 201, 0][..],
            &[0x40, 201, 0, 1, 0, 0, 0, 1],
            &rtp(0, 1, &[0xFF; 160]),
            &lying,
            &[0xFF; 64],
        ] {
            from.rtcp
                .send_to(junk, ("127.0.0.1", from.leg_rtcp_port))
                .unwrap();
        }
        from.rtcp
            .send_to(&rr, ("127.0.0.1", from.leg_rtcp_port))
            .unwrap();
        let got = recv_from_port(to.rtcp, to.leg_rtcp_port, |p| p.len() >= 8 && p[1] == 201)
            .expect("RTCP not relayed");
        assert_eq!(got, receiver_report(to.hears, to.ssrc), "SSRCs as seen");
        // A phone using another SSRC for RTCP than for RTP (a mismatch).
        let odd = receiver_report(0x0DD0_0DD0, 0x0BAD_F00D);
        from.rtcp
            .send_to(&odd, ("127.0.0.1", from.leg_rtcp_port))
            .unwrap();
        let got = recv_from_port(to.rtcp, to.leg_rtcp_port, |p| p.len() >= 8 && p[1] == 201);
        assert_eq!(got, Some(odd), "unknown SSRCs pass unchanged");
    }
}

/// A caller whose phone sends no RTP for `rtp_timeout_s` is hung up with a
/// BYE that says why (RFC 3326 Reason).
#[test]
fn silent_caller_is_hung_up_after_rtp_timeout() {
    let (caller_sip, caller_sip_port) = sock();
    let (_caller_rtp, caller_rtp_port) = sock();
    let mut spec = ConfigSpec::new();
    spec.rtp_timeout_s = 1;
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let body = sdp(caller_rtp_port, 0);
    let invite = format!(
        "INVITE sip:1500@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{caller_sip_port};branch=z9hG4bKrt1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:5551234@127.0.0.1>;tag=rt1\r\nTo: <sip:1500@127.0.0.1>\r\nCall-ID: rtp-timeout-1\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:{caller_sip_port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let target = ("127.0.0.1", port);
    caller_sip.send_to(invite.as_bytes(), target).unwrap();
    let ok = expect(&caller_sip, "200 to the caller", |m| {
        status_code(m) == Some(200)
    });
    let to = header(&ok, "To", None).unwrap().to_string();
    let ack = format!(
        "ACK sip:1500@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{caller_sip_port};branch=z9hG4bKrt2;rport\r\nMax-Forwards: 70\r\nFrom: <sip:5551234@127.0.0.1>;tag=rt1\r\nTo: {to}\r\nCall-ID: rtp-timeout-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    caller_sip.send_to(ack.as_bytes(), target).unwrap();
    let started = Instant::now();
    let bye = expect(&caller_sip, "BYE after the RTP timeout", |m| {
        method(m) == Some("BYE")
    });
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "BYE too early"
    );
    assert!(
        header(&bye, "Reason", None).is_some_and(|r| r.contains("RTP timeout")),
        "{bye}"
    );
}
