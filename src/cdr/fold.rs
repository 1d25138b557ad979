//! Call records from the engine's event stream: an `in_progress` record
//! when a call is accepted and again when an agent answers it (so that a
//! process killed mid-call leaves the queue, agent and times of its
//! bridged calls behind), one per rejected INVITE, and the final record
//! when the call ends; and the agents' logged-in spans. Nothing here
//! touches a disk: the daemon hands what [`RecordFold::poll`] yields to the
//! record writer.

use ahash::AHashMap as HashMap;
use std::collections::VecDeque;

use crate::events::{unix_ms, CallRef, Ended, Event, EventKind};

use super::record::{AgentLegRecord, MonitorMode, MonitorRecord, UnixMs};
use super::{CallRecord, Disposition, HangupBy};
use crate::events::MonitorStep;

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
            EventKind::Queued {
                call,
                queue,
                refused: None,
                ..
            } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.queue = Some(queue.clone());
                    r.queued_ms = Some(at);
                }
            }
            EventKind::Answered {
                call, agent, queue, ..
            } => {
                if let Some(r) = self.open.get_mut(call) {
                    let first = r.answered_ms.is_none();
                    r.answered_ms.get_or_insert(at);
                    r.agent = Some(agent.clone());
                    r.legs.push(AgentLegRecord::agent(agent, queue.clone(), at));
                    if first {
                        // The row written at arrival, now with the answer.
                        self.out.push_back(RecordOut::Call(Box::new(r.clone())));
                    }
                }
            }
            EventKind::Transferred { call, to, .. } => {
                if let Some(leg) = self
                    .open
                    .get_mut(call)
                    .and_then(|r| r.legs.last_mut())
                    .filter(|l| l.ended_ms.is_none())
                {
                    leg.ended_ms = Some(at);
                    leg.transferred_to = Some(to.clone());
                }
            }
            EventKind::TrunkBridged {
                call, trunk, to, ..
            } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.legs.push(AgentLegRecord::outside(trunk, to, at));
                }
            }
            // The consulted agent's leg joins the caller's record as its
            // next leg (after the transferor's, ended by `Transferred`).
            EventKind::Joined {
                call, agent, queue, ..
            } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.agent = Some(agent.clone());
                    r.legs.push(AgentLegRecord::agent(agent, queue.clone(), at));
                }
            }
            EventKind::RecordingStarted { call, path } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.recording = Some(path.clone());
                    // Written now, so a crash mid-call still leaves the
                    // link to the file it was writing.
                    self.out.push_back(RecordOut::Call(Box::new(r.clone())));
                }
            }
            EventKind::Monitor {
                call,
                supervisor,
                mode,
                step,
            } => {
                let Some(r) = self.open.get_mut(call) else {
                    return;
                };
                let span = MonitorMode {
                    mode: mode.as_str().to_owned(),
                    since_ms: at,
                };
                let open = r
                    .monitors
                    .iter_mut()
                    .rev()
                    .find(|m| m.supervisor == *supervisor && m.ended_ms.is_none());
                match (step, open) {
                    (MonitorStep::Started, _) => r.monitors.push(MonitorRecord {
                        supervisor: supervisor.clone(),
                        started_ms: at,
                        ended_ms: None,
                        ended_by: None,
                        modes: vec![span],
                    }),
                    (MonitorStep::ModeChanged, Some(m)) => m.modes.push(span),
                    (MonitorStep::Ended { reason }, Some(m)) => {
                        m.ended_ms = Some(at);
                        m.ended_by = Some((*reason).to_owned());
                    }
                    // A leg that never answered leaves no record.
                    (MonitorStep::Failed { .. }, _) | (_, None) => {}
                }
            }
            EventKind::VoicemailStarted { call, path } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.voicemail = Some(path.clone());
                    // Written now: a crash mid-message still links the file.
                    self.out.push_back(RecordOut::Call(Box::new(r.clone())));
                }
            }
            EventKind::SurveyStarted { call, .. } => {
                // The agent's leg ends with its hang-up, not with the survey.
                if let Some(leg) = self
                    .open
                    .get_mut(call)
                    .and_then(|r| r.legs.last_mut())
                    .filter(|l| l.ended_ms.is_none())
                {
                    leg.ended_ms = Some(at);
                }
            }
            EventKind::CsatScored { call, score, .. } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.csat = Some(*score);
                }
            }
            EventKind::CallbackOffered { call, .. } => {
                if let Some(r) = self.open.get_mut(call) {
                    r.callback.get_or_insert_with(Default::default).offered_ms = Some(at);
                }
            }
            EventKind::CallbackAccepted {
                call, id, number, ..
            } => {
                if let Some(r) = self.open.get_mut(call) {
                    let c = r.callback.get_or_insert_with(Default::default);
                    c.id = Some(id.clone());
                    c.number = Some(number.clone());
                    c.accepted_ms = Some(at);
                }
            }
            EventKind::CallbackAttempt {
                call,
                id,
                queue,
                number,
                attempt,
                origin,
                accepted,
            } => {
                // The placed call's own record: the customer's number as
                // the caller, `callback` as the number it came through.
                let mut rec = CallRecord::arrival(&call.call_id, number, "callback", at);
                rec.queue = Some(queue.clone());
                rec.queued_ms = Some(at);
                rec.callback = Some(super::record::CallbackRecord {
                    id: Some(id.clone()),
                    number: Some(number.clone()),
                    accepted_ms: Some(crate::events::unix_ms(*accepted)),
                    attempt: Some(*attempt),
                    origin: Some(origin.clone()),
                    ..Default::default()
                });
                self.out.push_back(RecordOut::Call(Box::new(rec.clone())));
                self.open.insert(call.clone(), rec);
            }
            EventKind::CallbackResult {
                call,
                outcome,
                gave_up,
                ..
            } => {
                if let Some(c) = self.open.get_mut(call).and_then(|r| r.callback.as_mut()) {
                    c.outcome = Some(outcome.as_str().to_owned());
                    c.gave_up = *gave_up;
                    if *outcome == crate::events::CallbackOutcome::Reached {
                        c.reached_ms = Some(at);
                    }
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
            | EventKind::AgentPaused { .. }
            | EventKind::AgentLogin { .. }
            | EventKind::RecordingEnded { .. }
            | EventKind::VoicemailEnded { .. }
            | EventKind::CallbackCancelled { .. }
            | EventKind::CallbackRestored { .. }
            // An outbound call has no inbound call record of its own; the
            // feature that places it records what it was for.
            | EventKind::Trunk { .. } => {}
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
        // A caller who left its queue for an IVR (a post-call survey) keeps
        // the time it entered the queue.
        rec.queued_ms = end.queued.map(unix_ms).or(rec.queued_ms).map(|t| {
            t.min(rec.offered_ms.unwrap_or(i64::MAX))
                .max(rec.arrived_ms)
        });
        if rec.answered_ms.is_none() {
            rec.answered_ms = end.answered.map(unix_ms);
        }
        rec.ended_ms = Some(at);
        for leg in rec.legs.iter_mut().filter(|l| l.ended_ms.is_none()) {
            leg.ended_ms = Some(at);
        }
        for m in rec.monitors.iter_mut().filter(|m| m.ended_ms.is_none()) {
            m.ended_ms = Some(at);
            m.ended_by = Some("call_ended".into());
        }
        rec.hangup_by = Some(end.hangup_by);
        rec.disposition = end.disposition;
        self.out.push_back(RecordOut::Call(Box::new(rec)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CallRef, Now};
    use std::time::{Duration, Instant, SystemTime};

    fn at(t0: Now, ms: u64) -> Now {
        Now {
            mono: t0.mono + Duration::from_millis(ms),
            wall: t0.wall + Duration::from_millis(ms),
        }
    }

    fn calls(fold: &mut RecordFold) -> Vec<CallRecord> {
        std::iter::from_fn(|| fold.poll())
            .filter_map(|o| match o {
                RecordOut::Call(r) => Some(*r),
                RecordOut::Session { .. } => None,
            })
            .collect()
    }

    #[test]
    fn an_answered_call_is_written_at_arrival_at_answer_and_at_the_end() {
        let t0 = Now {
            mono: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        let call = CallRef {
            seq: 7,
            call_id: "c1".into(),
        };
        let mut fold = RecordFold::default();
        let steps = [
            (
                0,
                EventKind::Arrived {
                    call: call.clone(),
                    caller: "555".into(),
                    number: "1500".into(),
                    queue: Some("support".into()),
                },
            ),
            (
                100,
                EventKind::Queued {
                    call: call.clone(),
                    queue: "support".into(),
                    caller: "555".into(),
                    position: 1,
                    priority: 0,
                    refused: None,
                },
            ),
            (
                200,
                EventKind::Offered {
                    call: call.clone(),
                    queue: Some("support".into()),
                    agent: "2001".into(),
                    routing: None,
                },
            ),
            (
                1500,
                EventKind::Answered {
                    call: call.clone(),
                    queue: Some("support".into()),
                    agent: "2001".into(),
                    agent_call_id: "a1".into(),
                    waited: Duration::from_millis(1400),
                    rang: Duration::from_millis(1300),
                },
            ),
        ];
        for (ms, kind) in steps {
            fold.fold(&Event {
                at: at(t0, ms),
                kind,
            });
        }
        let recs = calls(&mut fold);
        assert_eq!(recs.len(), 2, "{recs:?}");
        let base = t0.unix_ms();
        let mid = &recs[1];
        assert_eq!(mid.disposition, Disposition::InProgress);
        assert_eq!(mid.agent.as_deref(), Some("2001"));
        assert_eq!(mid.queued_ms, Some(base + 100));
        assert_eq!(mid.offered_ms, Some(base + 200));
        assert_eq!(mid.answered_ms, Some(base + 1500));
        assert_eq!(fold.open_calls(), 1);
        let end = Ended {
            call: call.clone(),
            caller: "555".into(),
            number: "1500".into(),
            queue: Some("support".into()),
            agent: Some("2001".into()),
            disposition: Disposition::Answered,
            hangup_by: HangupBy::Caller,
            arrived: t0.wall,
            queued: Some(at(t0, 100).wall),
            answered: Some(at(t0, 1500).wall),
            path: vec!["queue:support".into()],
            variables: Default::default(),
            hold: Duration::from_secs(2),
            placed: false,
        };
        fold.fold(&Event {
            at: at(t0, 9000),
            kind: EventKind::Ended(Box::new(end)),
        });
        let last = calls(&mut fold).pop().expect("the final record");
        assert_eq!(last.disposition, Disposition::Answered);
        assert_eq!(last.ended_ms, Some(base + 9000));
        assert_eq!(last.hold_ms, 2000);
        assert_eq!(last.hangup_by, Some(HangupBy::Caller));
        assert_eq!(last.ivr_path, ["queue:support"]);
        assert_eq!(fold.open_calls(), 0);
    }

    #[test]
    fn a_caller_who_left_its_queue_for_the_survey_keeps_its_queue_time() {
        let t0 = Now {
            mono: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        let call = CallRef {
            seq: 8,
            call_id: "c2".into(),
        };
        let mut fold = RecordFold::default();
        let steps = [
            (
                0,
                EventKind::Arrived {
                    call: call.clone(),
                    caller: "555".into(),
                    number: "1500".into(),
                    queue: None,
                },
            ),
            (
                3000,
                EventKind::Queued {
                    call: call.clone(),
                    queue: "support".into(),
                    caller: "555".into(),
                    position: 1,
                    priority: 0,
                    refused: None,
                },
            ),
        ];
        for (ms, kind) in steps {
            fold.fold(&Event {
                at: at(t0, ms),
                kind,
            });
        }
        // The engine's end of a surveyed call: back in an IVR, no queue time.
        let end = Ended {
            call: call.clone(),
            caller: "555".into(),
            number: "1500".into(),
            queue: Some("support".into()),
            agent: Some("2001".into()),
            disposition: Disposition::Answered,
            hangup_by: HangupBy::Agent,
            arrived: t0.wall,
            queued: None,
            answered: Some(at(t0, 4000).wall),
            path: vec!["ivr:rate.score".into()],
            variables: Default::default(),
            hold: Duration::ZERO,
            placed: false,
        };
        fold.fold(&Event {
            at: at(t0, 9000),
            kind: EventKind::Ended(Box::new(end)),
        });
        let last = calls(&mut fold).pop().expect("the final record");
        assert_eq!(last.queued_ms, Some(t0.unix_ms() + 3000));
    }
}
