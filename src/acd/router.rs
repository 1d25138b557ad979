//! The router: events in, offers/diverts/timers out. See the module docs of
//! `acd` for why it is correct without a global lock.

use super::agent::{Busy, Meta, Slot, Tag, Word};
use super::ids::{AgentId, AgentRef, QueueId, Renumbering};
use super::lane::Caller;
use super::pool::{key, KeyInput, Pool};
use super::topology::{AcdConfig, Topology};
use super::{
    AcdError, AdminState, AgentState, AgentStatus, CallId, DivertReason, Offer, OfferExplain,
    Output, QueueStatus, Timer, RONA,
};
use crate::config::Strategy;
use chrono::{DateTime, Utc};
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod direct;

/// Where a call is, as far as the router knows.
#[derive(Debug, Clone)]
enum Loc {
    Waiting(Caller),
    Offered {
        agent: AgentId,
        caller: Caller,
    },
    Connected {
        agent: AgentId,
        caller: Caller,
    },
    /// Hung up while a router thread was taking it; that thread drops it.
    HungUp,
}

/// Result of letting a claimed agent take a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Rings with a caller now.
    Matched,
    /// Should not take calls (paused, logged out, ...); settled there.
    Settled,
    /// No caller it is eligible for; the agent is still claimed by us.
    NoCaller,
}

/// The ACD router. All event methods take `&self` and may run concurrently.
#[derive(Debug)]
pub struct Router {
    topo: Topology,
    calls: DashMap<CallId, Loc>,
    seq: AtomicU64,
    base: Instant,
    seed: u64,
    /// Places left by callers who hung up, for queues with `rejoin_s`.
    rejoin: std::sync::Mutex<super::rejoin::RejoinBook>,
    /// Set once a caller entered the book: until then no call's end takes
    /// its mutex.
    rejoin_used: std::sync::atomic::AtomicBool,
    /// What the last reload did to the ids.
    renumbering: Renumbering,
}

/// A configured duration. The configuration bounds them to a day; the
/// cap here keeps `Instant + secs(..)` from overflowing (a panic) should a
/// `Config` be built some other way.
fn secs(s: u64) -> Duration {
    Duration::from_secs(s.min(366 * 86_400))
}

impl Router {
    /// `base` anchors the idle-time keys (any instant not after the events);
    /// `seed` drives the `random` strategy.
    pub fn new(cfg: &AcdConfig, base: Instant, seed: u64) -> Router {
        Router {
            topo: Topology::build(cfg, |_| None),
            calls: DashMap::new(),
            seq: AtomicU64::new(0),
            base,
            seed,
            rejoin: Default::default(),
            rejoin_used: Default::default(),
            renumbering: Renumbering::default(),
        }
    }

    fn rejoin_book(&self) -> std::sync::MutexGuard<'_, super::rejoin::RejoinBook> {
        self.rejoin.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The agents' and queues' ids of the configuration in force.
    pub fn names(&self) -> &super::Names {
        &self.topo.names
    }

    /// What the last reload did to those ids, for structures that keep
    /// their own entries by id (see [`Renumbering`]).
    pub fn renumbering(&self) -> &Renumbering {
        &self.renumbering
    }

    fn slot(&self, id: &str) -> Result<&Slot, AcdError> {
        self.topo
            .agent(id)
            .ok_or_else(|| AcdError::UnknownAgent(id.to_string()))
    }

    /// The agent an event names: by its id when the id still names it
    /// (no lookup), else by name.
    fn slot_of(&self, agent: AgentRef<'_>) -> Result<&Slot, AcdError> {
        if let AgentRef::Id(id, name) = agent {
            if let Some(s) = self.topo.slot(id).filter(|s| &*s.id == name) {
                return Ok(s);
            }
        }
        self.slot(agent.name())
    }

    // ---- callers -------------------------------------------------------

    /// A caller enters `queue` with the IVR's extra `priority`. Returns the
    /// divert when the queue is closed or full, else arms its timers and
    /// offers it (or other callers) to agents that are free.
    pub fn caller_arrives(
        &self,
        call: CallId,
        queue: &str,
        priority: i32,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Vec<Output>, AcdError> {
        self.caller_arrives_from(call, queue, priority, None, now, wall)
    }

    /// As [`Router::caller_arrives`], for a caller whose number is known:
    /// in a queue with `rejoin_s`, a number that hung up while waiting
    /// there within `rejoin_s` takes its old place back (see
    /// `acd::rejoin`).
    pub fn caller_arrives_from(
        &self,
        call: CallId,
        queue: &str,
        priority: i32,
        number: Option<&str>,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Vec<Output>, AcdError> {
        let (qi, q) = self
            .topo
            .queue(queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.to_string()))?;
        let mut out = Vec::new();
        let open = q
            .cfg
            .schedule
            .as_ref()
            .and_then(|s| self.topo.schedules.get(s))
            .is_none_or(|s| s.is_open(wall));
        if !open {
            out.push(Output::Divert {
                call,
                queue: q.name.clone(),
                reason: DivertReason::Closed,
                target: q.cfg.closed.clone(),
            });
            return Ok(out);
        }
        let before = q.waiting.fetch_add(1, SeqCst);
        if q.cfg.max_waiting > 0 && before >= q.cfg.max_waiting {
            q.waiting.fetch_sub(1, SeqCst);
            out.push(Output::Divert {
                call,
                queue: q.name.clone(),
                reason: DivertReason::MaxWaiting,
                target: q.cfg.overflow.clone(),
            });
            return Ok(out);
        }
        let mut caller = Caller::arriving(call, qi, priority, now, self.seq.fetch_add(1, SeqCst));
        if self.calls.contains_key(&call) {
            q.waiting.fetch_sub(1, SeqCst);
            return Err(AcdError::DuplicateCall(call));
        }
        let number = number.filter(|n| super::rejoin::usable_number(n));
        if let (true, Some(n)) = (q.cfg.rejoin_s > 0, number) {
            self.rejoin_used.store(true, SeqCst);
            if let Some(p) = self.rejoin_book().arrive(call, &q.name, n, now) {
                caller.arrival = p.arrival;
                caller.seq = p.seq;
            }
        }
        match self.calls.entry(call) {
            MapEntry::Occupied(_) => {
                q.waiting.fetch_sub(1, SeqCst);
                self.rejoin_book().forget(call);
                return Err(AcdError::DuplicateCall(call));
            }
            MapEntry::Vacant(v) => {
                v.insert(Loc::Waiting(caller));
            }
        }
        self.seat(caller, &mut out, now);
        Ok(out)
    }

    /// A waiting caller's place: its arrival, arrival order and priority.
    pub fn waiting_place(&self, call: CallId) -> Option<(Instant, u64, i32)> {
        match self.calls.get(&call).as_deref() {
            Some(Loc::Waiting(c)) => Some((c.arrival, c.seq, c.priority)),
            _ => None,
        }
    }

    /// The waiting caller `call` accepted a callback: it keeps its place
    /// as a callback (no `max_wait_s` from now on, no rejoin place). False
    /// when it is not waiting (an agent took it this moment).
    pub fn make_callback(&self, call: CallId) -> bool {
        let MapEntry::Occupied(mut o) = self.calls.entry(call) else {
            return false;
        };
        let Loc::Waiting(c) = o.get().clone() else {
            return false;
        };
        let Some((_, lane)) = self.topo.lane_of(c.queue, c.level) else {
            return false;
        };
        if lane.take(&c.key()).is_none() {
            return false;
        }
        let cb = Caller {
            callback: true,
            ..c
        };
        lane.insert(cb);
        o.insert(Loc::Waiting(cb));
        drop(o);
        self.forget_place(call);
        true
    }

    /// A callback (again) waits in `queue` at the place `arrival` gives it
    /// (its caller's arrival; after a restart, now minus the time waited):
    /// after a customer who did not answer, or read back from the file. A
    /// callback is never turned away as closed or full, and has no
    /// `max_wait_s`.
    pub fn callback_waits(
        &self,
        call: CallId,
        queue: &str,
        priority: i32,
        arrival: Instant,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let (qi, q) = self
            .topo
            .queue(queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.to_string()))?;
        let mut caller =
            Caller::arriving(call, qi, priority, arrival, self.seq.fetch_add(1, SeqCst));
        caller.callback = true;
        match self.calls.entry(call) {
            MapEntry::Occupied(_) => return Err(AcdError::DuplicateCall(call)),
            MapEntry::Vacant(v) => {
                v.insert(Loc::Waiting(caller));
            }
        }
        q.waiting.fetch_add(1, SeqCst);
        let mut out = Vec::new();
        self.seat(caller, &mut out, now);
        Ok(out)
    }

    /// Puts a caller entered in `calls` into its queue's first lane, arms
    /// its timers and offers what the lane can take now.
    fn seat(&self, caller: Caller, out: &mut Vec<Output>, now: Instant) {
        let Some((li, lane)) = self.topo.lane_of(caller.queue, 0) else {
            return;
        };
        lane.insert(caller);
        self.arm_caller_timers(&caller, out);
        self.route_lane(li, now, out);
    }

    fn arm_caller_timers(&self, c: &Caller, out: &mut Vec<Output>) {
        let Some(q) = self.topo.queue_rt(c.queue) else {
            return;
        };
        if let Some(r) = q.cfg.relax.get(c.level) {
            out.push(Output::Arm {
                at: c.arrival + secs(r.after_s),
                timer: Timer::Relax {
                    call: c.call,
                    level: c.level + 1,
                },
            });
        }
        if c.level == 0 && q.cfg.max_wait_s > 0 && !c.callback {
            out.push(Output::Arm {
                at: c.arrival + secs(q.cfg.max_wait_s),
                timer: Timer::MaxWait { call: c.call },
            });
        }
    }

    /// The caller hung up (or was transferred away): it leaves the queue,
    /// or frees the agent it was ringing (the driver CANCELs that INVITE),
    /// or ends the call with its agent (wrap-up starts).
    pub fn caller_hangup(&self, call: CallId, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let held = match self.calls.entry(call) {
            MapEntry::Vacant(_) => {
                self.forget_place(call);
                return out;
            }
            MapEntry::Occupied(mut o) => match o.get().clone() {
                Loc::Waiting(c) => {
                    let taken = self
                        .topo
                        .lane_of(c.queue, c.level)
                        .and_then(|(_, l)| l.take(&c.key()));
                    if taken.is_some() {
                        o.remove();
                        self.left_queue(c.queue);
                        self.keep_place(&c, now);
                    } else {
                        // A router thread is taking it right now.
                        o.insert(Loc::HungUp);
                    }
                    return out;
                }
                Loc::Offered { agent, .. } | Loc::Connected { agent, .. } => {
                    o.remove();
                    self.forget_place(call);
                    agent
                }
                Loc::HungUp => {
                    self.forget_place(call);
                    return out;
                }
            },
        };
        if let Some(slot) = self.topo.slot(held) {
            let mut meta = slot.meta();
            if meta.busy.as_ref().is_some_and(|b| b.call == call) {
                match slot.word().tag {
                    Tag::Ringing => {
                        meta.busy = None;
                        self.free(slot, &mut meta, now, &mut out);
                    }
                    Tag::OnCall => self.end_call(slot, &mut meta, call, now, &mut out),
                    _ => {}
                }
            }
        }
        out
    }

    /// A waiting caller hung up: in a queue with `rejoin_s`, its place is
    /// kept for that long.
    fn keep_place(&self, c: &Caller, now: Instant) {
        let Some(q) = self.topo.queue_rt(c.queue) else {
            return self.forget_place(c.call);
        };
        if q.cfg.rejoin_s > 0 {
            let keep = secs(q.cfg.rejoin_s);
            self.rejoin_book()
                .hung_up(c.call, c.arrival, c.seq, keep, now);
        }
    }

    /// The call leaves no place behind (taken by an agent, diverted, gone).
    fn forget_place(&self, call: CallId) {
        if self.rejoin_used.load(SeqCst) {
            self.rejoin_book().forget(call);
        }
    }

    /// The agent a call is offered to or talking with, if any (the engine
    /// marks it before the caller's hang-up frees it: a freed agent is
    /// named by no output).
    pub fn agent_of_call(&self, call: CallId) -> Option<AgentId> {
        match self.calls.get(&call).as_deref()? {
            Loc::Offered { agent, .. } | Loc::Connected { agent, .. } => Some(*agent),
            Loc::Waiting(_) | Loc::HungUp => None,
        }
    }

    fn left_queue(&self, queue: QueueId) {
        if let Some(q) = self.topo.queue_rt(queue) {
            // Never below zero, even if a reload raced the count.
            let _ = q
                .waiting
                .fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(1)));
        }
    }

    /// Puts an offered caller back in its lane (RONA, reject), keeping its
    /// place (arrival). With `refused_at`, the agent refused it: it is not
    /// offered this caller again for the queue's `retry_s`, and a timer
    /// routes the caller again when that is over. Returns the lane to route.
    fn requeue(
        &self,
        call: CallId,
        agent: AgentId,
        refused_at: Option<Instant>,
        out: &mut Vec<Output>,
    ) -> Option<u32> {
        let MapEntry::Occupied(mut o) = self.calls.entry(call) else {
            return None;
        };
        let mut caller = match o.get() {
            Loc::Offered { agent: a, caller } if *a == agent => *caller,
            _ => return None,
        };
        if let (Some(at), Some(q)) = (refused_at, self.topo.queue_rt(caller.queue)) {
            let until = at + secs(q.cfg.retry_s);
            caller.refused.add(agent, until);
            out.push(Output::Arm {
                at: until,
                timer: Timer::RetryRefused { call },
            });
        }
        match self.topo.lane_of(caller.queue, caller.level) {
            Some((li, lane)) => {
                if let Some(q) = self.topo.queue_rt(caller.queue) {
                    q.waiting.fetch_add(1, SeqCst);
                }
                lane.insert(caller);
                o.insert(Loc::Waiting(caller));
                Some(li)
            }
            None => {
                // Its queue went away in a reload.
                o.remove();
                out.push(Output::Divert {
                    call,
                    queue: Arc::from(""),
                    reason: DivertReason::QueueRemoved,
                    target: None,
                });
                None
            }
        }
    }

    // ---- agents ----------------------------------------------------------

    /// The registrar bound a contact (or a static contact answered OPTIONS).
    pub fn agent_registered(
        &self,
        agent: &str,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Vec<Output>, AcdError> {
        let slot = self.slot(agent)?;
        let mut out = Vec::new();
        let mut meta = slot.meta();
        meta.registered = true;
        meta.on_shift = slot.cfg.on_shift(wall);
        self.settle(slot, &mut meta, now, &mut out);
        Ok(out)
    }

    /// The last binding expired or was removed.
    pub fn agent_unregistered(&self, agent: &str, now: Instant) -> Result<Vec<Output>, AcdError> {
        let slot = self.slot(agent)?;
        let mut out = Vec::new();
        let mut meta = slot.meta();
        meta.registered = false;
        self.settle(slot, &mut meta, now, &mut out);
        Ok(out)
    }

    /// Admin pause/unpause. A pause during a call applies when it ends.
    pub fn set_state(
        &self,
        agent: &str,
        state: AdminState,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let slot = self.slot(agent)?;
        let mut out = Vec::new();
        let mut meta = slot.meta();
        meta.paused = match state {
            AdminState::Available => None,
            AdminState::Paused(r) => Some(r),
        };
        self.settle(slot, &mut meta, now, &mut out);
        Ok(out)
    }

    /// The agent's own login/logout code: logged off, it rests in
    /// `LoggedOut` whatever its registration does; logged in again, its
    /// pause is cleared (as an agent logging in to app_queue starts
    /// available). A logout during a call applies when it ends.
    pub fn set_logged_in(
        &self,
        agent: &str,
        logged_in: bool,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let slot = self.slot(agent)?;
        let mut out = Vec::new();
        let mut meta = slot.meta();
        meta.logged_off = !logged_in;
        if logged_in {
            meta.paused = None;
        }
        self.settle(slot, &mut meta, now, &mut out);
        Ok(out)
    }

    /// Whether the agent logged itself off with the logout code.
    pub fn logged_off(&self, agent: &str) -> bool {
        self.topo.agent(agent).is_some_and(|s| s.meta().logged_off)
    }

    /// Re-reads every agent's shift at `wall` (driver: once a minute; shift
    /// windows have minute resolution). Agents leaving their shift while on
    /// a call go `off_shift` after it.
    pub fn refresh_shifts(&self, now: Instant, wall: DateTime<Utc>) -> Vec<Output> {
        let mut out = Vec::new();
        for slot in &self.topo.agents {
            let mut meta = slot.meta();
            let on = slot.cfg.on_shift(wall);
            if on != meta.on_shift {
                meta.on_shift = on;
                self.settle(slot, &mut meta, now, &mut out);
            }
        }
        out
    }

    /// The agent's leg answered (200 OK to the offer).
    pub fn answered<'a>(
        &self,
        agent: impl Into<AgentRef<'a>>,
        call: CallId,
        now: Instant,
    ) -> Result<(), AcdError> {
        let _ = now;
        let agent = agent.into();
        let slot = self.slot_of(agent)?;
        let mut meta = slot.meta();
        let w = slot.word();
        if w.tag != Tag::Ringing || meta.busy.as_ref().is_none_or(|b| b.call != call) {
            return Err(wrong(agent.name(), call, "ringing"));
        }
        if let Some(mut l) = self.calls.get_mut(&call) {
            if let Loc::Offered { agent, caller } = *l {
                *l = Loc::Connected { agent, caller };
            }
        }
        meta.calls_taken += 1;
        slot.set(Word {
            epoch: w.epoch,
            tag: Tag::OnCall,
        });
        Ok(())
    }

    /// BYE from either leg: the agent starts wrap-up (`wrapup_s` of the
    /// call's queue) and is offered again after it.
    pub fn call_ended<'a>(
        &self,
        agent: impl Into<AgentRef<'a>>,
        call: CallId,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let agent = agent.into();
        let slot = self.slot_of(agent)?;
        let mut out = Vec::new();
        let mut meta = slot.meta();
        if slot.word().tag != Tag::OnCall || meta.busy.as_ref().is_none_or(|b| b.call != call) {
            return Err(wrong(agent.name(), call, "on a call"));
        }
        self.calls.remove(&call);
        self.end_call(slot, &mut meta, call, now, &mut out);
        Ok(out)
    }

    fn end_call(
        &self,
        slot: &Slot,
        meta: &mut Meta,
        call: CallId,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        meta.last_call_end = Some(now);
        let wrapup = meta
            .busy
            .as_ref()
            .and_then(|b| self.topo.queue_rt(b.queue))
            .map_or(0, |q| q.cfg.wrapup_s);
        if wrapup > 0 {
            let until = now + secs(wrapup);
            if let Some(b) = meta.busy.as_mut() {
                b.until = until;
            }
            slot.set(Word {
                epoch: slot.word().epoch,
                tag: Tag::Wrapup,
            });
            out.push(Output::Arm {
                at: until,
                timer: Timer::WrapupEnd {
                    agent: slot.idx,
                    call,
                },
            });
        } else {
            meta.busy = None;
            self.free(slot, meta, now, out);
        }
    }

    /// The agent answered 486 Busy Here or 603 Decline: it stays available
    /// and the caller is offered to someone else first.
    pub fn rejected<'a>(
        &self,
        agent: impl Into<AgentRef<'a>>,
        call: CallId,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let agent = agent.into();
        let slot = self.slot_of(agent)?;
        let mut out = Vec::new();
        {
            let mut meta = slot.meta();
            if slot.word().tag != Tag::Ringing || meta.busy.as_ref().is_none_or(|b| b.call != call)
            {
                return Err(wrong(agent.name(), call, "ringing"));
            }
            // Still `Ringing` with no call: nobody can claim it meanwhile.
            meta.busy = None;
        }
        if let Some(li) = self.requeue(call, slot.idx, Some(now), &mut out) {
            self.route_lane(li, now, &mut out);
        }
        let mut meta = slot.meta();
        if slot.word().tag == Tag::Ringing && meta.busy.is_none() {
            self.free(slot, &mut meta, now, &mut out);
        }
        Ok(out)
    }

    /// Ring no answer: the agent is paused with reason `rona`, the caller
    /// goes back to its place in the queue and is offered again.
    pub fn ring_no_answer<'a>(
        &self,
        agent: impl Into<AgentRef<'a>>,
        call: CallId,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let agent = agent.into();
        let slot = self.slot_of(agent)?;
        let mut out = Vec::new();
        {
            let mut meta = slot.meta();
            let w = slot.word();
            if w.tag != Tag::Ringing || meta.busy.as_ref().is_none_or(|b| b.call != call) {
                return Err(wrong(agent.name(), call, "ringing"));
            }
            meta.busy = None;
            meta.paused = Some(RONA.to_string());
            slot.set(Word {
                epoch: w.epoch,
                tag: meta.resting(),
            });
        }
        if let Some(li) = self.requeue(call, slot.idx, None, &mut out) {
            self.route_lane(li, now, &mut out);
        }
        Ok(out)
    }

    /// A timer the driver armed is due. Stale timers do nothing: an agent
    /// timer acts only on the agent its id names now, busy in the timer's
    /// state with the timer's call, and only once that stay's own deadline
    /// has come. So a timer of an earlier offer of the same call, or one
    /// armed under an id a reload gave to another agent, finds nothing to
    /// do (a reload arms a moved agent's timer again under its new id).
    pub fn timer(&self, timer: &Timer, now: Instant) -> Vec<Output> {
        match timer {
            Timer::RingTimeout { agent, call } => {
                let due = self.topo.slot(*agent).filter(|slot| {
                    slot.word().tag == Tag::Ringing
                        && slot
                            .meta()
                            .busy
                            .as_ref()
                            .is_some_and(|b| b.call == *call && now >= b.until)
                });
                match due {
                    Some(slot) => {
                        let name = slot.id.clone();
                        self.ring_no_answer(AgentRef::Id(*agent, &name), *call, now)
                            .unwrap_or_default()
                    }
                    None => Vec::new(),
                }
            }
            Timer::WrapupEnd { agent, call } => {
                let mut out = Vec::new();
                if let Some(slot) = self.topo.slot(*agent) {
                    let mut meta = slot.meta();
                    if slot.word().tag == Tag::Wrapup
                        && meta
                            .busy
                            .as_ref()
                            .is_some_and(|b| b.call == *call && now >= b.until)
                    {
                        meta.busy = None;
                        self.free(slot, &mut meta, now, &mut out);
                    }
                }
                out
            }
            Timer::Relax { call, level } => self.relax(*call, *level, now),
            Timer::MaxWait { call } => self.max_wait(*call, now),
            Timer::RetryRefused { call } => {
                let mut out = Vec::new();
                let lane = match self.calls.get(call).as_deref() {
                    Some(Loc::Waiting(c)) => self.topo.lane_of(c.queue, c.level).map(|(li, _)| li),
                    _ => None,
                };
                if let Some(li) = lane {
                    self.route_lane(li, now, &mut out);
                }
                out
            }
        }
    }

    fn relax(&self, call: CallId, level: usize, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let mut route = None;
        if let MapEntry::Occupied(mut o) = self.calls.entry(call) {
            if let Loc::Waiting(c) = o.get().clone() {
                let due = self
                    .topo
                    .queue_rt(c.queue)
                    .and_then(|q| q.cfg.relax.get(level.wrapping_sub(1)))
                    .is_some_and(|r| now >= c.arrival + secs(r.after_s));
                if c.level + 1 == level && due {
                    let old = self.topo.lane_of(c.queue, c.level);
                    let new = self.topo.lane_of(c.queue, level);
                    if let (Some((_, old)), Some((li, new))) = (old, new) {
                        if old.take(&c.key()).is_some() {
                            let moved = Caller { level, ..c };
                            new.insert(moved);
                            o.insert(Loc::Waiting(moved));
                            self.arm_caller_timers(&moved, &mut out);
                            route = Some(li);
                        }
                    }
                }
            }
        }
        if let Some(li) = route {
            self.route_lane(li, now, &mut out);
        }
        out
    }

    fn max_wait(&self, call: CallId, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if let MapEntry::Occupied(o) = self.calls.entry(call) {
            if let Loc::Waiting(c) = o.get().clone() {
                let Some(q) = self.topo.queue_rt(c.queue) else {
                    return out;
                };
                let due = q.cfg.max_wait_s > 0
                    && !c.callback
                    && now >= c.arrival + secs(q.cfg.max_wait_s);
                let taken = due
                    && self
                        .topo
                        .lane_of(c.queue, c.level)
                        .and_then(|(_, l)| l.take(&c.key()))
                        .is_some();
                if taken {
                    o.remove();
                    self.left_queue(c.queue);
                    out.push(Output::Divert {
                        call,
                        queue: q.name.clone(),
                        reason: DivertReason::MaxWait,
                        target: q.cfg.overflow.clone(),
                    });
                }
            }
        }
        out
    }

    // ---- the matching core -------------------------------------------------

    /// Applies changed `meta` flags to an agent that is not on a call.
    fn settle(&self, slot: &Slot, meta: &mut Meta, now: Instant, out: &mut Vec<Output>) {
        let w = slot.word();
        let rest = meta.resting();
        match w.tag {
            Tag::Available => {
                // If a router thread claimed it first, that thread sees
                // the new meta (it locks it) and settles the agent.
                if rest != Tag::Available && slot.leave_available(rest) {
                    self.unpool(slot, meta);
                }
            }
            Tag::LoggedOut | Tag::OffShift | Tag::Paused => {
                if rest == Tag::Available {
                    self.free(slot, meta, now, out);
                } else {
                    slot.set(Word {
                        epoch: w.epoch,
                        tag: rest,
                    });
                }
            }
            // Busy: applied when the call and its wrap-up are over.
            Tag::Deciding | Tag::Ringing | Tag::OnCall | Tag::Wrapup => {}
        }
    }

    /// The agent is between calls and nobody else holds it: give it the
    /// best waiting caller, or make it available in its pools.
    fn free(&self, slot: &Slot, meta: &mut Meta, now: Instant, out: &mut Vec<Output>) {
        let rest = meta.resting();
        let epoch = slot.word().epoch;
        if rest != Tag::Available {
            slot.set(Word { epoch, tag: rest });
            return;
        }
        let e = epoch.wrapping_add(1);
        slot.set(Word {
            epoch: e,
            tag: Tag::Deciding,
        });
        // Fast path: invisible to other threads, so no publish needed.
        if self.take_best(slot, meta, e, now, out) != Take::NoCaller {
            return;
        }
        let input = KeyInput {
            idx: slot.idx.raw(),
            epoch: e,
            score: 0,
            calls_taken: meta.calls_taken,
            last_call_end: meta.last_call_end,
        };
        Pool::insert_all(
            &self.topo.pools,
            &self.topo.pool_links,
            slot.links.pools.clone(),
            |pool, l| {
                let k = KeyInput {
                    score: l.score,
                    ..input
                };
                key(pool.strategy, self.base, self.seed, k)
            },
        );
        meta.pooled = true;
        slot.set(Word {
            epoch: e,
            tag: Tag::Available,
        });
        self.recheck(slot, meta, e, now, out);
    }

    /// The agent (meta locked) left `Available`/`Deciding`: drop its pool
    /// entries. Until then claimers skip them (its word is not `Available`).
    fn unpool(&self, slot: &Slot, meta: &mut Meta) {
        if !std::mem::take(&mut meta.pooled) {
            return;
        }
        Pool::remove_all(
            &self.topo.pools,
            &self.topo.pool_links,
            slot.links.pools.clone(),
        );
    }

    /// After publishing (or putting back) an agent, look at its lanes again:
    /// a caller that arrived meanwhile may have missed it.
    fn recheck(&self, slot: &Slot, meta: &mut Meta, e: u32, now: Instant, out: &mut Vec<Output>) {
        loop {
            if self.best_lane(slot, now).is_none() || !slot.try_claim(e) {
                return;
            }
            if self.take_best(slot, meta, e, now, out) != Take::NoCaller {
                return;
            }
            slot.set(Word {
                epoch: e,
                tag: Tag::Available,
            });
        }
    }

    /// The lane holding the best caller this agent may take (callers it
    /// refused lately are skipped).
    fn best_lane(&self, slot: &Slot, now: Instant) -> Option<(u32, Caller)> {
        let mut best: Option<(super::lane::Rank, u32, Caller)> = None;
        for &li in &slot.links.lanes {
            let Some(lane) = self.topo.lanes.get(li as usize) else {
                continue;
            };
            if let Some(c) = lane.head(slot.idx, now) {
                let r = c.rank(lane.priority);
                if best.as_ref().is_none_or(|(br, _, _)| r < *br) {
                    best = Some((r, li, c));
                }
            }
        }
        best.map(|(_, li, c)| (li, c))
    }

    /// With the agent claimed (`Deciding(e)`) and its meta locked: take the
    /// best caller across its lanes and ring it.
    fn take_best(
        &self,
        slot: &Slot,
        meta: &mut Meta,
        e: u32,
        now: Instant,
        out: &mut Vec<Output>,
    ) -> Take {
        let rest = meta.resting();
        if rest != Tag::Available {
            slot.set(Word {
                epoch: e,
                tag: rest,
            });
            self.unpool(slot, meta);
            return Take::Settled;
        }
        loop {
            let Some((li, c)) = self.best_lane(slot, now) else {
                return Take::NoCaller;
            };
            let Some(lane) = self.topo.lanes.get(li as usize) else {
                return Take::NoCaller;
            };
            let Some(c) = lane.take(&c.key()) else {
                continue; // someone else took it; look again
            };
            self.left_queue(c.queue);
            let live = match self.calls.entry(c.call) {
                MapEntry::Occupied(mut o) => {
                    if matches!(o.get(), Loc::HungUp) {
                        o.remove();
                        false
                    } else {
                        o.insert(Loc::Offered {
                            agent: slot.idx,
                            caller: c,
                        });
                        true
                    }
                }
                MapEntry::Vacant(_) => false,
            };
            if !live {
                continue;
            }
            if let Some(pool) = self.topo.pools.get(lane.pool as usize) {
                if pool.strategy == Strategy::RoundRobin {
                    let r = slot.links.pools.clone();
                    let mine = self.topo.pool_links.get(r.start as usize..r.end as usize);
                    if let Some(l) = mine.and_then(|m| m.iter().find(|l| l.pool == lane.pool)) {
                        pool.took(l.member);
                    }
                }
            }
            let Some(q) = self.topo.queue_rt(c.queue) else {
                continue;
            };
            let until = now + secs(q.cfg.ring_timeout_s);
            meta.busy = Some(Busy {
                call: c.call,
                queue: c.queue,
                until,
            });
            slot.set(Word {
                epoch: e,
                tag: Tag::Ringing,
            });
            self.unpool(slot, meta);
            out.push(Output::Offer(Offer {
                agent: slot.idx,
                agent_name: slot.id.clone(),
                call: c.call,
                queue: c.queue,
                waited: now.saturating_duration_since(c.arrival),
            }));
            out.push(Output::Arm {
                at: until,
                timer: Timer::RingTimeout {
                    agent: slot.idx,
                    call: c.call,
                },
            });
            return Take::Matched;
        }
    }

    /// Callers wait in `lane`: claim the best agents of its pool for them.
    fn route_lane(&self, li: u32, now: Instant, out: &mut Vec<Output>) {
        let Some(lane) = self.topo.lanes.get(li as usize) else {
            return;
        };
        let Some(pool) = self.topo.pools.get(lane.pool as usize) else {
            return;
        };
        // Agents claimed here that had no caller to take (they refused
        // every caller they could take lately): not claimed again this round.
        let mut passed = Vec::new();
        while !lane.is_empty() {
            let Some(slot) = pool.claim(&self.topo.agents, &self.topo.pool_links, &passed) else {
                return;
            };
            let mut meta = slot.meta();
            let e = slot.word().epoch;
            if self.take_best(slot, &mut meta, e, now, out) == Take::NoCaller {
                slot.set(Word {
                    epoch: e,
                    tag: Tag::Available,
                });
                self.recheck(slot, &mut meta, e, now, out);
                passed.push(slot.idx.raw());
            }
        }
    }

    // ---- reload and status ----------------------------------------------

    /// Applies a new configuration between decisions. Agents keep state,
    /// pause reason and counters (a removed agent leaves once idle); waiting
    /// callers keep their place; callers of a removed queue are diverted to
    /// its overflow.
    pub fn reload(&mut self, cfg: &AcdConfig, now: Instant, wall: DateTime<Utc>) -> Vec<Output> {
        let mut out = Vec::new();
        let old = &self.topo;
        let carry = |id: &str| {
            let slot = old.agent(id)?;
            let mut meta = slot.meta().clone();
            meta.pooled = false;
            let mut w = slot.word();
            if w.tag.idle() {
                // Re-entered into the new pools below.
                w.tag = Tag::LoggedOut;
            }
            Some((w, meta))
        };
        let mut topo = Topology::build(cfg, carry);
        for slot in &topo.agents {
            slot.meta().on_shift = slot.cfg.on_shift(wall);
        }
        // Agents gone from the file but still busy stay until idle.
        for slot in &old.agents {
            let meta = slot.meta().clone();
            if topo.names.agent(&slot.id).is_some() || slot.word().tag.idle() {
                continue;
            }
            let mut meta = meta;
            meta.removed = true;
            meta.pooled = false;
            // Appended to the new table: its id is the next slot's index.
            let next = topo.names.intern_agent(&slot.id);
            topo.agents.push(Slot::new(
                slot.id.clone(),
                (*slot.cfg).clone(),
                next,
                Default::default(),
                slot.word(),
                meta,
            ));
        }
        let old_queues: Vec<(Arc<str>, Option<crate::config::Target>)> = old
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.cfg.overflow.clone()))
            .collect();
        // Ids of the old table to the new one, by name.
        let remap = |qi: QueueId| {
            old_queues
                .get(qi.index())
                .and_then(|(n, _)| topo.names.queue(n))
        };
        // Busy agents: their call's queue in the new numbering, and their
        // pending timer again under the new id when theirs moved (the old
        // one may name another agent now; it finds that agent not busy
        // with its call and does nothing).
        for slot in &topo.agents {
            let mut meta = slot.meta();
            let Some(busy) = meta.busy.as_mut() else {
                continue;
            };
            busy.queue = remap(busy.queue).unwrap_or(QueueId::NONE);
            if old.names.agent(&slot.id) == Some(slot.idx) {
                continue;
            }
            let (agent, call) = (slot.idx, busy.call);
            let timer = match slot.word().tag {
                Tag::Ringing => Timer::RingTimeout { agent, call },
                Tag::Wrapup => Timer::WrapupEnd { agent, call },
                _ => continue,
            };
            out.push(Output::Arm {
                at: busy.until,
                timer,
            });
        }
        let agent_remap = |ai: AgentId| old.slot(ai).and_then(|s| topo.names.agent(&s.id));
        let mut requeued = Vec::new();
        let mut drop_calls = Vec::new();
        for mut item in self.calls.iter_mut() {
            let call = *item.key();
            let loc = item.value_mut();
            match loc {
                Loc::Waiting(c) => match remap(c.queue) {
                    Some(nq) => {
                        let levels = topo.queue_rt(nq).map_or(1, |q| q.lanes.len());
                        c.queue = nq;
                        c.level = c.level.min(levels.saturating_sub(1));
                        requeued.push(*c);
                    }
                    None => {
                        let (name, target) = old_queues
                            .get(c.queue.index())
                            .cloned()
                            .unwrap_or((Arc::from(""), None));
                        out.push(Output::Divert {
                            call,
                            queue: name,
                            reason: DivertReason::QueueRemoved,
                            target,
                        });
                        drop_calls.push(call);
                    }
                },
                Loc::Offered { agent, caller } | Loc::Connected { agent, caller } => {
                    caller.queue = remap(caller.queue).unwrap_or(QueueId::NONE);
                    *agent = agent_remap(*agent).unwrap_or(AgentId::NONE);
                }
                Loc::HungUp => drop_calls.push(call),
            }
        }
        for call in drop_calls {
            self.calls.remove(&call);
        }
        for c in &requeued {
            if let (Some((_, lane)), Some(q)) =
                (topo.lane_of(c.queue, c.level), topo.queue_rt(c.queue))
            {
                q.waiting.fetch_add(1, SeqCst);
                lane.insert(*c);
                self.arm_caller_timers_in(&topo, c, &mut out);
            }
        }
        self.renumbering = Renumbering::between(
            &self.topo.names,
            &topo.names,
            self.renumbering.generation() + 1,
        );
        self.topo = topo;
        for slot in &self.topo.agents {
            let mut meta = slot.meta();
            if slot.word().tag.idle() {
                self.settle(slot, &mut meta, now, &mut out);
            }
        }
        for li in 0..self.topo.lanes.len() as u32 {
            self.route_lane(li, now, &mut out);
        }
        out
    }

    fn arm_caller_timers_in(&self, topo: &Topology, c: &Caller, out: &mut Vec<Output>) {
        let Some(q) = topo.queue_rt(c.queue) else {
            return;
        };
        if let Some(r) = q.cfg.relax.get(c.level) {
            out.push(Output::Arm {
                at: c.arrival + secs(r.after_s),
                timer: Timer::Relax {
                    call: c.call,
                    level: c.level + 1,
                },
            });
        }
        if q.cfg.max_wait_s > 0 {
            out.push(Output::Arm {
                at: c.arrival + secs(q.cfg.max_wait_s),
                timer: Timer::MaxWait { call: c.call },
            });
        }
    }

    /// One agent's status; `None` if unknown (or removed and idle).
    pub fn agent(&self, id: &str) -> Option<AgentStatus> {
        let slot = self.topo.agent(id)?;
        let meta = slot.meta();
        let w = slot.word();
        if meta.removed && w.tag.idle() {
            return None;
        }
        Some(AgentStatus {
            id: slot.id.clone(),
            name: slot.cfg.name.clone(),
            state: w.tag.public(),
            pause_reason: meta.paused.clone(),
            registered: meta.registered,
            calls_taken: meta.calls_taken,
            last_call_end: meta.last_call_end,
            call: meta.busy.as_ref().map(|b| b.call),
        })
    }

    /// Why the agent offered `call` got it, from the router's own state:
    /// the pool the caller's lane draws on (its size and who is still free
    /// there now, next in line first). O(1) in the number of agents.
    pub fn explain_offer(&self, call: CallId, runners_up: usize) -> Option<OfferExplain> {
        let (queue, level, agent) = match self.calls.get(&call).as_deref()? {
            Loc::Offered { agent, caller } | Loc::Connected { agent, caller } => {
                (caller.queue, caller.level, *agent)
            }
            Loc::Waiting(_) | Loc::HungUp => return None,
        };
        let (_, lane) = self.topo.lane_of(queue, level)?;
        let pool = self.topo.pools.get(lane.pool as usize)?;
        let (free, next) = pool.next_in_line(runners_up + 1);
        let id = |idx: u32| self.topo.agents.get(idx as usize).map(|s| s.id.clone());
        Some(OfferExplain {
            level,
            eligible: pool.members(),
            free,
            runners_up: next
                .into_iter()
                .filter(|&i| i != agent.raw())
                .take(runners_up)
                .filter_map(id)
                .collect(),
        })
    }

    /// The queue `call` is in or was answered from (None: not a call of
    /// the router's, or hung up).
    pub fn queue_of(&self, call: CallId) -> Option<Arc<str>> {
        let queue = match self.calls.get(&call).as_deref()? {
            Loc::Waiting(c) | Loc::Offered { caller: c, .. } | Loc::Connected { caller: c, .. } => {
                c.queue
            }
            Loc::HungUp => return None,
        };
        self.topo.names.queue_name(queue).cloned()
    }

    /// Visits every agent's public state and pause reason without building
    /// an `AgentStatus` for each: for change detection on every loop turn.
    pub fn visit_agent_states(
        &self,
        mut f: impl FnMut(AgentId, &Arc<str>, AgentState, Option<&str>),
    ) {
        for slot in &self.topo.agents {
            let meta = slot.meta();
            let w = slot.word();
            if meta.removed && w.tag.idle() {
                continue;
            }
            f(slot.idx, &slot.id, w.tag.public(), meta.paused.as_deref());
        }
    }

    /// As [`Router::visit_agent_states`], for the one agent `id` names.
    pub fn visit_agent(
        &self,
        id: AgentId,
        f: impl FnOnce(AgentId, &Arc<str>, AgentState, Option<&str>),
    ) {
        let Some(slot) = self.topo.slot(id) else {
            return;
        };
        let meta = slot.meta();
        let w = slot.word();
        if !(meta.removed && w.tag.idle()) {
            f(slot.idx, &slot.id, w.tag.public(), meta.paused.as_deref());
        }
    }

    /// Every agent, by id.
    pub fn agents(&self) -> Vec<AgentStatus> {
        self.topo
            .agents
            .iter()
            .filter_map(|s| self.agent(&s.id))
            .collect()
    }

    /// Who serves `queue` now: its agents (at the first relax level) free
    /// and busy. O(the queue's agents), and no other queue's: what an
    /// announcement or a callback offer asks once per caller.
    pub fn staffing(&self, queue: QueueId) -> super::estimate::Staffing {
        let mut staff = super::estimate::Staffing::default();
        let Some(q) = self.topo.queue_rt(queue) else {
            return staff;
        };
        for a in &q.agents {
            match self.topo.slot(*a).map(|s| s.word().tag) {
                Some(Tag::Available | Tag::Deciding) => staff.available += 1,
                Some(Tag::Ringing | Tag::OnCall | Tag::Wrapup) => staff.busy += 1,
                _ => {}
            }
        }
        staff
    }

    /// Every queue, by name (O(waiting + agents): for the API, not routing).
    pub fn queues(&self, now: Instant) -> Vec<QueueStatus> {
        self.topo
            .queues
            .iter()
            .map(|q| {
                let mut waiting = 0;
                let mut longest = Duration::ZERO;
                for li in &q.lanes {
                    if let Some(l) = self.topo.lanes.get(*li as usize) {
                        for c in l.snapshot() {
                            waiting += 1;
                            longest = longest.max(now.saturating_duration_since(c.arrival));
                        }
                    }
                }
                let mut available = 0;
                let (mut busy, mut wrapup, mut paused) = (0, 0, 0);
                for a in &q.agents {
                    if let Some(s) = self.topo.slot(*a) {
                        match s.word().tag {
                            Tag::Available | Tag::Deciding => available += 1,
                            Tag::Ringing | Tag::OnCall => busy += 1,
                            Tag::Wrapup => {
                                busy += 1;
                                wrapup += 1;
                            }
                            Tag::Paused => paused += 1,
                            _ => {}
                        }
                    }
                }
                QueueStatus {
                    name: q.name.clone(),
                    waiting,
                    longest_wait: longest,
                    agents_available: available,
                    agents_busy: busy,
                    agents_wrapup: wrapup,
                    agents_paused: paused,
                }
            })
            .collect()
    }

    /// A waiting caller's place in its queue, 1 = served next: callers of
    /// the same queue (every relax level) that come before it in the order
    /// agents take them (priority, then arrival). None if not waiting.
    /// Costs a walk over the callers ahead of it, never over other calls.
    pub fn position(&self, call: CallId) -> Option<usize> {
        let c = match self.calls.get(&call).as_deref() {
            Some(Loc::Waiting(c)) => *c,
            _ => return None,
        };
        let q = self.topo.queue_rt(c.queue)?;
        let me = c.key();
        let ahead: usize = q
            .lanes
            .iter()
            .filter_map(|&li| self.topo.lanes.get(li as usize))
            .map(|lane| lane.lock().keys().take_while(|k| **k < me).count())
            .sum();
        Some(ahead + 1)
    }

    /// Calls the router holds as waiting in a queue (tests, stress checks).
    pub fn waiting_calls(&self) -> Vec<CallId> {
        let mut v: Vec<CallId> = self
            .topo
            .lanes
            .iter()
            .flat_map(|l| l.snapshot())
            .map(|c| c.call)
            .collect();
        v.sort();
        v
    }

    /// Pool entries held across all pools (tests: bounded by eligibility).
    pub fn index_entries(&self) -> usize {
        self.topo.pools.iter().map(|p| p.len()).sum()
    }
}

fn wrong(agent: &str, call: CallId, expected: &'static str) -> AcdError {
    AcdError::WrongState {
        agent: agent.to_string(),
        call,
        expected,
    }
}
