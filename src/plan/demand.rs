//! Demand from history: per queue and interval of the week (on the queue's
//! wall clock), the calls offered per week, their handle time, how many gave
//! up and how patient callers were.
//!
//! Read from the call records: a call counts for its last queue (`queue`),
//! at the time it entered it (`queued_ms`), when it was offered there
//! (answered, abandoned, overflowed or interrupted; as `sipacd report`
//! counts). Handle time is talk (answer to end) plus the queue's configured
//! `wrapup_s` (wrap-up is not in the record). Patience is estimated for
//! exponential patience: callers who gave up, divided by the time all
//! callers spent waiting (those answered waited at least that long), the
//! usual estimate with censored waits.

use super::coverage::queue_zone;
use crate::cdr::{CallRecord, Disposition};

type UnixMs = i64;
use crate::config::Config;
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which records, and how to slice them.
#[derive(Debug, Clone)]
pub struct DemandOptions {
    pub since_ms: UnixMs,
    pub until_ms: UnixMs,
    pub interval_min: u32,
}

/// One interval of the week.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlotDemand {
    /// Calls offered over the whole history in this interval of the week.
    pub offered: u32,
    pub answered: u32,
    pub abandoned: u32,
    /// Sum of handle times (talk + wrap-up) of answered calls, seconds.
    pub handle_s_sum: f64,
}

/// One queue's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueDemand {
    pub queue: String,
    /// Weeks the history spans (the divisor of `offered` per week).
    pub weeks: f64,
    /// Interval of the week (Monday 00:00 = 0) -> counts.
    pub slots: BTreeMap<u32, SlotDemand>,
    pub offered: u32,
    pub answered: u32,
    pub abandoned: u32,
    /// Mean handle time over the whole history, seconds.
    pub handle_s: Option<f64>,
    /// Mean patience estimate, seconds (`None` without abandons).
    pub patience_s: Option<f64>,
    /// Mean wait of callers who gave up, seconds.
    pub abandon_wait_s: Option<f64>,
    /// Mean talk time of answered calls, seconds (replay uses it for
    /// callers who never reached an agent).
    pub talk_s: Option<f64>,
}

impl QueueDemand {
    /// Calls per week expected in interval `slot` of the week.
    pub fn calls_per_week(&self, slot: u32) -> f64 {
        if self.weeks <= 0.0 {
            return 0.0;
        }
        self.slots
            .get(&slot)
            .map_or(0.0, |s| f64::from(s.offered) / self.weeks)
    }

    /// Handle time for `slot`: its own mean, else the queue's.
    pub fn handle_for(&self, slot: u32) -> Option<f64> {
        self.slots
            .get(&slot)
            .filter(|s| s.answered > 0)
            .map(|s| s.handle_s_sum / f64::from(s.answered))
            .or(self.handle_s)
    }
}

/// Every queue's demand, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Demand {
    pub since_ms: UnixMs,
    pub until_ms: UnixMs,
    pub queues: BTreeMap<String, QueueDemand>,
}

/// Whether a record was offered to its last queue (see the module docs).
pub fn offered(r: &CallRecord) -> bool {
    matches!(
        r.disposition,
        Disposition::Answered
            | Disposition::Abandoned
            | Disposition::Overflowed
            | Disposition::Interrupted
    )
}

/// The interval of the week (0 = Monday 00:00) that `t` falls in on `tz`.
pub fn slot_of_week(t: DateTime<Utc>, tz: chrono_tz::Tz, interval_min: u32) -> u32 {
    let l = t.with_timezone(&tz);
    let minute = l.weekday().num_days_from_monday() * 1440 + l.hour() * 60 + l.minute();
    minute / interval_min.max(1)
}

/// Demand per queue from `records` (any order).
pub fn demand(cfg: &Config, records: &[CallRecord], opts: &DemandOptions) -> Demand {
    let mut queues: BTreeMap<String, QueueDemand> = BTreeMap::new();
    let mut waited: BTreeMap<String, f64> = BTreeMap::new();
    let mut abandon_wait: BTreeMap<String, f64> = BTreeMap::new();
    let mut talk: BTreeMap<String, f64> = BTreeMap::new();
    let mut first: Option<UnixMs> = None;
    for r in records {
        let (Some(qname), Some(queued)) = (&r.queue, r.queued_ms) else {
            continue;
        };
        let Some(q) = cfg.queues.get(qname) else {
            continue;
        };
        if queued < opts.since_ms || queued >= opts.until_ms || !offered(r) {
            continue;
        }
        first = Some(first.map_or(queued, |f| f.min(queued)));
        let Some(at) = DateTime::<Utc>::from_timestamp_millis(queued) else {
            continue;
        };
        let slot = slot_of_week(at, queue_zone(cfg, q), opts.interval_min);
        let d = queues.entry(qname.clone()).or_insert_with(|| QueueDemand {
            queue: qname.clone(),
            weeks: 0.0,
            slots: BTreeMap::new(),
            offered: 0,
            answered: 0,
            abandoned: 0,
            handle_s: None,
            patience_s: None,
            abandon_wait_s: None,
            talk_s: None,
        });
        let s = d.slots.entry(slot).or_default();
        s.offered += 1;
        d.offered += 1;
        let secs = |a: UnixMs, b: UnixMs| (b - a).max(0) as f64 / 1000.0;
        match (r.disposition, r.answered_ms, r.ended_ms) {
            (Disposition::Answered, Some(ans), end) => {
                let t = end.map_or(0.0, |e| secs(ans, e));
                s.answered += 1;
                d.answered += 1;
                s.handle_s_sum += t + q.wrapup_s as f64;
                *talk.entry(qname.clone()).or_default() += t;
                *waited.entry(qname.clone()).or_default() += secs(queued, ans);
            }
            (Disposition::Abandoned, _, Some(end)) => {
                s.abandoned += 1;
                d.abandoned += 1;
                *waited.entry(qname.clone()).or_default() += secs(queued, end);
                *abandon_wait.entry(qname.clone()).or_default() += secs(queued, end);
            }
            _ => {}
        }
    }
    let from = first.map_or(opts.since_ms, |f| f.max(opts.since_ms));
    // Whole weeks the records span (at least one), so a young history is
    // not diluted by weeks before the first call.
    let weeks = (((opts.until_ms - from).max(0) as f64) / (7.0 * 86_400_000.0))
        .ceil()
        .max(1.0);
    for (name, d) in &mut queues {
        d.weeks = weeks;
        let handled: f64 = d.slots.values().map(|s| s.handle_s_sum).sum();
        if d.answered > 0 {
            d.handle_s = Some(handled / f64::from(d.answered));
            d.talk_s = talk.get(name).map(|t| t / f64::from(d.answered));
        }
        if d.abandoned > 0 {
            let w = waited.get(name).copied().unwrap_or(0.0);
            d.patience_s = (w > 0.0).then(|| w / f64::from(d.abandoned));
            d.abandon_wait_s = abandon_wait.get(name).map(|t| t / f64::from(d.abandoned));
        }
    }
    Demand {
        since_ms: opts.since_ms,
        until_ms: opts.until_ms,
        queues,
    }
}

/// The demand of `[since, until)` from the call records in `dir`; `None`
/// when there is no database there yet (nothing is created).
pub fn from_store(
    cfg: &Config,
    dir: &std::path::Path,
    since_ms: UnixMs,
    until_ms: UnixMs,
    interval_min: u32,
) -> Result<Option<Demand>, crate::cdr::CdrError> {
    if !dir.join(crate::cdr::DB_FILE).exists() {
        return Ok(None);
    }
    let store = crate::cdr::CdrStore::open_reader(dir)?;
    // Arrival comes before entering the queue: a day's margin.
    let records = store.query(&crate::cdr::CdrFilter {
        since_ms: Some(since_ms - 86_400_000),
        until_ms: Some(until_ms),
    })?;
    Ok(Some(demand(
        cfg,
        &records,
        &DemandOptions {
            since_ms,
            until_ms,
            interval_min,
        },
    )))
}
