//! What the admin API shows: queues, agents and calls as the endpoint sees
//! them now, computed from the configuration, the [`AgentBook`], the
//! registrar and the calls. Pausing and unpausing agents comes in here too.
//!
//! Agent states: `on_call` and `ringing` come from the agent's leg, then
//! `logged_out` (no binding and no reachable static contact), `paused`,
//! `off_shift`, `available`. `wrapup` is never reported yet: after-call work
//! is the ACD router's (not built yet).
//!
//! [`AgentBook`]: super::agents::AgentBook

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{CallKey, Endpoint, Now};
use crate::admin::{AgentStateRequest, AgentView, CallView, QueueView, SetStateError};
use crate::call::agent::AgentLegState;
use crate::call::{Call, CallState};
use crate::config::Agent;

/// An agent's leg in a call, if it has one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leg {
    Ringing,
    OnCall,
}

impl Endpoint {
    /// `GET /api/v1/queues`.
    pub fn queue_views(&self, now: Now) -> Vec<QueueView> {
        let legs = self.agent_legs();
        let wall: DateTime<Utc> = now.wall.into();
        self.cfg
            .queues
            .values()
            .map(|q| {
                let waits: Vec<f64> = self
                    .calls
                    .values()
                    .filter(|c| c.queue() == Some(q.name.as_str()) && is_waiting(c))
                    .map(|c| waited_s(c.queued_at, now.mono))
                    .collect();
                let qualified = self.cfg.agents.values().filter(|a| {
                    q.skills
                        .iter()
                        .all(|(s, lvl)| a.skills.get(s).is_some_and(|l| l >= lvl))
                });
                let (mut available, mut busy) = (0, 0);
                for a in qualified {
                    match self.agent_state(a, &legs, now).0 {
                        "available" => available += 1,
                        "ringing" | "on_call" => busy += 1,
                        _ => {}
                    }
                }
                let open = q.schedule.as_ref().is_none_or(|name| {
                    self.cfg.schedules.get(name).is_none_or(|s| s.is_open(wall))
                });
                QueueView {
                    name: q.name.clone(),
                    waiting: u32::try_from(waits.len()).unwrap_or(u32::MAX),
                    longest_wait_s: waits.into_iter().fold(0.0, f64::max),
                    agents_available: available,
                    agents_busy: busy,
                    open,
                }
            })
            .collect()
    }

    /// `GET /api/v1/agents`.
    pub fn agent_views(&self, now: Now) -> Vec<AgentView> {
        let legs = self.agent_legs();
        self.cfg
            .agents
            .values()
            .map(|a| self.agent_view(a, &legs, now))
            .collect()
    }

    /// `GET /api/v1/calls`: calls in progress, longest waiting first.
    pub fn call_views(&self, now: Now) -> Vec<CallView> {
        let mut out: Vec<(Option<Instant>, CallView)> = self
            .calls
            .iter()
            .map(|(ck, c)| (c.queued_at, self.call_view(ck, c, now)))
            .collect();
        out.sort_by(|a, b| (a.0.is_none(), a.0, &a.1.id).cmp(&(b.0.is_none(), b.0, &b.1.id)));
        out.into_iter().map(|(_, v)| v).collect()
    }

    /// `POST /api/v1/agents/{id}/state`: pause or unpause an agent. An
    /// unpaused agent is offered waiting calls at once.
    pub fn set_agent_state(
        &mut self,
        id: &str,
        req: AgentStateRequest,
        now: Now,
    ) -> Result<AgentView, SetStateError> {
        let Some(agent) = self.cfg.agents.get(id).cloned() else {
            return Err(SetStateError::UnknownAgent(id.to_owned()));
        };
        match req {
            AgentStateRequest::Paused { reason } => {
                self.agents.pause(id, reason.as_deref().unwrap_or(""));
            }
            AgentStateRequest::Available => {
                if !self.is_logged_in(&agent, now) {
                    return Err(SetStateError::Refused(format!(
                        "agent {id} is logged out: it becomes available when it registers"
                    )));
                }
                self.agents.unpause(id);
                self.route_waiting(now);
            }
        }
        Ok(self.agent_view(&agent, &self.agent_legs(), now))
    }

    fn agent_view(&self, a: &Agent, legs: &HashMap<String, Leg>, now: Now) -> AgentView {
        let (state, pause_reason) = self.agent_state(a, legs, now);
        AgentView {
            id: a.id.clone(),
            name: a.name.clone(),
            state: state.to_owned(),
            pause_reason,
            registered: self.is_logged_in(a, now),
            skills: a.skills.clone(),
            calls_taken: self.records.calls_taken(&a.id),
        }
    }

    fn agent_state(
        &self,
        a: &Agent,
        legs: &HashMap<String, Leg>,
        now: Now,
    ) -> (&'static str, Option<String>) {
        let reason = || {
            self.agents
                .pause_reason(&a.id)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
        };
        match legs.get(&a.id) {
            Some(Leg::OnCall) => ("on_call", None),
            Some(Leg::Ringing) => ("ringing", None),
            None if !self.is_logged_in(a, now) => ("logged_out", None),
            None if self.agents.is_paused(&a.id) => ("paused", reason()),
            None if !a.on_shift(now.wall.into()) => ("off_shift", None),
            None => ("available", None),
        }
    }

    /// A registration, or a static contact that answers its pings.
    fn is_logged_in(&self, a: &Agent, now: Now) -> bool {
        match &a.contact {
            Some(_) => self.agents.is_reachable(&a.id),
            None => !self.registrar.bindings(&a.id, now.wall).is_empty(),
        }
    }

    fn agent_legs(&self) -> HashMap<String, Leg> {
        let mut legs = HashMap::new();
        for leg in self.calls.values().filter_map(|c| c.agent.as_ref()) {
            let l = match leg.state {
                AgentLegState::Offering => Leg::Ringing,
                AgentLegState::Connected => Leg::OnCall,
                AgentLegState::Ending => continue,
            };
            let e = legs.entry(leg.agent_id.clone()).or_insert(l);
            if l == Leg::OnCall {
                *e = l;
            }
        }
        legs
    }

    fn call_view(&self, ck: &CallKey, c: &Call, now: Now) -> CallView {
        let leg = c.agent.as_ref().map(|l| l.state);
        let state = match (c.state, leg) {
            (CallState::Ringing { .. }, _) => "ringing",
            (CallState::Answered, _) => "answering",
            (CallState::Ending, _) => "ending",
            (CallState::Confirmed, Some(AgentLegState::Connected)) => "connected",
            (CallState::Confirmed, Some(AgentLegState::Offering)) => "offered",
            (CallState::Confirmed, _) if c.queued_at.is_some() => "queued",
            (CallState::Confirmed, _) => "ivr",
        };
        CallView {
            id: ck.0.clone(),
            from: self
                .records
                .get(ck)
                .map(|r| r.caller.clone())
                .unwrap_or_default(),
            number: c.number.clone(),
            state: state.to_owned(),
            queue: c.queue().map(str::to_owned),
            agent: c.agent.as_ref().map(|l| l.agent_id.clone()),
            wait_s: waited_s(c.queued_at, now.mono),
        }
    }
}

/// In the queue and not talking to an agent yet.
fn is_waiting(c: &Call) -> bool {
    c.state == CallState::Confirmed
        && c.queued_at.is_some()
        && c.agent
            .as_ref()
            .is_none_or(|l| l.state != AgentLegState::Connected)
}

fn waited_s(since: Option<Instant>, now: Instant) -> f64 {
    since.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64())
}
