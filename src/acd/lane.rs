//! A lane: the callers of one queue at one relax level, best first.

use super::CallId;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// A waiting caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    pub call: CallId,
    pub queue: u32,
    /// Extra priority from the IVR `queue` node.
    pub priority: i32,
    pub arrival: Instant,
    /// Tie-break for equal arrival: the order callers arrived in.
    pub seq: u64,
    /// Relax level (0 = the queue's own skills).
    pub level: usize,
}

/// Order inside a lane: higher caller priority, then earlier arrival.
pub(crate) type LaneKey = (Reverse<i32>, Instant, u64);

/// Order across lanes: queue + caller priority, then earlier arrival.
pub(crate) type Rank = (Reverse<i64>, Instant, u64);

impl Caller {
    pub(crate) fn key(&self) -> LaneKey {
        (Reverse(self.priority), self.arrival, self.seq)
    }
    pub(crate) fn rank(&self, queue_priority: i32) -> Rank {
        (
            Reverse(i64::from(queue_priority) + i64::from(self.priority)),
            self.arrival,
            self.seq,
        )
    }
}

#[derive(Debug)]
pub(crate) struct Lane {
    pub pool: u32,
    /// The queue's priority (copied: ranking reads it on the hot path).
    pub priority: i32,
    callers: Mutex<BTreeMap<LaneKey, Caller>>,
}

impl Lane {
    pub(crate) fn new(pool: u32, priority: i32) -> Lane {
        Lane {
            pool,
            priority,
            callers: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<LaneKey, Caller>> {
        self.callers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, c: Caller) {
        self.lock().insert(c.key(), c);
    }

    /// Removes `c` if still here; the winner of this takes the caller.
    pub(crate) fn take(&self, key: &LaneKey) -> Option<Caller> {
        self.lock().remove(key)
    }

    /// The best caller other than `exclude`.
    pub(crate) fn head(&self, exclude: Option<CallId>) -> Option<Caller> {
        self.lock()
            .values()
            .find(|c| Some(c.call) != exclude)
            .copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub(crate) fn snapshot(&self) -> Vec<Caller> {
        self.lock().values().copied().collect()
    }
}
