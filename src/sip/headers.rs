//! Small typed accessors over rsip messages, plus response building
//! (RFC 3261 §8.2.6) and Via stamping (RFC 3581). Every accessor returns
//! `Option` and scans the header text itself: rsip's typed headers reject
//! much of what `message::parse` accepts (RFC 4475), and must not decide.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use rsip::message::HasHeaders;
use rsip::prelude::UntypedHeader;

use crate::sip::message::{
    expand_compact, known_method, reason_phrase, semis, split_semis, Quotes,
};

pub use crate::sip::message::serialize;

/// A header's wire name and value (`Header::Other` included).
pub fn header_parts(header: &rsip::Header) -> (String, String) {
    let text = header.to_string();
    match text.split_once(':') {
        Some((name, value)) => (name.trim().to_string(), value.trim().to_string()),
        None => (text, String::new()),
    }
}

/// Whether two header names are the same, case-insensitively, with either
/// side possibly compact: `message::parse` expands compact forms, but
/// hand-built messages (rsip keeps `v:` as `Header::Other`) may carry them.
fn same_name(a: &str, b: &str) -> bool {
    fn full(n: &str) -> &str {
        expand_compact(n).unwrap_or(n)
    }
    full(a).eq_ignore_ascii_case(full(b))
}

/// [`header_parts`] without formatting the header: rsip's `Display` writes
/// `Name: value`, so the parts are the variant's display name and its
/// trimmed value. `None` for an `Other` header whose name holds a ':'
/// (its text would split elsewhere; `header_parts` decides).
/// (`value_ref_if_named` does this split inline; the test holds it to
/// `header_parts`.)
#[cfg(test)]
fn borrowed_parts(header: &rsip::Header) -> Option<(&str, &str)> {
    match header {
        rsip::Header::Other(n, _) if n.contains(':') => None,
        _ => {
            let (n, v) = wire_parts(header);
            Some((n.trim(), v.trim()))
        }
    }
}

/// What rsip's `Display` writes around ": " for `header`, as written
/// (untrimmed), without formatting: `message::serialize` appends the two
/// parts instead of going through `fmt` for every header.
pub(crate) fn wire_parts(header: &rsip::Header) -> (&str, &str) {
    use rsip::Header as H;
    macro_rules! parts {
        ($($variant:ident => $name:literal),* $(,)?) => {
            match header {
                $(H::$variant(h) => ($name, h.value()),)*
                H::Other(n, v) => (n, v),
            }
        };
    }
    parts!(
        Accept => "Accept",
        AcceptEncoding => "Accept-Encoding",
        AcceptLanguage => "Accept-Language",
        AlertInfo => "Alert-Info",
        Allow => "Allow",
        AuthenticationInfo => "Authentication-Info",
        Authorization => "Authorization",
        CSeq => "CSeq",
        CallId => "Call-ID",
        CallInfo => "Call-Info",
        Contact => "Contact",
        ContentDisposition => "Content-Disposition",
        ContentEncoding => "Content-Encoding",
        ContentLanguage => "Content-Language",
        ContentLength => "Content-Length",
        ContentType => "Content-Type",
        Date => "Date",
        ErrorInfo => "Error-Info",
        Event => "Event",
        Expires => "Expires",
        From => "From",
        InReplyTo => "In-Reply-To",
        MaxForwards => "Max-Forwards",
        MimeVersion => "Mime-Version",
        MinExpires => "Min-Expires",
        Organization => "Organization",
        Priority => "Priority",
        ProxyAuthenticate => "Proxy-Authenticate",
        ProxyAuthorization => "Proxy-Authorization",
        ProxyRequire => "Proxy-Require",
        RecordRoute => "Record-Route",
        ReplyTo => "Reply-To",
        Require => "Require",
        RetryAfter => "Retry-After",
        Route => "Route",
        Server => "Server",
        Subject => "Subject",
        SubscriptionState => "Subscription-State",
        Supported => "Supported",
        Timestamp => "Timestamp",
        To => "To",
        Unsupported => "Unsupported",
        UserAgent => "User-Agent",
        Via => "Via",
        Warning => "Warning",
        WwwAuthenticate => "WWW-Authenticate",
    )
}

/// The value of `header` if its name is `name` (see [`same_name`]).
fn value_if_named(header: &rsip::Header, name: &str) -> Option<String> {
    value_ref_if_named(header, name).map(Cow::into_owned)
}

/// [`value_if_named`], borrowed unless the header must be formatted.
fn value_ref_if_named<'h>(header: &'h rsip::Header, name: &str) -> Option<Cow<'h, str>> {
    match header {
        rsip::Header::Other(n, _) if n.contains(':') => {
            let (n, v) = header_parts(header);
            same_name(&n, name).then_some(Cow::Owned(v))
        }
        // `borrowed_parts`, the value trimmed only once the name matched
        // (most headers a lookup passes are not the one it wants).
        _ => {
            let (n, v) = wire_parts(header);
            // Names are nearly always trimmed already: test the ends
            // before paying for a trim of every name passed.
            let n = if n.starts_with(char::is_whitespace) || n.ends_with(char::is_whitespace) {
                n.trim()
            } else {
                n
            };
            same_name(n, name).then(|| Cow::Borrowed(v.trim()))
        }
    }
}

/// [`header_value`] without the copy (the accessors below read values
/// they do not keep).
pub(crate) fn header_ref<'m, M: HasHeaders + ?Sized>(
    msg: &'m M,
    name: &str,
) -> Option<Cow<'m, str>> {
    msg.headers()
        .iter()
        .find_map(|h| value_ref_if_named(h, name))
}

/// Every value of the header `name` (case-insensitive, compact forms
/// accepted in `name` and in the message), in message order.
pub fn header_values<M: HasHeaders + ?Sized>(msg: &M, name: &str) -> Vec<String> {
    msg.headers()
        .iter()
        .filter_map(|h| value_if_named(h, name))
        .collect()
}

/// The first value of the header `name`.
pub fn header_value<M: HasHeaders + ?Sized>(msg: &M, name: &str) -> Option<String> {
    msg.headers().iter().find_map(|h| value_if_named(h, name))
}

/// A header parameter (`;name=value` after the address or Via sent-by),
/// case-insensitive. A flag parameter (`;lr`) yields `Some("")`.
pub fn header_param(value: &str, name: &str) -> Option<String> {
    param_str(value, name).map(str::to_string)
}

/// [`header_param`] without the copy.
pub(crate) fn param_str<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = params_part(value)?;
    params_in(params, name)
}

/// `name`'s value among `;`-separated `params` (which start with ';').
pub(crate) fn params_in<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    semis(params).skip(1).find_map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The text from the first parameter-separating ';' on: after `<...>` when
/// the address is bracketed, else at the first ';' outside quotes.
fn params_part(value: &str) -> Option<&str> {
    params_region(value).map(|rest| if rest.starts_with(';') { rest } else { "" })
}

/// Where the parameters of a name-addr or Via would start: after the last
/// `>` closing a `<`, else at the first ';' outside quotes (as written, so
/// maybe after LWS that normalisation would have removed).
pub(crate) fn params_region(value: &str) -> Option<&str> {
    let mut quotes = Quotes::default();
    let mut first_semi = None;
    let mut angle_close = None;
    let mut in_angle = false;
    // Bytes, not chars: the delimiters are ASCII (see `message::semis`).
    for (i, c) in value.bytes().enumerate() {
        let c = c as char;
        if quotes.skip(c) {
            continue;
        }
        match c {
            '"' if !in_angle => quotes.open(),
            '<' => in_angle = true,
            '>' if in_angle => {
                in_angle = false;
                angle_close = Some(i);
            }
            ';' if !in_angle && first_semi.is_none() => first_semi = Some(i),
            _ => {}
        }
    }
    match angle_close {
        Some(i) => value.get(i + 1..),
        None => first_semi.and_then(|i| value.get(i..)),
    }
}

/// Value of the topmost Via.
pub fn top_via<M: HasHeaders + ?Sized>(msg: &M) -> Option<String> {
    header_value(msg, "Via")
}

/// [`top_via`] without the copy.
pub(crate) fn top_via_ref<M: HasHeaders + ?Sized>(msg: &M) -> Option<Cow<'_, str>> {
    header_ref(msg, "Via")
}

/// `branch` of the topmost Via (None when absent or empty, e.g. RFC 2543 peers).
pub fn top_via_branch<M: HasHeaders + ?Sized>(msg: &M) -> Option<String> {
    header_ref(msg, "Via")
        .and_then(|v| header_param(&v, "branch"))
        .filter(|b| !b.is_empty())
}

/// Host and port of a Via value's sent-by ("SIP/2.0/UDP host:port;...").
pub fn via_sent_by(via: &str) -> Option<(String, Option<u16>)> {
    let head = via.split(';').next()?;
    let sent_by = head.split_ascii_whitespace().nth(1)?;
    let (host, port) = if let Some(v6) = sent_by.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match sent_by.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (sent_by, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host.to_string(), port))
}

pub fn call_id<M: HasHeaders + ?Sized>(msg: &M) -> Option<String> {
    header_value(msg, "Call-ID").filter(|v| !v.is_empty())
}

/// CSeq number and method (None for a method rsip cannot represent).
pub fn cseq<M: HasHeaders + ?Sized>(msg: &M) -> Option<(u32, rsip::Method)> {
    let value = header_ref(msg, "CSeq")?;
    let mut parts = value.split_ascii_whitespace();
    let num = parts.next()?;
    if !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let method = known_method(parts.next()?)?;
    Some((num.parse().ok()?, method))
}

pub fn from_tag<M: HasHeaders + ?Sized>(msg: &M) -> Option<String> {
    header_ref(msg, "From")
        .and_then(|v| header_param(&v, "tag"))
        .filter(|t| !t.is_empty())
}

pub fn to_tag<M: HasHeaders + ?Sized>(msg: &M) -> Option<String> {
    header_ref(msg, "To")
        .and_then(|v| header_param(&v, "tag"))
        .filter(|t| !t.is_empty())
}

/// User part of the Request-URI (the dialled number for an INVITE).
pub fn request_user(req: &rsip::Request) -> Option<String> {
    req.uri
        .auth
        .as_ref()
        .map(|a| a.user.clone())
        .filter(|u| !u.is_empty())
}

/// User part of the To URI (the AOR of a REGISTER).
pub fn to_user<M: HasHeaders + ?Sized>(msg: &M) -> Option<String> {
    let to = crate::sip::name_addr::NameAddr::parse(&header_ref(msg, "To")?).ok()?;
    to.user().filter(|u| !u.is_empty()).map(str::to_string)
}

fn number_header<M: HasHeaders + ?Sized>(msg: &M, name: &str) -> Option<u32> {
    let v = header_ref(msg, name)?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Expires header in seconds; None when absent or not a 32-bit number
/// (RFC 4475 scalar02: treat as absent and use the default).
pub fn expires<M: HasHeaders + ?Sized>(msg: &M) -> Option<u32> {
    number_header(msg, "Expires")
}

/// Max-Forwards; None when absent or unparsable.
pub fn max_forwards<M: HasHeaders + ?Sized>(msg: &M) -> Option<u32> {
    number_header(msg, "Max-Forwards")
}

/// Content-Type media type, lower-cased, without parameters.
pub fn content_type<M: HasHeaders + ?Sized>(msg: &M) -> Option<String> {
    let v = header_ref(msg, "Content-Type")?;
    let media = v.split(';').next()?.trim().to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

/// A response to `req` per RFC 3261 §8.2.6: every Via in order, From, To
/// (with `to_tag` added unless it already has one), Call-ID, CSeq and
/// Content-Length: 0. Standard reasons use rsip's typed status code; a
/// custom reason is kept as `StatusCode::Other` (compare with `.code()`).
pub fn response_to(
    req: &rsip::Request,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> rsip::Response {
    let typed = rsip::StatusCode::from(status);
    let status_code = match typed {
        rsip::StatusCode::Other(..) => rsip::StatusCode::Other(status, reason.to_string()),
        _ if reason == reason_phrase(status) => typed,
        _ => rsip::StatusCode::Other(status, reason.to_string()),
    };
    response_with_status(req, status_code, to_tag)
}

/// [`response_to`] with a ready-made status code. A 100 (Trying) also gets
/// the request's Timestamp (RFC 3261 §8.2.6.1). Compact request headers
/// come out in full form.
pub fn response_with_status(
    req: &rsip::Request,
    status_code: rsip::StatusCode,
    to_tag: Option<&str>,
) -> rsip::Response {
    use rsip::headers::{CSeq, CallId, ContentLength, From, Timestamp, To, Via};
    let mut headers = rsip::Headers::default();
    for v in header_values(req, "Via") {
        headers.push(Via::new(v).into());
    }
    if let Some(v) = header_value(req, "From") {
        headers.push(From::new(v).into());
    }
    if let Some(mut v) = header_value(req, "To") {
        if let Some(tag) = to_tag {
            if header_param(&v, "tag").is_none() {
                v.push_str(";tag=");
                v.push_str(tag);
            }
        }
        headers.push(To::new(v).into());
    }
    if let Some(v) = header_value(req, "Call-ID") {
        headers.push(CallId::new(v).into());
    }
    if let Some(v) = header_value(req, "CSeq") {
        headers.push(CSeq::new(v).into());
    }
    if status_code.code() == 100 {
        if let Some(v) = header_value(req, "Timestamp") {
            headers.push(Timestamp::new(v).into());
        }
    }
    headers.push(ContentLength::new("0").into());
    rsip::Response {
        status_code,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// RFC 3261 §18.2.1 / RFC 3581 §4 on the topmost Via: add `received=` when
/// the sent-by host differs from the source address (always when `rport`
/// is present), and fill a value-less `rport` with the source port.
pub fn stamp_via_received(req: &mut rsip::Request, source: SocketAddr) {
    let Some(via) = req.headers.iter_mut().find_map(|h| match h {
        rsip::Header::Via(v) => Some(v),
        _ => None,
    }) else {
        return;
    };
    let value = via.value().to_string();
    let parts = split_semis(&value);
    let Some((head, params)) = parts.split_first() else {
        return;
    };
    let is = |p: &str, name: &str| {
        p.split('=')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case(name)
    };
    let has_rport = params.iter().any(|p| is(p, "rport"));
    let host_matches = via_sent_by(&value)
        .and_then(|(host, _)| host.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip == source.ip());
    let add_received = has_rport || !host_matches;
    let mut out = String::with_capacity(value.len() + 32);
    out.push_str(head);
    for p in params {
        if add_received && is(p, "received") {
            continue;
        }
        if is(p, "rport") && !p.contains('=') {
            let _ = write!(out, ";rport={}", source.port());
        } else {
            out.push(';');
            out.push_str(p);
        }
    }
    if add_received {
        let _ = write!(out, ";received={}", source.ip());
    }
    via.replace(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse;

    /// The borrowed split is the formatted one, for every rsip variant.
    #[test]
    fn borrowed_parts_are_header_parts() {
        let names = [
            "Accept",
            "Accept-Encoding",
            "Accept-Language",
            "Alert-Info",
            "Allow",
            "Authentication-Info",
            "Authorization",
            "Call-Info",
            "Contact",
            "Content-Disposition",
            "Content-Encoding",
            "Content-Language",
            "Content-Type",
            "Date",
            "Error-Info",
            "Event",
            "Expires",
            "In-Reply-To",
            "Mime-Version",
            "Min-Expires",
            "Organization",
            "Priority",
            "Proxy-Authenticate",
            "Proxy-Authorization",
            "Proxy-Require",
            "Record-Route",
            "Reply-To",
            "Require",
            "Retry-After",
            "Route",
            "Server",
            "Subject",
            "Supported",
            "Timestamp",
            "Unsupported",
            "User-Agent",
            "Warning",
            "WWW-Authenticate",
            "X-Other",
        ];
        let extra: String = names
            .iter()
            .map(|n| format!("{n}: <sip:v@h> ;x\r\n"))
            .collect();
        let raw = REQ.replacen(
            "Max-Forwards: 69\r\n",
            &format!("Max-Forwards: 69\r\n{extra}"),
            1,
        );
        let mut req = match parse(raw.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        };
        req.headers
            .push(rsip::headers::SubscriptionState::new(" active ").into());
        req.headers
            .push(rsip::Header::Other("x-odd ".into(), " v ".into()));
        assert!(req.headers.iter().count() > names.len() + 5);
        for h in req.headers.iter() {
            let (n, v) = borrowed_parts(h).expect("no ':' in these names");
            assert_eq!((n.to_string(), v.to_string()), header_parts(h), "{h:?}");
            let (n, v) = wire_parts(h);
            assert_eq!(format!("{n}: {v}"), h.to_string(), "{h:?}");
        }
        let odd = rsip::Header::Other("a:b".into(), "c".into());
        assert_eq!(borrowed_parts(&odd), None);
        let (n, v) = wire_parts(&odd);
        assert_eq!(format!("{n}: {v}"), odd.to_string());
        assert_eq!(value_if_named(&odd, "a"), Some("b: c".to_string()));
    }

    const REQ: &str = "INVITE sip:2000@acd.example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5062;rport;branch=z9hG4bKtop\r\n\
Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKsecond;received=192.0.2.1\r\n\
Max-Forwards: 69\r\n\
From: \"Agent; One\" <sip:1001@example.com>;tag=f-tag\r\n\
To: sip:2000@acd.example.com\r\n\
Call-ID: call-1@10.0.0.5\r\n\
CSeq: 7 INVITE\r\n\
Expires: 120\r\n\
X-Sipacd-Queue: sales\r\n\
Content-Type: Application/SDP; charset=x\r\n\
Content-Length: 0\r\n\r\n";

    fn req() -> rsip::Request {
        match parse(REQ.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accessors() {
        let r = req();
        assert_eq!(top_via_branch(&r).as_deref(), Some("z9hG4bKtop"));
        assert_eq!(call_id(&r).as_deref(), Some("call-1@10.0.0.5"));
        assert_eq!(cseq(&r), Some((7, rsip::Method::Invite)));
        assert_eq!(from_tag(&r).as_deref(), Some("f-tag"));
        assert_eq!(to_tag(&r), None);
        assert_eq!(request_user(&r).as_deref(), Some("2000"));
        assert_eq!(expires(&r), Some(120));
        assert_eq!(max_forwards(&r), Some(69));
        assert_eq!(content_type(&r).as_deref(), Some("application/sdp"));
        let msg = rsip::SipMessage::Request(r);
        assert_eq!(call_id(&msg).as_deref(), Some("call-1@10.0.0.5"));
    }

    #[test]
    fn header_value_is_case_insensitive_and_covers_other() {
        let r = req();
        assert_eq!(header_value(&r, "x-sipacd-queue").as_deref(), Some("sales"));
        assert_eq!(
            header_value(&r, "CALL-ID").as_deref(),
            Some("call-1@10.0.0.5")
        );
        assert_eq!(header_value(&r, "i").as_deref(), Some("call-1@10.0.0.5"));
        assert_eq!(header_value(&r, "X-Missing"), None);
        assert_eq!(header_values(&r, "via").len(), 2);
    }

    #[test]
    fn header_param_parsing() {
        assert_eq!(
            header_param("<sip:a@b;tag=no>;tag=yes", "TAG").as_deref(),
            Some("yes")
        );
        assert_eq!(header_param("sip:a@b;tag=x;lr", "lr").as_deref(), Some(""));
        assert_eq!(header_param("\"x;tag=q\" <sip:a@b>", "tag"), None);
        assert_eq!(header_param("<sip:a@b;lr>", "lr"), None);
        assert_eq!(
            header_param("SIP/2.0/UDP h;branch=z9", "branch").as_deref(),
            Some("z9")
        );
    }

    #[test]
    fn accessors_survive_garbage_values() {
        let mut r = req();
        r.headers = rsip::Headers::from(vec![
            rsip::Header::CSeq(rsip::headers::CSeq::new("x INVITE")),
            rsip::Header::Expires(rsip::headers::Expires::new("99999999999")),
            rsip::Header::Via(rsip::headers::Via::new("garbage")),
        ]);
        assert_eq!(cseq(&r), None);
        assert_eq!(expires(&r), None);
        assert_eq!(top_via_branch(&r), None);
        assert_eq!(from_tag(&r), None);
        assert_eq!(call_id(&r), None);
        assert_eq!(via_sent_by("garbage"), None);
    }

    #[test]
    fn sent_by() {
        assert_eq!(
            via_sent_by("SIP/2.0/UDP [2001:db8::9]:5070;branch=x"),
            Some(("2001:db8::9".into(), Some(5070)))
        );
        assert_eq!(via_sent_by("SIP/2.0/TCP host"), Some(("host".into(), None)));
    }

    #[test]
    fn response_to_copies_per_8_2_6() {
        let r = req();
        let resp = response_to(&r, 180, "Ringing", Some("acd1"));
        assert_eq!(resp.status_code, rsip::StatusCode::Ringing);
        let names: Vec<String> = resp.headers.iter().map(|h| header_parts(h).0).collect();
        assert_eq!(
            names,
            [
                "Via",
                "Via",
                "From",
                "To",
                "Call-ID",
                "CSeq",
                "Content-Length"
            ]
        );
        let vias = header_values(&resp, "Via");
        assert!(vias[0].contains("z9hG4bKtop") && vias[1].contains("z9hG4bKsecond"));
        assert_eq!(to_tag(&resp).as_deref(), Some("acd1"));
        assert_eq!(from_tag(&resp).as_deref(), Some("f-tag"));
        assert_eq!(header_value(&resp, "Content-Length").as_deref(), Some("0"));

        // An existing To tag is kept; a custom reason is kept on the wire.
        let resp2 = response_to(&r, 486, "Agent Busy", None);
        assert_eq!(resp2.status_code.code(), 486);
        let wire = String::from_utf8(serialize(&resp2.into())).unwrap();
        assert!(wire.starts_with("SIP/2.0 486 Agent Busy\r\n"), "{wire}");
        let mut tagged = r.clone();
        for h in tagged.headers.iter_mut() {
            if let rsip::Header::To(to) = h {
                to.replace("sip:2000@acd.example.com;tag=old");
            }
        }
        let resp3 = response_to(&tagged, 200, "OK", Some("new"));
        assert_eq!(to_tag(&resp3).as_deref(), Some("old"));
        let wire = serialize(&resp3.clone().into());
        assert!(wire.starts_with(b"SIP/2.0 200 OK\r\n"));
        assert_eq!(parse(&wire).unwrap(), rsip::SipMessage::Response(resp3));
    }

    #[test]
    fn response_to_hand_built_request_with_compact_headers() {
        let raw = "REGISTER sip:example.com SIP/2.0\r\n\
            Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1\r\n\
            v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n\
            f: <sip:1001@example.com>;tag=abc\r\n\
            To: <sip:1001@example.com>\r\n\
            Call-ID: xyz\r\n\
            CSeq: 2 REGISTER\r\n\
            Content-Length: 0\r\n\r\n";
        let req = rsip::Request::try_from(raw).unwrap();
        assert_eq!(
            header_value(&req, "From").as_deref(),
            Some("<sip:1001@example.com>;tag=abc")
        );
        assert_eq!(header_values(&req, "v").len(), 2);
        let resp = response_with_status(&req, rsip::StatusCode::OK, Some("t1"));
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

    #[test]
    fn timestamp_is_copied_into_100_trying_only() {
        let raw = REQ.replace("Expires: 120\r\n", "Timestamp: 54.1 0.2\r\n");
        let r = match parse(raw.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        };
        let trying = response_with_status(&r, rsip::StatusCode::Trying, None);
        assert_eq!(
            header_value(&trying, "Timestamp").as_deref(),
            Some("54.1 0.2")
        );
        assert_eq!(to_tag(&trying), None);
        let ringing = response_to(&r, 180, "Ringing", Some("x"));
        assert_eq!(header_value(&ringing, "Timestamp"), None);
    }

    #[test]
    fn stamp_received_and_rport() {
        let mut r = req();
        stamp_via_received(&mut r, "203.0.113.7:40000".parse().unwrap());
        let top = top_via(&r).unwrap();
        assert_eq!(
            top,
            "SIP/2.0/UDP 10.0.0.5:5062;rport=40000;branch=z9hG4bKtop;received=203.0.113.7"
        );
        // Only the top Via is touched.
        assert!(header_values(&r, "Via")[1].ends_with("received=192.0.2.1"));
    }

    #[test]
    fn stamp_received_only_when_host_differs() {
        let raw = REQ.replace(";rport;", ";");
        let mut r = match parse(raw.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        };
        stamp_via_received(&mut r, "10.0.0.5:5062".parse().unwrap());
        assert_eq!(
            top_via(&r).unwrap(),
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKtop"
        );
        stamp_via_received(&mut r, "10.0.0.6:5062".parse().unwrap());
        stamp_via_received(&mut r, "10.0.0.7:5062".parse().unwrap());
        assert_eq!(
            top_via(&r).unwrap(),
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKtop;received=10.0.0.7"
        );
    }

    #[test]
    fn stamp_received_with_domain_sent_by_and_ipv6() {
        let raw = REQ.replace("10.0.0.5:5062;rport;", "[2001:db8::5]:5062;");
        let mut r = match parse(raw.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        };
        stamp_via_received(&mut r, "[2001:db8::5]:5062".parse().unwrap());
        assert!(!top_via(&r).unwrap().contains("received"));
        stamp_via_received(&mut r, "[2001:db8::6]:5062".parse().unwrap());
        assert!(top_via(&r).unwrap().ends_with(";received=2001:db8::6"));
    }
}
