//! HTTP Digest (RFC 2617, RFC 7616, RFC 8760 for SIP): hashing, the
//! `Authorization` header parser and the `WWW-Authenticate` challenge.
//!
//! The parser is hand-written rather than rsip's because it must accept any
//! parameter order, quoted strings with backslash escapes and unknown
//! parameters, and must never panic on a peer's bytes.

use md5::Md5;
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Longest Authorization value we look at; real ones are a few hundred bytes.
const MAX_AUTH_LEN: usize = 8 * 1024;

/// A digest algorithm offered in challenges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm=` parameter.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses `MD5` / `SHA-256` (case-insensitive). `-sess` variants are not
    /// supported and yield `None`.
    pub fn from_token(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lowercase hex hash of the colon-joined parts.
    pub fn hash_hex(self, parts: &[&str]) -> String {
        fn run<D: sha2::Digest>(parts: &[&str]) -> String {
            let mut h = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    h.update(b":");
                }
                h.update(p.as_bytes());
            }
            hex::encode(h.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
        }
    }

    /// HA1 = H(username:realm:password).
    pub fn ha1(self, user: &str, realm: &str, password: &str) -> String {
        self.hash_hex(&[user, realm, password])
    }

    /// The expected `response` for qop=auth:
    /// H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
    pub fn response(
        self,
        ha1: &str,
        nonce: &str,
        nc: &str,
        cnonce: &str,
        method: &str,
        uri: &str,
    ) -> String {
        let ha2 = self.hash_hex(&[method, uri]);
        self.hash_hex(&[ha1, nonce, nc, cnonce, "auth", &ha2])
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// Why an Authorization header value was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthParseError {
    #[error("authorization header too long")]
    TooLong,
    #[error("not a Digest authorization")]
    NotDigest,
    #[error("malformed parameter list")]
    Malformed,
    #[error("parameter {0} given twice")]
    Duplicate(String),
    #[error("missing parameter {0}")]
    Missing(&'static str),
}

/// The parameters of `Authorization: Digest ...` we use. Values are
/// unquoted and unescaped; unknown parameters are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
}

/// Parses the value of an Authorization header (without the header name).
pub fn parse_authorization(value: &str) -> Result<DigestCredentials, AuthParseError> {
    if value.len() > MAX_AUTH_LEN {
        return Err(AuthParseError::TooLong);
    }
    let value = value.trim_start();
    let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (value.get(..i).unwrap_or(""), value.get(i..).unwrap_or("")),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthParseError::NotDigest);
    }
    let params = parse_params(rest)?;

    let mut out = DigestCredentials::default();
    let mut seen: Vec<String> = Vec::new();
    let mut have = [false; 5];
    for (name, val) in params {
        let lname = name.to_ascii_lowercase();
        let slot: Option<(&mut String, usize)> = match lname.as_str() {
            "username" => Some((&mut out.username, 0)),
            "realm" => Some((&mut out.realm, 1)),
            "nonce" => Some((&mut out.nonce, 2)),
            "uri" => Some((&mut out.uri, 3)),
            "response" => Some((&mut out.response, 4)),
            _ => None,
        };
        if seen.contains(&lname) {
            return Err(AuthParseError::Duplicate(lname));
        }
        if let Some((field, idx)) = slot {
            *field = val;
            if let Some(h) = have.get_mut(idx) {
                *h = true;
            }
        } else {
            let opt = match lname.as_str() {
                "algorithm" => Some(&mut out.algorithm),
                "cnonce" => Some(&mut out.cnonce),
                "opaque" => Some(&mut out.opaque),
                "qop" => Some(&mut out.qop),
                "nc" => Some(&mut out.nc),
                _ => None, // unknown parameters are ignored (RFC 7616 §3.4)
            };
            if let Some(o) = opt {
                *o = Some(val);
            }
        }
        seen.push(lname);
    }
    const NAMES: [&str; 5] = ["username", "realm", "nonce", "uri", "response"];
    for (present, name) in have.iter().zip(NAMES) {
        if !present {
            return Err(AuthParseError::Missing(name));
        }
    }
    Ok(out)
}

/// Splits `a=b, c="d\"e"` into (name, unescaped value) pairs.
pub(crate) fn parse_params(input: &str) -> Result<Vec<(String, String)>, AuthParseError> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        // Skip separators and whitespace; empty list elements are allowed
        // (RFC 7230 #rule).
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if is_token_char(c) {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return Err(AuthParseError::Malformed);
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(AuthParseError::Malformed);
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) => value.push(e),
                        None => return Err(AuthParseError::Malformed),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            if !closed {
                return Err(AuthParseError::Malformed);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if is_token_char(c) || c == '/' || c == ':' || c == '@' {
                    value.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if value.is_empty() {
                return Err(AuthParseError::Malformed);
            }
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some(',') => {}
            Some(_) => return Err(AuthParseError::Malformed),
        }
        out.push((name, value));
    }
    Ok(out)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Quotes a value for a quoted-string, escaping `"` and `\`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        // CR/LF would split the header; drop them.
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// The value of one WWW-Authenticate header.
pub fn challenge_value(
    realm: &str,
    nonce: &str,
    opaque: &str,
    algorithm: Algorithm,
    stale: bool,
) -> String {
    let mut v = format!(
        "Digest realm={}, nonce={}, opaque={}, algorithm={}, qop=\"auth\"",
        quote(realm),
        quote(nonce),
        quote(opaque),
        algorithm.token()
    );
    if stale {
        v.push_str(", stale=true");
    }
    v
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        let d = Sha256::digest(key);
        for (dst, src) in k.iter_mut().zip(d.iter()) {
            *dst = *src;
        }
    } else {
        for (dst, src) in k.iter_mut().zip(key) {
            *dst = *src;
        }
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_response() {
        // RFC 2617 §3.5 example, adapted: HTTP GET with qop=auth.
        let ha1 = Algorithm::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        let r = Algorithm::Md5.response(
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_example() {
        // RFC 7616 §3.9.1.
        let ha1 = Algorithm::Sha256.ha1("Mufasa", "http-auth@example.org", "Circle of Life");
        let r = Algorithm::Sha256.response(
            &ha1,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "00000001",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn hmac_rfc4231_case2() {
        let m = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(m),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn parses_any_order_escapes_and_unknown_params() {
        let v = r#"Digest  nc=00000002 ,response="abc", foo="x, y", username="a\"b\\c",
            realm="r", qop=auth, nonce="n", cnonce="c", uri="sip:example.com", algorithm=SHA-256,,"#;
        let c = parse_authorization(v).unwrap();
        assert_eq!(c.username, "a\"b\\c");
        assert_eq!(c.realm, "r");
        assert_eq!(c.uri, "sip:example.com");
        assert_eq!(c.nc.as_deref(), Some("00000002"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(c.response, "abc");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            parse_authorization("Basic dXNlcjpw"),
            Err(AuthParseError::NotDigest)
        );
        assert!(parse_authorization(r#"Digest username="unterminated"#).is_err());
        assert!(parse_authorization(r#"Digest username="a", username="b""#).is_err());
        assert_eq!(
            parse_authorization(r#"Digest username="a", realm="r", nonce="n", uri="u""#),
            Err(AuthParseError::Missing("response"))
        );
        assert!(parse_authorization(&"Digest a=b,".repeat(2000)).is_err());
    }

    #[test]
    fn quote_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
