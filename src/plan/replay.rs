//! What-if replay: recorded calls through the real router ([`Router`]) on
//! a virtual clock, with another configuration's agents, shifts, skills,
//! queues and strategies.
//!
//! Each recorded call that reached a queue becomes a caller that enters
//! its first queue (the first `queue:NAME` of its path) when it entered
//! the queue in the record, talks for its recorded talk time (callers who
//! never reached an agent talk for the queue's mean), and gives up after
//! its patience: a recorded abandon gives up exactly when it did; a caller
//! who was answered or overflowed waited at least that long, and its
//! patience is that wait plus an exponential draw with the queue's patience
//! estimate (seeded, so a replay is repeatable; endless without abandons
//! in the records).
//!
//! The router then decides as in the daemon: schedules open and close on
//! the recorded wall clock, shifts change, relax steps, `max_wait_s`,
//! `max_waiting` and overflow to another queue (or an IVR node that leads
//! to one: `schedule` and `play` nodes are followed, a menu ends the call
//! since its key is unknown). Every agent of the configuration is taken as
//! registered throughout, on shift as its shift says; phones answer after
//! `answer_s`. Nothing sleeps: the loop jumps from one event to the next.
//!
//! The outcome is written as call records and agent sessions (one per
//! stretch on shift) and measured by `sipacd report`'s own definitions
//! ([`compute_report`]), next to the records themselves.

use super::demand::{demand, DemandOptions};
use crate::acd::{AcdConfig, CallId, DivertReason, Output, Router, Timer};
use crate::cdr::{
    compute_report, AgentSession, CallRecord, Disposition, HangupBy, QueueRow, ReportOptions,
};
use crate::config::{Config, Node, Target};
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Talk time of a caller who never reached an agent, when the records
/// hold no answered call of its queue.
const DEFAULT_TALK_MS: i64 = 180_000;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub since_ms: i64,
    pub until_ms: i64,
    pub seed: u64,
    /// Seconds an agent's phone rings before it answers (kept below the
    /// queue's `ring_timeout_s`: the replay has no ring-no-answer).
    pub answer_s: u64,
}

/// One caller to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayCall {
    pub id: String,
    pub number: String,
    pub queue: String,
    pub priority: i32,
    /// When it enters `queue`, Unix ms.
    pub enter_ms: i64,
    pub talk_ms: i64,
    /// How long it waits before giving up; `None`: as long as it takes.
    pub patience_ms: Option<i64>,
}

/// The recorded calls of the period that reached a queue, as callers.
pub fn calls_from_records(
    cfg: &Config,
    records: &[CallRecord],
    opts: &ReplayOptions,
) -> Vec<ReplayCall> {
    let dem = demand(
        cfg,
        records,
        &DemandOptions {
            since_ms: i64::MIN / 4,
            until_ms: i64::MAX / 4,
            interval_min: 60,
        },
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut sorted: Vec<&CallRecord> = records
        .iter()
        .filter(|r| r.disposition != Disposition::InProgress)
        .collect();
    sorted.sort_by(|a, b| (a.arrived_ms, &a.id).cmp(&(b.arrived_ms, &b.id)));
    let mut out = Vec::new();
    for r in sorted {
        let first_queue = r
            .ivr_path
            .iter()
            .find_map(|s| s.strip_prefix("queue:"))
            .map(str::to_owned)
            .or_else(|| r.queue.clone());
        let Some(queue) = first_queue else { continue };
        let several = r
            .ivr_path
            .iter()
            .filter(|s| s.starts_with("queue:"))
            .count()
            > 1;
        // One queue: it entered it at `queued_ms`; several: the first one
        // soon after arrival (the time spent in it is not recorded).
        let enter_ms = if several {
            r.arrived_ms
        } else {
            r.queued_ms.unwrap_or(r.arrived_ms)
        };
        if enter_ms < opts.since_ms || enter_ms >= opts.until_ms {
            continue;
        }
        let hist = dem.queues.get(&queue);
        let talk_ms = match (r.answered_ms, r.ended_ms) {
            (Some(a), Some(e)) if r.disposition == Disposition::Answered => (e - a).max(0),
            _ => hist
                .and_then(|h| h.talk_s)
                .map_or(DEFAULT_TALK_MS, |s| (s * 1000.0) as i64),
        };
        let waited = r
            .answered_ms
            .or(r.ended_ms)
            .map_or(0, |t| (t - enter_ms).max(0));
        let patience_ms = match r.disposition {
            Disposition::Abandoned => Some(waited),
            _ => hist.and_then(|h| h.patience_s).map(|p| {
                // Memoryless: having waited `waited`, it would have waited
                // an exponential time more.
                let u: f64 = rng.gen::<f64>();
                waited + (-(1.0 - u).ln() * p * 1000.0) as i64
            }),
        };
        out.push(ReplayCall {
            id: r.id.clone(),
            number: r.number.clone(),
            queue,
            priority: queue_node_priority(cfg, &r.ivr_path),
            enter_ms,
            talk_ms,
            patience_ms,
        });
    }
    out
}

/// The extra priority of the IVR `queue` node on the call's path, if any.
fn queue_node_priority(cfg: &Config, path: &[String]) -> i32 {
    path.iter()
        .filter_map(|step| step.split_once('.'))
        .filter_map(|(ivr, node)| cfg.ivrs.get(ivr)?.nodes.get(node))
        .find_map(|n| match n {
            Node::Queue { priority, .. } => Some(*priority),
            _ => None,
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Shifts,
    Timer(Timer),
    Answer { agent: Arc<str>, call: CallId },
    TalkEnd { agent: Arc<str>, call: CallId },
    GiveUp { call: CallId },
    Arrive { call: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Ringing,
    Talking,
    Done,
}

struct Live {
    rec: CallRecord,
    phase: Phase,
    priority: i32,
    talk_ms: i64,
}

/// What the replay predicts and what the records say, per queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub since_ms: i64,
    pub until_ms: i64,
    pub calls: usize,
    pub seed: u64,
    pub queues: Vec<QueueComparison>,
    /// Talk time over time on shift, all agents of the new configuration.
    pub occupancy_pct: Option<f64>,
    /// Talk time over logged-in time, agents in the records.
    pub recorded_occupancy_pct: Option<f64>,
    /// The replayed calls, as call records (for tests and `--format json`).
    #[serde(skip)]
    pub records: Vec<CallRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueComparison {
    pub queue: String,
    pub predicted: Option<QueueRow>,
    pub recorded: Option<QueueRow>,
    /// Occupancy of the agents with the queue's skills (talk over on
    /// shift), replayed.
    pub occupancy_pct: Option<f64>,
}

/// A virtual clock: the event queue, in time then insertion order.
struct Clock {
    t0: Instant,
    since_ms: i64,
    seq: u64,
    heap: BinaryHeap<Reverse<(i64, u64, Ev)>>,
}

impl Clock {
    fn push(&mut self, at_ms: i64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at_ms, self.seq, ev)));
    }

    fn ms_of(&self, at: Instant) -> i64 {
        self.since_ms
            + i64::try_from(at.saturating_duration_since(self.t0).as_millis()).unwrap_or(0)
    }

    fn instant(&self, ms: i64) -> Instant {
        self.t0 + Duration::from_millis(u64::try_from(ms - self.since_ms).unwrap_or(0))
    }
}

fn wall(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// Replays `calls` on `cfg` (see the module docs).
pub fn replay(
    cfg: &Config,
    calls: &[ReplayCall],
    recorded: &[CallRecord],
    recorded_sessions: &[AgentSession],
    opts: &ReplayOptions,
) -> ReplayReport {
    let t0 = Instant::now();
    let router = Router::new(&AcdConfig::from(cfg), t0, opts.seed);
    let mut clock = Clock {
        t0,
        since_ms: opts.since_ms,
        seq: 0,
        heap: BinaryHeap::new(),
    };
    let start_wall = wall(opts.since_ms);
    for id in cfg.agents.keys() {
        let _ = router.agent_registered(id, t0, start_wall);
    }
    // Shift changes of every agent within the period.
    let mut changes: Vec<i64> = Vec::new();
    let mut sessions = Vec::new();
    for a in cfg.agents.values() {
        let mut at = start_wall;
        let mut on = a.on_shift(at);
        let mut login = on.then_some(opts.since_ms);
        while let Some((state, t)) = a.shift_next_change(at) {
            let ms = t.timestamp_millis();
            if ms >= opts.until_ms {
                break;
            }
            changes.push(ms);
            match (state, login) {
                (true, None) => login = Some(ms),
                (false, Some(l)) => {
                    sessions.push(AgentSession {
                        agent: a.id.clone(),
                        login_ms: l,
                        logout_ms: Some(ms),
                    });
                    login = None;
                }
                _ => {}
            }
            on = state;
            at = t;
        }
        let _ = on;
        if let Some(l) = login {
            sessions.push(AgentSession {
                agent: a.id.clone(),
                login_ms: l,
                logout_ms: Some(opts.until_ms),
            });
        }
    }
    changes.sort_unstable();
    changes.dedup();
    for ms in changes {
        clock.push(ms, Ev::Shifts);
    }
    let mut live: Vec<Live> = Vec::with_capacity(calls.len());
    for (i, c) in calls.iter().enumerate() {
        let mut rec = CallRecord::arrival(&c.id, "", &c.number, c.enter_ms);
        rec.queue = Some(c.queue.clone());
        live.push(Live {
            rec,
            phase: Phase::Waiting,
            priority: c.priority,
            talk_ms: c.talk_ms,
        });
        clock.push(c.enter_ms, Ev::Arrive { call: i });
        if let Some(p) = c.patience_ms {
            clock.push(
                c.enter_ms + p.max(0),
                Ev::GiveUp {
                    call: CallId(i as u64),
                },
            );
        }
    }
    let answer_ms = |queue: &str| {
        let ring = cfg.queues.get(queue).map_or(15, |q| q.ring_timeout_s);
        (opts.answer_s.min(ring.saturating_sub(1)) * 1000) as i64
    };
    while let Some(Reverse((ms, _, ev))) = clock.heap.pop() {
        let now = clock.instant(ms);
        let out = match ev {
            Ev::Shifts => router.refresh_shifts(now, wall(ms)),
            Ev::Timer(t) => router.timer(&t, now),
            Ev::Arrive { call } => {
                let Some(q) = live.get(call).and_then(|l| l.rec.queue.clone()) else {
                    continue;
                };
                enter(&router, &mut live, call, &q, ms, now)
            }
            Ev::GiveUp { call } => {
                let Some(l) = live.get_mut(call.0 as usize) else {
                    continue;
                };
                if !matches!(l.phase, Phase::Waiting | Phase::Ringing) || l.rec.queued_ms.is_none()
                {
                    continue;
                }
                l.phase = Phase::Done;
                l.rec.disposition = Disposition::Abandoned;
                l.rec.ended_ms = Some(ms);
                l.rec.hangup_by = Some(HangupBy::Caller);
                router.caller_hangup(call, now)
            }
            Ev::Answer { agent, call } => {
                let Some(l) = live.get_mut(call.0 as usize) else {
                    continue;
                };
                if l.phase != Phase::Ringing || router.answered(&agent, call, now).is_err() {
                    continue;
                }
                l.phase = Phase::Talking;
                l.rec.answered_ms = Some(ms);
                l.rec.agent = Some(agent.to_string());
                clock.push(ms + l.talk_ms, Ev::TalkEnd { agent, call });
                Vec::new()
            }
            Ev::TalkEnd { agent, call } => {
                let Some(l) = live.get_mut(call.0 as usize) else {
                    continue;
                };
                l.phase = Phase::Done;
                l.rec.ended_ms = Some(ms);
                l.rec.disposition = Disposition::Answered;
                l.rec.hangup_by = Some(HangupBy::Caller);
                router.call_ended(&agent, call, now).unwrap_or_default()
            }
        };
        apply(&router, cfg, &mut clock, &mut live, out, ms, &answer_ms);
    }
    // Callers still waiting at the end of the records.
    for l in &mut live {
        if l.rec.disposition == Disposition::InProgress {
            l.rec.disposition = Disposition::Interrupted;
            l.rec.ended_ms.get_or_insert(opts.until_ms);
        }
    }
    let records: Vec<CallRecord> = live.into_iter().map(|l| l.rec).collect();
    let report_opts = ReportOptions {
        since_ms: Some(opts.since_ms),
        until_ms: Some(opts.until_ms),
        tz: cfg.server.timezone,
        service_level_s: cfg
            .queues
            .values()
            .map(|q| (q.name.clone(), q.service_level_s))
            .collect(),
        ..ReportOptions::default()
    };
    let predicted = compute_report(&records, &sessions, &report_opts);
    let before = compute_report(recorded, recorded_sessions, &report_opts);
    let occupancy = |rows: &[crate::cdr::AgentRow], only: Option<&dyn Fn(&str) -> bool>| {
        let (talk, on): (f64, f64) = rows
            .iter()
            .filter(|r| only.is_none_or(|f| f(&r.agent)))
            .fold((0.0, 0.0), |(t, o), r| (t + r.talk_s, o + r.logged_in_s));
        (on > 0.0).then(|| 100.0 * talk / on)
    };
    let mut names: Vec<String> = cfg.queues.keys().cloned().collect();
    for r in before.queues.iter().chain(&predicted.queues) {
        if !names.contains(&r.queue) {
            names.push(r.queue.clone());
        }
    }
    let queues = names
        .into_iter()
        .map(|name| {
            let find =
                |rep: &crate::cdr::Report| rep.queues.iter().find(|r| r.queue == name).cloned();
            let q = cfg.queues.get(&name);
            let skilled = |id: &str| {
                q.zip(cfg.agents.get(id))
                    .is_some_and(|(q, a)| crate::acd::eligible(a, &q.skills))
            };
            QueueComparison {
                predicted: find(&predicted),
                recorded: find(&before),
                occupancy_pct: occupancy(&predicted.agents, Some(&skilled)),
                queue: name,
            }
        })
        .collect();
    ReplayReport {
        since_ms: opts.since_ms,
        until_ms: opts.until_ms,
        calls: calls.len(),
        seed: opts.seed,
        queues,
        occupancy_pct: occupancy(&predicted.agents, None),
        recorded_occupancy_pct: occupancy(&before.agents, None),
        records,
    }
}

/// The caller `call` enters queue `q` now.
fn enter(
    router: &Router,
    live: &mut [Live],
    call: usize,
    q: &str,
    ms: i64,
    now: Instant,
) -> Vec<Output> {
    let Some(l) = live.get_mut(call) else {
        return Vec::new();
    };
    let step = format!("queue:{q}");
    if l.rec.ivr_path.last() != Some(&step) {
        l.rec.ivr_path.push(step);
    }
    l.rec.queue = Some(q.to_owned());
    l.rec.queued_ms = Some(ms);
    l.phase = Phase::Waiting;
    router
        .caller_arrives(CallId(call as u64), q, l.priority, now, wall(ms))
        .unwrap_or_else(|_| {
            // A queue the new configuration lacks: the call ends there.
            l.phase = Phase::Done;
            l.rec.disposition = Disposition::Rejected;
            l.rec.ended_ms = Some(ms);
            Vec::new()
        })
}

/// Where an IVR target leads without a caller's key: the queue it reaches
/// (with the `queue` node's priority), or `None` if the call ends there.
fn follow(cfg: &Config, target: &Target, wall_at: DateTime<Utc>) -> Option<(String, Option<i32>)> {
    let mut t = target.clone();
    for _ in 0..32 {
        match t {
            Target::Queue(q) => return Some((q, None)),
            Target::Hangup => return None,
            Target::Ivr { ivr, node } => {
                let n = cfg.ivrs.get(&ivr)?.nodes.get(&node)?;
                t = match n {
                    Node::Queue { queue, priority } => {
                        return Some((queue.clone(), Some(*priority)))
                    }
                    Node::Schedule {
                        schedule,
                        open,
                        closed,
                    } => {
                        let is_open = cfg
                            .schedules
                            .get(schedule)
                            .is_some_and(|s| s.is_open(wall_at));
                        if is_open {
                            open.clone()
                        } else {
                            closed.clone()
                        }
                    }
                    Node::Play { next, .. } => next.clone(),
                    Node::Collect { next, .. } => next.clone(),
                    Node::Menu { .. }
                    | Node::Hangup
                    | Node::Voicemail { .. }
                    | Node::Survey { .. } => return None,
                };
            }
        }
    }
    None
}

fn apply(
    router: &Router,
    cfg: &Config,
    clock: &mut Clock,
    live: &mut [Live],
    out: Vec<Output>,
    ms: i64,
    answer_ms: &impl Fn(&str) -> i64,
) {
    let mut pending = out;
    while !pending.is_empty() {
        let mut more = Vec::new();
        for o in pending {
            match o {
                Output::Arm { at, timer } => {
                    let at_ms = clock.ms_of(at);
                    clock.push(at_ms, Ev::Timer(timer));
                }
                Output::Offer(offer) => {
                    let Some(l) = live.get_mut(offer.call.0 as usize) else {
                        continue;
                    };
                    l.phase = Phase::Ringing;
                    l.rec.offered_ms.get_or_insert(ms);
                    let queue = router.names().queue_name(offer.queue).cloned();
                    let at = ms + answer_ms(queue.as_deref().unwrap_or(""));
                    clock.push(
                        at,
                        Ev::Answer {
                            agent: offer.agent_name,
                            call: offer.call,
                        },
                    );
                }
                Output::Divert {
                    call,
                    queue,
                    reason,
                    target,
                } => {
                    let i = call.0 as usize;
                    let Some(l) = live.get_mut(i) else { continue };
                    if reason == DivertReason::Closed {
                        l.rec
                            .closed_by
                            .get_or_insert_with(|| format!("queue:{queue}"));
                    }
                    let next = target.as_ref().and_then(|t| follow(cfg, t, wall(ms)));
                    match next {
                        Some((q, prio)) if l.phase != Phase::Done => {
                            if let Some(p) = prio {
                                l.priority = p;
                            }
                            more.extend(enter(router, live, i, &q, ms, clock.instant(ms)));
                        }
                        _ => {
                            l.phase = Phase::Done;
                            l.rec.ended_ms = Some(ms);
                            l.rec.hangup_by = Some(HangupBy::System);
                            l.rec.disposition = match reason {
                                DivertReason::Closed => Disposition::Closed,
                                _ => Disposition::Overflowed,
                            };
                        }
                    }
                }
            }
        }
        pending = more;
    }
}

/// The comparison as text: one row per queue, replayed next to recorded.
pub fn render_text(r: &ReplayReport) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}%"));
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    let mut rows = vec![vec![
        "queue".to_owned(),
        "".to_owned(),
        "offered".to_owned(),
        "answered".to_owned(),
        "abandoned".to_owned(),
        "overflowed".to_owned(),
        "closed".to_owned(),
        "service level".to_owned(),
        "ASA s".to_owned(),
        "abandon rate".to_owned(),
        "occupancy".to_owned(),
    ]];
    for q in &r.queues {
        for (label, row, occ) in [
            ("replayed", &q.predicted, q.occupancy_pct),
            ("recorded", &q.recorded, None),
        ] {
            let Some(row) = row else {
                rows.push(vec![q.queue.clone(), label.to_owned()]);
                continue;
            };
            rows.push(vec![
                q.queue.clone(),
                label.to_owned(),
                row.offered.to_string(),
                row.answered.to_string(),
                row.abandoned.to_string(),
                row.overflowed.to_string(),
                row.closed.to_string(),
                pct(row.service_level_pct),
                secs(row.asa_s),
                pct(row.abandon_rate_pct),
                pct(occ),
            ]);
        }
    }
    let mut out = format!(
        "replay of {} calls from {} to {} (seed {}):\n",
        r.calls,
        wall(r.since_ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        wall(r.until_ms).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        r.seed
    );
    out.push_str(&crate::cdr::text_table(&rows, true));
    out.push_str(&format!(
        "agent occupancy (talk time over time on shift): replayed {}, recorded (over logged-in time) {}\n",
        pct(r.occupancy_pct),
        pct(r.recorded_occupancy_pct)
    ));
    out
}
