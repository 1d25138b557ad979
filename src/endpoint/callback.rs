//! Callback keeping the caller's place (`[queues.NAME.callback]`).
//!
//! A waiting caller is offered a callback once it has waited `after_s`, or
//! as soon as its estimated wait is above `above_wait_s`: the offer prompt
//! plays over the music and the queue's digit accepts. The caller then
//! presses `#` for the number it calls from, or keys another number and
//! `#`; the goodbye prompt plays and sipacd hangs up. The router keeps the
//! caller's entry as a callback at the same place (`Router::make_callback`:
//! counted as waiting, ordered with live callers, no `max_wait_s`).
//!
//! When the router claims an agent for it, the shard places a call for the
//! callback: a call of the call table with no caller leg, whose agent leg
//! is offered as any other (RONA, refusal and the next agent work as
//! usual; the agent's INVITE carries `X-Sipacd-Callback: NUMBER`). Once the
//! agent answers, it hears the agent prompt and the number digit by digit;
//! then the number is called through the queue's trunk
//! (`Endpoint::place_trunk_call`) and, when it answers, bridged to the
//! agent. Busy or no answer frees the agent (wrap-up) and puts the
//! callback back in its place after the next wait of `retry_s`; after the
//! last try it is given up. Each step is an event (`Callback*`): the
//! records, metrics and live events fold them.
//!
//! Waiting callbacks are kept in `data_dir/callbacks.json` (every shard's,
//! in one shared book saved by a writer thread, never by a shard), read
//! back at start by the primary shard; a reload keeps them as it keeps
//! waiting callers. One whose queue a reload removes is held (kept, in
//! the file too, never called) until a reload brings the queue back,
//! when it waits again at its original place.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::call_table::CallHandle;
use super::media::MediaCommand;
use super::{Endpoint, Now};
use crate::acd::{AgentId, CallId};
use crate::call::callback::{
    self, Attempt, AttemptStep, Callback, CallbackState, Stage, StoredCallback,
};
use crate::call::{Call, CallState};
use crate::config::{CallbackOffer, Target};
use crate::events::{CallbackOutcome, EventKind, TrunkStep};
use crate::views::CallbackView;

/// With only `above_wait_s`, the estimate is looked at this often.
const RECHECK: Duration = Duration::from_secs(10);
/// While an agent's phone rings for the caller, the offer waits.
const WHILE_RINGING: Duration = Duration::from_secs(5);
/// Keying a number: given up after this long without a key.
const COLLECT: Duration = Duration::from_secs(15);
/// The customer's ring time when the queue no longer says (a reload).
const DEFAULT_RING_S: u64 = 30;
/// No RTP ports for the placed call: tried again after this.
const NO_PORTS_RETRY: Duration = Duration::from_secs(30);

impl Endpoint {
    /// The callback settings of the queue `ck` waits in.
    fn callback_cfg(&self, ck: CallHandle) -> Option<CallbackOffer> {
        let q = self.calls.get(ck)?.queue()?;
        self.cfg.queues.get(q)?.callback.clone()
    }

    /// A caller entered a queue: arms its callback offer, if the queue
    /// has one.
    pub(super) fn arm_callback_offer(&mut self, ck: CallHandle, now: Now) {
        let Some(cfg) = self.callback_cfg(ck) else {
            return;
        };
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        if call.attempt.is_some() || call.callback.is_some() {
            return;
        }
        call.callback = Some(Stage::Due);
        // A wait already too long is offered at once (the music first).
        let first = match (cfg.after_s, cfg.above_wait_s) {
            (_, Some(_)) => Duration::from_secs(1),
            (Some(after), None) => Duration::from_secs(after),
            (None, None) => return,
        };
        call.callback_at = Some(now.mono + first);
    }

    /// The call's callback deadline, if due: the offer, or the end of
    /// keying a number.
    pub(super) fn callback_timeout(&mut self, ck: CallHandle, now: Now) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        if call.callback_at.is_none_or(|t| t > now.mono) {
            return;
        }
        call.callback_at = None;
        match call.callback.clone() {
            Some(Stage::Due) => self.maybe_offer_callback(ck, now),
            Some(Stage::Collecting { digits }) => {
                self.finish_number(ck, &digits, now);
            }
            _ => {}
        }
    }

    fn maybe_offer_callback(&mut self, ck: CallHandle, now: Now) {
        let Some(cfg) = self.callback_cfg(ck) else {
            return;
        };
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let (Some(id), Some(leg), Some(queue)) = (call.acd, call.leg, call.queue()) else {
            return;
        };
        let queue = queue.to_owned();
        let ringing = call.agent.is_some();
        let waited = call
            .queued_at
            .map_or(Duration::ZERO, |t| now.mono.saturating_duration_since(t));
        let by_time = cfg.after_s.is_some_and(|a| waited.as_secs() >= a);
        let by_wait = cfg.above_wait_s.is_some_and(|above| {
            let position = self.router.position(id).unwrap_or(1);
            self.estimated_wait(&queue, position, now)
                .is_some_and(|w| w.as_secs() > above)
        });
        let next = if ringing {
            Some(WHILE_RINGING)
        } else if by_time || by_wait {
            None
        } else {
            let to_time = cfg
                .after_s
                .map(|a| Duration::from_secs(a).saturating_sub(waited));
            let to_check = cfg.above_wait_s.map(|_| RECHECK);
            to_time.into_iter().chain(to_check).min()
        };
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        if let Some(after) = next {
            call.callback_at = Some(now.mono + after.max(Duration::from_millis(100)));
            return;
        }
        call.callback = Some(Stage::Offered);
        let cref = call.cref.clone();
        info!(call = %cref.call_id, %queue, "callback offered");
        self.media(MediaCommand::Play {
            leg,
            prompts: vec![cfg.prompt],
            looped: false,
        });
        self.emit(EventKind::CallbackOffered { call: cref, queue }, now);
    }

    /// A key from a caller in the callback exchange. True when it was
    /// the exchange's (nothing else sees it).
    pub(super) fn callback_digit(&mut self, ck: CallHandle, digit: char, now: Now) -> bool {
        let Some(stage) = self.calls.get(ck).and_then(|c| c.callback.clone()) else {
            return false;
        };
        let Some(cfg) = self.callback_cfg(ck) else {
            return false;
        };
        match stage {
            Stage::Due => false,
            Stage::Offered if digit == cfg.digit && self.still_waiting(ck) => {
                self.ask_number(ck, String::new(), &cfg, now);
                true
            }
            Stage::Offered => false,
            Stage::Collecting { mut digits } => {
                match digit {
                    '#' => {
                        self.finish_number(ck, &digits, now);
                        return true;
                    }
                    '*' => digits.clear(),
                    d if d.is_ascii_digit() && digits.len() < callback::MAX_DIGITS => {
                        digits.push(d);
                    }
                    _ => {}
                }
                if let Some(c) = self.calls.get_mut(ck) {
                    c.callback = Some(Stage::Collecting { digits });
                    c.callback_at = Some(now.mono + COLLECT);
                }
                true
            }
            Stage::Accepted => true,
        }
    }

    fn still_waiting(&self, ck: CallHandle) -> bool {
        self.calls
            .get(ck)
            .is_some_and(|c| c.acd.is_some() && c.agent.is_none() && c.answered_at.is_none())
    }

    /// Plays the number prompt and collects keys.
    fn ask_number(&mut self, ck: CallHandle, digits: String, cfg: &CallbackOffer, now: Now) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        call.callback = Some(Stage::Collecting { digits });
        call.callback_at = Some(now.mono + COLLECT);
        if let Some(leg) = call.leg {
            self.media(MediaCommand::Play {
                leg,
                prompts: vec![cfg.number_prompt.clone()],
                looped: false,
            });
        }
    }

    /// `#` or the end of keying: the number keyed, or the caller's own;
    /// asked again when neither can be called.
    fn finish_number(&mut self, ck: CallHandle, digits: &str, now: Now) {
        let Some(caller) = self.calls.get(ck).map(|c| c.caller.clone()) else {
            return;
        };
        match callback::number_to_call(digits, &caller) {
            Some(number) if self.still_waiting(ck) => self.accept_callback(ck, number, now),
            Some(_) => {
                // An agent took the call meanwhile: the exchange is over.
                if let Some(c) = self.calls.get_mut(ck) {
                    c.callback = None;
                    c.callback_at = None;
                }
            }
            None => {
                info!(call = %self.calls.call_id(ck), "no number to call back: asked again");
                if let Some(cfg) = self.callback_cfg(ck) {
                    self.ask_number(ck, String::new(), &cfg, now);
                }
            }
        }
    }

    /// The caller accepted: its place goes to a callback of `number`.
    fn accept_callback(&mut self, ck: CallHandle, number: String, now: Now) {
        let Some(cfg) = self.callback_cfg(ck) else {
            return;
        };
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let (Some(id), Some(queue)) = (call.acd, call.queue().map(str::to_owned)) else {
            return;
        };
        let position = self.router.position(id).unwrap_or(1);
        let place = self.router.waiting_place(id);
        if !self.router.make_callback(id) {
            // An agent was claimed for the caller this very moment.
            if let Some(c) = self.calls.get_mut(ck) {
                c.callback = None;
            }
            return;
        }
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let (arrival, priority) = match place {
            Some((arrival, _, priority)) => (arrival, priority),
            None => (call.queued_at.unwrap_or(now.mono), call.priority),
        };
        let waiting_since = now
            .wall
            .checked_sub(now.mono.saturating_duration_since(arrival))
            .unwrap_or(now.wall);
        let stored = StoredCallback {
            id: format!("cb-{}", super::calls::new_tag()),
            queue: queue.clone(),
            number: number.clone(),
            caller: call.caller.clone(),
            origin: call.cref.call_id.to_string(),
            waiting_since_ms: callback::ms(waiting_since),
            accepted_ms: callback::ms(now.wall),
            priority,
            attempts: 0,
            trunk: cfg.trunk.clone(),
        };
        // The caller's call no longer holds the router's entry: its end
        // leaves the callback where it is.
        call.acd = None;
        call.callback = Some(Stage::Accepted);
        call.callback_at = None;
        call.announce_at = None;
        let (cref, leg) = (call.cref.clone(), call.leg);
        self.acd_calls.remove(&id);
        info!(call = %cref.call_id, %queue, %number, id = %stored.id, position, "callback accepted: the caller's place is kept");
        super::shard::lock(&self.shared.callbacks).put(stored.clone());
        self.emit(
            EventKind::CallbackAccepted {
                call: cref,
                queue,
                id: stored.id.clone(),
                number,
                key: cfg.digit,
                position,
            },
            now,
        );
        self.callbacks.insert(
            id,
            Callback {
                stored,
                arrival,
                state: CallbackState::Waiting,
            },
        );
        match leg {
            Some(leg) => self.media(MediaCommand::Play {
                leg,
                prompts: vec![cfg.accepted_prompt],
                looped: false,
            }),
            None => self.hang_up(ck, now),
        }
    }

    /// A prompt that was neither the IVR's nor a queue announcement ended:
    /// true when it was the callback's (the goodbye: hang up; the agent's
    /// announcement: call the customer).
    pub(super) fn callback_prompt_ended(&mut self, ck: CallHandle, now: Now) -> bool {
        let Some(call) = self.calls.get(ck) else {
            return false;
        };
        if call.callback == Some(Stage::Accepted) {
            self.note_hangup_by(ck, crate::events::HangupBy::System);
            self.hang_up(ck, now);
            return true;
        }
        match call.attempt.as_ref().map(|a| a.step) {
            Some(AttemptStep::Announcing) => {
                self.call_customer(ck, now);
                true
            }
            // Music for the agent while the customer's phone rings.
            Some(AttemptStep::CallingCustomer(_)) => true,
            _ => false,
        }
    }

    /// The router claimed `agent` for callback `id`: the call for it is
    /// placed (its agent leg first). False when `id` is no callback.
    pub(super) fn offer_callback(
        &mut self,
        id: CallId,
        agent: AgentId,
        name: &str,
        waited: Duration,
        now: Now,
    ) -> bool {
        let Some(cb) = self.callbacks.get(&id) else {
            return false;
        };
        let stored = cb.stored.clone();
        if self.draining {
            // Stopping: no new calls. The callback stays in the file and
            // waits again after the restart.
            let out = self.router.caller_hangup(id, now.mono);
            self.apply_acd(out, now);
            if let Some(cb) = self.callbacks.get_mut(&id) {
                cb.state = CallbackState::RetryAt(now.mono);
            }
            return true;
        }
        let Some(ck) = self.placed_call(id, &stored, now) else {
            // No RTP ports (or no trunk): the agent is freed, the
            // callback keeps its place and is claimed again a little later.
            warn!(id = %stored.id, "no call could be placed for the callback: tried again later");
            let out = self.router.caller_hangup(id, now.mono);
            self.apply_acd(out, now);
            if let Some(cb) = self.callbacks.get_mut(&id) {
                cb.state = CallbackState::RetryAt(now.mono + NO_PORTS_RETRY);
            }
            return true;
        };
        let attempt = stored.attempts + 1;
        if let Some(cb) = self.callbacks.get_mut(&id) {
            cb.state = CallbackState::Calling;
            cb.stored.attempts = attempt;
            super::shard::lock(&self.shared.callbacks).put(cb.stored.clone());
        }
        let Some(cref) = self.calls.get(ck).map(|c| c.cref.clone()) else {
            return true;
        };
        info!(call = %cref.call_id, id = %stored.id, agent = %name, attempt, "callback: calling the agent first");
        let accepted = std::time::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(stored.accepted_ms).unwrap_or(0));
        self.emit(
            EventKind::CallbackAttempt {
                call: cref,
                id: stored.id.clone(),
                queue: stored.queue.clone(),
                number: stored.number.clone(),
                attempt,
                origin: stored.origin.clone(),
                accepted,
            },
            now,
        );
        self.offer(ck, agent, name, waited, now);
        true
    }

    /// The trunk callback `stored` calls out on: its queue's now, else the
    /// one it was accepted with.
    fn callback_trunk(
        &self,
        stored: &StoredCallback,
    ) -> Option<std::sync::Arc<crate::config::Trunk>> {
        let now = self
            .cfg
            .queues
            .get(&stored.queue)
            .and_then(|q| q.callback.as_ref())
            .map(|c| c.trunk.as_str());
        let name = now.unwrap_or(stored.trunk.as_str());
        self.cfg.trunks.get(name).cloned()
    }

    /// The call placed for a callback: in the call table like a caller's,
    /// with no caller leg (its dialog is never used on the wire).
    fn placed_call(&mut self, id: CallId, stored: &StoredCallback, now: Now) -> Option<CallHandle> {
        let trunk = self.callback_trunk(stored)?.peer;
        let Some(ports) = self.ports.allocate() else {
            warn!(id = %stored.id, "no RTP ports left for the callback's call");
            return None;
        };
        let host = self.cfg.server.advertise.to_string();
        let call_id = super::shard::call_id_for(self.shard, &host);
        let tag = super::calls::new_tag();
        let text = format!(
            "INVITE sip:callback@{host} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {host};branch=z9hG4bKcallback\r\n\
             From: <sip:{number}@{host}>;tag=callback\r\n\
             To: <sip:callback@{host}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:{number}@{host}>\r\n\
             Content-Length: 0\r\n\r\n",
            number = stored.number,
        );
        let Ok(rsip::SipMessage::Request(req)) = crate::sip::message::parse(text.as_bytes()) else {
            warn!(id = %stored.id, "callback's call not built: its number does not fit a SIP URI");
            return None;
        };
        let dialog = match crate::sip::dialog::Dialog::from_uas(&req, tag.clone()) {
            Ok(d) => d,
            Err(e) => {
                warn!(id = %stored.id, error = %e, "callback's call not built");
                return None;
            }
        };
        let target = Target::Queue(stored.queue.clone());
        let (mut call, _) = Call::new(
            dialog,
            trunk,
            "callback".into(),
            target,
            None,
            ports,
            Duration::ZERO,
            now.mono,
        );
        call.state = CallState::Confirmed;
        call.caller = stored.number.clone();
        call.arrived = now.wall;
        call.acd = Some(id);
        call.queued_at = Some(now.mono);
        call.queues_seen = vec![stored.queue.clone()];
        call.priority = stored.priority;
        call.attempt = Some(Attempt {
            callback: id,
            number: stored.number.clone(),
            step: AttemptStep::CallingAgent,
            done: false,
        });
        self.next_seq += 1;
        call.cref.seq = self.shard.make_id(self.next_seq);
        let ck = self.calls.insert((call_id, tag), call);
        self.shared
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.acd_calls.insert(id, ck);
        Some(ck)
    }

    /// The agent of a placed call answered: it hears whom it calls back.
    /// False when `ck` is a caller's call (bridged as usual).
    pub(super) fn attempt_agent_answered(&mut self, ck: CallHandle, now: Now) -> bool {
        let Some(call) = self.calls.get_mut(ck) else {
            return false;
        };
        let Some(attempt) = call.attempt.as_mut() else {
            return false;
        };
        attempt.step = AttemptStep::Announcing;
        let number = attempt.number.clone();
        let agent_leg = call.agent.as_ref().and_then(|l| l.leg);
        let prompt = self.callback_cfg(ck).map(|c| c.agent_prompt);
        match (agent_leg, prompt) {
            (Some(leg), Some(prompt)) => {
                let dir = &self.cfg.server.prompts;
                let mut prompts = vec![prompt];
                prompts.extend(
                    number
                        .chars()
                        .filter(char::is_ascii_digit)
                        .map(|d| dir.join(format!("{d}.wav"))),
                );
                self.media(MediaCommand::Play {
                    leg,
                    prompts,
                    looped: false,
                });
            }
            _ => self.call_customer(ck, now),
        }
        true
    }

    /// The agent heard the announcement: the customer is called.
    fn call_customer(&mut self, ck: CallHandle, now: Now) {
        let Some(attempt) = self.calls.get(ck).and_then(|c| c.attempt.clone()) else {
            return;
        };
        let number = attempt.number.clone();
        let trunk = self
            .callbacks
            .get(&attempt.callback)
            .and_then(|cb| self.callback_trunk(&cb.stored))
            .map(|t| t.name.clone());
        let Some(trunk) = trunk else {
            return self.attempt_failed(ck, CallbackOutcome::Failed, now);
        };
        let ring_s = self.callback_cfg(ck).map_or(DEFAULT_RING_S, |c| c.ring_s);
        let ring = Duration::from_secs(ring_s);
        match self.place_trunk_call(&trunk, &number, ring, now) {
            Ok(placed) => {
                info!(call = %self.calls.call_id(ck), %number, %trunk, outbound = %placed.call_id, "callback: calling the customer");
                self.callback_trunks.insert(placed.id, ck);
                let Some(call) = self.calls.get_mut(ck) else {
                    return;
                };
                if let Some(a) = call.attempt.as_mut() {
                    a.step = AttemptStep::CallingCustomer(placed.id);
                }
                let leg = call.agent.as_ref().and_then(|l| l.leg);
                let music = call
                    .queue()
                    .and_then(|q| self.cfg.queues.get(q))
                    .and_then(|q| q.music.clone());
                if let (Some(leg), Some(music)) = (leg, music) {
                    self.media(MediaCommand::Play {
                        leg,
                        prompts: vec![music],
                        looped: true,
                    });
                }
            }
            Err(e) => {
                warn!(call = %self.calls.call_id(ck), %number, error = %e, "callback: the customer could not be called");
                self.attempt_failed(ck, CallbackOutcome::Failed, now);
            }
        }
    }

    /// An outbound call answered: if it is a callback's customer, it is
    /// bridged to the agent.
    pub(super) fn callback_trunk_answered(&mut self, trunk_call: u64, now: Now) {
        let Some(&ck) = self.callback_trunks.get(&trunk_call) else {
            return;
        };
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let agent_leg = call.agent.as_ref().and_then(|l| l.leg);
        let Some(attempt) = call.attempt.as_mut() else {
            return;
        };
        attempt.step = AttemptStep::Connected(trunk_call);
        attempt.done = true;
        let (id, number) = (attempt.callback, attempt.number.clone());
        let cref = call.cref.clone();
        if let (Some(a), Some(b)) = (agent_leg, self.trunk_media_leg(trunk_call)) {
            self.media(MediaCommand::Bridge { a, b });
        }
        let Some(cb) = self.callbacks.remove(&id) else {
            return;
        };
        super::shard::lock(&self.shared.callbacks).remove(&cb.stored.id);
        info!(call = %cref.call_id, %number, id = %cb.stored.id, "callback: the customer answered; bridged to the agent");
        self.emit(
            EventKind::CallbackResult {
                call: cref,
                id: cb.stored.id,
                queue: cb.stored.queue,
                number,
                outcome: CallbackOutcome::Reached,
                gave_up: false,
            },
            now,
        );
    }

    /// An outbound call's failure or end, if it is a callback's customer.
    pub(super) fn callback_trunk_step(&mut self, trunk_call: u64, step: &TrunkStep, now: Now) {
        let Some(&ck) = self.callback_trunks.get(&trunk_call) else {
            return;
        };
        let connected = self
            .calls
            .get(ck)
            .and_then(|c| c.attempt.as_ref())
            .is_some_and(|a| matches!(a.step, AttemptStep::Connected(_)));
        match step {
            TrunkStep::Failed { code, .. } => {
                self.callback_trunks.remove(&trunk_call);
                self.attempt_failed(ck, CallbackOutcome::of_code(*code), now);
            }
            TrunkStep::Ended { .. } => {
                self.callback_trunks.remove(&trunk_call);
                if connected {
                    info!(call = %self.calls.call_id(ck), "callback: the customer hung up");
                    self.note_hangup_by(ck, crate::events::HangupBy::Caller);
                    self.hang_up(ck, now);
                } else {
                    // Our CANCEL crossed its answer.
                    self.attempt_failed(ck, CallbackOutcome::NoAnswer, now);
                }
            }
            _ => {}
        }
    }

    /// The customer was not reached: the agent is freed; the callback
    /// waits for its next try, or is given up after the last.
    fn attempt_failed(&mut self, ck: CallHandle, outcome: CallbackOutcome, now: Now) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let Some(attempt) = call.attempt.as_mut().filter(|a| !a.done) else {
            return;
        };
        attempt.done = true;
        let (id, number) = (attempt.callback, attempt.number.clone());
        let cref = call.cref.clone();
        let retries = self
            .cfg
            .queues
            .get(call.queue().unwrap_or_default())
            .and_then(|q| q.callback.as_ref())
            .map(|c| c.retry_s.clone())
            .unwrap_or_default();
        if let Some(cb) = self.callbacks.get_mut(&id) {
            let tries = cb.stored.attempts;
            let wait = usize::try_from(tries)
                .ok()
                .and_then(|t| t.checked_sub(1))
                .and_then(|i| retries.get(i));
            let gave_up = wait.is_none();
            info!(call = %cref.call_id, %number, id = %cb.stored.id, outcome = outcome.as_str(), tries, gave_up, "callback: the customer was not reached");
            let (key, queue) = (cb.stored.id.clone(), cb.stored.queue.clone());
            match wait {
                Some(&s) => cb.state = CallbackState::RetryAt(now.mono + Duration::from_secs(s)),
                None => {
                    self.callbacks.remove(&id);
                    super::shard::lock(&self.shared.callbacks).remove(&key);
                }
            }
            self.emit(
                EventKind::CallbackResult {
                    call: cref,
                    id: key,
                    queue,
                    number,
                    outcome,
                    gave_up,
                },
                now,
            );
        }
        self.note_hangup_by(ck, crate::events::HangupBy::System);
        self.hang_up(ck, now);
    }

    /// A placed call ends (any cause): its customer's call ends with it;
    /// a try the customer never got (the agent left first, the daemon
    /// stops) puts the callback back without counting.
    pub(super) fn end_attempt(&mut self, ck: CallHandle, now: Now) {
        let Some(attempt) = self.calls.get(ck).and_then(|c| c.attempt.clone()) else {
            return;
        };
        if let AttemptStep::CallingCustomer(t) | AttemptStep::Connected(t) = attempt.step {
            if self.callback_trunks.remove(&t).is_some() {
                self.hang_up_trunk_call(t, now);
            }
        }
        if attempt.done {
            return;
        }
        if let Some(c) = self.calls.get_mut(ck).and_then(|c| c.attempt.as_mut()) {
            c.done = true;
        }
        if let Some(cb) = self.callbacks.get_mut(&attempt.callback) {
            cb.stored.attempts = cb.stored.attempts.saturating_sub(1);
            cb.state = CallbackState::RetryAt(now.mono);
            super::shard::lock(&self.shared.callbacks).put(cb.stored.clone());
            info!(id = %cb.stored.id, "callback: its call ended before the customer was called; it keeps its place");
        }
    }

    /// Whether `ck` is a call sipacd placed for a callback (no caller leg
    /// to answer or BYE).
    pub(super) fn is_placed_call(&self, ck: CallHandle) -> bool {
        self.calls.get(ck).is_some_and(|c| c.attempt.is_some())
    }

    /// Callbacks whose next try is due go back to their place (only
    /// those: the callbacks' deadline table hands them out).
    pub(super) fn callback_retries(&mut self, now: Now) {
        if self.draining {
            return;
        }
        for id in self.callbacks.due(now.mono) {
            let due = self
                .callbacks
                .get(&id)
                .is_some_and(|c| matches!(c.state, CallbackState::RetryAt(t) if t <= now.mono));
            if due {
                self.callback_back_in_queue(id, now);
            }
        }
    }

    fn callback_back_in_queue(&mut self, id: CallId, now: Now) {
        let Some(cb) = self.callbacks.get_mut(&id) else {
            return;
        };
        cb.state = CallbackState::Waiting;
        let (queue, priority, arrival) = (cb.stored.queue.clone(), cb.stored.priority, cb.arrival);
        match self
            .router
            .callback_waits(id, &queue, priority, arrival, now.mono)
        {
            Ok(out) => self.apply_acd(out, now),
            Err(e) => {
                warn!(%queue, error = %e, "callback cannot wait in its queue");
                self.hold_callback(id);
            }
        }
    }

    /// Callback `id` has no queue to wait in: held (kept in the book and
    /// the file, never called) until a reload brings its queue back.
    fn hold_callback(&mut self, id: CallId) {
        let Some(cb) = self.callbacks.get_mut(&id) else {
            return;
        };
        cb.state = CallbackState::Held;
        super::shard::lock(&self.shared.callbacks).put(cb.stored.clone());
        warn!(id = %cb.stored.id, queue = %cb.stored.queue, number = %cb.stored.number, "callback held: its queue is gone from the configuration; it waits again at its place once a reload brings the queue back (DELETE /api/v1/callbacks/ID cancels it)");
    }

    /// After a reload: held callbacks whose queue is back wait again at
    /// their original places.
    pub(super) fn requeue_held_callbacks(&mut self, now: Now) {
        let back: Vec<CallId> = self
            .callbacks
            .iter()
            .filter(|(_, c)| {
                c.state == CallbackState::Held && self.cfg.queues.contains_key(&c.stored.queue)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in back {
            if let Some(cb) = self.callbacks.get(&id) {
                info!(id = %cb.stored.id, queue = %cb.stored.queue, "held callback: its queue is back; it waits again at its place");
            }
            self.callback_back_in_queue(id, now);
        }
    }

    /// The earliest retry of this shard's callbacks (none while draining:
    /// no retry is made then, so none is waited for).
    pub(super) fn callback_deadline(&self) -> Option<Instant> {
        if self.draining {
            return None;
        }
        self.callbacks.next_deadline()
    }

    /// The router diverted callback `id` (its queue went in a reload): it
    /// is held until a reload brings the queue back. False when `id` is
    /// no callback of this shard.
    pub(super) fn callback_diverted(&mut self, id: CallId) -> bool {
        if !self.callbacks.contains_key(&id) {
            return false;
        }
        self.hold_callback(id);
        true
    }

    fn drop_callback(&mut self, id: CallId, now: Now) {
        let Some(cb) = self.callbacks.remove(&id) else {
            return;
        };
        super::shard::lock(&self.shared.callbacks).remove(&cb.stored.id);
        info!(id = %cb.stored.id, queue = %cb.stored.queue, "callback cancelled");
        self.emit(
            EventKind::CallbackCancelled {
                id: cb.stored.id,
                queue: cb.stored.queue,
            },
            now,
        );
    }

    /// `DELETE /api/v1/callbacks/ID`: false when this shard has none.
    pub fn cancel_callback(&mut self, key: &str, now: Now) -> bool {
        let Some((id, state)) = self
            .callbacks
            .iter()
            .find(|(_, c)| c.stored.id == key)
            .map(|(id, c)| (*id, c.state))
        else {
            return false;
        };
        match state {
            CallbackState::Waiting => {
                let out = self.router.caller_hangup(id, now.mono);
                self.apply_acd(out, now);
            }
            CallbackState::Calling => {
                if let Some(&ck) = self.acd_calls.get(&id) {
                    if let Some(a) = self.calls.get_mut(ck).and_then(|c| c.attempt.as_mut()) {
                        a.done = true;
                    }
                    self.hang_up(ck, now);
                }
            }
            CallbackState::RetryAt(_) | CallbackState::Held => {}
        }
        self.drop_callback(id, now);
        true
    }

    /// `GET /api/v1/callbacks`: this shard's callbacks.
    pub fn callback_views(&self, now: Now) -> Vec<CallbackView> {
        self.callbacks
            .iter()
            .map(|(id, c)| {
                let (state, retry_in_s) = match c.state {
                    CallbackState::Waiting => ("waiting", None),
                    CallbackState::Calling => ("calling", None),
                    CallbackState::RetryAt(t) => (
                        "retry",
                        Some(t.saturating_duration_since(now.mono).as_secs_f64().round()),
                    ),
                    CallbackState::Held => ("held", None),
                };
                CallbackView {
                    id: c.stored.id.clone(),
                    queue: c.stored.queue.clone(),
                    number: c.stored.number.clone(),
                    caller: c.stored.caller.clone(),
                    call: c.stored.origin.clone(),
                    state: state.to_owned(),
                    position: (state == "waiting")
                        .then(|| self.router.position(*id))
                        .flatten(),
                    waited_s: now
                        .mono
                        .saturating_duration_since(c.arrival)
                        .as_secs_f64()
                        .round(),
                    accepted_ms: c.stored.accepted_ms,
                    attempts: c.stored.attempts,
                    retry_in_s,
                }
            })
            .collect()
    }

    /// Waiting callbacks of `queue` on this shard and how long the
    /// longest has waited (the queue's waiting figures count them).
    #[cfg(test)]
    pub(super) fn callbacks_waiting(&self, queue: &str, now: Now) -> (u32, f64) {
        self.callbacks
            .values()
            .filter(|c| {
                c.stored.queue == queue
                    && !matches!(c.state, CallbackState::Calling | CallbackState::Held)
            })
            .fold((0, 0.0), |(n, longest), c| {
                let w = now.mono.saturating_duration_since(c.arrival).as_secs_f64();
                (n + 1, f64::max(longest, w))
            })
    }

    /// The shared book the writer thread saves.
    pub fn callback_book(&self) -> std::sync::Arc<std::sync::Mutex<callback::CallbackBook>> {
        self.shared.callbacks.clone()
    }

    /// Where the waiting callbacks are kept.
    pub fn callbacks_path(&self) -> PathBuf {
        self.cfg.server.data_dir.join(callback::CALLBACKS_FILE)
    }

    /// At start (primary shard): the callbacks saved by the last run wait
    /// again at their places (now minus the time they had waited). Returns
    /// how many.
    pub fn restore_callbacks(&mut self, now: Now) -> Result<usize, callback::LoadError> {
        let saved = callback::load(&self.callbacks_path())?;
        let mut restored = 0;
        for stored in saved {
            if callback::number_to_call(&stored.number, "").is_none() {
                warn!(id = %stored.id, queue = %stored.queue, "saved callback dropped: its number is unusable");
                continue;
            }
            let since = std::time::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(stored.waiting_since_ms).unwrap_or(0));
            let waited = now.wall.duration_since(since).unwrap_or_default();
            let arrival = now.mono.checked_sub(waited).unwrap_or(now.mono);
            self.next_acd += 1;
            let id = CallId(self.shard.make_id(self.next_acd));
            super::shard::lock(&self.shared.callbacks).put(stored.clone());
            let restored_ev = EventKind::CallbackRestored {
                id: stored.id.clone(),
                queue: stored.queue.clone(),
                waited,
            };
            self.emit(restored_ev, now);
            self.callbacks.insert(
                id,
                Callback {
                    stored,
                    arrival,
                    state: CallbackState::RetryAt(now.mono),
                },
            );
            self.callback_back_in_queue(id, now);
            restored += 1;
        }
        if restored > 0 {
            info!(
                restored,
                "callbacks saved by the last run wait again in their places"
            );
        }
        Ok(restored)
    }
}
