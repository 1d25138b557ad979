//! Live events for `GET /api/v1/events` and the wallboard, folded from the
//! engine's event stream: one small JSON object per step of a call's life
//! and per agent state change. The daemon publishes them on the
//! [`super::EventHub`]; nothing here knows about subscribers.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cdr::{Disposition, HangupBy};
use crate::events::{divert_name, unix_ms, Event, EventKind as Step};

/// One event: when, and what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveEvent {
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    /// The same instant in Unix milliseconds.
    pub ts_ms: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened; serialized with a `type` field (`call_arrived`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// An INVITE was accepted.
    CallArrived {
        call: String,
        from: String,
        number: String,
        /// Set when the number leads straight to a queue.
        queue: Option<String>,
    },
    /// An INVITE was refused (unknown number, overload, draining).
    CallRejected {
        call: String,
        from: String,
        number: String,
    },
    /// The caller entered IVR node `node` (`ivr.node`).
    CallIvr {
        call: String,
        node: String,
    },
    /// The caller waits in `queue`, at `position` (1 = next).
    CallQueued {
        call: String,
        queue: String,
        position: usize,
        priority: i32,
    },
    /// The router offered the call to `agent` (its phone rings).
    CallOffered {
        call: String,
        queue: Option<String>,
        agent: String,
    },
    /// The agent answered; `wait_s` is the time spent in the queue.
    CallAnswered {
        call: String,
        queue: Option<String>,
        agent: String,
        wait_s: f64,
    },
    /// `agent` passed the call on (blind transfer) to `to`
    /// (`queue:NAME`, `ivr:NAME.NODE`, `agent:ID`, `number:NUMBER`); it
    /// goes to wrap-up.
    CallTransferred {
        call: String,
        queue: Option<String>,
        agent: String,
        to: String,
    },
    /// The outside number `to` a blind transfer called through `trunk`
    /// answered: the caller talks to it now (after `call_transferred`).
    CallTrunkBridged {
        call: String,
        trunk: String,
        to: String,
    },
    /// An attended transfer joined `agent` (from the transferor's
    /// consultation call `from_call`) to the caller of `call`.
    CallJoined {
        call: String,
        queue: Option<String>,
        agent: String,
        from_call: String,
    },
    /// A supervisor's monitor leg: `step` is `started`, `mode_changed`,
    /// `ended` (with `reason`) or `failed` (the phone never answered, with
    /// `reason`); `mode` is `listen`, `whisper` or `barge`.
    CallMonitor {
        call: String,
        supervisor: String,
        mode: &'static str,
        step: &'static str,
        reason: Option<&'static str>,
    },
    /// The caller left a message (`voicemail` node), `seconds` long;
    /// `GET /api/v1/voicemail/CALL` serves it.
    Voicemail {
        call: String,
        from: String,
        path: String,
        seconds: f64,
    },
    /// The agent hung up and the caller went on to the survey `to`.
    CallSurvey {
        call: String,
        queue: Option<String>,
        agent: String,
        to: String,
    },
    /// The caller rated the call `score` (CSAT) for `queue` and `agent`.
    CallRated {
        call: String,
        queue: Option<String>,
        agent: Option<String>,
        score: u8,
    },
    /// The waiting caller was offered a callback.
    CallbackOffered {
        call: String,
        queue: String,
    },
    /// The caller accepted: callback `id` keeps its place in `queue`.
    CallbackAccepted {
        call: String,
        queue: String,
        id: String,
        number: String,
    },
    /// An agent was claimed for callback `id`; `call` is the call placed
    /// for it (try `attempt`).
    CallbackAttempt {
        call: String,
        id: String,
        queue: String,
        number: String,
        attempt: u32,
    },
    /// The try's outcome: `reached`, `busy`, `no_answer`, `failed`.
    CallbackResult {
        call: String,
        id: String,
        queue: String,
        outcome: String,
        gave_up: bool,
    },
    CallbackCancelled {
        id: String,
        queue: String,
    },
    /// The caller hung up before an agent answered.
    CallAbandoned {
        call: String,
        queue: Option<String>,
        wait_s: f64,
    },
    /// The caller left `queue` without an agent: `reason` is `closed`,
    /// `max_wait`, `max_waiting` or `queue_removed`; `target` where it went.
    CallOverflowed {
        call: String,
        queue: String,
        reason: &'static str,
        target: Option<String>,
    },
    /// The call is over; the same disposition as its call record.
    CallEnded {
        call: String,
        queue: Option<String>,
        agent: Option<String>,
        disposition: Disposition,
        hangup_by: Option<HangupBy>,
        duration_s: f64,
    },
    /// An agent's state changed (the states of `GET /api/v1/agents`).
    AgentState {
        agent: String,
        state: &'static str,
        reason: Option<String>,
    },
    /// A step of an outbound call through `trunk` to `to`: `step` is
    /// `placed`, `ringing`, `authenticated`, `answered`, `failed` or
    /// `ended`; `code` the gateway's SIP code where there is one.
    TrunkCall {
        call: String,
        trunk: String,
        to: String,
        step: &'static str,
        code: Option<u16>,
    },
}

fn secs_between(from_ms: Option<i64>, to_ms: Option<i64>) -> f64 {
    match (from_ms, to_ms) {
        (Some(a), Some(b)) if b >= a => (b - a) as f64 / 1000.0,
        _ => 0.0,
    }
}

/// Seconds to the millisecond, as the call records keep them.
fn ms_precision(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// The live events one engine event makes (none, one, or two for an
/// abandoned call: `call_abandoned` then `call_ended`).
pub fn live_events(ev: &Event) -> Vec<LiveEvent> {
    let ts_ms = ev.at.unix_ms();
    let ts = DateTime::<Utc>::from(ev.at.wall).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let call_id = |c: &crate::events::CallRef| c.call_id.to_string();
    let kinds = match &ev.kind {
        Step::Arrived {
            call,
            caller,
            number,
            queue,
        } => vec![EventKind::CallArrived {
            call: call_id(call),
            from: caller.clone(),
            number: number.clone(),
            queue: queue.clone(),
        }],
        Step::Rejected {
            call_id,
            caller,
            number,
            ..
        } => vec![EventKind::CallRejected {
            call: call_id.clone(),
            from: caller.clone(),
            number: number.clone(),
        }],
        Step::IvrStep { call, node } => vec![EventKind::CallIvr {
            call: call_id(call),
            node: node.clone(),
        }],
        Step::Queued {
            call,
            queue,
            position,
            priority,
            ..
        } => vec![EventKind::CallQueued {
            call: call_id(call),
            queue: queue.clone(),
            position: *position,
            priority: *priority,
        }],
        Step::Offered {
            call, queue, agent, ..
        } => vec![EventKind::CallOffered {
            call: call_id(call),
            queue: queue.clone(),
            agent: agent.clone(),
        }],
        Step::Answered {
            call,
            queue,
            agent,
            waited,
            ..
        } => vec![EventKind::CallAnswered {
            call: call_id(call),
            queue: queue.clone(),
            agent: agent.clone(),
            wait_s: ms_precision(waited.as_secs_f64()),
        }],
        Step::Transferred {
            call,
            queue,
            agent,
            to,
        } => vec![EventKind::CallTransferred {
            call: call_id(call),
            queue: queue.clone(),
            agent: agent.clone(),
            to: to.clone(),
        }],
        Step::TrunkBridged {
            call, trunk, to, ..
        } => vec![EventKind::CallTrunkBridged {
            call: call_id(call),
            trunk: trunk.clone(),
            to: to.clone(),
        }],
        Step::Joined {
            call,
            queue,
            agent,
            from_call,
            ..
        } => vec![EventKind::CallJoined {
            call: call_id(call),
            queue: queue.clone(),
            agent: agent.clone(),
            from_call: from_call.clone(),
        }],
        Step::Monitor {
            call,
            supervisor,
            mode,
            step,
        } => vec![EventKind::CallMonitor {
            call: call_id(call),
            supervisor: supervisor.clone(),
            mode: mode.as_str(),
            step: step.as_str(),
            reason: match step {
                crate::events::MonitorStep::Ended { reason }
                | crate::events::MonitorStep::Failed { reason } => Some(reason),
                _ => None,
            },
        }],
        Step::Diverted {
            call,
            queue,
            reason,
            target,
        } => vec![EventKind::CallOverflowed {
            call: call_id(call),
            queue: queue.clone(),
            reason: divert_name(*reason),
            target: Some(
                target
                    .as_ref()
                    .map_or_else(|| "hangup".to_owned(), ToString::to_string),
            ),
        }],
        Step::Ended(end) => {
            let arrived = unix_ms(end.arrived);
            let queued = end.queued.map(|t| unix_ms(t).max(arrived));
            let answered = end.answered.map(unix_ms);
            let mut out = Vec::with_capacity(2);
            if end.disposition == Disposition::Abandoned {
                out.push(EventKind::CallAbandoned {
                    call: call_id(&end.call),
                    queue: end.queue.clone(),
                    wait_s: secs_between(queued, answered.or(Some(ts_ms))),
                });
            }
            out.push(EventKind::CallEnded {
                call: call_id(&end.call),
                queue: end.queue.clone(),
                agent: end.agent.clone(),
                disposition: end.disposition,
                hangup_by: Some(end.hangup_by),
                duration_s: secs_between(Some(arrived), Some(ts_ms)),
            });
            out
        }
        Step::AgentState {
            agent,
            state,
            reason,
        } => vec![EventKind::AgentState {
            agent: agent.clone(),
            state,
            reason: reason.clone(),
        }],
        Step::Trunk {
            call,
            trunk,
            to,
            step,
        } => {
            use crate::events::TrunkStep as T;
            let code = match step {
                T::Ringing { code } | T::Authenticated { code } | T::Failed { code, .. } => {
                    Some(*code)
                }
                T::Answered => Some(200),
                T::Placed | T::Ended { .. } => None,
            };
            vec![EventKind::TrunkCall {
                call: call.call_id.to_string(),
                trunk: trunk.clone(),
                to: to.clone(),
                step: step.name(),
                code,
            }]
        }
        Step::VoicemailEnded {
            call,
            caller,
            path,
            seconds,
        } => vec![EventKind::Voicemail {
            call: call_id(call),
            from: caller.clone(),
            path: path.clone(),
            seconds: ms_precision(*seconds),
        }],
        Step::SurveyStarted {
            call,
            queue,
            agent,
            to,
        } => vec![EventKind::CallSurvey {
            call: call_id(call),
            queue: queue.clone(),
            agent: agent.clone(),
            to: to.clone(),
        }],
        Step::CsatScored {
            call,
            queue,
            agent,
            score,
        } => vec![EventKind::CallRated {
            call: call_id(call),
            queue: queue.clone(),
            agent: agent.clone(),
            score: *score,
        }],
        Step::CallbackOffered { call, queue } => vec![EventKind::CallbackOffered {
            call: call_id(call),
            queue: queue.clone(),
        }],
        Step::CallbackAccepted {
            call,
            queue,
            id,
            number,
            ..
        } => vec![EventKind::CallbackAccepted {
            call: call_id(call),
            queue: queue.clone(),
            id: id.clone(),
            number: number.clone(),
        }],
        Step::CallbackAttempt {
            call,
            id,
            queue,
            number,
            attempt,
            ..
        } => vec![EventKind::CallbackAttempt {
            call: call_id(call),
            id: id.clone(),
            queue: queue.clone(),
            number: number.clone(),
            attempt: *attempt,
        }],
        Step::CallbackResult {
            call,
            id,
            queue,
            outcome,
            gave_up,
            ..
        } => vec![EventKind::CallbackResult {
            call: call_id(call),
            id: id.clone(),
            queue: queue.clone(),
            outcome: outcome.as_str().to_owned(),
            gave_up: *gave_up,
        }],
        Step::CallbackCancelled { id, queue } => vec![EventKind::CallbackCancelled {
            id: id.clone(),
            queue: queue.clone(),
        }],
        Step::IvrClosed { .. }
        | Step::VoicemailStarted { .. }
        | Step::RingNoAnswer { .. }
        | Step::AgentReachable { .. }
        | Step::AgentPaused { .. }
        | Step::AgentLogin { .. }
        | Step::RecordingStarted { .. }
        | Step::RecordingEnded { .. }
        | Step::CallbackRestored { .. } => Vec::new(),
    };
    kinds
        .into_iter()
        .map(|kind| LiveEvent {
            ts: ts.clone(),
            ts_ms,
            kind,
        })
        .collect()
}
