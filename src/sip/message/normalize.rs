//! Framing and layout normalisation (RFC 3261 §7): leading CRLFs, header
//! folding, LWS around colons, compact names, comma lists, Content-Length.
//!
//! Borrowed where it can be: a header whose value normalisation leaves as
//! written (no folding, no LWS to tighten, the usual case) points into the
//! datagram, so a message costs one `String` per header when `build` moves
//! it into rsip, not four (`benches/sip_parse.rs`).

use std::borrow::Cow;

use super::scan::Quotes;
use super::{clip, ParseError, MAX_HEADERS, MAX_MESSAGE_SIZE};

/// A message split into its parts, headers already canonical.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub start: StartLine<'a>,
    /// (name, value): full names, unfolded, trimmed, one list element each.
    pub headers: Vec<(&'a str, Cow<'a, str>)>,
    pub body: &'a [u8],
}

#[derive(Debug)]
pub(crate) enum StartLine<'a> {
    Request { method: &'a str, uri: &'a str },
    Response { code: u16, reason: &'a str },
}

impl Frame<'_> {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The layout rsip's tokenizer accepts (the reference `build` is tested
    /// against). The Request-URI is a placeholder.
    #[cfg(test)]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(256 + self.headers.len() * 48);
        match &self.start {
            StartLine::Request { method, .. } => {
                let _ = write!(s, "{method} sip:placeholder.invalid SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                let _ = write!(s, "SIP/2.0 {code} {reason}\r\n");
            }
        }
        for (n, v) in &self.headers {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        s.push_str("\r\n");
        let mut out = s.into_bytes();
        out.extend_from_slice(self.body);
        out
    }
}

/// RFC 3261 §7.3.3 and the IANA registry of compact header names.
pub(crate) fn expand_compact(name: &str) -> Option<&'static str> {
    let &[c] = name.as_bytes() else { return None };
    Some(match c.to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'n' => "Identity-Info",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => return None,
    })
}

/// RFC 3261 token characters (method names, header names, param names).
#[inline]
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~'
        )
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// How a header's value is rewritten: which separators swallow LWS around
/// them, and whether the value is a comma-separated list to split.
fn shape(name: &str) -> Option<(&'static str, bool)> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("Via") {
        Some((";=,/:", true))
    } else if is("Contact") || is("Route") || is("Record-Route") {
        Some((";=,", true))
    } else if is("From") || is("To") {
        Some((";=", false))
    } else {
        None
    }
}

/// Split off leading CRLFs (RFC 3261 §7.5) and the header block.
/// Returns (start line, header lines, bytes after the blank line).
fn split_head(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(data.len());
    let data = &data[start..];
    let mut head_end = data.len();
    let mut body_start = data.len();
    for i in memchr::memchr_iter(b'\n', data) {
        let rest = &data[i + 1..];
        if rest.starts_with(b"\r\n") {
            (head_end, body_start) = (i + 1, i + 3);
            break;
        }
        if rest.starts_with(b"\n") {
            (head_end, body_start) = (i + 1, i + 2);
            break;
        }
    }
    let head = &data[..head_end];
    let (first, rest) = match memchr::memchr(b'\n', head) {
        Some(i) => (&head[..i], &head[i + 1..]),
        None => (head, &head[head.len()..]),
    };
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    (first, rest, &data[body_start..])
}

fn starts_with_sip(line: &[u8]) -> bool {
    line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/")
}

/// Parse "SIP/x.y"; `Ok(true)` when it is 2.0.
fn version_is_2_0(v: &str) -> Result<bool, ()> {
    let rest = v
        .get(4..)
        .filter(|_| starts_with_sip(v.as_bytes()))
        .ok_or(())?;
    let (major, minor) = rest.split_once('.').ok_or(())?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(());
    }
    fn num(s: &str) -> &str {
        s.trim_start_matches('0')
    }
    Ok(num(major) == "2" && num(minor).is_empty())
}

fn parse_start(line: &[u8]) -> Result<StartLine<'_>, ParseError> {
    if starts_with_sip(line) {
        let bad = |r: &str| ParseError::BadResponse(r.into());
        let line = std::str::from_utf8(line).map_err(|_| bad("status line not UTF-8"))?;
        let (version, rest) = line.split_once(' ').ok_or_else(|| bad("no status code"))?;
        if version_is_2_0(version) != Ok(true) {
            return Err(bad("response version is not SIP/2.0"));
        }
        let rest = rest.trim_start_matches(' ');
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("status code is not three digits"));
        }
        let code: u16 = code.parse().map_err(|_| bad("bad status code"))?;
        if !(100..=699).contains(&code) {
            return Err(bad("status code out of range"));
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.trim(),
        });
    }
    // Liberal about runs of whitespace (RFC 4475 lwsstart, trws), strict
    // about their count: "sip:u@h; lr" is four fields (lwsruri) -> 400.
    // The first three fields, the last one and how many there are.
    let (mut first3, mut last, mut count): ([&[u8]; 3], &[u8], usize) = ([&[]; 3], &[], 0);
    for f in line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|f| !f.is_empty())
    {
        if count < 3 {
            first3[count] = f;
        }
        (last, count) = (f, count + 1);
    }
    let looks_like_request =
        count >= 2 && starts_with_sip(last) && first3[0].iter().all(|&b| is_token_char(b as char));
    if !looks_like_request {
        return Err(ParseError::Garbage("no request or status line"));
    }
    let bad = |r: &str| ParseError::BadRequest(r.into());
    let ([method, uri, version], 3) = (first3, count) else {
        return Err(bad("request line must have three fields"));
    };
    let text = std::str::from_utf8;
    let version = text(version).map_err(|_| bad("version not UTF-8"))?;
    match version_is_2_0(version) {
        Ok(true) => {}
        Ok(false) => return Err(ParseError::VersionNotSupported(clip(version))),
        Err(()) => return Err(bad("malformed SIP version")),
    }
    Ok(StartLine::Request {
        method: text(method).map_err(|_| bad("method not UTF-8"))?,
        uri: text(uri).map_err(|_| bad("Request-URI not UTF-8"))?,
    })
}

/// Frame and normalise one message. Errors already carry the right status.
pub(crate) fn frame(datagram: &[u8]) -> Result<Frame<'_>, ParseError> {
    let (first, lines, rest) = split_head(datagram);
    if first.is_empty() {
        return Err(ParseError::Empty);
    }
    if datagram.len() > MAX_MESSAGE_SIZE {
        let request = matches!(parse_start(first), Ok(StartLine::Request { .. }));
        return Err(ParseError::TooLarge {
            size: datagram.len(),
            request,
        });
    }
    let start = parse_start(first)?;
    let request = matches!(start, StartLine::Request { .. });
    let bad = |r: String| match request {
        true => ParseError::BadRequest(r),
        false => ParseError::BadResponse(r),
    };
    let lines = std::str::from_utf8(lines).map_err(|_| bad("header block not UTF-8".into()))?;
    let raw = unfold(lines).map_err(|r| bad(r.into()))?;

    let mut headers: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(raw.len() + 4);
    for (name, value) in raw {
        let name = expand_compact(name).unwrap_or(name);
        match shape(name) {
            Some((seps, split)) => {
                let value = tighten_cow(value, seps);
                if !split {
                    headers.push((name, value));
                } else {
                    let empty = || bad(format!("empty element in {name} list"));
                    match value {
                        // One element, as written (most Via/Contact/Route values).
                        Cow::Borrowed(v) if memchr::memchr(b',', v.as_bytes()).is_none() => {
                            let v = v.trim();
                            if v.is_empty() {
                                return Err(empty());
                            }
                            headers.push((name, Cow::Borrowed(v)));
                        }
                        Cow::Borrowed(v) => {
                            for item in split_list(v, ',') {
                                if item.is_empty() {
                                    return Err(empty());
                                }
                                headers.push((name, Cow::Borrowed(item)));
                            }
                        }
                        Cow::Owned(v) => {
                            for item in split_list(&v, ',') {
                                if item.is_empty() {
                                    return Err(empty());
                                }
                                headers.push((name, Cow::Owned(item.to_string())));
                            }
                        }
                    }
                }
            }
            None => headers.push((name, value)),
        }
        if headers.len() > MAX_HEADERS {
            return Err(bad("too many headers".into()));
        }
    }
    let body = apply_content_length(&mut headers, rest).map_err(bad)?;
    Ok(Frame {
        start,
        headers,
        body,
    })
}

/// Join continuation lines (RFC 3261 §7.3.1) and split "name LWS : LWS value".
fn unfold(lines: &str) -> Result<Vec<(&str, Cow<'_, str>)>, &'static str> {
    let mut out: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(16);
    for span in super::line_spans(lines.as_bytes()) {
        // '\n' is ASCII: every span is on char boundaries.
        let line = lines
            .get(span)
            .ok_or("header block cut inside a character")?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = out.last_mut().ok_or("continuation before any header")?;
            let value = value.to_mut();
            value.push(' ');
            value.push_str(line.trim_start_matches([' ', '\t']));
            continue;
        }
        if out.len() >= MAX_HEADERS {
            return Err("too many headers");
        }
        let colon = memchr::memchr(b':', line.as_bytes()).ok_or("header line without colon")?;
        // ':' is ASCII: both cuts are on char boundaries.
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err("invalid header name");
        }
        out.push((name, Cow::Borrowed(value)));
    }
    for (_, value) in &mut out {
        match value {
            Cow::Borrowed(v) => *v = v.trim_matches([' ', '\t']),
            Cow::Owned(v) => {
                let trimmed = v.trim_matches([' ', '\t']);
                if trimmed.len() != v.len() {
                    *v = trimmed.to_string();
                }
            }
        }
    }
    Ok(out)
}

/// [`tighten`], borrowed when there is no LWS to touch (the value is then
/// left exactly as it is).
fn tighten_cow<'a>(value: Cow<'a, str>, seps: &str) -> Cow<'a, str> {
    if is_tight(value.as_bytes(), seps.as_bytes()) {
        value
    } else {
        Cow::Owned(tighten(&value, seps))
    }
}

/// Whether [`tighten`] would leave `value` as it is: outside quoted
/// strings and <...>, every LWS is one SP between two bytes that are
/// neither LWS nor separators ("SIP/2.0/UDP host;branch=x" is tight).
fn is_tight(value: &[u8], seps: &[u8]) -> bool {
    let loose = |b: u8| b == b' ' || b == b'\t' || seps.contains(&b);
    // Enough, whatever the quoting: no tab, and every SP between two bytes
    // that are not loose (nearly every value: "SIP/2.0/UDP h;branch=x",
    // "\"Bob\" <sip:b@h>;tag=t"). Only the rest pays for the scan below.
    let quick = value.iter().enumerate().all(|(i, &b)| match b {
        b'\t' => false,
        b' ' => i > 0 && !loose(value[i - 1]) && value.get(i + 1).is_some_and(|&n| !loose(n)),
        _ => true,
    });
    quick || is_tight_quoted(value, loose)
}

/// [`is_tight`] the long way: LWS inside quoted strings and <...> is
/// left alone, so it may sit anywhere there.
fn is_tight_quoted(value: &[u8], loose: impl Fn(u8) -> bool) -> bool {
    let (mut quotes, mut angle) = (Quotes::default(), false);
    for (i, &b) in value.iter().enumerate() {
        if quotes.skip(b as char) {
            continue;
        }
        if angle {
            angle = b != b'>';
            continue;
        }
        match b {
            b'"' => quotes.open(),
            b'<' => angle = true,
            b'\t' => return false,
            b' ' => {
                let before = i.checked_sub(1).and_then(|j| value.get(j));
                let after = value.get(i + 1);
                if !matches!((before, after), (Some(&p), Some(&n)) if !loose(p) && !loose(n)) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// Drop LWS next to `seps` and collapse other LWS runs to one SP, outside
/// quoted strings and <...>: "SIP / 2.0 /UDP h ; branch = x" ->
/// "SIP/2.0/UDP h;branch=x" (RFC 3261 SLASH/SEMI/EQUAL/COMMA allow SWS).
pub(crate) fn tighten(value: &str, seps: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut quotes, mut angle) = (Quotes::default(), false);
    let (mut pending_ws, mut after_sep) = (false, true);
    for c in value.chars() {
        if quotes.skip(c) {
            out.push(c);
            continue;
        }
        if angle {
            out.push(c);
            angle = c != '>';
            continue;
        }
        match c {
            ' ' | '\t' => pending_ws = true,
            c if c.is_ascii() && seps.as_bytes().contains(&(c as u8)) => {
                out.push(c);
                (pending_ws, after_sep) = (false, true);
            }
            c => {
                if pending_ws && !after_sep {
                    out.push(' ');
                }
                out.push(c);
                (pending_ws, after_sep) = (false, false);
                if c == '"' {
                    quotes.open();
                }
                angle = c == '<';
            }
        }
    }
    out
}

/// Split at `sep` (ASCII) outside quoted strings and <...>; items are trimmed.
pub(crate) fn split_list(value: &str, sep: char) -> Vec<&str> {
    debug_assert!(sep.is_ascii());
    let mut items = Vec::new();
    let (mut quotes, mut angle) = (Quotes::default(), false);
    let mut start = 0;
    // Bytes, not chars: the delimiters are ASCII (see `message::semis`).
    for (i, c) in value.bytes().enumerate() {
        let c = c as char;
        if quotes.skip(c) {
            continue;
        }
        match c {
            '"' if !angle => quotes.open(),
            '<' => angle = true,
            '>' => angle = false,
            c if c == sep && !angle => {
                items.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim());
    items
}

/// Body = exactly Content-Length bytes (extra datagram bytes ignored, RFC
/// 3261 §18.3); without the header the rest of the datagram. Leaves exactly
/// one canonical Content-Length header.
fn apply_content_length<'a>(
    headers: &mut Vec<(&'a str, Cow<'a, str>)>,
    rest: &'a [u8],
) -> Result<&'a [u8], String> {
    let mut length: Option<usize> = None;
    for (name, value) in headers.iter() {
        if !name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad Content-Length {:?}", clip(value)));
        }
        let n: usize = value
            .parse()
            .map_err(|_| "bad Content-Length".to_string())?;
        if length.is_some_and(|prev| prev != n) {
            return Err("conflicting Content-Length headers".into());
        }
        length = Some(n);
    }
    let Some(n) = length else {
        // UDP without Content-Length: the body runs to the end of the datagram.
        headers.push(("Content-Length", Cow::Owned(rest.len().to_string())));
        return Ok(rest);
    };
    let mut seen = false;
    headers.retain_mut(|(name, value)| {
        if !name.eq_ignore_ascii_case("Content-Length") {
            return true;
        }
        if seen {
            return false;
        }
        seen = true;
        *name = "Content-Length";
        // Already canonical (no leading zeros): keep it borrowed.
        if value.len() > 1 && value.starts_with('0') {
            *value = Cow::Owned(n.to_string());
        }
        true
    });
    rest.get(..n)
        .ok_or_else(|| format!("body has {} bytes, Content-Length says {n}", rest.len()))
}

#[cfg(test)]
mod tight_tests {
    use super::{is_tight, is_tight_quoted, tighten};
    use proptest::prelude::*;

    proptest! {
        /// The quick test never changes the answer, and a value called
        /// tight is one `tighten` leaves as it is.
        #[test]
        fn the_quick_test_agrees_with_the_scan(v in "[ \t;=,/:\"<>\\\\ab]{0,24}") {
            for seps in [";=,/:", ";=,", ";="] {
                let loose = |b: u8| b == b' ' || b == b'\t' || seps.as_bytes().contains(&b);
                let tight = is_tight(v.as_bytes(), seps.as_bytes());
                prop_assert_eq!(tight, is_tight_quoted(v.as_bytes(), loose));
                if tight {
                    prop_assert_eq!(tighten(&v, seps), v.clone());
                }
            }
        }
    }
}
