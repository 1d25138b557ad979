//! Live events out of the sans-IO endpoint: what `poll_event` yields for
//! the lives of calls (answered, overflowed, IVR, rejected) and agents.

use super::*;
use crate::admin::live::{EventKind, LiveEvent};

fn events(h: &mut Harness) -> Vec<LiveEvent> {
    h.live()
}

fn types(evs: &[LiveEvent]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            let v = serde_json::to_value(e).unwrap();
            v["type"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Answers the BYE sipacd sent the caller, which ends the call.
fn answer_caller_bye(h: &mut Harness, out: &[rsip::SipMessage]) {
    let bye = out
        .iter()
        .find_map(|m| match m {
            rsip::SipMessage::Request(r) if r.method == rsip::Method::Bye => Some(r.clone()),
            _ => None,
        })
        .expect("a BYE to the caller");
    h.send(&answer(&bye, 200, "c1", ""));
}

/// The agent_state events, as (agent, state).
fn agent_states(evs: &[LiveEvent]) -> Vec<(String, &'static str)> {
    evs.iter()
        .filter_map(|e| match &e.kind {
            EventKind::AgentState { agent, state, .. } => Some((agent.clone(), *state)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_answered_call_from_arrival_to_end_with_agent_states() {
    let mut h = Harness::new();
    // At start the reachable agents are reported once, and only once.
    let start = events(&mut h);
    assert!(
        agent_states(&start).contains(&("2001".into(), "available")),
        "{start:?}"
    );
    assert!(events(&mut h).is_empty(), "nothing new without a change");

    // Polled after each step, as the daemon does after each turn.
    let (tag, out) = queued_caller(&mut h, "ev1");
    let mut evs = events(&mut h);
    let inv = requests_to(&out, agent(5080)).remove(0);
    h.advance_all(Duration::from_millis(1500));
    h.send_from(agent(5080), &answer(&inv, 200, "agev", AGENT_SDP));
    evs.extend(events(&mut h));
    h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "ev1", &tag, 2, "z9hG4bKbev1"),
    );
    evs.extend(events(&mut h));
    let calls: Vec<String> = types(&evs)
        .into_iter()
        .filter(|t| t.starts_with("call_"))
        .collect();
    assert_eq!(
        calls,
        [
            "call_arrived",
            "call_queued",
            "call_offered",
            "call_answered",
            "call_ended"
        ]
    );
    let answered = evs
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::CallAnswered { agent, wait_s, .. } => Some((agent.clone(), *wait_s)),
            _ => None,
        })
        .unwrap();
    assert_eq!(answered, ("2001".to_owned(), 1.5));
    let ended = evs
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .find(|v| v["type"] == "call_ended")
        .unwrap();
    assert_eq!(ended["disposition"], "answered");
    assert_eq!(ended["hangup_by"], "caller");
    assert_eq!(ended["agent"], "2001");
    // One comparison per poll: the state 2001 settled in after each step.
    let states: Vec<&str> = agent_states(&evs)
        .into_iter()
        .filter(|(a, _)| a == "2001")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(states, ["ringing", "on_call", "available"], "{evs:?}");
    // Answered in 1.5 s, within the default 20 s: 100 %.
    let mut q = h.queue_views();
    h.seen.today.fill(&mut q, &h.ep.config(), h.now);
    let support = q.iter().find(|q| q.name == "support").unwrap();
    assert_eq!(support.service_level_today, Some(100.0));
    let sales = q.iter().find(|q| q.name == "sales").unwrap();
    assert_eq!(sales.service_level_today, None);
}

#[test]
fn an_overflow_by_max_wait_is_reported_with_its_reason() {
    let mut h = Harness::new();
    events(&mut h);
    let out = h.send(&invite("1570", "ev2", "z9hG4bKev2"));
    let tag = to_tag(&out[0]);
    h.send(&in_dialog("ACK", "1570", "ev2", &tag, 1, "z9hG4bKaev2"));
    let out = h.advance(Duration::from_millis(1100));
    answer_caller_bye(&mut h, &out);
    let evs = events(&mut h);
    let json: Vec<serde_json::Value> = evs
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let of = |t: &str| json.iter().find(|v| v["type"] == t).cloned().unwrap();
    assert_eq!(of("call_queued")["queue"], "ov");
    assert_eq!(of("call_queued")["position"], 1);
    let ov = of("call_overflowed");
    assert_eq!(ov["reason"], "max_wait");
    assert_eq!(ov["target"], "hangup");
    assert_eq!(of("call_ended")["disposition"], "overflowed");
    // Timestamps in both forms, the RFC 3339 one in UTC with milliseconds.
    let ts = ov["ts"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
}

#[test]
fn ivr_nodes_and_rejections_are_reported() {
    let mut h = Harness::new();
    events(&mut h);
    let out = h.send(&invite("1600", "ev3", "z9hG4bKev3"));
    let tag = to_tag(&out[0]);
    let out = h.send(&in_dialog("ACK", "1600", "ev3", &tag, 1, "z9hG4bKaev3"));
    answer_caller_bye(&mut h, &out);
    h.send(&invite("9999", "ev4", "z9hG4bKev4"));
    let evs = events(&mut h);
    let ivr: Vec<&str> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CallIvr { node, .. } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ivr, ["bye.end"]);
    let t = types(&evs);
    assert!(t.contains(&"call_rejected".to_owned()), "{t:?}");
    assert_eq!(
        t.iter().filter(|t| *t == "call_ended").count(),
        1,
        "the IVR call ends; the rejected one never started: {t:?}"
    );
}

#[test]
fn undrained_events_are_bounded() {
    let mut h = Harness::new();
    for i in 0..3000 {
        h.send(&invite(
            "9999",
            &format!("flood{i}"),
            &format!("z9hG4bKf{i}"),
        ));
    }
    let evs = events(&mut h);
    // The oldest went first: exactly the bound is kept, ending with the
    // last rejection.
    assert_eq!(evs.len(), super::super::emit::MAX_QUEUED);
    let calls: Vec<_> = evs
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|v| v["type"] == "call_rejected")
        .collect();
    assert_eq!(calls.last().unwrap()["call"], "flood2999");
    assert_eq!(
        calls.first().unwrap()["call"],
        format!("flood{}", 3000 - calls.len())
    );
}

/// With about a thousand agents serving the queue (990 more: every
/// first state fits the test build's bound on undrained events), an offer's explanation still
/// names the chosen agent and at most two runners-up, and counts the
/// eligible and free agents right: it is read off the router's pool, not
/// built from every agent of the contact center.
#[test]
fn the_routing_explanation_stays_small_with_a_thousand_agents() {
    const MORE: usize = 990;
    let mut h = Harness::with_config(|t| {
        let mut t = t.to_owned();
        for i in 0..MORE {
            t.push_str(&format!(
                "\n[agents.9{i:04}]\ncontact = \"sip:9{i:04}@127.0.0.1:{}\"\nskills = {{ support = 5 }}\n",
                10000 + i
            ));
        }
        t
    });
    h.drain_all();
    // Every agent's first state, folded before the call.
    h.seen.pump(&mut h.ep, h.now);
    let (_, out) = queued_caller(&mut h, "big1");
    assert!(!out.is_empty());
    h.seen.pump(&mut h.ep, h.now);
    let routing = h
        .seen
        .events
        .iter()
        .find_map(|e| match &e.kind {
            crate::events::EventKind::Offered { call, routing, .. } if &*call.call_id == "big1" => {
                routing.clone()
            }
            _ => None,
        })
        .expect("an offer with its routing decision");
    assert!((1..=3).contains(&routing.candidates.len()), "{routing:?}");
    assert_eq!(routing.candidates[0].note, "chosen");
    // The queue asks no skill: 2001, 2002 and 1001 (not registered) too.
    assert_eq!(routing.eligible, Some(MORE as u64 + 3), "{routing:?}");
    // Every agent is free but the one ringing and 1001.
    assert_eq!(routing.free, Some(MORE as u64 + 1), "{routing:?}");
    assert!(routing.reason.len() < 200, "{}", routing.reason);
    let q = h.queue_views();
    let support = q.iter().find(|q| q.name == "support").unwrap();
    assert_eq!(
        (support.agents_available, support.agents_busy),
        (MORE as u32 + 1, 1),
        "{support:?}"
    );
}
