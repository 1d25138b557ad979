//! The JSON views of the running contact center (queues, agents, calls)
//! and the agent state changes the admin API asks for. The engine fills
//! them in when asked (`endpoint::views`); the admin API serves them. Kept
//! here, apart from both, so that neither depends on the other.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod clock;
pub use clock::{attach_calls, fill_agent_clock, next_open_change, rfc3339_in};

/// `GET /api/v1/queues` item. The `*_today` figures count the calls of the
/// queue (the last queue a call was in) that ended today in
/// `server.timezone`, counted when they end, like `service_level_today`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    pub name: String,
    /// Callers waiting, callbacks waiting in their callers' places
    /// included.
    pub waiting: u32,
    /// Of `waiting`, the callbacks (the caller hung up and is called
    /// back in turn).
    #[serde(default)]
    pub callbacks_waiting: u32,
    pub longest_wait_s: f64,
    pub agents_available: u32,
    pub agents_busy: u32,
    pub open: bool,
    /// Of `agents_busy`, those in wrap-up.
    #[serde(default)]
    pub agents_wrapup: u32,
    #[serde(default)]
    pub agents_paused: u32,
    /// Percent of today's answered + abandoned calls answered within
    /// `service_level_s`; null before the first of the day.
    #[serde(default)]
    pub service_level_today: Option<f64>,
    /// Answered + abandoned + overflowed + interrupted (as the report).
    #[serde(default)]
    pub offered_today: u64,
    #[serde(default)]
    pub answered_today: u64,
    #[serde(default)]
    pub abandoned_today: u64,
    /// Percent of `offered_today` abandoned; null while nothing was offered.
    #[serde(default)]
    pub abandon_rate_today: Option<f64>,
    /// Average speed of answer: mean wait of today's answered calls, in
    /// seconds; null before the first.
    #[serde(default)]
    pub asa_today_s: Option<f64>,
    /// Mean post-call survey score (CSAT) of today's calls of the queue;
    /// null before the first score.
    #[serde(default)]
    pub csat_today: Option<f64>,
    /// Survey scores given today for the queue's calls.
    #[serde(default)]
    pub csat_responses_today: u64,
    /// The queue's `service_level_s`.
    #[serde(default)]
    pub service_level_s: u64,
    /// The queue's `service_level_target` (percent).
    #[serde(default)]
    pub service_level_target: u8,
    /// When the queue's schedule next opens or closes; null without a
    /// schedule or when it never changes.
    #[serde(default)]
    pub next_change: Option<NextOpenChange>,
    /// The expected wait of a caller arriving now, in seconds (from the
    /// queue's recent handle times and the agents serving it); null while
    /// nobody serves the queue or nothing is known yet.
    #[serde(default)]
    pub estimated_wait_s: Option<f64>,
    /// The moving average of the queue's recent handle times (talk plus
    /// wrap-up), in seconds; null before the first answered call ends.
    #[serde(default)]
    pub handle_time_s: Option<f64>,
}

/// The next change of a queue's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextOpenChange {
    /// Whether the queue is open after the change.
    pub open: bool,
    /// RFC 3339, in the schedule's zone offset.
    pub at: String,
    /// The schedule's zone (IANA name).
    pub timezone: String,
}

/// The next start or end of an agent's shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftChange {
    /// Whether the agent is on shift after the change.
    pub on_shift: bool,
    /// RFC 3339, in the agent's zone offset.
    pub at: String,
}

/// The call an agent is talking on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCall {
    /// Call-ID, as in `/api/v1/calls`.
    pub id: String,
    /// The caller's number.
    pub caller: String,
    pub queue: Option<String>,
    /// When the agent answered: RFC 3339 (UTC) and Unix ms.
    pub since: String,
    pub since_ms: i64,
}

/// `GET /api/v1/agents` item. `state` is one of `logged_out`, `available`,
/// `ringing`, `on_call`, `wrapup`, `paused`, `off_shift`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    pub registered: bool,
    pub skills: BTreeMap<String, u8>,
    pub calls_taken: u64,
    /// Since when (Unix ms) the agent is in `state`, as far as the daemon
    /// has seen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_since_ms: Option<i64>,
    /// The agent's `timezone` (IANA name).
    #[serde(default)]
    pub timezone: String,
    /// The agent's wall clock now: RFC 3339 in its zone offset.
    #[serde(default)]
    pub local_time: String,
    /// Whether the agent is within one of its `shift` windows (always,
    /// without shifts).
    #[serde(default)]
    pub on_shift: bool,
    /// When the shift next starts or ends; null without shifts.
    #[serde(default)]
    pub shift_next_change: Option<ShiftChange>,
    /// The call the agent is talking on; null otherwise.
    #[serde(default)]
    pub call: Option<AgentCall>,
    /// Mean post-call survey score (CSAT) of the agent's calls today;
    /// null before the first score.
    #[serde(default)]
    pub csat_today: Option<f64>,
    #[serde(default)]
    pub csat_responses_today: u64,
}

/// `GET /api/v1/callbacks` item: a callback waiting in its caller's place,
/// being called, or waiting for its next try.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallbackView {
    /// `cb-…` (`DELETE /api/v1/callbacks/ID` cancels it).
    pub id: String,
    pub queue: String,
    /// The number called back.
    pub number: String,
    /// The number the caller called from.
    pub caller: String,
    /// The Call-ID of the call that asked for it.
    pub call: String,
    /// `waiting`, `calling`, `retry` or `held` (its queue is gone from the
    /// configuration: kept until a reload brings it back).
    pub state: String,
    /// Its place in the queue while waiting (1 = next).
    pub position: Option<usize>,
    /// Time since the caller entered the queue.
    pub waited_s: f64,
    pub accepted_ms: i64,
    /// Tries made so far.
    pub attempts: u32,
    /// Seconds to the next try (`retry`).
    pub retry_in_s: Option<f64>,
}

/// `GET /api/v1/calls` item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallView {
    pub id: String,
    pub from: String,
    pub number: String,
    pub state: String,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub wait_s: f64,
    /// When the agent answered (Unix ms); null until then.
    #[serde(default)]
    pub answered_ms: Option<i64>,
    /// A waiting caller's place in its queue (1 = served next); null once
    /// an agent answered or outside a queue.
    #[serde(default)]
    pub position: Option<usize>,
    /// The expected rest of a waiting caller's wait at that place, in
    /// seconds; null when there is no estimate.
    #[serde(default)]
    pub estimated_wait_s: Option<f64>,
}

/// Answer of `POST /api/v1/trunks/{name}/calls`: the outbound call placed;
/// its steps follow as `trunk_call` live events with the same `call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkCallPlaced {
    pub id: u64,
    /// The outbound call's Call-ID (the `call` of its live events).
    pub call: String,
    pub trunk: String,
    pub to: String,
}

/// Why `POST /api/v1/trunks/{name}/calls` placed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceCallError {
    #[error("no trunk `{0}`")]
    UnknownTrunk(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Refused(String),
}

/// Body of `POST /api/v1/agents/{id}/state`: `{"state":"available"}` or
/// `{"state":"paused","reason":"lunch"}` (reason optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStateRequest {
    Available,
    Paused { reason: Option<String> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStateBody {
    state: String,
    #[serde(default)]
    reason: Option<String>,
}

impl AgentStateRequest {
    /// Parses the JSON body; the message says what was wrong.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        let raw: RawStateBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        match (raw.state.as_str(), raw.reason) {
            ("available", None) => Ok(AgentStateRequest::Available),
            ("available", Some(_)) => Err("`reason` goes with `paused` only".into()),
            ("paused", reason) => Ok(AgentStateRequest::Paused { reason }),
            (other, _) => Err(format!("state `{other}` cannot be set")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetStateError {
    /// Answered 404.
    #[error("unknown agent `{0}`")]
    UnknownAgent(String),
    /// The change is not possible now (e.g. `available` while logged out):
    /// answered 409 with the message.
    #[error("{0}")]
    Refused(String),
}

/// Answer of `POST`, `PATCH` and `DELETE /api/v1/calls/{id}/monitor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorView {
    /// The monitored call's Call-ID (the `call` of its `call_monitor`
    /// live events).
    pub call: String,
    pub supervisor: String,
    /// `listen`, `whisper` or `barge`.
    pub mode: String,
    /// `calling` (the supervisor's phone rings), `connected` or `ended`.
    pub state: String,
}

/// Why a monitor request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    #[error("no call `{0}` in progress")]
    UnknownCall(String),
    #[error("call `{0}` is not monitored")]
    NotMonitored(String),
    #[error("{0}")]
    BadRequest(String),
    /// Not bridged, already monitored, supervisor unreachable, no ports.
    #[error("{0}")]
    Conflict(String),
}

/// What a monitor request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorRequest {
    /// Call `supervisor` to monitor in `mode`.
    Start {
        supervisor: String,
        mode: crate::media::MonitorMode,
    },
    /// The monitor leg's new mode.
    Mode(crate::media::MonitorMode),
    /// End the monitor leg.
    Stop,
}
