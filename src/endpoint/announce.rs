//! Position announcements for queued callers ("you are number 3 in the
//! queue"), every `announce_position_s` of their queue, built from the
//! number prompts in the prompts directory; then the music resumes. When
//! the prompts directory also holds `estimated-wait.wav` and `minutes.wav`
//! and there is an estimate, the expected wait at that place follows
//! ("estimated wait 4 minutes", rounded up to whole minutes).

use std::path::PathBuf;
use std::time::Duration;

use super::media::MediaCommand;
use super::{CallHandle, Endpoint, Now};
use crate::call::agent::AgentLegState;

impl Endpoint {
    /// Arms the first announcement of a caller who just entered a queue.
    pub(super) fn schedule_announcement(&mut self, ck: CallHandle, now: Now) {
        let every = self.announce_every(ck);
        if let Some(call) = self.calls.get_mut(ck) {
            call.announce_at = every.map(|e| now.mono + e);
        }
    }

    fn announce_every(&self, ck: CallHandle) -> Option<Duration> {
        let q = self.calls.get(ck)?.queue()?;
        let s = self.cfg.queues.get(q)?.announce_position_s;
        (s > 0).then(|| Duration::from_secs(s))
    }

    /// Plays the caller's position if its announcement is due.
    pub(super) fn announce_position(&mut self, ck: CallHandle, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        if call.announce_at.is_none_or(|t| t > now.mono) {
            return;
        }
        let next = self.announce_every(ck).map(|e| now.mono + e);
        let ringing = call
            .agent
            .as_ref()
            .is_some_and(|l| l.state != AgentLegState::Ending);
        let (Some(leg), Some(id)) = (call.leg, call.acd) else {
            return;
        };
        // The router's order: higher priority first, then the longest wait.
        let position = self.router.position(id).unwrap_or(1);
        let mut prompts = position_prompts(&self.cfg.server.prompts, position);
        if self.cfg.wait_prompts {
            let wait = call
                .queue()
                .and_then(|q| self.estimated_wait(q, position, now));
            if let Some(wait) = wait {
                prompts.extend(wait_prompts(&self.cfg.server.prompts, wait));
            }
        }
        if let Some(call) = self.calls.get_mut(ck) {
            call.announce_at = next;
        }
        if !ringing {
            // The music comes back when the announcement ends.
            self.media(MediaCommand::Play {
                leg,
                prompts,
                looped: false,
            });
        }
    }
}

/// `you-are-number.wav`, one prompt per digit of `position`, then
/// `in-the-queue.wav`.
fn position_prompts(dir: &std::path::Path, position: usize) -> Vec<PathBuf> {
    let mut p = vec![dir.join("you-are-number.wav")];
    p.extend(
        position
            .to_string()
            .chars()
            .map(|d| dir.join(format!("{d}.wav"))),
    );
    p.push(dir.join("in-the-queue.wav"));
    p
}

/// `estimated-wait.wav`, the minutes digit by digit (rounded up, at
/// least one), `minutes.wav`; nothing for no wait at all.
fn wait_prompts(dir: &std::path::Path, wait: Duration) -> Vec<PathBuf> {
    if wait.is_zero() {
        return Vec::new();
    }
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let mut p = vec![dir.join("estimated-wait.wav")];
    p.extend(
        minutes
            .to_string()
            .chars()
            .map(|d| dir.join(format!("{d}.wav"))),
    );
    p.push(dir.join("minutes.wav"));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_read_the_position_digit_by_digit() {
        let p = position_prompts(std::path::Path::new("/p"), 12);
        let names: Vec<_> = p
            .iter()
            .map(|x| x.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["you-are-number.wav", "1.wav", "2.wav", "in-the-queue.wav"]
        );
    }

    #[test]
    fn the_wait_is_read_in_whole_minutes_rounded_up() {
        let names = |d: Duration| -> Vec<String> {
            wait_prompts(std::path::Path::new("/p"), d)
                .iter()
                .map(|x| x.file_name().unwrap().to_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            names(Duration::from_secs(61)),
            ["estimated-wait.wav", "2.wav", "minutes.wav"]
        );
        assert_eq!(
            names(Duration::from_secs(20)),
            ["estimated-wait.wav", "1.wav", "minutes.wav"]
        );
        assert_eq!(
            names(Duration::from_secs(600)),
            ["estimated-wait.wav", "1.wav", "0.wav", "minutes.wav"]
        );
        assert!(names(Duration::ZERO).is_empty());
    }
}
