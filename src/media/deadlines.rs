//! When each media leg next has work: a min-heap of (deadline, key,
//! generation) with lazy deletion, so the media task wakes only for the
//! legs that are due. Rescheduling a leg pushes a new entry and bumps its
//! generation; the old entry stays in the heap and is skipped when it
//! surfaces. Sans-IO: the driver sleeps until [`Deadlines::earliest`] and then
//! takes what [`Deadlines::pop_due`] hands out.

use ahash::AHashMap as HashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;
use std::time::Instant;

/// Stale entries tolerated beyond the live ones before the heap is rebuilt
/// (bounds memory when legs reschedule often without becoming due).
const SLACK: usize = 64;

#[derive(Debug)]
pub struct Deadlines<K> {
    heap: BinaryHeap<Reverse<(Instant, K, u64)>>,
    /// The one live entry of each scheduled key: its generation and when.
    live: HashMap<K, (u64, Instant)>,
    next_gen: u64,
}

impl<K: Copy + Eq + Hash + Ord> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines::new()
    }
}

impl<K: Copy + Eq + Hash + Ord> Deadlines<K> {
    pub fn new() -> Deadlines<K> {
        Deadlines {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            next_gen: 0,
        }
    }

    /// Sets `key`'s deadline to `at`, replacing any earlier or later one.
    pub fn schedule(&mut self, key: K, at: Instant) {
        if self.live.get(&key).is_some_and(|&(_, t)| t == at) {
            return;
        }
        let gen = self.next_gen;
        self.next_gen += 1;
        self.live.insert(key, (gen, at));
        self.heap.push(Reverse((at, key, gen)));
        self.compact_if_bloated();
    }

    /// Moves `key`'s deadline to `at` only if that is sooner than the one
    /// it has (or it has none). A deadline that moved later is left alone:
    /// waking early costs one look at the leg, which then reschedules.
    pub fn schedule_earlier(&mut self, key: K, at: Instant) {
        match self.live.get(&key) {
            Some(&(_, t)) if t <= at => {}
            _ => self.schedule(key, at),
        }
    }

    /// Sets or clears `key`'s deadline.
    pub fn set(&mut self, key: K, at: Option<Instant>) {
        match at {
            Some(at) => self.schedule(key, at),
            None => self.cancel(key),
        }
    }

    /// Forgets `key` (its heap entry is dropped when it surfaces).
    pub fn cancel(&mut self, key: K) {
        self.live.remove(&key);
    }

    /// `key`'s current deadline.
    pub fn get(&self, key: K) -> Option<Instant> {
        self.live.get(&key).map(|&(_, t)| t)
    }

    /// The earliest live deadline (stale entries on top are discarded).
    pub fn earliest(&mut self) -> Option<Instant> {
        self.skip_stale();
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// A key whose deadline is at or before `now`, unscheduled as it is
    /// handed out (the driver schedules it again after its work). Keys come
    /// out in deadline order.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        self.skip_stale();
        let Reverse((at, key, _)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.live.remove(&key);
        Some(key)
    }

    /// Keys with a deadline.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Entries in the heap, stale ones included (for tests and metrics).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    fn is_live(&self, key: &K, gen: u64) -> bool {
        self.live.get(key).is_some_and(|&(g, _)| g == gen)
    }

    fn skip_stale(&mut self) {
        while let Some(Reverse((_, key, gen))) = self.heap.peek() {
            if self.is_live(key, *gen) {
                return;
            }
            self.heap.pop();
        }
    }

    fn compact_if_bloated(&mut self) {
        if self.heap.len() <= 2 * self.live.len() + SLACK {
            return;
        }
        self.heap = self
            .live
            .iter()
            .map(|(&k, &(g, t))| Reverse((t, k, g)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn ms(t: Instant, n: u64) -> Instant {
        t + Duration::from_millis(n)
    }

    fn drain(d: &mut Deadlines<u32>, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| d.pop_due(now)).collect()
    }

    #[test]
    fn only_due_keys_come_out_in_deadline_order() {
        let t = Instant::now();
        let mut d = Deadlines::new();
        d.schedule(1, ms(t, 30));
        d.schedule(2, ms(t, 10));
        d.schedule(3, ms(t, 20));
        assert_eq!(d.earliest(), Some(ms(t, 10)));
        assert_eq!(drain(&mut d, ms(t, 5)), Vec::<u32>::new());
        assert_eq!(drain(&mut d, ms(t, 20)), vec![2, 3]);
        assert_eq!((d.len(), d.earliest()), (1, Some(ms(t, 30))));
        assert_eq!(drain(&mut d, ms(t, 100)), vec![1]);
        assert!(d.is_empty());
        assert_eq!(d.earliest(), None);
    }

    #[test]
    fn rescheduled_and_cancelled_entries_are_skipped() {
        let t = Instant::now();
        let mut d = Deadlines::new();
        d.schedule(1, ms(t, 10));
        d.schedule(2, ms(t, 10));
        // Later: the stale 10 ms entry of 1 must not fire.
        d.schedule(1, ms(t, 50));
        d.cancel(2);
        assert_eq!(d.earliest(), Some(ms(t, 50)));
        assert_eq!(drain(&mut d, ms(t, 40)), Vec::<u32>::new());
        // Sooner only: a later deadline does not replace a sooner one.
        d.schedule_earlier(1, ms(t, 60));
        assert_eq!(d.get(1), Some(ms(t, 50)));
        d.schedule_earlier(1, ms(t, 45));
        assert_eq!(d.get(1), Some(ms(t, 45)));
        d.schedule_earlier(3, ms(t, 70));
        assert_eq!(drain(&mut d, ms(t, 50)), vec![1]);
        assert_eq!(drain(&mut d, ms(t, 70)), vec![3]);
        d.set(4, Some(ms(t, 1)));
        d.set(4, None);
        assert_eq!(d.earliest(), None);
    }

    #[test]
    fn heap_stays_bounded_under_constant_rescheduling() {
        let t = Instant::now();
        let mut d = Deadlines::new();
        for n in 0..100_000u64 {
            d.schedule((n % 10) as u32, ms(t, 1000 + n));
        }
        assert_eq!(d.len(), 10);
        assert!(d.heap_len() <= 2 * 10 + SLACK + 1, "{}", d.heap_len());
        // The survivors are the last deadline of each key.
        let got = drain(&mut d, ms(t, 1_000_000));
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    proptest! {
        /// Against a plain map of key -> deadline: the same keys become due
        /// at the same times, whatever mix of operations came before.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((0u8..4, 0u32..8, 0u64..200), 1..200)) {
            let t = Instant::now();
            let mut d = Deadlines::new();
            let mut model: BTreeMap<u32, Instant> = BTreeMap::new();
            let mut now = t;
            for (op, key, at) in ops {
                let at = ms(t, at);
                match op {
                    0 => { d.schedule(key, at); model.insert(key, at); }
                    1 => {
                        d.schedule_earlier(key, at);
                        let e = model.entry(key).or_insert(at);
                        *e = (*e).min(at);
                    }
                    2 => { d.cancel(key); model.remove(&key); }
                    _ => {
                        now = now.max(at);
                        let mut got = drain(&mut d, now);
                        got.sort_unstable();
                        let want: Vec<u32> = model.iter().filter(|(_, &v)| v <= now).map(|(&k, _)| k).collect();
                        model.retain(|_, v| *v > now);
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(d.earliest(), model.values().min().copied());
                prop_assert_eq!(d.len(), model.len());
            }
        }
    }
}
