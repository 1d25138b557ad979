//! Running a call's IVR: start it when the caller's ACK arrives, feed it
//! prompt ends, digits and timeouts, and carry out what it asks (play,
//! stop, enter a queue, hang up).

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::media::MediaCommand;
use super::{CallHandle, Endpoint, Now};
use crate::config::Target;
use crate::ivr::{IvrAction, IvrEvent, IvrRun};

impl Endpoint {
    /// Starts the IVR of a call routed to `ivr:NAME`.
    pub(super) fn start_ivr(&mut self, ck: CallHandle, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let target = call.target.clone();
        if !matches!(target, Target::Ivr { .. }) {
            return;
        }
        let (run, actions) = IvrRun::start(&self.cfg, target, now.mono, wall(now));
        if let Some(call) = self.calls.get_mut(ck) {
            call.ivr = Some(run);
        }
        self.run_ivr_actions(ck, actions, now);
    }

    /// Sends a caller diverted out of a queue (closed, overflow) back into
    /// an IVR: the one it came through (keeping its variables), or a new one.
    pub(super) fn resume_ivr(&mut self, ck: CallHandle, target: Target, now: Now) {
        let cfg = self.cfg.clone();
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        call.target = target.clone();
        call.queued_at = None;
        let actions = match call.ivr.as_mut() {
            Some(run) => run.resume(&cfg, target, now.mono, wall(now)),
            None => {
                let (run, actions) = IvrRun::start(&cfg, target, now.mono, wall(now));
                call.ivr = Some(run);
                actions
            }
        };
        self.run_ivr_actions(ck, actions, now);
    }

    /// Feeds one event to the call's IVR, if it has one running.
    pub(super) fn ivr_event(&mut self, ck: CallHandle, ev: IvrEvent, now: Now) {
        let cfg = self.cfg.clone();
        let Some(run) = self.calls.get_mut(ck).and_then(|c| c.ivr.as_mut()) else {
            return;
        };
        let actions = run.on_event(&cfg, ev, now.mono, wall(now));
        self.run_ivr_actions(ck, actions, now);
    }

    pub(super) fn ivr_timeout(&mut self, ck: CallHandle, now: Now) {
        let cfg = self.cfg.clone();
        let Some(run) = self.calls.get_mut(ck).and_then(|c| c.ivr.as_mut()) else {
            return;
        };
        if run.poll_timeout().is_none_or(|t| t > now.mono) {
            return;
        }
        let actions = run.handle_timeout(&cfg, now.mono, wall(now));
        self.run_ivr_actions(ck, actions, now);
    }

    fn run_ivr_actions(&mut self, ck: CallHandle, actions: Vec<IvrAction>, now: Now) {
        self.emit_ivr_steps(ck, now);
        for action in actions {
            let Some(call) = self.calls.get_mut(ck) else {
                return;
            };
            let leg = call.leg;
            match action {
                IvrAction::PlayPrompt { id, path } => {
                    call.prompt = Some(id);
                    if let Some(leg) = leg {
                        self.media(MediaCommand::Play {
                            leg,
                            prompts: vec![path],
                            looped: false,
                        });
                    }
                }
                IvrAction::StopPrompt => {
                    call.prompt = None;
                    if let Some(leg) = leg {
                        self.media(MediaCommand::Stop { leg });
                    }
                }
                // The IVR keeps its variables; the agent's INVITE reads them.
                IvrAction::SetVariable { .. } => {}
                IvrAction::EnterQueue { queue, priority } => {
                    if !self.cfg.queues.contains_key(&queue) {
                        warn!(call = %self.calls.call_id(ck), %queue, "IVR sent the call to an unknown queue");
                        self.hang_up(ck, now);
                        return;
                    }
                    call.prompt = None;
                    self.enter_queue(ck, &queue, priority, now);
                }
                IvrAction::Hangup => {
                    info!(call = %self.calls.call_id(ck), "IVR hung up");
                    self.hang_up(ck, now);
                    return;
                }
                IvrAction::StartMessage => self.start_message(ck, now),
                IvrAction::StopMessage => self.end_message(ck, now),
                IvrAction::Score(score) => self.survey_scored(ck, score, now),
            }
        }
    }
}

fn wall(now: Now) -> DateTime<Utc> {
    now.wall.into()
}
