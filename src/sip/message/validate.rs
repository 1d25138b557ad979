//! RFC 3261 rules rsip does not check: required headers present and single,
//! CSeq a 32-bit number whose method matches the request, well-formed Via
//! and name-addr headers (balanced quotes, no empty parameters).

use super::normalize::{is_token, Frame, StartLine};
use super::scan::Quotes;
use super::{clip, ParseError};

pub(crate) fn validate(frame: &Frame<'_>) -> Result<(), ParseError> {
    let bad = |r: String| match frame.is_request() {
        true => ParseError::BadRequest(r),
        false => ParseError::BadResponse(r),
    };
    let values = |name: &'static str| {
        frame
            .headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    };
    for name in ["From", "To", "Call-ID", "CSeq"] {
        match values(name).count() {
            0 => return Err(bad(format!("missing {name}"))),
            1 => {}
            _ => return Err(bad(format!("more than one {name}"))),
        }
    }
    if values("Via").next().is_none() {
        return Err(bad("missing Via".into()));
    }
    if values("Call-ID").any(str::is_empty) {
        return Err(bad("empty Call-ID".into()));
    }
    for cseq in values("CSeq") {
        let method = cseq_method(cseq).map_err(|r| bad(r.into()))?;
        if let StartLine::Request { method: m, .. } = &frame.start {
            if *m != method {
                return Err(bad(format!(
                    "CSeq method {} is not {}",
                    clip(method),
                    clip(m)
                )));
            }
        }
    }
    for mf in values("Max-Forwards") {
        if mf.is_empty() || !mf.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("Max-Forwards is not a number".into()));
        }
    }
    for via in values("Via") {
        check_via(via).map_err(|r| bad(format!("Via: {r}")))?;
    }
    for name in ["From", "To", "Contact", "Route", "Record-Route"] {
        for v in values(name) {
            check_name_addr(v).map_err(|r| bad(format!("{name}: {r}")))?;
        }
    }
    Ok(())
}

/// "1*DIGIT LWS Method" with the number below 2**32 (RFC 3261 §8.1.1.5).
pub(crate) fn cseq_method(value: &str) -> Result<&str, &'static str> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(num), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("CSeq is not 'number method'");
    };
    if !num.bytes().all(|b| b.is_ascii_digit()) || num.parse::<u32>().is_err() {
        return Err("CSeq number is not a 32-bit integer");
    }
    if !is_token(method) {
        return Err("CSeq method is not a token");
    }
    Ok(method)
}

/// "SIP/2.0/transport sent-by *(;param)" after normalisation.
fn check_via(via: &str) -> Result<(), &'static str> {
    let (head, params) = via.split_once(';').unwrap_or((via, ""));
    let (protocol, sent_by) = head.split_once(' ').ok_or("no sent-by")?;
    let mut parts = protocol.split('/');
    let three_tokens = (0..3).all(|_| parts.next().is_some_and(is_token));
    if !three_tokens || parts.next().is_some() {
        return Err("bad sent-protocol");
    }
    if sent_by.is_empty() || sent_by.contains([' ', '"', '<', '>']) {
        return Err("bad sent-by");
    }
    if !params.is_empty() || via.ends_with(';') {
        check_params(params)?;
    }
    Ok(())
}

/// Balanced quotes and brackets; every ;param after the address non-empty.
fn check_name_addr(value: &str) -> Result<(), &'static str> {
    if value == "*" {
        return Ok(());
    }
    let mut quotes = Quotes::default();
    let mut addr_end = None;
    let mut angle_open = false;
    // Bytes, not chars: every delimiter is ASCII, and no byte of a UTF-8
    // multi-byte character is.
    for (i, c) in value.bytes().enumerate() {
        let c = c as char;
        if quotes.skip(c) {
            continue;
        }
        match c {
            '"' if !angle_open => quotes.open(),
            '<' if !angle_open && addr_end.is_none() => angle_open = true,
            '>' if angle_open => {
                angle_open = false;
                addr_end = Some(i + 1);
            }
            _ => {}
        }
    }
    if quotes.is_open() {
        return Err("unterminated quoted string");
    }
    if angle_open {
        return Err("unterminated <");
    }
    // Without <...> the first ';' starts header parameters (RFC 3261 §20).
    let params = match addr_end {
        Some(end) => value.get(end..).unwrap_or(""),
        None => value.find(';').and_then(|i| value.get(i..)).unwrap_or(""),
    };
    if params.is_empty() {
        return Ok(());
    }
    let params = params.strip_prefix(';').ok_or("junk after address")?;
    check_params(params)
}

/// "name[=value]" separated by ';', names tokens, none empty.
fn check_params(params: &str) -> Result<(), &'static str> {
    for p in semis(params) {
        let name = p.split_once('=').map_or(p, |(n, _)| n);
        if !is_token(name) {
            return Err("empty or invalid parameter");
        }
    }
    Ok(())
}

/// Split at ';' outside quoted strings.
pub(crate) fn split_semis(s: &str) -> Vec<&str> {
    semis(s).collect()
}

/// [`split_semis`] as an iterator (nothing allocated).
pub(crate) fn semis(s: &str) -> Semis<'_> {
    Semis {
        rest: Some(s),
        quotes: Quotes::default(),
    }
}

/// The pieces of [`semis`]: always at least one, the last one after the
/// last unquoted ';'.
pub(crate) struct Semis<'a> {
    rest: Option<&'a str>,
    quotes: Quotes,
}

impl<'a> Iterator for Semis<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        // Bytes, not chars: ';' and '"' are ASCII, and no byte of a UTF-8
        // multi-byte character is, so every cut is on a char boundary.
        for (i, c) in s.bytes().enumerate() {
            let c = c as char;
            if self.quotes.skip(c) {
                continue;
            }
            match c {
                '"' => self.quotes.open(),
                ';' => {
                    self.rest = s.get(i + 1..);
                    return s.get(..i);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(s)
    }
}
