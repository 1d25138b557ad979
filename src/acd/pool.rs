//! A pool: the available agents eligible for one (strategy, skills) pair,
//! kept sorted by the strategy's order so the best is found in O(log n).

use super::agent::{Slot, Tag};
use crate::config::Strategy;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// `(key1, key2, agent index, epoch)`: smaller sorts first = better.
pub(crate) type Entry = (u64, u64, u32, u32);

/// The inputs of an agent's sort key, read under its `meta`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyInput {
    pub idx: u32,
    pub epoch: u32,
    pub score: u32,
    pub calls_taken: u64,
    pub last_call_end: Option<Instant>,
}

/// splitmix64: the `random` strategy's per-stay key. Picking the smallest
/// of independent random keys is a uniform choice among available agents.
pub fn random_key(seed: u64, idx: u32, epoch: u32) -> u64 {
    let mut z = seed ^ ((u64::from(idx) << 32) | u64::from(epoch));
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Idle-since as a sortable number: never had a call = 0 (idle longest).
pub(crate) fn idle_key(base: Instant, last_call_end: Option<Instant>) -> u64 {
    last_call_end.map_or(0, |t| {
        u64::try_from(t.saturating_duration_since(base).as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    })
}

/// The sort key of `k` under `strategy` (ties: longest idle, then index).
pub(crate) fn entry(strategy: Strategy, base: Instant, seed: u64, k: KeyInput) -> Entry {
    let idle = idle_key(base, k.last_call_end);
    let (k1, k2) = match strategy {
        Strategy::LongestIdle => (idle, 0),
        Strategy::MostSkilled => (u64::MAX - u64::from(k.score), idle),
        Strategy::FewestCalls => (k.calls_taken, idle),
        Strategy::RoundRobin => (u64::from(k.idx), 0),
        Strategy::Random => (random_key(seed, k.idx, k.epoch), 0),
    };
    (k1, k2, k.idx, k.epoch)
}

#[derive(Debug)]
pub(crate) struct Pool {
    pub strategy: Strategy,
    pub skills: BTreeMap<String, u8>,
    set: Mutex<BTreeSet<Entry>>,
    /// Round robin: 1 + index of the agent who last took a call here
    /// (0 = none yet).
    cursor: AtomicU64,
}

impl Pool {
    pub(crate) fn new(strategy: Strategy, skills: BTreeMap<String, u8>) -> Pool {
        Pool {
            strategy,
            skills,
            set: Mutex::new(BTreeSet::new()),
            cursor: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<Entry>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the agent's previous entry (if any) with `new`.
    pub(crate) fn replace(&self, old: Option<Entry>, new: Entry) {
        let mut set = self.lock();
        if let Some(old) = old {
            set.remove(&old);
        }
        set.insert(new);
    }

    /// Round robin: remember who took the last call.
    pub(crate) fn took(&self, idx: u32) {
        if self.strategy == Strategy::RoundRobin {
            self.cursor.store(u64::from(idx) + 1, SeqCst);
        }
    }

    pub(crate) fn cursor(&self) -> Option<u32> {
        self.cursor.load(SeqCst).checked_sub(1).map(|c| c as u32)
    }

    /// Claims the best available agent (its word becomes `Deciding`).
    /// Stale entries met on the way are dropped; entries of agents another
    /// thread is deciding on are skipped but kept (they may come back), and
    /// so are the agents in `skip`.
    pub(crate) fn claim(&self, agents: &[Arc<Slot>], skip: &[u32]) -> Option<Arc<Slot>> {
        let mut set = self.lock();
        let mut stale = Vec::new();
        let mut found = None;
        {
            let mut try_entry = |e: &Entry| -> bool {
                let (_, _, idx, epoch) = *e;
                if skip.contains(&idx) {
                    return false;
                }
                let Some(slot) = agents.get(idx as usize) else {
                    stale.push(*e);
                    return false;
                };
                loop {
                    let w = slot.word();
                    if w.epoch != epoch {
                        stale.push(*e);
                        return false;
                    }
                    match w.tag {
                        Tag::Available => {
                            if slot.try_claim(epoch) {
                                found = Some(slot.clone());
                                return true;
                            }
                            // Lost a race; look at the word again.
                        }
                        Tag::Deciding => return false,
                        _ => {
                            stale.push(*e);
                            return false;
                        }
                    }
                }
            };
            match (self.strategy, self.cursor()) {
                (Strategy::RoundRobin, Some(c)) => {
                    let after = (u64::from(c) + 1, 0, 0, 0);
                    let _ = set.range(after..).any(&mut try_entry)
                        || set.range(..after).any(&mut try_entry);
                }
                _ => {
                    let _ = set.iter().any(&mut try_entry);
                }
            }
        }
        for e in stale {
            set.remove(&e);
        }
        found
    }

    /// Entries currently held (valid or not); for status and tests.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
