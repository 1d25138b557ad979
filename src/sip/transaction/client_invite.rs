//! INVITE client transaction (RFC 3261 §17.1.1).

use std::time::{Duration, Instant};

use rsip::{Request, Response, StatusCodeKind};

use super::messages::build_ack;
use super::timers::{TimerConfig, TimerKind, TimerTable, TIMER_D};
use super::{Fired, TxError, Wire};
use crate::sip::Peer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Calling,
    Proceeding,
    Completed,
}

#[derive(Debug)]
pub(crate) struct ClientInvite {
    pub state: State,
    pub peer: Peer,
    request: std::sync::Arc<Request>,
    /// `request` as sent, for retransmissions.
    wire: Wire,
    ack: Option<Wire>,
    pub timers: TimerTable,
    a_interval: Duration,
}

/// What a response did: pass it up? send something? finished?
#[derive(Debug, Default)]
pub(crate) struct RespOutcome {
    pub pass_up: bool,
    pub send: Option<Wire>,
    pub terminated: bool,
}

impl ClientInvite {
    pub fn new(
        request: std::sync::Arc<Request>,
        wire: Wire,
        peer: Peer,
        now: Instant,
        cfg: &TimerConfig,
    ) -> Self {
        let mut timers = TimerTable::default();
        if !peer.transport.is_reliable() {
            timers.set(TimerKind::A, now + cfg.t1);
        }
        timers.set(TimerKind::B, now + cfg.t1x64());
        ClientInvite {
            state: State::Calling,
            peer,
            request,
            wire,
            ack: None,
            timers,
            a_interval: cfg.t1,
        }
    }

    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    pub fn on_response(&mut self, resp: &Response, now: Instant) -> Result<RespOutcome, TxError> {
        let kind = resp.status_code.kind();
        let mut out = RespOutcome::default();
        match (self.state, kind) {
            (State::Calling | State::Proceeding, StatusCodeKind::Provisional) => {
                self.state = State::Proceeding;
                // B only matters in Calling (§17.1.1.2); A stops on any response.
                self.timers.stop(TimerKind::A);
                self.timers.stop(TimerKind::B);
                out.pass_up = true;
            }
            (State::Calling | State::Proceeding, StatusCodeKind::Successful) => {
                // The TU ACKs 2xx itself; later 2xx retransmissions arrive
                // as stray responses.
                out.pass_up = true;
                out.terminated = true;
            }
            (State::Calling | State::Proceeding, _) => {
                let ack = Wire::from(build_ack(&self.request, resp)?);
                out.send = Some(ack.clone());
                self.ack = Some(ack);
                self.timers.stop(TimerKind::A);
                self.timers.stop(TimerKind::B);
                out.pass_up = true;
                if self.peer.transport.is_reliable() {
                    out.terminated = true;
                } else {
                    self.state = State::Completed;
                    self.timers.set(TimerKind::D, now + TIMER_D);
                }
            }
            (State::Completed, StatusCodeKind::Provisional | StatusCodeKind::Successful) => {}
            (State::Completed, _) => {
                // A retransmitted final response: re-send the ACK only.
                out.send = self.ack.clone();
            }
        }
        Ok(out)
    }

    pub fn on_timer(&mut self, kind: TimerKind, now: Instant) -> Fired {
        self.timers.stop(kind);
        match (kind, self.state) {
            (TimerKind::A, State::Calling) => {
                self.a_interval *= 2;
                self.timers.set(TimerKind::A, now + self.a_interval);
                Fired::Resend(self.wire.clone())
            }
            (TimerKind::B, State::Calling) => Fired::TimedOut,
            (TimerKind::D, State::Completed) => Fired::Terminated,
            _ => Fired::Nothing,
        }
    }
}
