//! SIP message parsing: a tolerant front end around rsip 0.4.
//!
//! rsip's nom parser is strict about layout (no folding, no compact forms,
//! one header per line, a single SP between request-line fields) and lax
//! about semantics (no required headers, no CSeq checks, Content-Length
//! ignored). So a datagram goes through four stages:
//! `normalize` frames and rewrites it into one canonical layout, `validate`
//! enforces RFC 3261 rules rsip skips, `uri` parses the Request-URI (rsip's
//! URI parser rejects valid RFC 4475 URIs), and `build` moves the result
//! into rsip's typed message (as rsip's tokenizer would type it, without
//! rsip parsing anything). `reject` builds an error response straight from
//! raw bytes when any stage refuses a request.

mod build;
mod normalize;
mod peek;
mod reject;
mod scan;
mod uri;
mod validate;

use std::fmt::Write as _;
#[cfg(test)]
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use peek::{peek_request, RequestIds};
pub use reject::error_response;

pub(crate) use normalize::{expand_compact, is_token, split_list};
pub(crate) use scan::{find_unquoted, line_spans, Quotes};
pub(crate) use uri::parse_header_uri;
pub(crate) use validate::{semis, split_semis};

/// Largest message accepted, in bytes (a UDP datagram can't exceed it anyway).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Most header fields accepted, counted after comma-separated lists are split.
pub const MAX_HEADERS: usize = 256;

/// Why a datagram could not become an [`rsip::SipMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Only CRLFs (a keep-alive) or nothing at all.
    #[error("empty message")]
    Empty,
    /// Above [`MAX_MESSAGE_SIZE`].
    #[error("message of {size} bytes is too large")]
    TooLarge { size: usize, request: bool },
    /// The first line is neither a request-line nor a status-line.
    #[error("not a SIP message: {0}")]
    Garbage(&'static str),
    /// A response we cannot use; responses are never answered.
    #[error("malformed response: {0}")]
    BadResponse(String),
    /// A request that breaks the grammar or RFC 3261 rules.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Request-line version other than SIP/2.0.
    #[error("SIP version not supported: {0}")]
    VersionNotSupported(String),
    /// A well-formed request whose method rsip cannot represent.
    #[error("method not implemented: {0}")]
    UnsupportedMethod(String),
    /// A Request-URI scheme other than sip/sips that rsip cannot carry.
    #[error("unsupported URI scheme: {0}")]
    UnsupportedUriScheme(String),
}

impl ParseError {
    /// The status to answer with, or `None` to drop the message silently.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Empty | Self::Garbage(_) | Self::BadResponse(_) => None,
            Self::TooLarge { request, .. } => request.then_some(513),
            Self::BadRequest(_) => Some(400),
            Self::VersionNotSupported(_) => Some(505),
            Self::UnsupportedMethod(_) => Some(501),
            Self::UnsupportedUriScheme(_) => Some(416),
        }
    }

    /// Standard reason phrase for [`Self::status`].
    pub fn reason_phrase(&self) -> Option<&'static str> {
        self.status().map(reason_phrase)
    }

    /// Short human-readable detail (for logs, never sent on the wire).
    pub fn reason(&self) -> &str {
        match self {
            Self::Empty => "empty message",
            Self::TooLarge { .. } => "message too large",
            Self::Garbage(r) => r,
            Self::BadResponse(r)
            | Self::BadRequest(r)
            | Self::VersionNotSupported(r)
            | Self::UnsupportedMethod(r)
            | Self::UnsupportedUriScheme(r) => r,
        }
    }
}

/// Parse one datagram (or one framed stream message) into an rsip message.
///
/// One pass over the bytes: the normalised frame is moved into rsip's
/// types directly (`build`), never serialised and parsed again. Never
/// panics.
pub fn parse(datagram: &[u8]) -> Result<rsip::SipMessage, ParseError> {
    check(datagram).map(Checked::build)
}

/// Every stage of [`parse`] but the last: the datagram is framed,
/// normalised and validated, and its Request-URI parsed, so it is known to
/// parse (with the very errors `parse` gives), yet nothing is typed into
/// rsip until the caller asks with [`Checked::build`] or
/// [`Checked::build_lean`]. Never panics.
pub fn check(datagram: &[u8]) -> Result<Checked<'_>, ParseError> {
    let frame = normalize::frame(datagram)?;
    validate::validate(&frame)?;
    let start = match &frame.start {
        normalize::StartLine::Request { method, uri } => {
            let uri = uri::parse_request_uri(uri)?;
            let Some(method) = known_method(method) else {
                return Err(ParseError::UnsupportedMethod(clip(method)));
            };
            Start::Request(method, uri)
        }
        normalize::StartLine::Response { code, reason } => Start::Response(*code, reason),
    };
    Ok(Checked { frame, start })
}

/// A message [`check`] accepted, borrowing the datagram.
#[derive(Debug)]
pub struct Checked<'a> {
    frame: normalize::Frame<'a>,
    start: Start<'a>,
}

#[derive(Debug)]
enum Start<'a> {
    Request(rsip::Method, rsip::Uri),
    Response(u16, &'a str),
}

/// What a lean request keeps: the headers a response copies (RFC 3261
/// §8.2.6.2, the Timestamp of a 100), the transaction and dialog
/// identifiers, and what `sip::extensions::screen` reads.
const LEAN_HEADERS: [&str; 9] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Timestamp",
    "Require",
    "Content-Encoding",
    "Content-Type",
];

impl Checked<'_> {
    /// The request's method (`None` for a response).
    pub fn method(&self) -> Option<rsip::Method> {
        match &self.start {
            Start::Request(m, _) => Some(*m),
            Start::Response(..) => None,
        }
    }

    /// The whole typed message, as [`parse`] returns it.
    pub fn build(self) -> rsip::SipMessage {
        match self.start {
            Start::Request(method, uri) => build::request(method, uri, self.frame).into(),
            Start::Response(code, reason) => build::response(code, reason, self.frame).into(),
        }
    }

    /// A request with only the headers of [`LEAN_HEADERS`] (in their
    /// order, typed as `build` types them) and the body: enough to key its
    /// transaction, find its dialog, screen it and answer it, for handlers
    /// that read nothing else. A response is built whole.
    pub fn build_lean(mut self) -> rsip::SipMessage {
        if let Start::Request(..) = self.start {
            self.frame
                .headers
                .retain(|(name, _)| LEAN_HEADERS.iter().any(|l| l.eq_ignore_ascii_case(name)));
        }
        self.build()
    }
}

/// What `parse` did before `build` existed: the frame serialised in the
/// canonical layout and handed to rsip's own parser. Kept to prove that
/// `build` types every message exactly as rsip would.
#[cfg(test)]
pub(crate) fn parse_via_rsip(datagram: &[u8]) -> Result<rsip::SipMessage, ParseError> {
    let frame = normalize::frame(datagram)?;
    validate::validate(&frame)?;
    let uri = match &frame.start {
        normalize::StartLine::Request { method, uri } => {
            let uri = uri::parse_request_uri(uri)?;
            if known_method(method).is_none() {
                return Err(ParseError::UnsupportedMethod(clip(method)));
            }
            Some(uri)
        }
        normalize::StartLine::Response { .. } => None,
    };
    let canonical = frame.canonical_bytes();
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        rsip::SipMessage::try_from(canonical.as_slice())
    }));
    let fail = |detail: String| match uri {
        Some(_) => ParseError::BadRequest(detail),
        None => ParseError::BadResponse(detail),
    };
    let mut msg = match parsed {
        Ok(Ok(msg)) => msg,
        Ok(Err(e)) => return Err(fail(clip(&format!("rsip: {e}")))),
        Err(_) => return Err(fail("rsip panicked".into())),
    };
    if let (rsip::SipMessage::Request(req), Some(uri)) = (&mut msg, uri) {
        req.uri = uri;
    }
    Ok(msg)
}

/// Serialise for the wire. Unlike rsip's `Display`, the body is written as
/// raw bytes (not lossy UTF-8), the status line carries real reason phrases,
/// and Content-Length always matches the body (fixed or appended).
pub fn serialize(msg: &rsip::SipMessage) -> Vec<u8> {
    match msg {
        rsip::SipMessage::Request(r) => serialize_request(r),
        rsip::SipMessage::Response(r) => serialize_response(r),
    }
}

/// [`serialize`] of a request, from a borrow (no `SipMessage` to build).
pub fn serialize_request(r: &rsip::Request) -> Vec<u8> {
    let mut head = String::with_capacity(1024 + r.body.len());
    let _ = write!(head, "{} {} SIP/2.0\r\n", r.method, r.uri);
    finish(head, &r.headers, &r.body)
}

/// [`serialize`] of a response, from a borrow.
pub fn serialize_response(r: &rsip::Response) -> Vec<u8> {
    let mut head = String::with_capacity(1024 + r.body.len());
    let code = r.status_code.code();
    let reason = match &r.status_code {
        rsip::StatusCode::Other(_, reason) => reason.as_str(),
        _ => reason_phrase(code),
    };
    let _ = write!(head, "SIP/2.0 {code} {reason}\r\n");
    finish(head, &r.headers, &r.body)
}

/// The headers, a Content-Length matching `body`, the blank line, `body`.
fn finish(mut head: String, headers: &rsip::Headers, body: &[u8]) -> Vec<u8> {
    let mut wrote_length = false;
    for h in headers.iter() {
        if matches!(h, rsip::Header::ContentLength(_)) {
            if !wrote_length {
                let _ = write!(head, "Content-Length: {}\r\n", body.len());
                wrote_length = true;
            }
            continue;
        }
        // What `{h}` would write, appended without `fmt` (the test of
        // `wire_parts` holds the two alike for every variant).
        let (name, value) = crate::sip::headers::wire_parts(h);
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if !wrote_length {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The rsip method for an exact (case-sensitive, RFC 3261 §7.1) method name.
pub fn known_method(name: &str) -> Option<rsip::Method> {
    use rsip::Method::*;
    Some(match name {
        "ACK" => Ack,
        "BYE" => Bye,
        "CANCEL" => Cancel,
        "INFO" => Info,
        "INVITE" => Invite,
        "MESSAGE" => Message,
        "NOTIFY" => Notify,
        "OPTIONS" => Options,
        "PRACK" => PRack,
        "PUBLISH" => Publish,
        "REFER" => Refer,
        "REGISTER" => Register,
        "SUBSCRIBE" => Subscribe,
        "UPDATE" => Update,
        _ => return None,
    })
}

/// Standard reason phrase of a status code (RFC 3261 §21 and common extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        c if (100..200).contains(&c) => "Session Progress",
        c if (200..300).contains(&c) => "OK",
        c if (300..400).contains(&c) => "Redirection",
        c if (400..500).contains(&c) => "Client Error",
        c if (500..600).contains(&c) => "Server Error",
        _ => "Global Failure",
    }
}

/// Error details quote peer input: keep them short and printable.
pub(crate) fn clip(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod generated;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lean;
#[cfg(test)]
mod tests_once;
