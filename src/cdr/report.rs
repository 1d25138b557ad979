//! Contact-center figures from call records: pure functions over rows, so
//! `sipacd report`, the admin API and tests share one definition.
//!
//! Definitions (per queue, and per hour/day when asked, by the time the call
//! entered the queue, in the report's time zone):
//! * offered: calls that entered the queue while it was open: answered +
//!   abandoned + overflowed + interrupted. A call whose `ivr_path` shows it
//!   left the queue for another one counts as offered to and overflowed from
//!   the first. `closed` and `rejected` calls are counted apart, not offered.
//! * closed: calls the queue's `closed` redirect turned away (the record's
//!   `closed_by` is `queue:NAME`, whatever became of the call afterwards;
//!   records written before `closed_by` existed count when their
//!   disposition is `closed`).
//! * abandoned: the caller hung up before an agent answered; those within
//!   [`SHORT_ABANDON_MS`] of entering are also counted in `abandoned_short`.
//! * abandonment rate: abandoned / (answered + abandoned), in percent
//!   (short abandons included; overflowed and interrupted calls are in
//!   neither term).
//! * service level: answered within the queue's `service_level_s`, divided by
//!   offered minus short abandons (a caller who gives up at once is not a
//!   service failure), in percent.
//! * ASA: mean wait of answered calls.
//! * AHT (average handle time): talk + hold + wrap-up per answered call,
//!   shown with its three parts: talk is the answer-to-end span less the
//!   record's `hold_ms` (hold lies inside that span; the span ends with
//!   the last agent's leg, so a caller's time in a post-call survey is
//!   not talk), hold is `hold_ms`
//!   (at most the span), wrap-up is the queue's configured `wrapup_s` (the
//!   records hold no wrap-up time). Hold is counted once: AHT equals the
//!   answer-to-end span plus wrap-up.
//! * longest wait: the longest an answered or abandoned caller waited.
//! * per agent: calls taken (answered), talk time, logged-in time (the
//!   agent's sessions, clipped to the period: any state but `logged_out`
//!   and `off_shift`, paused included) and occupancy = talk time over
//!   logged-in time. An agent logged in during the period without a call
//!   shows with 0 calls and 0% occupancy.
//! * first-contact resolution: answered calls whose caller (the record's
//!   `caller`, the number called from) did not call again within the
//!   window, percent of answered calls with a caller number.
//! * callbacks, per queue: offered (waiting callers the offer was played
//!   to), accepted (the caller left its place to a callback: neither
//!   answered nor abandoned, and not offered to the queue's figures),
//!   tries (calls sipacd placed for them: their agent answered first),
//!   reached (the customer answered), given up (the last try failed),
//!   and the mean time from accepting to being reached. The placed calls
//!   count for their agents (calls, talk) but not in the queue figures.
//! * after hours: per closed branch (`ivr:IVR.NODE`, `queue:NAME`), the
//!   calls it turned away (bucketed like the queues), and how many of them an
//!   agent answered anyway (a closed branch that leads to a 24/7 queue).
//! * overall (the whole contact center, per period; only without a queue
//!   filter): every finished call that reached the IVR (`rejected` ones
//!   did not; one the daemon's stop cut off in the IVR, `interrupted`
//!   before any queue, is left out too) falls in exactly one class, tried
//!   in this order:
//!   - queued: it was offered to a queue (a `queue:` step or a last
//!     queue, other than a queue that was closed to it);
//!   - voicemail: it left a message in a `voicemail` node;
//!   - turned away: a closed branch (`closed_by`) ended it in the IVR;
//!   - IVR abandoned: the caller hung up (or its phone went away) before
//!     any IVR node completed: the record's path holds at most the node
//!     it was in;
//!   - self-served: the rest, calls the IVR ended or the caller left after
//!     at least one node had done its work, without asking for an agent
//!     (Amazon Connect's "contained in the flow").
//!
//!   Self-service rate = self-served / calls, in percent (IVR abandons,
//!   voicemail and turned-away calls are in the denominator: the IVR did
//!   not serve them). The overall abandonment rate and AHT are those of
//!   the queues taken together (each call counts once, in its last queue).

use super::record::{AgentSession, CallRecord, Disposition, UnixMs};
use super::time::bucket_label;
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Abandons faster than this are counted apart (and kept out of the
/// service level's denominator).
pub const SHORT_ABANDON_MS: i64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub since_ms: Option<UnixMs>,
    pub until_ms: Option<UnixMs>,
    /// Only this queue's rows (agents still count all their calls).
    pub queue: Option<String>,
    pub by: Option<Bucket>,
    /// Zone of the hour/day buckets.
    pub tz: Tz,
    /// `service_level_s` per queue from the configuration.
    pub service_level_s: BTreeMap<String, u64>,
    /// For queues no longer in the configuration.
    pub default_service_level_s: u64,
    /// `wrapup_s` per queue from the configuration, added to each handled
    /// call's talk time for AHT (the records hold no wrap-up time).
    pub wrapup_s: BTreeMap<String, u64>,
    /// First-contact resolution: an answered caller counts as resolved
    /// when its number did not call again within this window.
    pub fcr_window_ms: i64,
}

/// Default `--fcr-window-h`.
pub const DEFAULT_FCR_WINDOW_H: i64 = 24;

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            since_ms: None,
            until_ms: None,
            queue: None,
            by: None,
            tz: chrono_tz::UTC,
            service_level_s: BTreeMap::new(),
            default_service_level_s: 20,
            wrapup_s: BTreeMap::new(),
            fcr_window_ms: DEFAULT_FCR_WINDOW_H * 3_600_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueRow {
    pub queue: String,
    /// Local start of the hour (`YYYY-MM-DD HH:00`) or day; None when not bucketed.
    pub period: Option<String>,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub abandoned_short: u64,
    /// abandoned / (answered + abandoned), percent; None when both are 0.
    pub abandon_rate_pct: Option<f64>,
    pub overflowed: u64,
    pub interrupted: u64,
    pub closed: u64,
    pub rejected: u64,
    pub answered_within_sl: u64,
    pub service_level_s: u64,
    /// Percent; None when nothing counts in the denominator.
    pub service_level_pct: Option<f64>,
    pub asa_s: Option<f64>,
    /// Talk (hold included: it lies inside the talk span) plus the queue's
    /// configured `wrapup_s`, per answered call.
    pub aht_s: Option<f64>,
    /// The three parts of `aht_s`: mean talk (hold excluded), hold and
    /// wrap-up per answered call.
    pub aht_talk_s: Option<f64>,
    pub aht_hold_s: Option<f64>,
    pub aht_wrapup_s: Option<f64>,
    pub longest_wait_s: f64,
    /// Mean post-call survey score and how many callers gave one.
    pub csat_mean: Option<f64>,
    pub csat_count: u64,
    /// Answered calls whose number did not call again within the FCR
    /// window, percent of answered calls with a number.
    pub fcr_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    pub agent: String,
    pub calls_taken: u64,
    pub talk_s: f64,
    /// Logged in during the period (sessions clipped to it).
    pub logged_in_s: f64,
    /// Talk time, percent of `logged_in_s`; None when never logged in.
    pub occupancy_pct: Option<f64>,
    pub csat_mean: Option<f64>,
    pub csat_count: u64,
}

/// After-hours demand: the calls one closed branch turned away.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClosedRow {
    /// `ivr:IVR.NODE` or `queue:NAME`.
    pub branch: String,
    pub period: Option<String>,
    pub calls: u64,
    /// Of `calls`, answered by an agent afterwards.
    pub answered_after: u64,
}

/// A queue's callbacks over the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallbackRow {
    pub queue: String,
    pub offered: u64,
    pub accepted: u64,
    /// accepted / offered, percent.
    pub accepted_pct: Option<f64>,
    pub tries: u64,
    pub reached: u64,
    pub gave_up: u64,
    /// Mean time from accepting to the customer's answer, in seconds.
    pub time_to_callback_s: Option<f64>,
}

/// The whole contact center's outcome figures for a period (see the
/// module doc for the classes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverallRow {
    pub period: Option<String>,
    /// Finished calls that reached the IVR: the sum of the five classes.
    pub calls: u64,
    pub queued: u64,
    pub voicemail: u64,
    pub turned_away: u64,
    pub ivr_abandoned: u64,
    pub self_served: u64,
    /// self_served / calls, percent; None without calls.
    pub self_service_pct: Option<f64>,
    /// The queues together: answered, abandoned, their rate and AHT.
    pub answered: u64,
    pub abandoned: u64,
    pub abandon_rate_pct: Option<f64>,
    pub aht_s: Option<f64>,
    pub aht_talk_s: Option<f64>,
    pub aht_hold_s: Option<f64>,
    pub aht_wrapup_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub queues: Vec<QueueRow>,
    pub agents: Vec<AgentRow>,
    pub closed: Vec<ClosedRow>,
    pub callbacks: Vec<CallbackRow>,
    /// Empty when the report is limited to one queue.
    pub overall: Vec<OverallRow>,
}

/// Whether `r` is a call sipacd placed for a callback (not a caller's).
fn is_placed(r: &CallRecord) -> bool {
    r.callback.as_ref().is_some_and(|c| c.attempt.is_some())
}

/// The callback figures per queue (see the module comment).
fn callback_rows(records: &[CallRecord], opts: &ReportOptions) -> Vec<CallbackRow> {
    let mut rows: BTreeMap<String, (CallbackRow, i64, u64)> = BTreeMap::new();
    for r in records {
        let (Some(c), Some(q)) = (&r.callback, &r.queue) else {
            continue;
        };
        if opts.queue.as_deref().is_some_and(|w| w != q) {
            continue;
        }
        let (row, wait_ms, waits) = rows.entry(q.clone()).or_default();
        if c.attempt.is_some() {
            row.tries += 1;
            row.gave_up += u64::from(c.gave_up);
            if let (Some(reached), Some(accepted)) = (c.reached_ms, c.accepted_ms) {
                row.reached += 1;
                *wait_ms += (reached - accepted).max(0);
                *waits += 1;
            }
        } else {
            row.offered += u64::from(c.offered_ms.is_some());
            row.accepted += u64::from(c.accepted_ms.is_some());
        }
    }
    rows.into_iter()
        .map(|(queue, (mut row, wait_ms, waits))| {
            row.queue = queue;
            row.accepted_pct =
                (row.offered > 0).then(|| 100.0 * row.accepted as f64 / row.offered as f64);
            row.time_to_callback_s = (waits > 0).then(|| wait_ms as f64 / 1000.0 / waits as f64);
            row
        })
        .collect()
}

#[derive(Default)]
struct Acc {
    offered: u64,
    answered: u64,
    abandoned: u64,
    abandoned_short: u64,
    overflowed: u64,
    interrupted: u64,
    closed: u64,
    rejected: u64,
    in_sl: u64,
    wait_answered_ms: i64,
    waits_answered: u64,
    talk_ms: i64,
    talks: u64,
    /// Of `talk_ms` (the AHT sum): hold and wrap-up.
    hold_ms: i64,
    wrapup_ms: i64,
    longest_wait_ms: i64,
    csat_sum: u64,
    csat_count: u64,
    fcr_base: u64,
    fcr_resolved: u64,
}

/// Whether the caller of `r` did not call again within `window_ms` of its
/// end. `arrivals` holds every record's (number, arrival), sorted.
fn resolved_first_time(r: &CallRecord, arrivals: &[(String, i64)], window_ms: i64) -> bool {
    let end = r.ended_ms.unwrap_or(r.arrived_ms);
    let from = arrivals.partition_point(|(n, t)| (n.as_str(), *t) <= (r.caller.as_str(), end));
    !arrivals[from..]
        .iter()
        .take_while(|(n, _)| *n == r.caller)
        .any(|(_, t)| *t <= end.saturating_add(window_ms))
}

/// The branch that turned `r` away, if one did: its `closed_by`, or for
/// records written before that column, the queue of a `closed` one. (A
/// `closed` record without a queue is an IVR that hung up, after hours or
/// not: those old records cannot tell.)
fn closed_branch(r: &CallRecord) -> Option<String> {
    match (&r.closed_by, r.disposition, &r.queue) {
        (Some(b), _, _) => Some(b.clone()),
        (None, Disposition::Closed, Some(q)) => Some(format!("queue:{q}")),
        _ => None,
    }
}

/// Computes the report over `records` and the agents' `sessions` (both
/// already limited to the period by the queries; rows still `in_progress`
/// are skipped, a session without a logout counts to the period's end).
pub fn compute_report(
    records: &[CallRecord],
    sessions: &[AgentSession],
    opts: &ReportOptions,
) -> Report {
    let mut queues: BTreeMap<(String, Option<String>), Acc> = BTreeMap::new();
    let mut agents: BTreeMap<String, (u64, i64, u64, u64)> = BTreeMap::new();
    // Callers by the number they call from; the calls sipacd placed are
    // no caller calling again.
    let mut arrivals: Vec<(String, i64)> = records
        .iter()
        .filter(|r| !r.caller.is_empty() && !is_placed(r))
        .map(|r| (r.caller.clone(), r.arrived_ms))
        .collect();
    arrivals.sort();
    let mut closed: BTreeMap<(String, Option<String>), (u64, u64)> = BTreeMap::new();
    let wanted = |q: &str| opts.queue.as_deref().is_none_or(|w| w == q);

    for r in records {
        if r.disposition == Disposition::InProgress {
            continue;
        }
        let start = r.queued_ms.unwrap_or(r.arrived_ms);
        let period = opts
            .by
            .map(|b| bucket_label(start, opts.tz, b == Bucket::Hour));

        let branch = closed_branch(r);
        let closed_queue = branch.as_deref().and_then(|b| b.strip_prefix("queue:"));
        if let Some(b) = &branch {
            // With a queue asked for, only that queue's closed redirect.
            let shown = match (opts.queue.as_deref(), closed_queue) {
                (None, _) => true,
                (Some(w), Some(q)) => w == q,
                (Some(_), None) => false,
            };
            if shown {
                let e = closed.entry((b.clone(), period.clone())).or_default();
                e.0 += 1;
                e.1 += u64::from(r.disposition == Disposition::Answered);
            }
        }
        if let Some(q) = closed_queue.filter(|q| wanted(q)) {
            // Turned away by this queue (whether it then went elsewhere or
            // not): closed there, not offered.
            queues
                .entry((q.to_owned(), period.clone()))
                .or_default()
                .closed += 1;
        }

        // Queues the call left for another one (overflow queue:X); the
        // queue that was closed to it did not take it in.
        let left: BTreeSet<&str> = r
            .ivr_path
            .iter()
            .filter_map(|p| p.strip_prefix("queue:"))
            .filter(|q| Some(*q) != r.queue.as_deref() && Some(*q) != closed_queue)
            .collect();
        for q in left.into_iter().filter(|q| wanted(q)) {
            let a = queues.entry((q.to_owned(), period.clone())).or_default();
            a.offered += 1;
            a.overflowed += 1;
        }

        if r.disposition == Disposition::Answered {
            if let (Some(agent), Some(ans)) = (&r.agent, r.answered_ms) {
                let e = agents.entry(agent.clone()).or_default();
                e.0 += 1;
                e.1 += talk_end(r).map_or(0, |end| (end - ans).max(0));
                if let Some(c) = r.csat {
                    e.2 += u64::from(c);
                    e.3 += 1;
                }
            }
        }

        let Some(q) = r.queue.as_deref().filter(|q| wanted(q)) else {
            continue;
        };
        if is_placed(r) {
            continue; // in the callback figures
        }
        if closed_queue == Some(q) {
            continue; // counted above
        }
        let sl_ms = opts
            .service_level_s
            .get(q)
            .copied()
            .unwrap_or(opts.default_service_level_s)
            .saturating_mul(1000);
        let wrapup_ms = opts
            .wrapup_s
            .get(q)
            .copied()
            .unwrap_or(0)
            .saturating_mul(1000) as i64;
        let a = queues.entry((q.to_owned(), period)).or_default();
        if let Some(c) = r.csat {
            a.csat_sum += u64::from(c);
            a.csat_count += 1;
        }
        match r.disposition {
            Disposition::InProgress => {}
            // The caller left its place to a callback (see the callback
            // figures); neither answered nor abandoned.
            Disposition::Callback => {}
            // An IVR's closed branch hung up after the call had been in
            // this queue (overflow to an after-hours IVR) or a record older
            // than `closed_by`.
            Disposition::Closed => a.closed += 1,
            Disposition::Rejected => a.rejected += 1,
            Disposition::Overflowed => {
                a.offered += 1;
                a.overflowed += 1;
            }
            Disposition::Interrupted => {
                a.offered += 1;
                a.interrupted += 1;
            }
            Disposition::Answered => {
                a.offered += 1;
                a.answered += 1;
                if let Some(ans) = r.answered_ms {
                    let wait = (ans - start).max(0);
                    a.wait_answered_ms += wait;
                    a.waits_answered += 1;
                    a.longest_wait_ms = a.longest_wait_ms.max(wait);
                    if i128::from(wait) <= i128::from(sl_ms) {
                        a.in_sl += 1;
                    }
                    if let Some(end) = talk_end(r) {
                        a.add_handled(end - ans, r.hold_ms, wrapup_ms);
                    }
                }
                if !r.caller.is_empty() {
                    a.fcr_base += 1;
                    if resolved_first_time(r, &arrivals, opts.fcr_window_ms) {
                        a.fcr_resolved += 1;
                    }
                }
            }
            Disposition::Abandoned => {
                a.offered += 1;
                a.abandoned += 1;
                if let Some(end) = r.ended_ms {
                    let wait = (end - start).max(0);
                    a.longest_wait_ms = a.longest_wait_ms.max(wait);
                    if wait < SHORT_ABANDON_MS {
                        a.abandoned_short += 1;
                    }
                }
            }
        }
    }

    let overall = if opts.queue.is_none() {
        overall_rows(records, &queues, opts)
    } else {
        Vec::new()
    };
    let queue_rows = queues
        .into_iter()
        .map(|((queue, period), a)| {
            let sl_s = opts
                .service_level_s
                .get(&queue)
                .copied()
                .unwrap_or(opts.default_service_level_s);
            let denom = a.offered.saturating_sub(a.abandoned_short);
            let ended = a.answered + a.abandoned;
            QueueRow {
                period,
                offered: a.offered,
                answered: a.answered,
                abandoned: a.abandoned,
                abandoned_short: a.abandoned_short,
                abandon_rate_pct: ratio(a.abandoned as f64, ended as f64).map(|x| x * 100.0),
                overflowed: a.overflowed,
                interrupted: a.interrupted,
                closed: a.closed,
                rejected: a.rejected,
                answered_within_sl: a.in_sl,
                service_level_s: sl_s,
                service_level_pct: ratio(a.in_sl as f64, denom as f64).map(|x| x * 100.0),
                asa_s: ratio(a.wait_answered_ms as f64 / 1000.0, a.waits_answered as f64),
                aht_s: ratio(a.talk_ms as f64 / 1000.0, a.talks as f64),
                aht_talk_s: a.aht_part(a.talk_ms - a.hold_ms - a.wrapup_ms),
                aht_hold_s: a.aht_part(a.hold_ms),
                aht_wrapup_s: a.aht_part(a.wrapup_ms),
                longest_wait_s: a.longest_wait_ms as f64 / 1000.0,
                csat_mean: ratio(a.csat_sum as f64, a.csat_count as f64),
                csat_count: a.csat_count,
                fcr_pct: ratio(a.fcr_resolved as f64, a.fcr_base as f64).map(|x| x * 100.0),
                queue,
            }
        })
        .collect();

    let logged_in = logged_in_ms(sessions, opts);
    for agent in logged_in.keys() {
        agents.entry(agent.clone()).or_default();
    }
    let agent_rows = agents
        .into_iter()
        .map(|(agent, (calls, talk_ms, csat_sum, csat_count))| {
            let on = logged_in.get(&agent).copied().unwrap_or(0);
            AgentRow {
                calls_taken: calls,
                talk_s: talk_ms as f64 / 1000.0,
                logged_in_s: on as f64 / 1000.0,
                occupancy_pct: ratio(talk_ms as f64, on as f64).map(|x| x * 100.0),
                csat_mean: ratio(csat_sum as f64, csat_count as f64),
                csat_count,
                agent,
            }
        })
        .collect();
    let closed_rows = closed
        .into_iter()
        .map(|((branch, period), (calls, answered_after))| ClosedRow {
            branch,
            period,
            calls,
            answered_after,
        })
        .collect();

    Report {
        queues: queue_rows,
        agents: agent_rows,
        closed: closed_rows,
        callbacks: callback_rows(records, opts),
        overall,
    }
}

impl Acc {
    /// One answered call's handle time: its answer-to-end `span` (hold
    /// inside it), its `hold` and the queue's wrap-up, all in ms.
    fn add_handled(&mut self, span: i64, hold: i64, wrapup: i64) {
        let span = span.max(0);
        self.talk_ms += span + wrapup;
        self.hold_ms += hold.clamp(0, span);
        self.wrapup_ms += wrapup;
        self.talks += 1;
    }

    /// Mean per answered call of one part of AHT, in seconds.
    fn aht_part(&self, ms: i64) -> Option<f64> {
        ratio(ms as f64 / 1000.0, self.talks as f64)
    }
}

/// What became of one call, for the overall figures (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Queued,
    Voicemail,
    TurnedAway,
    IvrAbandoned,
    SelfServed,
}

/// The class of a finished call that reached the IVR.
fn outcome(r: &CallRecord) -> Outcome {
    let branch = closed_branch(r);
    let closed_queue = branch.as_deref().and_then(|b| b.strip_prefix("queue:"));
    let queued = r
        .ivr_path
        .iter()
        .filter_map(|p| p.strip_prefix("queue:"))
        .chain(r.queue.as_deref())
        .any(|q| Some(q) != closed_queue);
    let nodes = r
        .ivr_path
        .iter()
        .filter(|p| !p.starts_with("queue:"))
        .count();
    // The caller hung up or its phone went away (no ACK, media timeout).
    let caller_left = r.disposition == Disposition::Abandoned;
    if queued {
        Outcome::Queued
    } else if r.voicemail.is_some() {
        Outcome::Voicemail
    } else if branch.is_some() {
        Outcome::TurnedAway
    } else if caller_left && nodes <= 1 {
        Outcome::IvrAbandoned
    } else {
        Outcome::SelfServed
    }
}

/// The overall rows: each period's calls by class, and the queues' rows
/// of that period taken together.
fn overall_rows(
    records: &[CallRecord],
    queues: &BTreeMap<(String, Option<String>), Acc>,
    opts: &ReportOptions,
) -> Vec<OverallRow> {
    let mut classes: BTreeMap<Option<String>, [u64; 5]> = BTreeMap::new();
    for r in records {
        // Calls sipacd placed (callbacks) are no callers' calls.
        if matches!(
            r.disposition,
            Disposition::InProgress | Disposition::Rejected
        ) || is_placed(r)
        {
            continue;
        }
        let start = r.queued_ms.unwrap_or(r.arrived_ms);
        let period = opts
            .by
            .map(|b| bucket_label(start, opts.tz, b == Bucket::Hour));
        let class = outcome(r);
        if class != Outcome::Queued && r.disposition == Disposition::Interrupted {
            continue; // cut off in the IVR by the daemon's stop
        }
        classes.entry(period).or_default()[class as usize] += 1;
    }
    let mut together: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    for ((_, period), a) in queues {
        let t = together.entry(period.clone()).or_default();
        t.answered += a.answered;
        t.abandoned += a.abandoned;
        t.talk_ms += a.talk_ms;
        t.talks += a.talks;
        t.hold_ms += a.hold_ms;
        t.wrapup_ms += a.wrapup_ms;
    }
    for period in together.keys() {
        classes.entry(period.clone()).or_default();
    }
    classes
        .into_iter()
        .map(|(period, c)| {
            let a = together.remove(&period).unwrap_or_default();
            let calls: u64 = c.iter().sum();
            let self_served = c[Outcome::SelfServed as usize];
            OverallRow {
                calls,
                queued: c[Outcome::Queued as usize],
                voicemail: c[Outcome::Voicemail as usize],
                turned_away: c[Outcome::TurnedAway as usize],
                ivr_abandoned: c[Outcome::IvrAbandoned as usize],
                self_served,
                self_service_pct: ratio(self_served as f64, calls as f64).map(|x| x * 100.0),
                answered: a.answered,
                abandoned: a.abandoned,
                abandon_rate_pct: ratio(a.abandoned as f64, (a.answered + a.abandoned) as f64)
                    .map(|x| x * 100.0),
                aht_s: ratio(a.talk_ms as f64 / 1000.0, a.talks as f64),
                aht_talk_s: a.aht_part(a.talk_ms - a.hold_ms - a.wrapup_ms),
                aht_hold_s: a.aht_part(a.hold_ms),
                aht_wrapup_s: a.aht_part(a.wrapup_ms),
                period,
            }
        })
        .collect()
}

/// Each agent's logged-in milliseconds inside the period: its sessions
/// clipped to `since..until` (an open one ends with the period; with no
/// `until` it adds nothing: [`crate::cdr::CdrStore::report`] closes open
/// sessions at the present first).
fn logged_in_ms(sessions: &[AgentSession], opts: &ReportOptions) -> BTreeMap<String, i64> {
    let (since, until) = (opts.since_ms, opts.until_ms);
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for s in sessions {
        let start = since.map_or(s.login_ms, |t| s.login_ms.max(t));
        let end = match (s.logout_ms, until) {
            (Some(out), Some(u)) => out.min(u),
            (Some(out), None) => out,
            (None, Some(u)) => u,
            (None, None) => start,
        };
        *out.entry(s.agent.clone()).or_default() += (end - start).max(0);
    }
    out
}

/// When the talk of a finished call ended: with its last leg (an agent
/// who hung up on a caller that then went on to a post-call survey talked
/// until then), at the latest when the call ended.
fn talk_end(r: &CallRecord) -> Option<UnixMs> {
    let end = r.ended_ms?;
    Some(
        r.legs
            .last()
            .and_then(|l| l.ended_ms)
            .map_or(end, |l| l.min(end)),
    )
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// The report as aligned text tables, as `sipacd report` prints it.
pub fn render_text(report: &Report) -> String {
    let opt = |v: Option<f64>, digits: usize| match v {
        Some(x) => format!("{x:.digits$}"),
        None => "-".to_owned(),
    };
    let bucketed = report.queues.iter().any(|q| q.period.is_some());
    let mut header = vec!["queue"];
    if bucketed {
        header.push("period");
    }
    header.extend([
        "offered",
        "answered",
        "abandoned",
        "aband%",
        "aband<5s",
        "overflowed",
        "closed",
        "SL%",
        "ASA s",
        "AHT s",
        "talk",
        "hold",
        "wrap",
        "longest s",
        "CSAT",
        "CSAT n",
        "FCR%",
    ]);
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for q in &report.queues {
        let mut row = vec![q.queue.clone()];
        if bucketed {
            row.push(q.period.clone().unwrap_or_default());
        }
        row.extend([
            q.offered.to_string(),
            q.answered.to_string(),
            q.abandoned.to_string(),
            opt(q.abandon_rate_pct, 1),
            q.abandoned_short.to_string(),
            q.overflowed.to_string(),
            q.closed.to_string(),
            opt(q.service_level_pct, 1),
            opt(q.asa_s, 1),
            opt(q.aht_s, 1),
            opt(q.aht_talk_s, 1),
            opt(q.aht_hold_s, 1),
            opt(q.aht_wrapup_s, 1),
            format!("{:.1}", q.longest_wait_s),
            opt(q.csat_mean, 2),
            q.csat_count.to_string(),
            opt(q.fcr_pct, 1),
        ]);
        rows.push(row);
    }
    let mut out = table(&rows);
    out.push('\n');
    let mut arows = vec![vec![
        "agent".to_owned(),
        "calls".to_owned(),
        "talk s".to_owned(),
        "logged in s".to_owned(),
        "occupancy%".to_owned(),
        "CSAT".to_owned(),
        "CSAT n".to_owned(),
    ]];
    for a in &report.agents {
        arows.push(vec![
            a.agent.clone(),
            a.calls_taken.to_string(),
            format!("{:.1}", a.talk_s),
            format!("{:.1}", a.logged_in_s),
            opt(a.occupancy_pct, 1),
            opt(a.csat_mean, 2),
            a.csat_count.to_string(),
        ]);
    }
    out.push_str(&table(&arows));
    out.push('\n');
    let mut crows = vec![vec!["after hours (closed branch)".to_owned()]];
    if bucketed {
        crows[0].push("period".to_owned());
    }
    crows[0].extend(["calls".to_owned(), "answered after".to_owned()]);
    for c in &report.closed {
        let mut row = vec![c.branch.clone()];
        if bucketed {
            row.push(c.period.clone().unwrap_or_default());
        }
        row.extend([c.calls.to_string(), c.answered_after.to_string()]);
        crows.push(row);
    }
    out.push_str(&table(&crows));
    if !report.callbacks.is_empty() {
        out.push('\n');
        let mut brows = vec![[
            "callbacks (queue)",
            "offered",
            "accepted",
            "accepted%",
            "tries",
            "reached",
            "given up",
            "to callback s",
        ]
        .map(str::to_owned)
        .to_vec()];
        for c in &report.callbacks {
            brows.push(vec![
                c.queue.clone(),
                c.offered.to_string(),
                c.accepted.to_string(),
                opt(c.accepted_pct, 1),
                c.tries.to_string(),
                c.reached.to_string(),
                c.gave_up.to_string(),
                opt(c.time_to_callback_s, 1),
            ]);
        }
        out.push_str(&table(&brows));
    }
    if !report.overall.is_empty() {
        out.push('\n');
        out.push_str(&render_overall(&report.overall, bucketed));
    }
    out.push_str(
        "\naband% = abandoned / (answered + abandoned); occupancy = talk time / logged-in time\n\
         AHT = talk + hold + the queue's wrapup_s (means per answered call); CSAT = mean survey\n\
         score (n scores); FCR% = answered callers whose number did not call again within the\n\
         FCR window; self% = self-served calls (ended in the IVR by the IVR, or by the caller\n\
         after a node completed; no queue, message or closed branch) / calls;\n\
         callbacks: tries are the calls placed (agent first), reached = the customer answered\n",
    );
    out
}

/// The report as pretty JSON (`sipacd report --json`): `queues`,
/// `agents`, `closed` and `overall`, with the fields of their rows.
pub fn report_json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
    s.push('\n');
    s
}

/// The overall table of [`render_text`]: one row per period.
fn render_overall(rows: &[OverallRow], bucketed: bool) -> String {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"));
    let mut header = vec!["overall"];
    if bucketed {
        header.push("period");
    }
    header.extend([
        "calls",
        "queued",
        "self-served",
        "self%",
        "IVR aband",
        "voicemail",
        "turned away",
        "answered",
        "abandoned",
        "aband%",
        "AHT s",
        "talk",
        "hold",
        "wrap",
    ]);
    let mut out = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for o in rows {
        let mut row = vec!["all".to_owned()];
        if bucketed {
            row.push(o.period.clone().unwrap_or_default());
        }
        row.extend([
            o.calls.to_string(),
            o.queued.to_string(),
            o.self_served.to_string(),
            opt(o.self_service_pct),
            o.ivr_abandoned.to_string(),
            o.voicemail.to_string(),
            o.turned_away.to_string(),
            o.answered.to_string(),
            o.abandoned.to_string(),
            opt(o.abandon_rate_pct),
            opt(o.aht_s),
            opt(o.aht_talk_s),
            opt(o.aht_hold_s),
            opt(o.aht_wrapup_s),
        ]);
        out.push(row);
    }
    table(&out)
}

/// Left-aligned first column, right-aligned numbers.
fn table(rows: &[Vec<String>]) -> String {
    text_table(rows, true)
}

/// A plain-text table, columns padded to their widest cell; with
/// `numbers_right`, every column but the first is right-aligned.
pub fn text_table(rows: &[Vec<String>], numbers_right: bool) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, (cell, w)) in r.iter().zip(&widths).enumerate() {
            match (c, numbers_right) {
                (0, _) => {
                    let _ = write!(line, "{cell:<w$}");
                }
                (_, true) => {
                    let _ = write!(line, "  {cell:>w$}");
                }
                (_, false) => {
                    let _ = write!(line, "  {cell:<w$}");
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
