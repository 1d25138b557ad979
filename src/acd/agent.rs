//! One agent's runtime state: the atomic state word the hot path claims, and
//! the per-agent `meta` every other transition goes through.

use super::ids::{AgentId, QueueId};
use super::{AgentState, CallId};
use crate::config::Agent;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// State tags of the word. `Deciding` is the short claim a router thread
/// holds between winning the CAS and ringing (or releasing) the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Tag {
    LoggedOut = 0,
    OffShift = 1,
    Paused = 2,
    Available = 3,
    Deciding = 4,
    Ringing = 5,
    OnCall = 6,
    Wrapup = 7,
}

impl Tag {
    fn from_u8(v: u8) -> Tag {
        match v {
            1 => Tag::OffShift,
            2 => Tag::Paused,
            3 => Tag::Available,
            4 => Tag::Deciding,
            5 => Tag::Ringing,
            6 => Tag::OnCall,
            7 => Tag::Wrapup,
            _ => Tag::LoggedOut,
        }
    }

    pub(crate) fn public(self) -> AgentState {
        match self {
            Tag::LoggedOut => AgentState::LoggedOut,
            Tag::OffShift => AgentState::OffShift,
            Tag::Paused => AgentState::Paused,
            // A claim either rings the agent or puts it back at once.
            Tag::Available | Tag::Deciding => AgentState::Available,
            Tag::Ringing => AgentState::Ringing,
            Tag::OnCall => AgentState::OnCall,
            Tag::Wrapup => AgentState::Wrapup,
        }
    }

    /// Between calls (not ringing, talking or wrapping up).
    pub(crate) fn idle(self) -> bool {
        matches!(
            self,
            Tag::LoggedOut | Tag::OffShift | Tag::Paused | Tag::Available
        )
    }
}

/// `epoch << 8 | tag`. The epoch counts how often the agent entered the
/// pools; pool entries carry it, so an old entry never matches a newer stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    pub epoch: u32,
    pub tag: Tag,
}

impl Word {
    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.epoch) << 8) | self.tag as u64
    }
    pub(crate) fn unpack(v: u64) -> Word {
        Word {
            epoch: (v >> 8) as u32,
            tag: Tag::from_u8((v & 0xff) as u8),
        }
    }
}

/// The call an agent is busy with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Busy {
    pub call: CallId,
    /// Of the table in force; a reload renumbers it by name.
    pub queue: QueueId,
    /// While ringing, the ring deadline; in wrap-up, its end. A timer
    /// firing earlier is from an earlier offer (or an id a reload moved)
    /// and does nothing.
    pub until: Instant,
}

/// Everything but the word; only touched under the agent's own mutex.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub registered: bool,
    pub on_shift: bool,
    pub paused: Option<String>,
    /// Logged off with the logout feature code: stays `LoggedOut` while
    /// its phone keeps registering, until the login code.
    pub logged_off: bool,
    /// Gone from the config: leaves for good once idle.
    pub removed: bool,
    pub busy: Option<Busy>,
    pub calls_taken: u64,
    pub last_call_end: Option<Instant>,
    /// Has entries in its pools: whoever moves it out of `Available` (or
    /// `Deciding`) removes them, under this mutex.
    pub pooled: bool,
}

impl Meta {
    /// The state the agent rests in when it is not on a call.
    pub(crate) fn resting(&self) -> Tag {
        if self.removed || !self.registered || self.logged_off {
            Tag::LoggedOut
        } else if !self.on_shift {
            Tag::OffShift
        } else if self.paused.is_some() {
            Tag::Paused
        } else {
            Tag::Available
        }
    }
}

/// One pool an agent is eligible for. All links live in one flat array of
/// the topology, an agent's side by side, so freeing an agent reads one or
/// two cache lines for all its pools.
#[derive(Debug)]
pub(crate) struct PoolLink {
    pub pool: u32,
    /// The agent's number among the pool's members.
    pub member: u32,
    /// Skill score for the pool's required skills.
    pub score: u32,
    /// Where the agent's entry sits in the pool's heap (`u32::MAX`: none).
    /// Only read and written under that pool's mutex.
    pub pos: AtomicU32,
}

/// What an agent is eligible for, fixed between reloads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Links {
    /// Its range in the topology's flat `PoolLink` array.
    pub pools: std::ops::Range<u32>,
    pub lanes: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub id: Arc<str>,
    /// Boxed: read on reloads and shift changes only, kept off the hot lines.
    pub cfg: Box<Agent>,
    pub idx: AgentId,
    pub links: Links,
    word: AtomicU64,
    meta: Mutex<Meta>,
}

impl Slot {
    pub(crate) fn new(
        id: Arc<str>,
        cfg: Agent,
        idx: AgentId,
        links: Links,
        word: Word,
        meta: Meta,
    ) -> Slot {
        Slot {
            id,
            cfg: Box::new(cfg),
            idx,
            links,
            word: AtomicU64::new(word.pack()),
            meta: Mutex::new(meta),
        }
    }

    pub(crate) fn word(&self) -> Word {
        Word::unpack(self.word.load(SeqCst))
    }

    /// Plain store: only for the holder of `Deciding`, or under `meta` when
    /// the word is not `Available` (nobody else may change it then).
    pub(crate) fn set(&self, w: Word) {
        self.word.store(w.pack(), SeqCst);
    }

    /// The hot-path claim: `Available(epoch) -> Deciding(epoch)`.
    pub(crate) fn try_claim(&self, epoch: u32) -> bool {
        let from = Word {
            epoch,
            tag: Tag::Available,
        };
        let to = Word {
            epoch,
            tag: Tag::Deciding,
        };
        self.word
            .compare_exchange(from.pack(), to.pack(), SeqCst, SeqCst)
            .is_ok()
    }

    /// Under `meta`: move an `Available` word to `to` (keeping the epoch).
    /// Fails if a router thread claimed it first; that thread then sees
    /// the new `meta` and settles the agent itself.
    pub(crate) fn leave_available(&self, to: Tag) -> bool {
        let cur = self.word();
        if cur.tag != Tag::Available {
            return false;
        }
        self.word
            .compare_exchange(
                cur.pack(),
                Word {
                    epoch: cur.epoch,
                    tag: to,
                }
                .pack(),
                SeqCst,
                SeqCst,
            )
            .is_ok()
    }

    pub(crate) fn meta(&self) -> MutexGuard<'_, Meta> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }
}
