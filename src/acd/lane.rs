//! A lane: the callers of one queue at one relax level, best first.

use super::ids::{AgentId, QueueId};
use super::CallId;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// A waiting caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    pub call: CallId,
    pub queue: QueueId,
    /// Extra priority from the IVR `queue` node.
    pub priority: i32,
    pub arrival: Instant,
    /// Tie-break for equal arrival: the order callers arrived in.
    pub seq: u64,
    /// Relax level (0 = the queue's own skills).
    pub level: usize,
    /// Agents who refused this caller lately (486, 603).
    pub refused: Refusals,
    /// A callback waiting in the caller's place (no `max_wait_s`).
    pub callback: bool,
}

/// How many refusing agents a caller remembers; the oldest is forgotten
/// first. Fixed so that a caller stays `Copy` and lanes never allocate.
pub(crate) const REFUSALS: usize = 4;

/// The agents who refused a caller, each until when it is not offered the
/// caller again (the queue's `retry_s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Refusals([Option<(AgentId, Instant)>; REFUSALS]);

impl Refusals {
    /// Remembers that `agent` refused, until `until`; replaces its older
    /// entry, else an expired one, else the one that expires first.
    pub(crate) fn add(&mut self, agent: AgentId, until: Instant) {
        let slot = self
            .0
            .iter()
            .position(|e| e.is_some_and(|(a, _)| a == agent))
            .or_else(|| self.0.iter().position(Option::is_none))
            .or_else(|| {
                self.0
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.map(|(_, t)| t))
                    .map(|(i, _)| i)
            })
            .unwrap_or(0);
        self.0[slot] = Some((agent, until));
    }

    /// Whether `agent` may not be offered this caller at `now`.
    pub(crate) fn blocks(&self, agent: AgentId, now: Instant) -> bool {
        self.0
            .iter()
            .any(|e| e.is_some_and(|(a, t)| a == agent && now < t))
    }
}

/// Order inside a lane: higher caller priority, then earlier arrival.
pub(crate) type LaneKey = (Reverse<i32>, Instant, u64);

/// Order across lanes: queue + caller priority, then earlier arrival.
pub(crate) type Rank = (Reverse<i64>, Instant, u64);

impl Caller {
    /// A caller arriving at `now` in `queue` (relax level 0, no refusals);
    /// `seq` is the router's arrival counter.
    pub(crate) fn arriving(
        call: CallId,
        queue: QueueId,
        priority: i32,
        now: Instant,
        seq: u64,
    ) -> Caller {
        Caller {
            call,
            queue,
            priority,
            arrival: now,
            seq,
            level: 0,
            refused: Refusals::default(),
            callback: false,
        }
    }

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
    /// The number of callers, written under `callers` (SeqCst), so an
    /// agent looking at its lanes skips empty ones without locking them.
    /// No lost wake-up: a caller's thread stores this before it searches
    /// the pool, a freed agent's thread publishes its word before it loads
    /// this, both SeqCst: whichever looks second sees the other.
    len: AtomicUsize,
}

impl Lane {
    pub(crate) fn new(pool: u32, priority: i32) -> Lane {
        Lane {
            pool,
            priority,
            callers: Mutex::new(BTreeMap::new()),
            len: AtomicUsize::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<LaneKey, Caller>> {
        self.callers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, c: Caller) {
        let mut m = self.lock();
        m.insert(c.key(), c);
        self.len.store(m.len(), SeqCst);
    }

    /// Removes `c` if still here; the winner of this takes the caller.
    pub(crate) fn take(&self, key: &LaneKey) -> Option<Caller> {
        let mut m = self.lock();
        let c = m.remove(key);
        self.len.store(m.len(), SeqCst);
        c
    }

    /// The best caller that `agent` has not refused lately.
    pub(crate) fn head(&self, agent: AgentId, now: Instant) -> Option<Caller> {
        if self.is_empty() {
            return None;
        }
        self.lock()
            .values()
            .find(|c| !c.refused.blocks(agent, now))
            .copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(SeqCst) == 0
    }

    pub(crate) fn snapshot(&self) -> Vec<Caller> {
        self.lock().values().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(call: u64, priority: i32, at: Instant) -> Caller {
        Caller {
            call: CallId(call),
            queue: QueueId::from_index(0),
            priority,
            arrival: at,
            seq: call,
            level: 0,
            refused: Refusals::default(),
            callback: false,
        }
    }

    #[test]
    fn length_mirror_follows_inserts_and_takes() {
        let t0 = Instant::now();
        let lane = Lane::new(0, 0);
        assert!(lane.is_empty());
        assert_eq!(lane.head(AgentId::from_index(7), t0), None);
        let (a, b) = (caller(1, 0, t0), caller(2, 5, t0));
        lane.insert(a);
        lane.insert(b);
        assert!(!lane.is_empty());
        // Higher priority first.
        assert_eq!(lane.head(AgentId::from_index(7), t0), Some(b));
        assert_eq!(lane.take(&b.key()), Some(b));
        assert_eq!(lane.take(&b.key()), None);
        assert!(!lane.is_empty());
        assert_eq!(lane.head(AgentId::from_index(7), t0), Some(a));
        assert_eq!(lane.take(&a.key()), Some(a));
        assert!(lane.is_empty());
        assert_eq!(lane.head(AgentId::from_index(7), t0), None);
    }
}
