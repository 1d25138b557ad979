//! Session timers (RFC 4028), sans-IO: what interval and refresher a
//! dialog agreed on, and when the next refresh is due or the session has
//! expired. The endpoint reads `Session-Expires` off requests and
//! responses, asks [`SessionTimer::next`] for the deadline and acts.

use std::time::{Duration, Instant};

use crate::sip::extensions::peer_supports;
use crate::sip::headers;

/// Smallest interval we accept (RFC 4028 §4: 90 s is the floor).
pub const MIN_SE: u32 = 90;

/// Which side sends the refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// sipacd refreshes (re-INVITE or UPDATE) at half the interval.
    Us,
    /// The phone refreshes; without one by the deadline the call ends.
    Peer,
}

/// An agreed session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval_s: u32,
    pub refresher: Refresher,
    /// When we refresh (`Us`) or give up on the peer (`Peer`).
    pub deadline: Instant,
}

impl SessionTimer {
    pub fn new(interval_s: u32, refresher: Refresher, now: Instant) -> SessionTimer {
        let s = u64::from(interval_s);
        let after = match refresher {
            Refresher::Us => s / 2,
            // §10: BYE before expiry, leaving the smaller of 32 s or a third.
            Refresher::Peer => s - (s / 3).min(32),
        };
        SessionTimer {
            interval_s,
            refresher,
            deadline: now + Duration::from_secs(after),
        }
    }

    /// `Session-Expires` value for a message of ours. `we_are_uac`: we sent
    /// the request of this transaction (the refresher parameter names a
    /// role in it, not a side of the dialog).
    pub fn header_value(&self, we_are_uac: bool) -> String {
        let role = match (self.refresher, we_are_uac) {
            (Refresher::Us, true) | (Refresher::Peer, false) => "uac",
            (Refresher::Us, false) | (Refresher::Peer, true) => "uas",
        };
        format!("{};refresher={role}", self.interval_s)
    }
}

/// A `Session-Expires` value: interval and refresher role, if named.
pub fn parse_session_expires(value: &str) -> Option<(u32, Option<&'static str>)> {
    let mut parts = value.split(';');
    let interval = parts.next()?.trim().parse::<u32>().ok()?;
    let role = parts.find_map(|p| {
        let (name, v) = p.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("refresher") {
            return None;
        }
        match v.trim().to_ascii_lowercase().as_str() {
            "uac" => Some("uac"),
            "uas" => Some("uas"),
            _ => None,
        }
    });
    Some((interval, role))
}

/// What a request received as UAS asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasTimer {
    /// No session timer for this dialog (from now on).
    None,
    /// Agreed: answer with [`SessionTimer::header_value`]`(false)` and, when
    /// the peer refreshes, `Require: timer`.
    Agreed(SessionTimer),
    /// 422 Session Interval Too Small, with `Min-SE: MIN_SE`.
    TooSmall,
}

/// Negotiates the timer of an INVITE or UPDATE we answer (RFC 4028 §9).
pub fn negotiate_uas(req: &rsip::Request, now: Instant) -> UasTimer {
    // On every INVITE: skip formatting headers when none can be it (rsip
    // keeps Session-Expires, full or compact, as an untyped header).
    let present = req.headers.iter().any(|h| {
        matches!(h, rsip::Header::Other(n, _)
            if n.eq_ignore_ascii_case("Session-Expires") || n.eq_ignore_ascii_case("x"))
    });
    if !present {
        return UasTimer::None;
    }
    let Some(value) = headers::header_value(req, "Session-Expires") else {
        return UasTimer::None;
    };
    let Some((interval, role)) = parse_session_expires(&value) else {
        return UasTimer::None;
    };
    if interval < MIN_SE {
        return UasTimer::TooSmall;
    }
    let refresher = match role {
        Some("uas") => Refresher::Us,
        Some(_) => Refresher::Peer,
        // §9: the UAC refreshes when it can, else we do.
        None if peer_supports(req, "timer") => Refresher::Peer,
        None => Refresher::Us,
    };
    UasTimer::Agreed(SessionTimer::new(interval, refresher, now))
}

/// The timer a 2xx to a request we sent agreed on (§7.2), if any.
pub fn from_uac_response(resp: &rsip::Response, now: Instant) -> Option<SessionTimer> {
    let value = headers::header_value(resp, "Session-Expires")?;
    let (interval, role) = parse_session_expires(&value)?;
    let refresher = match role {
        Some("uas") => Refresher::Peer,
        _ => Refresher::Us,
    };
    Some(SessionTimer::new(interval.max(MIN_SE), refresher, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> rsip::Request {
        let raw = format!(
            "INVITE sip:1500@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:1500@h>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match crate::sip::message::parse(raw.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("test request did not parse: {other:?}"),
        }
    }

    #[test]
    fn parses_interval_and_refresher() {
        assert_eq!(parse_session_expires("1800"), Some((1800, None)));
        assert_eq!(
            parse_session_expires("1800; Refresher=UAS"),
            Some((1800, Some("uas")))
        );
        assert_eq!(parse_session_expires("abc"), None);
    }

    #[test]
    fn a_peer_that_supports_timers_refreshes_itself() {
        let now = Instant::now();
        let req = invite("Supported: timer\r\nSession-Expires: 1800\r\n");
        let UasTimer::Agreed(t) = negotiate_uas(&req, now) else {
            panic!("no timer agreed");
        };
        assert_eq!(t.refresher, Refresher::Peer);
        assert_eq!(t.header_value(false), "1800;refresher=uac");
        // BYE 32 s before expiry.
        assert_eq!(t.deadline, now + Duration::from_secs(1768));
    }

    #[test]
    fn without_support_or_when_asked_we_refresh_at_half_time() {
        let now = Instant::now();
        for extra in [
            "Session-Expires: 600\r\n",
            "Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n",
        ] {
            let UasTimer::Agreed(t) = negotiate_uas(&invite(extra), now) else {
                panic!("no timer agreed for {extra}");
            };
            assert_eq!(t.refresher, Refresher::Us);
            assert_eq!(t.header_value(false), "600;refresher=uas");
            assert_eq!(t.header_value(true), "600;refresher=uac");
            assert_eq!(t.deadline, now + Duration::from_secs(300));
        }
    }

    #[test]
    fn short_intervals_get_422_and_absence_means_no_timer() {
        let now = Instant::now();
        let req = invite("Session-Expires: 30\r\n");
        assert_eq!(negotiate_uas(&req, now), UasTimer::TooSmall);
        assert_eq!(negotiate_uas(&invite(""), now), UasTimer::None);
        // A short interval leaves a third, not 32 s.
        let t = SessionTimer::new(90, Refresher::Peer, now);
        assert_eq!(t.deadline, now + Duration::from_secs(60));
    }
}
