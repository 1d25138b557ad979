//! Lean requests: `Checked::build_lean` keeps exactly the headers of
//! `LEAN_HEADERS`, and whatever a handler of a lean request reads (its
//! transaction key, dialog ids, screening, the answers built from it) is
//! what the whole request gives.

use super::generated::{request, Generated};
use super::tests::{mutated, INVITE};
use super::*;
use crate::sip::extensions::screen;
use crate::sip::headers::{self, header_parts, response_to, response_with_status};
use crate::sip::transaction::TxKey;
use proptest::prelude::*;

/// Lean and whole builds of `bytes` agree on everything lean handlers
/// read; `None` when `check` refuses it or it is a response.
fn lean_agrees(bytes: &[u8]) -> Result<Option<()>, TestCaseError> {
    let (Ok(a), Ok(b)) = (check(bytes), check(bytes)) else {
        prop_assert!(check(bytes).is_err() && parse(bytes).is_err());
        return Ok(None);
    };
    let (rsip::SipMessage::Request(mut full), rsip::SipMessage::Request(mut lean)) =
        (a.build(), b.build_lean())
    else {
        return Ok(None);
    };
    prop_assert_eq!(Ok(rsip::SipMessage::Request(full.clone())), parse(bytes));
    let kept: Vec<rsip::Header> = full
        .headers
        .iter()
        .filter(|h| {
            let name = header_parts(h).0;
            LEAN_HEADERS.iter().any(|l| l.eq_ignore_ascii_case(&name))
        })
        .cloned()
        .collect();
    prop_assert_eq!(lean.headers.iter().cloned().collect::<Vec<_>>(), kept);
    prop_assert_eq!(&lean.method, &full.method);
    prop_assert_eq!(&lean.uri, &full.uri);
    prop_assert_eq!(&lean.body, &full.body);
    let source = "198.51.100.7:5999".parse().expect("addr");
    headers::stamp_via_received(&mut full, source);
    headers::stamp_via_received(&mut lean, source);
    prop_assert_eq!(TxKey::server(&lean).ok(), TxKey::server(&full).ok());
    prop_assert_eq!(screen(&lean), screen(&full));
    for (code, tag) in [(481, Some("t1")), (200, None), (503, Some("t2"))] {
        let reason = reason_phrase(code);
        prop_assert_eq!(
            response_to(&lean, code, reason, tag),
            response_to(&full, code, reason, tag)
        );
    }
    let trying = |r: &rsip::Request| response_with_status(r, rsip::StatusCode::Trying, None);
    prop_assert_eq!(trying(&lean), trying(&full));
    prop_assert_eq!(headers::call_id(&lean), headers::call_id(&full));
    prop_assert_eq!(headers::cseq(&lean), headers::cseq(&full));
    prop_assert_eq!(headers::from_tag(&lean), headers::from_tag(&full));
    prop_assert_eq!(headers::to_tag(&lean), headers::to_tag(&full));
    Ok(Some(()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn lean_generated_requests_read_like_whole_ones(g in request()) {
        let Generated { bytes, .. } = g;
        prop_assert!(lean_agrees(&bytes)?.is_some(), "{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn lean_mutated_invites_read_like_whole_ones(bytes in mutated(INVITE)) {
        lean_agrees(&bytes)?;
    }

    #[test]
    fn check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(c) = check(&bytes) {
            let _ = c.build_lean();
        }
    }
}

/// Every header a lean request keeps, in compact and odd-case forms, among
/// headers it drops; and a body that screening reads.
#[test]
fn lean_keeps_what_answers_and_screening_read_and_drops_the_rest() {
    let raw = "BYE sip:1000@192.0.2.10 SIP/2.0\r\n\
        v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKlean1, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n\
        Max-Forwards: 70\r\n\
        t: <sip:1000@acd.example.com>;tag=ours\r\n\
        f: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
        i: lean-1@example.com\r\n\
        CSeq: 2 BYE\r\n\
        Route: <sip:proxy.example.com;lr>\r\n\
        TIMESTAMP: 54.1\r\n\
        require: foo\r\n\
        e: gzip\r\n\
        c: text/plain\r\n\
        User-Agent: Phone/1.0\r\n\
        X-Custom: dropped\r\n\
        l: 5\r\n\r\nhello";
    let lean = match check(raw.as_bytes()).map(Checked::build_lean) {
        Ok(rsip::SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    };
    let names: Vec<String> = lean.headers.iter().map(|h| header_parts(h).0).collect();
    assert_eq!(
        names,
        [
            "Via",
            "Via",
            "To",
            "From",
            "Call-ID",
            "CSeq",
            "Timestamp",
            "Require",
            "Content-Encoding",
            "Content-Type"
        ]
    );
    assert_eq!(lean.body, b"hello");
    assert!(matches!(
        screen(&lean),
        Some(crate::sip::extensions::Refusal::BadExtension(_))
    ));
    assert_eq!(lean_agrees(raw.as_bytes()).ok(), Some(Some(())));
    // Without the Require, the encoded body is what is refused (415).
    let raw = raw.replace("require: foo\r\n", "");
    assert_eq!(lean_agrees(raw.as_bytes()).ok(), Some(Some(())));
    let Ok(rsip::SipMessage::Request(lean)) = check(raw.as_bytes()).map(Checked::build_lean) else {
        panic!("checks");
    };
    assert_eq!(
        screen(&lean),
        Some(crate::sip::extensions::Refusal::UnsupportedEncoding)
    );
}

/// `check` refuses what `parse` refuses, with the same error.
#[test]
fn check_refuses_with_the_errors_of_parse() {
    let cases = [
        INVITE.replace("Max-Forwards: 70", "Max-Forwards: many"),
        INVITE.replacen("INVITE sip:", "FOO sip:", 1),
        INVITE.replacen(
            "sip:1000@acd.example.com SIP/2.0",
            "<sip:1000@h> SIP/2.0",
            1,
        ),
        INVITE.replace("SIP/2.0\r\n", "SIP/3.0\r\n"),
        INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE"),
    ];
    for raw in cases {
        let e = check(raw.as_bytes()).expect_err(&raw);
        assert_eq!(Err(e), parse(raw.as_bytes()), "{raw}");
    }
}
