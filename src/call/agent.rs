//! The leg sipacd places to an agent's softphone: INVITE out, ringing,
//! answered (ACK sent), ending. The endpoint owns the transactions; this
//! holds what the leg needs to be answered, cancelled or hung up.

use std::time::Instant;

use crate::media::ports::PortLease;
use crate::sip::dialog::Dialog;
use crate::sip::transaction::TxKey;
use crate::sip::Peer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentLegState {
    /// INVITE sent, no answer yet (or only provisional ones).
    Offering,
    /// 2xx received and ACKed: caller and agent are bridged.
    Connected,
    /// CANCEL or BYE sent; waiting for the agent's answer.
    Ending,
}

/// One offer of a call to one agent.
#[derive(Debug)]
pub struct AgentLeg {
    pub agent_id: String,
    /// The router's id for the agent (from the table in force when the
    /// offer was made; see [`crate::acd::AgentRef`]).
    pub agent: Option<crate::acd::AgentId>,
    /// The INVITE as sent (for CANCEL, the ACK and the dialog).
    pub invite: std::sync::Arc<rsip::Request>,
    pub invite_key: TxKey,
    /// Where the agent's phone is reached (its registration's source).
    pub peer: Peer,
    /// Reached only down `peer`'s connection (TLS, or TCP with RFC 5626
    /// outbound): once it is gone nothing more is sent to the leg.
    pub flow_only: bool,
    pub state: AgentLegState,
    /// Ring no answer: past this instant the offer is withdrawn (RONA).
    pub ring_deadline: Instant,
    /// Set once the agent answered.
    pub dialog: Option<Dialog>,
    pub ports: PortLease,
    pub offered_at: Instant,
    /// The agent's media leg, once answered.
    pub leg: Option<u64>,
    /// The agent's last SDP (answer, then any re-offer) and our `o=` version.
    pub remote_sdp: Option<crate::media::sdp::SdpOffer>,
    pub sdp_version: u64,
    /// The agent leg's session timer (RFC 4028), if its 2xx agreed one.
    pub session: Option<crate::sip::session_timer::SessionTimer>,
    /// The `a=crypto` lines of our offer to the agent, and the leg's keys
    /// once it is SRTP.
    pub srtp_offered: Vec<crate::media::crypto_attr::CryptoAttr>,
    pub srtp: Option<crate::media::crypto_attr::SrtpKeys>,
}

impl AgentLeg {
    /// The agent as the router's events name it: by id when it has one.
    pub fn agent_ref(&self) -> crate::acd::AgentRef<'_> {
        match self.agent {
            Some(id) => crate::acd::AgentRef::Id(id, &self.agent_id),
            None => crate::acd::AgentRef::Name(&self.agent_id),
        }
    }

    /// The next instant the leg needs attention.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == AgentLegState::Offering).then_some(self.ring_deadline)
    }
}
