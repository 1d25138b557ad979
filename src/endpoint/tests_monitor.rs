//! A supervisor's monitor leg driven without sockets: a phone that rings
//! out or refuses ends the monitor with a `failed` event; the supervisor's
//! re-INVITE and UPDATE are answered on its dialog (its REFER declined);
//! a blind transfer of the call ends the leg with a BYE.

use super::super::MediaCommand;
use super::mid_call::{answered_by, from_agent, responses_to, Bridged};
use super::*;
use crate::admin::live::EventKind as Live;
use crate::media::MonitorMode;

const SUP_URI: &str = "sip:sup@127.0.0.1:5095";

fn sup() -> Peer {
    agent(5095)
}

/// A caller in `support` answered by agent 2001.
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

/// POST monitor by [`SUP_URI`] in `mode`: the INVITE the phone gets.
fn call_supervisor(h: &mut Harness, call_id: &str, mode: MonitorMode) -> rsip::Request {
    let view =
        h.ep.start_monitor(call_id, SUP_URI, mode, h.now)
            .expect("monitor accepted");
    assert_eq!(view.state, "calling");
    let out = h.drain_all();
    requests_to(&out, sup()).remove(0)
}

/// The `call_monitor` live events so far, as (step, reason).
fn monitor_steps(h: &mut Harness) -> Vec<(&'static str, Option<&'static str>)> {
    h.live()
        .into_iter()
        .filter_map(|e| match e.kind {
            Live::CallMonitor { step, reason, .. } => Some((step, reason)),
            _ => None,
        })
        .collect()
}

/// A request from the supervisor's phone in the dialog of `inv`
/// (answered with To tag `sup`).
fn from_supervisor(
    inv: &rsip::Request,
    method: &str,
    cseq: u32,
    extra: &str,
    body: &str,
) -> String {
    let text = inv.to_string();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .split_once(':')
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\n"
    };
    format!(
        "{method} sip:sipacd@127.0.0.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5095;branch=z9hG4bKsup{method}{cseq}\n\
         Max-Forwards: 70\nFrom: {};tag=sup\nTo: {}\nCall-ID: {}\nCSeq: {cseq} {method}\n\
         Contact: <sip:sup@127.0.0.1:5095>\n{extra}{ctype}Content-Length: {}\n\n{body}",
        line("To"),
        line("From"),
        line("Call-ID"),
        body.len()
    )
}

/// The supervisor answers: monitoring in the INVITE's mode.
fn answered(h: &mut Harness, inv: &rsip::Request) -> u64 {
    let out = h.send_from(sup(), &answer(inv, 200, "sup", AGENT_SDP));
    let ack = requests_to(&out, sup());
    assert_eq!(ack.len(), 1, "ACK to the supervisor: {out:?}");
    let cmds = media_cmds(h);
    let leg = cmds
        .iter()
        .find_map(|c| match c {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("supervisor leg opened");
    assert!(
        cmds.iter()
            .any(|c| matches!(c, MediaCommand::Monitor { supervisor, .. } if *supervisor == leg)),
        "{cmds:?}"
    );
    leg
}

#[test]
fn a_supervisor_phone_that_rings_out_ends_the_monitor_with_a_failed_event() {
    let mut h = Harness::new();
    bridged(&mut h, "mo1");
    let inv = call_supervisor(&mut h, "mo1", MonitorMode::Listen);
    let ringing = answer(&inv, 180, "sup", "");
    h.send_from(sup(), &ringing);
    assert!(
        monitor_steps(&mut h).is_empty(),
        "nothing yet while it rings"
    );
    let out = h.advance_all(Duration::from_secs(31));
    let cancel = requests_to(&out, sup());
    assert!(
        cancel.iter().any(|r| r.method == rsip::Method::Cancel),
        "the ringing phone is cancelled: {out:?}"
    );
    assert_eq!(monitor_steps(&mut h), [("failed", Some("no_answer"))]);
    // Over: PATCH finds no monitor; a new one may be asked for.
    assert!(h
        .ep
        .set_monitor_mode("mo1", MonitorMode::Barge, h.now)
        .is_err());
    call_supervisor(&mut h, "mo1", MonitorMode::Barge);
}

#[test]
fn a_refusing_supervisor_phone_ends_the_monitor_and_leaves_no_record_entry() {
    let mut h = Harness::new();
    let b = bridged(&mut h, "mo2");
    let inv = call_supervisor(&mut h, "mo2", MonitorMode::Whisper);
    h.send_from(sup(), &answer(&inv, 486, "sup", ""));
    assert_eq!(monitor_steps(&mut h), [("failed", Some("refused"))]);
    assert!(h.ep.stop_monitor("mo2", h.now).is_err(), "already over");
    let phone = h.phone;
    let out = h.send_from(
        phone,
        &in_dialog("BYE", "1500", "mo2", &b.caller_tag, 2, "z9hG4bKmo2b"),
    );
    assert_eq!(responses_to(&out, phone)[0].status_code.code(), 200);
    let rec = h.records().pop().expect("a record");
    assert!(rec.monitors.is_empty(), "{:?}", rec.monitors);
}

#[test]
fn the_supervisors_reinvite_and_update_are_answered_on_its_dialog() {
    let mut h = Harness::new();
    bridged(&mut h, "mo3");
    let inv = call_supervisor(&mut h, "mo3", MonitorMode::Barge);
    let leg = answered(&mut h, &inv);
    // A hold by re-INVITE: 200 with our answer on the leg's own port; the
    // media leg follows; the call's hold is not the supervisor's.
    let hold = "v=0\r\no=- 2 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7100 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
    let out = h.send_from(sup(), &from_supervisor(&inv, "INVITE", 1, "", hold));
    let resp = responses_to(&out, sup());
    let ok = resp
        .iter()
        .find(|r| r.status_code.code() == 200)
        .unwrap_or_else(|| panic!("no 200 to the supervisor's re-INVITE: {out:?}"));
    let text = ok.to_string();
    assert!(text.contains("a=recvonly"), "{text}");
    assert!(
        text.contains("m=audio 20004"),
        "the supervisor leg's port: {text}"
    );
    assert!(
        text.contains("o=sipacd 20004 2 IN IP4"),
        "a new SDP version: {text}"
    );
    assert!(
        text.contains("Contact: <sip:sipacd@127.0.0.1:5060>"),
        "{text}"
    );
    let cmds = media_cmds(&mut h);
    assert!(
        cmds.iter().any(|c| matches!(c,
            MediaCommand::Update { leg: l, sending: true, remote: Some(r), .. }
                if *l == leg && r.port() == 7100)),
        "{cmds:?}"
    );
    assert!(
        requests_to(&out, h.phone).is_empty(),
        "the caller hears nothing of it"
    );
    // A refresh by UPDATE without SDP: 200, no body.
    let out = h.send_from(sup(), &from_supervisor(&inv, "UPDATE", 2, "", ""));
    let resp = responses_to(&out, sup());
    assert_eq!(resp.len(), 1, "{out:?}");
    assert_eq!(resp[0].status_code.code(), 200);
    assert!(resp[0].body.is_empty());
    // An old CSeq is out of order; a REFER is declined; the leg stays up.
    let out = h.send_from(sup(), &from_supervisor(&inv, "UPDATE", 1, "", ""));
    assert_eq!(responses_to(&out, sup())[0].status_code.code(), 500);
    let refer = from_supervisor(&inv, "REFER", 3, "Refer-To: <sip:1560@127.0.0.1>\n", "");
    let out = h.send_from(sup(), &refer);
    assert_eq!(responses_to(&out, sup())[0].status_code.code(), 603);
    let steps = monitor_steps(&mut h);
    assert_eq!(steps, [("started", None)]);
    let view = h.ep.set_monitor_mode("mo3", MonitorMode::Listen, h.now);
    assert_eq!(view.map(|v| v.state), Ok("connected".to_owned()));
}

#[test]
fn a_blind_transfer_ends_the_monitor_leg_and_the_caller_goes_on() {
    let mut h = Harness::new();
    let b = bridged(&mut h, "mo4");
    let inv = call_supervisor(&mut h, "mo4", MonitorMode::Listen);
    let sup_leg = answered(&mut h, &inv);
    h.records();
    let refer = from_agent(&b, "REFER", 1, "Refer-To: <sip:1560@127.0.0.1>\n", "");
    let out = h.send_from(agent(5080), &refer);
    assert_eq!(responses_to(&out, agent(5080))[0].status_code.code(), 202);
    let to_sup = requests_to(&out, sup());
    assert_eq!(to_sup.len(), 1, "{out:?}");
    assert_eq!(to_sup[0].method, rsip::Method::Bye);
    let cmds = media_cmds(&mut h);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, MediaCommand::Close { leg } if *leg == sup_leg)),
        "{cmds:?}"
    );
    assert_eq!(
        monitor_steps(&mut h),
        [("started", None), ("ended", Some("transferred"))]
    );
    assert_eq!(h.ep.active_calls(), 1, "the caller waits in its new queue");
    assert!(h.ep.stop_monitor("mo4", h.now).is_err(), "no monitor left");
    // The record keeps the leg with its end.
    let phone = h.phone;
    let out = h.send_from(
        phone,
        &in_dialog("BYE", "1500", "mo4", &b.caller_tag, 2, "z9hG4bKmo4b"),
    );
    assert_eq!(responses_to(&out, phone)[0].status_code.code(), 200);
    let rec = h.records().pop().expect("a record");
    assert_eq!(rec.monitors.len(), 1, "{:?}", rec.monitors);
    assert_eq!(rec.monitors[0].ended_by.as_deref(), Some("transferred"));
    assert_eq!(rec.monitors[0].supervisor, SUP_URI);
}
