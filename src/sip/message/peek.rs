//! A request's transaction and dialog identifiers read straight from its
//! bytes, without building anything: the top Via's branch and sent-by, the
//! Call-ID, the CSeq number, the From and To tags. Enough to recognise a
//! retransmission or find the call of an in-dialog request.
//!
//! Conservative by design: whenever the layout is one that normalisation
//! would rewrite in a way that could change a value (folded lines, quotes
//! or brackets in the Via, LWS inside the Via, control or non-ASCII bytes,
//! repeated headers, a tag that is not a token), or the branch is an RFC
//! 2543 one, it says nothing and the caller parses. Whenever it answers and
//! `parse` accepts the message, its answer is the parsed message's (the
//! property tests check this); for a message `parse` refuses it may still
//! answer, so callers act on it only for bytes already known good.

use super::normalize::expand_compact;
use super::{known_method, MAX_MESSAGE_SIZE};
use crate::sip::headers::{param_str, params_in, params_region};
use crate::sip::transaction::MAGIC_COOKIE;

/// What identifies a request, borrowed from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds<'a> {
    pub method: rsip::Method,
    /// Top Via branch (always an RFC 3261 one, `z9hG4bK...`).
    pub branch: &'a str,
    /// Top Via sent-by as written (`host[:port]`).
    pub sent_by: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub from_tag: Option<&'a str>,
    pub to_tag: Option<&'a str>,
}

/// The identifiers of the request in `bytes`, or `None` (see module docs).
pub fn peek_request(bytes: &[u8]) -> Option<RequestIds<'_>> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return None;
    }
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut lines = bytes[start..].split(|&b| b == b'\n').map(strip_cr);
    let request_line = std::str::from_utf8(lines.next()?).ok()?;
    let method_name = request_line.split(' ').next()?;
    let method = known_method(method_name)?;

    let (mut via, mut call_id, mut cseq, mut from, mut to) = (None, None, None, None, None);
    for line in lines {
        if line.is_empty() {
            break; // end of the header block
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return None; // folded: normalisation joins lines
        }
        let line = std::str::from_utf8(line).ok()?;
        let (name, value) = line.split_once(':')?;
        let name = name.trim_end_matches([' ', '\t']);
        let value = value.trim_matches([' ', '\t']);
        let name = expand_compact(name).unwrap_or(name);
        let slot = match name.len() {
            2 if name.eq_ignore_ascii_case("To") => &mut to,
            3 if name.eq_ignore_ascii_case("Via") => {
                via = via.or(Some(value));
                continue;
            }
            4 if name.eq_ignore_ascii_case("From") => &mut from,
            4 if name.eq_ignore_ascii_case("CSeq") => &mut cseq,
            7 if name.eq_ignore_ascii_case("Call-ID") => &mut call_id,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return None; // repeated: `parse` refuses it
        }
    }

    let (branch, sent_by) = top_via(via?)?;
    let call_id = call_id.filter(|c| !c.is_empty() && plain(c))?;
    let cseq = cseq_number(cseq?, method_name)?;
    Some(RequestIds {
        method,
        branch,
        sent_by,
        call_id,
        cseq,
        from_tag: tag(from?)?,
        to_tag: tag(to?)?,
    })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Printable ASCII and spaces only: what `str::trim` and `trim_matches`
/// treat alike, and what normalisation leaves alone outside LWS.
fn plain(s: &str) -> bool {
    s.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// Branch and sent-by of the first Via value, if normalisation would leave
/// that value as written: no quotes, brackets or tabs, and every space a
/// single one between two characters that are not separators. (What
/// follows the first ',' cannot change the first value.)
fn top_via(value: &str) -> Option<(&str, &str)> {
    // The first ',' ends the top value unless a quote or bracket came first.
    let top = value.split(',').next()?.trim_matches(' ');
    if !plain(top) || top.contains(['"', '<', '>']) {
        return None;
    }
    let b = top.as_bytes();
    let sep = |c: u8| b" ;=,/:".contains(&c);
    let tight = b
        .iter()
        .enumerate()
        .all(|(i, &c)| c != b' ' || (i > 0 && i + 1 < b.len() && !sep(b[i - 1]) && !sep(b[i + 1])));
    if !tight {
        return None;
    }
    let branch = param_str(top, "branch").filter(|b| b.starts_with(MAGIC_COOKIE))?;
    let sent_by = top.split(';').next()?.split(' ').nth(1)?;
    Some((branch, sent_by))
}

/// The number of "number method", if the method is the request's.
fn cseq_number(value: &str, method: &str) -> Option<u32> {
    let mut parts = value.split_ascii_whitespace();
    let (num, m, None) = (parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    if m != method || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse().ok()
}

/// The `tag` parameter of a From or To value: `Some(None)` when it has
/// none, `None` when normalisation could change the answer.
fn tag(value: &str) -> Option<Option<&str>> {
    // LWS between the address and the first ';' is dropped by
    // normalisation; any other LWS in the tag makes it not a token.
    let params = params_region(value)
        .unwrap_or("")
        .trim_start_matches([' ', '\t']);
    if !params.starts_with(';') {
        return Some(None);
    }
    match params_in(params, "tag") {
        None | Some("") => Some(None),
        Some(t) if super::is_token(t) => Some(Some(t)),
        Some(_) => None,
    }
}
