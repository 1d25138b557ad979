//! Phones whose headers carry quoted parameters (Linphone's
//! `+sip.instance="<urn:uuid:…>"`, RFC 5626 `reg-id`, quoted display
//! names): as callers they are answered, as agents their 2xx is ACKed.

use super::*;

const LINPHONE_CONTACT: &str = "Contact: <sip:caller@127.0.0.1:5070;transport=udp>;expires=600;\
+sip.instance=\"<urn:uuid:0e4b3cc6-4b8e-4a1c-9a5a-1f2f3e4d5c6b>\";reg-id=1";

#[test]
fn caller_with_quoted_contact_params_is_answered_and_can_hang_up() {
    let mut h = Harness::new();
    let raw = invite("1500", "lp1", "z9hG4bKlp1")
        .replace("Contact: <sip:caller@127.0.0.1:5070>", LINPHONE_CONTACT)
        .replace(
            "From: <sip:caller@127.0.0.1>;tag=c1",
            "From: \"Caller, \\\"Desk\\\" <1>\" <sip:caller@127.0.0.1>;tag=c1;x=\"a;b\"",
        );
    let out = h.send(&raw);
    assert_eq!(codes(&out), vec![100, 200], "{out:?}");
    let tag = to_tag(&out[1]);
    h.send_from(
        h.phone,
        &in_dialog("ACK", "1500", "lp1", &tag, 1, "z9hG4bKalp1"),
    );
    let bye = in_dialog("BYE", "1500", "lp1", &tag, 2, "z9hG4bKblp1");
    let out = h.send_from(h.phone, &bye);
    let to_caller: Vec<_> = out
        .into_iter()
        .filter(|(p, _)| *p == h.phone)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(codes(&to_caller), vec![200]);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn caller_without_a_usable_contact_gets_400() {
    let mut h = Harness::new();
    let raw = invite("1500", "lp2", "z9hG4bKlp2").replace(
        "Contact: <sip:caller@127.0.0.1:5070>",
        "Contact: <sip:caller@@127.0.0.1:5070>",
    );
    assert_eq!(codes(&h.send(&raw)), vec![100, 400]);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn agent_2xx_with_instance_contact_is_acked_at_that_contact() {
    let mut h = Harness::new();
    let (_, out) = queued_caller(&mut h, "lp3");
    let inv = requests_to(&out, agent(5080)).remove(0);
    let ok = answer(&inv, 200, "ag1", AGENT_SDP).replace(
        "Contact: <sip:agent@127.0.0.1:5080>",
        &LINPHONE_CONTACT.replace("caller@127.0.0.1:5070", "agent@127.0.0.1:5080"),
    );
    let out = h.send_from(agent(5080), &ok);
    let acks = requests_to(&out, agent(5080));
    assert_eq!(acks.len(), 1, "{out:?}");
    assert_eq!(acks[0].method, rsip::Method::Ack);
    assert!(acks[0]
        .uri
        .to_string()
        .eq_ignore_ascii_case("sip:agent@127.0.0.1:5080;transport=udp"));
    assert!(acks[0].to_string().contains("tag=ag1"));
}
