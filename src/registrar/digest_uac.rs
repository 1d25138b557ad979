//! Digest authentication as a client (RFC 3261 §22.2, RFC 7616, RFC 8760):
//! reading a gateway's `WWW-Authenticate`/`Proxy-Authenticate` challenge
//! and writing the `Authorization`/`Proxy-Authorization` that answers it,
//! for the calls sipacd places through a trunk.

use super::digest::{parse_params, quote, Algorithm, AuthParseError};

/// What a challenge asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether the server offered `qop=auth` (else RFC 2069 style).
    pub qop_auth: bool,
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error(transparent)]
    Parse(#[from] AuthParseError),
    #[error("unsupported digest algorithm `{0}`")]
    Algorithm(String),
    #[error("the challenge offers only qop `{0}` (sipacd answers qop=auth)")]
    Qop(String),
}

/// Parses one challenge header value (`Digest realm="…", nonce="…", …`).
pub fn parse_challenge(value: &str) -> Result<Challenge, ChallengeError> {
    let value = value.trim_start();
    let (scheme, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthParseError::NotDigest.into());
    }
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut algorithm = Algorithm::Md5;
    let mut qop = None;
    for (name, val) in parse_params(rest)? {
        match name.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(val),
            "nonce" => nonce = Some(val),
            "opaque" => opaque = Some(val),
            "algorithm" => {
                algorithm =
                    Algorithm::from_token(&val).ok_or(ChallengeError::Algorithm(val.clone()))?
            }
            "qop" => qop = Some(val),
            _ => {} // domain, stale, unknown: not needed to answer
        }
    }
    let qop_auth = match qop {
        None => false,
        Some(q) if q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) => true,
        Some(q) => return Err(ChallengeError::Qop(q)),
    };
    Ok(Challenge {
        realm: realm.ok_or(AuthParseError::Missing("realm"))?,
        nonce: nonce.ok_or(AuthParseError::Missing("nonce"))?,
        opaque,
        algorithm,
        qop_auth,
    })
}

/// The credentials header value answering `ch` for `method uri`.
/// `cnonce` is the client's random nonce (used with qop=auth).
pub fn answer(
    ch: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    let alg = ch.algorithm;
    let ha1 = alg.ha1(username, &ch.realm, password);
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, algorithm={}",
        quote(username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(uri),
        alg.token()
    );
    if ch.qop_auth {
        // One request per nonce: the nonce count is always 1.
        let nc = "00000001";
        let response = alg.response(&ha1, &ch.nonce, nc, cnonce, method, uri);
        v.push_str(&format!(
            ", response={}, qop=auth, nc={nc}, cnonce={}",
            quote(&response),
            quote(cnonce)
        ));
    } else {
        let ha2 = alg.hash_hex(&[method, uri]);
        let response = alg.hash_hex(&[&ha1, &ch.nonce, &ha2]);
        v.push_str(&format!(", response={}", quote(&response)));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque={}", quote(o)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::digest::parse_authorization;

    #[test]
    fn a_qop_challenge_is_answered_as_the_server_checks_it() {
        let ch = parse_challenge(
            r#"Digest realm="gw", nonce="n1", opaque="o", algorithm=MD5, qop="auth,auth-int""#,
        )
        .unwrap();
        assert!(ch.qop_auth);
        let v = answer(&ch, "acme", "pw", "INVITE", "sip:555@10.0.0.1", "c1");
        let creds = parse_authorization(&v).unwrap();
        assert_eq!(creds.username, "acme");
        assert_eq!(creds.opaque.as_deref(), Some("o"));
        let ha1 = Algorithm::Md5.ha1("acme", "gw", "pw");
        let expect =
            Algorithm::Md5.response(&ha1, "n1", "00000001", "c1", "INVITE", "sip:555@10.0.0.1");
        assert_eq!(creds.response, expect);
    }

    #[test]
    fn rfc2617_example_without_qop_matches() {
        // RFC 2617 §3.5's values, without qop (RFC 2069 response).
        let ch = parse_challenge(
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#,
        )
        .unwrap();
        assert!(!ch.qop_auth);
        let v = answer(
            &ch,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "x",
        );
        let creds = parse_authorization(&v).unwrap();
        let ha1 = Algorithm::Md5.ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        let ha2 = Algorithm::Md5.hash_hex(&["GET", "/dir/index.html"]);
        let expect = Algorithm::Md5.hash_hex(&[&ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", &ha2]);
        assert_eq!(creds.response, expect);
        assert_eq!(creds.qop, None);
    }

    #[test]
    fn unusable_challenges_are_errors() {
        assert!(parse_challenge("Basic realm=\"x\"").is_err());
        assert!(parse_challenge("Digest nonce=\"n\"").is_err());
        assert!(parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess").is_err());
        assert!(parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").is_err());
        let sha = parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256").unwrap();
        assert_eq!(sha.algorithm, Algorithm::Sha256);
    }
}
