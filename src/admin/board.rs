//! The live figures of each queue (the wallboard, `GET /api/v1/queues`,
//! the `/metrics` gauges): callers and callbacks waiting and the longest
//! wait, the agents serving it by state, the estimated wait of a new
//! caller and the handle time, and each agent's state. Folded from the
//! engine's event stream by every shard into one board, so a scrape or a
//! wallboard poll asks no shard anything.
//!
//! The estimated wait is the engine's own arithmetic
//! ([`crate::acd::estimate`]) fed with the answers and handle times the
//! events report, so it is the figure callers hear announced.

use ahash::AHashMap as HashMap;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};

use crate::acd::estimate::{self, QueueHistory, Staffing};
use crate::acd::{eligible, required_skills};
use crate::config::Config;
use crate::events::{CallbackOutcome, Event, EventKind, Now};
use crate::views::{next_open_change, AgentView, QueueView};

/// Who holds a place in a queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Waiter {
    /// A caller on the line, by its event-stream number.
    Caller(u64),
    /// A callback waiting in its caller's place, by its id.
    Callback(String),
}

/// Where a call stands, as far as the figures care.
#[derive(Debug)]
enum Stage {
    Waiting {
        queue: String,
        entered: Instant,
    },
    /// Answered (by an agent of `queue`) at `answered`.
    Talking {
        queue: Option<String>,
        answered: SystemTime,
    },
}

#[derive(Debug)]
struct Callback {
    queue: String,
    entered: Instant,
    /// Holds its place (not being called now).
    waiting: bool,
}

#[derive(Debug, Default)]
struct Board {
    /// Per queue, its places by (entered, who): the first waited longest.
    places: HashMap<String, BTreeSet<(Instant, Waiter)>>,
    calls: HashMap<u64, Stage>,
    callbacks: HashMap<String, Callback>,
    /// A callback's placed call (by its event-stream number) to its id,
    /// until the attempt's result.
    attempts: HashMap<u64, String>,
    agents: HashMap<String, &'static str>,
    /// Recent answers and handle times per queue, by name (the names
    /// outlive a reload; the engine's own are by queue id).
    estimates: HashMap<String, QueueHistory>,
}

/// One board, shared by every shard's fold and the views that read it.
#[derive(Debug, Clone, Default)]
pub struct LiveBoard {
    board: Arc<Mutex<Board>>,
}

impl LiveBoard {
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Folds one event (most change nothing here and take no lock).
    pub fn fold(&self, ev: &Event, cfg: &Config) {
        if !concerns_board(&ev.kind) {
            return;
        }
        self.lock().fold(ev, cfg);
    }

    /// Every configured queue as it stands at `now`; the day's figures
    /// are [`super::today::TodayBoard::fill`]'s.
    pub fn queue_views(&self, cfg: &Config, now: Now) -> Vec<QueueView> {
        let wall: DateTime<Utc> = now.wall.into();
        let b = self.lock();
        cfg.queues
            .values()
            .map(|q| {
                let places = b.places.get(&q.name);
                let waiting = places.map_or(0, BTreeSet::len);
                let callbacks = places.map_or(0, |p| {
                    p.iter()
                        .filter(|(_, w)| matches!(w, Waiter::Callback(_)))
                        .count()
                });
                let longest = places.and_then(|p| p.first()).map_or(0.0, |(t, _)| {
                    now.mono.saturating_duration_since(*t).as_secs_f64()
                });
                let staff = b.staffing(q, cfg);
                let schedule = q.schedule.as_ref().and_then(|n| cfg.schedules.get(n));
                QueueView {
                    name: q.name.clone(),
                    waiting: count(waiting),
                    callbacks_waiting: count(callbacks),
                    longest_wait_s: longest,
                    agents_available: count(staff.available),
                    agents_busy: count(staff.busy),
                    agents_wrapup: count(staff.wrapup),
                    agents_paused: count(staff.paused),
                    open: schedule.is_none_or(|s| s.is_open(wall)),
                    next_change: schedule.and_then(|s| next_open_change(s, wall)),
                    service_level_s: q.service_level_s,
                    service_level_target: q.service_level_target,
                    estimated_wait_s: estimate::estimate(
                        b.estimates.get(&q.name),
                        waiting + 1,
                        staff.serving(),
                        now.mono,
                    )
                    .map(|d| d.as_secs_f64().round()),
                    handle_time_s: (b.estimates.get(&q.name))
                        .and_then(QueueHistory::handle_time)
                        .map(|d| d.as_secs_f64().round()),
                    ..QueueView::default()
                }
            })
            .collect()
    }

    /// Every configured agent with its state (only `id`, `name` and
    /// `state` are filled: what the gauges need).
    pub fn agent_states(&self, cfg: &Config) -> Vec<AgentView> {
        let b = self.lock();
        cfg.agents
            .values()
            .map(|a| AgentView {
                id: a.id.clone(),
                name: a.name.clone(),
                state: b.state_of(&a.id).to_owned(),
                ..AgentView::default()
            })
            .collect()
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The events the board folds.
fn concerns_board(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Queued { .. }
            | EventKind::Answered { .. }
            | EventKind::Diverted { .. }
            | EventKind::Transferred { .. }
            | EventKind::SurveyStarted { .. }
            | EventKind::Ended(_)
            | EventKind::CallbackAccepted { .. }
            | EventKind::CallbackRestored { .. }
            | EventKind::CallbackAttempt { .. }
            | EventKind::CallbackResult { .. }
            | EventKind::CallbackCancelled { .. }
            | EventKind::AgentState { .. }
    )
}

/// The agents serving a queue, as the router counts them.
#[derive(Debug, Default, Clone, Copy)]
struct Staff {
    available: usize,
    /// Ringing, on a call or in wrap-up.
    busy: usize,
    wrapup: usize,
    paused: usize,
}

impl Staff {
    fn serving(self) -> Staffing {
        Staffing {
            available: self.available,
            busy: self.busy,
        }
    }
}

impl Board {
    fn state_of(&self, agent: &str) -> &'static str {
        self.agents.get(agent).copied().unwrap_or("logged_out")
    }

    /// The agents with the queue's skills (its first relax level, as the
    /// router's queue figures), by the state their events last reported.
    fn staffing(&self, q: &crate::config::Queue, cfg: &Config) -> Staff {
        let req = required_skills(q, 0);
        let mut s = Staff::default();
        for a in cfg.agents.values().filter(|a| eligible(a, &req)) {
            match self.state_of(&a.id) {
                "available" => s.available += 1,
                "ringing" | "on_call" => s.busy += 1,
                "wrapup" => {
                    s.busy += 1;
                    s.wrapup += 1;
                }
                "paused" => s.paused += 1,
                _ => {}
            }
        }
        s
    }

    fn take_place(&mut self, queue: &str, entered: Instant, who: &Waiter) {
        if let Some(p) = self.places.get_mut(queue) {
            p.remove(&(entered, who.clone()));
            if p.is_empty() {
                self.places.remove(queue);
            }
        }
    }

    fn hold_place(&mut self, queue: &str, entered: Instant, who: Waiter) {
        self.places
            .entry(queue.to_owned())
            .or_default()
            .insert((entered, who));
    }

    /// Call `seq` leaves whatever stage it was in; returns it.
    fn leave(&mut self, seq: u64) -> Option<Stage> {
        let stage = self.calls.remove(&seq)?;
        if let Stage::Waiting { queue, entered } = &stage {
            self.take_place(queue, *entered, &Waiter::Caller(seq));
        }
        Some(stage)
    }

    /// An answered call's agent is done with it at `at`: talk plus the
    /// queue's wrap-up is one more handle time (as the engine learns it).
    fn handled(&mut self, stage: Option<Stage>, at: SystemTime, cfg: &Config) {
        if let Some(Stage::Talking {
            queue: Some(queue),
            answered,
        }) = stage
        {
            let talk = at.duration_since(answered).unwrap_or_default();
            let wrapup = cfg.queues.get(&queue).map_or(0, |q| q.wrapup_s);
            (self.estimates.entry(queue).or_default()).handled(talk + Duration::from_secs(wrapup));
        }
    }

    fn callback_waits(&mut self, id: &str) {
        let Some(cb) = self.callbacks.get_mut(id) else {
            return;
        };
        if !cb.waiting {
            cb.waiting = true;
            let (queue, entered) = (cb.queue.clone(), cb.entered);
            self.hold_place(&queue, entered, Waiter::Callback(id.to_owned()));
        }
    }

    fn callback_called(&mut self, id: &str) {
        let Some(cb) = self.callbacks.get_mut(id) else {
            return;
        };
        if cb.waiting {
            cb.waiting = false;
            let (queue, entered) = (cb.queue.clone(), cb.entered);
            self.take_place(&queue, entered, &Waiter::Callback(id.to_owned()));
        }
    }

    fn callback_gone(&mut self, id: &str) {
        self.callback_called(id);
        self.callbacks.remove(id);
    }

    fn fold(&mut self, ev: &Event, cfg: &Config) {
        let at = ev.at;
        match &ev.kind {
            EventKind::Queued {
                call,
                queue,
                refused: None,
                ..
            } => {
                self.leave(call.seq);
                let entered = at.mono;
                self.hold_place(queue, entered, Waiter::Caller(call.seq));
                let stage = Stage::Waiting {
                    queue: queue.clone(),
                    entered,
                };
                self.calls.insert(call.seq, stage);
            }
            EventKind::Answered { call, queue, .. } => {
                self.leave(call.seq);
                if let Some(q) = queue {
                    (self.estimates.entry(q.clone()).or_default()).answered(at.mono);
                }
                let stage = Stage::Talking {
                    queue: queue.clone(),
                    answered: at.wall,
                };
                self.calls.insert(call.seq, stage);
            }
            EventKind::Diverted { call, .. } | EventKind::Transferred { call, .. } => {
                self.leave(call.seq);
            }
            // The agent's handle time ends with its leg.
            EventKind::SurveyStarted { call, .. } => {
                let stage = self.leave(call.seq);
                self.handled(stage, at.wall, cfg);
            }
            EventKind::Ended(end) => {
                let stage = self.leave(end.call.seq);
                self.handled(stage, at.wall, cfg);
                // A try the customer never got: the callback keeps its place.
                if let Some(id) = self.attempts.remove(&end.call.seq) {
                    self.callback_waits(&id);
                }
            }
            EventKind::CallbackAccepted {
                call, queue, id, ..
            } => {
                let entered = match self.leave(call.seq) {
                    Some(Stage::Waiting { entered, .. }) => entered,
                    _ => at.mono,
                };
                // Another shard may have claimed it already.
                let calling = self.callbacks.contains_key(id);
                self.callbacks.insert(
                    id.clone(),
                    Callback {
                        queue: queue.clone(),
                        entered,
                        waiting: false,
                    },
                );
                if !calling {
                    self.callback_waits(id);
                }
            }
            EventKind::CallbackRestored { id, queue, waited } => {
                let entered = at.mono.checked_sub(*waited).unwrap_or(at.mono);
                self.callbacks.insert(
                    id.clone(),
                    Callback {
                        queue: queue.clone(),
                        entered,
                        waiting: false,
                    },
                );
                self.callback_waits(id);
            }
            EventKind::CallbackAttempt {
                call, id, queue, ..
            } => {
                self.attempts.insert(call.seq, id.clone());
                if self.callbacks.contains_key(id) {
                    self.callback_called(id);
                } else {
                    let cb = Callback {
                        queue: queue.clone(),
                        entered: at.mono,
                        waiting: false,
                    };
                    self.callbacks.insert(id.clone(), cb);
                }
            }
            EventKind::CallbackResult {
                call,
                id,
                outcome,
                gave_up,
                ..
            } => {
                self.attempts.remove(&call.seq);
                if *outcome == CallbackOutcome::Reached || *gave_up {
                    self.callback_gone(id);
                } else {
                    self.callback_waits(id);
                }
            }
            EventKind::CallbackCancelled { id, .. } => self.callback_gone(id),
            EventKind::AgentState { agent, state, .. } => {
                self.agents.insert(agent.clone(), state);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
