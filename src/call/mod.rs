//! One inbound call leg as sipacd's UAS sees it, as a sans-IO state machine:
//! ringing, answered (waiting for ACK), confirmed, ending. The endpoint
//! feeds it events with an explicit `now` and carries out the actions it
//! returns; the call also holds its IVR run, agent leg and media leg ids.

pub mod agent;
pub mod callback;
pub mod monitor;
pub mod trunk;

use std::time::{Duration, Instant};

use crate::config::Target;
use crate::media::ports::PortLease;
use crate::media::sdp::SdpOffer;
use crate::sip::dialog::Dialog;
use crate::sip::Peer;

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// 180 sent; the answer is due at `answer_at`.
    Ringing { answer_at: Instant },
    /// 200 sent, ACK not yet received.
    Answered,
    /// ACK received: the call is up.
    Confirmed,
    /// We sent BYE and wait for its answer.
    Ending,
}

/// What the endpoint must do next for this call.
#[derive(Debug, PartialEq, Eq)]
pub enum CallAction {
    SendAnswer,
    SendBye,
}

/// An inbound call. Holds its RTP ports until dropped.
#[derive(Debug)]
pub struct Call {
    pub dialog: Dialog,
    pub remote: Peer,
    pub number: String,
    pub target: Target,
    pub state: CallState,
    pub offer: Option<SdpOffer>,
    pub ports: PortLease,
    pub started: Instant,
    /// SDP `o=` version, bumped on every answer we send (RFC 3264 §8).
    pub sdp_version: u64,
    /// When the caller started waiting in a queue.
    pub queued_at: Option<Instant>,
    /// The offer to an agent, while there is one.
    pub agent: Option<agent::AgentLeg>,
    /// The outside number a blind transfer relays the caller to, once it
    /// answered (the call is connected, not waiting).
    pub outside: Option<String>,
    /// A supervisor's phone listening in (`POST /api/v1/calls/ID/monitor`).
    pub monitor: Option<monitor::MonitorLeg>,
    /// The router's handle while the caller is queued or with an agent.
    pub acd: Option<crate::acd::CallId>,
    /// Why the router moved the caller out of its queue, if it did.
    pub diverted: Option<crate::acd::DivertReason>,
    /// The agent who answered, and when (for the call record).
    pub agent_id: Option<String>,
    pub answered_at: Option<std::time::SystemTime>,
    /// Queues the caller entered, in order (call records).
    pub queues_seen: Vec<String>,
    /// When the caller's position is next announced.
    pub announce_at: Option<Instant>,
    /// The caller's media leg, once answered.
    pub leg: Option<u64>,
    /// The `Reason` header value of our BYE, when we hang up for a cause.
    pub bye_reason: Option<&'static str>,
    /// The IVR walking this call, from the caller's ACK on.
    pub ivr: Option<crate::ivr::IvrRun>,
    /// The prompt the IVR is waiting on.
    pub prompt: Option<crate::ivr::PromptId>,
    /// Extra priority given by the IVR's queue node.
    pub priority: i32,
    /// The caller leg's session timer (RFC 4028), if one was agreed.
    pub session: Option<crate::sip::session_timer::SessionTimer>,
    /// Hold from either side: who holds now, since when, and the total.
    pub hold: Hold,
    /// The caller leg's SRTP keys, when it is SRTP.
    pub srtp: Option<crate::media::crypto_attr::SrtpKeys>,
    /// How the event stream names this call.
    pub cref: crate::events::CallRef,
    /// The caller's number (From user), as events and records show it.
    pub caller: String,
    pub arrived: std::time::SystemTime,
    /// The first side known to have ended the call.
    pub hangup_by: Option<crate::cdr::HangupBy>,
    /// Its end was reported already (at exit, before the BYEs' answers).
    pub reported: bool,
    /// It holds one of its source's places in setup (until the ACK or its
    /// end; see `flood::SetupCounts`).
    pub in_setup: bool,
    /// The recording chosen for this call once bridged, relative to
    /// `data_dir`; taken when its end is reported.
    pub recording: Option<String>,
    /// The recording notice plays to the caller: bridge when it ends.
    pub bridge_after_prompt: bool,
    /// An agent dialled this agent id to consult it: it rings that agent
    /// alone once the call is confirmed.
    pub ring_agent: Option<String>,
    /// The message a `voicemail` node is recording: its path (relative to
    /// `data_dir`) and when it started.
    pub message: Option<(String, std::time::SystemTime)>,
    /// Set once the agent hung up and the caller went to the queue's
    /// survey: the queue and agent its score is for.
    pub survey_of: Option<(Option<String>, String)>,
    /// The queue's callback offer to this waiting caller, and when its
    /// next step is due (the offer, the end of keying a number).
    pub callback: Option<callback::Stage>,
    pub callback_at: Option<Instant>,
    /// Set on a call sipacd placed for a callback (no caller leg).
    pub attempt: Option<callback::Attempt>,
}

/// Time on hold, from either leg's re-INVITE or UPDATE.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub by_caller: bool,
    pub by_agent: bool,
    pub since: Option<Instant>,
    pub total: Duration,
}

impl Hold {
    /// Records that one side held or resumed; returns whether that side's
    /// state changed.
    pub fn set(&mut self, by_agent: bool, held: bool, now: Instant) -> bool {
        let side = if by_agent {
            &mut self.by_agent
        } else {
            &mut self.by_caller
        };
        if *side == held {
            return false;
        }
        *side = held;
        match (self.by_caller || self.by_agent, self.since) {
            (true, None) => self.since = Some(now),
            (false, Some(since)) => {
                self.total += now.saturating_duration_since(since);
                self.since = None;
            }
            _ => {}
        }
        true
    }

    /// Hold time so far, the current hold included.
    pub fn total_at(&self, now: Instant) -> Duration {
        self.total
            + self
                .since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }
}

impl Call {
    /// A new call that is answered after `ring` (zero: at once).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dialog: Dialog,
        remote: Peer,
        number: String,
        target: Target,
        offer: Option<SdpOffer>,
        ports: PortLease,
        ring: Duration,
        now: Instant,
    ) -> (Call, Option<CallAction>) {
        let state = CallState::Ringing {
            // The configuration bounds `ring_s`; saturate anyway, an
            // overflowing Instant addition panics.
            answer_at: now.checked_add(ring).unwrap_or(now),
        };
        let cref = crate::events::CallRef {
            seq: 0,
            call_id: dialog.call_id.as_str().into(),
        };
        let mut call = Call {
            dialog,
            remote,
            number,
            target,
            state,
            offer,
            ports,
            started: now,
            sdp_version: 0,
            queued_at: None,
            agent: None,
            outside: None,
            acd: None,
            diverted: None,
            agent_id: None,
            answered_at: None,
            announce_at: None,
            queues_seen: Vec::new(),
            leg: None,
            bye_reason: None,
            ivr: None,
            prompt: None,
            priority: 0,
            session: None,
            hold: Hold::default(),
            srtp: None,
            cref,
            caller: String::new(),
            arrived: std::time::SystemTime::UNIX_EPOCH,
            hangup_by: None,
            reported: false,
            in_setup: false,
            recording: None,
            bridge_after_prompt: false,
            ring_agent: None,
            monitor: None,
            message: None,
            survey_of: None,
            callback: None,
            callback_at: None,
            attempt: None,
        };
        let action = call.on_timeout(now);
        (call, action)
    }

    /// The next instant this call wants to be woken at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            CallState::Ringing { answer_at } => Some(answer_at),
            _ => {
                let agent = self.agent.as_ref().and_then(agent::AgentLeg::poll_timeout);
                let monitor = self
                    .monitor
                    .as_ref()
                    .and_then(monitor::MonitorLeg::poll_timeout);
                let ivr = self.ivr.as_ref().and_then(crate::ivr::IvrRun::poll_timeout);
                let sessions = [
                    self.session.map(|t| t.deadline),
                    self.agent
                        .as_ref()
                        .and_then(|a| a.session)
                        .map(|t| t.deadline),
                ];
                agent
                    .into_iter()
                    .chain(monitor)
                    .chain(ivr)
                    .chain(self.announce_at)
                    .chain(self.callback_at)
                    .chain(sessions.into_iter().flatten())
                    .min()
            }
        }
    }

    /// The queue this call waits in or is being offered from.
    pub fn queue(&self) -> Option<&str> {
        match &self.target {
            Target::Queue(q) => Some(q),
            _ => None,
        }
    }

    pub fn on_timeout(&mut self, now: Instant) -> Option<CallAction> {
        match self.state {
            CallState::Ringing { answer_at } if now >= answer_at => {
                self.state = CallState::Answered;
                self.sdp_version += 1;
                Some(CallAction::SendAnswer)
            }
            _ => None,
        }
    }

    /// ACK for our 200: the call is up (the IVR or the queue takes over).
    /// Returns whether this ACK confirmed the call.
    pub fn on_ack(&mut self) -> bool {
        if self.state != CallState::Answered {
            return false;
        }
        self.state = CallState::Confirmed;
        true
    }

    /// Whether the caller can still CANCEL (no final response yet).
    pub fn is_cancellable(&self) -> bool {
        matches!(self.state, CallState::Ringing { .. })
    }

    /// A re-INVITE: remember the new offer and answer again.
    pub fn on_reinvite(&mut self, offer: Option<SdpOffer>) -> CallAction {
        if offer.is_some() {
            self.offer = offer;
        }
        self.sdp_version += 1;
        CallAction::SendAnswer
    }

    /// Ask the call to end from our side (drain deadline, shutdown).
    pub fn hang_up(&mut self) -> Option<CallAction> {
        match self.state {
            CallState::Confirmed | CallState::Answered => {
                self.state = CallState::Ending;
                Some(CallAction::SendBye)
            }
            _ => None,
        }
    }

    /// SDP session id for our `o=` line: stable for the call's life.
    pub fn sdp_session_id(&self) -> u64 {
        // Any stable number will do (RFC 4566 §5.2); the tag is random hex.
        u64::from_str_radix(&self.dialog.local_tag, 16).unwrap_or(1) >> 2
    }
}
