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
    assert_eq!(codes(&out), vec![200], "{out:?}");
    let tag = to_tag(&out[0]);
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
    assert_eq!(codes(&h.send(&raw)), vec![400]);
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

/// Contact forms a phone may put on its INVITE or its 2xx, each with the
/// Request-URI sipacd's in-dialog requests must then carry.
const FORMS: &[(&str, &str)] = &[
    // addr-spec: the ';' params are header params, not the URI's.
    ("sip:{U}@127.0.0.1:{P};expires=600", "sip:{U}@127.0.0.1:{P}"),
    ("Desk Phone <sip:{U}@127.0.0.1:{P}>", "sip:{U}@127.0.0.1:{P}"),
    (
        "\"Desk \\\"2\\\", <left>; x\" <sip:{U}@127.0.0.1:{P}>;q=0.5",
        "sip:{U}@127.0.0.1:{P}",
    ),
    // A GRUU target and its quoted companions (RFC 5627).
    (
        "<sip:{U}@127.0.0.1:{P};gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\
         ;pub-gruu=\"sip:{U}@example.com;gr=urn:uuid:f81d4fae\";temp-gruu=\"sip:t.x@example.com;gr\"",
        "sip:{U}@127.0.0.1:{P};gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    ),
    (
        "<sip:{U}@127.0.0.1:{P};ob>;reg-id=1;+sip.instance=\"<urn:uuid:1>\";foo=\"a\\\"b<c>;d,e\"",
        "sip:{U}@127.0.0.1:{P};ob",
    ),
];

fn form(s: &str, user: &str, port: u16) -> String {
    s.replace("{U}", user).replace("{P}", &port.to_string())
}

#[test]
fn every_contact_form_of_a_caller_becomes_the_target_of_our_bye() {
    for (i, (contact, target)) in FORMS.iter().enumerate() {
        let mut h = Harness::new();
        let cid = format!("form{i}");
        let raw = invite("1600", &cid, &format!("z9hG4bKf{i}")).replace(
            "Contact: <sip:caller@127.0.0.1:5070>",
            &format!("Contact: {}", form(contact, "caller", 5070)),
        );
        // 1600 is the hang-up IVR: sipacd answers, then sends its BYE.
        let out = h.send(&raw);
        assert_eq!(codes(&out), vec![200], "{contact}: {out:?}");
        let tag = to_tag(&out[0]);
        let out = h.send_from(
            h.phone,
            &in_dialog("ACK", "1600", &cid, &tag, 1, &format!("z9hG4bKfa{i}")),
        );
        let byes: Vec<_> = requests_to(&out, h.phone)
            .into_iter()
            .filter(|r| r.method == rsip::Method::Bye)
            .collect();
        assert_eq!(byes.len(), 1, "{contact}: {out:?}");
        assert_eq!(
            byes[0].uri.to_string(),
            form(target, "caller", 5070),
            "{contact}"
        );
    }
}

#[test]
fn every_contact_form_of_an_agent_2xx_is_acked_at_its_uri() {
    for (i, (contact, target)) in FORMS.iter().enumerate() {
        let mut h = Harness::new();
        let (_, out) = queued_caller(&mut h, &format!("ag{i}"));
        let inv = requests_to(&out, agent(5080)).remove(0);
        let ok = answer(&inv, 200, "ag1", AGENT_SDP).replace(
            "Contact: <sip:agent@127.0.0.1:5080>",
            &format!("Contact: {}", form(contact, "agent", 5080)),
        );
        let out = h.send_from(agent(5080), &ok);
        let acks = requests_to(&out, agent(5080));
        assert_eq!(acks.len(), 1, "{contact}: {out:?}");
        assert_eq!(acks[0].method, rsip::Method::Ack);
        assert_eq!(
            acks[0].uri.to_string(),
            form(target, "agent", 5080),
            "{contact}"
        );
    }
}

/// Registers agent 1001 (password "secret") from `from` with `contact`
/// through the endpoint's registrar: REGISTER, 401, digest answer, 200.
pub(super) fn register_1001(h: &mut Harness, from: Peer, contact: &str) {
    use crate::registrar::{parse_authorization, Algorithm};
    use rsip::message::HasHeaders;
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:test.local SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKr{cseq};rport\n\
             Max-Forwards: 70\n\
             From: <sip:1001@test.local>;tag=r1\n\
             To: <sip:1001@test.local>\n\
             Call-ID: reg-1001\n\
             CSeq: {cseq} REGISTER\n\
             Contact: {contact}\n\
             {auth}Content-Length: 0\n\n",
            port = from.addr.port()
        )
    };
    let out = h.send_from(from, &register(1, ""));
    let challenge = out
        .iter()
        .find_map(|(_, m)| {
            m.headers().iter().find_map(|h| match h {
                rsip::Header::WwwAuthenticate(w) => Some(w.to_string()),
                _ => None,
            })
        })
        .expect("a 401 with a challenge");
    let value = challenge.split_once(':').map_or("", |(_, v)| v.trim());
    let c = parse_authorization(&value.replacen(
        "Digest",
        "Digest username=\"x\", uri=\"u\", response=\"r\",",
        1,
    ))
    .unwrap();
    let uri = "sip:test.local";
    let ha1 = Algorithm::Md5.ha1("1001", "test.local", "secret");
    let ha2 = Algorithm::Md5.hash_hex(&["REGISTER", uri]);
    let resp = Algorithm::Md5.hash_hex(&[&ha1, &c.nonce, "00000001", "c0ffee", "auth", &ha2]);
    let opaque = c
        .opaque
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    let auth = format!(
        "Authorization: Digest username=\"1001\", realm=\"test.local\", nonce=\"{}\", \
         uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, cnonce=\"c0ffee\", \
         qop=auth, nc=00000001{opaque}\n",
        c.nonce
    );
    let out = h.send_from(from, &register(2, &auth));
    let codes: Vec<u16> = out
        .iter()
        .filter_map(|(_, m)| match m {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![200], "{out:?}");
}

#[test]
fn a_registered_gruu_contact_is_offered_calls() {
    let mut h = Harness::new();
    let phone = agent(5072);
    register_1001(
        &mut h,
        phone,
        "<sip:1001@127.0.0.1:5072;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>;\
         +sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1",
    );
    // Only 1001 can take the call.
    let paused = || crate::admin::AgentStateRequest::Paused {
        reason: Some("test".into()),
    };
    let now = h.now;
    h.ep.set_agent_state("2001", paused(), now).unwrap();
    h.ep.set_agent_state("2002", paused(), now).unwrap();
    let (_, out) = queued_caller(&mut h, "gruu1");
    let invites = requests_to(&out, phone);
    assert_eq!(invites.len(), 1, "{out:?}");
    assert_eq!(
        invites[0].uri.to_string(),
        "sip:1001@127.0.0.1:5072;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    );
}
