//! Error responses for requests that never became an `rsip::Request`:
//! the transaction-identifying headers are scanned from the raw bytes.

use super::{expand_compact, reason_phrase, ParseError, MAX_HEADERS, MAX_MESSAGE_SIZE};
use std::fmt::Write as _;

/// Bytes of the response to send for a request `parse` refused, or `None`
/// when the error is to be dropped silently, `raw` is not recognisably a
/// request, is an ACK (never answered), or carries no Via to send the
/// response back along.
pub fn error_response(raw: &[u8], err: &ParseError) -> Option<Vec<u8>> {
    let status = err.status()?;
    let raw = raw.get(..raw.len().min(MAX_MESSAGE_SIZE))?;
    let start = raw.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let raw = raw.get(start..)?;
    let head_end = find(raw, b"\r\n\r\n")
        .or_else(|| find(raw, b"\n\n"))
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(raw.get(..head_end)?);
    let mut lines = head.lines();
    let first = lines.next()?;
    // An ACK is never answered (RFC 3261 §17): a broken one is dropped.
    if !looks_like_request(first) || first.split_ascii_whitespace().next() == Some("ACK") {
        return None;
    }

    let mut found: Vec<(&'static str, String)> = Vec::new();
    let mut last_kept = false;
    for line in lines.take(MAX_HEADERS) {
        if line.starts_with([' ', '\t']) {
            if let (true, Some((_, value))) = (last_kept, found.last_mut()) {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        last_kept = false;
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let name = expand_compact(name).unwrap_or(name);
        let Some(canonical) = ["Via", "From", "To", "Call-ID", "CSeq"]
            .into_iter()
            .find(|n| n.eq_ignore_ascii_case(name))
        else {
            continue;
        };
        // Every Via, but only the first of the others.
        if canonical != "Via" && found.iter().any(|(n, _)| *n == canonical) {
            continue;
        }
        found.push((canonical, value.trim().to_string()));
        last_kept = true;
    }
    if !found.iter().any(|(n, _)| *n == "Via") {
        return None;
    }

    let mut out = format!("SIP/2.0 {status} {}\r\n", reason_phrase(status));
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for (_, value) in found.iter().filter(|(n, _)| *n == name) {
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            let _ = write!(out, "{name}: {value}");
            if name == "To" && !has_tag(&value) {
                let _ = write!(out, ";tag={:016x}", fnv1a(raw));
            }
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// "TOKEN something SIP/x": a request line, however broken in the middle.
fn looks_like_request(line: &str) -> bool {
    let mut fields = line.split_ascii_whitespace();
    let method_ok = fields.next().is_some_and(|m| {
        m.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c))
    });
    let last = fields.last().unwrap_or("");
    method_ok
        && last
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
}

fn has_tag(to: &str) -> bool {
    let lower = to.to_ascii_lowercase();
    let params = match lower.rfind('>') {
        Some(i) => &lower[i..],
        None => &lower[..],
    };
    params
        .split(';')
        .skip(1)
        .any(|p| p.split('=').next().map(str::trim) == Some("tag"))
}

/// A stable tag: retransmissions of the same bad request get the same To tag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
