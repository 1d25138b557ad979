//! Admin HTTP API on `server.admin`: health, call records, reload, and the
//! live views the daemon provides through [`AdminBackend`].
//!
//! The HTTP layer knows nothing of calls or agents: the daemon implements
//! [`AdminBackend`] over its running state; tests use a fake one.
//!
//! With `admin_token` set, every `/api/...` request needs
//! `Authorization: Bearer <token>` (401 otherwise, before any handler runs,
//! so nothing changes). `/health` stays open for liveness probes;
//! `/metrics` (Prometheus) is behind the token like the API, since
//! scrapers send bearer tokens (`authorization` in a scrape config).

mod backend;
pub mod board;
mod events;
mod http;
mod listen;
pub mod live;
mod metrics;
mod status;
pub mod today;
mod voicemail;

pub use crate::views::{
    attach_calls, fill_agent_clock, next_open_change, AgentCall, AgentStateRequest, AgentView,
    CallView, NextOpenChange, QueueView, SetStateError, ShiftChange,
};
pub use backend::{AdminBackend, BoxFuture};
pub use events::{with_live_routes, EventHub};
pub use http::{router, router_with_metrics, router_with_status, serve, AdminConfig};
pub use listen::{serve_limited, AdminConnStats, AdminLimits};
pub use status::{BlockedSource, DaemonStatus};
