//! The plan: coverage of every interval, and where there is history the
//! agents it needs for the queue's service level next to those on shift.
//!
//! Per interval of the coming weeks, the demand of the same interval of the
//! week in the history (calls per week, handle time), the queue's
//! `service_level_s` and `service_level_target`, and Erlang A where callers
//! gave up in the history (their patience), Erlang C where none did.
//! `needed` is the agents on the phones; `scheduled` adds shrinkage
//! (`needed / (1 - shrinkage)`, rounded up). `on_shift` counts the agents
//! on shift with the queue's own skills: an agent who serves several queues
//! counts in each of them, so shared agents look like more than they are.

use super::coverage::{coverage, CoverageOptions, QueueCoverage};
use super::demand::{slot_of_week, Demand, QueueDemand};
use super::erlang::{agents_needed, outcome, with_shrinkage, Traffic};
use crate::config::Config;
use serde::Serialize;

/// Erlang searches stop here (a queue needing more is reported at it).
const MAX_AGENTS: u32 = 5_000;

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub coverage: CoverageOptions,
    /// Share of scheduled time not on the phones, 0..1.
    pub shrinkage: f64,
}

/// Staffing of one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotNeed {
    /// Calls expected in the interval (per week of history).
    pub calls: f64,
    pub handle_s: f64,
    /// Agents on the phones the service level target needs.
    pub needed: u32,
    /// `needed` with shrinkage.
    pub scheduled: u32,
    /// Agents on shift with the queue's skills.
    pub on_shift: u32,
    /// on_shift - scheduled: below 0 understaffed, above 0 overstaffed.
    pub balance: i64,
    /// Service level the agents on shift (less shrinkage) would reach.
    pub service_level: f64,
    pub abandon: f64,
    /// Busy share of the agents on shift (less shrinkage).
    pub occupancy: f64,
}

/// One queue's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuePlan {
    #[serde(flatten)]
    pub coverage: QueueCoverage,
    pub service_level_s: u64,
    /// Fraction, from the queue's `service_level_target` percentage.
    pub service_level_target: f64,
    /// History summary; `None` without call records for the queue.
    pub history: Option<HistorySummary>,
    /// Parallel to `coverage.days[d].cells[c]`; all `None` without history.
    pub needs: Vec<Vec<Option<SlotNeed>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistorySummary {
    pub weeks: f64,
    pub offered: u32,
    pub answered: u32,
    pub abandoned: u32,
    pub handle_s: Option<f64>,
    pub patience_s: Option<f64>,
    /// `erlang_a` when patience is known, else `erlang_c`.
    pub model: &'static str,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub interval_min: u32,
    pub weeks: u32,
    pub shrinkage: f64,
    pub history_since_ms: Option<i64>,
    pub history_until_ms: Option<i64>,
    pub queues: Vec<QueuePlan>,
}

/// Coverage plus staffing.
pub fn plan(
    cfg: &Config,
    opts: &PlanOptions,
    demand: Option<&Demand>,
) -> Result<Plan, super::PlanError> {
    let cov = coverage(cfg, &opts.coverage)?;
    let interval = opts.coverage.interval_min;
    let queues = cov
        .into_iter()
        .map(|c| {
            let q = cfg.queues.get(&c.queue);
            let sl_s = q.map_or(20, |q| q.service_level_s);
            let target = f64::from(q.map_or(80, |q| q.service_level_target)) / 100.0;
            let hist = demand.and_then(|d| d.queues.get(&c.queue));
            let needs = c
                .days
                .iter()
                .map(|d| {
                    d.cells
                        .iter()
                        .map(|cell| {
                            let (cell, h) = (cell.as_ref()?, hist?);
                            let slot = slot_of_week(cell.at, c.tz, interval);
                            let on_shift = cell.eligible.first().copied().unwrap_or(0);
                            Some(need(
                                h,
                                slot,
                                interval,
                                sl_s,
                                target,
                                on_shift,
                                opts.shrinkage,
                            ))
                        })
                        .collect()
                })
                .collect();
            QueuePlan {
                service_level_s: sl_s,
                service_level_target: target,
                history: hist.map(|h| HistorySummary {
                    weeks: h.weeks,
                    offered: h.offered,
                    answered: h.answered,
                    abandoned: h.abandoned,
                    handle_s: h.handle_s,
                    patience_s: h.patience_s,
                    model: if h.patience_s.is_some() {
                        "erlang_a"
                    } else {
                        "erlang_c"
                    },
                }),
                needs,
                coverage: c,
            }
        })
        .collect();
    Ok(Plan {
        interval_min: interval,
        weeks: opts.coverage.weeks,
        shrinkage: opts.shrinkage,
        history_since_ms: demand.map(|d| d.since_ms),
        history_until_ms: demand.map(|d| d.until_ms),
        queues,
    })
}

fn need(
    h: &QueueDemand,
    slot: u32,
    interval: u32,
    sl_s: u64,
    target: f64,
    on_shift: u32,
    shrinkage: f64,
) -> SlotNeed {
    let calls = h.calls_per_week(slot);
    let handle_s = h.handle_for(slot).unwrap_or(0.0);
    let t = Traffic {
        calls,
        interval_s: f64::from(interval) * 60.0,
        handle_s,
        patience_s: h.patience_s,
    };
    let needed = agents_needed(&t, sl_s as f64, target, MAX_AGENTS).agents;
    let scheduled = with_shrinkage(needed, shrinkage);
    let on_phones = (f64::from(on_shift) * (1.0 - shrinkage.clamp(0.0, 0.95))).floor() as u32;
    let have = outcome(on_phones, &t, sl_s as f64);
    SlotNeed {
        calls,
        handle_s,
        needed,
        scheduled,
        on_shift,
        balance: i64::from(on_shift) - i64::from(scheduled),
        service_level: if calls > 0.0 { have.service_level } else { 1.0 },
        abandon: have.abandon,
        occupancy: if calls > 0.0 { have.occupancy } else { 0.0 },
    }
}
