//! Header access and response building for the registrar.
//!
//! Kept local on purpose while `sip::headers` is written in parallel; the
//! lead will dedupe. Compact header forms (`v`, `f`, `t`, `i`, `m`), which
//! rsip stores as `Header::Other`, are understood too.

use super::contact::parse_name_addr;
use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response, StatusCode};

/// Headers the registrar reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    Expires,
    Authorization,
}

impl Kind {
    fn matches_other(self, name: &str) -> bool {
        let (long, short) = match self {
            Kind::Via => ("via", Some("v")),
            Kind::From => ("from", Some("f")),
            Kind::To => ("to", Some("t")),
            Kind::CallId => ("call-id", Some("i")),
            Kind::CSeq => ("cseq", None),
            Kind::Contact => ("contact", Some("m")),
            Kind::Expires => ("expires", None),
            Kind::Authorization => ("authorization", None),
        };
        let name = name.trim();
        name.eq_ignore_ascii_case(long) || short.is_some_and(|s| name.eq_ignore_ascii_case(s))
    }

    fn value(self, h: &Header) -> Option<&str> {
        match (self, h) {
            (Kind::Via, Header::Via(v)) => Some(v.value()),
            (Kind::From, Header::From(v)) => Some(v.value()),
            (Kind::To, Header::To(v)) => Some(v.value()),
            (Kind::CallId, Header::CallId(v)) => Some(v.value()),
            (Kind::CSeq, Header::CSeq(v)) => Some(v.value()),
            (Kind::Contact, Header::Contact(v)) => Some(v.value()),
            (Kind::Expires, Header::Expires(v)) => Some(v.value()),
            (Kind::Authorization, Header::Authorization(v)) => Some(v.value()),
            (k, Header::Other(n, v)) if k.matches_other(n) => Some(v.as_str()),
            _ => None,
        }
    }
}

/// Every value of a header, in message order.
pub fn values(req: &Request, kind: Kind) -> Vec<&str> {
    req.headers.iter().filter_map(|h| kind.value(h)).collect()
}

/// The first value of a header.
pub fn first(req: &Request, kind: Kind) -> Option<&str> {
    req.headers.iter().find_map(|h| kind.value(h))
}

/// Builds a response to `req`: Via(s), From, To (with `to_tag` added when the
/// request has none), Call-ID and CSeq copied, then `extra`, then
/// `Content-Length: 0`.
pub fn build(req: &Request, status: StatusCode, to_tag: &str, extra: Vec<Header>) -> Response {
    let mut headers: Vec<Header> = Vec::new();
    for v in values(req, Kind::Via) {
        headers.push(Header::Via(rsip::headers::Via::new(v)));
    }
    if let Some(v) = first(req, Kind::From) {
        headers.push(Header::From(rsip::headers::From::new(v)));
    }
    if let Some(v) = first(req, Kind::To) {
        let has_tag = parse_name_addr(v).is_some_and(|n| n.param("tag").is_some());
        let to = if has_tag {
            v.to_string()
        } else {
            format!("{};tag={}", v.trim_end(), to_tag)
        };
        headers.push(Header::To(rsip::headers::To::new(to)));
    }
    if let Some(v) = first(req, Kind::CallId) {
        headers.push(Header::CallId(rsip::headers::CallId::new(v)));
    }
    if let Some(v) = first(req, Kind::CSeq) {
        headers.push(Header::CSeq(rsip::headers::CSeq::new(v)));
    }
    headers.extend(extra);
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Response {
        status_code: status,
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_headers_and_adds_to_tag() {
        let raw = "REGISTER sip:example.com SIP/2.0\r\n\
            Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1\r\n\
            v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n\
            f: <sip:1001@example.com>;tag=abc\r\n\
            To: <sip:1001@example.com>\r\n\
            Call-ID: xyz\r\n\
            CSeq: 2 REGISTER\r\n\
            Content-Length: 0\r\n\r\n";
        let req = Request::try_from(raw).unwrap();
        let resp = build(&req, StatusCode::OK, "t1", vec![]);
        let text = resp.to_string();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1\r\n"));
        assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"));
        assert!(text.contains("From: <sip:1001@example.com>;tag=abc\r\n"));
        assert!(text.contains("To: <sip:1001@example.com>;tag=t1\r\n"));
        assert!(text.contains("Call-ID: xyz\r\n"));
        assert!(text.contains("CSeq: 2 REGISTER\r\n"));
        assert!(text.contains("Content-Length: 0\r\n"));
    }
}
