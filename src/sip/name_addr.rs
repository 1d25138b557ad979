//! name-addr and addr-spec header values (From, To, Contact, Route,
//! Record-Route; RFC 3261 §20.10 and §25.1), parsed here rather than by
//! rsip: rsip's tokenizer takes only token characters in a parameter value,
//! so any quoted one (`+sip.instance="<urn:uuid:…>"`, RFC 5626; quoted
//! `pub-gruu`, RFC 5627) made it refuse the whole header.
//!
//! Quoted strings may hold `\"`, `<`, `>`, `;` and `,`; none of them ends
//! anything while inside quotes.

use crate::sip::message::{find_unquoted, parse_header_uri, split_list};

/// Why a value is not a name-addr / addr-spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameAddrError {
    #[error("empty value")]
    Empty,
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("unterminated <")]
    UnterminatedAngle,
    #[error("no URI")]
    NoUri,
    #[error("junk after the address")]
    Junk,
    #[error("empty or invalid parameter")]
    BadParam,
    #[error("bad URI: {0}")]
    BadUri(&'static str),
}

/// One address with its header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted and unescaped (`None` when absent or empty).
    pub display: Option<String>,
    /// The URI as written (between `<>` or the bare addr-spec).
    pub uri: String,
    /// Header parameters in order: names lower-cased, values unquoted
    /// and unescaped, `None` for a flag (`;lr`).
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses one element (not a comma-separated list: see [`parse_list`]).
    pub fn parse(value: &str) -> Result<NameAddr, NameAddrError> {
        let s = value.trim();
        if s.is_empty() {
            return Err(NameAddrError::Empty);
        }
        let (display, rest) = match s.strip_prefix('"') {
            Some(quoted) => {
                let (name, after) = take_quoted(quoted)?;
                let after = after.trim_start();
                if !after.starts_with('<') {
                    return Err(NameAddrError::NoUri);
                }
                (Some(name), after)
            }
            None => match find_unquoted(s, '<') {
                Some(i) => (Some(s[..i].trim().to_string()), &s[i..]),
                None => (None, s),
            },
        };
        let (uri, params) = match rest.strip_prefix('<') {
            Some(inner) => {
                let end = find_unquoted(inner, '>').ok_or(NameAddrError::UnterminatedAngle)?;
                (&inner[..end], &inner[end + 1..])
            }
            // addr-spec: header parameters start at the first ';' (§20.10).
            None => match find_unquoted(rest, ';') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            },
        };
        let uri = uri.trim();
        if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
            return Err(NameAddrError::NoUri);
        }
        let params = params.trim();
        let params = match params {
            "" => Vec::new(),
            p => parse_params(p.strip_prefix(';').ok_or(NameAddrError::Junk)?)?,
        };
        Ok(NameAddr {
            display: display.filter(|d| !d.is_empty()),
            uri: uri.to_string(),
            params,
        })
    }

    /// `Some(Some(v))` for `;name=v`, `Some(None)` for a flag `;name`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The `tag` parameter, when present and not empty.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten().filter(|t| !t.is_empty())
    }

    /// The user part of a sip:/sips: URI (`sip:1001@host` -> `1001`).
    pub fn user(&self) -> Option<&str> {
        let (scheme, rest) = self.uri.split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        let userinfo = rest.get(..rest.rfind('@')?)?;
        // user:password is deprecated but legal; the user is before ':'.
        Some(userinfo.split(':').next().unwrap_or(userinfo))
    }

    /// The URI as rsip's type (to build requests with).
    pub fn rsip_uri(&self) -> Result<rsip::Uri, NameAddrError> {
        parse_header_uri(&self.uri).map_err(NameAddrError::BadUri)
    }
}

/// Every element of a comma-separated header value (several contacts in
/// one Contact header), all or nothing.
pub fn parse_list(value: &str) -> Result<Vec<NameAddr>, NameAddrError> {
    split_list(value, ',')
        .into_iter()
        .map(NameAddr::parse)
        .collect()
}

/// The first element of a comma-separated header value, with the rule of
/// [`parse_list`] (every element must parse). A single element, nearly
/// every Contact, is parsed without building the list.
pub fn parse_first(value: &str) -> Result<NameAddr, NameAddrError> {
    if !value.contains(',') {
        return NameAddr::parse(value);
    }
    parse_list(value)?
        .into_iter()
        .next()
        .ok_or(NameAddrError::Empty)
}

/// `s` starts just after an opening '"': the unescaped content and the
/// text after the closing quote.
fn take_quoted(s: &str) -> Result<(String, &str), NameAddrError> {
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => {
                out.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => return Ok((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    Err(NameAddrError::UnterminatedQuote)
}

/// `name[=value]` separated by ';' (quoted values kept whole).
fn parse_params(s: &str) -> Result<Vec<(String, Option<String>)>, NameAddrError> {
    crate::sip::message::split_semis(s)
        .into_iter()
        .map(|p| {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p.trim(), None),
            };
            if !crate::sip::message::is_token(name) {
                return Err(NameAddrError::BadParam);
            }
            let value = match value {
                None => None,
                Some(v) => Some(match v.strip_prefix('"') {
                    Some(q) => match take_quoted(q)? {
                        (text, "") => text,
                        _ => return Err(NameAddrError::Junk),
                    },
                    None if v.is_empty() || v.contains(['"', ' ', '\t']) => {
                        return Err(NameAddrError::BadParam)
                    }
                    None => v.to_string(),
                }),
            };
            Ok((name.to_ascii_lowercase(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests;
