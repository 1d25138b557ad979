use super::normalize::{expand_compact, split_list, tighten};
use super::*;
use crate::sip::headers;
use proptest::prelude::*;

pub(super) const INVITE: &str = "INVITE sip:1000@acd.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: <sip:1000@acd.example.com>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn request(raw: &str) -> rsip::Request {
    match parse(raw.as_bytes()) {
        Ok(rsip::SipMessage::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn err(raw: &str) -> ParseError {
    parse(raw.as_bytes()).expect_err("should be refused")
}

#[test]
fn plain_invite_parses() {
    let req = request(INVITE);
    assert_eq!(req.method, rsip::Method::Invite);
    assert_eq!(req.uri.to_string(), "sip:1000@acd.example.com");
    assert_eq!(req.body, b"v=0\n");
}

#[test]
fn unfolds_continuation_lines() {
    let raw = INVITE.replace("Max-Forwards: 70\r\n", "Subject: hello\r\n  \t world\r\n");
    let req = request(&raw);
    assert_eq!(
        headers::header_value(&req, "Subject").as_deref(),
        Some("hello world")
    );
}

#[test]
fn continuation_before_any_header_is_400() {
    let raw = INVITE.replacen("Via:", " folded\r\nVia:", 1);
    assert_eq!(err(&raw).status(), Some(400));
}

#[test]
fn expands_compact_forms() {
    assert_eq!(expand_compact("i"), Some("Call-ID"));
    assert_eq!(expand_compact("M"), Some("Contact"));
    assert_eq!(expand_compact("x"), Some("Session-Expires"));
    assert_eq!(expand_compact("n"), Some("Identity-Info"));
    assert_eq!(expand_compact("q"), None);
    assert_eq!(expand_compact("To"), None);
    let raw = INVITE
        .replace("Call-ID:", "i:")
        .replace("From:", "f:")
        .replace("Via:", "v:")
        .replace("Content-Length:", "l:");
    let req = request(&raw);
    assert_eq!(
        headers::call_id(&req).as_deref(),
        Some("a84b4c76e66710@pc33.example.com")
    );
    assert!(matches!(
        req.headers.iter().next(),
        Some(rsip::Header::Via(_))
    ));
    assert_eq!(headers::from_tag(&req).as_deref(), Some("1928301774"));
}

#[test]
fn tolerates_lws_around_colon_and_leading_crlf() {
    let raw = format!("\r\n\r\n{}", INVITE.replace("CSeq: ", "CSeq \t:   "));
    let req = request(&raw);
    assert_eq!(headers::cseq(&req), Some((314159, rsip::Method::Invite)));
}

#[test]
fn splits_lists_outside_quotes_and_brackets() {
    assert_eq!(
        split_list(r#""a, b" <sip:x@y;p=1,2>;q=1, <sip:z@w>"#, ','),
        vec![r#""a, b" <sip:x@y;p=1,2>;q=1"#, "<sip:z@w>"]
    );
    assert_eq!(split_list(r#""esc \", still" <sip:a@b>"#, ',').len(), 1);
    let raw = INVITE.replace(
        "Contact: <sip:alice@192.0.2.10>",
        "Contact: <sip:a@h1>, \"B, C\" <sip:b@h2>\r\nRoute: <sip:p1;lr>,<sip:p2;lr>",
    );
    let req = request(&raw);
    assert_eq!(headers::header_values(&req, "Contact").len(), 2);
    assert_eq!(headers::header_values(&req, "Route").len(), 2);
}

#[test]
fn multiple_vias_in_one_line_keep_order() {
    let raw = INVITE.replace(
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds",
        "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKa, SIP/2.0/TCP p2;branch=z9hG4bKb",
    );
    let req = request(&raw);
    let vias = headers::header_values(&req, "Via");
    assert_eq!(vias.len(), 2);
    assert_eq!(headers::top_via_branch(&req).as_deref(), Some("z9hG4bKa"));
    assert!(vias[1].contains("p2"));
}

#[test]
fn empty_list_element_is_400() {
    let raw = INVITE.replace("Contact: <sip:alice@192.0.2.10>", "Contact: <sip:a@h>,,");
    assert_eq!(err(&raw).status(), Some(400));
}

#[test]
fn tightens_lws_around_separators() {
    assert_eq!(
        tighten("SIP  / 2.0 /UDP   host ; branch =  z9", ";=,/:"),
        "SIP/2.0/UDP host;branch=z9"
    );
    assert_eq!(
        tighten(r#""J  R \" ; x"   <sip:a@b> ; tag = 1"#, ";="),
        r#""J  R \" ; x" <sip:a@b>;tag=1"#
    );
}

#[test]
fn content_length_cuts_extra_bytes() {
    let raw = format!("{INVITE}garbage after the body");
    assert_eq!(request(&raw).body, b"v=0\n");
}

#[test]
fn content_length_longer_than_body_is_400() {
    let raw = INVITE.replace("Content-Length: 4", "Content-Length: 40");
    assert_eq!(err(&raw).status(), Some(400));
}

#[test]
fn content_length_must_be_numeric_and_agree() {
    let raw = INVITE.replace("Content-Length: 4", "Content-Length: four");
    assert_eq!(err(&raw).status(), Some(400));
    let raw = INVITE.replace("Content-Length: 4", "Content-Length: 4\r\nl: 3");
    assert_eq!(err(&raw).status(), Some(400));
    let raw = INVITE.replace("Content-Length: 4", "Content-Length: 4\r\nl: 04");
    assert_eq!(request(&raw).body.len(), 4);
}

#[test]
fn missing_content_length_takes_rest_and_is_added() {
    let raw = INVITE.replace("Content-Length: 4\r\n", "");
    let req = request(&raw);
    assert_eq!(req.body, b"v=0\n");
    assert_eq!(
        headers::header_value(&req, "Content-Length").as_deref(),
        Some("4")
    );
}

#[test]
fn missing_required_headers_are_400() {
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        let raw: String = INVITE
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(&format!("{h}:")))
            .collect();
        assert_eq!(err(&raw).status(), Some(400), "without {h}");
    }
    // Max-Forwards is optional.
    let raw = INVITE.replace("Max-Forwards: 70\r\n", "");
    request(&raw);
}

#[test]
fn cseq_rules() {
    let bad = |cseq: &str| err(&INVITE.replace("CSeq: 314159 INVITE", cseq)).status();
    assert_eq!(bad("CSeq: 4294967296 INVITE"), Some(400));
    assert_eq!(bad("CSeq: -1 INVITE"), Some(400));
    assert_eq!(bad("CSeq: 1 ACK"), Some(400));
    assert_eq!(bad("CSeq: 1 invite"), Some(400));
    assert_eq!(bad("CSeq: INVITE"), Some(400));
    let req = request(&INVITE.replace("CSeq: 314159 INVITE", "CSeq: 4294967295 INVITE"));
    assert_eq!(headers::cseq(&req), Some((u32::MAX, rsip::Method::Invite)));
}

#[test]
fn version_other_than_2_0_is_505() {
    let raw = INVITE.replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1);
    assert_eq!(err(&raw).status(), Some(505));
    let raw = INVITE.replacen("SIP/2.0\r\n", "sip/2.0\r\n", 1);
    request(&raw);
    let raw = INVITE.replacen("SIP/2.0\r\n", "SIP/2.x\r\n", 1);
    assert_eq!(err(&raw).status(), Some(400));
}

#[test]
fn unknown_method_is_501_and_lowercase_is_unknown() {
    let raw = INVITE
        .replacen("INVITE sip:", "FOO sip:", 1)
        .replace("314159 INVITE", "314159 FOO");
    assert_eq!(err(&raw).status(), Some(501));
    let raw = INVITE
        .replacen("INVITE sip:", "invite sip:", 1)
        .replace("314159 INVITE", "314159 invite");
    assert_eq!(err(&raw).status(), Some(501));
}

#[test]
fn request_uri_forms() {
    let with_uri =
        |uri: &str| INVITE.replacen("sip:1000@acd.example.com SIP", &format!("{uri} SIP"), 1);
    let req = request(&with_uri("sip:[2001:db8::1]:5070;transport=tcp;lr"));
    assert_eq!(
        req.uri.to_string(),
        "sip:[2001:db8::1]:5070;transport=TCP;lr"
    );
    assert_eq!(req.uri.transport(), Some(&rsip::Transport::Tcp));
    let req = request(&with_uri("sips:+15551234@192.0.2.1:5061"));
    assert_eq!(headers::request_user(&req).as_deref(), Some("+15551234"));
    assert_eq!(err(&with_uri("sip:a@b?Subject=x")).status(), Some(400));
    assert_eq!(err(&with_uri("sip:a@b:99999")).status(), Some(400));
    assert_eq!(err(&with_uri("<sip:a@b>")).status(), Some(400));
    assert_eq!(err(&with_uri("urn:service:sos")).status(), Some(416));
}

#[test]
fn responses_never_get_a_status() {
    let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    assert!(matches!(
        parse(ok.as_bytes()),
        Ok(rsip::SipMessage::Response(_))
    ));
    for broken in [
        ok.replace("200 OK", "2000 OK"),
        ok.replace("200 OK", "099 Low"),
        ok.replace("Call-ID: x\r\n", ""),
        ok.replace("Content-Length: 0", "Content-Length: 10"),
    ] {
        let e = parse(broken.as_bytes()).expect_err(&broken);
        assert_eq!(e.status(), None, "{e}");
        assert_eq!(error_response(broken.as_bytes(), &e), None);
    }
}

#[test]
fn keepalives_and_garbage_are_dropped() {
    assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::Empty));
    assert_eq!(parse(b""), Err(ParseError::Empty));
    let e = parse(b"hello world\r\n\r\n").unwrap_err();
    assert_eq!(e.status(), None);
    assert_eq!(error_response(b"hello world\r\n\r\n", &e), None);
}

#[test]
fn size_and_header_caps() {
    let big = format!("{INVITE}{}", "x".repeat(MAX_MESSAGE_SIZE));
    let e = err(&big);
    assert_eq!(e.status(), Some(513));
    let many = INVITE.replace(
        "Max-Forwards: 70\r\n",
        &"X-Filler: 1\r\n".repeat(MAX_HEADERS + 1),
    );
    assert_eq!(err(&many).status(), Some(400));
}

#[test]
fn error_response_copies_transaction_headers() {
    let raw = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
    let e = err(&raw);
    let resp = error_response(raw.as_bytes(), &e).expect("a response");
    let resp = match parse(&resp) {
        Ok(rsip::SipMessage::Response(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(resp.status_code.code(), 400);
    assert_eq!(
        headers::top_via_branch(&resp).as_deref(),
        Some("z9hG4bK776asdhds")
    );
    assert_eq!(headers::from_tag(&resp).as_deref(), Some("1928301774"));
    assert!(headers::to_tag(&resp).is_some());
    assert_eq!(
        headers::header_value(&resp, "CSeq").as_deref(),
        Some("314159 BYE")
    );
    // Same bad request, same To tag (retransmissions match).
    assert_eq!(
        error_response(raw.as_bytes(), &e),
        error_response(raw.as_bytes(), &e)
    );
    // No Via: nowhere to send it.
    let raw: String = raw
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Via"))
        .collect();
    assert_eq!(error_response(raw.as_bytes(), &err(&raw)), None);
}

#[test]
fn a_broken_ack_is_dropped_unanswered() {
    // The same fault answered with a 400 in a BYE is dropped in an ACK.
    let bye = INVITE
        .replacen("INVITE sip:", "BYE sip:", 1)
        .replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
    let ack = INVITE
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 314159 INVITE", "CSeq: 314159 ACK");
    for (raw, answered) in [(bye, true), (ack, false)] {
        let raw = raw.replace("CSeq: 314159", "CSeq: 4294967296");
        let e = err(&raw);
        assert_eq!(e.status(), Some(400), "{raw}");
        assert_eq!(
            error_response(raw.as_bytes(), &e).is_some(),
            answered,
            "{raw}"
        );
    }
}

#[test]
fn error_response_keeps_an_existing_to_tag() {
    let raw = INVITE
        .replace(
            "To: <sip:1000@acd.example.com>",
            "t: <sip:1000@acd.example.com>;tag=abc",
        )
        .replacen("SIP/2.0\r\n", "SIP/9.9\r\n", 1);
    let resp = error_response(raw.as_bytes(), &err(&raw)).unwrap();
    let text = String::from_utf8(resp).unwrap();
    assert!(text.starts_with("SIP/2.0 505 Version Not Supported\r\n"));
    assert!(text.contains("\r\nTo: <sip:1000@acd.example.com>;tag=abc\r\n"));
}

#[test]
fn serialize_writes_raw_body_and_correct_length() {
    let mut msg = parse(INVITE.as_bytes()).unwrap();
    *msg.body_mut() = vec![0xff, 0x00, 0x80];
    let out = serialize(&msg);
    assert!(out.ends_with(b"Content-Length: 3\r\n\r\n\xff\x00\x80"));
    let back = parse(&out).unwrap();
    assert_eq!(back.body(), &vec![0xff, 0x00, 0x80]);
}

#[test]
fn serialize_round_trips() {
    let msg = parse(INVITE.as_bytes()).unwrap();
    assert_eq!(parse(&serialize(&msg)).unwrap(), msg);
    let text = String::from_utf8(serialize(&msg)).unwrap();
    assert!(text.starts_with("INVITE sip:1000@acd.example.com SIP/2.0\r\n"));
}

#[test]
fn status_and_reasons() {
    assert_eq!(
        ParseError::BadRequest("x".into()).reason_phrase(),
        Some("Bad Request")
    );
    assert_eq!(
        ParseError::UnsupportedUriScheme("t".into()).status(),
        Some(416)
    );
    assert_eq!(ParseError::Garbage("x").reason_phrase(), None);
    assert_eq!(ParseError::BadRequest("why".into()).reason(), "why");
}

pub(super) fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    (
        0..=len,
        proptest::collection::vec((0..len, any::<u8>()), 0..8),
        proptest::collection::vec(0..len, 0..4),
    )
        .prop_map(move |(cut, flips, dels)| {
            let mut b = base.as_bytes().to_vec();
            for (i, v) in flips {
                if let Some(x) = b.get_mut(i) {
                    *x = v;
                }
            }
            for i in dels {
                if i < b.len() {
                    b.remove(i);
                }
            }
            b.truncate(cut);
            b
        })
}

pub(super) const SIPPY_BYTES: &[u8] = b"\r\n \t:;,=<>\"\\/@SIP2.0INVITEViaCSeq%[]";

/// `parse` turns a panic inside rsip into an error; the properties below
/// must see it as the failure it is, not as a refused message.
pub(super) fn rsip_panicked(r: &Result<rsip::SipMessage, ParseError>) -> bool {
    matches!(r, Err(e) if e.reason().ends_with(super::uri::RSIP_PANICKED))
}

#[test]
fn a_panic_inside_rsip_is_what_the_properties_look_for() {
    // The reason `parse_request_uri` gives a caught panic, as `parse`
    // returns it: the properties below must recognise it.
    let caught: Result<rsip::SipMessage, ParseError> = Err(ParseError::BadRequest(format!(
        "Request-URI: {}",
        super::uri::RSIP_PANICKED
    )));
    assert!(rsip_panicked(&caught));
    assert!(!rsip_panicked(&Err(ParseError::UnsupportedUriScheme(
        "tel".into()
    ))));
}

/// Requests whose Request-URI has a scheme other than sip/sips: these are
/// the ones handed to rsip's own URI parser.
fn other_scheme_invite() -> impl Strategy<Value = Vec<u8>> {
    let scheme = proptest::sample::select(vec![
        "tel", "urn", "im", "pres", "h323", "x", "TEL", "mailto", "a+b.c-d",
    ]);
    let rest = proptest::collection::vec(0..SIPPY_BYTES.len(), 0..60)
        .prop_map(|idx| idx.into_iter().map(|i| SIPPY_BYTES[i]).collect::<Vec<u8>>());
    (scheme, rest, "[+0-9a-z;=.@:%-]{0,40}").prop_map(|(scheme, rest, tail)| {
        let mut b = format!("INVITE {scheme}:{tail}").into_bytes();
        b.extend(rest.iter().filter(|c| !c.is_ascii_whitespace()));
        b.extend_from_slice(
            b" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
              From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\n\
              Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        );
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let r = parse(&bytes);
        prop_assert!(!rsip_panicked(&r), "rsip panicked on {:?}", String::from_utf8_lossy(&bytes));
        if let Err(e) = &r {
            let _ = error_response(&bytes, e);
        }
    }

    #[test]
    fn never_panics_on_sip_alphabet(idx in proptest::collection::vec(0..SIPPY_BYTES.len(), 0..400)) {
        let bytes: Vec<u8> = idx.into_iter().map(|i| SIPPY_BYTES[i]).collect();
        let r = parse(&bytes);
        prop_assert!(!rsip_panicked(&r), "rsip panicked on {:?}", String::from_utf8_lossy(&bytes));
        if let Err(e) = r {
            let _ = error_response(&bytes, &e);
        }
    }

    #[test]
    fn never_panics_on_other_uri_schemes(bytes in other_scheme_invite()) {
        let r = parse(&bytes);
        prop_assert!(!rsip_panicked(&r), "rsip panicked on {:?}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn never_panics_on_mutated_invites(bytes in mutated(INVITE)) {
        let r = parse(&bytes);
        prop_assert!(!rsip_panicked(&r), "rsip panicked on {:?}", String::from_utf8_lossy(&bytes));
        match r {
            Ok(msg) => {
                // Whatever we accept must survive serialise + parse unchanged.
                prop_assert_eq!(parse(&serialize(&msg)), Ok(msg));
            }
            Err(e) => {
                if let Some(resp) = error_response(&bytes, &e) {
                    prop_assert!(resp.starts_with(b"SIP/2.0 "));
                }
            }
        }
    }
}

/// The reason of a refusal, whatever the order of the headers: presence
/// and uniqueness first, then CSeq, Max-Forwards, Via, and the addresses
/// (From, To, Contact, Route, Record-Route).
#[test]
fn the_reported_rule_does_not_depend_on_header_order() {
    let reason = |raw: &str| match err(raw) {
        ParseError::BadRequest(r) => r,
        other => panic!("expected a 400, got {other:?}"),
    };
    // A bad Contact written before a bad Max-Forwards: Max-Forwards is told.
    let raw = INVITE
        .replace("Contact: <sip:alice@192.0.2.10>\r\n", "")
        .replace(
            "Max-Forwards: 70\r\n",
            "Contact: <sip:alice@192.0.2.10\r\nMax-Forwards: x\r\n",
        );
    assert_eq!(reason(&raw), "Max-Forwards is not a number");
    // A bad From before a bad Via: the Via is told.
    let raw = INVITE
        .replace(
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n",
            "",
        )
        .replace(
            "Call-ID:",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;;branch=x\r\nCall-ID:",
        )
        .replace("From: \"Alice\" <", "From: \"Alice <");
    assert!(reason(&raw).starts_with("Via: "), "{}", reason(&raw));
    // Two CSeqs, one of them malformed: the duplicate is told.
    let raw = INVITE.replace("CSeq: 314159 INVITE\r\n", "CSeq: x\r\nCSeq: 1 INVITE\r\n");
    assert_eq!(reason(&raw), "more than one CSeq");
    // The first bad value of one rule is told: two bad Contacts.
    let raw = INVITE.replace(
        "Contact: <sip:alice@192.0.2.10>\r\n",
        "Contact: <sip:a@192.0.2.10>;;x\r\nContact: \"b <sip:b@192.0.2.10>\r\n",
    );
    assert_eq!(reason(&raw), "Contact: empty or invalid parameter");
    // Nothing wrong: accepted.
    request(INVITE);
}
