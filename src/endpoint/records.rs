//! Call records as the call path sees them: an `in_progress` record when a
//! call is accepted, one per rejected INVITE, and the final record when the
//! call ends. The endpoint only queues them ([`Endpoint::poll_record`]); the
//! daemon hands them to the `cdr` writer, so nothing here touches a disk.
//!
//! The hooks in the other endpoint files are one line each: arrival
//! (`on_invite`), rejection (`on_invite`), who hung up (`on_bye`,
//! `on_cancel`, `on_agent_bye`), offer (`offer`), answer
//! (`on_agent_response`) and end (`end_call`, before anything is released).
//! The same hooks raise the live events (`events.rs`), so the stream and
//! the records never disagree.

use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::agents::caller_number;
use super::{CallKey, Endpoint, Now};
use crate::acd::DivertReason;
use crate::call::agent::AgentLegState;
use crate::cdr::{CallRecord, Candidate, Disposition, HangupBy, RoutingDecision};
use crate::config::{Strategy, Target};
use crate::ivr::IvrOutcome;
use crate::sip::headers;

/// Records of calls in progress and records ready for the writer.
#[derive(Debug, Default)]
pub struct RecordBook {
    open: HashMap<CallKey, Open>,
    out: VecDeque<CallRecord>,
}

#[derive(Debug)]
struct Open {
    rec: CallRecord,
    /// The first side known to have ended the call.
    hangup_by: Option<HangupBy>,
}

impl RecordBook {
    /// The record of a call in progress, as far as it is known.
    pub(super) fn get(&self, ck: &CallKey) -> Option<&CallRecord> {
        self.open.get(ck).map(|o| &o.rec)
    }
}

pub(super) fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The wall time of a past monotonic instant.
fn wall_ms_of(now: Now, at: Instant) -> i64 {
    let ago = i64::try_from(now.mono.saturating_duration_since(at).as_millis()).unwrap_or(0);
    unix_ms(now.wall) - ago
}

impl Endpoint {
    /// Next record for the writer (arrivals, ends, rejections, in order).
    pub fn poll_record(&mut self) -> Option<CallRecord> {
        self.records.out.pop_front()
    }

    /// Call `ck` was accepted: queue its `in_progress` record.
    pub(super) fn record_arrival(&mut self, ck: &CallKey, invite: &rsip::Request, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let mut rec = CallRecord::arrival(
            &ck.0,
            &caller_number(invite),
            &call.number,
            unix_ms(now.wall),
        );
        rec.queue = call.queue().map(str::to_owned);
        self.event_record_opened(&rec, now);
        self.records.out.push_back(rec.clone());
        self.records.open.insert(
            ck.clone(),
            Open {
                rec,
                hangup_by: None,
            },
        );
    }

    /// Answers a new INVITE with `code` and records it as `rejected`.
    pub(super) fn reject_invite(
        &mut self,
        key: &crate::sip::transaction::TxKey,
        req: &rsip::Request,
        code: u16,
        now: Now,
    ) {
        self.record_rejected(req, now);
        let resp = crate::sip::headers::response_to(
            req,
            code,
            crate::sip::message::reason_phrase(code),
            Some(&super::calls::new_tag()),
        );
        self.reject(key, resp, now);
    }

    /// One `rejected` record for a new INVITE that was not accepted.
    pub(super) fn record_rejected(&mut self, req: &rsip::Request, now: Now) {
        let number = headers::request_user(req).unwrap_or_default();
        let id = headers::call_id(req).unwrap_or_default();
        let at = unix_ms(now.wall);
        let mut rec = CallRecord::arrival(&id, &caller_number(req), &number, at);
        rec.queue = self
            .cfg
            .numbers
            .iter()
            .find(|n| n.number == number)
            .and_then(|n| match &n.to {
                Target::Queue(q) => Some(q.clone()),
                _ => None,
            });
        rec.ended_ms = Some(at);
        rec.disposition = Disposition::Rejected;
        rec.hangup_by = Some(HangupBy::System);
        self.event_record_opened(&rec, now);
        self.records.out.push_back(rec);
    }

    /// Remembers who ended call `ck`, unless someone already did. A BYE
    /// that crosses ours (the call is already `Ending`) does not count: we
    /// hung up first.
    pub(super) fn record_hangup_by(&mut self, ck: &CallKey, who: HangupBy) {
        let ours_first = self
            .calls
            .get(ck)
            .is_some_and(|c| c.state == crate::call::CallState::Ending);
        if let Some(o) = self.records.open.get_mut(ck) {
            o.hangup_by
                .get_or_insert(if ours_first { HangupBy::System } else { who });
        }
    }

    /// Call `ck` is being offered to `agent`: keep the time and why.
    pub(super) fn record_offer(&mut self, ck: &CallKey, agent: &str, now: Now) {
        let decision = self.routing_decision(ck, agent, now);
        self.event_offered(ck, agent, now);
        if let Some(o) = self.records.open.get_mut(ck) {
            o.rec.offered_ms.get_or_insert(unix_ms(now.wall));
            o.rec.agent = Some(agent.to_owned());
            o.rec.routing = decision;
        }
    }

    /// The agent leg of `ck` may have just been answered.
    pub(super) fn record_answered(&mut self, ck: &CallKey, now: Now) {
        let Some(leg) = self.calls.get(ck).and_then(|c| c.agent.as_ref()) else {
            return;
        };
        if leg.state != AgentLegState::Connected {
            return;
        }
        let agent = leg.agent_id.clone();
        if let Some(o) = self.records.open.get_mut(ck) {
            let first = o.rec.answered_ms.is_none();
            if first {
                o.rec.answered_ms = Some(unix_ms(now.wall));
            }
            o.rec.agent = Some(agent.clone());
            if first {
                self.event_answered(ck, &agent, now);
            }
        }
    }

    /// A closed branch (`ivr:IVR.NODE` or `queue:NAME`) turned call `ck`
    /// away; the record keeps the first.
    pub(super) fn record_closed_branch(&mut self, ck: &CallKey, branch: String) {
        if let Some(o) = self.records.open.get_mut(ck) {
            o.rec.closed_by.get_or_insert(branch);
        }
    }

    /// Call `ck` ends now: queue its final record. Runs before the call's
    /// state is dropped, so the IVR path and queue times are still there.
    pub(super) fn record_end(&mut self, ck: &CallKey, now: Now) {
        let Some(Open { mut rec, hangup_by }) = self.records.open.remove(ck) else {
            return;
        };
        let mut closed_by_ivr = false;
        let mut diverted = None;
        if let Some(call) = self.calls.get(ck) {
            if let Some(run) = &call.ivr {
                rec.ivr_path = run.path().to_vec();
                rec.variables = run.variables().clone();
                closed_by_ivr = matches!(run.outcome(), Some(IvrOutcome::HungUp));
            }
            // Every queue the caller went through, in order (an overflow
            // counts against the first; see `cdr::report`).
            for q in &call.queues_seen {
                let step = format!("queue:{q}");
                if rec.ivr_path.last() != Some(&step) {
                    rec.ivr_path.push(step);
                }
            }
            if let Some(q) = call.queues_seen.last() {
                rec.queue = Some(q.to_owned());
            }
            diverted = call.diverted;
            rec.hold_ms =
                i64::try_from(call.hold.total_at(now.mono).as_millis()).unwrap_or(i64::MAX);
            // Clamped: wall and monotonic clocks may disagree by a ms.
            rec.queued_ms = call.queued_at.map(|t| {
                wall_ms_of(now, t)
                    .min(rec.offered_ms.unwrap_or(i64::MAX))
                    .max(rec.arrived_ms)
            });
        }
        let by = hangup_by.unwrap_or(HangupBy::System);
        rec.ended_ms = Some(unix_ms(now.wall));
        rec.hangup_by = Some(by);
        rec.disposition = if rec.answered_ms.is_some() {
            Disposition::Answered
        } else if diverted == Some(DivertReason::Closed) {
            Disposition::Closed
        } else if diverted.is_some() {
            // Sent on by max_wait_s, max_waiting or a removed queue.
            Disposition::Overflowed
        } else if closed_by_ivr && by != HangupBy::Caller {
            Disposition::Closed
        } else if by == HangupBy::Caller {
            Disposition::Abandoned
        } else if self.draining {
            // The daemon stopped with the caller still waiting.
            Disposition::Interrupted
        } else {
            // No ACK, or a media timeout: the caller's phone went away.
            Disposition::Abandoned
        };
        self.event_record_closed(ck, &rec, now);
        self.records.out.push_back(rec);
    }

    /// Why `chosen` got call `ck`, from the router's own decision: the
    /// strategy, the chosen agent and its rank key, how many agents were
    /// eligible and still free, and the next in line with theirs. It costs
    /// what the router touched, never a pass over every agent, so the
    /// record stays small whatever the size of the contact center.
    fn routing_decision(&self, ck: &CallKey, chosen: &str, now: Now) -> Option<RoutingDecision> {
        let call = self.calls.get(ck)?;
        let queue = call.queue()?;
        let q = self.cfg.queues.get(queue)?;
        let explain = call
            .acd
            .and_then(|id| self.router.explain_offer(id, RUNNERS_UP));
        let level = explain.as_ref().map_or(0, |e| e.level);
        let req = crate::acd::required_skills(q, level);
        let score = |id: &str| -> Option<f64> {
            match q.strategy {
                Strategy::LongestIdle => self
                    .router
                    .agent(id)
                    .and_then(|s| s.last_call_end)
                    .map(|t| now.mono.saturating_duration_since(t).as_secs_f64()),
                Strategy::MostSkilled => self
                    .cfg
                    .agents
                    .get(id)
                    .map(|a| f64::from(crate::acd::skill_score(a, &req))),
                Strategy::FewestCalls => self.router.agent(id).map(|s| s.calls_taken as f64),
                Strategy::RoundRobin | Strategy::Random => None,
            }
        };
        let mut candidates = vec![Candidate {
            agent: chosen.to_owned(),
            score: score(chosen),
            note: "chosen".to_owned(),
        }];
        if let Some(e) = &explain {
            candidates.extend(e.runners_up.iter().map(|id| Candidate {
                agent: id.to_string(),
                score: score(id),
                note: "next in line".to_owned(),
            }));
        }
        let name = strategy_name(q.strategy);
        let counts = match &explain {
            Some(e) => format!("{} eligible, {} more free; ", e.eligible, e.free),
            None => String::new(),
        };
        let reason = format!(
            "{name}: {counts}{chosen} ranked first{}{}",
            if level > 0 {
                format!(" (skills relaxed, step {level})")
            } else {
                String::new()
            },
            if call.priority != 0 {
                " (caller priority from the IVR)"
            } else {
                ""
            }
        );
        Some(RoutingDecision {
            strategy: name.to_owned(),
            candidates,
            chosen: Some(chosen.to_owned()),
            reason,
            eligible: explain.as_ref().map(|e| e.eligible as u64),
            free: explain.as_ref().map(|e| e.free as u64),
        })
    }
}

/// How many runners-up a call record names beside the chosen agent.
const RUNNERS_UP: usize = 2;

/// The strategy's name in the configuration.
fn strategy_name(s: Strategy) -> &'static str {
    Strategy::NAMES
        .iter()
        .copied()
        .find(|n| Strategy::parse(n) == Some(s))
        .unwrap_or("?")
}

impl Endpoint {
    /// At exit, after [`Endpoint::shutdown`]: final records for the calls
    /// still up (their BYEs will not be waited for). Unanswered ones are
    /// `interrupted`, as a crash would have left them.
    pub fn finish_records(&mut self, now: Now) {
        self.draining = true;
        let keys: Vec<CallKey> = self.records.open.keys().cloned().collect();
        for ck in keys {
            self.record_end(&ck, now);
        }
    }
}
