//! The reference model: the router's rules written as the simplest possible
//! sequential code (scan every agent, scan every caller). The property test
//! checks the router against it and the benchmark uses it as the baseline.
//! Not for production: each decision costs O(agents + callers).

use super::ids::{AgentId, QueueId};
use super::lane::Refusals;
use super::pool::{key as entry, KeyInput};
use super::topology::{eligible, required_skills, skill_score, AcdConfig};
use super::{AcdError, AdminState, CallId, DivertReason, Offer, Output, Timer, RONA};
use crate::config::{Agent, Queue, Schedule, Strategy};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    LoggedOut,
    OffShift,
    Paused,
    Available,
    Ringing,
    OnCall,
    Wrapup,
}

#[derive(Debug, Clone)]
struct MAgent {
    id: Arc<str>,
    cfg: Agent,
    st: St,
    epoch: u32,
    registered: bool,
    on_shift: bool,
    paused: Option<String>,
    /// The call, its queue, and the ring deadline or the wrap-up's end.
    busy: Option<(CallId, usize, Instant)>,
    calls_taken: u64,
    last_call_end: Option<Instant>,
}

impl MAgent {
    fn resting(&self) -> St {
        if !self.registered {
            St::LoggedOut
        } else if !self.on_shift {
            St::OffShift
        } else if self.paused.is_some() {
            St::Paused
        } else {
            St::Available
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct MCaller {
    call: CallId,
    queue: usize,
    priority: i32,
    arrival: Instant,
    seq: u64,
    level: usize,
    refused: Refusals,
}

/// Sequential full-scan implementation of the router's rules.
#[derive(Debug)]
pub struct Model {
    agents: Vec<MAgent>,
    queues: Vec<(Arc<str>, Queue)>,
    schedules: BTreeMap<String, Schedule>,
    waiting: Vec<MCaller>,
    /// call -> (agent, caller, answered)
    offered: HashMap<CallId, (usize, MCaller, bool)>,
    cursors: HashMap<(u8, BTreeMap<String, u8>), u32>,
    seq: u64,
    base: Instant,
    seed: u64,
}

/// A configured duration. The configuration bounds them to a day; the
/// cap here keeps `Instant + secs(..)` from overflowing (a panic) should a
/// `Config` be built some other way.
fn secs(s: u64) -> Duration {
    Duration::from_secs(s.min(366 * 86_400))
}

impl Model {
    pub fn new(cfg: &AcdConfig, base: Instant, seed: u64) -> Model {
        Model {
            agents: cfg
                .agents
                .values()
                .map(|a| MAgent {
                    id: Arc::from(a.id.as_str()),
                    cfg: a.clone(),
                    st: St::LoggedOut,
                    epoch: 0,
                    registered: false,
                    on_shift: false,
                    paused: None,
                    busy: None,
                    calls_taken: 0,
                    last_call_end: None,
                })
                .collect(),
            queues: cfg
                .queues
                .values()
                .map(|q| (Arc::from(q.name.as_str()), q.clone()))
                .collect(),
            schedules: cfg.schedules.clone(),
            waiting: Vec::new(),
            offered: HashMap::new(),
            cursors: HashMap::new(),
            seq: 0,
            base,
            seed,
        }
    }

    fn agent_idx(&self, id: &str) -> Result<usize, AcdError> {
        self.agents
            .iter()
            .position(|a| &*a.id == id)
            .ok_or_else(|| AcdError::UnknownAgent(id.to_string()))
    }

    fn arm(&self, c: &MCaller, out: &mut Vec<Output>) {
        let Some((_, q)) = self.queues.get(c.queue) else {
            return;
        };
        if let Some(r) = q.relax.get(c.level) {
            out.push(Output::Arm {
                at: c.arrival + secs(r.after_s),
                timer: Timer::Relax {
                    call: c.call,
                    level: c.level + 1,
                },
            });
        }
        if c.level == 0 && q.max_wait_s > 0 {
            out.push(Output::Arm {
                at: c.arrival + secs(q.max_wait_s),
                timer: Timer::MaxWait { call: c.call },
            });
        }
    }

    pub fn caller_arrives(
        &mut self,
        call: CallId,
        queue: &str,
        priority: i32,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Vec<Output>, AcdError> {
        let qi = self
            .queues
            .iter()
            .position(|(n, _)| &**n == queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.to_string()))?;
        let (name, q) = self.queues[qi].clone();
        let open = q
            .schedule
            .as_ref()
            .and_then(|s| self.schedules.get(s))
            .is_none_or(|s| s.is_open(wall));
        if !open {
            return Ok(vec![Output::Divert {
                call,
                queue: name,
                reason: DivertReason::Closed,
                target: q.closed.clone(),
            }]);
        }
        let n = self.waiting.iter().filter(|c| c.queue == qi).count();
        if q.max_waiting > 0 && n >= q.max_waiting {
            return Ok(vec![Output::Divert {
                call,
                queue: name,
                reason: DivertReason::MaxWaiting,
                target: q.overflow.clone(),
            }]);
        }
        let c = MCaller {
            call,
            queue: qi,
            priority,
            arrival: now,
            seq: self.seq,
            level: 0,
            refused: Refusals::default(),
        };
        self.seq += 1;
        if self.waiting.iter().any(|w| w.call == call) || self.offered.contains_key(&call) {
            return Err(AcdError::DuplicateCall(call));
        }
        self.waiting.push(c);
        let mut out = Vec::new();
        self.arm(&c, &mut out);
        self.route_lane(qi, 0, now, &mut out);
        Ok(out)
    }

    fn req(&self, queue: usize, level: usize) -> Option<(Strategy, BTreeMap<String, u8>)> {
        let (_, q) = self.queues.get(queue)?;
        Some((q.strategy, required_skills(q, level)))
    }

    fn route_lane(&mut self, qi: usize, level: usize, now: Instant, out: &mut Vec<Output>) {
        let Some((strategy, req)) = self.req(qi, level) else {
            return;
        };
        // Agents with no caller to take (refused them lately), this round.
        let mut passed = Vec::new();
        while self
            .waiting
            .iter()
            .any(|c| c.queue == qi && c.level == level)
        {
            let cursor = self.cursors.get(&(strategy as u8, req.clone())).copied();
            let best = self
                .agents
                .iter()
                .enumerate()
                .filter(|(i, a)| {
                    a.st == St::Available && eligible(&a.cfg, &req) && !passed.contains(i)
                })
                .map(|(i, a)| {
                    let e = entry(
                        strategy,
                        self.base,
                        self.seed,
                        KeyInput {
                            idx: i as u32,
                            epoch: a.epoch,
                            score: skill_score(&a.cfg, &req),
                            calls_taken: a.calls_taken,
                            last_call_end: a.last_call_end,
                        },
                    );
                    // Round robin: agents after the cursor come first.
                    let wrap = matches!(cursor, Some(c) if strategy == Strategy::RoundRobin && i as u32 <= c);
                    ((wrap, e), i)
                })
                .min();
            let Some((_, ai)) = best else {
                return;
            };
            if !self.take_best(ai, now, out) {
                passed.push(ai);
            }
        }
    }

    fn take_best(&mut self, ai: usize, now: Instant, out: &mut Vec<Output>) -> bool {
        let Some(agent) = self.agents.get(ai) else {
            return false;
        };
        let best = self
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.refused.blocks(AgentId::from_index(ai as u32), now))
            .filter_map(|(i, c)| {
                let (_, q) = self.queues.get(c.queue)?;
                let req = required_skills(q, c.level);
                eligible(&agent.cfg, &req).then(|| {
                    let rank = (
                        Reverse(i64::from(q.priority) + i64::from(c.priority)),
                        c.arrival,
                        c.seq,
                    );
                    (rank, i)
                })
            })
            .min();
        let Some((_, wi)) = best else {
            return false;
        };
        let c = self.waiting.remove(wi);
        let Some((strategy, req)) = self.req(c.queue, c.level) else {
            return false;
        };
        if strategy == Strategy::RoundRobin {
            self.cursors.insert((strategy as u8, req), ai as u32);
        }
        let until = now + secs(self.queues[c.queue].1.ring_timeout_s);
        let a = &mut self.agents[ai];
        a.busy = Some((c.call, c.queue, until));
        a.st = St::Ringing;
        self.offered.insert(c.call, (ai, c, false));
        let id = AgentId::from_index(ai as u32);
        out.push(Output::Offer(Offer {
            agent: id,
            agent_name: a.id.clone(),
            call: c.call,
            queue: QueueId::from_index(c.queue as u32),
            waited: now.saturating_duration_since(c.arrival),
        }));
        out.push(Output::Arm {
            at: until,
            timer: Timer::RingTimeout {
                agent: id,
                call: c.call,
            },
        });
        true
    }

    fn free(&mut self, ai: usize, now: Instant, out: &mut Vec<Output>) {
        let rest = self.agents[ai].resting();
        if rest != St::Available {
            self.agents[ai].st = rest;
            return;
        }
        self.agents[ai].epoch = self.agents[ai].epoch.wrapping_add(1);
        if !self.take_best(ai, now, out) {
            self.agents[ai].st = St::Available;
        }
    }

    fn settle(&mut self, ai: usize, now: Instant, out: &mut Vec<Output>) {
        let rest = self.agents[ai].resting();
        match self.agents[ai].st {
            St::Available => self.agents[ai].st = rest,
            St::LoggedOut | St::OffShift | St::Paused => {
                if rest == St::Available {
                    self.free(ai, now, out);
                } else {
                    self.agents[ai].st = rest;
                }
            }
            _ => {}
        }
    }

    pub fn agent_registered(
        &mut self,
        agent: &str,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Vec<Output>, AcdError> {
        let ai = self.agent_idx(agent)?;
        self.agents[ai].registered = true;
        self.agents[ai].on_shift = self.agents[ai].cfg.on_shift(wall);
        let mut out = Vec::new();
        self.settle(ai, now, &mut out);
        Ok(out)
    }

    pub fn agent_unregistered(
        &mut self,
        agent: &str,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let ai = self.agent_idx(agent)?;
        self.agents[ai].registered = false;
        let mut out = Vec::new();
        self.settle(ai, now, &mut out);
        Ok(out)
    }

    pub fn set_state(
        &mut self,
        agent: &str,
        state: AdminState,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let ai = self.agent_idx(agent)?;
        self.agents[ai].paused = match state {
            AdminState::Available => None,
            AdminState::Paused(r) => Some(r),
        };
        let mut out = Vec::new();
        self.settle(ai, now, &mut out);
        Ok(out)
    }

    pub fn refresh_shifts(&mut self, now: Instant, wall: DateTime<Utc>) -> Vec<Output> {
        let mut out = Vec::new();
        for ai in 0..self.agents.len() {
            let on = self.agents[ai].cfg.on_shift(wall);
            if on != self.agents[ai].on_shift {
                self.agents[ai].on_shift = on;
                self.settle(ai, now, &mut out);
            }
        }
        out
    }

    fn busy_with(&self, agent: &str, call: CallId, st: St) -> Result<usize, AcdError> {
        let ai = self.agent_idx(agent)?;
        let a = &self.agents[ai];
        if a.st == st && a.busy.is_some_and(|(c, _, _)| c == call) {
            Ok(ai)
        } else {
            Err(AcdError::WrongState {
                agent: agent.to_string(),
                call,
                expected: if st == St::Ringing {
                    "ringing"
                } else {
                    "on a call"
                },
            })
        }
    }

    pub fn answered(&mut self, agent: &str, call: CallId, _now: Instant) -> Result<(), AcdError> {
        let ai = self.busy_with(agent, call, St::Ringing)?;
        if let Some(o) = self.offered.get_mut(&call) {
            o.2 = true;
        }
        self.agents[ai].calls_taken += 1;
        self.agents[ai].st = St::OnCall;
        Ok(())
    }

    fn end_call(&mut self, ai: usize, call: CallId, now: Instant, out: &mut Vec<Output>) {
        self.offered.remove(&call);
        self.agents[ai].last_call_end = Some(now);
        let wrapup = self.agents[ai]
            .busy
            .and_then(|(_, q, _)| self.queues.get(q))
            .map_or(0, |(_, q)| q.wrapup_s);
        if wrapup > 0 {
            let until = now + secs(wrapup);
            let a = &mut self.agents[ai];
            a.st = St::Wrapup;
            if let Some(b) = a.busy.as_mut() {
                b.2 = until;
            }
            out.push(Output::Arm {
                at: until,
                timer: Timer::WrapupEnd {
                    agent: AgentId::from_index(ai as u32),
                    call,
                },
            });
        } else {
            self.agents[ai].busy = None;
            self.free(ai, now, out);
        }
    }

    pub fn call_ended(
        &mut self,
        agent: &str,
        call: CallId,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let ai = self.busy_with(agent, call, St::OnCall)?;
        let mut out = Vec::new();
        self.end_call(ai, call, now, &mut out);
        Ok(out)
    }

    fn requeue(&mut self, call: CallId, refused: bool, now: Instant, out: &mut Vec<Output>) {
        if let Some((ai, mut c, _)) = self.offered.remove(&call) {
            if refused {
                let until = now + secs(self.queues[c.queue].1.retry_s);
                c.refused.add(AgentId::from_index(ai as u32), until);
                out.push(Output::Arm {
                    at: until,
                    timer: Timer::RetryRefused { call },
                });
            }
            self.waiting.push(c);
            self.route_lane(c.queue, c.level, now, out);
        }
    }

    pub fn rejected(
        &mut self,
        agent: &str,
        call: CallId,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let ai = self.busy_with(agent, call, St::Ringing)?;
        self.agents[ai].busy = None;
        let mut out = Vec::new();
        self.requeue(call, true, now, &mut out);
        self.free(ai, now, &mut out);
        Ok(out)
    }

    pub fn ring_no_answer(
        &mut self,
        agent: &str,
        call: CallId,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let ai = self.busy_with(agent, call, St::Ringing)?;
        let a = &mut self.agents[ai];
        a.busy = None;
        a.paused = Some(RONA.to_string());
        a.st = a.resting();
        let mut out = Vec::new();
        self.requeue(call, false, now, &mut out);
        Ok(out)
    }

    pub fn caller_hangup(&mut self, call: CallId, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(i) = self.waiting.iter().position(|c| c.call == call) {
            self.waiting.remove(i);
            return out;
        }
        if let Some(&(ai, _, answered)) = self.offered.get(&call) {
            if answered {
                self.end_call(ai, call, now, &mut out);
            } else {
                self.offered.remove(&call);
                self.agents[ai].busy = None;
                self.free(ai, now, &mut out);
            }
        }
        out
    }

    pub fn timer(&mut self, timer: &Timer, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match timer {
            Timer::RingTimeout { agent, call } => {
                let Some(name) = self.due_agent(*agent, *call, now) else {
                    return out;
                };
                return self.ring_no_answer(&name, *call, now).unwrap_or_default();
            }
            Timer::WrapupEnd { agent, call } => {
                let Some(name) = self.due_agent(*agent, *call, now) else {
                    return out;
                };
                if let Ok(ai) = self.busy_with(&name, *call, St::Wrapup) {
                    self.agents[ai].busy = None;
                    self.free(ai, now, &mut out);
                }
            }
            Timer::Relax { call, level } => {
                let Some(i) = self.waiting.iter().position(|c| c.call == *call) else {
                    return out;
                };
                let c = self.waiting[i];
                let due = self.queues[c.queue]
                    .1
                    .relax
                    .get(level.wrapping_sub(1))
                    .is_some_and(|r| now >= c.arrival + secs(r.after_s));
                if c.level + 1 == *level && due {
                    self.waiting[i].level = *level;
                    let moved = self.waiting[i];
                    self.arm(&moved, &mut out);
                    self.route_lane(c.queue, *level, now, &mut out);
                }
            }
            Timer::MaxWait { call } => {
                let Some(i) = self.waiting.iter().position(|c| c.call == *call) else {
                    return out;
                };
                let c = self.waiting[i];
                let (name, q) = &self.queues[c.queue];
                if q.max_wait_s > 0 && now >= c.arrival + secs(q.max_wait_s) {
                    out.push(Output::Divert {
                        call: *call,
                        queue: name.clone(),
                        reason: DivertReason::MaxWait,
                        target: q.overflow.clone(),
                    });
                    self.waiting.remove(i);
                }
            }
            Timer::RetryRefused { call } => {
                if let Some(c) = self.waiting.iter().find(|c| c.call == *call).copied() {
                    self.route_lane(c.queue, c.level, now, &mut out);
                }
            }
        }
        out
    }

    /// The agent an agent timer names, if it is busy with `call` and the
    /// deadline of that stay has come.
    fn due_agent(&self, agent: AgentId, call: CallId, now: Instant) -> Option<Arc<str>> {
        let a = self.agents.get(agent.index())?;
        a.busy
            .is_some_and(|(c, _, until)| c == call && now >= until)
            .then(|| a.id.clone())
    }

    /// Waiting calls, sorted.
    pub fn waiting_calls(&self) -> Vec<CallId> {
        let mut v: Vec<CallId> = self.waiting.iter().map(|c| c.call).collect();
        v.sort();
        v
    }

    /// (agent id, public state name, calls taken), in id order.
    pub fn agent_states(&self) -> Vec<(Arc<str>, &'static str, u64)> {
        self.agents
            .iter()
            .map(|a| {
                let s = match a.st {
                    St::LoggedOut => "logged_out",
                    St::OffShift => "off_shift",
                    St::Paused => "paused",
                    St::Available => "available",
                    St::Ringing => "ringing",
                    St::OnCall => "on_call",
                    St::Wrapup => "wrapup",
                };
                (a.id.clone(), s, a.calls_taken)
            })
            .collect()
    }
}
