//! RFC 4475 torture messages through `sip::message::parse`.
//!
//! The messages live outside the repository (see the testdata README); the
//! folder is found via SIPACD_TESTDATA or ../shared/testdata/rfc4475. When
//! neither exists the tests fail, saying where they looked, unless
//! `SIPACD_SKIP_TESTDATA=1` asks to skip them (a skip is never silent).

use std::path::PathBuf;

use sipacd::sip::headers;
use sipacd::sip::message::{error_response, parse, serialize};

/// What the RFC lets a receiver do with a message.
#[derive(Debug)]
enum Expect {
    /// Parsed into an rsip message.
    Ok,
    /// Refused; `status()` must be one of these (None = dropped).
    Reject(&'static [Option<u16>]),
    /// Parsed, or refused with one of these statuses.
    OkOr(&'static [Option<u16>]),
}

use Expect::*;

const CASES: &[(&str, Expect)] = &[
    // 3.1.1 valid messages
    ("wsinv", Ok),
    // rsip::Method is a closed enum: an unknown method is answered 501,
    // the RFC's response for a method the UAS does not implement.
    ("intmeth", Reject(&[Some(501)])),
    ("esc01", Ok),
    ("escnull", Ok),
    ("esc02", Reject(&[Some(501)])),
    ("lwsdisp", Ok),
    ("longreq", Ok),
    ("dblreq", Ok),
    ("semiuri", Ok),
    ("transports", Ok),
    ("mpart01", Ok),
    ("unreason", Ok),
    ("noreason", Ok),
    // 3.1.2 invalid messages
    ("badinv01", Reject(&[Some(400)])),
    ("clerr", Reject(&[Some(400)])),
    ("scalar02", Reject(&[Some(400)])),
    ("quotbal", Reject(&[Some(400)])),
    ("lwsruri", Reject(&[Some(400)])),
    ("ncl", Reject(&[Some(400)])),
    ("mismatch01", Reject(&[Some(400)])),
    ("badvers", Reject(&[Some(505)])),
    ("mismatch02", Reject(&[Some(400), Some(501)])),
    ("scalarlg", Reject(&[None, Some(400)])),
    ("bigcode", Reject(&[None, Some(400)])),
    ("ltgtruri", OkOr(&[Some(400)])),
    ("lwsstart", OkOr(&[Some(400)])),
    ("trws", OkOr(&[Some(400)])),
    ("escruri", OkOr(&[Some(400)])),
    ("baddate", OkOr(&[Some(400)])),
    ("regbadct", OkOr(&[Some(400)])),
    ("badaspec", OkOr(&[Some(400)])),
    ("baddn", OkOr(&[Some(400)])),
    // 3.2 transaction layer
    ("badbranch", Ok),
    // 3.3 application layer: parse, or give the answer the RFC prescribes
    ("insuf", OkOr(&[Some(400)])),
    ("unkscm", OkOr(&[Some(416)])),
    ("novelsc", OkOr(&[Some(416)])),
    ("unksm2", Ok),
    ("bext01", Ok),
    ("invut", Ok),
    ("regaut01", Ok),
    ("multi01", OkOr(&[Some(400)])),
    ("mcl01", OkOr(&[Some(400)])),
    ("bcast", Ok),
    ("zeromf", Ok),
    ("cparam01", Ok),
    ("cparam02", Ok),
    ("regescrt", Ok),
    ("sdp01", Ok),
    // 3.4 backward compatibility
    ("inv2543", Ok),
];

fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("SIPACD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/rfc4475")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    let what = format!(
        "RFC 4475 messages in {} (or SIPACD_TESTDATA)",
        dir.display()
    );
    if std::env::var("SIPACD_SKIP_TESTDATA").as_deref() != Result::Ok("1") {
        panic!("{what} are missing: point SIPACD_TESTDATA at them, or set SIPACD_SKIP_TESTDATA=1 to skip");
    }
    eprintln!("SKIPPED: {what} are missing (SIPACD_SKIP_TESTDATA=1)");
    None
}

#[test]
fn rfc4475_torture_messages() {
    let Some(dir) = testdata() else {
        return;
    };
    let mut seen = 0;
    for (name, expect) in CASES {
        let raw = std::fs::read(dir.join(format!("{name}.dat")))
            .unwrap_or_else(|e| panic!("{name}.dat: {e}"));
        let result = parse(&raw);
        println!(
            "{name:10} {:?}",
            result.as_ref().map(|_| ()).map_err(|e| e.to_string())
        );
        match (expect, &result) {
            (Ok | OkOr(_), Result::Ok(msg)) => {
                // What we parsed survives our own serialisation.
                let again = parse(&serialize(msg))
                    .unwrap_or_else(|e| panic!("{name}: reparse failed: {e}"));
                assert_eq!(&again, msg, "{name}: round trip differs");
            }
            (Reject(allowed) | OkOr(allowed), Err(e)) => {
                assert!(
                    allowed.contains(&e.status()),
                    "{name}: status {:?} ({e}) not in {allowed:?}",
                    e.status()
                );
                if let Some(status) = e.status() {
                    let resp = error_response(&raw, e)
                        .unwrap_or_else(|| panic!("{name}: no error response"));
                    let text = String::from_utf8(resp).unwrap();
                    assert!(
                        text.starts_with(&format!("SIP/2.0 {status} ")),
                        "{name}: {text}"
                    );
                    assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{name}");
                    // The response echoes the request's Call-ID and CSeq.
                    let raw_text = String::from_utf8_lossy(&raw);
                    for line in text.lines().filter(|l| l.starts_with("Call-ID:")) {
                        let id = line.trim_start_matches("Call-ID:").trim();
                        assert!(raw_text.contains(id), "{name}: Call-ID {id}");
                    }
                    assert!(text.contains("\r\nVia: "), "{name}: Via");
                    if let Some(to) = text.lines().find(|l| l.starts_with("To:")) {
                        assert!(to.contains(";tag="), "{name}: To tag");
                    }
                }
            }
            (expect, got) => panic!("{name}: expected {expect:?}, got {got:?}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 49);
}

#[test]
fn every_file_in_the_folder_is_covered() {
    let Some(dir) = testdata() else {
        return;
    };
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "dat") {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                CASES.iter().any(|(n, _)| *n == stem),
                "{stem}.dat has no expectation"
            );
        }
    }
}

#[test]
fn specific_details() {
    let Some(dir) = testdata() else {
        return;
    };
    let read = |n: &str| std::fs::read(dir.join(format!("{n}.dat"))).unwrap();

    // dblreq: the first request only, by its Content-Length: 0.
    let rsip::SipMessage::Request(req) = parse(&read("dblreq")).unwrap() else {
        panic!("dblreq is a request");
    };
    assert_eq!(req.method, rsip::Method::Register);
    assert!(req.body.is_empty());

    // wsinv: folded, LWS-laden and compact headers all normalised.
    let rsip::SipMessage::Request(req) = parse(&read("wsinv")).unwrap() else {
        panic!("wsinv is a request");
    };
    assert_eq!(headers::cseq(&req), Some((9, rsip::Method::Invite)));
    assert_eq!(headers::to_tag(&req).as_deref(), Some("1918181833n"));
    assert_eq!(headers::from_tag(&req).as_deref(), Some("98asjd8"));
    assert_eq!(headers::top_via_branch(&req).as_deref(), Some("390skdjuw"));
    assert_eq!(headers::header_values(&req, "Via").len(), 3);
    assert_eq!(req.body.len(), 150);
    assert_eq!(
        headers::header_value(&req, "NewFangledHeader").as_deref(),
        Some("newfangled value continued newfangled value")
    );

    // semiuri: the user part keeps its ';'.
    let rsip::SipMessage::Request(req) = parse(&read("semiuri")).unwrap() else {
        panic!("semiuri is a request");
    };
    assert_eq!(
        headers::request_user(&req).as_deref(),
        Some("user;par=u%40example.net")
    );

    // inv2543: no branch, still usable.
    let msg = parse(&read("inv2543")).unwrap();
    assert_eq!(headers::top_via_branch(&msg), None);
}
