//! Recording a bridged call: whether the queue records this call, the
//! optional prompt that tells the caller before the agent is bridged, the
//! media engine's `Record` command, and the recording's events. Where the
//! file lives is decided here; writing it is the media engine's recorder.

use chrono::{DateTime, Utc};

use super::call_table::CallHandle;
use super::media::MediaCommand;
use super::{Endpoint, Now};
use crate::events::EventKind;

/// Directory under `server.data_dir` that holds the recordings, one
/// subdirectory per UTC day.
pub const RECORDINGS_DIR: &str = "recordings";

/// `recordings/YYYY-MM-DD/CALLID.wav`, with any character of the Call-ID
/// that is not safe in a file name replaced by `_` (a Call-ID is the
/// peer's choice: no `/`, `..` or control characters reach the disk).
pub fn recording_path(call_id: &str, now: Now) -> String {
    let day = DateTime::<Utc>::from(now.wall).format("%Y-%m-%d");
    format!("{RECORDINGS_DIR}/{day}/{}.wav", safe_file_name(call_id))
}

/// A Call-ID as a file name: characters not safe in one become `_`, and
/// it never starts with a dot.
pub(super) fn safe_file_name(call_id: &str) -> String {
    let mut name: String = call_id
        .chars()
        .take(200)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '@' | '+' | '=' | '.' => c,
            _ => '_',
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    name
}

impl Endpoint {
    /// The agent of `ck` answered: bridge it to the caller, first playing
    /// the queue's `record_prompt` to the caller when the call is recorded.
    pub(super) fn bridge_answered(&mut self, ck: CallHandle, now: Now) {
        if self.attempt_agent_answered(ck, now) {
            return;
        }
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let queue = call.queue().and_then(|q| self.cfg.queues.get(q));
        let records = queue.is_some_and(|q| q.record.records(&call.cref.call_id));
        if records {
            call.recording = Some(recording_path(&call.cref.call_id, now));
        }
        let prompt = queue.and_then(|q| q.record_prompt.clone());
        match (records, prompt, call.leg) {
            (true, Some(prompt), Some(leg)) => {
                // The bridge waits for the prompt's end (see
                // `prompt_ended_before_bridge`); the agent hears silence.
                call.bridge_after_prompt = true;
                self.media(MediaCommand::Play {
                    leg,
                    prompts: vec![prompt],
                    looped: false,
                });
            }
            _ => self.bridge_now(ck, now),
        }
    }

    /// A prompt that was not the IVR's ended on `ck`'s caller leg: true if
    /// it was the recording notice, and the call is now bridged.
    pub(super) fn prompt_ended_before_bridge(&mut self, ck: CallHandle, now: Now) -> bool {
        let waiting = self
            .calls
            .get_mut(ck)
            .is_some_and(|c| std::mem::take(&mut c.bridge_after_prompt));
        if waiting {
            self.bridge_now(ck, now);
        }
        waiting
    }

    /// Caller and agent relayed to each other, and recorded if chosen.
    fn bridge_now(&mut self, ck: CallHandle, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let (Some(a), Some(b)) = (call.leg, call.agent.as_ref().and_then(|l| l.leg)) else {
            return;
        };
        let recording = call.recording.clone();
        let cref = call.cref.clone();
        self.media(MediaCommand::Bridge { a, b });
        if let Some(path) = recording {
            self.media(MediaCommand::Record {
                caller: a,
                agent: b,
                path: self.cfg.server.data_dir.join(&path),
            });
            self.emit(EventKind::RecordingStarted { call: cref, path }, now);
        }
    }

    /// The call ends: its recording, if one was started, ends with it.
    pub(super) fn end_recording(&mut self, ck: CallHandle, now: Now) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        // Not started if the call ended during the notice.
        let started = !std::mem::take(&mut call.bridge_after_prompt);
        if let (true, Some(path)) = (started, call.recording.take()) {
            let call = call.cref.clone();
            self.emit(EventKind::RecordingEnded { call, path }, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant, SystemTime};

    fn at(secs: u64) -> Now {
        Now {
            mono: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_path_is_dated_and_a_hostile_call_id_stays_in_its_directory() {
        // 2027-01-15 00:00:00 UTC
        let t = at(1_799_971_200);
        assert_eq!(
            recording_path("a84b4c76e66710@pc33.example.com", t),
            "recordings/2027-01-15/a84b4c76e66710@pc33.example.com.wav"
        );
        assert_eq!(
            recording_path("../../etc/passwd", t),
            "recordings/2027-01-15/_.._.._etc_passwd.wav"
        );
        assert_eq!(recording_path("", t), "recordings/2027-01-15/_.wav");
        assert_eq!(
            recording_path("x y\n/z", t),
            "recordings/2027-01-15/x_y__z.wav"
        );
    }
}
