//! Call records from the engine's event stream: an `in_progress` record
//! when a call is accepted, one per rejected INVITE, and the final record
//! when the call ends; and the agents' logged-in spans. Nothing here
//! touches a disk: the daemon hands what [`RecordFold::poll`] yields to the
//! record writer.

use std::collections::{HashMap, VecDeque};

use crate::events::{unix_ms, CallRef, Ended, Event, EventKind};

use super::record::UnixMs;
use super::{CallRecord, Disposition, HangupBy};

/// What the record writer is given.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOut {
    Call(Box<CallRecord>),
    /// An agent's state changed: `logged_in` is whether it now is (any
    /// state but `logged_out` and `off_shift`).
    Session {
        agent: String,
        logged_in: bool,
        at_ms: UnixMs,
    },
}

/// Records of calls in progress, and what is ready for the writer.
#[derive(Debug, Default)]
pub struct RecordFold {
    open: HashMap<CallRef, CallRecord>,
    out: VecDeque<RecordOut>,
}

impl RecordFold {
    /// Next record or session change, in the order of the events.
    pub fn poll(&mut self) -> Option<RecordOut> {
        self.out.pop_front()
    }

    /// Calls whose record is open (accepted, not ended).
    pub fn open_calls(&self) -> usize {
        self.open.len()
    }

    pub fn fold(&mut self, ev: &Event) {
        let at = ev.at.unix_ms();
        match &ev.kind {
            EventKind::Arrived {
                call,
                caller,
                number,
                queue,
            } => {
                let mut rec = CallRecord::arrival(&call.call_id, caller, number, at);
                rec.queue = queue.clone();
                self.out.push_back(RecordOut::Call(Box::new(rec.clone())));
                self.open.insert(call.clone(), rec);
            }
            EventKind::Rejected {
                call_id,
                caller,
                number,
                queue,
                ..
            } => {
                let mut rec = CallRecord::arrival(call_id, caller, number, at);
                rec.queue = queue.clone();
                rec.ended_ms = Some(at);
                rec.disposition = Disposition::Rejected;
                rec.hangup_by = Some(HangupBy::System);
                self.out.push_back(RecordOut::Call(Box::new(rec)));
            }
            EventKind::IvrClosed { call, ivr, node } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.closed_by
                        .get_or_insert_with(|| format!("ivr:{ivr}.{node}"));
                }
            }
            EventKind::Diverted {
                call,
                queue,
                reason: crate::acd::DivertReason::Closed,
                ..
            } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.closed_by.get_or_insert_with(|| format!("queue:{queue}"));
                }
            }
            EventKind::Offered {
                call,
                agent,
                routing,
                ..
            } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.offered_ms.get_or_insert(at);
                    r.agent = Some(agent.clone());
                    r.routing = routing.clone();
                }
            }
            EventKind::Answered { call, agent, .. } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.answered_ms.get_or_insert(at);
                    r.agent = Some(agent.clone());
                }
            }
            EventKind::Ended(end) => self.end(end, at),
            EventKind::AgentState { agent, state, .. } => {
                self.out.push_back(RecordOut::Session {
                    agent: agent.clone(),
                    logged_in: !matches!(*state, "logged_out" | "off_shift"),
                    at_ms: at,
                });
            }
            EventKind::IvrStep { .. }
            | EventKind::Queued { .. }
            | EventKind::RingNoAnswer { .. }
            | EventKind::Diverted { .. }
            | EventKind::AgentReachable { .. }
            | EventKind::AgentPaused { .. } => {}
        }
    }

    fn end(&mut self, end: &Ended, at: UnixMs) {
        let Some(mut rec) = self.open.remove(&end.call) else {
            return;
        };
        rec.ivr_path = end.path.clone();
        rec.variables = end.variables.clone();
        if end.queue.is_some() {
            rec.queue = end.queue.clone();
        }
        if end.agent.is_some() {
            rec.agent = end.agent.clone();
        }
        rec.hold_ms = i64::try_from(end.hold.as_millis()).unwrap_or(i64::MAX);
        // Clamped: the queue was entered after arrival and, if there was an
        // offer, at the latest then (the last queue may come after an
        // offer in an earlier one).
        rec.queued_ms = end.queued.map(|t| {
            unix_ms(t)
                .min(rec.offered_ms.unwrap_or(i64::MAX))
                .max(rec.arrived_ms)
        });
        if rec.answered_ms.is_none() {
            rec.answered_ms = end.answered.map(unix_ms);
        }
        rec.ended_ms = Some(at);
        rec.hangup_by = Some(end.hangup_by);
        rec.disposition = end.disposition;
        self.out.push_back(RecordOut::Call(Box::new(rec)));
    }
}
