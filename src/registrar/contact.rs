//! Name-addr / addr-spec parsing for Contact and To values (RFC 3261 §20.10,
//! §25.1). rsip's typed Contact takes one contact per header; phones put
//! several in one header separated by commas, so we split ourselves.

use crate::sip::message::{split_list, Quotes};

/// One element of a Contact header.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactValue {
    /// `Contact: *` (remove all bindings).
    Star,
    Addr(NameAddr),
}

/// A URI with its header parameters (names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq)]
pub struct NameAddr {
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The user part of a sip:/sips: URI (`sip:1001@host` -> `1001`).
    pub fn user(&self) -> Option<&str> {
        let rest = strip_scheme(&self.uri)?;
        let at = rest.rfind('@')?;
        let userinfo = rest.get(..at)?;
        // user:password is deprecated but legal; the user is before ':'.
        Some(userinfo.split(':').next().unwrap_or(userinfo))
    }
}

fn strip_scheme(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        Some(rest)
    } else {
        None
    }
}

fn parse_params(s: &str) -> Vec<(String, Option<String>)> {
    split_list(s, ';')
        .into_iter()
        .filter_map(|p| {
            let p = p.trim();
            if p.is_empty() {
                return None;
            }
            Some(match p.split_once('=') {
                Some((n, v)) => {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    (n.trim().to_ascii_lowercase(), Some(v.to_string()))
                }
                None => (p.to_ascii_lowercase(), None),
            })
        })
        .collect()
}

/// Parses one name-addr or addr-spec with trailing header parameters.
pub fn parse_name_addr(s: &str) -> Option<NameAddr> {
    let s = s.trim();
    // Find a '<' outside a quoted display name.
    let mut quotes = Quotes::default();
    let mut lt = None;
    for (i, c) in s.char_indices() {
        if quotes.skip(c) {
            continue;
        }
        match c {
            '"' => quotes.open(),
            '<' => {
                lt = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (uri, params) = match lt {
        Some(i) => {
            let rest = s.get(i + 1..)?;
            let gt = rest.find('>')?;
            (rest.get(..gt)?, rest.get(gt + 1..)?)
        }
        // addr-spec: header params follow the first ';' (RFC 3261 §20.10).
        None => match s.split_once(';') {
            Some((u, p)) => (u, p),
            None => (s, ""),
        },
    };
    let uri = uri.trim();
    if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
        return None;
    }
    Some(NameAddr {
        uri: uri.to_string(),
        params: parse_params(params),
    })
}

/// Parses a Contact header value into its comma-separated elements.
/// `None` if any element is malformed.
pub fn parse_contacts(value: &str) -> Option<Vec<ContactValue>> {
    split_list(value, ',')
        .into_iter()
        .map(|part| {
            if part.trim() == "*" {
                Some(ContactValue::Star)
            } else {
                parse_name_addr(part).map(ContactValue::Addr)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_contacts_in_one_header() {
        let v = r#""Alice, Desk" <sip:1001@10.0.0.5:5062;transport=udp>;expires=60;q=0.5, sip:1001@10.0.0.6;expires=0"#;
        let c = parse_contacts(v).unwrap();
        assert_eq!(c.len(), 2);
        let ContactValue::Addr(a) = &c[0] else {
            panic!()
        };
        assert_eq!(a.uri, "sip:1001@10.0.0.5:5062;transport=udp");
        assert_eq!(a.param("expires"), Some(Some("60")));
        assert_eq!(a.param("q"), Some(Some("0.5")));
        let ContactValue::Addr(b) = &c[1] else {
            panic!()
        };
        assert_eq!(b.uri, "sip:1001@10.0.0.6");
        assert_eq!(b.param("expires"), Some(Some("0")));
        assert_eq!(parse_contacts(" * "), Some(vec![ContactValue::Star]));
        assert_eq!(parse_contacts("<>"), None);
    }

    #[test]
    fn user_part() {
        let a = parse_name_addr("\"A\" <sip:1001@example.com>;tag=x").unwrap();
        assert_eq!(a.user(), Some("1001"));
        assert_eq!(a.param("tag"), Some(Some("x")));
        assert_eq!(parse_name_addr("<tel:+123>").unwrap().user(), None);
    }
}
