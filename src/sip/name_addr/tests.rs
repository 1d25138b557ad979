use super::*;

const INSTANCE: &str = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";

fn one(v: &str) -> NameAddr {
    NameAddr::parse(v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[test]
fn linphone_contact_with_instance_id() {
    let a = one(&format!(
        "<sip:1003@127.0.0.1:5072;transport=udp>;expires=600;+sip.instance=\"{INSTANCE}\""
    ));
    assert_eq!(a.uri, "sip:1003@127.0.0.1:5072;transport=udp");
    assert_eq!(a.display, None);
    assert_eq!(a.param("expires"), Some(Some("600")));
    assert_eq!(a.param("+sip.instance"), Some(Some(INSTANCE)));
    assert_eq!(a.user(), Some("1003"));
    let uri = a.rsip_uri().unwrap();
    // rsip types `transport` (and prints it upper-case).
    assert!(uri
        .to_string()
        .eq_ignore_ascii_case("sip:1003@127.0.0.1:5072;transport=udp"));
}

#[test]
fn outbound_reg_id_and_instance() {
    let a = one(&format!(
        "<sip:1001@192.0.2.4:5060;ob>;reg-id=1;+sip.instance=\"{INSTANCE}\";q=0.7"
    ));
    assert_eq!(a.param("reg-id"), Some(Some("1")));
    assert_eq!(a.param("+SIP.Instance"), Some(Some(INSTANCE)));
    assert_eq!(a.param("q"), Some(Some("0.7")));
    assert_eq!(
        a.rsip_uri().unwrap().to_string(),
        "sip:1001@192.0.2.4:5060;ob"
    );
}

#[test]
fn gruu_parameters_quoted_with_semicolons_inside() {
    let a = one(
        "<sip:1003@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\
         ;pub-gruu=\"sip:1003@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\"\
         ;temp-gruu=\"sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@example.com;gr\"\
         ;expires=3600",
    );
    assert_eq!(
        a.param("pub-gruu"),
        Some(Some(
            "sip:1003@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
        ))
    );
    assert_eq!(
        a.param("temp-gruu"),
        Some(Some(
            "sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@example.com;gr"
        ))
    );
    assert_eq!(a.param("expires"), Some(Some("3600")));
    // A GRUU as the target: its `gr` URI parameter survives into rsip.
    let uri = a.rsip_uri().unwrap();
    assert_eq!(
        uri.to_string(),
        "sip:1003@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    );
}

#[test]
fn quoted_values_hold_escapes_and_separators() {
    let a = one(r#"<sip:a@h>;foo="x\"y <z>; w, v";bar=baz;lr"#);
    assert_eq!(a.param("foo"), Some(Some(r#"x"y <z>; w, v"#)));
    assert_eq!(a.param("bar"), Some(Some("baz")));
    assert_eq!(a.param("lr"), Some(None));
    assert_eq!(a.param("nope"), None);
}

#[test]
fn display_names_quoted_or_not() {
    let q = one(r#""Agent \"One\", <Desk>; 3" <sip:1001@example.com>;tag=abc"#);
    assert_eq!(q.display.as_deref(), Some(r#"Agent "One", <Desk>; 3"#));
    assert_eq!(q.uri, "sip:1001@example.com");
    assert_eq!(q.tag(), Some("abc"));
    let t = one("Agent One <sip:1001@example.com>;tag=x");
    assert_eq!(t.display.as_deref(), Some("Agent One"));
    assert_eq!(t.tag(), Some("x"));
    let none = one("<sip:1001@example.com>");
    assert_eq!(none.display, None);
    let empty = one("\"\" <sip:1001@example.com>");
    assert_eq!(empty.display, None);
    assert_eq!(empty.tag(), None);
}

#[test]
fn addr_spec_without_brackets_takes_params_as_header_params() {
    let a = one(&format!(
        "sip:1003@127.0.0.1:5072;expires=60;+sip.instance=\"{INSTANCE}\""
    ));
    assert_eq!(a.uri, "sip:1003@127.0.0.1:5072");
    assert_eq!(a.param("expires"), Some(Some("60")));
    assert_eq!(a.param("+sip.instance"), Some(Some(INSTANCE)));
    let bare = one("sip:1003@127.0.0.1");
    assert!(bare.params.is_empty());
}

#[test]
fn several_contacts_in_one_header() {
    let list = parse_list(&format!(
        "\"Desk, left\" <sip:1001@10.0.0.5:5062>;expires=60;+sip.instance=\"{INSTANCE}\", \
         sip:1001@10.0.0.6;expires=0, <sip:1001@10.0.0.7>;foo=\"a,b\""
    ))
    .unwrap();
    let uris: Vec<&str> = list.iter().map(|a| a.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:1001@10.0.0.5:5062",
            "sip:1001@10.0.0.6",
            "sip:1001@10.0.0.7"
        ]
    );
    assert_eq!(list[0].display.as_deref(), Some("Desk, left"));
    assert_eq!(list[0].param("+sip.instance"), Some(Some(INSTANCE)));
    assert_eq!(list[1].param("expires"), Some(Some("0")));
    assert_eq!(list[2].param("foo"), Some(Some("a,b")));
}

#[test]
fn malformed_values_are_errors() {
    let err = |v: &str| NameAddr::parse(v).expect_err(v);
    assert_eq!(err(""), NameAddrError::Empty);
    assert_eq!(err("\"open <sip:a@b>"), NameAddrError::UnterminatedQuote);
    assert_eq!(err("<sip:a@b"), NameAddrError::UnterminatedAngle);
    assert_eq!(err("\"name\" sip:a@b"), NameAddrError::NoUri);
    assert_eq!(err("<>"), NameAddrError::NoUri);
    assert_eq!(err("<sip:a@b> junk"), NameAddrError::Junk);
    assert_eq!(err("<sip:a@b>;;x"), NameAddrError::BadParam);
    assert_eq!(err("<sip:a@b>;x=\"open"), NameAddrError::UnterminatedQuote);
    assert_eq!(err("<sip:a@b>;x=\"q\"tail"), NameAddrError::Junk);
    assert_eq!(err("<sip:a@b>;x="), NameAddrError::BadParam);
    assert_eq!(err("<sip:a@b c>"), NameAddrError::NoUri);
    assert!(matches!(
        one("<sip:a@@b>").rsip_uri(),
        Err(NameAddrError::BadUri(_))
    ));
    assert!(parse_list("<sip:a@b>, \"x").is_err());
}

#[test]
fn header_uris_tolerate_what_the_request_uri_does_not() {
    // URI headers are dropped; a quoted URI parameter is kept as written.
    let a = one("<sip:a@example.com;transport=tcp?subject=hi>");
    assert!(a
        .rsip_uri()
        .unwrap()
        .to_string()
        .eq_ignore_ascii_case("sip:a@example.com;transport=tcp"));
    let q = one("<sip:a@example.com;x=\"y;z\">");
    assert_eq!(
        q.rsip_uri().unwrap().to_string(),
        "sip:a@example.com;x=\"y;z\""
    );
    // rsip's Uri cannot carry tel: (it would print "tel://"): refused.
    let tel = one("<tel:+15551234>");
    assert!(matches!(tel.rsip_uri(), Err(NameAddrError::BadUri(_))));
    assert_eq!(tel.user(), None);
}
