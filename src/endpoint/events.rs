//! Live events for `GET /api/v1/events` and the wallboard: one small JSON
//! object per step of a call's life and per agent state change. They are
//! queued here as data, like call records; the daemon drains them with
//! [`Endpoint::poll_event`] into a broadcast channel, so nothing here knows
//! about subscribers and a slow one can never hold a call up.
//!
//! The call events are raised by the same hooks that fill the call records
//! (`records.rs`), so the stream and the records tell one story. Agent
//! states are the router's: whenever the router was told something, the
//! agents are marked dirty and the next [`Endpoint::poll_event`] compares
//! every agent with what was last reported (one pass per daemon loop turn,
//! not per message).
//!
//! The figures of the day are also kept here, from the calls that ended
//! today (in `server.timezone`): offered, answered, abandoned, their waits,
//! and the service level (answered within the queue's `service_level_s`,
//! divided by answered plus abandoned).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::records::unix_ms;
use super::{CallKey, Endpoint, Now};
use crate::acd::DivertReason;
use crate::cdr::{CallRecord, Disposition, HangupBy};
use crate::config::Target;

/// Events kept while the daemon does not drain them (tests, benches): the
/// oldest go first.
pub(super) const MAX_QUEUED: usize = 4096;

/// One event: when, and what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveEvent {
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    /// The same instant in Unix milliseconds.
    pub ts_ms: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened; serialized with a `type` field (`call_arrived`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// An INVITE was accepted.
    CallArrived {
        call: String,
        from: String,
        number: String,
        /// Set when the number leads straight to a queue.
        queue: Option<String>,
    },
    /// An INVITE was refused (unknown number, overload, draining).
    CallRejected {
        call: String,
        from: String,
        number: String,
    },
    /// The caller entered IVR node `node` (`ivr.node`).
    CallIvr { call: String, node: String },
    /// The caller waits in `queue`, at `position` (1 = next).
    CallQueued {
        call: String,
        queue: String,
        position: usize,
        priority: i32,
    },
    /// The router offered the call to `agent` (its phone rings).
    CallOffered {
        call: String,
        queue: Option<String>,
        agent: String,
    },
    /// The agent answered; `wait_s` is the time spent in the queue.
    CallAnswered {
        call: String,
        queue: Option<String>,
        agent: String,
        wait_s: f64,
    },
    /// The caller hung up before an agent answered.
    CallAbandoned {
        call: String,
        queue: Option<String>,
        wait_s: f64,
    },
    /// The caller left `queue` without an agent: `reason` is `closed`,
    /// `max_wait`, `max_waiting` or `queue_removed`; `target` where it went.
    CallOverflowed {
        call: String,
        queue: String,
        reason: &'static str,
        target: Option<String>,
    },
    /// The call is over; the same disposition as its call record.
    CallEnded {
        call: String,
        queue: Option<String>,
        agent: Option<String>,
        disposition: Disposition,
        hangup_by: Option<HangupBy>,
        duration_s: f64,
    },
    /// An agent's state changed (the states of `GET /api/v1/agents`).
    AgentState {
        agent: String,
        state: &'static str,
        reason: Option<String>,
    },
}

/// Queued events and what is needed to raise the next ones.
#[derive(Debug, Default)]
pub struct EventBook {
    out: VecDeque<LiveEvent>,
    /// Agents named in what the router was told or answered since the
    /// last comparison: only they can have changed state.
    agents_touched: Vec<String>,
    /// Compare every agent (reload, shifts re-read, the periodic sweep).
    agents_all: bool,
    /// IVR nodes already reported per call.
    ivr_seen: HashMap<CallKey, usize>,
}

/// Agent id to the state last reported, its pause reason and since when
/// (shared by the shards).
pub(super) type AgentsSeen = HashMap<String, AgentSeen>;

#[derive(Debug)]
pub(super) struct AgentSeen {
    state: &'static str,
    reason: Option<String>,
    since_ms: i64,
}

/// Per-queue counts of the calls that ended on `day` (shared by shards).
#[derive(Debug, Default)]
pub(super) struct ServiceDay {
    day: Option<NaiveDate>,
    queues: HashMap<String, ServiceCount>,
}

/// One queue's calls of the day.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct ServiceCount {
    /// Answered within `service_level_s`.
    pub within: u64,
    /// Answered + abandoned + overflowed + interrupted, as `cdr::report`.
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// Summed waits of the answered calls.
    pub answered_wait_ms: u64,
}

impl ServiceCount {
    /// Percent of answered and abandoned calls answered within the service
    /// level; `None` before the first such call.
    pub fn service_level(&self) -> Option<f64> {
        let total = self.answered + self.abandoned;
        (total > 0).then(|| 100.0 * self.within as f64 / total as f64)
    }

    /// Percent of offered calls abandoned.
    pub fn abandon_rate(&self) -> Option<f64> {
        (self.offered > 0).then(|| 100.0 * self.abandoned as f64 / self.offered as f64)
    }

    /// Average speed of answer, in seconds.
    pub fn asa_s(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answered_wait_ms as f64 / 1000.0 / self.answered as f64)
    }
}

fn divert_name(r: DivertReason) -> &'static str {
    match r {
        DivertReason::Closed => "closed",
        DivertReason::MaxWait => "max_wait",
        DivertReason::MaxWaiting => "max_waiting",
        DivertReason::QueueRemoved => "queue_removed",
    }
}

fn secs_between(from_ms: Option<i64>, to_ms: Option<i64>) -> f64 {
    match (from_ms, to_ms) {
        (Some(a), Some(b)) if b >= a => (b - a) as f64 / 1000.0,
        _ => 0.0,
    }
}

/// Seconds to the millisecond, as the call records keep them.
fn ms_precision(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

impl Endpoint {
    /// Next live event, oldest first. Agent state changes are found here,
    /// so call it once per turn of the driver's loop.
    pub fn poll_event(&mut self, now: Now) -> Option<LiveEvent> {
        // The shard that changed an agent reports it, before it hands any
        // offer over to another shard: a state is not missed for lasting
        // less than another shard's turn.
        if self.events.agents_all || !self.events.agents_touched.is_empty() {
            self.compare_agents(now);
        }
        self.events.out.pop_front()
    }

    pub(super) fn push_event(&mut self, kind: EventKind, now: Now) {
        let ts_ms = unix_ms(now.wall);
        let ts =
            DateTime::<Utc>::from(now.wall).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if self.events.out.len() >= MAX_QUEUED {
            self.events.out.pop_front();
        }
        self.events.out.push_back(LiveEvent { ts, ts_ms, kind });
    }

    /// The router was told something about `agent`, or named it in an
    /// output: its state may have changed.
    pub(super) fn touch_agent(&mut self, agent: &str) {
        self.events.agents_touched.push(agent.to_owned());
    }

    /// Any agent may have changed (reload, shifts, the periodic sweep that
    /// also catches an agent freed by a caller whose offer was still being
    /// handed over between shards).
    pub(super) fn touch_all_agents(&mut self) {
        self.events.agents_all = true;
    }

    /// Reports every touched agent (or every agent) whose state or pause
    /// reason differs from the last report. Only a changed agent costs an
    /// allocation; a turn costs O(agents touched), not O(agents).
    fn compare_agents(&mut self, now: Now) {
        let all = std::mem::take(&mut self.events.agents_all);
        let mut touched = std::mem::take(&mut self.events.agents_touched);
        let mut changed = Vec::new();
        let mut seen_lock = super::shard::lock(&self.shared.agents_seen);
        let seen = &*seen_lock;
        let mut check = |id: &str, state: crate::acd::AgentState, reason: Option<&str>| {
            let state = state.as_str();
            let reason = reason.filter(|r| !r.is_empty());
            let same = seen
                .get(id)
                .is_some_and(|s| s.state == state && s.reason.as_deref() == reason);
            if !same {
                changed.push((id.to_string(), state, reason.map(str::to_owned)));
            }
        };
        if all {
            self.router
                .visit_agent_states(|id, state, reason| check(id, state, reason));
        } else {
            touched.sort_unstable();
            touched.dedup();
            for id in &touched {
                if let Some(st) = self.router.agent(id) {
                    check(id, st.state, st.pause_reason.as_deref());
                }
            }
        }
        let since_ms = unix_ms(now.wall);
        let kinds: Vec<EventKind> = changed
            .into_iter()
            .map(|(agent, state, reason)| {
                let seen = AgentSeen {
                    state,
                    reason: reason.clone(),
                    since_ms,
                };
                seen_lock.insert(agent.clone(), seen);
                EventKind::AgentState {
                    agent,
                    state,
                    reason,
                }
            })
            .collect();
        drop(seen_lock);
        for kind in kinds {
            self.push_event(kind, now);
        }
    }

    /// When agent `id` entered its current state (as far as this process
    /// saw), in Unix milliseconds.
    pub(super) fn agent_state_since(&self, id: &str) -> Option<i64> {
        super::shard::lock(&self.shared.agents_seen)
            .get(id)
            .map(|s| s.since_ms)
    }

    /// Reports the IVR nodes call `ck` entered since the last report.
    pub(super) fn event_ivr(&mut self, ck: &CallKey, now: Now) {
        let Some(path) = self
            .calls
            .get(ck)
            .and_then(|c| c.ivr.as_ref())
            .map(|r| r.path())
        else {
            return;
        };
        let seen = self.events.ivr_seen.entry(ck.clone()).or_default();
        let new: Vec<String> = path.get(*seen..).unwrap_or_default().to_vec();
        *seen = path.len();
        for node in new {
            let call = ck.0.clone();
            self.push_event(EventKind::CallIvr { call, node }, now);
        }
    }

    /// Call `ck` entered `queue`: its position counts the callers the
    /// router serves first (higher priority, then longer wait).
    pub(super) fn event_queued(&mut self, ck: &CallKey, queue: &str, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        // The router's own order; a caller offered at once is first.
        let position = call
            .acd
            .and_then(|id| self.router.position(id))
            .unwrap_or(1);
        let kind = EventKind::CallQueued {
            call: ck.0.clone(),
            queue: queue.to_owned(),
            position,
            priority: call.priority,
        };
        self.push_event(kind, now);
    }

    /// The router moved call `ck` out of `queue` without an agent.
    pub(super) fn event_diverted(
        &mut self,
        ck: &CallKey,
        queue: &str,
        reason: DivertReason,
        target: Option<&Target>,
        now: Now,
    ) {
        let kind = EventKind::CallOverflowed {
            call: ck.0.clone(),
            queue: queue.to_owned(),
            reason: divert_name(reason),
            target: Some(target.map_or_else(|| "hangup".to_owned(), ToString::to_string)),
        };
        self.push_event(kind, now);
    }

    /// A call record was opened (`in_progress`) or a call rejected.
    pub(super) fn event_record_opened(&mut self, rec: &CallRecord, now: Now) {
        let kind = if rec.disposition == Disposition::Rejected {
            EventKind::CallRejected {
                call: rec.id.clone(),
                from: rec.caller.clone(),
                number: rec.number.clone(),
            }
        } else {
            EventKind::CallArrived {
                call: rec.id.clone(),
                from: rec.caller.clone(),
                number: rec.number.clone(),
                queue: rec.queue.clone(),
            }
        };
        self.push_event(kind, now);
    }

    /// The router's offer of `ck` to `agent` went out.
    pub(super) fn event_offered(&mut self, ck: &CallKey, agent: &str, now: Now) {
        let queue = self
            .calls
            .get(ck)
            .and_then(|c| c.queue())
            .map(str::to_owned);
        let kind = EventKind::CallOffered {
            call: ck.0.clone(),
            queue,
            agent: agent.to_owned(),
        };
        self.push_event(kind, now);
    }

    /// The agent leg of `ck` was answered by `agent`.
    pub(super) fn event_answered(&mut self, ck: &CallKey, agent: &str, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let wait_s = call.queued_at.map_or(0.0, |t| {
            ms_precision(now.mono.saturating_duration_since(t).as_secs_f64())
        });
        let kind = EventKind::CallAnswered {
            call: ck.0.clone(),
            queue: call.queue().map(str::to_owned),
            agent: agent.to_owned(),
            wait_s,
        };
        self.push_event(kind, now);
    }

    /// The final record of call `ck` is ready: `call_abandoned` when it
    /// was, then `call_ended`; and the day's service level counts.
    pub(super) fn event_record_closed(&mut self, ck: &CallKey, rec: &CallRecord, now: Now) {
        self.events.ivr_seen.remove(ck);
        let wait_end = rec.answered_ms.or(rec.ended_ms);
        let wait_s = secs_between(rec.queued_ms, wait_end);
        if rec.disposition == Disposition::Abandoned {
            let kind = EventKind::CallAbandoned {
                call: rec.id.clone(),
                queue: rec.queue.clone(),
                wait_s,
            };
            self.push_event(kind, now);
        }
        self.count_service_level(rec, now);
        let kind = EventKind::CallEnded {
            call: rec.id.clone(),
            queue: rec.queue.clone(),
            agent: rec.agent.clone(),
            disposition: rec.disposition,
            hangup_by: rec.hangup_by,
            duration_s: secs_between(Some(rec.arrived_ms), rec.ended_ms),
        };
        self.push_event(kind, now);
    }

    fn local_day(&self, now: Now) -> NaiveDate {
        DateTime::<Utc>::from(now.wall)
            .with_timezone(&self.cfg.server.timezone)
            .date_naive()
    }

    fn count_service_level(&mut self, rec: &CallRecord, now: Now) {
        let Some(queue) = rec.queue.as_deref() else {
            return;
        };
        let answered = rec.disposition == Disposition::Answered;
        let offered = matches!(
            rec.disposition,
            Disposition::Answered
                | Disposition::Abandoned
                | Disposition::Overflowed
                | Disposition::Interrupted
        );
        if !offered {
            return;
        }
        let day = self.local_day(now);
        let sl_ms = self
            .cfg
            .queues
            .get(queue)
            .map_or(20, |q| q.service_level_s)
            .saturating_mul(1000);
        let waited_ms = match (rec.queued_ms, rec.answered_ms) {
            (Some(q), Some(a)) => a.saturating_sub(q),
            (None, Some(a)) => a.saturating_sub(rec.arrived_ms),
            _ => 0,
        };
        let mut today = super::shard::lock(&self.shared.service);
        if today.day != Some(day) {
            *today = ServiceDay {
                day: Some(day),
                queues: HashMap::new(),
            };
        }
        let c = today.queues.entry(queue.to_owned()).or_default();
        c.offered += 1;
        if answered {
            let waited_ms = u64::try_from(waited_ms).unwrap_or(0);
            c.answered += 1;
            c.answered_wait_ms = c.answered_wait_ms.saturating_add(waited_ms);
            if waited_ms <= sl_ms {
                c.within += 1;
            }
        } else if rec.disposition == Disposition::Abandoned {
            c.abandoned += 1;
        }
    }

    /// Today's counts of `queue` (all zero before its first call of the
    /// day).
    pub(super) fn queue_today(&self, queue: &str, now: Now) -> ServiceCount {
        let today = super::shard::lock(&self.shared.service);
        if today.day != Some(self.local_day(now)) {
            return ServiceCount::default();
        }
        today.queues.get(queue).copied().unwrap_or_default()
    }
}
