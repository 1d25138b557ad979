//! What `/health` and the block list read from the running daemon: why
//! it is degraded (records or registrations that cannot be written) and
//! which sources are blocked (request floods, password guessing).

use serde::Serialize;
use std::net::IpAddr;

/// One blocked source, as `GET /api/v1/blocked` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedSource {
    /// The address (an IPv6 source as its /64 network address).
    pub source: String,
    /// `flood` (too many requests) or `auth` (failed REGISTERs).
    pub reason: &'static str,
    /// Seconds until the block ends by itself (rounded up).
    pub seconds_left: u64,
}

/// The daemon's side; tests use a fake one.
pub trait DaemonStatus: Send + Sync {
    /// Why the daemon is degraded, one line each (`records: ...`,
    /// `registrations: ...`); empty when all is well.
    fn degraded(&self) -> Vec<String>;
    /// Every source blocked now, by either limit.
    fn blocked(&self) -> Vec<BlockedSource>;
    /// Lifts every block on `ip`; false if there was none.
    fn unblock(&self, ip: IpAddr) -> bool;
}
