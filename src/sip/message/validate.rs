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
    // One pass over the headers. Every rule has a rank; the error reported
    // is the one of the lowest rank (the first value within a rank), the
    // order in which the rules are listed in `Rule`, whatever the order of
    // the headers. The text of an error is only made when it is kept.
    let mut counts = [0u8; REQUIRED.len()];
    let mut vias = 0usize;
    let mut worst: Option<(Rule, String)> = None;
    let mut note = |rule: Rule, why: &dyn Fn() -> String| {
        if worst.as_ref().is_none_or(|(r, _)| rule < *r) {
            worst = Some((rule, why()));
        }
    };
    for (name, value) in &frame.headers {
        let value: &str = value.as_ref();
        let Some(kind) = Kind::of(name) else {
            continue;
        };
        if let Some(i) = kind.required() {
            counts[i] = counts[i].saturating_add(1);
        }
        match kind {
            Kind::CallId => {
                if value.is_empty() {
                    note(Rule::EmptyCallId, &|| "empty Call-ID".into());
                }
            }
            Kind::CSeq => match cseq_method(value) {
                Err(r) => note(Rule::CSeq, &|| r.into()),
                Ok(method) => {
                    if let StartLine::Request { method: m, .. } = &frame.start {
                        if *m != method {
                            note(Rule::CSeq, &|| {
                                format!("CSeq method {} is not {}", clip(method), clip(m))
                            });
                        }
                    }
                }
            },
            Kind::Via => {
                vias += 1;
                if let Err(r) = check_via(value) {
                    note(Rule::Via, &|| format!("Via: {r}"));
                }
            }
            Kind::MaxForwards => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    note(Rule::MaxForwards, &|| "Max-Forwards is not a number".into());
                }
            }
            Kind::Addr(rule, label) => {
                if let Err(r) = check_name_addr(value) {
                    note(rule, &|| format!("{label}: {r}"));
                }
            }
        }
    }
    for (i, name) in REQUIRED.iter().enumerate() {
        match counts[i] {
            0 => return Err(bad(format!("missing {name}"))),
            1 => {}
            _ => return Err(bad(format!("more than one {name}"))),
        }
    }
    if vias == 0 {
        return Err(bad("missing Via".into()));
    }
    match worst {
        Some((_, why)) => Err(bad(why)),
        None => Ok(()),
    }
}

/// The headers that must be there once each, in the order their absence
/// or repetition is reported.
const REQUIRED: [&str; 4] = ["From", "To", "Call-ID", "CSeq"];

/// The rules after presence and uniqueness, in the order they are
/// reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    EmptyCallId,
    CSeq,
    MaxForwards,
    Via,
    FromAddr,
    ToAddr,
    ContactAddr,
    RouteAddr,
    RecordRouteAddr,
}

/// The headers `validate` looks at.
#[derive(Clone, Copy)]
enum Kind {
    CallId,
    CSeq,
    Via,
    MaxForwards,
    /// A name-addr header (From, To, Contact, Route, Record-Route), with
    /// the rule its address falls under and its name.
    Addr(Rule, &'static str),
}

impl Kind {
    /// By length first: most names are told apart without a comparison.
    fn of(name: &str) -> Option<Kind> {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        match name.len() {
            2 if is("To") => Some(Kind::Addr(Rule::ToAddr, "To")),
            3 if is("Via") => Some(Kind::Via),
            4 if is("From") => Some(Kind::Addr(Rule::FromAddr, "From")),
            4 if is("CSeq") => Some(Kind::CSeq),
            5 if is("Route") => Some(Kind::Addr(Rule::RouteAddr, "Route")),
            7 if is("Call-ID") => Some(Kind::CallId),
            7 if is("Contact") => Some(Kind::Addr(Rule::ContactAddr, "Contact")),
            12 if is("Max-Forwards") => Some(Kind::MaxForwards),
            12 if is("Record-Route") => Some(Kind::Addr(Rule::RecordRouteAddr, "Record-Route")),
            _ => None,
        }
    }

    /// Its index in [`REQUIRED`], if it is one of those.
    fn required(self) -> Option<usize> {
        match self {
            Kind::Addr(Rule::FromAddr, _) => Some(0),
            Kind::Addr(Rule::ToAddr, _) => Some(1),
            Kind::CallId => Some(2),
            Kind::CSeq => Some(3),
            _ => None,
        }
    }
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
    // Without a quote (nearly every value) the first '<' opens the address
    // and the first '>' after it closes it: no byte-by-byte walk.
    if memchr::memchr(b'"', value.as_bytes()).is_none() {
        let addr_end = match memchr::memchr(b'<', value.as_bytes()) {
            Some(open) => {
                let close =
                    memchr::memchr(b'>', &value.as_bytes()[open..]).ok_or("unterminated <")?;
                Some(open + close + 1)
            }
            None => None,
        };
        return check_addr_params(value, addr_end);
    }
    check_name_addr_walk(value)
}

/// [`check_name_addr`] byte by byte, quotes and escapes followed.
fn check_name_addr_walk(value: &str) -> Result<(), &'static str> {
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
    check_addr_params(value, addr_end)
}

/// The ;params after a name-addr's address (which ends at `addr_end`, when
/// it is in <...>).
fn check_addr_params(value: &str, addr_end: Option<usize>) -> Result<(), &'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The quick path of a value without quotes says what the walk says.
        #[test]
        fn the_quick_name_addr_check_agrees_with_the_walk(v in "[<>;=a-z@: ,\\\\\"]{0,24}") {
            prop_assert_eq!(check_name_addr(&v), if v == "*" { Ok(()) } else { check_name_addr_walk(&v) });
        }
    }
}
