//! Parse once: `build` types every message as rsip's own parser did on the
//! canonical bytes, and `peek_request` reads the same identifiers as the
//! accessors on the parsed message.

use super::generated::{request, Generated};
use super::tests::{mutated, rsip_panicked, INVITE, SIPPY_BYTES};
use super::*;
use crate::sip::headers;
use crate::sip::transaction::TxKey;
use proptest::prelude::*;

/// `parse` and the old serialise-and-reparse path agree, errors included.
fn same_as_rsip(bytes: &[u8]) -> Result<(), TestCaseError> {
    let reference = parse_via_rsip(bytes);
    prop_assert!(!rsip_panicked(&reference), "rsip panicked");
    prop_assert_eq!(parse(bytes), reference);
    Ok(())
}

/// Whatever `peek_request` answers for a message `parse` accepts is what
/// the parsed request says, the transaction key included.
fn peek_agrees(bytes: &[u8]) -> Result<Option<bool>, TestCaseError> {
    let Ok(rsip::SipMessage::Request(mut req)) = parse(bytes) else {
        return Ok(None);
    };
    let Some(ids) = peek_request(bytes) else {
        return Ok(Some(false));
    };
    // The layer keys the request after stamping its Via, as the endpoint does.
    headers::stamp_via_received(&mut req, "198.51.100.7:5999".parse().expect("addr"));
    let full = TxKey::server(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(TxKey::server_for_ids(&ids), full);
    prop_assert_eq!(ids.method, req.method);
    prop_assert_eq!(Some(ids.call_id.to_string()), headers::call_id(&req));
    prop_assert_eq!(Some(ids.cseq), headers::cseq(&req).map(|c| c.0));
    // What the 2xx retransmitter matches a parsed ACK by (rsip's typed CSeq).
    prop_assert_eq!(
        crate::sip::transaction::ack_ids(&req),
        Some((ids.call_id, ids.cseq))
    );
    prop_assert_eq!(ids.from_tag.map(str::to_string), headers::from_tag(&req));
    prop_assert_eq!(ids.to_tag.map(str::to_string), headers::to_tag(&req));
    Ok(Some(true))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn build_types_generated_requests_like_rsip(g in request()) {
        same_as_rsip(&g.bytes)?;
    }

    #[test]
    fn build_types_mutated_invites_like_rsip(bytes in mutated(INVITE)) {
        same_as_rsip(&bytes)?;
    }

    #[test]
    fn build_types_sip_alphabet_like_rsip(idx in proptest::collection::vec(0..SIPPY_BYTES.len(), 0..300)) {
        let bytes: Vec<u8> = idx.into_iter().map(|i| SIPPY_BYTES[i]).collect();
        same_as_rsip(&bytes)?;
    }

    #[test]
    fn peek_reads_what_parse_reads(g in request()) {
        let Generated { bytes, plain } = g;
        let peeked = peek_agrees(&bytes)?;
        prop_assert!(peeked.is_some(), "generated messages are well-formed: {}", String::from_utf8_lossy(&bytes));
        if plain {
            prop_assert_eq!(peeked, Some(true), "a plain layout must be read: {}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn peek_agrees_on_mutated_invites(bytes in mutated(INVITE)) {
        peek_agrees(&bytes)?;
    }

    #[test]
    fn peek_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = peek_request(&bytes);
    }
}

#[test]
fn build_types_responses_like_rsip() {
    let base = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nSubscription-State: active\r\n\
WWW-Authenticate: Digest realm=\"r\"\r\nl: 0\r\n\r\n";
    for line in [
        "SIP/2.0 200 OK",
        "SIP/2.0 200 Fine Thanks",
        "SIP/2.0 299 Custom Thing",
        "SIP/2.0 180",
        "SIP/2.0 606 Not Acceptable",
        "SIP/2.0   487   Request Terminated  ",
    ] {
        let raw = base.replacen("SIP/2.0 200 OK", line, 1);
        same_as_rsip(raw.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let Ok(rsip::SipMessage::Response(r)) = parse(base.replace("200 OK", "299 Custom").as_bytes())
    else {
        panic!("parses");
    };
    assert_eq!(r.status_code, rsip::StatusCode::Other(299, "Custom".into()));
}

#[test]
fn build_types_every_rsip_header_name_like_rsip() {
    let names = [
        "Accept",
        "Accept-Encoding",
        "accept-language",
        "Alert-Info",
        "Allow",
        "Authentication-Info",
        "Authorization",
        "Call-Info",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Type",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "In-Reply-To",
        "MAX-FORWARDS",
        "Mime-Version",
        "Min-Expires",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Record-Route",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "www-authenticate",
        "X-Other",
        "Contact",
    ];
    for name in names {
        let raw = INVITE.replace("Max-Forwards: 70", &format!("{name}: <sip:v@h>;x=1"));
        same_as_rsip(raw.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Every RFC 4475 torture message (the directory `tests/torture.rs` uses).
#[test]
fn build_types_rfc4475_messages_like_rsip() {
    let dir = match std::env::var_os("SIPACD_TESTDATA") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/rfc4475"),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        assert!(
            std::env::var_os("SIPACD_SKIP_TESTDATA").is_some(),
            "no RFC 4475 messages in {dir:?} (SIPACD_SKIP_TESTDATA=1 to skip)"
        );
        return;
    };
    let (mut files, mut peeked) = (0, 0);
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "dat") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("readable");
        same_as_rsip(&bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        match peek_agrees(&bytes) {
            Ok(Some(true)) => peeked += 1,
            Ok(_) => {}
            Err(e) => panic!("{path:?}: {e}"),
        }
        files += 1;
    }
    assert!(files > 40, "only {files} RFC 4475 messages");
    assert!(peeked > 0, "peek read none of them");
}

#[test]
fn peek_declines_what_it_cannot_be_sure_of() {
    assert!(peek_request(INVITE.as_bytes()).is_some());
    let cases = [
        // folded Via
        INVITE.replace("Via: SIP/2.0/UDP", "Via:\r\n SIP/2.0/UDP"),
        // LWS normalisation would remove
        INVITE.replace(";branch=", " ; branch="),
        // RFC 2543 branch
        INVITE.replace("branch=z9hG4bK776asdhds", "branch=776asdhds"),
        // repeated Call-ID
        INVITE.replace("Max-Forwards: 70", "Call-ID: other"),
        // CSeq of another method
        INVITE.replace("314159 INVITE", "314159 BYE"),
        // a tag that is not a token
        INVITE.replace("tag=1928301774", "tag=19 28"),
        // unknown method
        INVITE.replacen("INVITE sip:", "FOO sip:", 1),
    ];
    for raw in cases {
        assert_eq!(peek_request(raw.as_bytes()), None, "{raw}");
    }
    let ids = peek_request(INVITE.as_bytes()).expect("plain INVITE");
    assert_eq!(ids.branch, "z9hG4bK776asdhds");
    assert_eq!(ids.sent_by, "192.0.2.10:5060");
    assert_eq!(ids.call_id, "a84b4c76e66710@pc33.example.com");
    assert_eq!(
        (ids.cseq, ids.from_tag, ids.to_tag),
        (314159, Some("1928301774"), None)
    );
}
