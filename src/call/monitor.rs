//! The leg sipacd places to a supervisor's phone to listen in on a call
//! (listen, whisper, barge): INVITE out, ringing, answered (ACK sent),
//! ending. Like an agent leg, without the router: a supervisor is not
//! offered the call, only called to hear it.

use std::time::Instant;

use crate::media::ports::PortLease;
use crate::media::MonitorMode;
use crate::sip::dialog::Dialog;
use crate::sip::transaction::TxKey;
use crate::sip::Peer;

pub use super::agent::AgentLegState as MonitorLegState;

/// One supervisor's leg on one call.
#[derive(Debug)]
pub struct MonitorLeg {
    /// The agent id or SIP URI the supervisor was called at.
    pub supervisor: String,
    pub mode: MonitorMode,
    /// The INVITE as sent (for CANCEL, the ACK and the dialog).
    pub invite: rsip::Request,
    pub invite_key: TxKey,
    pub peer: Peer,
    pub state: MonitorLegState,
    /// Unanswered past this instant: cancelled.
    pub ring_deadline: Instant,
    pub dialog: Option<Dialog>,
    pub ports: PortLease,
    /// The supervisor's media leg, once answered.
    pub leg: Option<u64>,
    /// The `o=` version of our last SDP on this leg (RFC 3264 §8).
    pub sdp_version: u64,
}

impl MonitorLeg {
    /// The next instant the leg needs attention.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == MonitorLegState::Offering).then_some(self.ring_deadline)
    }
}
