//! Request-URI parsing. rsip's URI tokenizer stops at the first ';' of the
//! user part and splits IPv6 hosts at ':', so sip/sips URIs are parsed here
//! (RFC 3261 §19.1.1) into rsip's own `Uri` type. Other schemes go to rsip
//! and are kept only if they survive a round trip.

use super::scan::find_unquoted;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{clip, ParseError};

/// The reason of a Request-URI that made rsip panic.
pub(crate) const RSIP_PANICKED: &str = "rsip panicked";

pub(crate) fn parse_request_uri(s: &str) -> Result<rsip::Uri, ParseError> {
    let bad = |r: &str| ParseError::BadRequest(format!("Request-URI: {r}"));
    let (scheme, rest) = s.split_once(':').ok_or_else(|| bad("no scheme"))?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(bad("malformed scheme"));
    }
    if scheme.eq_ignore_ascii_case("sip") {
        return parse_sip(rsip::Scheme::Sip, rest).map_err(bad);
    }
    if scheme.eq_ignore_ascii_case("sips") {
        return parse_sip(rsip::Scheme::Sips, rest).map_err(bad);
    }
    // A panic inside rsip is refused as a bad request under a reason of
    // its own, so the never-panics properties see it (a plain 416 would
    // hide it among the schemes rsip merely cannot carry).
    let other = catch_unwind(AssertUnwindSafe(|| rsip::Uri::try_from(s)));
    match other {
        Ok(Ok(uri)) if uri.to_string().eq_ignore_ascii_case(s) => Ok(uri),
        Ok(_) => Err(ParseError::UnsupportedUriScheme(clip(scheme))),
        Err(_) => Err(bad(RSIP_PANICKED)),
    }
}

/// A URI inside a header (From, To, Contact, Route): like the Request-URI,
/// but URI headers (`?subject=x`, legal there) are dropped, not refused,
/// and a quoted parameter value (outside the grammar, yet sent by some
/// phones) is kept as written.
pub(crate) fn parse_header_uri(s: &str) -> Result<rsip::Uri, &'static str> {
    let s = s.trim();
    let (scheme, rest) = s.split_once(':').ok_or("no scheme")?;
    let rest = match find_unquoted(rest, '?') {
        Some(i) => &rest[..i],
        None => rest,
    };
    if scheme.eq_ignore_ascii_case("sip") {
        return parse_sip_with(rsip::Scheme::Sip, rest, true);
    }
    if scheme.eq_ignore_ascii_case("sips") {
        return parse_sip_with(rsip::Scheme::Sips, rest, true);
    }
    match parse_request_uri(s) {
        Ok(uri) => Ok(uri),
        Err(_) => Err("unsupported URI"),
    }
}

/// Characters allowed (besides %HH) in user and password, RFC 3261 §25.1.
fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,;?/".contains(c)
}

fn is_password_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,".contains(c)
}

fn is_param_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()%[]/:&+$".contains(c)
}

fn parse_sip(scheme: rsip::Scheme, rest: &str) -> Result<rsip::Uri, &'static str> {
    parse_sip_with(scheme, rest, false)
}

/// `quoted_values`: accept `name="..."` URI parameters (header URIs only).
fn parse_sip_with(
    scheme: rsip::Scheme,
    rest: &str,
    quoted_values: bool,
) -> Result<rsip::Uri, &'static str> {
    // '@' is never legal unescaped after the userinfo, so the first one ends it.
    let (auth, rest) = match rest.split_once('@') {
        Some((userinfo, rest)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if user.is_empty() || !user.chars().all(is_user_char) {
                return Err("bad user part");
            }
            if password.is_some_and(|p| !p.chars().all(is_password_char)) {
                return Err("bad password");
            }
            (Some(rsip::Auth::from((user, password))), rest)
        }
        None => (None, rest),
    };
    if rest.contains('?') {
        // Headers are not allowed in a Request-URI (RFC 3261 §19.1.5).
        return Err("headers in Request-URI");
    }
    let (hostport, params) = match rest.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let host_with_port = parse_hostport(hostport)?;
    let mut out = Vec::new();
    for p in params.into_iter().flat_map(super::split_semis) {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        let value_ok = |v: &str| {
            let quoted = quoted_values && is_quoted_string(v);
            quoted || (!v.is_empty() && v.chars().all(is_param_char))
        };
        if name.is_empty()
            || !name.chars().all(is_param_char)
            || value.is_some_and(|v| !value_ok(v))
        {
            return Err("bad URI parameter");
        }
        // rsip maps well-known names (transport, lr, ...) to typed variants;
        // a value it cannot type (transport=foo) is kept as an Other param.
        let param = rsip::Param::try_from((name, value)).unwrap_or_else(|_| {
            rsip::Param::Other(name.into(), value.map(rsip::param::OtherParamValue::from))
        });
        out.push(param);
    }
    Ok(rsip::Uri {
        scheme: Some(scheme),
        auth,
        host_with_port,
        params: out,
        headers: Vec::new(),
    })
}

/// `"..."` with every inner '"' escaped.
fn is_quoted_string(v: &str) -> bool {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return false;
    };
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return false,
            _ => {}
        }
    }
    !escaped
}

fn parse_hostport(s: &str) -> Result<rsip::HostWithPort, &'static str> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unterminated IPv6 reference")?;
        addr.parse::<Ipv6Addr>().map_err(|_| "bad IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after IPv6 reference")?),
        };
        // rsip prints IpAddr::V6 without brackets; keep the reference as text.
        (rsip::Host::Domain(format!("[{addr}]").into()), port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !valid {
            return Err("bad host");
        }
        let host = match host.parse::<Ipv4Addr>() {
            Ok(ip) => rsip::Host::IpAddr(IpAddr::V4(ip)),
            Err(_) => rsip::Host::Domain(host.into()),
        };
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(
            rsip::Port::from(p.parse::<u16>().map_err(|_| "port out of range")?),
        ),
        Some(_) => return Err("bad port"),
    };
    Ok(rsip::HostWithPort { host, port })
}
