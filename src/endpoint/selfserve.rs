//! What a caller does without an agent: leave a message (`voicemail`
//! nodes: the file, the media engine's `RecordMessage`, its events) and
//! rate the call afterwards (a queue's `survey`: the caller goes on to an
//! IVR once the agent hangs up; the `survey` node's score is an event).

use chrono::{DateTime, Utc};
use tracing::info;

use super::call_table::CallHandle;
use super::media::MediaCommand;
use super::recording::safe_file_name;
use super::{Endpoint, Now};
use crate::config::Target;
use crate::events::EventKind;

/// Directory under `server.data_dir` that holds the messages, one
/// subdirectory per UTC day.
pub const VOICEMAIL_DIR: &str = "voicemail";

/// `voicemail/YYYY-MM-DD/CALLID.wav` (the Call-ID made safe for a file
/// name, as for recordings).
pub fn voicemail_path(call_id: &str, now: Now) -> String {
    let day = DateTime::<Utc>::from(now.wall).format("%Y-%m-%d");
    format!("{VOICEMAIL_DIR}/{day}/{}.wav", safe_file_name(call_id))
}

impl Endpoint {
    /// A `voicemail` node starts recording the caller.
    pub(super) fn start_message(&mut self, ck: CallHandle, now: Now) {
        // A second message on one call (an IVR that loops back) ends the
        // first one.
        self.end_message(ck, now);
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let Some(leg) = call.leg else {
            return;
        };
        let path = voicemail_path(&call.cref.call_id, now);
        call.message = Some((path.clone(), now.wall));
        let cref = call.cref.clone();
        info!(call = %cref.call_id, %path, "recording a message");
        self.media(MediaCommand::RecordMessage {
            leg,
            path: self.cfg.server.data_dir.join(&path),
        });
        self.emit(EventKind::VoicemailStarted { call: cref, path }, now);
    }

    /// The message of `ck`, if one is being recorded, is complete (the
    /// node ended it, or the call ends).
    pub(super) fn end_message(&mut self, ck: CallHandle, now: Now) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let Some((path, started)) = call.message.take() else {
            return;
        };
        let seconds = now
            .wall
            .duration_since(started)
            .map_or(0.0, |d| d.as_secs_f64());
        let (cref, caller, leg) = (call.cref.clone(), call.caller.clone(), call.leg);
        if let Some(leg) = leg {
            self.media(MediaCommand::StopRecording { leg });
        }
        self.emit(
            EventKind::VoicemailEnded {
                call: cref,
                caller,
                path,
                seconds,
            },
            now,
        );
    }

    /// The queue's survey IVR, if the call of `ck` (whose agent just hung
    /// up) should go on to one.
    pub(super) fn survey_target(&self, ck: CallHandle) -> Option<Target> {
        let call = self.calls.get(ck)?;
        if call.survey_of.is_some() || call.answered_at.is_none() || call.leg.is_none() {
            return None;
        }
        self.cfg.queues.get(call.queue()?)?.survey.clone()
    }

    /// The agent `agent` hung up on `ck`: the caller goes on to `target`.
    pub(super) fn start_survey(&mut self, ck: CallHandle, agent: String, target: Target, now: Now) {
        // The agent's handle time ends with its leg, and is learnt while
        // the call still names its queue (the survey's IVR takes its place).
        self.note_handle_time(ck, now);
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let queue = call.queue().map(str::to_owned);
        call.survey_of = Some((queue.clone(), agent.clone()));
        // The agent's hold ends with its leg.
        call.hold.set(true, false, now.mono);
        let cref = call.cref.clone();
        let to = match &target {
            Target::Ivr { ivr, node } => format!("ivr:{ivr}.{node}"),
            t => t.to_string(),
        };
        info!(call = %cref.call_id, %agent, %to, "agent hung up: caller to the survey");
        self.emit(
            EventKind::SurveyStarted {
                call: cref,
                queue,
                agent,
                to,
            },
            now,
        );
        self.resume_ivr(ck, target, now);
    }

    /// A `survey` node took the caller's score.
    pub(super) fn survey_scored(&mut self, ck: CallHandle, score: u8, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let (queue, agent) = match &call.survey_of {
            Some((q, a)) => (q.clone(), Some(a.clone())),
            // A survey node reached some other way: the call's own queue
            // and agent, if it had them.
            None => (call.queue().map(str::to_owned), call.agent_id.clone()),
        };
        let cref = call.cref.clone();
        info!(call = %cref.call_id, score, "survey score");
        self.emit(
            EventKind::CsatScored {
                call: cref,
                queue,
                agent,
                score,
            },
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant, SystemTime};

    #[test]
    fn a_message_is_filed_by_day_and_a_hostile_call_id_stays_in_its_directory() {
        let t = Now {
            mono: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_799_971_200),
        };
        assert_eq!(
            voicemail_path("abc@host", t),
            "voicemail/2027-01-15/abc@host.wav"
        );
        assert_eq!(voicemail_path("../x", t), "voicemail/2027-01-15/_.._x.wav");
    }
}
