//! A map of a shard's entries that each may have a deadline (outbound
//! trunk legs, callbacks waiting for their next try), with the deadlines
//! kept in one [`Deadlines`] heap, so a loop turn pops only the entries
//! that are due instead of scanning them all.
//!
//! As in the call table, every change goes through [`TimedMap::get_mut`]
//! (or insert and remove), which marks the entry; [`TimedMap::reindex`],
//! run at the end of each handler, re-reads the marked entries' deadlines
//! only. Until then [`TimedMap::next_deadline`] also looks at the marked
//! entries, so a deadline is never missed.

use std::collections::hash_map::{self, HashMap};
use std::hash::Hash;
use std::time::Instant;

use crate::media::Deadlines;

/// What a [`TimedMap`] entry says about when it next needs attention.
pub(super) trait Timed {
    fn deadline(&self) -> Option<Instant>;
}

impl Timed for crate::call::trunk::TrunkLeg {
    /// Its ring deadline while it is inviting.
    fn deadline(&self) -> Option<Instant> {
        self.poll_timeout()
    }
}

impl Timed for crate::call::callback::Callback {
    /// Its next try once its customer was not reached.
    fn deadline(&self) -> Option<Instant> {
        match self.state {
            crate::call::callback::CallbackState::RetryAt(t) => Some(t),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct TimedMap<K, V> {
    entries: HashMap<K, V>,
    deadlines: Deadlines<K>,
    /// The earliest indexed deadline as of the last reindex (it may be
    /// earlier than the truth, never later: an entry removed since only
    /// brings one early look).
    earliest: Option<Instant>,
    /// Keys changed since the last reindex (may repeat).
    dirty: Vec<K>,
    /// Entries handed out by `due` so far (tests: a turn with nothing due
    /// visits none).
    visited: u64,
}

impl<K: Copy + Eq + Hash + Ord, V: Timed> Default for TimedMap<K, V> {
    fn default() -> Self {
        TimedMap {
            entries: HashMap::new(),
            deadlines: Deadlines::new(),
            earliest: None,
            dirty: Vec::new(),
            visited: 0,
        }
    }
}

impl<K: Copy + Eq + Hash + Ord, V: Timed> TimedMap<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.entries.get(k)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.entries.contains_key(k)
    }

    pub fn keys(&self) -> hash_map::Keys<'_, K, V> {
        self.entries.keys()
    }

    #[cfg(test)]
    pub fn values(&self) -> hash_map::Values<'_, K, V> {
        self.entries.values()
    }

    pub fn iter(&self) -> hash_map::Iter<'_, K, V> {
        self.entries.iter()
    }

    /// The entry, marked for its deadline to be read again.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let v = self.entries.get_mut(k)?;
        self.dirty.push(*k);
        Some(v)
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.dirty.push(k);
        self.entries.insert(k, v)
    }

    /// Takes the entry out, with its deadline.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let v = self.entries.remove(k)?;
        self.deadlines.cancel(*k);
        Some(v)
    }

    /// Re-reads the deadlines of the entries changed since the last time.
    pub fn reindex(&mut self) {
        for k in std::mem::take(&mut self.dirty) {
            let at = self.entries.get(&k).and_then(Timed::deadline);
            self.deadlines.set(k, at);
        }
        self.earliest = self.deadlines.earliest();
    }

    /// The earliest deadline of any entry.
    pub fn next_deadline(&self) -> Option<Instant> {
        let pending = self
            .dirty
            .iter()
            .filter_map(|k| self.entries.get(k))
            .filter_map(Timed::deadline);
        self.earliest.into_iter().chain(pending).min()
    }

    /// The entries with a deadline at or before `now`, earliest first.
    /// Each is marked, so a handler that leaves it as it was finds it due
    /// again at the next turn, as a scan would.
    pub fn due(&mut self, now: Instant) -> Vec<K> {
        self.reindex();
        let due: Vec<K> = std::iter::from_fn(|| self.deadlines.pop_due(now)).collect();
        self.visited += due.len() as u64;
        self.dirty.extend_from_slice(&due);
        due
    }

    /// Entries handed out by [`TimedMap::due`] so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn visited(&self) -> u64 {
        self.visited
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An entry whose deadline is whatever the test sets.
    #[derive(Debug)]
    struct At(Option<Instant>);

    impl Timed for At {
        fn deadline(&self) -> Option<Instant> {
            self.0
        }
    }

    fn secs(t: Instant, s: u64) -> Instant {
        t + Duration::from_secs(s)
    }

    #[test]
    fn a_deadline_is_reported_before_and_after_reindex() {
        let t = Instant::now();
        let mut m: TimedMap<u64, At> = TimedMap::default();
        m.insert(1, At(Some(secs(t, 30))));
        m.insert(2, At(None));
        m.insert(3, At(Some(secs(t, 10))));
        // Not indexed yet: the marked entries are looked at.
        assert_eq!(m.next_deadline(), Some(secs(t, 10)));
        m.reindex();
        assert_eq!(m.next_deadline(), Some(secs(t, 10)));
        assert_eq!(m.due(secs(t, 9)), Vec::<u64>::new());
        assert_eq!(m.due(secs(t, 10)), vec![3]);
    }

    #[test]
    fn a_removed_entry_takes_its_deadline_with_it() {
        let t = Instant::now();
        let mut m: TimedMap<u64, At> = TimedMap::default();
        m.insert(1, At(Some(secs(t, 5))));
        m.insert(2, At(Some(secs(t, 20))));
        m.reindex();
        assert!(m.remove(&1).is_some());
        m.reindex();
        assert_eq!(m.next_deadline(), Some(secs(t, 20)));
        assert_eq!(m.due(secs(t, 10)), Vec::<u64>::new());
        assert_eq!(m.visited(), 0);
        // Removed before any reindex: nothing of it is left either.
        m.insert(3, At(Some(secs(t, 1))));
        m.remove(&3);
        assert_eq!(m.next_deadline(), Some(secs(t, 20)));
        assert_eq!(m.due(secs(t, 10)), Vec::<u64>::new());
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_changed_deadline_moves() {
        let t = Instant::now();
        let mut m: TimedMap<u64, At> = TimedMap::default();
        m.insert(1, At(Some(secs(t, 5))));
        m.insert(2, At(Some(secs(t, 20))));
        m.reindex();
        // Later: the old 5 s must not fire.
        m.get_mut(&1).unwrap().0 = Some(secs(t, 30));
        assert_eq!(m.next_deadline(), Some(secs(t, 5)), "early is harmless");
        m.reindex();
        assert_eq!(m.next_deadline(), Some(secs(t, 20)));
        assert_eq!(m.due(secs(t, 10)), Vec::<u64>::new());
        // Sooner, and cleared.
        m.get_mut(&2).unwrap().0 = Some(secs(t, 2));
        assert_eq!(m.next_deadline(), Some(secs(t, 2)), "seen before reindex");
        m.get_mut(&1).unwrap().0 = None;
        assert_eq!(m.due(secs(t, 40)), vec![2]);
    }

    #[test]
    fn a_due_entry_left_as_it_was_is_due_again() {
        let t = Instant::now();
        let mut m: TimedMap<u64, At> = TimedMap::default();
        m.insert(1, At(Some(secs(t, 5))));
        assert_eq!(m.due(secs(t, 5)), vec![1]);
        // Its handler did nothing to it: still due.
        m.reindex();
        assert_eq!(m.next_deadline(), Some(secs(t, 5)));
        assert_eq!(m.due(secs(t, 6)), vec![1]);
        // Its handler cleared it: gone.
        m.get_mut(&1).unwrap().0 = None;
        m.reindex();
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.due(secs(t, 100)), Vec::<u64>::new());
    }

    #[test]
    fn turns_with_nothing_due_visit_nothing() {
        let t = Instant::now();
        let mut m: TimedMap<u64, At> = TimedMap::default();
        for k in 0..1000 {
            m.insert(k, At(Some(secs(t, 60 + k))));
        }
        for s in 0..60 {
            assert_eq!(m.due(secs(t, s)), Vec::<u64>::new());
        }
        assert_eq!(m.visited(), 0);
        assert_eq!(m.due(secs(t, 61)), vec![0, 1]);
        assert_eq!(m.visited(), 2);
    }
}
