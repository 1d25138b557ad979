//! Retransmission of 2xx responses to INVITE until the ACK arrives
//! (RFC 3261 §13.3.1.4). Sans-IO, same poll/handle pattern as the layer.
//!
//! Entries are keyed by Call-ID + CSeq number, which an ACK for the 2xx
//! repeats. Retransmissions happen on every transport: the 2xx travels
//! end to end and a later hop may be UDP.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Request, Response};

use super::timers::TimerConfig;
use super::{Transmit, TxError};
use crate::sip::Peer;

/// What the retransmitter reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uas2xxEvent {
    /// 64*T1 passed without an ACK: the dialog is confirmed but the session
    /// should be torn down with BYE (RFC 3261 §13.3.1.4).
    AckTimeout { call_id: String, cseq: u32 },
}

#[derive(Debug)]
struct Entry {
    resp: Response,
    to: Peer,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

#[derive(Debug)]
pub struct Uas2xxRetransmitter {
    cfg: TimerConfig,
    entries: HashMap<(String, u32), Entry>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Uas2xxEvent>,
}

impl Uas2xxRetransmitter {
    pub fn new(cfg: TimerConfig) -> Self {
        Uas2xxRetransmitter {
            cfg,
            entries: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Schedule retransmissions of `resp`, which the caller has just sent
    /// once. A second `start` for the same Call-ID/CSeq replaces the first.
    pub fn start(&mut self, resp: Response, to: Peer, now: Instant) -> Result<(), TxError> {
        let call_id = resp.call_id_header()?.value().to_string();
        let cseq = resp.cseq_header()?.typed()?.seq;
        let entry = Entry {
            resp,
            to,
            next: now + self.cfg.t1,
            interval: self.cfg.t1,
            give_up: now + self.cfg.t1x64(),
        };
        self.entries.insert((call_id, cseq), entry);
        Ok(())
    }

    /// Stop retransmitting for this ACK. Returns whether it matched.
    pub fn on_ack(&mut self, ack: &Request) -> bool {
        let (Ok(call_id), Ok(cseq)) = (ack.call_id_header(), ack.cseq_header()) else {
            return false;
        };
        let Ok(cseq) = cseq.typed() else { return false };
        self.entries
            .remove(&(call_id.value().to_string(), cseq.seq))
            .is_some()
    }

    /// Forget every entry of a call (e.g. it was torn down).
    pub fn stop(&mut self, call_id: &str) {
        self.entries.retain(|(c, _), _| c != call_id);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.next.min(e.give_up)).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let t2 = self.cfg.t2;
        let mut gave_up = Vec::new();
        for (k, e) in self.entries.iter_mut() {
            if e.give_up <= now {
                gave_up.push(k.clone());
            } else if e.next <= now {
                self.transmits.push_back(Transmit {
                    to: e.to,
                    msg: e.resp.clone().into(),
                });
                e.interval = (e.interval * 2).min(t2);
                e.next = now + e.interval;
            }
        }
        gave_up.sort();
        for k in gave_up {
            self.entries.remove(&k);
            self.events.push_back(Uas2xxEvent::AckTimeout {
                call_id: k.0,
                cseq: k.1,
            });
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Uas2xxEvent> {
        self.events.pop_front()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
