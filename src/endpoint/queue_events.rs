//! Queue outcomes as they happen: counted per queue for `/metrics` and,
//! when the daemon enables it (`server.queue_log`), turned into Asterisk
//! `queue_log` lines that [`Endpoint::poll_queue_log`] hands out. Nothing
//! here touches a file.
//!
//! The hooks in the other endpoint files are one line each: a caller
//! enters a queue (`enter_queue`), is offered (`offer`), rings out
//! (`agent_ring_timeout`), is answered (`agent_answered`), is sent on
//! (`apply_acd`), leaves or ends (`acd_caller_gone`); agents log in and
//! out (`agent_reachable`) and pause (`set_agent_state`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Instant, SystemTime};

use super::{CallKey, Endpoint, Now};
use crate::acd::DivertReason;
use crate::metrics::Metrics;

/// One line of Asterisk's queue_log:
/// `epoch|callid|queue|agent|event|data1|data2|...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLogLine {
    pub at: SystemTime,
    pub call_id: String,
    pub queue: String,
    pub agent: String,
    pub event: &'static str,
    pub data: Vec<String>,
}

impl QueueLogLine {
    /// The line as Asterisk writes it, without the newline. `|` and line
    /// breaks in fields (a pause reason) become spaces.
    pub fn format(&self) -> String {
        let epoch = self
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let clean = |s: &str| s.replace(['|', '\r', '\n'], " ");
        let mut out = format!(
            "{epoch}|{}|{}|{}|{}",
            clean(&self.call_id),
            clean(&self.queue),
            clean(&self.agent),
            self.event
        );
        for d in &self.data {
            out.push('|');
            out.push_str(&clean(d));
        }
        out
    }
}

/// A caller's stay in its current queue.
#[derive(Debug)]
struct Stay {
    queue: String,
    entered: Instant,
    origpos: usize,
    /// Agent and when its phone started ringing.
    offered: Option<(String, Instant)>,
    /// Agent, when it answered, and the agent leg's Call-ID.
    answered: Option<(String, Instant)>,
}

#[derive(Debug, Default)]
pub(super) struct QueueTracker {
    stays: HashMap<CallKey, Stay>,
    logged_in: HashSet<String>,
    enabled: bool,
    out: VecDeque<QueueLogLine>,
}

const NONE: &str = "NONE";

fn secs(d: std::time::Duration) -> String {
    d.as_secs().to_string()
}

impl Endpoint {
    /// From now on queue events are kept for [`Endpoint::poll_queue_log`],
    /// starting with an `AGENTLOGIN` for every agent already reachable.
    pub fn enable_queue_log(&mut self, now: Now) {
        self.qlog.enabled = true;
        let mut agents: Vec<String> = self.qlog.logged_in.iter().cloned().collect();
        agents.sort();
        for a in agents {
            self.qlog(now, NONE, NONE, &a, "AGENTLOGIN", vec![]);
        }
    }

    /// Next queue_log line for the writer.
    pub fn poll_queue_log(&mut self) -> Option<QueueLogLine> {
        self.qlog.out.pop_front()
    }

    /// The counters this endpoint feeds.
    pub fn metrics(&self) -> &std::sync::Arc<Metrics> {
        &self.metrics
    }

    /// Counts into `m` from now on (the daemon shares it with `/metrics`).
    pub fn set_metrics(&mut self, m: std::sync::Arc<Metrics>) {
        // This shard's decision counter, looked up once: the family's map
        // is behind a lock every shard would otherwise take per decision.
        let shard = self.shard.index as u64;
        self.decisions = m
            .shard_decisions
            .get_or_create(&crate::metrics::ShardLabel { shard })
            .clone();
        // Handles into the old registry count nowhere now.
        self.sip_counts = Default::default();
        self.metrics = m;
    }

    fn qlog(
        &mut self,
        now: Now,
        call_id: &str,
        queue: &str,
        agent: &str,
        event: &'static str,
        data: Vec<String>,
    ) {
        if self.qlog.enabled {
            self.qlog.out.push_back(QueueLogLine {
                at: now.wall,
                call_id: call_id.to_owned(),
                queue: queue.to_owned(),
                agent: agent.to_owned(),
                event,
                data,
            });
        }
    }

    /// Callers of `queue` not answered yet. O(callers): only for the log.
    fn waiting_in(&self, queue: &str) -> usize {
        self.qlog
            .stays
            .values()
            .filter(|s| s.queue == queue && s.answered.is_none())
            .count()
    }

    /// `ck`'s place in its queue now (1 = next served), by arrival.
    fn position(&self, ck: &CallKey, stay: &Stay) -> usize {
        let me = stay.entered;
        1 + self
            .qlog
            .stays
            .iter()
            .filter(|(k, s)| {
                *k != ck && s.queue == stay.queue && s.answered.is_none() && s.entered < me
            })
            .count()
    }

    /// Caller `ck` reaches `queue` (before the router decides). `refused`
    /// says whether the router turned it away at once (closed, full).
    pub(super) fn q_entered(
        &mut self,
        ck: &CallKey,
        queue: &str,
        refused: Option<DivertReason>,
        now: Now,
    ) {
        Metrics::queue_event(&self.metrics.queue_offered, queue);
        match refused {
            Some(DivertReason::MaxWaiting) => {
                self.qlog(now, &ck.0, queue, NONE, "FULL", vec![]);
                return;
            }
            Some(DivertReason::Closed) => {
                self.qlog(now, &ck.0, queue, NONE, "JOINUNAVAIL", vec![]);
                return;
            }
            _ => {}
        }
        // Positions cost a walk over the queue's callers, and the caller's
        // number a look at its INVITE: log only.
        let (caller, origpos) = if self.qlog.enabled {
            let caller = self
                .invites
                .get(ck)
                .map(|(_, inv)| super::agents::caller_number(inv));
            (caller.unwrap_or_default(), self.waiting_in(queue) + 1)
        } else {
            (String::new(), 0)
        };
        self.qlog.stays.insert(
            ck.clone(),
            Stay {
                queue: queue.to_owned(),
                entered: now.mono,
                origpos,
                offered: None,
                answered: None,
            },
        );
        self.qlog(
            now,
            &ck.0,
            queue,
            NONE,
            "ENTERQUEUE",
            vec![String::new(), caller, origpos.to_string()],
        );
    }

    /// The router sent `ck` out of `queue`.
    pub(super) fn q_diverted(&mut self, ck: &CallKey, queue: &str, reason: DivertReason, now: Now) {
        let fam = match reason {
            DivertReason::Closed => &self.metrics.queue_closed,
            _ => &self.metrics.queue_overflowed,
        };
        Metrics::queue_event(fam, queue);
        let Some(stay) = self.qlog.stays.remove(ck) else {
            return; // refused on arrival: already logged
        };
        if !self.qlog.enabled {
            return;
        }
        let pos = self.position(ck, &stay);
        let event = match reason {
            DivertReason::Closed => "EXITEMPTY",
            _ => "EXITWITHTIMEOUT",
        };
        let waited = secs(now.mono.saturating_duration_since(stay.entered));
        let data = vec![pos.to_string(), stay.origpos.to_string(), waited];
        self.qlog(now, &ck.0, &stay.queue, NONE, event, data);
    }

    /// `agent`'s phone rings for `ck`.
    pub(super) fn q_offered(&mut self, ck: &CallKey, agent: &str, now: Now) {
        if let Some(s) = self.qlog.stays.get_mut(ck) {
            s.offered = Some((agent.to_owned(), now.mono));
        }
    }

    /// `agent` did not answer `ck` in time.
    pub(super) fn q_ring_no_answer(&mut self, ck: &CallKey, agent: &str, now: Now) {
        let Some(s) = self.qlog.stays.get_mut(ck) else {
            return;
        };
        let Some((_, at)) = s.offered.take() else {
            return;
        };
        let ms = now
            .mono
            .saturating_duration_since(at)
            .as_millis()
            .to_string();
        let queue = s.queue.clone();
        self.qlog(now, &ck.0, &queue, agent, "RINGNOANSWER", vec![ms]);
    }

    /// `agent` answered `ck` on its leg `agent_call_id`.
    pub(super) fn q_answered(&mut self, ck: &CallKey, agent: &str, agent_call_id: &str, now: Now) {
        let Some(s) = self.qlog.stays.get_mut(ck) else {
            return;
        };
        Metrics::queue_event(&self.metrics.queue_answered, &s.queue);
        let hold = secs(now.mono.saturating_duration_since(s.entered));
        let ring = s.offered.as_ref().map_or(0, |(_, at)| {
            now.mono.saturating_duration_since(*at).as_secs()
        });
        s.answered = Some((agent.to_owned(), now.mono));
        let queue = s.queue.clone();
        let data = vec![hold, agent_call_id.to_owned(), ring.to_string()];
        self.qlog(now, &ck.0, &queue, agent, "CONNECT", data);
    }

    /// Call `ck` leaves its queue for good: the end of an answered call,
    /// or the caller giving up.
    pub(super) fn q_caller_gone(&mut self, ck: &CallKey, now: Now) {
        let Some(stay) = self.qlog.stays.remove(ck) else {
            return;
        };
        match &stay.answered {
            Some((agent, at)) => {
                let by_agent = self.calls.get(ck).is_some_and(|c| c.hangup_by_agent);
                let event = if by_agent {
                    "COMPLETEAGENT"
                } else {
                    "COMPLETECALLER"
                };
                let hold = secs(at.saturating_duration_since(stay.entered));
                let talk = secs(now.mono.saturating_duration_since(*at));
                let data = vec![hold, talk, stay.origpos.to_string()];
                self.qlog(now, &ck.0, &stay.queue, agent, event, data);
            }
            None => {
                Metrics::queue_event(&self.metrics.queue_abandoned, &stay.queue);
                if !self.qlog.enabled {
                    return;
                }
                let pos = self.position(ck, &stay);
                let waited = secs(now.mono.saturating_duration_since(stay.entered));
                let data = vec![pos.to_string(), stay.origpos.to_string(), waited];
                self.qlog(now, &ck.0, &stay.queue, NONE, "ABANDON", data);
            }
        }
    }

    /// An agent's phone became reachable or stopped being so.
    pub(super) fn q_agent_reachable(&mut self, agent: &str, reachable: bool, now: Now) {
        if !self.cfg.agents.contains_key(agent) {
            return;
        }
        let changed = if reachable {
            self.qlog.logged_in.insert(agent.to_owned())
        } else {
            self.qlog.logged_in.remove(agent)
        };
        if changed {
            let event = if reachable {
                "AGENTLOGIN"
            } else {
                "AGENTLOGOFF"
            };
            self.qlog(now, NONE, NONE, agent, event, vec![]);
        }
    }

    /// An agent was paused (with its reason) or unpaused over the API.
    pub(super) fn q_agent_paused(&mut self, agent: &str, paused: Option<&str>, now: Now) {
        match paused {
            Some(reason) => self.qlog(now, NONE, NONE, agent, "PAUSE", vec![reason.to_owned()]),
            None => self.qlog(now, NONE, NONE, agent, "UNPAUSE", vec![]),
        }
    }
}
