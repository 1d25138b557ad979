//! Two shards sharing one router, driven like the daemon drives them:
//! each message goes to the shard its Call-ID hashes to, and router outputs
//! about another shard's call are handed over.

use std::time::Duration;

use super::super::{raw_call_id, shard_of_call_id, Endpoint, Shared};
use super::{
    agent, answer, in_dialog, invite, queued_ack, requests_to, to_tag, Harness, AGENT_SDP,
};
use crate::sip::Peer;

pub(super) struct Sharded {
    pub(super) eps: Vec<Endpoint>,
    pub(super) h: Harness,
    /// Which shard sent each message of the last step.
    sent_by: Vec<(usize, Peer, rsip::SipMessage)>,
}

impl Sharded {
    pub(super) fn new(count: usize) -> Sharded {
        Sharded::with(count, |_| {})
    }

    /// The same with the harness's configuration as `edit` changes it.
    pub(super) fn with(count: usize, edit: impl FnOnce(&mut crate::config::Config)) -> Sharded {
        let h = Harness::new();
        // Room for a few bridged calls (the harness's own is tiny).
        let mut cfg = (*h.ep.config()).clone();
        cfg.server.rtp_ports = 20000..=20099;
        cfg.server.max_calls = 10;
        edit(&mut cfg);
        let eps = Shared::endpoints(&std::sync::Arc::new(cfg), count, h.now);
        Sharded {
            eps,
            h,
            sent_by: Vec::new(),
        }
    }

    /// A Call-ID (with `prefix`) that the daemon gives to shard `shard`.
    pub(super) fn call_id_on(&self, prefix: &str, shard: usize) -> String {
        (0..)
            .map(|n| format!("{prefix}-{n}"))
            .find(|c| shard_of_call_id(c, self.eps.len()) == shard)
            .unwrap_or_default()
    }

    pub(super) fn deliver(&mut self, from: Peer, text: &str) -> Vec<(Peer, rsip::SipMessage)> {
        let wire = text.replace("\r\n", "\n").replace('\n', "\r\n");
        let shard = raw_call_id(wire.as_bytes()).map_or(0, |c| shard_of_call_id(c, self.eps.len()));
        self.eps[shard].handle_inbound(wire.as_bytes(), from, self.h.now);
        self.pump()
    }

    /// Hands router outputs to their shards until none are left; returns
    /// what was sent (OPTIONS pings left out).
    pub(super) fn pump(&mut self) -> Vec<(Peer, rsip::SipMessage)> {
        self.sent_by.clear();
        loop {
            let mut moved = false;
            for i in 0..self.eps.len() {
                while let Some((to, out)) = self.eps[i].poll_foreign() {
                    assert_ne!(to, i, "an output of our own is never handed over");
                    self.eps[to].handle_foreign(out, self.h.now);
                    moved = true;
                }
                while let Some((to, r)) = self.eps[i].poll_relay() {
                    assert_ne!(to, i, "work of our own is done at once");
                    self.eps[to].handle_relay(r, self.h.now);
                    moved = true;
                }
                while let Some((peer, bytes)) = self.eps[i].poll_transmit() {
                    let m = rsip::SipMessage::try_from(&bytes[..]).expect("we send valid SIP");
                    let ping = matches!(&m, rsip::SipMessage::Request(r) if r.method == rsip::Method::Options);
                    if !ping {
                        self.sent_by.push((i, peer, m));
                    }
                }
            }
            if !moved {
                break;
            }
        }
        self.sent_by
            .iter()
            .map(|(_, p, m)| (*p, m.clone()))
            .collect()
    }

    /// A caller of queue `support`, answered and ACKed; returns its To tag.
    pub(super) fn queued(&mut self, call_id: &str) -> (String, Vec<(Peer, rsip::SipMessage)>) {
        let phone = self.h.phone;
        let out = self.deliver(
            phone,
            &invite("1500", call_id, &format!("z9hG4bK{call_id}")),
        );
        let tag = to_tag(&out[0].1);
        let ack = queued_ack(call_id, &tag);
        (tag, self.deliver(phone, &ack))
    }

    pub(super) fn shard_that_sent(&self, to: Peer, method: rsip::Method) -> Vec<usize> {
        self.sent_by
            .iter()
            .filter(|(_, p, m)| {
                *p == to && matches!(m, rsip::SipMessage::Request(r) if r.method == method)
            })
            .map(|(i, _, _)| *i)
            .collect()
    }
}

#[test]
fn an_agent_freed_on_one_shard_takes_a_caller_waiting_on_the_other() {
    let mut s = Sharded::new(2);
    // Both agents busy with callers owned by shard 0.
    let c1 = s.call_id_on("c1", 0);
    let c2 = s.call_id_on("c2", 0);
    let (tag1, out) = s.queued(&c1);
    let inv1 = requests_to(&out, agent(5080)).remove(0);
    let out = s.deliver(agent(5080), &answer(&inv1, 200, "a1", AGENT_SDP));
    assert_eq!(requests_to(&out, agent(5080))[0].method, rsip::Method::Ack);
    let (_, out) = s.queued(&c2);
    let inv2 = requests_to(&out, agent(5081)).remove(0);
    s.deliver(agent(5081), &answer(&inv2, 200, "a2", AGENT_SDP));
    // A third caller, owned by shard 1, waits: nobody is free.
    let c3 = s.call_id_on("c3", 1);
    let (_, out) = s.queued(&c3);
    assert!(requests_to(&out, agent(5080)).is_empty() && requests_to(&out, agent(5081)).is_empty());
    // Caller 1 hangs up on shard 0: agent 2001 is free there, and the
    // router gives it c3, whose INVITE shard 1 must send.
    let phone = s.h.phone;
    let out = s.deliver(phone, &in_dialog("BYE", "1500", &c1, &tag1, 2, "z9hG4bKb1"));
    let to_agent = requests_to(&out, agent(5080));
    let offers: Vec<_> = to_agent
        .iter()
        .filter(|r| r.method == rsip::Method::Invite)
        .collect();
    assert_eq!(offers.len(), 1, "{out:?}");
    assert_eq!(
        s.shard_that_sent(agent(5080), rsip::Method::Invite),
        vec![1]
    );
    assert_eq!(s.shard_that_sent(agent(5080), rsip::Method::Bye), vec![0]);
    // The agent's answer reaches shard 1 by its Call-ID: it is ACKed there
    // and the caller of c3 is bridged.
    let inv3 = offers[0].clone();
    let out = s.deliver(agent(5080), &answer(&inv3, 200, "a3", AGENT_SDP));
    assert_eq!(requests_to(&out, agent(5080))[0].method, rsip::Method::Ack);
    assert_eq!(s.shard_that_sent(agent(5080), rsip::Method::Ack), vec![1]);
    assert_eq!(s.eps[0].active_calls() + s.eps[1].active_calls(), 2);
    let agents = s.eps[0].agent_views(s.h.now);
    let busy = agents.iter().filter(|a| a.state == "on_call").count();
    assert_eq!(busy, 2, "{agents:?}");
}

#[test]
fn a_caller_who_hangs_up_before_the_handover_frees_the_agent() {
    let mut s = Sharded::new(2);
    let c1 = s.call_id_on("h1", 1);
    let paused = || crate::admin::AgentStateRequest::Paused {
        reason: Some("x".into()),
    };
    let now = s.h.now;
    s.eps[0].set_agent_state("2002", paused(), now).unwrap();
    s.eps[0].set_agent_state("2001", paused(), now).unwrap();
    let (tag, _) = s.queued(&c1);
    // The last agent_state event of 2001 any shard reports (as the daemon
    // does at the end of each turn).
    let last_state = |s: &mut Sharded| {
        let now = s.h.now;
        let mut last = None;
        for ep in &mut s.eps {
            while let Some(ev) = ep.poll_event(now) {
                if let crate::events::EventKind::AgentState { agent, state, .. } = ev.kind {
                    if agent == "2001" {
                        last = Some(state);
                    }
                }
            }
        }
        last
    };
    assert_eq!(last_state(&mut s), Some("paused"));
    // Unpausing 2001 on shard 0 decides an offer for shard 1's caller...
    let now = s.h.now;
    s.eps[0]
        .set_agent_state("2001", crate::admin::AgentStateRequest::Available, now)
        .unwrap();
    let handover = s.eps[0].poll_foreign();
    assert!(
        matches!(handover, Some((1, crate::acd::Output::Offer(_)))),
        "{handover:?}"
    );
    assert_eq!(last_state(&mut s), Some("ringing"), "shard 0 decided it");
    // ...but the caller hangs up on shard 1 before it arrives.
    let phone = s.h.phone;
    s.deliver(phone, &in_dialog("BYE", "1500", &c1, &tag, 2, "z9hG4bKbh"));
    if let Some((to, out)) = handover {
        s.eps[to].handle_foreign(out, s.h.now);
    }
    let out = s.pump();
    assert!(requests_to(&out, agent(5080))
        .iter()
        .all(|r| r.method != rsip::Method::Invite));
    let agents = s.eps[0].agent_views(s.h.now);
    let a = agents.iter().find(|a| a.id == "2001").unwrap();
    assert_eq!(a.state, "available", "the router freed the agent itself");
    assert_eq!(s.eps[0].active_calls() + s.eps[1].active_calls(), 0);
    // Shard 1, handed an offer for a caller it no longer has, still looks
    // at the agent named in it, and reports it available again.
    assert_eq!(last_state(&mut s), Some("available"));
    // The primary's periodic sweep of every agent finds nothing new.
    s.h.now.mono += Duration::from_secs(1);
    s.h.now.wall += Duration::from_secs(1);
    for ep in &mut s.eps {
        ep.handle_timeout(s.h.now);
    }
    assert_eq!(last_state(&mut s), None);
}

#[test]
fn only_the_primary_pings_static_contacts() {
    let mut s = Sharded::new(2);
    s.h.now.mono += Duration::from_secs(1);
    s.h.now.wall += Duration::from_secs(1);
    let mut pings = [0usize; 2];
    for (i, ep) in s.eps.iter_mut().enumerate() {
        ep.handle_timeout(s.h.now);
        while let Some((_, bytes)) = ep.poll_transmit() {
            if bytes.starts_with(b"OPTIONS ") {
                pings[i] += 1;
            }
        }
    }
    assert_eq!(pings, [2, 0]);
}

#[test]
fn max_calls_counts_the_calls_of_every_shard() {
    let mut s = Sharded::new(2);
    let mut cfg = (*s.eps[0].config()).clone();
    cfg.server.max_calls = 2;
    s.eps = Shared::endpoints(&std::sync::Arc::new(cfg), 2, s.h.now);
    let phone = s.h.phone;
    let a = s.call_id_on("m1", 0);
    let b = s.call_id_on("m2", 1);
    let c = s.call_id_on("m3", 1);
    let d = s.call_id_on("m4", 0);
    let code = |out: &[(Peer, rsip::SipMessage)]| {
        out.iter().find_map(|(_, m)| match m {
            rsip::SipMessage::Response(r) if r.status_code.code() >= 200 => {
                Some(r.status_code.code())
            }
            _ => None,
        })
    };
    let out = s.deliver(phone, &invite("1560", &a, "z9hG4bKm1"));
    assert_eq!(code(&out), Some(200));
    let out = s.deliver(phone, &invite("1560", &b, "z9hG4bKm2"));
    assert_eq!(code(&out), Some(200));
    // Two calls up, one per shard: a third is refused on either shard.
    let out = s.deliver(phone, &invite("1560", &c, "z9hG4bKm3"));
    assert_eq!(code(&out), Some(503));
    let out = s.deliver(phone, &invite("1560", &d, "z9hG4bKm4"));
    assert_eq!(code(&out), Some(503));
}

/// queue_log positions count the callers waiting on every shard, not only
/// those of the shard writing the line.
#[test]
fn queue_log_positions_count_the_callers_of_every_shard() {
    let mut s = Sharded::new(2);
    // Four callers, alternating shards: the first two ring the two agents
    // (still waiting: not answered), the last two wait for an agent.
    let ids: Vec<String> = (0..4)
        .map(|i| s.call_id_on(&format!("q{i}"), i % 2))
        .collect();
    let mut tags = Vec::new();
    for id in &ids {
        s.h.now.mono += Duration::from_millis(10);
        tags.push(s.queued(id).0);
    }
    // The third caller (shard 0) gives up: callers 1 and 2 are ahead.
    let phone = s.h.phone;
    s.h.now.mono += Duration::from_secs(1);
    s.deliver(
        phone,
        &in_dialog("BYE", "1500", &ids[2], &tags[2], 2, "z9hG4bKqb2"),
    );

    // Each shard folds its own events into one shared board, in the
    // order they happened (the daemon's shards drain every turn).
    let now = s.h.now;
    let mut evs: Vec<(usize, crate::events::Event)> = Vec::new();
    for (i, ep) in s.eps.iter_mut().enumerate() {
        while let Some(ev) = ep.poll_event(now) {
            evs.push((i, ev));
        }
    }
    evs.sort_by_key(|(_, ev)| ev.at.mono);
    let board = crate::cdr::queue_log_fold::WaitingBoard::default();
    let mut folds: Vec<_> = (0..s.eps.len())
        .map(|_| crate::cdr::queue_log_fold::QueueLogFold::new(board.clone()))
        .collect();
    let mut lines = Vec::new();
    for (i, ev) in &evs {
        folds[*i].fold(ev);
        while let Some(l) = folds[*i].poll() {
            lines.push(l);
        }
    }
    let data_of = |call: &str, event: &str| {
        lines
            .iter()
            .find(|l| l.call_id == call && l.event == event)
            .map(|l| l.data.clone())
            .unwrap_or_else(|| panic!("no {event} for {call}: {lines:?}"))
    };
    let origpos: Vec<String> = ids
        .iter()
        .map(|id| data_of(id, "ENTERQUEUE")[2].clone())
        .collect();
    assert_eq!(origpos, ["1", "2", "3", "4"]);
    // ABANDON: position, original position, seconds waited.
    assert_eq!(data_of(&ids[2], "ABANDON")[..2], ["3", "3"]);
}
