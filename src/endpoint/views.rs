//! What the admin API shows: queues, agents and calls as they stand now.
//! Agent states, pause reasons and counters are the ACD router's; queue
//! figures combine the router's with the calls the endpoint holds. Pausing
//! and unpausing agents goes to the router too.

use std::time::Instant;

use super::{CallKey, Endpoint, Now};
use crate::acd::AdminState;
use crate::call::agent::AgentLegState;
use crate::call::{Call, CallState};
use crate::config::Agent;
use crate::views::fill_agent_clock;
use crate::views::{AgentStateRequest, AgentView, CallView, SetStateError};

impl Endpoint {
    /// `GET /api/v1/agents`.
    pub fn agent_views(&self, now: Now) -> Vec<AgentView> {
        self.cfg
            .agents
            .values()
            .map(|a| self.agent_view(a, now))
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
        let paused = match &req {
            AgentStateRequest::Paused { reason } => Some(reason.clone().unwrap_or_default()),
            AgentStateRequest::Available => None,
        };
        let state = match req {
            AgentStateRequest::Paused { reason } => AdminState::Paused(reason.unwrap_or_default()),
            AgentStateRequest::Available => {
                if self.router.logged_off(id) {
                    return Err(SetStateError::Refused(format!(
                        "agent {id} logged off with its logout code: it dials the login code"
                    )));
                }
                if !self.is_logged_in(&agent, now) {
                    return Err(SetStateError::Refused(format!(
                        "agent {id} is logged out: it becomes available when it registers"
                    )));
                }
                AdminState::Available
            }
        };
        self.touch_agent(id);
        let r = self.timed(|r| r.set_state(id, state, now.mono));
        if r.is_ok() {
            self.emit_paused(id, paused.as_deref(), now);
        }
        self.acd_result(r, now);
        Ok(self.agent_view(&agent, now))
    }

    fn agent_view(&self, a: &Agent, now: Now) -> AgentView {
        let st = self.router.agent(&a.id);
        let mut view = AgentView {
            id: a.id.clone(),
            name: a.name.clone(),
            state: st
                .as_ref()
                .map_or("logged_out", |s| s.state.as_str())
                .to_owned(),
            pause_reason: st
                .as_ref()
                .and_then(|s| s.pause_reason.clone())
                .filter(|r| !r.is_empty()),
            registered: self.is_logged_in(a, now),
            skills: a.skills.clone(),
            calls_taken: st.map_or(0, |s| s.calls_taken),
            state_since_ms: self.agent_state_since(&a.id),
            ..AgentView::default()
        };
        fill_agent_clock(&mut view, a, now.wall.into());
        view
    }

    /// A registration it can be called on (not one whose TLS or outbound
    /// flow has closed), or a static contact that answers its pings.
    fn is_logged_in(&self, a: &Agent, now: Now) -> bool {
        match &a.contact {
            Some(_) => !self.unreachable.contains(&a.id),
            None => self.has_usable_binding(&a.id, now),
        }
    }

    fn call_view(&self, ck: &CallKey, c: &Call, now: Now) -> CallView {
        let leg = c.agent.as_ref().map(|l| l.state);
        let state = match (c.state, leg) {
            (CallState::Ringing { .. }, _) => "ringing",
            (CallState::Answered, _) => "answering",
            (CallState::Ending, _) => "ending",
            (CallState::Confirmed, Some(AgentLegState::Connected)) => "connected",
            (CallState::Confirmed, None) if c.outside.is_some() => "connected",
            (CallState::Confirmed, Some(AgentLegState::Offering)) => "offered",
            (CallState::Confirmed, _) if c.queued_at.is_some() => "queued",
            (CallState::Confirmed, _) => "ivr",
        };
        let position = c
            .acd
            .filter(|_| is_waiting(c))
            .and_then(|id| self.router.position(id));
        let estimated_wait_s = match (position, c.queue()) {
            (Some(p), Some(q)) => self
                .estimated_wait(q, p, now)
                .map(|d| d.as_secs_f64().round()),
            _ => None,
        };
        CallView {
            id: ck.0.clone(),
            from: c.caller.clone(),
            number: c.number.clone(),
            state: state.to_owned(),
            queue: c.queue().map(str::to_owned),
            agent: c.agent.as_ref().map(|l| l.agent_id.clone()),
            wait_s: waited_s(c.queued_at, now.mono),
            answered_ms: c.answered_at.map(crate::events::unix_ms),
            position,
            estimated_wait_s,
        }
    }
}

/// In the queue and not talking to an agent yet.
pub(super) fn is_waiting(c: &Call) -> bool {
    c.state == CallState::Confirmed
        && c.queued_at.is_some()
        // Its place went to a callback (counted as one) as it accepted.
        && c.callback != Some(crate::call::callback::Stage::Accepted)
        && c.outside.is_none()
        && c.agent
            .as_ref()
            .is_none_or(|l| l.state != AgentLegState::Connected)
}

pub(super) fn waited_s(since: Option<Instant>, now: Instant) -> f64 {
    since.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64())
}
