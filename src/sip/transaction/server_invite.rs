//! INVITE server transaction (RFC 3261 §17.2.1, with RFC 6026 "Accepted").

use std::time::{Duration, Instant};

use rsip::StatusCodeKind;

use super::timers::{TimerConfig, TimerKind, TimerTable};
use super::{Fired, TxError, Wire};
use crate::sip::Peer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Proceeding,
    /// A 2xx went out; retransmitted INVITEs are absorbed until timer L.
    Accepted,
    /// A 300-699 went out; waiting for ACK (G retransmits, H gives up).
    Completed,
    /// ACK arrived; absorbing ACK retransmissions until timer I.
    Confirmed,
}

#[derive(Debug)]
pub(crate) struct ServerInvite {
    pub state: State,
    pub peer: Peer,
    /// The last response sent, as it went on the wire.
    pub last: Wire,
    pub timers: TimerTable,
    g_interval: Duration,
}

/// What an ACK did to the transaction.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    Absorbed,
    /// ACK for a 2xx (or stray): the TU gets it.
    PassUp,
    /// Absorbed, and the transaction is finished (reliable transport).
    Terminated,
}

impl ServerInvite {
    /// `trying` is the automatic 100 the layer sends at once.
    pub fn new(peer: Peer, trying: Wire) -> Self {
        ServerInvite {
            state: State::Proceeding,
            peer,
            last: trying,
            timers: TimerTable::default(),
            g_interval: Duration::ZERO,
        }
    }

    /// The response to re-send for a retransmitted INVITE, if any.
    pub fn on_retransmit(&self) -> Option<&Wire> {
        match self.state {
            State::Proceeding | State::Completed => Some(&self.last),
            State::Accepted | State::Confirmed => None,
        }
    }

    pub fn final_sent(&self) -> bool {
        self.state != State::Proceeding
    }

    pub fn send(
        &mut self,
        kind: StatusCodeKind,
        wire: &Wire,
        now: Instant,
        cfg: &TimerConfig,
    ) -> Result<(), TxError> {
        if self.state != State::Proceeding {
            return Err(TxError::InvalidState(self.state_name()));
        }
        match kind {
            StatusCodeKind::Provisional => {}
            StatusCodeKind::Successful => {
                self.state = State::Accepted;
                self.timers.set(TimerKind::L, now + cfg.t1x64());
            }
            _ => {
                self.state = State::Completed;
                if !self.peer.transport.is_reliable() {
                    self.g_interval = cfg.t1;
                    self.timers.set(TimerKind::G, now + cfg.t1);
                }
                self.timers.set(TimerKind::H, now + cfg.t1x64());
            }
        }
        self.last = wire.clone();
        Ok(())
    }

    pub fn on_ack(&mut self, now: Instant, cfg: &TimerConfig) -> AckOutcome {
        match self.state {
            State::Completed => {
                self.timers.stop(TimerKind::G);
                self.timers.stop(TimerKind::H);
                if self.peer.transport.is_reliable() {
                    return AckOutcome::Terminated;
                }
                self.state = State::Confirmed;
                self.timers.set(TimerKind::I, now + cfg.t4);
                AckOutcome::Absorbed
            }
            State::Confirmed => AckOutcome::Absorbed,
            State::Proceeding | State::Accepted => AckOutcome::PassUp,
        }
    }

    pub fn on_timer(&mut self, kind: TimerKind, now: Instant, cfg: &TimerConfig) -> Fired {
        self.timers.stop(kind);
        match (kind, self.state) {
            (TimerKind::G, State::Completed) => {
                self.g_interval = (self.g_interval * 2).min(cfg.t2);
                self.timers.set(TimerKind::G, now + self.g_interval);
                Fired::Resend(self.last.clone())
            }
            (TimerKind::H, State::Completed) => Fired::TimedOut,
            (TimerKind::I, State::Confirmed) | (TimerKind::L, State::Accepted) => Fired::Terminated,
            _ => Fired::Nothing,
        }
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Proceeding => "Proceeding",
            State::Accepted => "Accepted",
            State::Completed => "Completed",
            State::Confirmed => "Confirmed",
        }
    }
}
