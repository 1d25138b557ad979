//! Attended transfer across two shards: a caller (shard 0) talks with agent
//! 2001; 2001 consults 2002 by dialling queue `support` itself (its call,
//! with its own Call-ID, lives on shard 1), then REFERs the caller with
//! `Replaces` naming that consultation. The caller ends up bridged with
//! 2002 on shard 0, whose messages shard 1 forwards; 2001's legs get
//! their BYEs; the records and queue_log say what happened.

use super::mid_call::responses_to;
use super::shards::Sharded;
use super::{agent, answer, in_dialog, invite, requests_to, to_tag, Seen, AGENT_SDP};
use crate::endpoint::MediaCommand;
use crate::sip::Peer;
use rsip::Method;

/// A caller bridged with 2001, and 2001's consultation bridged with 2002.
struct Consulting {
    s: Sharded,
    /// The caller's Call-ID (shard 0) and the consultation's (shard 1).
    c1: String,
    c2: String,
    /// sipacd's tag in the consultation (what `to-tag` must name).
    tag2: String,
    /// 2001's requests in its leg of the caller's call: From, To, Call-ID.
    d1: [String; 3],
    /// sipacd's ACK to 2002 (its leg's dialog).
    b_ack: String,
    caller_leg: u64,
    b_leg: u64,
}

fn opened(cmds: &[MediaCommand]) -> Vec<u64> {
    cmds.iter()
        .filter_map(|c| match c {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .collect()
}

fn media(s: &mut Sharded, shard: usize) -> Vec<MediaCommand> {
    std::iter::from_fn(|| s.eps[shard].poll_media()).collect()
}

/// The From, To and Call-ID lines of a request from the phone in the
/// dialog sipacd's `ack` confirmed (the phone's requests swap From/To).
fn dialog_lines(ack: &str) -> [String; 3] {
    let line = |name: &str| {
        ack.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {ack}"))
            .to_string()
    };
    [
        line("To:").replacen("To:", "From:", 1),
        line("From:").replacen("From:", "To:", 1),
        line("Call-ID:"),
    ]
}

/// The two calls set up, the consultation on shard `consult_shard`.
fn consulting_on(consult_shard: usize) -> Consulting {
    let mut s = Sharded::with(2, |cfg| {
        if let Some(q) = cfg.queues.get_mut("support") {
            q.wrapup_s = 30;
        }
    });
    let c1 = s.call_id_on("cust", 0);
    let (_, out) = s.queued(&c1);
    let caller_leg = opened(&media(&mut s, 0))[0];
    let inv_a = requests_to(&out, agent(5080)).remove(0);
    let out = s.deliver(agent(5080), &answer(&inv_a, 200, "a1", AGENT_SDP));
    let ack = requests_to(&out, agent(5080)).remove(0).to_string();
    media(&mut s, 0);

    // 2001 dials the queue from its own phone: it is this call's caller.
    let c2 = s.call_id_on("consult", consult_shard);
    let out = s.deliver(agent(5080), &invite("1500", &c2, "z9hG4bKc2"));
    let ok = out
        .iter()
        .map(|(_, m)| m)
        .find(|m| matches!(m, rsip::SipMessage::Response(r) if r.status_code.code() == 200))
        .expect("the consultation is answered");
    let tag2 = to_tag(ok);
    let out = s.deliver(
        agent(5080),
        &in_dialog("ACK", "1500", &c2, &tag2, 1, "z9hG4bKc2a"),
    );
    let inv_b = requests_to(&out, agent(5081)).remove(0);
    let out = s.deliver(agent(5081), &answer(&inv_b, 200, "b1", AGENT_SDP));
    let b_ack = requests_to(&out, agent(5081)).remove(0).to_string();
    let legs = opened(&media(&mut s, consult_shard));
    assert_eq!(legs.len(), 2, "the consultation's two legs");
    Consulting {
        s,
        c1,
        c2,
        tag2,
        d1: dialog_lines(&ack),
        b_ack,
        caller_leg,
        b_leg: legs[1],
    }
}

fn consulting() -> Consulting {
    consulting_on(1)
}

/// A request from the phone at `port` in the dialog `lines` name.
fn from_phone(port: u16, lines: &[String; 3], method: &str, cseq: u32, extra: &str) -> String {
    format!(
        "{method} sip:sipacd@127.0.0.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{method}{cseq}p{port}\n\
         Max-Forwards: 70\n{}\n{}\n{}\nCSeq: {cseq} {method}\n\
         Contact: <sip:agent@127.0.0.1:{port}>\n{extra}Content-Length: 0\n\n",
        lines[0], lines[1], lines[2]
    )
}

fn refer_to(call_id: &str, to_tag: &str, from_tag: &str) -> String {
    format!(
        "Refer-To: <sip:2002@127.0.0.1?Replaces={call_id}%3Bto-tag%3D{to_tag}%3Bfrom-tag%3D{from_tag}>\n"
    )
}

fn call_id_of(r: &rsip::Request) -> String {
    crate::sip::headers::call_id(r).unwrap_or_default()
}

/// What every shard's consumers made of its events: the ended records,
/// the queue_log events by Call-ID, the live events' types.
type Folded = (
    Vec<crate::cdr::CallRecord>,
    Vec<(String, &'static str)>,
    Vec<crate::admin::live::EventKind>,
);

fn folded(s: &mut Sharded) -> Folded {
    let (mut recs, mut lines, mut live) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..s.eps.len() {
        let mut seen = Seen::default();
        seen.pump(&mut s.eps[i], s.h.now);
        recs.extend(seen.calls.into_iter().filter(|r| r.ended_ms.is_some()));
        lines.extend(seen.lines.into_iter().map(|l| (l.call_id.clone(), l.event)));
        live.extend(seen.live.into_iter().map(|e| e.kind));
    }
    (recs, lines, live)
}

#[test]
fn replaces_joins_the_caller_with_the_consulted_agent_across_shards() {
    let mut c = consulting();
    let a: Peer = agent(5080);
    let refer = from_phone(5080, &c.d1, "REFER", 1, &refer_to(&c.c2, &c.tag2, "c1"));
    let out = c.s.deliver(a, &refer);

    let codes: Vec<u16> = responses_to(&out, a)
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert_eq!(codes, [202], "{out:?}");
    let to_a = requests_to(&out, a);
    let d1: Vec<&rsip::Request> = to_a.iter().filter(|r| call_id_of(r) != c.c2).collect();
    let methods: Vec<String> = d1.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(methods, ["NOTIFY", "NOTIFY", "BYE"], "{out:?}");
    assert_eq!(d1[0].body, b"SIP/2.0 100 Trying\r\n");
    assert_eq!(d1[1].body, b"SIP/2.0 200 OK\r\n");
    // The consultation's own leg from 2001 is hung up by its shard.
    let d2: Vec<&rsip::Request> = to_a.iter().filter(|r| call_id_of(r) == c.c2).collect();
    assert_eq!(d2.len(), 1, "{out:?}");
    assert_eq!(d2[0].method, Method::Bye);
    assert_eq!(c.s.shard_that_sent(a, Method::Bye), [1, 0]);
    // Nothing for the caller or the consulted agent: they talk now.
    assert!(requests_to(&out, c.s.h.phone).is_empty(), "{out:?}");
    assert!(requests_to(&out, agent(5081)).is_empty(), "{out:?}");
    let m0 = media(&mut c.s, 0);
    let bridge = MediaCommand::Bridge {
        a: c.caller_leg,
        b: c.b_leg,
    };
    assert!(m0.contains(&bridge), "{m0:?}");
    assert!(
        matches!(m0.first(), Some(MediaCommand::Close { .. })),
        "2001's leg closes before the bridge: {m0:?}"
    );
    assert!(
        media(&mut c.s, 1)
            .iter()
            .all(|m| matches!(m, MediaCommand::Close { leg } if *leg != c.b_leg)),
        "the consulted agent's leg stays open"
    );
    // 2001 answers its BYEs; 2001 is in wrap-up.
    let bye2 = (*d2[0]).clone();
    c.s.deliver(a, &answer(&bye2, 200, "x", ""));
    let bye1 = (*d1[2]).clone();
    c.s.deliver(a, &answer(&bye1, 200, "x", ""));
    let state = c.s.eps[0].router.agent("2001").map(|a| a.state);
    assert_eq!(state, Some(crate::acd::AgentState::Wrapup));

    // 2002 hangs up: its BYE reaches shard 1, which forwards it; the
    // caller's call on shard 0 ends with a BYE to the caller.
    let b_lines = dialog_lines(&c.b_ack);
    let out =
        c.s.deliver(agent(5081), &from_phone(5081, &b_lines, "BYE", 1, ""));
    assert_eq!(responses_to(&out, agent(5081))[0].status_code.code(), 200);
    let to_caller = requests_to(&out, c.s.h.phone);
    assert_eq!(to_caller.len(), 1, "{out:?}");
    assert_eq!(to_caller[0].method, Method::Bye);
    assert_eq!(call_id_of(&to_caller[0]), c.c1);
    let bye = to_caller[0].clone();
    c.s.deliver(c.s.h.phone, &answer(&bye, 200, "x", ""));
    // Shard 1 forwards 2002's dialog a while longer (late answers), then
    // forgets it.
    assert_eq!(c.s.eps[1].moved.len(), 1);
    assert!(c.s.eps[1].moved_legs.is_empty());
    let mut later = c.s.h.now;
    later.mono += std::time::Duration::from_secs(40);
    later.wall += std::time::Duration::from_secs(40);
    c.s.eps[1].handle_timeout(later);
    assert!(c.s.eps[1].moved.is_empty());

    let (recs, qlog, live) = folded(&mut c.s);
    let events_of = |cid: &str| -> Vec<&str> {
        qlog.iter()
            .filter(|(c, _)| c == cid)
            .map(|(_, e)| *e)
            .collect()
    };
    assert_eq!(
        events_of(&c.c1),
        ["ENTERQUEUE", "CONNECT", "ATTENDEDTRANSFER"],
        "{qlog:?}"
    );
    assert_eq!(
        events_of(&c.c2),
        ["ENTERQUEUE", "CONNECT", "ATTENDEDTRANSFER"],
        "{qlog:?}"
    );
    assert!(live.iter().any(|e| matches!(
        e,
        crate::admin::live::EventKind::CallJoined { call, agent, from_call, .. }
            if *call == c.c1 && agent == "2002" && *from_call == c.c2
    )));
    let rec = |cid: &str| {
        recs.iter()
            .find(|r| r.id == cid)
            .unwrap_or_else(|| panic!("record of {cid}: {recs:?}"))
    };
    let legs = |r: &crate::cdr::CallRecord| -> Vec<(String, Option<String>)> {
        r.legs
            .iter()
            .map(|l| (l.agent.clone(), l.transferred_to.clone()))
            .collect()
    };
    let first = rec(&c.c1);
    assert_eq!(first.agent.as_deref(), Some("2002"), "{first:?}");
    assert_eq!(
        legs(first),
        [
            ("2001".to_owned(), Some("attended:agent:2002".to_owned())),
            ("2002".to_owned(), None)
        ]
    );
    assert!(first.legs[0].ended_ms <= Some(first.legs[1].answered_ms));
    let consult = rec(&c.c2);
    assert_eq!(
        legs(consult),
        [("2002".to_owned(), Some(format!("attended:{}", c.c1)))]
    );
}

#[test]
fn replaces_naming_no_answered_dialog_fails_with_481_and_the_call_goes_on() {
    let mut c = consulting();
    let a = agent(5080);
    let cases = [
        (c.s.call_id_on("nothing", 1), c.tag2.clone()),
        (c.c2.clone(), "wrong-tag".to_owned()),
    ];
    for (cseq, (cid, tag)) in (1..).zip(cases) {
        let refer = from_phone(5080, &c.d1, "REFER", cseq, &refer_to(&cid, &tag, "c1"));
        let out = c.s.deliver(a, &refer);
        assert_eq!(responses_to(&out, a)[0].status_code.code(), 202);
        let to_a = requests_to(&out, a);
        let methods: Vec<String> = to_a.iter().map(|r| r.method.to_string()).collect();
        assert_eq!(methods, ["NOTIFY", "NOTIFY"], "{cid}: {out:?}");
        assert_eq!(
            to_a[1].body,
            b"SIP/2.0 481 Call/Transaction Does Not Exist\r\n"
        );
        let state = crate::sip::headers::header_value(&to_a[1], "Subscription-State");
        assert!(state.unwrap_or_default().starts_with("terminated"));
        assert!(media(&mut c.s, 0).is_empty());
        assert!(media(&mut c.s, 1).is_empty());
    }
    assert_eq!(c.s.eps[0].active_calls() + c.s.eps[1].active_calls(), 2);
    let state = c.s.eps[0].router.agent("2001").map(|a| a.state);
    assert_eq!(state, Some(crate::acd::AgentState::OnCall));
}

#[test]
fn replaces_is_read_from_the_refer_to_uri() {
    let r = crate::endpoint::replaces_of(
        "<sip:2002@h?Replaces=abc%40host%3Bto-tag%3Dx1%3Bfrom-tag%3Dy2&X=1>",
    )
    .expect("replaces");
    assert_eq!(r.call_id, "abc@host");
    assert_eq!((r.to_tag.as_str(), r.from_tag.as_str()), ("x1", "y2"));
    let swapped = crate::endpoint::replaces_of(
        "sip:2002@h?replaces=abc%3Bfrom-tag%3Dy%3Bearly-only%3Bto-tag%3Dx",
    )
    .expect("any order, any case");
    assert_eq!(
        (swapped.to_tag.as_str(), swapped.from_tag.as_str()),
        ("x", "y")
    );
    for bad in [
        "<sip:2002@h>",
        "<sip:2002@h?Replaces=abc%3Bto-tag%3Dx>",
        "<sip:2002@h?Replaces=%3Bto-tag%3Dx%3Bfrom-tag%3Dy>",
        "<sip:2002@h?Replaces=abc%ZZ%3Bto-tag%3Dx%3Bfrom-tag%3Dy>",
    ] {
        assert_eq!(crate::endpoint::replaces_of(bad), None, "{bad}");
    }
}

#[test]
fn replaces_naming_a_consultation_on_the_same_shard_joins_it_there() {
    let mut c = consulting_on(0);
    let a = agent(5080);
    let refer = from_phone(5080, &c.d1, "REFER", 1, &refer_to(&c.c2, &c.tag2, "c1"));
    let out = c.s.deliver(a, &refer);
    let to_a = requests_to(&out, a);
    let methods: Vec<String> = to_a.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(methods, ["NOTIFY", "BYE", "NOTIFY", "BYE"], "{out:?}");
    assert_eq!(call_id_of(&to_a[1]), c.c2, "the consultation's BYE");
    assert_eq!(to_a[2].body, b"SIP/2.0 200 OK\r\n");
    assert_eq!(c.s.shard_that_sent(a, Method::Bye), [0, 0]);
    let m0 = media(&mut c.s, 0);
    let bridge = MediaCommand::Bridge {
        a: c.caller_leg,
        b: c.b_leg,
    };
    assert!(m0.contains(&bridge), "{m0:?}");
    // Nothing moved between shards: 2002's BYE is handled where it lands.
    let b_lines = dialog_lines(&c.b_ack);
    let out =
        c.s.deliver(agent(5081), &from_phone(5081, &b_lines, "BYE", 1, ""));
    assert_eq!(responses_to(&out, agent(5081))[0].status_code.code(), 200);
    let to_caller = requests_to(&out, c.s.h.phone);
    assert_eq!(to_caller.len(), 1, "{out:?}");
    assert_eq!(call_id_of(&to_caller[0]), c.c1);
    assert!(c.s.eps.iter().all(|e| e.moved.is_empty()));
}

/// Agent 1001 (password `secret`, the only one in `support`) and 2001,
/// 2002 in `sales`; 1001's phone registered at 5072.
fn consulting_by_id() -> super::Harness {
    let mut h = super::Harness::with_config(|t| {
        t.replace("skills = { support = 5 }", "skills = { sales = 1 }")
            .replace("20000-20005", "20000-20099")
            .replace("max_calls = 2", "max_calls = 10")
            .replace(
                "password = \"secret\"",
                "password = \"secret\"\nskills = { support = 5 }",
            )
    });
    super::contacts::register_1001(&mut h, agent(5072), "<sip:1001@127.0.0.1:5072>");
    h
}

#[test]
fn an_agent_dials_a_colleague_by_id_only_on_a_call_and_only_if_it_can_ring() {
    use super::features::dial_authenticated;
    let mut h = consulting_by_id();
    let last = |r: &[rsip::Response]| r.last().map(|r| r.status_code.code());
    // Not on a call: nothing to consult about.
    let refused = dial_authenticated(&mut h, "2002", 1);
    assert_eq!(last(&refused), Some(403), "{refused:?}");

    // 1001 takes a caller of `support`.
    let (_, out) = super::queued_caller(&mut h, "byid");
    let inv = requests_to(&out, agent(5072)).remove(0);
    h.send_from(agent(5072), &answer(&inv, 200, "one", AGENT_SDP));
    // Now 1001 dials 2002: answered at once, and 2002 rings alone in
    // `support` (not its queue) with 1001 as the caller.
    let ok = dial_authenticated(&mut h, "2002", 3);
    assert_eq!(last(&ok), Some(200), "{ok:?}");
    let tag = to_tag(&rsip::SipMessage::Response(
        ok.last().cloned().expect("200"),
    ));
    let ack = format!(
        "ACK sip:2002@test.local SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKfack4\n\
         Max-Forwards: 70\nFrom: <sip:1001@test.local>;tag=f4\n\
         To: <sip:2002@test.local>;tag={tag}\nCall-ID: fc-2002-4\n\
         CSeq: 4 ACK\nContent-Length: 0\n\n"
    );
    let out = h.send_from(agent(5072), &ack);
    let offer = requests_to(&out, agent(5081));
    assert_eq!(offer.len(), 1, "{out:?}");
    let text = offer[0].to_string();
    assert!(text.contains("X-Sipacd-Queue: support"), "{text}");
    assert!(text.contains("sip:1001@"), "{text}");
    assert!(
        requests_to(&out, agent(5080)).is_empty(),
        "2001 is not rung"
    );
    // 2002 rings already: a second consultation is refused busy.
    let busy = dial_authenticated(&mut h, "2002", 5);
    assert_eq!(last(&busy), Some(486), "{busy:?}");
    // Nor does an agent consult itself.
    let itself = dial_authenticated(&mut h, "1001", 7);
    assert_eq!(last(&itself), Some(403), "{itself:?}");
}
