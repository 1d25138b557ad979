//! Non-INVITE server transaction (RFC 3261 §17.2.2).

use std::time::Instant;

use rsip::StatusCodeKind;

use super::timers::{TimerConfig, TimerKind, TimerTable};
use super::{Fired, TxError, Wire};
use crate::sip::Peer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Trying,
    Proceeding,
    Completed,
}

#[derive(Debug)]
pub(crate) struct ServerNonInvite {
    pub state: State,
    pub peer: Peer,
    pub last: Option<Wire>,
    pub timers: TimerTable,
}

/// Whether a final response finished the transaction at once.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    Continue,
    Terminated,
}

impl ServerNonInvite {
    pub fn new(peer: Peer, now: Instant, cfg: &TimerConfig) -> Self {
        let mut timers = TimerTable::default();
        // Leak guard, not in the RFC: a TU that never answers would keep this
        // entry forever. The client gave up after 64*T1 (timer F) anyway.
        timers.set(TimerKind::J, now + cfg.t1x64());
        ServerNonInvite {
            state: State::Trying,
            peer,
            last: None,
            timers,
        }
    }

    /// The response to re-send for a retransmitted request, if any.
    pub fn on_retransmit(&self) -> Option<&Wire> {
        self.last.as_ref()
    }

    pub fn send(
        &mut self,
        kind: StatusCodeKind,
        wire: &Wire,
        now: Instant,
        cfg: &TimerConfig,
    ) -> Result<SendOutcome, TxError> {
        if self.state == State::Completed {
            return Err(TxError::InvalidState("Completed"));
        }
        self.last = Some(wire.clone());
        if kind == StatusCodeKind::Provisional {
            self.state = State::Proceeding;
            return Ok(SendOutcome::Continue);
        }
        if self.peer.transport.is_reliable() {
            return Ok(SendOutcome::Terminated);
        }
        self.state = State::Completed;
        self.timers.set(TimerKind::J, now + cfg.t1x64());
        Ok(SendOutcome::Continue)
    }

    pub fn on_timer(&mut self, kind: TimerKind) -> Fired {
        self.timers.stop(kind);
        match kind {
            TimerKind::J => Fired::Terminated,
            _ => Fired::Nothing,
        }
    }
}
