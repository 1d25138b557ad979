//! What a UAS checks before it acts on a request (RFC 3261 §8.2.2.3 and
//! §8.2.3): option tags in `Require` it does not support (420 with
//! `Unsupported`), and bodies it cannot read (415 with `Accept` or
//! `Accept-Encoding`). Pure functions over a parsed request.

use rsip::Method;

use crate::sip::headers;

/// Option tags sipacd implements (also sent in `Supported`).
pub const SUPPORTED: &[&str] = &["timer"];

/// `Supported` header value we advertise.
pub const SUPPORTED_HEADER: &str = "timer";

/// Body types sipacd reads in session requests (INVITE, UPDATE).
pub const SESSION_BODIES: &str = "application/sdp";

/// Why a request is refused before its method is acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 420: these `Require` tags are not ours.
    BadExtension(Vec<String>),
    /// 415: a body type we do not read; `accept` lists the ones we do.
    UnsupportedType { accept: &'static str },
    /// 415: a `Content-Encoding` other than identity.
    UnsupportedEncoding,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadExtension(_) => 420,
            Self::UnsupportedType { .. } | Self::UnsupportedEncoding => 415,
        }
    }

    /// Headers the refusal must carry (RFC 3261 §8.2.2.3, §8.2.3).
    pub fn headers(&self) -> Vec<rsip::Header> {
        match self {
            Self::BadExtension(tags) => {
                vec![rsip::Header::Other("Unsupported".into(), tags.join(", "))]
            }
            Self::UnsupportedType { accept } => vec![rsip::Header::Accept((*accept).into())],
            Self::UnsupportedEncoding => vec![rsip::Header::Other(
                "Accept-Encoding".into(),
                "identity".into(),
            )],
        }
    }
}

/// The first reason to refuse `req`, if any. ACK and CANCEL are never
/// refused this way (RFC 3261 §8.2.2.3: a Require in them is ignored).
pub fn screen(req: &rsip::Request) -> Option<Refusal> {
    if matches!(req.method, Method::Ack | Method::Cancel) {
        return None;
    }
    // Every request passes here: look at header kinds first, and format
    // header values only when one is there to read.
    let has = |f: fn(&rsip::Header) -> bool| req.headers.iter().any(f);
    let has_require = has(|h| matches!(h, rsip::Header::Require(_)));
    let unknown: Vec<String> = if !has_require {
        Vec::new()
    } else {
        headers::header_values(req, "Require")
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .map(crate::sip::message::clip)
            .collect()
    };
    if !unknown.is_empty() {
        return Some(Refusal::BadExtension(unknown));
    }
    if req.body.is_empty() {
        return None;
    }
    let encoded = has(|h| matches!(h, rsip::Header::ContentEncoding(_)))
        && headers::header_values(req, "Content-Encoding")
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
    if encoded {
        return Some(Refusal::UnsupportedEncoding);
    }
    let accept = match req.method {
        Method::Invite | Method::Update => SESSION_BODIES,
        _ => return None,
    };
    let ctype = headers::content_type(req).unwrap_or_default();
    // multipart/mixed may carry the SDP beside other parts (RFC 5621).
    let readable = ctype == "application/sdp" || ctype == "multipart/mixed";
    (!readable).then_some(Refusal::UnsupportedType { accept })
}

/// Whether `req` lists `tag` in Supported or Require.
pub fn peer_supports(req: &impl rsip::message::HasHeaders, tag: &str) -> bool {
    ["Supported", "Require"].iter().any(|h| {
        headers::header_values(req, h)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(tag))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str, body: &str) -> rsip::Request {
        let raw = format!(
            "INVITE sip:1500@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:1500@h>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match crate::sip::message::parse(raw.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("test request did not parse: {other:?}"),
        }
    }

    #[test]
    fn unknown_require_tags_are_listed() {
        let r = req("Require: timer, 100rel,foo\r\n", "");
        let refusal = screen(&r).expect("refused");
        assert_eq!(refusal.status(), 420);
        assert_eq!(
            refusal,
            Refusal::BadExtension(vec!["100rel".into(), "foo".into()])
        );
        let text = refusal.headers()[0].to_string();
        assert_eq!(text, "Unsupported: 100rel, foo");
    }

    #[test]
    fn supported_tags_and_no_require_pass() {
        assert_eq!(screen(&req("Require: timer\r\n", "")), None);
        assert_eq!(screen(&req("", "")), None);
        assert_eq!(
            screen(&req("Content-Type: application/sdp\r\n", "v=0\r\n")),
            None
        );
    }

    #[test]
    fn unreadable_bodies_get_415_with_accept() {
        let r = req("Content-Type: application/unknownformat\r\n", "<audio/>");
        let refusal = screen(&r).expect("refused");
        assert_eq!(refusal.status(), 415);
        assert_eq!(refusal.headers()[0].to_string(), "Accept: application/sdp");
        let r = req(
            "Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n",
            "xx",
        );
        assert_eq!(screen(&r), Some(Refusal::UnsupportedEncoding));
    }

    #[test]
    fn supported_is_read_from_either_header() {
        assert!(peer_supports(
            &req("Supported: replaces, Timer\r\n", ""),
            "timer"
        ));
        assert!(peer_supports(&req("Require: timer\r\n", ""), "timer"));
        assert!(!peer_supports(&req("Supported: replaces\r\n", ""), "timer"));
    }
}
