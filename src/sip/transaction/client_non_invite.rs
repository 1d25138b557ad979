//! Non-INVITE client transaction (RFC 3261 §17.1.2).

use std::time::{Duration, Instant};

use rsip::{Response, StatusCodeKind};

use super::client_invite::RespOutcome;
use super::timers::{TimerConfig, TimerKind, TimerTable};
use super::{Fired, Wire};
use crate::sip::Peer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Trying,
    Proceeding,
    Completed,
}

#[derive(Debug)]
pub(crate) struct ClientNonInvite {
    pub state: State,
    pub peer: Peer,
    /// The request as sent, for retransmissions.
    wire: Wire,
    pub timers: TimerTable,
    e_interval: Duration,
}

impl ClientNonInvite {
    pub fn new(wire: Wire, peer: Peer, now: Instant, cfg: &TimerConfig) -> Self {
        let mut timers = TimerTable::default();
        if !peer.transport.is_reliable() {
            timers.set(TimerKind::E, now + cfg.t1);
        }
        timers.set(TimerKind::F, now + cfg.t1x64());
        ClientNonInvite {
            state: State::Trying,
            peer,
            wire,
            timers,
            e_interval: cfg.t1,
        }
    }

    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    pub fn on_response(&mut self, resp: &Response, now: Instant, cfg: &TimerConfig) -> RespOutcome {
        let mut out = RespOutcome::default();
        if self.state == State::Completed {
            return out; // retransmission, absorbed
        }
        out.pass_up = true;
        if resp.status_code.kind() == StatusCodeKind::Provisional {
            self.state = State::Proceeding;
            return out;
        }
        self.timers.stop(TimerKind::E);
        self.timers.stop(TimerKind::F);
        if self.peer.transport.is_reliable() {
            out.terminated = true;
        } else {
            self.state = State::Completed;
            self.timers.set(TimerKind::K, now + cfg.t4);
        }
        out
    }

    pub fn on_timer(&mut self, kind: TimerKind, now: Instant, cfg: &TimerConfig) -> Fired {
        self.timers.stop(kind);
        match (kind, self.state) {
            (TimerKind::E, State::Trying | State::Proceeding) => {
                // In Proceeding the interval is T2 straight away (§17.1.2.2).
                self.e_interval = match self.state {
                    State::Proceeding => cfg.t2,
                    _ => (self.e_interval * 2).min(cfg.t2),
                };
                self.timers.set(TimerKind::E, now + self.e_interval);
                Fired::Resend(self.wire.clone())
            }
            (TimerKind::F, State::Trying | State::Proceeding) => Fired::TimedOut,
            (TimerKind::K, State::Completed) => Fired::Terminated,
            _ => Fired::Nothing,
        }
    }
}
