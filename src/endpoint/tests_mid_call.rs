//! Mid-call requests from either leg: the agent's hold and resume, UPDATE,
//! the caller's REFER declined without losing the call, session timers,
//! and the checks every request passes first (420, 415).

use std::sync::Arc;
use std::time::Duration;

use super::super::MediaCommand;
use super::*;

/// Our answer to the agent, then the agent's ACK: caller and agent bridged.
/// Returns the agent leg's dialog lines (From/To/Call-ID as the agent sends
/// them) and the two media legs.
pub(super) struct Bridged {
    pub(super) from_line: String,
    pub(super) to_line: String,
    pub(super) call_id_line: String,
    pub(super) caller_tag: String,
    pub(super) caller_leg: u64,
    pub(super) agent_leg: u64,
}

fn bridged(h: &mut Harness, call_id: &str) -> Bridged {
    let (caller_tag, out) = queued_caller(h, call_id);
    let caller_leg = media_cmds(h)
        .iter()
        .find_map(|c| match c {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("caller leg opened");
    let inv = requests_to(&out, agent(5080)).remove(0);
    answered_by(h, agent(5080), &inv, caller_tag, caller_leg)
}

/// The agent's phone at `phone` answers the offer `inv`: bridged.
pub(super) fn answered_by(
    h: &mut Harness,
    phone: Peer,
    inv: &rsip::Request,
    caller_tag: String,
    caller_leg: u64,
) -> Bridged {
    let out = h.send_from(phone, &answer(inv, 200, "agt", AGENT_SDP));
    let ack = requests_to(&out, phone).remove(0).to_string();
    let agent_leg = media_cmds(h)
        .iter()
        .find_map(|c| match c {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("agent leg opened");
    let line = |name: &str| {
        ack.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {ack}"))
            .to_string()
    };
    Bridged {
        // The agent's requests swap our From and To.
        from_line: line("To:").replacen("To:", "From:", 1),
        to_line: line("From:").replacen("From:", "To:", 1),
        call_id_line: line("Call-ID:"),
        caller_tag,
        caller_leg,
        agent_leg,
    }
}

const HOLD_SDP: &str = "v=0\r\no=- 2 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
const RESUME_SDP: &str = "v=0\r\no=- 2 4 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

/// A request from the agent's phone in its dialog with us.
pub(super) fn from_agent(b: &Bridged, method: &str, cseq: u32, extra: &str, body: &str) -> String {
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\n"
    };
    format!(
        "{method} sip:sipacd@127.0.0.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKag{method}{cseq}\n\
         Max-Forwards: 70\n{}\n{}\n{}\nCSeq: {cseq} {method}\n\
         Contact: <sip:agent@127.0.0.1:5080>\n{extra}{ctype}Content-Length: {}\n\n{body}",
        b.from_line,
        b.to_line,
        b.call_id_line,
        body.len()
    )
}

pub(super) fn responses_to(out: &[(Peer, rsip::SipMessage)], to: Peer) -> Vec<rsip::Response> {
    out.iter()
        .filter(|(p, _)| *p == to)
        .filter_map(|(_, m)| match m {
            rsip::SipMessage::Response(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn with_music(h: &mut Harness) -> std::path::PathBuf {
    let mut cfg = (*h.ep.config()).clone();
    let music = cfg.server.prompts.join("menu.wav");
    if let Some(q) = cfg.queues.get_mut("support") {
        q.music = Some(music.clone());
    }
    h.ep.apply_config(Arc::new(cfg), h.now);
    music
}

#[test]
fn agent_hold_plays_the_queue_music_to_the_caller_and_resume_bridges_again() {
    let mut h = Harness::new();
    let music = with_music(&mut h);
    let b = bridged(&mut h, "mh1");
    let out = h.send_from(agent(5080), &from_agent(&b, "INVITE", 1, "", HOLD_SDP));
    let resp = responses_to(&out, agent(5080));
    let ok = resp
        .iter()
        .find(|r| r.status_code.code() == 200)
        .unwrap_or_else(|| panic!("no 200 to the agent's re-INVITE: {out:?}"));
    let text = ok.to_string();
    assert!(
        text.contains("a=recvonly"),
        "hold answered recvonly: {text}"
    );
    assert!(
        text.contains("m=audio 20002"),
        "the agent leg's own port: {text}"
    );
    assert!(
        text.contains("Contact: <sip:sipacd@127.0.0.1:5060>"),
        "the same Contact as our INVITE: {text}"
    );
    assert!(
        requests_to(&out, h.phone).is_empty(),
        "the caller is not hung up: {out:?}"
    );
    let cmds = media_cmds(&mut h);
    assert!(
        cmds.contains(&MediaCommand::Play {
            leg: b.caller_leg,
            prompts: vec![music],
            looped: true
        }),
        "the caller hears the queue's music: {cmds:?}"
    );
    assert!(
        cmds.iter().any(
            |c| matches!(c, MediaCommand::Update { leg, sending: true, .. } if *leg == b.agent_leg)
        ),
        "{cmds:?}"
    );
    // The agent's ACK, then 30 s on hold, then resume.
    h.send_from(agent(5080), &from_agent(&b, "ACK", 1, "", ""));
    h.advance_all(Duration::from_secs(30));
    media_cmds(&mut h);
    let out = h.send_from(agent(5080), &from_agent(&b, "INVITE", 2, "", RESUME_SDP));
    let ok = responses_to(&out, agent(5080))
        .into_iter()
        .find(|r| r.status_code.code() == 200)
        .expect("200 to the resume");
    assert!(ok.to_string().contains("a=sendrecv"), "{ok}");
    let cmds = media_cmds(&mut h);
    assert!(
        cmds.contains(&MediaCommand::Bridge {
            a: b.caller_leg,
            b: b.agent_leg
        }),
        "bridged again: {cmds:?}"
    );
    // The record counts the 30 s on hold.
    h.send_from(agent(5080), &from_agent(&b, "ACK", 2, "", ""));
    h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "mh1", &b.caller_tag, 2, "z9hG4bKbmh1"),
    );
    let rec = h
        .records()
        .into_iter()
        .rfind(|r| r.ended_ms.is_some())
        .expect("final record");
    assert_eq!(rec.hold_ms, 30_000);
    assert_eq!(rec.disposition, crate::cdr::Disposition::Answered);
}

#[test]
fn agent_hold_without_music_silences_the_caller_and_update_resumes() {
    let mut h = Harness::new();
    let b = bridged(&mut h, "mh2");
    // UPDATE with an inactive offer holds too; its answer is in the 200.
    let inactive = HOLD_SDP.replace("a=sendonly", "a=inactive");
    let out = h.send_from(agent(5080), &from_agent(&b, "UPDATE", 1, "", &inactive));
    let ok = responses_to(&out, agent(5080))
        .into_iter()
        .find(|r| r.status_code.code() == 200)
        .expect("200 to UPDATE");
    assert!(ok.to_string().contains("a=inactive"), "{ok}");
    let cmds = media_cmds(&mut h);
    assert!(
        cmds.contains(&MediaCommand::Stop { leg: b.caller_leg }),
        "{cmds:?}"
    );
    let out = h.send_from(agent(5080), &from_agent(&b, "UPDATE", 2, "", RESUME_SDP));
    assert_eq!(responses_to(&out, agent(5080))[0].status_code.code(), 200);
    assert!(media_cmds(&mut h).contains(&MediaCommand::Bridge {
        a: b.caller_leg,
        b: b.agent_leg
    }));
    assert_eq!(h.ep.active_calls(), 1);
}

#[test]
fn refer_from_the_caller_is_declined_and_the_call_goes_on() {
    let mut h = Harness::new();
    let b = bridged(&mut h, "mr1");
    let refer = in_dialog("REFER", "1500", "mr1", &b.caller_tag, 2, "z9hG4bKr1").replace(
        "Content-Length: 0",
        "Refer-To: <sip:1501@127.0.0.1>\nContent-Length: 0",
    );
    let out = h.send_from(h.phone, &refer);
    let codes: Vec<u16> = responses_to(&out, h.phone)
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert_eq!(codes, vec![603]);
    assert!(requests_to(&out, agent(5080)).is_empty(), "no BYE: {out:?}");
    assert!(requests_to(&out, h.phone).is_empty(), "no BYE: {out:?}");
    assert_eq!(h.ep.active_calls(), 1);
    // REFER for no dialog: 481; outside any dialog: 405.
    let out = h.send(&in_dialog("REFER", "1500", "none", "x", 1, "z9hG4bKr2"));
    assert_eq!(codes_of(&out), vec![481]);
}

fn codes_of(msgs: &[rsip::SipMessage]) -> Vec<u16> {
    codes(msgs)
}

#[test]
fn unknown_require_gets_420_and_an_unreadable_body_415() {
    let mut h = Harness::new();
    let inv = invite("1500", "r420", "z9hG4bKr420").replacen(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nRequire: 100rel, foo\n",
        1,
    );
    let out = h.send(&inv);
    let last = out.last().expect("an answer").to_string();
    assert!(last.starts_with("SIP/2.0 420 "), "{last}");
    assert!(last.contains("Unsupported: 100rel, foo"), "{last}");
    assert_eq!(h.ep.active_calls(), 0);
    let inv = invite("1500", "r415", "z9hG4bKr415").replace(
        "Content-Type: application/sdp",
        "Content-Type: application/unknownformat",
    );
    let out = h.send(&inv);
    let last = out.last().expect("an answer").to_string();
    assert!(last.starts_with("SIP/2.0 415 "), "{last}");
    assert!(last.contains("Accept: application/sdp"), "{last}");
    // A Require naming what we do support is fine.
    let inv = invite("1500", "r200", "z9hG4bKr200").replacen(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nRequire: timer\nSupported: timer\nSession-Expires: 1800\n",
        1,
    );
    let out = h.send(&inv);
    assert_eq!(codes(&out), vec![200]);
}

#[test]
fn caller_session_timer_is_agreed_refreshed_and_enforced() {
    let mut h = Harness::new();
    let inv = invite("1600", "st1", "z9hG4bKst1").replacen(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nSupported: timer\nSession-Expires: 30\n",
        1,
    );
    let out = h.send(&inv);
    let last = out.last().expect("answer").to_string();
    assert!(last.starts_with("SIP/2.0 422 "), "{last}");
    assert!(last.contains("Min-SE: 90"), "{last}");

    // 1600 is an IVR that hangs up at once: use the queue number instead.
    let inv = invite("1560", "st2", "z9hG4bKst2").replacen(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nSupported: timer\nSession-Expires: 90\n",
        1,
    );
    let out = h.send(&inv);
    let ok = out.last().expect("200").to_string();
    assert!(ok.contains("Session-Expires: 90;refresher=uac"), "{ok}");
    assert!(ok.contains("Require: timer"), "{ok}");
    let tag = to_tag(out.last().expect("200"));
    h.send(&in_dialog("ACK", "1560", "st2", &tag, 1, "z9hG4bKast2"));
    // The caller refreshes with UPDATE at 45 s: the call stays up past 60 s.
    h.advance(Duration::from_secs(45));
    let update = in_dialog("UPDATE", "1560", "st2", &tag, 2, "z9hG4bKust2").replacen(
        "Content-Length: 0",
        "Session-Expires: 90;refresher=uac\nSupported: timer\nContent-Length: 0",
        1,
    );
    let out = h.send(&update);
    let ok = out.last().expect("200 to UPDATE").to_string();
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert!(ok.contains("Session-Expires: 90;refresher=uac"), "{ok}");
    let out = h.advance(Duration::from_secs(50));
    assert!(
        !out.iter().any(|m| m.to_string().starts_with("BYE ")),
        "refreshed: no BYE yet: {out:?}"
    );
    // No further refresh: BYE 30 s before expiry (60 s after the refresh).
    let out = h.advance(Duration::from_secs(15));
    let bye = out
        .iter()
        .map(|m| m.to_string())
        .find(|m| m.starts_with("BYE "))
        .unwrap_or_else(|| panic!("BYE after the timer ran out: {out:?}"));
    assert!(bye.contains("Session timer expired"), "{bye}");
}

#[test]
fn we_refresh_when_the_caller_cannot() {
    let mut h = Harness::new();
    // No `Supported: timer`: we are the refresher, by UPDATE at half time.
    let inv = invite("1560", "st3", "z9hG4bKst3").replacen(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nSession-Expires: 120\n",
        1,
    );
    let out = h.send(&inv);
    let ok = out.last().expect("200").to_string();
    assert!(ok.contains("Session-Expires: 120;refresher=uas"), "{ok}");
    assert!(!ok.contains("Require: timer"), "{ok}");
    let tag = to_tag(out.last().expect("200"));
    h.send(&in_dialog("ACK", "1560", "st3", &tag, 1, "z9hG4bKast3"));
    let out = h.advance(Duration::from_secs(61));
    let update = out
        .iter()
        .find_map(|m| match m {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Update => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("UPDATE refresh at 60 s: {out:?}"));
    let text = update.to_string();
    assert!(
        text.contains("Session-Expires: 120;refresher=uac"),
        "{text}"
    );
    // The caller answers 200: the call stays up.
    let resp = answer(&update, 200, "c1", "");
    h.send(&resp);
    assert_eq!(h.ep.active_calls(), 1);
    // A refresh answered 481 ends the call.
    let out = h.advance(Duration::from_secs(60));
    let update = out
        .iter()
        .find_map(|m| match m {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Update => Some(r.clone()),
            _ => None,
        })
        .expect("second refresh");
    let out = h.send(&answer(&update, 481, "c1", ""));
    assert!(
        out.iter().any(|m| m.to_string().starts_with("BYE ")),
        "{out:?}"
    );
}

#[test]
fn an_agent_phone_that_fails_offers_is_paused_not_offered_forever() {
    let mut h = Harness::new();
    let (_, out) = queued_caller(&mut h, "f503");
    let inv = requests_to(&out, agent(5080)).remove(0);
    let out = h.send_from(agent(5080), &answer(&inv, 503, "a503", ""));
    // The 503 is ACKed; the call goes to the other agent.
    assert_eq!(requests_to(&out, agent(5080))[0].method, rsip::Method::Ack);
    assert_eq!(requests_to(&out, agent(5081)).len(), 1, "{out:?}");
    let views = h.ep.agent_views(h.now);
    let failed = views.iter().find(|a| a.id == "2001").expect("agent 2001");
    assert_eq!(failed.state, "paused", "{failed:?}");
    let lines: Vec<String> = h
        .queue_log()
        .into_iter()
        .map(|l| format!("{l:?}"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RINGNOANSWER") && l.contains("2001")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("PAUSE") && l.contains("2001")),
        "{lines:?}"
    );
}
