//! The engine's side of the event stream ([`crate::events`]): each step of
//! a call is queued as one typed event where it happens, and
//! [`Endpoint::poll_event`] hands them out in order. What the consumers make
//! of them (records, live events, queue_log, counters, today's figures) is
//! theirs; nothing here formats, counts or writes.
//!
//! Agent states are the router's: whenever the router was told something,
//! the agents it named are marked, and the next [`Endpoint::poll_event`]
//! compares them with what was last reported (one pass per daemon loop
//! turn, over the agents touched, not over every agent).

use std::collections::{HashMap, VecDeque};

use super::agents::caller_number;
use super::{CallHandle, Endpoint, Now};
use crate::acd::{AgentId, DivertReason};
use crate::call::CallState;
use crate::config::{Strategy, Target};
use crate::events::{unix_ms, Ended, Event, EventKind};
use crate::events::{Candidate, Disposition, HangupBy, RoutingDecision};
use crate::ivr::IvrOutcome;
use crate::sip::headers;

/// Events kept while nobody drains them (tests, benches): the oldest go
/// first. The daemon drains every loop turn; a start with this many
/// agents announced at once still keeps every login.
/// (Smaller under test, so that the bound can be seen.)
pub(super) const MAX_QUEUED: usize = if cfg!(test) { 1000 } else { 1 << 18 };

/// How many runners-up an offer names beside the chosen agent.
const RUNNERS_UP: usize = 2;

/// Queued events and what is needed to raise the next ones.
#[derive(Debug, Default)]
pub(super) struct Stream {
    out: VecDeque<Event>,
    /// Agents named in what the router was told or answered since the
    /// last comparison: only they can have changed state. By id of the
    /// table in force (a reload compares every agent anyway).
    agents_touched: Vec<crate::acd::AgentId>,
    /// Compare every agent (reload, shifts re-read, the periodic sweep).
    agents_all: bool,
    /// IVR nodes already reported per call.
    ivr_seen: HashMap<CallHandle, usize>,
}

/// The state last reported of each agent, its pause reason and since
/// when (shared by the shards), by the router's agent id. The ids follow
/// a reload ([`crate::acd::Renumbering`]); an agent gone from the file is
/// forgotten.
#[derive(Debug, Default)]
pub(super) struct AgentsSeen {
    by_id: Vec<Option<AgentSeen>>,
    /// The router generation the ids are of.
    generation: u64,
}

impl AgentsSeen {
    /// Brings the ids up to the router's table (O(1) without a reload).
    fn follow(&mut self, renumbering: &crate::acd::Renumbering) {
        if self.generation == renumbering.generation() {
            return;
        }
        let old = std::mem::take(&mut self.by_id);
        if self.generation + 1 == renumbering.generation() {
            for (i, seen) in old.into_iter().enumerate() {
                let new = renumbering.agent(AgentId::from_index(i as u32));
                if let (Some(id), Some(seen)) = (new, seen) {
                    self.insert(id, seen);
                }
            }
        }
        self.generation = renumbering.generation();
    }

    fn get(&self, id: AgentId) -> Option<&AgentSeen> {
        self.by_id.get(id.index()).and_then(Option::as_ref)
    }

    fn insert(&mut self, id: AgentId, seen: AgentSeen) {
        if id == AgentId::NONE {
            return;
        }
        let i = id.index();
        if self.by_id.len() <= i {
            self.by_id.resize_with(i + 1, || None);
        }
        self.by_id[i] = Some(seen);
    }
}

#[derive(Debug)]
pub(super) struct AgentSeen {
    state: &'static str,
    reason: Option<String>,
    since_ms: i64,
}

impl Endpoint {
    /// Next event, oldest first. Agent state changes are found here, so
    /// call it once per turn of the driver's loop.
    pub fn poll_event(&mut self, now: Now) -> Option<Event> {
        // The shard that changed an agent reports it, before it hands any
        // offer over to another shard: a state is not missed for lasting
        // less than another shard's turn.
        if self.stream.agents_all || !self.stream.agents_touched.is_empty() {
            self.compare_agents(now);
        }
        self.stream.out.pop_front()
    }

    pub(super) fn emit(&mut self, kind: EventKind, now: Now) {
        if self.stream.out.len() >= MAX_QUEUED {
            self.stream.out.pop_front();
        }
        self.stream.out.push_back(Event { at: now, kind });
    }

    /// The router was told something about `agent`, or named it in an
    /// output: its state may have changed.
    pub(super) fn touch_agent(&mut self, agent: &str) {
        if let Some(id) = self.router.names().agent(agent) {
            self.stream.agents_touched.push(id);
        }
    }

    /// As [`Endpoint::touch_agent`], for an agent a call's leg names: by
    /// its id while that id still names it (no lookup), else by name.
    pub(super) fn touch_agent_ref(&mut self, agent: crate::acd::AgentRef<'_>) {
        if let Some(id) = self.router.names().resolve(agent) {
            self.stream.agents_touched.push(id);
        }
    }

    /// As [`Endpoint::touch_agent`], for an agent the router named by id.
    pub(super) fn touch_agent_id(&mut self, agent: crate::acd::AgentId) {
        self.stream.agents_touched.push(agent);
    }

    /// Any agent may have changed (a reload, shifts re-read). Everything
    /// else marks the agents it concerns, an agent freed by a caller's
    /// hang-up included (see `acd_caller_gone`), so no turn compares every
    /// agent for nothing.
    pub(super) fn touch_all_agents(&mut self) {
        self.stream.agents_all = true;
    }

    /// Reports every touched agent (or every agent) whose state or pause
    /// reason differs from the last report. Only a changed agent costs an
    /// allocation; a turn costs O(agents touched), not O(agents).
    fn compare_agents(&mut self, now: Now) {
        let all = std::mem::take(&mut self.stream.agents_all);
        let mut touched = std::mem::take(&mut self.stream.agents_touched);
        let mut changed = Vec::new();
        let mut seen_lock = super::shard::lock(&self.shared.agents_seen);
        seen_lock.follow(self.router.renumbering());
        let seen = &*seen_lock;
        let mut check = |id: AgentId,
                         name: &std::sync::Arc<str>,
                         state: crate::acd::AgentState,
                         reason: Option<&str>| {
            let state = state.as_str();
            let reason = reason.filter(|r| !r.is_empty());
            let same = seen
                .get(id)
                .is_some_and(|s| s.state == state && s.reason.as_deref() == reason);
            if !same {
                changed.push((id, name.to_string(), state, reason.map(str::to_owned)));
            }
        };
        if all {
            self.router.visit_agent_states(&mut check);
        } else {
            touched.sort_unstable();
            touched.dedup();
            for &id in &touched {
                self.router.visit_agent(id, &mut check);
            }
        }
        let since_ms = unix_ms(now.wall);
        let kinds: Vec<EventKind> = changed
            .into_iter()
            .map(|(id, agent, state, reason)| {
                let seen = AgentSeen {
                    state,
                    reason: reason.clone(),
                    since_ms,
                };
                seen_lock.insert(id, seen);
                EventKind::AgentState {
                    agent,
                    state,
                    reason,
                }
            })
            .collect();
        drop(seen_lock);
        for kind in kinds {
            self.emit(kind, now);
        }
    }

    /// When agent `id` entered its current state (as far as this process
    /// saw), in Unix milliseconds.
    pub(super) fn agent_state_since(&self, id: &str) -> Option<i64> {
        let agent = self.router.names().agent(id)?;
        let mut seen = super::shard::lock(&self.shared.agents_seen);
        seen.follow(self.router.renumbering());
        seen.get(agent).map(|s| s.since_ms)
    }

    /// Call `ck` was accepted.
    pub(super) fn emit_arrived(&mut self, ck: CallHandle, invite: &rsip::Request, now: Now) {
        let shard = self.shard;
        self.next_seq += 1;
        let seq = shard.make_id(self.next_seq);
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        call.cref.seq = seq;
        call.caller = caller_number(invite);
        call.arrived = now.wall;
        let kind = EventKind::Arrived {
            call: call.cref.clone(),
            caller: call.caller.clone(),
            number: call.number.clone(),
            queue: call.queue().map(str::to_owned),
        };
        self.emit(kind, now);
    }

    /// Answers a new INVITE with `code` and reports it rejected.
    pub(super) fn reject_invite(
        &mut self,
        key: &crate::sip::transaction::TxKey,
        req: &rsip::Request,
        code: u16,
        now: Now,
    ) {
        self.emit_rejected(req, code, now);
        let reason = crate::sip::message::reason_phrase(code);
        let resp = headers::response_to(req, code, reason, Some(&super::calls::new_tag()));
        self.reject(key, resp, now);
    }

    /// A new INVITE was not accepted.
    pub(super) fn emit_rejected(&mut self, req: &rsip::Request, code: u16, now: Now) {
        let number = headers::request_user(req).unwrap_or_default();
        let queue = self
            .numbers
            .get(number.as_str())
            .and_then(|&i| self.cfg.numbers.get(i))
            .and_then(|n| match &n.to {
                Target::Queue(q) => Some(q.clone()),
                _ => None,
            });
        let kind = EventKind::Rejected {
            call_id: headers::call_id(req).unwrap_or_default(),
            caller: caller_number(req),
            number,
            queue,
            code,
        };
        self.emit(kind, now);
    }

    /// Remembers who ended call `ck`, unless someone already did. A BYE
    /// that crosses ours (the call is already `Ending`) does not count: we
    /// hung up first.
    pub(super) fn note_hangup_by(&mut self, ck: CallHandle, who: HangupBy) {
        if let Some(c) = self.calls.get_mut(ck) {
            let ours_first = c.state == CallState::Ending;
            c.hangup_by
                .get_or_insert(if ours_first { HangupBy::System } else { who });
        }
    }

    /// Reports the IVR nodes call `ck` entered since the last report, and
    /// the `closed` branches of `schedule` nodes it took.
    pub(super) fn emit_ivr_steps(&mut self, ck: CallHandle, now: Now) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let cref = call.cref.clone();
        let Some(run) = call.ivr.as_mut() else {
            return;
        };
        let closed = run.take_closed_branches();
        let path = run.path();
        let seen = self.stream.ivr_seen.entry(ck).or_default();
        let new: Vec<String> = path.get(*seen..).unwrap_or_default().to_vec();
        *seen = path.len();
        for node in new {
            let call = cref.clone();
            self.emit(EventKind::IvrStep { call, node }, now);
        }
        for (ivr, node) in closed {
            let call = cref.clone();
            self.emit(EventKind::IvrClosed { call, ivr, node }, now);
        }
    }

    /// Call `ck` reached `queue`; `refused` if the router turned it away.
    pub(super) fn emit_queued(
        &mut self,
        ck: CallHandle,
        queue: &str,
        refused: Option<DivertReason>,
        now: Now,
    ) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        // The router's own order; a caller offered at once is first.
        let position = call
            .acd
            .and_then(|id| self.router.position(id))
            .unwrap_or(1);
        let kind = EventKind::Queued {
            call: call.cref.clone(),
            queue: queue.to_owned(),
            caller: call.caller.clone(),
            position,
            priority: call.priority,
            refused,
        };
        self.emit(kind, now);
    }

    /// The router moved call `ck` out of `queue` without an agent.
    pub(super) fn emit_diverted(
        &mut self,
        ck: CallHandle,
        queue: &str,
        reason: DivertReason,
        target: Option<&Target>,
        now: Now,
    ) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let kind = EventKind::Diverted {
            call: call.cref.clone(),
            queue: queue.to_owned(),
            reason,
            target: target.cloned(),
        };
        self.emit(kind, now);
    }

    /// The router's offer of `ck` to `agent` went out.
    pub(super) fn emit_offered(&mut self, ck: CallHandle, agent: &str, now: Now) {
        let routing = self.routing_decision(ck, agent, now);
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let kind = EventKind::Offered {
            call: call.cref.clone(),
            queue: call.queue().map(str::to_owned),
            agent: agent.to_owned(),
            routing,
        };
        self.emit(kind, now);
    }

    /// `agent` did not take the offer of `ck`, made at `offered_at`.
    pub(super) fn emit_ring_no_answer(
        &mut self,
        ck: CallHandle,
        agent: &str,
        offered_at: Option<std::time::Instant>,
        now: Now,
    ) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let rang = offered_at.map_or(std::time::Duration::ZERO, |t| {
            now.mono.saturating_duration_since(t)
        });
        let kind = EventKind::RingNoAnswer {
            call: call.cref.clone(),
            queue: call.queue().map(str::to_owned),
            agent: agent.to_owned(),
            rang,
        };
        self.emit(kind, now);
    }

    /// `agent` answered `ck` on its leg `agent_call_id`.
    pub(super) fn emit_answered(
        &mut self,
        ck: CallHandle,
        agent: &str,
        agent_call_id: &str,
        now: Now,
    ) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let since = |t: Option<std::time::Instant>| {
            t.map_or(std::time::Duration::ZERO, |t| {
                now.mono.saturating_duration_since(t)
            })
        };
        let kind = EventKind::Answered {
            call: call.cref.clone(),
            queue: call.queue().map(str::to_owned),
            agent: agent.to_owned(),
            agent_call_id: agent_call_id.to_owned(),
            waited: since(call.queued_at),
            rang: since(call.agent.as_ref().map(|l| l.offered_at)),
        };
        self.emit(kind, now);
    }

    /// An agent's phone became reachable or stopped being so.
    pub(super) fn emit_reachable(&mut self, agent: &str, reachable: bool, now: Now) {
        if self.cfg.agents.contains_key(agent) {
            let logged_off = self.router.logged_off(agent);
            let agent = agent.to_owned();
            let kind = EventKind::AgentReachable {
                agent,
                reachable,
                logged_off,
            };
            self.emit(kind, now);
        }
    }

    /// An agent logged itself off or in with its feature code.
    pub(super) fn emit_login(&mut self, agent: &str, logged_in: bool, now: Now) {
        let agent = agent.to_owned();
        self.emit(EventKind::AgentLogin { agent, logged_in }, now);
    }

    /// An agent was paused (with its reason) or unpaused.
    pub(super) fn emit_paused(&mut self, agent: &str, reason: Option<&str>, now: Now) {
        let kind = EventKind::AgentPaused {
            agent: agent.to_owned(),
            reason: reason.map(str::to_owned),
        };
        self.emit(kind, now);
    }

    /// Call `ck` ends now: reports how it went. Runs before the call's
    /// state is dropped, so the IVR path and queue times are still there.
    pub(super) fn emit_ended(&mut self, ck: CallHandle, now: Now) {
        self.stream.ivr_seen.remove(&ck);
        let draining = self.draining;
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        if call.reported {
            return;
        }
        self.end_recording(ck, now);
        self.end_message(ck, now);
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        call.reported = true;
        let mut path = Vec::new();
        let mut variables = Default::default();
        let mut closed_by_ivr = false;
        if let Some(run) = &call.ivr {
            path = run.path().to_vec();
            variables = run.variables().clone();
            closed_by_ivr = matches!(run.outcome(), Some(IvrOutcome::HungUp));
        }
        // Every queue the caller went through, in order (an overflow
        // counts against the first; see `cdr::report`).
        for q in &call.queues_seen {
            let step = format!("queue:{q}");
            if path.last() != Some(&step) {
                path.push(step);
            }
        }
        let by = call.hangup_by.unwrap_or(HangupBy::System);
        let disposition = if call.answered_at.is_some() {
            Disposition::Answered
        } else if call.callback == Some(crate::call::callback::Stage::Accepted) {
            Disposition::Callback
        } else if call.diverted == Some(DivertReason::Closed) {
            Disposition::Closed
        } else if call.diverted.is_some() {
            // Sent on by max_wait_s, max_waiting or a removed queue.
            Disposition::Overflowed
        } else if closed_by_ivr && by != HangupBy::Caller {
            Disposition::Closed
        } else if by == HangupBy::Caller {
            Disposition::Abandoned
        } else if draining {
            // The daemon stopped with the caller still waiting.
            Disposition::Interrupted
        } else {
            // No ACK, or a media timeout: the caller's phone went away.
            Disposition::Abandoned
        };
        let queued = call.queued_at.map(|t| {
            now.wall
                .checked_sub(now.mono.saturating_duration_since(t))
                .unwrap_or(now.wall)
        });
        let end = Ended {
            call: call.cref.clone(),
            caller: call.caller.clone(),
            number: call.number.clone(),
            queue: call
                .queues_seen
                .last()
                .cloned()
                .or_else(|| call.queue().map(str::to_owned)),
            agent: call
                .agent_id
                .clone()
                .or_else(|| call.agent.as_ref().map(|l| l.agent_id.clone())),
            disposition,
            hangup_by: by,
            arrived: call.arrived,
            queued,
            answered: call.answered_at,
            path,
            variables,
            hold: call.hold.total_at(now.mono),
            placed: call.attempt.is_some(),
        };
        self.emit(EventKind::Ended(Box::new(end)), now);
    }

    /// At exit, after [`Endpoint::shutdown`]: the end of every call still
    /// up (their BYEs will not be waited for). Unanswered ones are
    /// `interrupted`, as a crash would have left them.
    pub fn finish_records(&mut self, now: Now) {
        self.draining = true;
        let keys: Vec<CallHandle> = self.calls.handles().collect();
        for ck in keys {
            self.emit_ended(ck, now);
        }
    }

    /// Why `chosen` got call `ck`, from the router's own decision: the
    /// strategy, the chosen agent and its rank key, how many agents were
    /// eligible and still free, and the next in line with theirs. It costs
    /// what the router touched, never a pass over every agent, so the
    /// record stays small whatever the size of the contact center.
    fn routing_decision(&self, ck: CallHandle, chosen: &str, now: Now) -> Option<RoutingDecision> {
        let call = self.calls.get(ck)?;
        let queue = call.queue()?;
        let q = self.cfg.queues.get(queue)?;
        let explain = call
            .acd
            .and_then(|id| self.router.explain_offer(id, RUNNERS_UP));
        let level = explain.as_ref().map_or(0, |e| e.level);
        let req = crate::acd::required_skills(q, level);
        let score = |id: &str| -> Option<f64> {
            match q.strategy {
                Strategy::LongestIdle => self
                    .router
                    .agent(id)
                    .and_then(|s| s.last_call_end)
                    .map(|t| now.mono.saturating_duration_since(t).as_secs_f64()),
                Strategy::MostSkilled => self
                    .cfg
                    .agents
                    .get(id)
                    .map(|a| f64::from(crate::acd::skill_score(a, &req))),
                Strategy::FewestCalls => self.router.agent(id).map(|s| s.calls_taken as f64),
                Strategy::RoundRobin | Strategy::Random => None,
            }
        };
        let mut candidates = vec![Candidate {
            agent: chosen.to_owned(),
            score: score(chosen),
            note: "chosen".to_owned(),
        }];
        if let Some(e) = &explain {
            candidates.extend(e.runners_up.iter().map(|id| Candidate {
                agent: id.to_string(),
                score: score(id),
                note: "next in line".to_owned(),
            }));
        }
        let name = strategy_name(q.strategy);
        let counts = match &explain {
            Some(e) => format!("{} eligible, {} more free; ", e.eligible, e.free),
            None => String::new(),
        };
        let reason = format!(
            "{name}: {counts}{chosen} ranked first{}{}",
            if level > 0 {
                format!(" (skills relaxed, step {level})")
            } else {
                String::new()
            },
            if call.priority != 0 {
                " (caller priority from the IVR)"
            } else {
                ""
            }
        );
        Some(RoutingDecision {
            strategy: name.to_owned(),
            candidates,
            chosen: Some(chosen.to_owned()),
            reason,
            eligible: explain.as_ref().map(|e| e.eligible as u64),
            free: explain.as_ref().map(|e| e.free as u64),
        })
    }
}

/// The strategy's name in the configuration.
fn strategy_name(s: Strategy) -> &'static str {
    Strategy::NAMES
        .iter()
        .copied()
        .find(|n| Strategy::parse(n) == Some(s))
        .unwrap_or("?")
}
