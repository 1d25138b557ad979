//! Generated SIP requests for the property tests: well-formed messages in
//! every layout RFC 3261 allows and phones use (compact and odd-case
//! names, LWS around separators, folded lines, Via lists on one line,
//! quoted display names with separators inside, LF-only line ends).

use proptest::prelude::*;

/// A generated request and whether its layout is a plain one, which
/// `peek_request` must be able to read.
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    pub bytes: Vec<u8>,
    pub plain: bool,
}

const METHODS: &[&str] = &[
    "INVITE", "ACK", "BYE", "CANCEL", "INFO", "OPTIONS", "UPDATE", "REGISTER",
];

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,11}"
}

/// A header name as a sender may write it: `full` in some letter case, or
/// its compact form.
fn name(full: &'static str, compact: Option<&'static str>) -> BoxedStrategy<(String, bool)> {
    let cased = proptest::collection::vec(any::<bool>(), full.len()).prop_map(move |up| {
        let s: String = full
            .chars()
            .zip(up)
            .map(|(c, u)| match u {
                true => c.to_ascii_uppercase(),
                false => c.to_ascii_lowercase(),
            })
            .collect();
        (s, true)
    });
    match compact {
        Some(c) => prop_oneof![
            3 => Just((full.to_string(), true)),
            1 => cased,
            1 => Just((c.to_string(), true)),
        ]
        .boxed(),
        None => prop_oneof![3 => Just((full.to_string(), true)), 1 => cased].boxed(),
    }
}

/// Text put around a separator: nothing (plain) or LWS (not plain).
fn lws() -> impl Strategy<Value = (&'static str, bool)> {
    prop_oneof![
        6 => Just(("", true)),
        1 => Just((" ", false)),
        1 => Just(("\t ", false)),
    ]
}

fn colon() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(": "),
        Just(":"),
        Just(" : "),
        Just(":\t"),
        Just("  :  ")
    ]
}

/// One Via value: (text, plain).
fn via(cookie: bool) -> impl Strategy<Value = (String, bool)> {
    (
        prop_oneof![Just("UDP"), Just("TCP"), Just("udp")],
        prop_oneof![
            Just("192.0.2.10".to_string()),
            Just("Host.Example.COM".to_string()),
            Just("[2001:db8::1]".to_string()),
        ],
        proptest::option::of(1000u16..65535),
        token(),
        any::<bool>(),
        lws(),
        lws(),
    )
        .prop_map(move |(tr, host, port, b, rport, (w1, p1), (w2, p2))| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let branch = match cookie {
                true => format!("z9hG4bK{b}"),
                false => b,
            };
            let rport = if rport { ";rport" } else { "" };
            let text = format!("SIP/2.0/{tr} {host}{port}{rport}{w1};{w2}branch={branch}");
            (text, p1 && p2)
        })
}

/// A From or To value with a tag or not: (text, plain).
fn name_addr(tag: Option<String>) -> impl Strategy<Value = (String, bool)> {
    (
        prop_oneof![
            Just(String::new()),
            Just("\"Alice\" ".to_string()),
            Just("\"A, B; <c>\" ".to_string()),
            Just("Bob ".to_string()),
        ],
        any::<bool>(),
        lws(),
        lws(),
    )
        .prop_map(move |(display, angle, (w1, p1), (w2, p2))| {
            let uri = "sip:+15551234@carrier.example.net";
            let tag = match &tag {
                Some(t) => format!("{w1};{w2}tag={t}"),
                None => String::new(),
            };
            let text = match angle || !display.is_empty() {
                true => format!("{display}<{uri}>{tag}"),
                false => format!("{uri}{tag}"),
            };
            (text, p1 && p2)
        })
}

prop_compose! {
    pub(crate) fn request()(
        method in proptest::sample::select(METHODS),
        cookie in prop_oneof![9 => Just(true), 1 => Just(false)],
        via_list in proptest::collection::vec(any::<bool>(), 1..3),
        call_id in "[a-zA-Z0-9]{4,16}(@[a-z0-9.]{1,12})?",
        cseq in any::<u32>(),
        cseq_gap in prop_oneof![Just(" "), Just("  "), Just("\t")],
        from_tag in token(),
        to_tag in proptest::option::of(token()),
        lf_only in prop_oneof![5 => Just(false), 1 => Just(true)],
        fold in prop_oneof![5 => Just(false), 1 => Just(true)],
        extra in proptest::collection::vec((token(), "[ -~]{0,20}"), 0..3),
        body in proptest::option::of("[a-z=0-9\n]{0,40}"),
        leading_crlf in any::<bool>(),
    )(
        method in Just(method),
        vias in proptest::collection::vec(via(cookie), via_list.len()),
        one_line in Just(via_list[0]),
        names in (
            name("Via", Some("v")),
            name("Call-ID", Some("i")),
            name("CSeq", None),
            name("From", Some("f")),
            name("To", Some("t")),
        ),
        colons in proptest::collection::vec(colon(), 5),
        from in name_addr(Some(from_tag)),
        to in name_addr(to_tag),
        call_id in Just(call_id),
        cseq in Just(cseq),
        cseq_gap in Just(cseq_gap),
        flags in Just((cookie, lf_only, fold, leading_crlf)),
        extra in Just(extra),
        body in Just(body),
    ) -> Generated {
        let (cookie, lf_only, fold, leading_crlf) = flags;
        let (via_n, cid_n, cseq_n, from_n, to_n) = names;
        let plain = cookie && !fold && vias[0].1 && from.1 && to.1;
        let mut head = String::new();
        if leading_crlf {
            head.push_str("\r\n");
        }
        head.push_str(&format!("{method} sip:5000@acd.example.com SIP/2.0\r\n"));
        if one_line {
            let all: Vec<&str> = vias.iter().map(|(v, _)| v.as_str()).collect();
            head.push_str(&format!("{}{}{}\r\n", via_n.0, colons[0], all.join(", ")));
        } else {
            for (v, _) in &vias {
                head.push_str(&format!("{}{}{v}\r\n", via_n.0, colons[0]));
            }
        }
        head.push_str("Max-Forwards: 70\r\n");
        match fold {
            true => head.push_str(&format!("{}{}{}\r\n {}\r\n", from_n.0, colons[3], "", from.0)),
            false => head.push_str(&format!("{}{}{}\r\n", from_n.0, colons[3], from.0)),
        }
        head.push_str(&format!("{}{}{}\r\n", to_n.0, colons[4], to.0));
        head.push_str(&format!("{}{}{call_id}\r\n", cid_n.0, colons[1]));
        head.push_str(&format!("{}{}{cseq}{cseq_gap}{method}\r\n", cseq_n.0, colons[2]));
        for (n, v) in &extra {
            head.push_str(&format!("X-{n}: {v}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || method == "INVITE" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        if lf_only {
            head = head.replace("\r\n", "\n");
        }
        Generated { bytes: head.into_bytes(), plain }
    }
}
