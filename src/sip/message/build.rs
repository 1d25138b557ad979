//! The typed rsip message, built straight from a normalised frame: the
//! headers are moved into rsip's variants by name, exactly as rsip's own
//! tokenizer would type them, so nothing is serialised and parsed again.

use std::borrow::Cow;

use rsip::headers::*;
use rsip::Header;

use super::normalize::Frame;

pub(crate) fn request(method: rsip::Method, uri: rsip::Uri, frame: Frame<'_>) -> rsip::Request {
    rsip::Request {
        method,
        uri,
        version: rsip::Version::V2,
        headers: headers(frame.headers),
        body: frame.body.to_vec(),
    }
}

pub(crate) fn response(code: u16, reason: &str, frame: Frame<'_>) -> rsip::Response {
    // rsip keeps the reason only for codes it has no variant for.
    let status_code = match rsip::StatusCode::from(code) {
        rsip::StatusCode::Other(code, _) => rsip::StatusCode::Other(code, reason.to_string()),
        known => known,
    };
    rsip::Response {
        status_code,
        version: rsip::Version::V2,
        headers: headers(frame.headers),
        body: frame.body.to_vec(),
    }
}

fn headers(raw: Vec<(&str, Cow<'_, str>)>) -> rsip::Headers {
    raw.into_iter()
        .map(|(n, v)| header(n, v))
        .collect::<Vec<_>>()
        .into()
}

/// rsip's name -> variant table (case-insensitive; anything else, even
/// Subscription-State which rsip has a variant for but never parses into,
/// is `Other` with the name as written). Grouped by length so that a name
/// is compared with a handful of candidates, not all of them.
pub(crate) fn header(name: &str, value: Cow<'_, str>) -> Header {
    macro_rules! pick {
        ($($text:literal => $variant:ident),* $(,)?) => {{
            $(if name.eq_ignore_ascii_case($text) {
                return Header::$variant($variant::new(value.into_owned()));
            })*
        }};
    }
    match name.len() {
        2 => pick!("To" => To),
        3 => pick!("Via" => Via),
        4 => pick!("CSeq" => CSeq, "From" => From, "Date" => Date),
        5 => pick!("Allow" => Allow, "Route" => Route, "Event" => Event),
        6 => pick!("Accept" => Accept, "Server" => Server),
        7 => pick!(
            "Call-Id" => CallId,
            "Contact" => Contact,
            "Expires" => Expires,
            "Require" => Require,
            "Subject" => Subject,
            "Warning" => Warning,
        ),
        8 => pick!("Reply-To" => ReplyTo, "Priority" => Priority),
        9 => pick!(
            "Call-Info" => CallInfo,
            "Supported" => Supported,
            "Timestamp" => Timestamp,
        ),
        10 => {
            pick!("Alert-Info" => AlertInfo, "Error-Info" => ErrorInfo, "User-Agent" => UserAgent)
        }
        11 => pick!(
            "In-Reply-To" => InReplyTo,
            "Min-Expires" => MinExpires,
            "Retry-After" => RetryAfter,
            "Unsupported" => Unsupported,
        ),
        12 => pick!(
            "Content-Type" => ContentType,
            "Max-Forwards" => MaxForwards,
            "Mime-Version" => MimeVersion,
            "Organization" => Organization,
            "Record-Route" => RecordRoute,
        ),
        13 => pick!("Authorization" => Authorization, "Proxy-Require" => ProxyRequire),
        14 => pick!("Content-Length" => ContentLength),
        15 => pick!("Accept-Encoding" => AcceptEncoding, "Accept-Language" => AcceptLanguage),
        16 => pick!(
            "Content-Encoding" => ContentEncoding,
            "Content-Language" => ContentLanguage,
            "WWW-Authenticate" => WwwAuthenticate,
        ),
        18 => pick!("Proxy-Authenticate" => ProxyAuthenticate),
        19 => pick!(
            "Authentication-Info" => AuthenticationInfo,
            "Content-Disposition" => ContentDisposition,
            "Proxy-Authorization" => ProxyAuthorization,
        ),
        _ => {}
    }
    Header::Other(name.to_string(), value.into_owned())
}
