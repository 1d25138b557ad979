//! Planning round-the-clock support from the configuration and the call
//! records, without a running daemon:
//!
//! * [`coverage`]: for every queue and interval of the coming weeks, in the
//!   queue's own zone and on real dates, whether it is open and which agents
//!   could take its calls (at its skills and after each relax step).
//! * [`demand`]: calls offered, handle time and patience per interval of the
//!   week, from the call records.
//! * [`erlang`]: Erlang C and Erlang A (callers who give up) staffing.
//! * [`staffing`]: the agents each interval needs next to those on shift.
//! * [`replay`]: recorded calls through the real router on a virtual clock.
//! * [`render`]: the text heat map, CSV and JSON; [`svg`]: the `/plan` page.
//!
//! Everything here is pure over its inputs (config, records, a start date):
//! `sipacd plan`, `sipacd check`, the admin API and the tests share it.

pub mod coverage;
pub mod demand;
pub mod erlang;
pub mod locate;
pub mod render;
pub mod replay;
pub mod staffing;
pub mod svg;

#[cfg(test)]
mod tests;

pub use coverage::{coverage, Cell, CoverageOptions, DayRow, QueueCoverage, Range, Status};
pub use demand::{demand, Demand, DemandOptions, SlotDemand};
pub use staffing::{plan, Plan, PlanOptions, QueuePlan, SlotNeed};

/// Interval lengths the planner accepts, in minutes (they divide an hour, and
/// every zone's offset from UTC is a multiple of 15 minutes).
pub const INTERVALS: [u32; 3] = [15, 30, 60];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("--interval must be 15, 30 or 60 (minutes), not {0}")]
    Interval(u32),
    #[error("--weeks must be 1 to 52, not {0}")]
    Weeks(u32),
    #[error("unknown queue `{0}`")]
    UnknownQueue(String),
    #[error(transparent)]
    Cdr(#[from] crate::cdr::CdrError),
    #[error("{0}")]
    Replay(String),
}
