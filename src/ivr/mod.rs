//! The IVR: one sans-IO state machine per call walking the `[ivr.NAME]`
//! nodes of the configuration.
//!
//! The driver feeds [`IvrEvent`]s (prompt ended, DTMF digit, caller hung up)
//! and timer expiries with an explicit `now` (for timeouts) and `wall` (for
//! `schedule` nodes), and carries out the returned [`IvrAction`]s: play or
//! stop a prompt, put the call in a queue, hang up. The machine never reads
//! a clock and never touches media; it only remembers one deadline, exposed
//! by [`IvrRun::poll_timeout`].
//!
//! Prompts carry a [`PromptId`] so that a "prompt ended" that raced with a
//! barge-in (the media task reports the end of a prompt the IVR has already
//! stopped) is recognised as stale and ignored.

mod run;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_selfserve;

pub use run::IvrRun;

use std::fmt;
use std::path::PathBuf;

/// Consecutive steps that do not wait for the caller (schedule and queue
/// nodes, jumps) before the call is hung up. Config validation already
/// rejects such loops; this is defence in depth (e.g. a reload mid-call).
pub const MAX_STEPS_WITHOUT_WAIT: u32 = 32;

/// Entries kept in [`IvrRun::path`]; a caller looping through a menu for
/// hours must not grow the call record without bound.
pub const MAX_PATH: usize = 256;

/// Identifies one started prompt of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(pub u64);

impl fmt::Display for PromptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "prompt#{}", self.0)
    }
}

/// What happened on the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrEvent {
    /// The prompt `id` finished playing (not sent for a stopped prompt; a
    /// stale one is ignored anyway).
    PromptEnded(PromptId),
    /// One DTMF key (RFC 4733 event or SIP INFO): `0-9`, `*`, `#`, `A-D`.
    /// Anything else is ignored.
    Digit(char),
    /// The caller sent BYE/CANCEL; the run ends without further actions.
    CallerHungUp,
    /// The message being recorded heard the caller's voice (sent at most
    /// a few times a second): a `voicemail` node's silence timeout starts
    /// again.
    Voice,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrAction {
    /// Start playing `path` (already resolved against the prompts dir) to
    /// the caller, then report `IvrEvent::PromptEnded(id)`. Replaces any
    /// prompt still playing.
    PlayPrompt { id: PromptId, path: PathBuf },
    /// Stop the prompt that is playing (the caller barged in).
    StopPrompt,
    /// A `collect` node stored `value` in `name` (also in `variables()`).
    SetVariable { name: String, value: String },
    /// Put the call in `queue` with this extra priority; the IVR is done
    /// (the router may later `resume` it on a closed/overflow `ivr:` target).
    EnterQueue { queue: String, priority: i32 },
    /// Hang up the caller; the IVR is done.
    Hangup,
    /// A `voicemail` node starts recording the caller (the driver picks
    /// the file and reports [`IvrEvent::Voice`] while it hears speech).
    StartMessage,
    /// The message is complete (end key, silence or length limit).
    StopMessage,
    /// A `survey` node took the caller's score.
    Score(u8),
}

/// How a run ended, for the call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrOutcome {
    Queued {
        queue: String,
        priority: i32,
    },
    /// A `hangup` node or target.
    HungUp,
    CallerHungUp,
    /// The configuration could not be followed; the caller was hung up.
    Failed(IvrError),
}

/// Why a run could not follow the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IvrError {
    #[error("ivr target `{0}` does not exist")]
    UnknownTarget(String),
    #[error("schedule `{0}` does not exist")]
    UnknownSchedule(String),
    #[error("{MAX_STEPS_WITHOUT_WAIT} steps without waiting for the caller, last at {0}")]
    TooManySteps(String),
}
