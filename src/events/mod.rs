//! The engine's one event stream: a typed event per step of a call and of
//! an agent, in the order they happened. The engine (`endpoint`) only
//! queues them ([`crate::endpoint::Endpoint::poll_event`]); everything that
//! reports on calls folds this stream in a module of its own, and none of
//! them reads the engine's state:
//!
//! | consumer | module |
//! |---|---|
//! | call records and agent sessions | [`crate::cdr::fold`] |
//! | live events (SSE, wallboard feed) | [`crate::admin::live`] |
//! | today's figures per queue (wallboard, `GET /api/v1/queues`) | [`crate::admin::today`] |
//! | the figures of the moment: waiting, longest wait, agents by state, estimated wait (wallboard, `GET /api/v1/queues`, `/metrics` gauges) | [`crate::admin::board`] |
//! | queue_log lines | [`crate::cdr::queue_log_fold`] |
//! | Prometheus queue, agent and IVR counters | [`crate::metrics::fold`] |
//!
//! An event carries what its consumers need (the caller's number, the
//! waits, the routing decision), so adding a consumer or a record field
//! touches that consumer and, at most, the event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::acd::DivertReason;
use crate::config::Target;

mod outcome;
mod trunk;
pub use outcome::{CallbackOutcome, Candidate, Disposition, HangupBy, RoutingDecision};
pub use trunk::{TrunkCallRef, TrunkStep};

/// The two clocks an event (and a handler) may need: monotonic for waits,
/// wall for what outlives the process.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// Unix milliseconds of the wall clock.
    pub fn unix_ms(&self) -> i64 {
        unix_ms(self.wall)
    }
}

/// Unix milliseconds of `t` (negative before 1970).
pub fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// One call, as every event about it names it: a number unique in the
/// process (consumers key their per-call state by it) and the caller's
/// Call-ID (what records, logs and the API show).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef {
    pub seq: u64,
    pub call_id: Arc<str>,
}

/// One step, and when it happened.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: Now,
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// An INVITE was accepted.
    Arrived {
        call: CallRef,
        caller: String,
        number: String,
        /// Set when the number leads straight to a queue.
        queue: Option<String>,
    },
    /// A new INVITE was refused (unknown number, overload, draining...).
    Rejected {
        call_id: String,
        caller: String,
        number: String,
        /// The queue the number leads to, if any.
        queue: Option<String>,
        code: u16,
    },
    /// The caller entered IVR node `node` (`ivr.node`).
    IvrStep { call: CallRef, node: String },
    /// An IVR `schedule` node sent the caller down its `closed` branch.
    IvrClosed {
        call: CallRef,
        ivr: String,
        node: String,
    },
    /// The caller reached `queue`. `refused` is set when the router turned
    /// it away at once (closed, full); a `Diverted` follows then.
    Queued {
        call: CallRef,
        queue: String,
        caller: String,
        /// The router's order: 1 = served next.
        position: usize,
        priority: i32,
        refused: Option<DivertReason>,
    },
    /// The router offered the call to `agent`: its phone rings.
    Offered {
        call: CallRef,
        queue: Option<String>,
        agent: String,
        /// Why this agent, from the router's own decision.
        routing: Option<RoutingDecision>,
    },
    /// `agent` did not take the offer (no answer in time, busy, declined,
    /// or its phone failed); `rang` is how long it rang.
    RingNoAnswer {
        call: CallRef,
        queue: Option<String>,
        agent: String,
        rang: Duration,
    },
    /// `agent` answered on its leg `agent_call_id`; the caller had waited
    /// `waited` in `queue` and the phone rang `rang`.
    Answered {
        call: CallRef,
        queue: Option<String>,
        agent: String,
        agent_call_id: String,
        waited: Duration,
        rang: Duration,
    },
    /// `agent`, on the call with the caller in `queue`, passed it on by a
    /// blind transfer (REFER) to `to` (`queue:NAME`, `ivr:NAME.NODE`,
    /// `agent:ID` or, once it answered, `number:NUMBER` through a trunk):
    /// its leg is over and it goes to wrap-up; the caller enters `to`.
    Transferred {
        call: CallRef,
        queue: Option<String>,
        agent: String,
        to: String,
    },
    /// `agent`, talking on another call (`from_call`, the transferor's
    /// consultation call), was joined to this call's caller by an attended
    /// transfer (REFER with Replaces): its leg `agent_call_id` is this
    /// call's agent leg from now on. The transferor's own leg ended just
    /// before (a `Transferred` with `to` = `attended:agent:ID`).
    Joined {
        call: CallRef,
        queue: Option<String>,
        agent: String,
        agent_call_id: String,
        from_call: String,
    },
    /// The router moved the caller out of `queue` without an agent.
    Diverted {
        call: CallRef,
        queue: String,
        reason: DivertReason,
        target: Option<Target>,
    },
    /// Both directions of the bridged call are being recorded to `path`
    /// (relative to `server.data_dir`).
    RecordingStarted { call: CallRef, path: String },
    /// The call's recording stopped (the call ended): the file is complete
    /// once the recorder has written what it was handed.
    RecordingEnded { call: CallRef, path: String },
    /// A supervisor's phone on the call (`POST /api/v1/calls/ID/monitor`):
    /// it answered (`Started`), its mode changed, or its leg ended.
    Monitor {
        call: CallRef,
        /// The agent id or SIP URI the supervisor was called at.
        supervisor: String,
        mode: crate::media::MonitorMode,
        step: MonitorStep,
    },
    /// A `voicemail` node started recording the caller's message to `path`
    /// (relative to `server.data_dir`).
    VoicemailStarted { call: CallRef, path: String },
    /// The message is complete (end key, silence, length limit or the
    /// caller hung up): `seconds` long, left by `caller`.
    VoicemailEnded {
        call: CallRef,
        caller: String,
        path: String,
        seconds: f64,
    },
    /// The agent hung up and the caller went on to the queue's survey
    /// (`to`, `ivr:NAME.NODE`): the agent's leg is over, wrap-up starts.
    SurveyStarted {
        call: CallRef,
        queue: Option<String>,
        agent: String,
        to: String,
    },
    /// The caller gave the call `score` in a `survey` node; `queue` and
    /// `agent` are those of the call it rated.
    CsatScored {
        call: CallRef,
        queue: Option<String>,
        agent: Option<String>,
        score: u8,
    },
    /// The waiting caller was offered a callback (`[queues.NAME.callback]`).
    CallbackOffered { call: CallRef, queue: String },
    /// The caller accepted: callback `id` waits in its place in `queue`,
    /// to call `number` back.
    CallbackAccepted {
        call: CallRef,
        queue: String,
        id: String,
        number: String,
        /// The key the caller pressed (queue_log's EXITWITHKEY).
        key: char,
        /// Its place in the queue then (1 = next).
        position: usize,
    },
    /// An agent was claimed for callback `id`: `call` is the call sipacd
    /// places for it (the agent first, then `number` through the trunk),
    /// try number `attempt` (from 1). `origin` is the Call-ID of the call
    /// that asked for it, `accepted` when it did.
    CallbackAttempt {
        call: CallRef,
        id: String,
        queue: String,
        number: String,
        attempt: u32,
        origin: String,
        accepted: std::time::SystemTime,
    },
    /// What became of an attempt: the customer answered (`Reached`), or
    /// not; `gave_up` when that was the last try the queue allows.
    CallbackResult {
        call: CallRef,
        id: String,
        queue: String,
        number: String,
        outcome: CallbackOutcome,
        gave_up: bool,
    },
    /// Callback `id` was cancelled over the admin API (or its queue went).
    CallbackCancelled { id: String, queue: String },
    /// At start, callback `id`, saved by the last run, waits again in
    /// `queue` at the place it had: it had waited `waited` so far.
    CallbackRestored {
        id: String,
        queue: String,
        waited: Duration,
    },
    /// The call is over.
    Ended(Box<Ended>),
    /// An agent's state changed (the states of `GET /api/v1/agents`).
    AgentState {
        agent: String,
        state: &'static str,
        reason: Option<String>,
    },
    /// An agent's phone became reachable (registered, or its static contact
    /// answers pings) or stopped being so. `logged_off`: the agent logged
    /// itself off with its logout code, so a reachable phone is no login.
    AgentReachable {
        agent: String,
        reachable: bool,
        logged_off: bool,
    },
    /// An agent was paused with `reason` (over the API, or for a ring no
    /// answer), or unpaused (`None`).
    AgentPaused {
        agent: String,
        reason: Option<String>,
    },
    /// An agent logged itself off (`false`) or in again (`true`) with its
    /// logout/login feature code; its phone stays registered either way.
    AgentLogin { agent: String, logged_in: bool },
    /// The outside number `to` of a blind transfer answered on trunk call
    /// `trunk_call` (after the transferor's `Transferred`): the caller is
    /// relayed to it until either side hangs up.
    TrunkBridged {
        call: CallRef,
        trunk: String,
        to: String,
        trunk_call: TrunkCallRef,
    },
    /// A step of a call sipacd placed through trunk `trunk` to `to`.
    Trunk {
        call: TrunkCallRef,
        trunk: String,
        to: String,
        step: TrunkStep,
    },
}

/// A step of a supervisor's monitor leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorStep {
    /// The supervisor's phone answered: the mix runs in `mode`.
    Started,
    /// The mode changed to `mode`.
    ModeChanged,
    /// The monitor leg is over: `reason` is `supervisor` (it hung up),
    /// `api` (DELETE), `call_ended`, `agent_left`, `no_answer`,
    /// `transferred` (the agent passed the call on) or `rtp_timeout`.
    Ended { reason: &'static str },
    /// The supervisor's phone never answered: `reason` is `refused` (a
    /// final error response), `no_answer` (rang out, or no response at
    /// all), `api` (DELETE while ringing), `call_ended`, `agent_left` or
    /// `transferred` (the call moved on while it rang).
    Failed { reason: &'static str },
}

impl MonitorStep {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorStep::Started => "started",
            MonitorStep::ModeChanged => "mode_changed",
            MonitorStep::Ended { .. } => "ended",
            MonitorStep::Failed { .. } => "failed",
        }
    }
}

/// The end of a call: how it went, in full.
#[derive(Debug, Clone)]
pub struct Ended {
    pub call: CallRef,
    pub caller: String,
    pub number: String,
    /// The last queue the caller was in.
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub disposition: Disposition,
    pub hangup_by: HangupBy,
    pub arrived: SystemTime,
    /// When the caller entered its last queue.
    pub queued: Option<SystemTime>,
    pub answered: Option<SystemTime>,
    /// IVR nodes then queues, in order.
    pub path: Vec<String>,
    pub variables: BTreeMap<String, String>,
    pub hold: Duration,
    /// A call sipacd placed (a callback's agent and customer), not a
    /// caller's: the queue's figures do not count it as offered.
    pub placed: bool,
}

impl EventKind {
    /// The call this event is about, if any.
    pub fn call(&self) -> Option<&CallRef> {
        match self {
            EventKind::Arrived { call, .. }
            | EventKind::IvrStep { call, .. }
            | EventKind::IvrClosed { call, .. }
            | EventKind::Queued { call, .. }
            | EventKind::Offered { call, .. }
            | EventKind::RingNoAnswer { call, .. }
            | EventKind::Answered { call, .. }
            | EventKind::Transferred { call, .. }
            | EventKind::Joined { call, .. }
            | EventKind::Diverted { call, .. }
            | EventKind::RecordingStarted { call, .. }
            | EventKind::RecordingEnded { call, .. }
            | EventKind::Monitor { call, .. }
            | EventKind::TrunkBridged { call, .. }
            | EventKind::VoicemailStarted { call, .. }
            | EventKind::VoicemailEnded { call, .. }
            | EventKind::SurveyStarted { call, .. }
            | EventKind::CsatScored { call, .. }
            | EventKind::CallbackOffered { call, .. }
            | EventKind::CallbackAccepted { call, .. }
            | EventKind::CallbackAttempt { call, .. }
            | EventKind::CallbackResult { call, .. } => Some(call),
            EventKind::Ended(e) => Some(&e.call),
            EventKind::Rejected { .. }
            | EventKind::AgentState { .. }
            | EventKind::AgentReachable { .. }
            | EventKind::AgentPaused { .. }
            | EventKind::AgentLogin { .. }
            | EventKind::Trunk { .. }
            | EventKind::CallbackCancelled { .. }
            | EventKind::CallbackRestored { .. } => None,
        }
    }
}

/// The name of a divert reason in events and logs.
pub fn divert_name(r: DivertReason) -> &'static str {
    match r {
        DivertReason::Closed => "closed",
        DivertReason::MaxWait => "max_wait",
        DivertReason::MaxWaiting => "max_waiting",
        DivertReason::QueueRemoved => "queue_removed",
    }
}
