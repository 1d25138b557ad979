//! A call sipacd places through a trunk: INVITE to the gateway, its
//! digest challenge answered once, ringing, answered (ACK sent), ending.
//! The endpoint owns the transactions; this holds what the leg needs to be
//! re-sent with credentials, cancelled or hung up.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Trunk;
use crate::media::ports::PortLease;
use crate::sip::dialog::Dialog;
use crate::sip::transaction::TxKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkLegState {
    /// INVITE sent (perhaps again, with credentials); no final answer yet.
    Inviting,
    /// CANCEL sent while inviting; waiting for the INVITE's 487.
    Cancelling,
    /// 2xx received and ACKed.
    Connected,
}

/// One outbound call on a trunk.
#[derive(Debug)]
pub struct TrunkLeg {
    pub id: u64,
    pub call_id: Arc<str>,
    /// The trunk's settings when the call was placed (a reload does not
    /// change a call in progress).
    pub trunk: Arc<Trunk>,
    /// The number called.
    pub to: String,
    /// Our From tag, kept when the INVITE is re-sent with credentials.
    pub from_tag: String,
    /// The INVITE as last sent (for CANCEL, the ACK and the dialog).
    pub invite: rsip::Request,
    pub invite_key: TxKey,
    /// The SDP offer, sent again unchanged with credentials.
    pub offer: String,
    pub cseq: u32,
    pub state: TrunkLegState,
    /// Whether a challenge was answered already: a second one means the
    /// credentials are wrong, and the call fails.
    pub authenticated: bool,
    pub ringing_seen: bool,
    /// Past this the call is given up (CANCEL) as not answered.
    pub ring_deadline: Instant,
    pub dialog: Option<Dialog>,
    pub ports: PortLease,
    pub answered_at: Option<Instant>,
    /// The media leg once answered.
    pub leg: Option<u64>,
}

impl TrunkLeg {
    /// The next instant the leg needs attention.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == TrunkLegState::Inviting).then_some(self.ring_deadline)
    }
}
