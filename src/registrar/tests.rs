//! Registrar behaviour, driven like a phone would: REGISTER, read the
//! challenge, answer it with the RFC 2617/7616 formula, REGISTER again.

use super::*;
use rsip::headers::UntypedHeader;
use std::time::UNIX_EPOCH;

const REALM: &str = "support.example.com";

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn peer() -> Peer {
    Peer::udp("198.51.100.7:40312".parse().unwrap())
}

fn users() -> Vec<Credentials> {
    vec![
        Credentials {
            user: "1001".into(),
            ha1_md5: None,
            password: Some("secret1".into()),
        },
        Credentials {
            user: "1002".into(),
            ha1_md5: Some(Algorithm::Md5.ha1("1002", REALM, "pw2")),
            password: None,
        },
    ]
}

fn registrar_with(algs: Vec<Algorithm>) -> Registrar {
    let mut cfg = RegistrarConfig::new(REALM);
    cfg.algorithms = algs;
    Registrar::new(cfg, users(), [42; 32])
}

fn registrar() -> Registrar {
    registrar_with(vec![Algorithm::Md5])
}

/// A REGISTER for `aor_user` with extra header lines.
fn req(aor_user: &str, call_id: &str, cseq: u32, extra: &[String]) -> Request {
    let mut s = format!(
        "REGISTER sip:{REALM} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{cseq}x\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{aor_user}@{REALM}>;tag=ft1\r\n\
         To: <sip:{aor_user}@{REALM}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n"
    );
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Request::try_from(s.as_str()).unwrap()
}

fn www_auth(resp: &Response) -> Vec<String> {
    resp.headers
        .iter()
        .filter_map(|h| match h {
            Header::WwwAuthenticate(w) => Some(w.value().to_string()),
            _ => None,
        })
        .collect()
}

fn param(h: &str, name: &str) -> Option<String> {
    let c = parse_authorization(&h.replacen(
        "Digest",
        "Digest username=\"x\", uri=\"u\", response=\"r\",",
        1,
    ))
    .ok()?;
    match name {
        "nonce" => Some(c.nonce),
        "realm" => Some(c.realm),
        "opaque" => c.opaque,
        "algorithm" => c.algorithm,
        "qop" => c.qop,
        _ => None,
    }
}

fn contacts(resp: &Response) -> Vec<String> {
    resp.headers
        .iter()
        .filter_map(|h| match h {
            Header::Contact(c) => Some(c.value().to_string()),
            _ => None,
        })
        .collect()
}

/// The Authorization header a phone computes from a challenge.
#[allow(clippy::too_many_arguments)]
fn answer(alg: Algorithm, user: &str, ha1: &str, challenge: &str, nc: u32, uri: &str) -> String {
    let nonce = param(challenge, "nonce").unwrap();
    let opaque = param(challenge, "opaque").unwrap();
    let nc = format!("{nc:08x}");
    let cnonce = "0a4f113b";
    let ha2 = alg.hash_hex(&["REGISTER", uri]);
    let resp = alg.hash_hex(&[ha1, &nonce, &nc, cnonce, "auth", &ha2]);
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{resp}\", algorithm={}, cnonce=\"{cnonce}\", \
         opaque=\"{opaque}\", qop=auth, nc={nc}",
        alg.token()
    )
}

fn ha1(alg: Algorithm, user: &str, pw: &str) -> String {
    alg.ha1(user, REALM, pw)
}

/// First REGISTER → 401; returns the challenge header for `alg`.
fn get_challenge(r: &mut Registrar, alg: Algorithm, now: SystemTime) -> String {
    let resp = r.handle_register(&req("1001", "cid", 1, &[]), peer(), now);
    assert_eq!(resp.status_code, StatusCode::Unauthorized);
    www_auth(&resp)
        .into_iter()
        .find(|h| h.contains(&format!("algorithm={}", alg.token())))
        .unwrap()
}

/// Full handshake for 1001 with `contact_lines`; returns the final response.
fn register(
    r: &mut Registrar,
    call_id: &str,
    cseq: u32,
    contact_lines: &[&str],
    now: SystemTime,
) -> Response {
    let ch = get_challenge(r, Algorithm::Md5, now);
    let mut extra: Vec<String> = contact_lines.iter().map(|s| s.to_string()).collect();
    extra.push(answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "secret1"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    ));
    r.handle_register(&req("1001", call_id, cseq, &extra), peer(), now)
}

#[test]
fn challenge_is_md5_only_by_default() {
    let mut r = registrar();
    let resp = r.handle_register(&req("1001", "c", 1, &[]), peer(), t(0));
    assert_eq!(resp.status_code, StatusCode::Unauthorized);
    let w = www_auth(&resp);
    assert_eq!(w.len(), 1);
    assert_eq!(param(&w[0], "algorithm").as_deref(), Some("MD5"));
    assert_eq!(param(&w[0], "qop").as_deref(), Some("auth"));
    assert_eq!(param(&w[0], "realm").as_deref(), Some(REALM));
    assert!(param(&w[0], "opaque").is_some_and(|o| !o.is_empty()));
    assert!(!w[0].contains("stale"));
    // Each challenge has a new nonce.
    let resp2 = r.handle_register(&req("1001", "c", 2, &[]), peer(), t(0));
    assert_ne!(param(&www_auth(&resp2)[0], "nonce"), param(&w[0], "nonce"));
}

#[test]
fn challenge_has_one_header_per_algorithm_in_config_order() {
    let mut r = registrar_with(vec![Algorithm::Sha256, Algorithm::Md5]);
    let w = www_auth(&r.handle_register(&req("1001", "c", 1, &[]), peer(), t(0)));
    let algs: Vec<_> = w.iter().map(|h| param(h, "algorithm").unwrap()).collect();
    assert_eq!(algs, ["SHA-256", "MD5"]);
    let mut r = registrar_with(vec![Algorithm::Md5, Algorithm::Sha256]);
    let w = www_auth(&r.handle_register(&req("1001", "c", 1, &[]), peer(), t(0)));
    let algs: Vec<_> = w.iter().map(|h| param(h, "algorithm").unwrap()).collect();
    assert_eq!(algs, ["MD5", "SHA-256"]);
}

#[test]
fn md5_handshake_registers() {
    let mut r = registrar();
    let resp = register(
        &mut r,
        "cid",
        2,
        &["Contact: <sip:1001@10.0.0.5:5062>"],
        t(0),
    );
    assert_eq!(resp.status_code, StatusCode::OK);
    assert_eq!(contacts(&resp), ["<sip:1001@10.0.0.5:5062>;expires=3600"]);
    let text = resp.to_string();
    assert!(text.contains("To: <sip:1001@support.example.com>;tag="));
    assert!(text.contains("Call-ID: cid\r\n"));
    assert!(text.contains("CSeq: 2 REGISTER\r\n"));
    assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK2x\r\n"));
    let b = r.bindings("1001", t(1));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact, "sip:1001@10.0.0.5:5062");
    assert_eq!(b[0].source, peer());
    assert_eq!(b[0].expires_at, t(3600));
    assert_eq!((b[0].call_id.as_str(), b[0].cseq), ("cid", 2));
    assert!(r.is_registered("1001", t(1)));
    assert!(!r.is_registered("1002", t(1)));
}

#[test]
fn sha256_handshake_registers() {
    let mut r = registrar_with(vec![Algorithm::Md5, Algorithm::Sha256]);
    let ch = get_challenge(&mut r, Algorithm::Sha256, t(0));
    let auth = answer(
        Algorithm::Sha256,
        "1001",
        &ha1(Algorithm::Sha256, "1001", "secret1"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    );
    let resp = r.handle_register(
        &req(
            "1001",
            "c",
            2,
            &["Contact: <sip:1001@10.0.0.5>".into(), auth],
        ),
        peer(),
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::OK);
    assert!(r.is_registered("1001", t(2)));
}

#[test]
fn sha256_answer_rejected_when_not_offered() {
    let mut r = registrar(); // MD5 only
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let auth = answer(
        Algorithm::Sha256,
        "1001",
        &ha1(Algorithm::Sha256, "1001", "secret1"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    );
    let resp = r.handle_register(
        &req(
            "1001",
            "c",
            2,
            &["Contact: <sip:1001@10.0.0.5>".into(), auth],
        ),
        peer(),
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::Unauthorized);
    assert!(!r.is_registered("1001", t(2)));
}

#[test]
fn ha1_only_user_registers_with_md5_but_not_sha256() {
    let mut r = registrar_with(vec![Algorithm::Md5, Algorithm::Sha256]);
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let auth = answer(
        Algorithm::Md5,
        "1002",
        &ha1(Algorithm::Md5, "1002", "pw2"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    );
    let resp = r.handle_register(
        &req(
            "1002",
            "c",
            2,
            &["Contact: <sip:1002@10.0.0.9>".into(), auth],
        ),
        peer(),
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::OK);
    assert!(r.is_registered("1002", t(2)));

    let ch = get_challenge(&mut r, Algorithm::Sha256, t(3));
    let auth = answer(
        Algorithm::Sha256,
        "1002",
        &ha1(Algorithm::Sha256, "1002", "pw2"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    );
    let resp = r.handle_register(
        &req(
            "1002",
            "c2",
            1,
            &["Contact: <sip:1002@10.0.0.10>".into(), auth],
        ),
        peer(),
        t(4),
    );
    assert_eq!(resp.status_code, StatusCode::Forbidden);
    assert_eq!(r.bindings("1002", t(4)).len(), 1);
}

/// Status line and headers with To tags and Via branches removed.
fn normalized(resp: &Response) -> Vec<String> {
    let mut lines = vec![resp.status_code.to_string()];
    for h in resp.headers.iter() {
        let s = h.to_string();
        let s = match s.find(";tag=") {
            Some(i) if s.starts_with("To:") => s[..i].to_string(),
            _ => s,
        };
        let s = match s.find(";branch=") {
            Some(i) if s.starts_with("Via:") => s[..i].to_string(),
            _ => s,
        };
        lines.push(s);
    }
    lines
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let mut r = registrar();
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let wrong = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "nope"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    );
    let resp_wrong = r.handle_register(
        &req(
            "1001",
            "c",
            2,
            &["Contact: <sip:1001@10.0.0.5>".into(), wrong],
        ),
        peer(),
        t(1),
    );
    assert_eq!(resp_wrong.status_code, StatusCode::Forbidden);
    assert!(!r.is_registered("1001", t(1)));

    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let unknown = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "9999", "x"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    )
    .replace("username=\"1001\"", "username=\"9999\"");
    let resp_unknown = r.handle_register(
        &req(
            "1001",
            "c",
            2,
            &["Contact: <sip:1001@10.0.0.5>".into(), unknown],
        ),
        peer(),
        t(1),
    );
    assert_eq!(resp_unknown.status_code, StatusCode::Forbidden);
    assert!(!r.is_registered("1001", t(1)));
    assert!(!r.is_registered("9999", t(1)));
    assert_eq!(normalized(&resp_wrong), normalized(&resp_unknown));
    assert!(www_auth(&resp_unknown).is_empty());

    // Realm mismatch: same 403.
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let other_realm = answer(
        Algorithm::Md5,
        "1001",
        &Algorithm::Md5.ha1("1001", "evil", "secret1"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    )
    .replace(&format!("realm=\"{REALM}\""), "realm=\"evil\"");
    let resp_realm = r.handle_register(
        &req(
            "1001",
            "c",
            2,
            &["Contact: <sip:1001@10.0.0.5>".into(), other_realm],
        ),
        peer(),
        t(1),
    );
    assert_eq!(normalized(&resp_realm), normalized(&resp_wrong));
}

#[test]
fn registering_someone_elses_aor_is_forbidden() {
    let mut r = registrar();
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let auth = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "secret1"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    );
    let resp = r.handle_register(
        &req(
            "1002",
            "c",
            2,
            &["Contact: <sip:1002@10.0.0.5>".into(), auth],
        ),
        peer(),
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::Forbidden);
    assert!(!r.is_registered("1002", t(1)));
    assert!(!r.is_registered("1001", t(1)));
}

#[test]
fn replayed_nonce_count_is_rejected() {
    let mut r = registrar();
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let h = ha1(Algorithm::Md5, "1001", "secret1");
    let uri = format!("sip:{REALM}");
    let a1 = answer(Algorithm::Md5, "1001", &h, &ch, 1, &uri);
    let c = "Contact: <sip:1001@10.0.0.5>".to_string();
    let ok = r.handle_register(&req("1001", "c", 2, &[c.clone(), a1.clone()]), peer(), t(1));
    assert_eq!(ok.status_code, StatusCode::OK);
    // Same nc again (even with a higher CSeq): replay.
    let replay = r.handle_register(&req("1001", "c", 3, &[c.clone(), a1]), peer(), t(2));
    assert_eq!(replay.status_code, StatusCode::Unauthorized);
    assert_eq!(r.bindings("1001", t(2))[0].cseq, 2);
    // The next count on the same nonce is fine (phones reuse nonces).
    let a2 = answer(Algorithm::Md5, "1001", &h, &ch, 2, &uri);
    let next = r.handle_register(&req("1001", "c", 4, &[c, a2]), peer(), t(3));
    assert_eq!(next.status_code, StatusCode::OK);
    assert_eq!(r.bindings("1001", t(3))[0].cseq, 4);
}

#[test]
fn stale_nonce_gets_stale_true() {
    let mut r = registrar_with(vec![Algorithm::Md5, Algorithm::Sha256]);
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let uri = format!("sip:{REALM}");
    let good = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "secret1"),
        &ch,
        1,
        &uri,
    );
    let resp = r.handle_register(
        &req(
            "1001",
            "c",
            2,
            &["Contact: <sip:1001@10.0.0.5>".into(), good],
        ),
        peer(),
        t(301),
    );
    assert_eq!(resp.status_code, StatusCode::Unauthorized);
    let w = www_auth(&resp);
    assert_eq!(w.len(), 2);
    assert!(w.iter().all(|h| h.ends_with(", stale=true")));
    assert_ne!(param(&w[0], "nonce"), param(&ch, "nonce"));
    // A wrong password on a stale nonce is not "stale", it is wrong.
    let bad = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "x"),
        &ch,
        2,
        &uri,
    );
    let resp = r.handle_register(
        &req(
            "1001",
            "c",
            3,
            &["Contact: <sip:1001@10.0.0.5>".into(), bad],
        ),
        peer(),
        t(301),
    );
    assert_eq!(resp.status_code, StatusCode::Forbidden);
}

#[test]
fn forged_nonce_and_missing_qop_are_challenged() {
    let mut r = registrar();
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let uri = format!("sip:{REALM}");
    let h = ha1(Algorithm::Md5, "1001", "secret1");
    let other = Registrar::new(RegistrarConfig::new(REALM), users(), [1; 32])
        .nonces
        .issue(t(0));
    let forged = answer(
        Algorithm::Md5,
        "1001",
        &h,
        &ch.replace(&param(&ch, "nonce").unwrap(), &other),
        1,
        &uri,
    );
    let resp = r.handle_register(&req("1001", "c", 2, &[forged]), peer(), t(1));
    assert_eq!(resp.status_code, StatusCode::Unauthorized);

    let no_qop = answer(Algorithm::Md5, "1001", &h, &ch, 1, &uri).replace(", qop=auth", "");
    let resp = r.handle_register(&req("1001", "c", 2, &[no_qop]), peer(), t(1));
    assert_eq!(resp.status_code, StatusCode::Unauthorized);
    assert!(!r.is_registered("1001", t(1)));
}

#[test]
fn digest_uri_may_name_the_registrar_but_must_be_sip() {
    let mut r = registrar();
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let h = ha1(Algorithm::Md5, "1001", "secret1");
    // Not a SIP URI at all: 400.
    let a = answer(Algorithm::Md5, "1001", &h, &ch, 1, "http://elsewhere");
    let resp = r.handle_register(&req("1001", "c", 2, &[a]), peer(), t(1));
    assert_eq!(resp.status_code, StatusCode::BadRequest);
    // SIPp states the registrar's address (sip:IP:PORT): accepted when the
    // hash over that uri verifies, refused when it does not.
    let wrong = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "nope"),
        &ch,
        1,
        "sip:127.0.0.1:5060",
    );
    let resp = r.handle_register(&req("1001", "c", 2, &[wrong]), peer(), t(1));
    assert_eq!(resp.status_code, StatusCode::Forbidden);
    let ch = get_challenge(&mut r, Algorithm::Md5, t(1));
    let a = answer(Algorithm::Md5, "1001", &h, &ch, 1, "sip:127.0.0.1:5060");
    let resp = r.handle_register(&req("1001", "c", 3, &[a]), peer(), t(1));
    assert_eq!(resp.status_code, StatusCode::OK);
    // Padding with blanks is tolerated.
    let a = answer(
        Algorithm::Md5,
        "1001",
        &h,
        &ch,
        2,
        &format!(" sip:{REALM} "),
    );
    let resp = r.handle_register(&req("1001", "c", 4, &[a]), peer(), t(1));
    assert_eq!(resp.status_code, StatusCode::OK);
}

#[test]
fn several_contacts_then_unregister_one_then_star() {
    let mut r = registrar();
    let resp = register(
        &mut r,
        "cid",
        2,
        &[
            "Contact: <sip:1001@10.0.0.5:5062>;expires=600",
            "Contact: \"Desk, 2\" <sip:1001@10.0.0.6>;q=0.5, sip:1001@10.0.0.7;expires=120",
        ],
        t(0),
    );
    assert_eq!(resp.status_code, StatusCode::OK);
    let mut c = contacts(&resp);
    c.sort();
    assert_eq!(
        c,
        [
            "<sip:1001@10.0.0.5:5062>;expires=600",
            "<sip:1001@10.0.0.6>;expires=3600;q=0.5",
            "<sip:1001@10.0.0.7>;expires=120",
        ]
    );
    assert_eq!(r.bindings("1001", t(0))[1].q, Some(0.5));

    // Expires header applies where no contact param overrides it.
    let resp = register(
        &mut r,
        "cid",
        3,
        &["Contact: <sip:1001@10.0.0.6>;expires=0", "Expires: 300"],
        t(10),
    );
    assert_eq!(resp.status_code, StatusCode::OK);
    let mut c = contacts(&resp);
    c.sort();
    assert_eq!(
        c,
        [
            "<sip:1001@10.0.0.5:5062>;expires=590",
            "<sip:1001@10.0.0.7>;expires=110"
        ]
    );

    // '*' needs Expires: 0 and must stand alone.
    let bad = register(&mut r, "cid", 4, &["Contact: *", "Expires: 10"], t(20));
    assert_eq!(bad.status_code, StatusCode::BadRequest);
    let bad = register(
        &mut r,
        "cid",
        5,
        &["Contact: *, <sip:1001@10.0.0.9>", "Expires: 0"],
        t(20),
    );
    assert_eq!(bad.status_code, StatusCode::BadRequest);
    assert_eq!(r.bindings("1001", t(20)).len(), 2);

    let resp = register(&mut r, "cid", 6, &["Contact: *", "Expires: 0"], t(20));
    assert_eq!(resp.status_code, StatusCode::OK);
    assert!(contacts(&resp).is_empty());
    assert!(!r.is_registered("1001", t(20)));
}

#[test]
fn query_without_contact_lists_bindings() {
    let mut r = registrar();
    register(
        &mut r,
        "cid",
        2,
        &["Contact: <sip:1001@10.0.0.5>;expires=100"],
        t(0),
    );
    let resp = register(&mut r, "other", 1, &[], t(40));
    assert_eq!(resp.status_code, StatusCode::OK);
    assert_eq!(contacts(&resp), ["<sip:1001@10.0.0.5>;expires=60"]);
}

#[test]
fn bindings_expire_over_time() {
    let mut r = registrar();
    register(
        &mut r,
        "cid",
        2,
        &["Contact: <sip:1001@a.example>;expires=60, <sip:1001@b.example>;expires=120"],
        t(0),
    );
    assert_eq!(r.bindings("1001", t(59)).len(), 2);
    assert_eq!(r.bindings("1001", t(61)).len(), 1);
    assert!(r.expire(t(30)).is_empty());
    assert_eq!(
        r.expire(t(61)),
        vec![("1001".to_string(), "sip:1001@a.example".to_string())]
    );
    assert!(r.is_registered("1001", t(119)));
    assert!(!r.is_registered("1001", t(121)));
    assert_eq!(r.expire(t(121)).len(), 1);
    assert!(r.expire(t(200)).is_empty());
}

#[test]
fn a_refreshed_or_removed_binding_is_not_swept_at_its_old_expiry() {
    let mut r = registrar();
    let both = "Contact: <sip:1001@a.example>;expires=60, <sip:1001@b.example>;expires=60";
    register(&mut r, "cid", 2, &[both], t(0));
    // a is refreshed for longer, b removed.
    let refresh = "Contact: <sip:1001@a.example>;expires=600, <sip:1001@b.example>;expires=0";
    register(&mut r, "cid", 3, &[refresh], t(30));
    assert!(
        r.expire(t(61)).is_empty(),
        "nothing expired at the old time"
    );
    assert!(r.is_registered("1001", t(61)));
    assert_eq!(
        r.expire(t(630)),
        vec![("1001".to_string(), "sip:1001@a.example".to_string())]
    );
    assert!(!r.is_registered("1001", t(630)));
    assert!(r.expire(t(2000)).is_empty());
}

#[test]
fn too_brief_interval_gets_423_and_long_one_is_clamped() {
    let mut r = registrar();
    let resp = register(
        &mut r,
        "cid",
        2,
        &["Contact: <sip:1001@a.example>;expires=30"],
        t(0),
    );
    assert_eq!(resp.status_code, StatusCode::IntervalTooBrief);
    assert!(resp.to_string().contains("Min-Expires: 60\r\n"));
    assert!(!r.is_registered("1001", t(0)));

    let resp = register(
        &mut r,
        "cid",
        3,
        &["Contact: <sip:1001@a.example>", "Expires: 100000"],
        t(0),
    );
    assert_eq!(resp.status_code, StatusCode::OK);
    assert_eq!(contacts(&resp), ["<sip:1001@a.example>;expires=3600"]);
}

#[test]
fn out_of_order_cseq_is_refused() {
    let mut r = registrar();
    register(
        &mut r,
        "cid",
        5,
        &["Contact: <sip:1001@a.example>;expires=100"],
        t(0),
    );
    let resp = register(
        &mut r,
        "cid",
        5,
        &["Contact: <sip:1001@a.example>;expires=0"],
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::ServerInternalError);
    let resp = register(
        &mut r,
        "cid",
        4,
        &["Contact: <sip:1001@a.example>;expires=0"],
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::ServerInternalError);
    assert!(r.is_registered("1001", t(1)));
    // Another Call-ID (phone rebooted) may change it regardless of CSeq.
    let resp = register(
        &mut r,
        "new",
        1,
        &["Contact: <sip:1001@a.example>;expires=0"],
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::OK);
    assert!(!r.is_registered("1001", t(1)));
}

#[test]
fn non_register_and_malformed_requests() {
    let mut r = registrar();
    let mut q = req("1001", "c", 1, &[]);
    q.method = Method::Options;
    assert_eq!(
        r.handle_register(&q, peer(), t(0)).status_code,
        StatusCode::MethodNotAllowed
    );
    let q = req("1001", "c", 1, &["Contact: <>".into()]);
    assert_eq!(
        r.handle_register(&q, peer(), t(0)).status_code,
        StatusCode::BadRequest
    );
}

#[test]
fn reload_keeps_bindings_of_remaining_users() {
    let mut r = registrar();
    register(&mut r, "cid", 2, &["Contact: <sip:1001@a.example>"], t(0));
    let gone = r.update_users(users());
    assert!(gone.is_empty());
    let mut cfg = RegistrarConfig::new(REALM);
    cfg.min_expires = 120;
    r.update_config(cfg);
    assert!(r.is_registered("1001", t(1)));
    assert_eq!(r.config().min_expires, 120);
    let gone = r.update_users(users().into_iter().skip(1));
    assert_eq!(
        gone,
        vec![("1001".to_string(), "sip:1001@a.example".to_string())]
    );
    assert!(!r.is_registered("1001", t(1)));
}

#[test]
fn persistence_round_trip_and_restart_drops_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("registrations.json");
    let mut r = registrar().with_store(&path);
    register(
        &mut r,
        "cid",
        2,
        &["Contact: <sip:1001@a.example>;expires=60, <sip:1001@b.example>;q=0.7;expires=600"],
        t(0),
    );
    // The REGISTER wrote nothing itself: the writer does, from a snapshot.
    assert!(!path.exists());
    assert_eq!(r.save_now().map_err(|e| e.to_string()), Ok(true));
    assert_eq!(
        r.save_now().map_err(|e| e.to_string()),
        Ok(false),
        "nothing new"
    );
    assert!(path.exists());
    assert!(!dir
        .path()
        .join("sub")
        .join("registrations.json.tmp")
        .exists());

    let mut restarted = registrar();
    assert_eq!(restarted.load_from(&path, t(10)), 2);
    let restored = restarted.bindings("1001", t(10));
    assert!(restored.iter().all(|b| b.restored), "marked as restored");
    let as_saved: Vec<_> = r
        .bindings("1001", t(10))
        .into_iter()
        .map(|b| Binding {
            restored: true,
            ..b
        })
        .collect();
    assert_eq!(restored, as_saved);

    let mut later = registrar();
    assert_eq!(later.load_from(&path, t(100)), 1);
    let b = later.bindings("1001", t(100));
    assert_eq!(b[0].contact, "sip:1001@b.example");
    assert_eq!(b[0].source, peer());
    assert_eq!(b[0].q, Some(0.7));
    assert_eq!(b[0].expires_at, t(600));

    // Changes after loading are written to the same file.
    later.expire(t(700));
    assert!(later.save_now().is_ok_and(|wrote| wrote));
    let mut again = registrar();
    assert_eq!(again.load_from(&path, t(100)), 0);
}

#[test]
fn corrupt_or_missing_store_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registrations.json");
    let mut r = registrar();
    assert_eq!(r.load_from(&path, t(0)), 0);
    std::fs::write(&path, b"{ not json").unwrap();
    assert_eq!(r.load_from(&path, t(0)), 0);
    std::fs::write(&path, br#"{"version":99,"bindings":[]}"#).unwrap();
    assert_eq!(r.load_from(&path, t(0)), 0);
    // Still usable, and it overwrites the bad file on the next change.
    register(&mut r, "cid", 2, &["Contact: <sip:1001@a.example>"], t(0));
    assert!(r.save_now().is_ok_and(|wrote| wrote));
    let mut fresh = registrar();
    assert_eq!(fresh.load_from(&path, t(1)), 1);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn authorization_parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse_authorization(&s);
            let _ = parse_authorization(&format!("Digest {s}"));
        }

        #[test]
        fn structured_authorization_never_panics(
            parts in proptest::collection::vec(
                ("[a-z]{0,8}", "[ -~]{0,20}", any::<bool>()), 0..10)
        ) {
            let mut v = String::from("Digest ");
            for (n, val, quoted) in &parts {
                if *quoted {
                    v.push_str(&format!("{n}=\"{val}\","));
                } else {
                    v.push_str(&format!("{n}={val},"));
                }
            }
            let _ = parse_authorization(&v);
            let mut r = registrar();
            let mut q = req("1001", "c", 1, &[]);
            q.headers.push(Header::Authorization(rsip::headers::Authorization::new(v)));
            let resp = r.handle_register(&q, peer(), t(0));
            prop_assert!(matches!(
                resp.status_code,
                StatusCode::Unauthorized | StatusCode::Forbidden | StatusCode::BadRequest
            ));
        }
    }
}

#[test]
fn quoted_contact_params_of_real_phones_register() {
    let mut r = registrar();
    let instance = "+sip.instance=\"<urn:uuid:0e4b3cc6-4b8e-4a1c-9a5a-1f2f3e4d5c6b>\"";
    let resp = register(
        &mut r,
        "cid-q",
        2,
        &[
            // Linphone 5.1, as sent.
            &format!("Contact: <sip:1001@127.0.0.1:5072;transport=udp>;expires=600;{instance}"),
            // RFC 5626 outbound with reg-id, a quoted display name holding
            // separators, and RFC 5627 GRUU parameters with ';' inside quotes.
            &format!(
                "Contact: \"Desk \\\"2\\\", left\" <sip:1001@10.0.0.6;ob>;reg-id=1;{instance};\
                 pub-gruu=\"sip:1001@{REALM};gr=urn:uuid:0e4b3cc6\";q=0.5, \
                 sip:1001@10.0.0.7;expires=120;foo=\"a,b;c\""
            ),
        ],
        t(0),
    );
    assert_eq!(resp.status_code, StatusCode::OK);
    let mut c = contacts(&resp);
    c.sort();
    assert_eq!(
        c,
        [
            "<sip:1001@10.0.0.6;ob>;expires=3600;q=0.5",
            "<sip:1001@10.0.0.7>;expires=120",
            "<sip:1001@127.0.0.1:5072;transport=udp>;expires=600",
        ]
    );
    // A broken quoted value is refused as a whole: nothing more is bound.
    let bad = register(
        &mut r,
        "cid-q",
        3,
        &["Contact: <sip:1001@10.0.0.9>;+sip.instance=\"<urn:uuid:1>"],
        t(1),
    );
    assert_eq!(bad.status_code, StatusCode::BadRequest);
    assert_eq!(r.bindings("1001", t(1)).len(), 3);
}

/// One guess for `user` from `from`: challenge, then an answer made with
/// `password`; the two status codes.
fn guess(r: &mut Registrar, from: Peer, user: &str, password: &str, now: SystemTime) -> (u16, u16) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let cid = format!("g{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let first = r.handle_register(&req(user, &cid, 1, &[]), from, now);
    let code = first.status_code.code();
    let Some(ch) = www_auth(&first).into_iter().next() else {
        return (code, 0);
    };
    let a = answer(
        Algorithm::Md5,
        user,
        &ha1(Algorithm::Md5, user, password),
        &ch,
        1,
        &format!("sip:{REALM}"),
    );
    let contact = format!("Contact: <sip:{user}@10.0.0.5>");
    let second = r.handle_register(&req(user, &cid, 2, &[contact, a]), from, now);
    (code, second.status_code.code())
}

fn guarded(max: u32, user_max: u32) -> Registrar {
    let mut cfg = RegistrarConfig::new(REALM);
    cfg.guard = GuardConfig {
        max_failures: max,
        user_max_failures: user_max,
        window: Duration::from_secs(60),
        block: Duration::from_secs(30),
        trusted: Vec::new(),
    };
    Registrar::new(cfg, users(), [42; 32])
}

fn from(ip: &str) -> Peer {
    Peer::udp(format!("{ip}:5060").parse().unwrap())
}

#[test]
fn a_wrong_answer_spends_its_nonce_before_the_next_answer_is_checked() {
    let mut r = guarded(100, 0);
    let ch = get_challenge(&mut r, Algorithm::Md5, t(0));
    let uri = format!("sip:{REALM}");
    let contact = "Contact: <sip:1001@10.0.0.5>".to_string();
    let wrong = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "x"),
        &ch,
        1,
        &uri,
    );
    let resp = r.handle_register(
        &req("1001", "c", 2, &[contact.clone(), wrong]),
        peer(),
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::Forbidden);
    // The right password on the same nonce, next nc: a new challenge, not
    // 200, and not a 403 either (that would tell the guess apart).
    let right = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "secret1"),
        &ch,
        2,
        &uri,
    );
    let resp = r.handle_register(
        &req("1001", "c", 3, &[contact.clone(), right]),
        peer(),
        t(1),
    );
    assert_eq!(resp.status_code, StatusCode::Unauthorized);
    assert!(!www_auth(&resp).is_empty());
    let wrong = answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "y"),
        &ch,
        3,
        &uri,
    );
    let resp = r.handle_register(&req("1001", "c", 4, &[contact, wrong]), peer(), t(1));
    assert_eq!(resp.status_code, StatusCode::Unauthorized);
    assert!(!r.is_registered("1001", t(1)));
}

#[test]
fn a_blocked_source_is_refused_even_with_the_right_password() {
    let mut r = guarded(3, 0);
    let a = from("203.0.113.9");
    for i in 0..3 {
        assert_eq!(guess(&mut r, a, "1001", &format!("g{i}"), t(i)), (401, 403));
    }
    assert_eq!(guess(&mut r, a, "1001", "secret1", t(4)), (403, 0));
    assert!(!r.is_registered("1001", t(4)));
    assert_eq!(r.blocked_sources(t(4)).len(), 1);
    // Another source registers; after the block the first one may too.
    assert_eq!(
        guess(&mut r, from("198.51.100.1"), "1001", "secret1", t(4)),
        (401, 200)
    );
    assert_eq!(guess(&mut r, a, "1001", "secret1", t(33)), (401, 200));
    assert!(r.blocked_sources(t(33)).is_empty());
}

#[test]
fn blocks_look_the_same_for_real_and_made_up_users() {
    // Same steps for a real user and a made-up one, each from its own
    // source: every response matches, block included.
    let run = |user: &str, ip: &str| -> Vec<Vec<String>> {
        let mut r = guarded(3, 5);
        let mut out = Vec::new();
        for i in 0..5 {
            let first = r.handle_register(&req(user, "g", 1, &[]), from(ip), t(i));
            out.push(normalized(&first));
            if let Some(ch) = www_auth(&first).into_iter().next() {
                let a = answer(
                    Algorithm::Md5,
                    user,
                    &ha1(Algorithm::Md5, user, "no"),
                    &ch,
                    1,
                    &format!("sip:{REALM}"),
                );
                let second = r.handle_register(&req(user, "g", 2, &[a]), from(ip), t(i));
                out.push(normalized(&second));
            }
        }
        out
    };
    let real = run("1001", "203.0.113.1");
    let fake = run("7777", "203.0.113.1");
    // Nonces differ; compare without WWW-Authenticate values.
    let strip = |v: Vec<Vec<String>>| -> Vec<Vec<String>> {
        v.into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|h| {
                        if h.starts_with("WWW-Authenticate") {
                            "WWW".into()
                        } else {
                            h.replace("7777", "1001")
                        }
                    })
                    .collect()
            })
            .collect()
    };
    let (real, fake) = (strip(real), strip(fake));
    assert_eq!(real.len(), 8, "3 guesses, then 2 refusals");
    assert_eq!(real, fake);
}

#[test]
fn a_distributed_attack_does_not_lock_the_agent_out() {
    let mut r = guarded(10, 3);
    let home = from("198.51.100.20");
    assert_eq!(guess(&mut r, home, "1001", "secret1", t(0)), (401, 200));
    // Many sources, one guess each: beyond 3 failures for 1001, each new
    // attacking source is blocked at its first.
    for i in 0..10u8 {
        let codes = guess(
            &mut r,
            from(&format!("203.0.113.{i}")),
            "1001",
            "nope",
            t(1),
        );
        assert_eq!(codes, (401, 403));
    }
    assert_eq!(r.blocked_sources(t(2)).len(), 7);
    // The agent's own phone still registers, even after one typo.
    assert_eq!(guess(&mut r, home, "1001", "typo", t(3)), (401, 403));
    assert_eq!(guess(&mut r, home, "1001", "secret1", t(4)), (401, 200));
    // So does the agent from a new address with the right password.
    assert_eq!(
        guess(&mut r, from("192.0.2.77"), "1001", "secret1", t(5)),
        (401, 200)
    );
}

/// An authenticated REGISTER of `lines` from `from`.
fn register_from(r: &mut Registrar, from: Peer, cid: &str, lines: &[&str]) -> Response {
    let ch = get_challenge(r, Algorithm::Md5, t(0));
    let mut extra: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    extra.push(answer(
        Algorithm::Md5,
        "1001",
        &ha1(Algorithm::Md5, "1001", "secret1"),
        &ch,
        1,
        &format!("sip:{REALM}"),
    ));
    r.handle_register(&req("1001", cid, 1, &extra), from, t(0))
}

fn header_named(resp: &Response, name: &str) -> Option<String> {
    crate::sip::headers::header_value(resp, name)
}

#[test]
fn outbound_is_taken_up_over_a_connection_only() {
    let outbound = [
        "Supported: path, outbound",
        "Contact: <sip:1001@10.0.0.6:5061;transport=tls;ob>;reg-id=1;\
         +sip.instance=\"<urn:uuid:0e4b3cc6-4b8e-4a1c-9a5a-1f2f3e4d5c6b>\"",
    ];
    let tls = Peer::tls("198.51.100.7:40312".parse().unwrap());
    let mut r = registrar();
    let resp = register_from(&mut r, tls, "ob-tls", &outbound);
    assert_eq!(resp.status_code, StatusCode::OK);
    assert_eq!(header_named(&resp, "Require").as_deref(), Some("outbound"));
    assert_eq!(header_named(&resp, "Flow-Timer").as_deref(), Some("120"));
    assert!(r.has_binding_from(tls, t(1)), "the binding keeps its flow");

    // Over UDP: bound, but outbound is not claimed.
    let resp = register_from(&mut registrar(), peer(), "ob-udp", &outbound);
    assert_eq!(resp.status_code, StatusCode::OK);
    assert_eq!(header_named(&resp, "Require"), None);
    // Without reg-id, or without Supported: outbound, no outbound either.
    let plain = ["Supported: outbound", "Contact: <sip:1001@10.0.0.6;ob>"];
    let resp = register_from(&mut registrar(), tls, "ob-none", &plain);
    assert_eq!(header_named(&resp, "Require"), None);
    let unasked = [outbound[1]];
    let resp = register_from(&mut registrar(), tls, "ob-unasked", &unasked);
    assert_eq!(header_named(&resp, "Require"), None);
}

#[test]
fn a_contact_of_the_same_instance_and_reg_id_replaces_its_binding_whatever_its_uri() {
    const INSTANCE: &str = "+sip.instance=\"<urn:uuid:0e4b3cc6-4b8e-4a1c-9a5a-1f2f3e4d5c6b>\"";
    let contact = |port: u16, reg_id: u8, expires: &str| {
        format!("Contact: <sip:1001@10.0.0.6:{port};transport=tcp;ob>;reg-id={reg_id};{INSTANCE}{expires}")
    };
    let tcp = |port: u16| Peer::tcp(([198, 51, 100, 7], port).into());
    let mut r = registrar();
    let first = contact(5062, 1, "");
    let lines = ["Supported: outbound", first.as_str()];
    assert_eq!(
        register_from(&mut r, tcp(40312), "c1", &lines).status_code,
        StatusCode::OK
    );
    let b = r.bindings("1001", t(1));
    assert_eq!(b.len(), 1);
    assert!(b[0].outbound, "an outbound flow over TCP");
    assert_eq!(b[0].reg_id.as_deref(), Some("1"));

    // After a NAT rebinding, on a new connection, with another Contact
    // URI and Call-ID: the same binding, not a second one.
    let moved = contact(5999, 1, "");
    let lines = ["Supported: outbound", moved.as_str()];
    let resp = register_from(&mut r, tcp(40999), "c2", &lines);
    assert_eq!(resp.status_code, StatusCode::OK);
    assert_eq!(contacts(&resp).len(), 1, "{:?}", contacts(&resp));
    let b = r.bindings("1001", t(1));
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].contact, "sip:1001@10.0.0.6:5999;transport=tcp;ob");
    assert_eq!(b[0].source, tcp(40999));
    assert!(
        !r.has_binding_from(tcp(40312), t(1)),
        "the old flow keeps nothing"
    );

    // A second flow of the same instance (reg-id 2) is a binding of its own.
    let second = contact(6000, 2, "");
    let lines = ["Supported: outbound", second.as_str()];
    register_from(&mut r, tcp(41000), "c3", &lines);
    assert_eq!(r.bindings("1001", t(1)).len(), 2);
    // Removed by instance and reg-id, though named by yet another URI.
    let gone = contact(7000, 2, ";expires=0");
    let lines = ["Supported: outbound", gone.as_str()];
    register_from(&mut r, tcp(41001), "c4", &lines);
    let b = r.bindings("1001", t(1));
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].reg_id.as_deref(), Some("1"));
}

#[test]
fn without_an_instance_contacts_are_told_apart_by_uri_and_outbound_needs_a_connection() {
    let mut r = registrar();
    let tcp = Peer::tcp("198.51.100.7:40312".parse().unwrap());
    // No instance: a reg-id alone means nothing, two URIs are two bindings.
    register_from(
        &mut r,
        tcp,
        "n1",
        &["Contact: <sip:1001@10.0.0.6:5062>;reg-id=1"],
    );
    register_from(
        &mut r,
        tcp,
        "n2",
        &["Contact: <sip:1001@10.0.0.6:5063>;reg-id=1"],
    );
    let b = r.bindings("1001", t(1));
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(|b| !b.outbound && b.reg_id.is_none()));
    // `;ob` in the URI over TCP: a flow; over UDP never.
    let mut r = registrar();
    register_from(&mut r, tcp, "o1", &["Contact: <sip:1001@10.0.0.6:5062;ob>"]);
    assert!(r.bindings("1001", t(1))[0].outbound);
    let mut r = registrar();
    let ob = [
        "Supported: outbound",
        "Contact: <sip:1001@10.0.0.6:5062;ob>;reg-id=1;+sip.instance=\"<urn:uuid:1>\"",
    ];
    register_from(&mut r, peer(), "u1", &ob);
    assert!(
        !r.bindings("1001", t(1))[0].outbound,
        "UDP has no flow to lose"
    );
}
