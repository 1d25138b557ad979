//! The call record as the call path fills it in.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::events::{Candidate, Disposition, HangupBy, RoutingDecision};

/// Unix time in milliseconds; what the `*_ms` columns hold.
pub type UnixMs = i64;

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
    /// The agents who had the call, in order: one leg per answer, each
    /// ended by a transfer (`transferred_to`) or by the end of the call.
    #[serde(default)]
    pub legs: Vec<AgentLegRecord>,
    /// The call's recording, relative to `server.data_dir`
    /// (`recordings/YYYY-MM-DD/CALL.wav`); served by
    /// `GET /api/v1/calls/ID/recording`.
    #[serde(default)]
    pub recording: Option<String>,
    /// Supervisors' phones on the call (listen, whisper, barge), in order.
    #[serde(default)]
    pub monitors: Vec<MonitorRecord>,
    /// The message the caller left in a `voicemail` node, relative to
    /// `server.data_dir` (`voicemail/YYYY-MM-DD/CALL.wav`); served by
    /// `GET /api/v1/voicemail/ID`.
    #[serde(default)]
    pub voicemail: Option<String>,
    /// The caller's score in the post-call survey (CSAT), if it gave one.
    #[serde(default)]
    pub csat: Option<u8>,
    /// A queue's callback: offered to (and perhaps accepted by) this
    /// caller, or, on a call sipacd placed for one, which try it was and
    /// what became of it.
    #[serde(default)]
    pub callback: Option<CallbackRecord>,
}

/// The callback part of a call record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRecord {
    /// The callback's id (`GET /api/v1/callbacks`), once accepted.
    #[serde(default)]
    pub id: Option<String>,
    /// The number called back.
    #[serde(default)]
    pub number: Option<String>,
    /// When the waiting caller was offered the callback (the call that
    /// asked) .
    #[serde(default)]
    pub offered_ms: Option<UnixMs>,
    /// When the caller accepted it.
    #[serde(default)]
    pub accepted_ms: Option<UnixMs>,
    /// On a call placed for the callback: its try (from 1) and the call
    /// that asked for it.
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub origin: Option<String>,
    /// `reached`, `busy`, `no_answer` or `failed` (a placed call).
    #[serde(default)]
    pub outcome: Option<String>,
    /// When the customer answered (a placed call that reached it).
    #[serde(default)]
    pub reached_ms: Option<UnixMs>,
    /// The last try the queue allows failed: the callback was given up.
    #[serde(default)]
    pub gave_up: bool,
}

/// One supervisor's monitor leg of a call, from its answer to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorRecord {
    /// The agent id or SIP URI called.
    pub supervisor: String,
    pub started_ms: UnixMs,
    /// `None` while the leg is up.
    pub ended_ms: Option<UnixMs>,
    /// Why it ended (`supervisor`, `api`, `call_ended`, ...).
    #[serde(default)]
    pub ended_by: Option<String>,
    /// Each mode the leg was in, with when it started.
    pub modes: Vec<MonitorMode>,
}

/// One mode span of a monitor leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorMode {
    pub mode: String,
    pub since_ms: UnixMs,
}

/// One agent's part of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLegRecord {
    pub agent: String,
    /// The queue the agent answered from.
    pub queue: Option<String>,
    pub answered_ms: UnixMs,
    /// `None` while the agent is still on the call.
    pub ended_ms: Option<UnixMs>,
    /// Where the agent passed the call on to (`queue:NAME`,
    /// `ivr:NAME.NODE`), if it did.
    #[serde(default)]
    pub transferred_to: Option<String>,
    /// A leg through a trunk (a transfer to an outside number): the trunk
    /// and the number called; `agent` is empty then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

impl AgentLegRecord {
    /// The leg of `agent`, answered at `answered_ms` in `queue`.
    pub fn agent(agent: &str, queue: Option<String>, answered_ms: UnixMs) -> Self {
        AgentLegRecord {
            agent: agent.to_owned(),
            queue,
            answered_ms,
            ended_ms: None,
            transferred_to: None,
            trunk: None,
            number: None,
        }
    }

    /// The leg of an outside number `number` answered on `trunk`.
    pub fn outside(trunk: &str, number: &str, answered_ms: UnixMs) -> Self {
        AgentLegRecord {
            agent: String::new(),
            queue: None,
            answered_ms,
            ended_ms: None,
            transferred_to: None,
            trunk: Some(trunk.to_owned()),
            number: Some(number.to_owned()),
        }
    }
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
            legs: Vec::new(),
            recording: None,
            monitors: Vec::new(),
            voicemail: None,
            csat: None,
            callback: None,
        }
    }
}

/// The wall clock now, in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
