//! The call record as the call path fills it in.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Unix time in milliseconds; what the `*_ms` columns hold.
pub type UnixMs = i64;

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

/// One call, from arrival to end. Times are Unix milliseconds.
///
/// `ivr_path` lists the nodes the call went through; entering a queue is
/// written as `queue:NAME`, so a call that overflowed from queue A into queue
/// B (`queue` = B) still counts as offered to and overflowed from A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: String,
    pub caller: String,
    pub number: String,
    pub ivr_path: Vec<String>,
    pub variables: BTreeMap<String, String>,
    /// The queue the call was in last.
    pub queue: Option<String>,
    pub arrived_ms: UnixMs,
    /// When the call entered `queue` (its last queue).
    pub queued_ms: Option<UnixMs>,
    pub offered_ms: Option<UnixMs>,
    pub answered_ms: Option<UnixMs>,
    pub ended_ms: Option<UnixMs>,
    pub agent: Option<String>,
    pub disposition: Disposition,
    pub hangup_by: Option<HangupBy>,
    pub routing: Option<RoutingDecision>,
    /// Time on hold (either phone's re-INVITE or UPDATE), in ms.
    #[serde(default)]
    pub hold_ms: i64,
    /// The first closed branch that turned the call away, whatever became
    /// of it afterwards: `ivr:IVR.NODE` (a `schedule` node's `closed`) or
    /// `queue:NAME` (a queue's `closed` redirect). After-hours demand.
    #[serde(default)]
    pub closed_by: Option<String>,
}

/// One span of an agent's logged-in time (any state but `logged_out` and
/// `off_shift`). `logout_ms` is `None` while the span is still open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSession {
    pub agent: String,
    pub login_ms: UnixMs,
    pub logout_ms: Option<UnixMs>,
}

impl CallRecord {
    /// The row written at arrival, before anything else is known.
    pub fn arrival(id: &str, caller: &str, number: &str, arrived_ms: UnixMs) -> Self {
        CallRecord {
            id: id.to_owned(),
            caller: caller.to_owned(),
            number: number.to_owned(),
            ivr_path: Vec::new(),
            variables: BTreeMap::new(),
            queue: None,
            arrived_ms,
            queued_ms: None,
            offered_ms: None,
            answered_ms: None,
            ended_ms: None,
            agent: None,
            disposition: Disposition::InProgress,
            hangup_by: None,
            routing: None,
            hold_ms: 0,
            closed_by: None,
        }
    }
}

/// The wall clock now, in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
