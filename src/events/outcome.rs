//! How a call ended and why the router chose its agent: facts the engine
//! states in its events (`Offered`, `Ended`) and the call record keeps.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
/// How a call ended. `InProgress` is only ever seen on rows of calls that
/// have not ended (or whose process died: see [`crate::cdr::CdrStore::open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    InProgress,
    Answered,
    Abandoned,
    Overflowed,
    Closed,
    Rejected,
    Interrupted,
    /// The caller accepted a callback and left its place to it.
    Callback,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::InProgress => "in_progress",
            Disposition::Answered => "answered",
            Disposition::Abandoned => "abandoned",
            Disposition::Overflowed => "overflowed",
            Disposition::Closed => "closed",
            Disposition::Rejected => "rejected",
            Disposition::Interrupted => "interrupted",
            Disposition::Callback => "callback",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Disposition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "in_progress" => Disposition::InProgress,
            "answered" => Disposition::Answered,
            "abandoned" => Disposition::Abandoned,
            "overflowed" => Disposition::Overflowed,
            "closed" => Disposition::Closed,
            "rejected" => Disposition::Rejected,
            "interrupted" => Disposition::Interrupted,
            "callback" => Disposition::Callback,
            other => return Err(format!("unknown disposition `{other}`")),
        })
    }
}

/// Who sent the BYE/CANCEL (or `System` for timeouts, overflow to hangup,
/// drain and rejections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupBy {
    Caller,
    Agent,
    System,
}

impl HangupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::Caller => "caller",
            HangupBy::Agent => "agent",
            HangupBy::System => "system",
        }
    }
}

impl FromStr for HangupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "caller" => HangupBy::Caller,
            "agent" => HangupBy::Agent,
            "system" => HangupBy::System,
            other => return Err(format!("unknown hangup_by `{other}`")),
        })
    }
}

/// One agent the router looked at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub agent: String,
    /// Strategy-specific ranking key (idle seconds, skill level, calls taken...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Why it was skipped or how it ranked, for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Why the router chose the agent that got the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingDecision {
    pub strategy: String,
    pub candidates: Vec<Candidate>,
    pub chosen: Option<String>,
    pub reason: String,
    /// Agents with the queue's skills (at the caller's relax step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible: Option<u64>,
    /// Of those, still available right after this offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<u64>,
}

/// How one callback attempt ended for the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackOutcome {
    /// The customer answered and was bridged to the agent.
    Reached,
    /// 486/600/603.
    Busy,
    /// Not answered within the callback's `ring_s` (or 408/480).
    NoAnswer,
    /// Any other failure: the trunk full or refusing, the agent gone
    /// before the customer answered.
    Failed,
}

impl CallbackOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackOutcome::Reached => "reached",
            CallbackOutcome::Busy => "busy",
            CallbackOutcome::NoAnswer => "no_answer",
            CallbackOutcome::Failed => "failed",
        }
    }

    /// The outcome of a trunk call that failed with `code`.
    pub fn of_code(code: u16) -> CallbackOutcome {
        match code {
            486 | 600 | 603 => CallbackOutcome::Busy,
            408 | 480 | 487 => CallbackOutcome::NoAnswer,
            _ => CallbackOutcome::Failed,
        }
    }
}
