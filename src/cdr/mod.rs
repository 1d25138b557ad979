//! Call records: one SQLite row per call under `server.data_dir`, and the
//! reports computed from them.
//!
//! Flow: the call path hands a [`CallRecord`] to a [`CdrHandle`] at arrival
//! (disposition `in_progress`, so a crash leaves evidence) and again at the
//! end; the [`CdrWriter`] thread writes them in batches, one transaction per
//! batch, so writing never holds up a call. [`CdrStore::open`] marks rows
//! left `in_progress` by a dead process as `interrupted`.
//!
//! Durability: the database runs in WAL mode with `synchronous=NORMAL`.
//! `kill -9` loses nothing that was committed (the WAL is in the OS page
//! cache, which survives the process). A power loss or kernel crash can lose
//! the transactions committed since the last WAL checkpoint/fsync, i.e. the
//! most recent batches (typically well under a second of calls); the file
//! itself stays consistent.

mod export;
pub mod fold;
mod queue_log;
pub mod queue_log_fold;
mod record;
mod report;
mod store;
mod time;
mod writer;

pub use export::{to_csv, to_json};
pub use queue_log::{QueueLogHandle, QueueLogWriter};
pub use record::{
    AgentLegRecord, AgentSession, CallRecord, CallbackRecord, Candidate, Disposition, HangupBy,
    RoutingDecision,
};
pub use report::{
    compute_report, render_text, report_json, text_table, AgentRow, Bucket, CallbackRow, ClosedRow,
    OverallRow, QueueRow, Report, ReportOptions, DEFAULT_FCR_WINDOW_H, SHORT_ABANDON_MS,
};
pub use store::{CdrError, CdrFilter, CdrStore, SessionEvent, DB_FILE, SCHEMA_VERSION};
pub(crate) use time::rfc3339;
pub use time::{parse_time, TimeParseError};
pub use writer::{CdrHandle, CdrWriter, WriterStats, WriterStatsSource};
