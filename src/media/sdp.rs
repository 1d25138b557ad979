//! SDP offer/answer (RFC 4566, RFC 3264) for audio legs: G.711 PCMU and PCMA
//! plus RFC 4733 telephone-event, ptime 20.

use std::fmt::Write as _;
use std::net::IpAddr;

use thiserror::Error;

use crate::media::crypto_attr::CryptoAttr;

pub const PT_PCMU: u8 = 0;
pub const PT_PCMA: u8 = 8;
/// Payload type we offer for telephone-event when we make the offer.
pub const PT_TELEPHONE_EVENT: u8 = 101;

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpError {
    #[error("no audio stream in the offer")]
    NoAudio,
    #[error("no common codec (we accept PCMU and PCMA)")]
    NoCommonCodec,
    #[error("malformed SDP line: {0}")]
    Malformed(String),
}

/// Media direction attribute (RFC 3264 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// What we answer to the peer's direction.
    fn mirrored(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }
}

/// What we need from a peer's offer (or answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpOffer {
    /// Connection address (`c=`), session or media level; None for 0.0.0.0
    /// hold-style offers.
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// Payload types on the audio `m=` line, in the peer's preference order.
    pub payloads: Vec<u8>,
    /// The peer's payload type for telephone-event/8000, if any.
    pub telephone_event: Option<u8>,
    pub direction: Direction,
    /// The `m=` line's profile is `RTP/SAVP` (or `RTP/SAVPF`): SRTP only.
    pub secure: bool,
    /// The audio stream's `a=crypto` lines we can use, in the peer's
    /// order (lines with other suites, MKIs or session parameters are left
    /// out).
    pub crypto: Vec<CryptoAttr>,
}

impl SdpOffer {
    /// Parses the first audio stream of an SDP body. Lenient about lines
    /// we do not use; strict about the ones we do.
    pub fn parse(body: &[u8]) -> Result<SdpOffer, SdpError> {
        let text =
            std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8".into()))?;
        let mut session_addr = None;
        let mut media_addr = None;
        let mut session_dir = Direction::SendRecv;
        let mut media_dir = None;
        let mut audio: Option<(u16, Vec<u8>)> = None;
        let mut telephone_event = None;
        let mut secure = false;
        let mut crypto = Vec::new();
        let mut in_audio = false;
        let mut seen_audio = false;
        for line in text.lines() {
            let line = line.trim_end();
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match kind {
                "m" => {
                    in_audio = false;
                    if seen_audio {
                        continue; // only the first audio stream matters
                    }
                    let mut parts = value.split_whitespace();
                    if parts.next() != Some("audio") {
                        continue;
                    }
                    let port = parts
                        .next()
                        .and_then(|p| p.split('/').next())
                        .and_then(|p| p.parse::<u16>().ok())
                        .ok_or_else(|| SdpError::Malformed(line.into()))?;
                    let proto = parts.next().unwrap_or("");
                    secure = proto.eq_ignore_ascii_case("RTP/SAVP")
                        || proto.eq_ignore_ascii_case("RTP/SAVPF");
                    let payloads = parts.filter_map(|p| p.parse::<u8>().ok()).collect();
                    audio = Some((port, payloads));
                    in_audio = true;
                    seen_audio = true;
                }
                "c" => {
                    let addr = value
                        .split_whitespace()
                        .nth(2)
                        .map(|a| a.split('/').next().unwrap_or(a))
                        .and_then(|a| a.parse::<IpAddr>().ok())
                        .ok_or_else(|| SdpError::Malformed(line.into()))?;
                    let addr = (!addr.is_unspecified()).then_some(addr);
                    if in_audio {
                        media_addr = Some(addr);
                    } else if !seen_audio {
                        session_addr = Some(addr);
                    }
                }
                "a" => {
                    let dir = match value {
                        "sendrecv" => Some(Direction::SendRecv),
                        "sendonly" => Some(Direction::SendOnly),
                        "recvonly" => Some(Direction::RecvOnly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    if let Some(dir) = dir {
                        if in_audio {
                            media_dir = Some(dir);
                        } else if !seen_audio {
                            session_dir = dir;
                        }
                    } else if in_audio {
                        if let Some(rest) = value.strip_prefix("crypto:") {
                            // Unusable lines are skipped: another may do.
                            if let Ok(c) = CryptoAttr::parse(rest) {
                                crypto.push(c);
                            }
                        } else if let Some(rest) = value.strip_prefix("rtpmap:") {
                            let mut it = rest.split_whitespace();
                            let pt = it.next().and_then(|p| p.parse::<u8>().ok());
                            let enc = it.next().unwrap_or("");
                            if enc.eq_ignore_ascii_case("telephone-event/8000") {
                                telephone_event = pt;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let (port, payloads) = audio.ok_or(SdpError::NoAudio)?;
        Ok(SdpOffer {
            addr: media_addr.or(session_addr).flatten(),
            port,
            payloads,
            telephone_event,
            direction: media_dir.unwrap_or(session_dir),
            secure,
            crypto,
        })
    }

    /// The G.711 codec we will use: the first of PCMU/PCMA in the peer's
    /// order.
    pub fn chosen_codec(&self) -> Option<u8> {
        self.payloads
            .iter()
            .copied()
            .find(|pt| *pt == PT_PCMU || *pt == PT_PCMA)
    }
}

/// Session identity for the `o=` line; the version goes up on every new
/// offer or answer of the same session (RFC 3264 §8).
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub session_id: u64,
    pub version: u64,
}

/// Builds our answer to `offer`, listening on `addr:port`.
pub fn answer(
    offer: &SdpOffer,
    addr: IpAddr,
    port: u16,
    origin: Origin,
) -> Result<String, SdpError> {
    answer_with(offer, addr, port, origin, None)
}

/// [`answer`] with our `a=crypto` line for an SRTP leg: the profile is
/// then the offer's (RFC 4568 §7.1.2 keeps it), `RTP/SAVP` or `RTP/AVP`.
pub fn answer_with(
    offer: &SdpOffer,
    addr: IpAddr,
    port: u16,
    origin: Origin,
    crypto: Option<&CryptoAttr>,
) -> Result<String, SdpError> {
    let codec = offer.chosen_codec().ok_or(SdpError::NoCommonCodec)?;
    let te = offer.telephone_event;
    // A rejected stream (port 0) is answered with port 0 too (RFC 3264 §6).
    let port = if offer.port == 0 { 0 } else { port };
    Ok(render(
        addr,
        port,
        codec,
        None,
        te,
        origin,
        Stream {
            dir: offer.direction.mirrored(),
            savp: crypto.is_some() && offer.secure,
            crypto: crypto.map(std::slice::from_ref).unwrap_or(&[]),
        },
    ))
}

/// Our own offer (for a late-offer INVITE or an INVITE we send to an agent):
/// PCMU, PCMA and telephone-event.
pub fn offer(addr: IpAddr, port: u16, origin: Origin) -> String {
    offer_with(addr, port, origin, false, &[])
}

/// [`offer`] with `a=crypto` lines, under `RTP/SAVP` if `savp` (SRTP
/// required) or `RTP/AVP` (SRTP if the answer takes it).
pub fn offer_with(
    addr: IpAddr,
    port: u16,
    origin: Origin,
    savp: bool,
    crypto: &[CryptoAttr],
) -> String {
    render(
        addr,
        port,
        PT_PCMU,
        Some(PT_PCMA),
        Some(PT_TELEPHONE_EVENT),
        origin,
        Stream {
            dir: Direction::SendRecv,
            savp,
            crypto,
        },
    )
}

/// The stream's direction, profile and key lines.
struct Stream<'a> {
    dir: Direction,
    savp: bool,
    crypto: &'a [CryptoAttr],
}

fn render(
    addr: IpAddr,
    port: u16,
    codec: u8,
    second: Option<u8>,
    te: Option<u8>,
    origin: Origin,
    sec: Stream<'_>,
) -> String {
    let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts = vec![codec];
    pts.extend(second);
    pts.extend(te);
    let pts: Vec<String> = pts.iter().map(u8::to_string).collect();
    let mut s = String::with_capacity(300);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\no=sipacd {} {} IN {ip} {addr}\r\ns=sipacd\r\nc=IN {ip} {addr}\r\nt=0 0\r\nm=audio {port} {} {}\r\n",
        origin.session_id,
        origin.version,
        if sec.savp { "RTP/SAVP" } else { "RTP/AVP" },
        pts.join(" ")
    );
    for pt in [Some(codec), second].into_iter().flatten() {
        let name = if pt == PT_PCMA { "PCMA" } else { "PCMU" };
        let _ = write!(s, "a=rtpmap:{pt} {name}/8000\r\n");
    }
    if let Some(te) = te {
        let _ = write!(
            s,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    let _ = write!(s, "a=ptime:20\r\na={}\r\n", sec.dir.attr());
    for c in sec.crypto {
        let _ = write!(s, "a=crypto:{}\r\n", c.value());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    fn origin() -> Origin {
        Origin {
            session_id: 7,
            version: 1,
        }
    }

    #[test]
    fn parses_an_offer() {
        let o = SdpOffer::parse(SIPP_OFFER.as_bytes()).unwrap();
        assert_eq!(o.port, 6000);
        assert_eq!(o.addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(o.payloads, vec![8, 0, 101]);
        assert_eq!(o.telephone_event, Some(101));
        assert_eq!(o.chosen_codec(), Some(PT_PCMA));
        assert_eq!(o.direction, Direction::SendRecv);
    }

    #[test]
    fn answer_keeps_peer_order_and_event_type() {
        let o = SdpOffer::parse(SIPP_OFFER.as_bytes()).unwrap();
        let a = answer(&o, "127.0.0.1".parse().unwrap(), 20000, origin()).unwrap();
        assert!(a.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:8 PCMA/8000"));
        assert!(a.contains("a=rtpmap:101 telephone-event/8000"));
        assert!(a.contains("c=IN IP4 127.0.0.1"));
        assert!(a.contains("a=sendrecv"));
        // Our answer parses back as an offer would.
        let back = SdpOffer::parse(a.as_bytes()).unwrap();
        assert_eq!(back.port, 20000);
        assert_eq!(back.telephone_event, Some(101));
    }

    #[test]
    fn hold_offer_is_mirrored() {
        let hold = SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0") + "a=sendonly\r\n";
        let o = SdpOffer::parse(hold.as_bytes()).unwrap();
        assert_eq!(o.addr, None);
        assert_eq!(o.direction, Direction::SendOnly);
        let a = answer(&o, "127.0.0.1".parse().unwrap(), 20000, origin()).unwrap();
        assert!(a.contains("a=recvonly"));
    }

    #[test]
    fn no_g711_is_rejected() {
        let g729 = SIPP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18");
        let o = SdpOffer::parse(g729.as_bytes()).unwrap();
        assert_eq!(
            answer(&o, "127.0.0.1".parse().unwrap(), 1, origin()),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(SdpOffer::parse(b"hello"), Err(SdpError::NoAudio));
        assert!(SdpOffer::parse(b"m=audio x RTP/AVP 0").is_err());
        assert!(SdpOffer::parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn crypto_lines_and_profile_both_ways() {
        use crate::media::crypto_attr::Suite;
        let ip = "127.0.0.1".parse().unwrap();
        let keys = [
            CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80),
            CryptoAttr::generate(2, Suite::AesCm128HmacSha1_32),
        ];
        let ours = offer_with(ip, 20002, origin(), true, &keys);
        assert!(
            ours.contains("m=audio 20002 RTP/SAVP 0 8 101\r\n"),
            "{ours}"
        );
        let o = SdpOffer::parse(ours.as_bytes()).unwrap();
        assert!(o.secure);
        assert_eq!(o.crypto, keys.to_vec());
        // Best effort: RTP/AVP with the keys.
        let soft = offer_with(ip, 20002, origin(), false, &keys);
        let o = SdpOffer::parse(soft.as_bytes()).unwrap();
        assert!(!o.secure && o.crypto.len() == 2);
        // The answer keeps the offer's profile and carries one line.
        let a = answer_with(&o, ip, 30000, origin(), Some(&keys[1])).unwrap();
        assert!(a.contains("RTP/AVP") && a.matches("a=crypto:").count() == 1);
        let sipp = SIPP_OFFER.replace("RTP/AVP", "RTP/SAVP")
            + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:MKI|bad\r\n";
        let o = SdpOffer::parse(sipp.as_bytes()).unwrap();
        assert!(o.secure && o.crypto.is_empty(), "unusable lines skipped");
        let a = answer_with(&o, ip, 30000, origin(), Some(&keys[0])).unwrap();
        assert!(a.contains("m=audio 30000 RTP/SAVP 8 101\r\n"), "{a}");
        // Plain answers are as before.
        assert!(!answer(&o, ip, 1, origin()).unwrap().contains("crypto"));
    }

    #[test]
    fn our_offer_lists_both_codecs() {
        let s = offer("127.0.0.1".parse().unwrap(), 20002, origin());
        let o = SdpOffer::parse(s.as_bytes()).unwrap();
        assert_eq!(o.payloads, vec![0, 8, 101]);
    }
}
