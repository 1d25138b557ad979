//! The steps of a call sipacd places through a trunk (`[trunks.NAME]`):
//! what a feature that calls out (a callback) waits for, and what the
//! records, metrics and live events report.

use std::sync::Arc;
use std::time::Duration;

/// One outbound call: a number unique in the process and its Call-ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkCallRef {
    pub id: u64,
    pub call_id: Arc<str>,
}

/// What happened to an outbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkStep {
    /// The INVITE went out.
    Placed,
    /// The gateway said the far end rings (180/183).
    Ringing { code: u16 },
    /// The gateway's 401/407 was answered with credentials.
    Authenticated { code: u16 },
    /// The far end answered; the call is up.
    Answered,
    /// The call never came up: the gateway's final code, or 408 when it
    /// never answered.
    Failed { code: u16, reason: String },
    /// The call that was up is over; `by_remote` when the gateway's side
    /// hung up, `talk` how long it was up.
    Ended { by_remote: bool, talk: Duration },
}

impl TrunkStep {
    /// The step's name in live events and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            TrunkStep::Placed => "placed",
            TrunkStep::Ringing { .. } => "ringing",
            TrunkStep::Authenticated { .. } => "authenticated",
            TrunkStep::Answered => "answered",
            TrunkStep::Failed { .. } => "failed",
            TrunkStep::Ended { .. } => "ended",
        }
    }
}
