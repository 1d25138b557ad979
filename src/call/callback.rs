//! A queue's callback (`[queues.NAME.callback]`) as plain data: where a
//! waiting caller stands in the offer (offered, keying a number, accepted),
//! the callback that then keeps its place, the call sipacd places for it
//! (the agent first, then the customer through the trunk), and the file
//! that keeps waiting callbacks across a restart (`callbacks.json` in
//! `data_dir`). The engine's steps are in `endpoint::callback`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// The file under `server.data_dir`.
pub const CALLBACKS_FILE: &str = "callbacks.json";
const VERSION: u32 = 1;
/// A number keyed by the caller: at most this many digits.
pub const MAX_DIGITS: usize = 20;
/// Fewer digits than this are not a number to call back: `#` alone (or
/// too short) means the number the caller calls from.
pub const MIN_DIGITS: usize = 3;

/// A waiting caller's part in the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Offered (or checked again) at the call's `callback_at`.
    Due,
    /// The offer was played; the caller may press the queue's digit.
    Offered,
    /// Keying another number, ended by `#`; given up at the call's
    /// `callback_at` (the number called from is taken if usable).
    Collecting { digits: String },
    /// Accepted: the goodbye plays, then sipacd hangs up.
    Accepted,
}

/// Where a callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackState {
    /// In the router's queue, at its caller's place.
    Waiting,
    /// An agent was claimed: the placed call is in progress.
    Calling,
    /// The customer did not answer: back in the queue at this instant.
    RetryAt(Instant),
    /// Its queue is gone from the configuration (a reload removed it, or
    /// the file read at start has no such queue): kept, in the file too,
    /// until a reload brings the queue back; it then waits at its
    /// original place. Never called meanwhile; `DELETE` cancels it.
    Held,
}

/// One callback of this shard, by its router call id.
#[derive(Debug, Clone)]
pub struct Callback {
    pub stored: StoredCallback,
    /// The caller's place: when it started waiting (router arrival).
    pub arrival: Instant,
    pub state: CallbackState,
}

/// What the file keeps of a callback (also the admin API's view of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCallback {
    /// `cb-…`: the API's id.
    pub id: String,
    pub queue: String,
    /// The number to call.
    pub number: String,
    /// The number the caller called from.
    pub caller: String,
    /// The Call-ID of the call that asked.
    pub origin: String,
    /// When the caller entered the queue (its place), and accepted.
    pub waiting_since_ms: i64,
    pub accepted_ms: i64,
    pub priority: i32,
    /// Tries made so far (a try ends when the customer answers or not).
    pub attempts: u32,
    /// The trunk the customer is called through, as the queue named it
    /// when the caller accepted (kept if a reload drops the queue's
    /// callback settings).
    #[serde(default)]
    pub trunk: String,
}

/// A placed call's part: which callback, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The callback's router id (its entry in the shard's table).
    pub callback: crate::acd::CallId,
    pub number: String,
    pub step: AttemptStep,
    /// Its outcome was settled (reached, or failed and handled): its end
    /// changes nothing more.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStep {
    /// The agent's phone rings (or the router looks for another agent).
    CallingAgent,
    /// The agent answered: it hears who is called back.
    Announcing,
    /// The customer's number rings through the trunk (outbound call id).
    CallingCustomer(u64),
    /// The customer answered: agent and customer are bridged.
    Connected(u64),
}

/// Every shard's waiting callbacks, shared: the file's contents. Shards
/// change it on each step of a callback (rare, per caller decision) and
/// nudge the writer thread, which saves it off the signalling tasks.
#[derive(Debug, Default)]
pub struct CallbackBook {
    entries: BTreeMap<String, StoredCallback>,
    changed: bool,
    nudge: Option<crate::registrar::Nudge>,
}

impl CallbackBook {
    pub fn set_nudge(&mut self, nudge: crate::registrar::Nudge) {
        self.nudge = Some(nudge);
    }

    pub fn put(&mut self, c: StoredCallback) {
        self.entries.insert(c.id.clone(), c);
        self.mark();
    }

    pub fn remove(&mut self, id: &str) {
        if self.entries.remove(id).is_some() {
            self.mark();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn mark(&mut self) {
        self.changed = true;
        if let Some(n) = &self.nudge {
            n.changed();
        }
    }

    /// The contents if they changed since the last call (the writer's).
    pub fn take_snapshot(&mut self) -> Option<CallbacksFile> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        Some(CallbacksFile {
            version: VERSION,
            callbacks: self.entries.values().cloned().collect(),
        })
    }
}

/// `callbacks.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbacksFile {
    pub version: u32,
    pub callbacks: Vec<StoredCallback>,
}

impl crate::registrar::FileState for CallbacksFile {
    fn save(&self, path: &Path) -> Result<(), crate::registrar::StoreError> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| crate::registrar::StoreError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        crate::registrar::write_atomic(path, &json)
    }
}

/// Why the file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a callbacks file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: unsupported version {version}")]
    Version { path: PathBuf, version: u32 },
}

/// The callbacks saved in `path`; none when there is no file.
pub fn load(path: &Path) -> Result<Vec<StoredCallback>, LoadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LoadError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: CallbacksFile =
        serde_json::from_slice(&bytes).map_err(|source| LoadError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
    if file.version != VERSION {
        return Err(LoadError::Version {
            path: path.to_path_buf(),
            version: file.version,
        });
    }
    Ok(file.callbacks)
}

/// The number a caller keyed, or the one it calls from when it keyed none
/// (or too few digits); `None` when neither can be called.
pub fn number_to_call(keyed: &str, caller: &str) -> Option<String> {
    if keyed.len() >= MIN_DIGITS {
        return Some(keyed.to_owned());
    }
    let from = caller.trim();
    let callable = from.len() >= MIN_DIGITS
        && from.len() <= 32
        && from
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+'));
    callable.then(|| from.to_owned())
}

/// Milliseconds since the Unix epoch.
pub fn ms(t: SystemTime) -> i64 {
    crate::events::unix_ms(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str) -> StoredCallback {
        StoredCallback {
            id: id.into(),
            queue: "support".into(),
            number: "0049301234567".into(),
            caller: "1001".into(),
            origin: "abc@host".into(),
            waiting_since_ms: 1_000,
            accepted_ms: 61_000,
            priority: 0,
            attempts: 1,
            trunk: "gw".into(),
        }
    }

    #[test]
    fn the_number_keyed_wins_and_a_hidden_caller_cannot_be_called_back() {
        assert_eq!(
            number_to_call("0301234", "1001").as_deref(),
            Some("0301234")
        );
        assert_eq!(number_to_call("", "1001").as_deref(), Some("1001"));
        assert_eq!(
            number_to_call("12", "+4930123").as_deref(),
            Some("+4930123")
        );
        assert_eq!(number_to_call("", "anonymous"), None);
        assert_eq!(number_to_call("", "12"), None);
        assert_eq!(number_to_call("", "1+2345"), None);
    }

    #[test]
    fn the_book_is_saved_when_it_changed_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(CALLBACKS_FILE);
        assert!(load(&path).expect("no file").is_empty());
        let mut book = CallbackBook::default();
        assert!(book.take_snapshot().is_none());
        book.put(stored("cb-1"));
        book.put(stored("cb-2"));
        book.remove("cb-1");
        let snap = book.take_snapshot().expect("changed");
        assert!(book.take_snapshot().is_none(), "taken once");
        crate::registrar::FileState::save(&snap, &path).expect("saved");
        assert_eq!(load(&path).expect("read"), vec![stored("cb-2")]);
        std::fs::write(&path, b"{\"version\": 9, \"callbacks\": []}").expect("write");
        assert!(matches!(
            load(&path),
            Err(LoadError::Version { version: 9, .. })
        ));
        std::fs::write(&path, b"nonsense").expect("write");
        assert!(matches!(load(&path), Err(LoadError::Corrupt { .. })));
    }
}
