//! The endpoint's side of the ACD router: callers enter queues, agents
//! register, answer, refuse, hang up; the router answers with offers (send
//! the agent an INVITE), diversions (closed, overflow) and timers to arm.
//! Ring-no-answer is timed by the agent leg itself (it must CANCEL), so the
//! router's own ring timers are not armed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use super::{CallHandle, Endpoint, Now};
use crate::acd::{AcdConfig, CallId, Output, Router, Timer};
use crate::config::{Config, Target};

/// How often agents' shifts are re-evaluated (a shift that starts makes its
/// agent available by itself).
pub const SHIFT_CHECK: Duration = Duration::from_secs(30);

/// Timers the router asked for, earliest first.
#[derive(Debug, Default)]
pub struct AcdTimers {
    table: BTreeMap<(Instant, u64), Timer>,
    seq: u64,
}

impl AcdTimers {
    fn arm(&mut self, at: Instant, timer: Timer) {
        self.seq += 1;
        self.table.insert((at, self.seq), timer);
    }

    pub fn next(&self) -> Option<Instant> {
        self.table.keys().next().map(|(at, _)| *at)
    }

    fn due(&mut self, now: Instant) -> Vec<Timer> {
        let later = self.table.split_off(&(now, u64::MAX));
        std::mem::replace(&mut self.table, later)
            .into_values()
            .collect()
    }
}

pub(super) fn new_router(cfg: &Config, now: Instant) -> Router {
    Router::new(&AcdConfig::from(cfg), now, rand::random())
}

pub(super) fn wall(now: Now) -> DateTime<Utc> {
    now.wall.into()
}

impl Endpoint {
    /// The caller of `ck` waits in `queue` from now on.
    pub(super) fn enter_queue(&mut self, ck: CallHandle, queue: &str, priority: i32, now: Now) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        call.target = Target::Queue(queue.to_owned());
        call.queues_seen.push(queue.to_owned());
        call.priority = priority;
        call.queued_at = Some(now.mono);
        let caller = call.caller.clone();
        let shard = self.shard;
        let id = *call.acd.get_or_insert_with(|| {
            self.next_acd += 1;
            CallId(shard.make_id(self.next_acd))
        });
        self.acd_calls.insert(id, ck);
        info!(call = %self.calls.call_id(ck), %queue, priority, "caller entered queue");
        self.play_music(ck);
        self.schedule_announcement(ck, now);
        let arrived = self.timed(|r| {
            r.caller_arrives_from(id, queue, priority, Some(&caller), now.mono, wall(now))
        });
        let refused = arrived.as_ref().ok().and_then(|out| {
            out.iter().find_map(|o| match o {
                Output::Divert { call, reason, .. } if *call == id => Some(*reason),
                _ => None,
            })
        });
        self.emit_queued(ck, queue, refused, now);
        if refused.is_none() && arrived.is_ok() {
            self.arm_callback_offer(ck, now);
        }
        match arrived {
            Ok(out) => self.apply_acd(out, now),
            Err(e) => {
                warn!(call = %self.calls.call_id(ck), error = %e, "queue refused the caller");
                self.hang_up(ck, now);
            }
        }
    }

    /// Carries out what the router decided. Carrying out one output can
    /// make the router decide more (an offer to an agent whose contact is
    /// gone logs it out and re-offers to the next, and so on through every
    /// such agent): those outputs join the queue of the outermost call
    /// instead of recursing, so the stack stays flat however long the chain.
    pub(super) fn apply_acd(&mut self, outputs: Vec<Output>, now: Now) {
        for o in &outputs {
            match o {
                Output::Offer(offer) => self.touch_agent_id(offer.agent),
                Output::Arm {
                    timer: Timer::RingTimeout { agent, .. } | Timer::WrapupEnd { agent, .. },
                    ..
                } => self.touch_agent_id(*agent),
                _ => {}
            }
        }
        self.acd_pending.extend(outputs);
        if self.acd_applying {
            return;
        }
        self.acd_applying = true;
        while let Some(out) = self.acd_pending.pop_front() {
            self.apply_one(out, now);
        }
        self.acd_applying = false;
    }

    fn apply_one(&mut self, out: Output, now: Now) {
        let owner = self.shard.owner_of(super::shard::output_call(&out).0);
        if owner != self.shard.index {
            self.tally.handovers += 1;
            self.foreign.push_back((owner, out));
            return;
        }
        match out {
            Output::Offer(o) => {
                let Some(ck) = self.acd_calls.get(&o.call).cloned() else {
                    self.offer_callback(o.call, o.agent, &o.agent_name, o.waited, now);
                    return;
                };
                self.offer(ck, o.agent, &o.agent_name, o.waited, now);
            }
            Output::Divert {
                call,
                queue,
                reason,
                target,
            } => {
                let Some(ck) = self.acd_calls.remove(&call) else {
                    self.callback_diverted(call);
                    return;
                };
                if self.is_placed_call(ck) {
                    // A callback's call whose queue went: it ends (the
                    // try not counted), the callback is held.
                    if let Some(c) = self.calls.get_mut(ck) {
                        c.acd = None;
                    }
                    self.hang_up(ck, now);
                    self.callback_diverted(call);
                    return;
                }
                info!(call = %self.calls.call_id(ck), %queue, ?reason, target = ?target, "caller leaves the queue");
                self.emit_diverted(ck, &queue, reason, target.as_ref(), now);
                if let Some(c) = self.calls.get_mut(ck) {
                    c.acd = None;
                    c.diverted = Some(reason);
                }
                self.divert(ck, target, now);
            }
            Output::Arm { at, timer } => {
                if !matches!(timer, Timer::RingTimeout { .. }) {
                    self.acd_timers.arm(at, timer);
                }
            }
        }
    }

    fn divert(&mut self, ck: CallHandle, target: Option<Target>, now: Now) {
        match target {
            Some(Target::Queue(q)) => {
                let prio = self.calls.get(ck).map_or(0, |c| c.priority);
                self.enter_queue(ck, &q, prio, now);
            }
            Some(t @ Target::Ivr { .. }) => self.resume_ivr(ck, t, now),
            Some(Target::Hangup) | None => self.hang_up(ck, now),
        }
    }

    /// Router timers that are due.
    pub(super) fn acd_timeouts(&mut self, now: Now) {
        for timer in self.acd_timers.due(now.mono) {
            if let Timer::RingTimeout { agent, .. } | Timer::WrapupEnd { agent, .. } = &timer {
                self.touch_agent_id(*agent);
            }
            let out = self.timed(|r| r.timer(&timer, now.mono));
            self.apply_acd(out, now);
        }
        if now.mono >= self.shift_check_at {
            self.shift_check_at = now.mono + SHIFT_CHECK;
            // Agents are shared: the primary re-reads their shifts.
            if self.shard.is_primary() {
                self.touch_all_agents();
                let out = self.timed(|r| r.refresh_shifts(now.mono, wall(now)));
                self.apply_acd(out, now);
            }
        }
    }

    /// An agent's phone is reachable (registered, or its static contact
    /// answers pings) or no longer is.
    pub(super) fn agent_reachable(&mut self, agent: &str, reachable: bool, now: Now) {
        self.touch_agent(agent);
        let out = if reachable {
            self.timed(|r| r.agent_registered(agent, now.mono, wall(now)))
        } else {
            self.timed(|r| r.agent_unregistered(agent, now.mono))
        };
        if out.is_ok() {
            self.emit_reachable(agent, reachable, now);
        }
        match out {
            Ok(out) => self.apply_acd(out, now),
            Err(e) => debug!(%agent, error = %e, "not an agent"),
        }
    }

    /// Tells the router about every agent reachable at start: restored
    /// registrations and static contacts (until a ping says otherwise).
    pub(super) fn announce_agents(&mut self, now: Now) {
        let reachable: Vec<String> = self
            .cfg
            .agents
            .values()
            .filter(|a| a.contact.is_some() || self.has_usable_binding(&a.id, now))
            .map(|a| a.id.clone())
            .collect();
        for id in reachable {
            self.agent_reachable(&id, true, now);
        }
    }

    /// Forgets the router's side of a call that is ending.
    pub(super) fn acd_caller_gone(&mut self, ck: CallHandle, now: Now) {
        let Some(id) = self.calls.get_mut(ck).and_then(|c| c.acd.take()) else {
            return;
        };
        self.acd_calls.remove(&id);
        // Its agent (if the router had it ringing or talking, even with an
        // offer still on its way from another shard) is freed by no output
        // that names it: marked here, so no sweep over every agent is needed.
        if let Some(agent) = self.router.agent_of_call(id) {
            self.touch_agent_id(agent);
        }
        let out = self.router.caller_hangup(id, now.mono);
        self.apply_acd(out, now);
    }

    /// Runs one router decision and observes how long it took. The clock
    /// is read for the histogram only: what the router decides never
    /// depends on it.
    pub(super) fn timed<T>(&mut self, decide: impl FnOnce(&Router) -> T) -> T {
        let t = Instant::now();
        let out = decide(&self.router);
        self.tally.decisions.push(t.elapsed().as_secs_f64());
        out
    }

    /// Result of an agent event the router may reject as stale (logged).
    pub(super) fn acd_result(&mut self, r: Result<Vec<Output>, crate::acd::AcdError>, now: Now) {
        match r {
            Ok(out) => self.apply_acd(out, now),
            Err(e) => debug!(error = %e, "router ignored a stale agent event"),
        }
    }
}
