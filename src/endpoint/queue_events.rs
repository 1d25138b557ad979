//! Queue outcomes as they happen: counted per queue, per agent (answered,
//! talk time) and per IVR `schedule` node (closed branches taken) for
//! `/metrics`, through this shard's counter handles, and,
//! when the daemon enables it (`server.queue_log`), turned into Asterisk
//! `queue_log` lines that [`Endpoint::poll_queue_log`] hands out. Nothing
//! here touches a file.
//!
//! The hooks in the other endpoint files are one line each: a caller
//! enters a queue (`enter_queue`), is offered (`offer`), rings out
//! (`agent_ring_timeout`), is answered (`agent_answered`), is sent on
//! (`apply_acd`), leaves or ends (`acd_caller_gone`); agents log in and
//! out (`agent_reachable`) and pause (`set_agent_state`); a call's IVR
//! took a closed branch (`run_ivr_actions`).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
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
    /// The line as Asterisk writes it, without the newline. `|` and
    /// control characters in fields (a Call-ID, a pause reason) become
    /// spaces, so no field can forge another field or line.
    pub fn format(&self) -> String {
        let epoch = self
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| if c == '|' || c.is_control() { ' ' } else { c })
                .collect()
        };
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
    /// On the shared `WaitingBoard` (queue_log on, not answered yet).
    on_board: bool,
}

/// The callers waiting in each queue on every shard, by arrival, so that
/// queue_log positions count them all, not only the callers of the shard
/// that writes the line. Shared by the shards behind one mutex, taken only
/// while queue_log is on, when a caller enters, is answered or leaves.
#[derive(Debug, Default)]
pub(crate) struct WaitingBoard {
    queues: HashMap<String, BTreeSet<(Instant, CallKey)>>,
}

impl WaitingBoard {
    /// Callers waiting in `queue` now.
    fn len(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, BTreeSet::len)
    }

    fn join(&mut self, queue: &str, entered: Instant, ck: &CallKey) {
        self.queues
            .entry(queue.to_owned())
            .or_default()
            .insert((entered, ck.clone()));
    }

    /// Takes `ck` off and returns its place (1 = next served, by arrival).
    fn leave(&mut self, queue: &str, entered: Instant, ck: &CallKey) -> usize {
        let Some(set) = self.queues.get_mut(queue) else {
            return 1;
        };
        let me = (entered, ck.clone());
        let ahead = set.range(..&me).count();
        set.remove(&me);
        if set.is_empty() {
            self.queues.remove(queue);
        }
        ahead + 1
    }
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
        self.counters = Default::default();
        // The registrar is shared by the shards: each sets the same handles.
        super::shard::lock(&self.shared.registrar).set_counters(m.auth.clone());
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

    /// Takes `stay` off the shared board if it is there; its place in its
    /// queue then (1 = next served).
    fn leave_board(&self, ck: &CallKey, stay: &mut Stay) -> usize {
        if !stay.on_board {
            return 1;
        }
        stay.on_board = false;
        super::shard::lock(&self.shared.waiting).leave(&stay.queue, stay.entered, ck)
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
        self.counters.queue(&self.metrics, queue).offered.inc();
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
        // A stay this call still had (none expected: leaving a queue ends
        // it) leaves the board before the new one counts who is there.
        if let Some(mut old) = self.qlog.stays.remove(ck) {
            self.leave_board(ck, &mut old);
        }
        // The caller's number costs a look at its INVITE and the position
        // a shared lock: log only.
        let (caller, origpos) = if self.qlog.enabled {
            let caller = self
                .invites
                .get(ck)
                .map(|(_, inv)| super::agents::caller_number(inv));
            let mut board = super::shard::lock(&self.shared.waiting);
            let origpos = board.len(queue) + 1;
            board.join(queue, now.mono, ck);
            (caller.unwrap_or_default(), origpos)
        } else {
            (String::new(), 0)
        };
        let stay = Stay {
            queue: queue.to_owned(),
            entered: now.mono,
            origpos,
            offered: None,
            answered: None,
            on_board: self.qlog.enabled,
        };
        self.qlog.stays.insert(ck.clone(), stay);
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
        let counters = self.counters.queue(&self.metrics, queue);
        match reason {
            DivertReason::Closed => counters.closed.inc(),
            _ => counters.overflowed.inc(),
        };
        if reason == DivertReason::Closed {
            self.record_closed_branch(ck, format!("queue:{queue}"));
        }
        let Some(mut stay) = self.qlog.stays.remove(ck) else {
            return; // refused on arrival: already logged
        };
        let pos = self.leave_board(ck, &mut stay);
        if !self.qlog.enabled {
            return;
        }
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
        let Some(mut s) = self.qlog.stays.remove(ck) else {
            return;
        };
        self.leave_board(ck, &mut s);
        let waited = now.mono.saturating_duration_since(s.entered);
        let sl_s = self.cfg.queues.get(&s.queue).map(|q| q.service_level_s);
        let counters = self.counters.queue(&self.metrics, &s.queue);
        counters.answered.inc();
        if sl_s.is_some_and(|sl| waited.as_secs_f64() <= sl as f64) {
            counters.answered_in_sl.inc();
        }
        self.counters.agent(&self.metrics, agent).answered.inc();
        let hold = secs(waited);
        let ring = s.offered.as_ref().map_or(0, |(_, at)| {
            now.mono.saturating_duration_since(*at).as_secs()
        });
        s.answered = Some((agent.to_owned(), now.mono));
        let queue = s.queue.clone();
        self.qlog.stays.insert(ck.clone(), s);
        let data = vec![hold, agent_call_id.to_owned(), ring.to_string()];
        self.qlog(now, &ck.0, &queue, agent, "CONNECT", data);
    }

    /// Call `ck` leaves its queue for good: the end of an answered call,
    /// or the caller giving up.
    pub(super) fn q_caller_gone(&mut self, ck: &CallKey, now: Now) {
        let Some(mut stay) = self.qlog.stays.remove(ck) else {
            return;
        };
        let pos = self.leave_board(ck, &mut stay);
        match &stay.answered {
            Some((agent, at)) => {
                let by_agent = self.calls.get(ck).is_some_and(|c| c.hangup_by_agent);
                let event = if by_agent {
                    "COMPLETEAGENT"
                } else {
                    "COMPLETECALLER"
                };
                let hold = secs(at.saturating_duration_since(stay.entered));
                let talked = now.mono.saturating_duration_since(*at);
                let agent_counters = self.counters.agent(&self.metrics, agent);
                agent_counters.talk_seconds.inc_by(talked.as_secs_f64());
                let talk = secs(talked);
                let data = vec![hold, talk, stay.origpos.to_string()];
                self.qlog(now, &ck.0, &stay.queue, agent, event, data);
            }
            None => {
                let counters = self.counters.queue(&self.metrics, &stay.queue);
                counters.abandoned.inc();
                if !self.qlog.enabled {
                    return;
                }
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

impl Endpoint {
    /// Counts (and notes in the call's record) the `closed` branches of
    /// IVR `schedule` nodes that call `ck` took since the last look.
    pub(super) fn count_ivr_closed(&mut self, ck: &CallKey) {
        let Some(run) = self.calls.get_mut(ck).and_then(|c| c.ivr.as_mut()) else {
            return;
        };
        for (ivr, node) in run.take_closed_branches() {
            self.counters.ivr_closed(&self.metrics, &ivr, &node).inc();
            self.record_closed_branch(ck, format!("ivr:{ivr}.{node}"));
        }
    }
}
