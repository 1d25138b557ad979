//! A pool: the available agents eligible for one (strategy, skills) pair,
//! kept in the strategy's order so the best is found at once.
//!
//! Each (agent, pool) pair has a `PoolLink` in one flat array of the
//! topology (an agent's links side by side) holding where the agent's node
//! sits in the pool, so finding it is O(1), never a search. Ordered
//! strategies keep an 8-ary min-heap of 24-byte nodes (see `Heap`);
//! round robin keeps a bitset over members (member order = index order),
//! scanned from the cursor. An agent's pools are locked together, in
//! ascending order, to add or remove it (see `Pool::insert_all`).

use super::agent::{PoolLink, Slot, Tag};
use crate::config::Strategy;
use std::ops::Range;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// `(key1, key2, agent index)`: smaller sorts first = better.
pub(crate) type Key = (u64, u64, u32);

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
pub(crate) fn key(strategy: Strategy, base: Instant, seed: u64, k: KeyInput) -> Key {
    let idle = idle_key(base, k.last_call_end);
    let (k1, k2) = match strategy {
        Strategy::LongestIdle => (idle, 0),
        Strategy::MostSkilled => (u64::MAX - u64::from(k.score), idle),
        Strategy::FewestCalls => (k.calls_taken, idle),
        Strategy::RoundRobin => (u64::from(k.idx), 0),
        Strategy::Random => (random_key(seed, k.idx, k.epoch), 0),
    };
    (k1, k2, k.idx)
}

/// Marks a link that has no node.
const NONE: u32 = u32::MAX;
/// Marks a node as a tombstone (in its `link`; links number below 2^31).
const DEAD: u32 = 1 << 31;
/// Heap arity: the 8 children of a node are 3 adjacent cache lines,
/// fetched together; 800 entries are 3 levels deep.
const D: usize = 8;

/// A heap entry, 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Node {
    k1: u64,
    k2: u64,
    idx: u32,
    /// The agent's link (index in the topology's `pool_links`), whose
    /// `pos` follows this node, plus `DEAD` for a tombstone.
    link: u32,
}

impl Node {
    fn key(&self) -> Key {
        (self.k1, self.k2, self.idx)
    }
    fn link(&self) -> u32 {
        self.link & !DEAD
    }
    fn dead(&self) -> bool {
        self.link & DEAD != 0
    }
}

/// Min-heap of entries; each node's link `pos` = its place here.
///
/// An agent that leaves only marks its node dead (a tombstone: one store,
/// no sifting through cache-cold nodes). The tombstone keeps its key, so
/// the order holds, and its place: when the agent comes back, its node is
/// revived there with the new key (often the same key, or one that moves
/// a level at most: most nodes are leaves). Claims pop the tombstones that
/// reach the top; the heap is compacted (one sequential pass) when they
/// outnumber the live entries.
#[derive(Debug, Default)]
struct Heap {
    nodes: Vec<Node>,
    live: usize,
}

/// Tombstones tolerated beyond the live entries before compacting.
const SLACK: usize = 32;

impl Heap {
    fn set_pos(links: &[PoolLink], link: u32, i: u32) {
        if let Some(l) = links.get(link as usize) {
            l.pos.store(i, Relaxed);
        }
    }

    fn sift_up(&mut self, links: &[PoolLink], mut i: usize) {
        let Some(&n) = self.nodes.get(i) else { return };
        while i > 0 {
            let p = (i - 1) / D;
            let Some(&up) = self.nodes.get(p) else { break };
            if up.key() <= n.key() {
                break;
            }
            self.nodes[i] = up;
            Self::set_pos(links, up.link(), i as u32);
            i = p;
        }
        self.nodes[i] = n;
        Self::set_pos(links, n.link(), i as u32);
    }

    fn sift_down(&mut self, links: &[PoolLink], mut i: usize) {
        let Some(&n) = self.nodes.get(i) else { return };
        let len = self.nodes.len();
        loop {
            let first = i * D + 1;
            let Some(kids) = self.nodes.get(first..(first + D).min(len)) else {
                break;
            };
            let Some((c, best)) = kids
                .iter()
                .enumerate()
                .min_by_key(|(_, k)| k.key())
                .map(|(c, k)| (first + c, *k))
            else {
                break;
            };
            if best.key() >= n.key() {
                break;
            }
            self.nodes[i] = best;
            Self::set_pos(links, best.link(), i as u32);
            i = c;
        }
        self.nodes[i] = n;
        Self::set_pos(links, n.link(), i as u32);
    }

    /// Enters `link`'s agent with `key`: revives (or re-keys) its node if
    /// it still has one, else adds one.
    fn upsert(&mut self, links: &[PoolLink], link: u32, key: Key) {
        let Some(l) = links.get(link as usize) else {
            return;
        };
        let at = l.pos.load(Relaxed) as usize;
        match self.nodes.get_mut(at) {
            Some(n) => {
                let old = n.key();
                if n.dead() {
                    self.live += 1;
                }
                *n = Node {
                    k1: key.0,
                    k2: key.1,
                    idx: key.2,
                    link,
                };
                if key < old {
                    self.sift_up(links, at);
                } else if key > old {
                    self.sift_down(links, at);
                }
            }
            None => {
                self.nodes.push(Node {
                    k1: key.0,
                    k2: key.1,
                    idx: key.2,
                    link,
                });
                self.live += 1;
                self.sift_up(links, self.nodes.len() - 1);
            }
        }
    }

    /// Turns `link`'s node (if live) into a tombstone.
    fn remove(&mut self, links: &[PoolLink], link: u32) {
        let Some(l) = links.get(link as usize) else {
            return;
        };
        let at = l.pos.load(Relaxed) as usize;
        if let Some(n) = self.nodes.get_mut(at) {
            if !n.dead() {
                n.link |= DEAD;
                self.live -= 1;
                if self.nodes.len() > 2 * self.live + SLACK {
                    self.compact(links);
                }
            }
        }
    }

    /// Drops the tombstones at the top.
    fn pop_tombstones(&mut self, links: &[PoolLink]) {
        while let Some(top) = self.nodes.first().filter(|n| n.dead()).copied() {
            Self::set_pos(links, top.link(), NONE);
            let Some(last) = self.nodes.pop() else { return };
            if let Some(root) = self.nodes.first_mut() {
                *root = last;
                self.sift_down(links, 0);
            }
        }
    }

    /// Drops every tombstone and rebuilds the heap.
    fn compact(&mut self, links: &[PoolLink]) {
        for n in self.nodes.iter().filter(|n| n.dead()) {
            Self::set_pos(links, n.link(), NONE);
        }
        self.nodes.retain(|n| !n.dead());
        for i in (0..self.nodes.len().div_ceil(D)).rev() {
            self.sift_down(links, i);
        }
        for (i, n) in self.nodes.iter().enumerate() {
            Self::set_pos(links, n.link(), i as u32);
        }
    }
}

/// The available members, in the strategy's order.
#[derive(Debug)]
enum Set {
    Heap(Heap),
    /// Round robin: bit per member, plus a bit per non-zero word.
    Bits {
        words: Vec<u64>,
        summary: Vec<u64>,
        len: usize,
    },
}

impl Set {
    fn new(strategy: Strategy, members: usize) -> Set {
        if strategy == Strategy::RoundRobin {
            let words = members.div_ceil(64);
            Set::Bits {
                words: vec![0; words],
                summary: vec![0; words.div_ceil(64)],
                len: 0,
            }
        } else {
            Set::Heap(Heap::default())
        }
    }

    /// The first word of the link's node, if any (to prefetch it).
    fn peek(&self, l: &PoolLink) -> u64 {
        match self {
            Set::Heap(h) => h
                .nodes
                .get(l.pos.load(Relaxed) as usize)
                .map_or(0, |n| n.k1),
            Set::Bits { words, .. } => words.get(l.member as usize / 64).copied().unwrap_or(0),
        }
    }

    /// Nodes held, tombstones included (never more than the members).
    fn len(&self) -> usize {
        match self {
            Set::Heap(h) => h.nodes.len(),
            Set::Bits { len, .. } => *len,
        }
    }

    /// Adds the agent of `link` with `key` (an entry it still had is
    /// replaced).
    fn insert(&mut self, links: &[PoolLink], link: u32, key: Key) {
        match self {
            Set::Heap(heap) => heap.upsert(links, link, key),
            Set::Bits {
                words,
                summary,
                len,
            } => {
                let Some(l) = links.get(link as usize) else {
                    return;
                };
                let (w, b) = (l.member as usize / 64, l.member % 64);
                if let Some(word) = words.get_mut(w) {
                    if *word & (1 << b) == 0 {
                        *word |= 1 << b;
                        *len += 1;
                    }
                    if let Some(s) = summary.get_mut(w / 64) {
                        *s |= 1 << (w % 64);
                    }
                }
            }
        }
    }

    /// Removes the entry of `link`'s agent, if any.
    fn remove(&mut self, links: &[PoolLink], link: u32) {
        match self {
            Set::Heap(heap) => heap.remove(links, link),
            Set::Bits {
                words,
                summary,
                len,
            } => {
                let Some(l) = links.get(link as usize) else {
                    return;
                };
                let (w, b) = (l.member as usize / 64, l.member % 64);
                if let Some(word) = words.get_mut(w) {
                    if *word & (1 << b) != 0 {
                        *word &= !(1 << b);
                        *len -= 1;
                    }
                    if *word == 0 {
                        if let Some(s) = summary.get_mut(w / 64) {
                            *s &= !(1 << (w % 64));
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Pool {
    pub strategy: Strategy,
    /// Agent index of each member, ascending.
    members: Vec<u32>,
    set: Mutex<Set>,
    /// Round robin: 1 + member number of the agent who last took a call
    /// here (0 = none yet).
    cursor: AtomicU64,
}

/// A locked pool with the agent's link into it (index and link).
type Held<'a> = (MutexGuard<'a, Set>, &'a Pool, u32, &'a PoolLink);

/// What a claim attempt made of one entry.
enum Try<'a> {
    Claimed(&'a Slot),
    Pass,
}

impl Pool {
    /// `members`: the eligible agents' indices, ascending.
    pub(crate) fn new(strategy: Strategy, members: Vec<u32>) -> Pool {
        Pool {
            strategy,
            set: Mutex::new(Set::new(strategy, members.len())),
            members,
            cursor: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Set> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the agent of each of `links[range]` (an agent's links, in
    /// ascending pool order) to its pool, with `key_of` its key there.
    pub(crate) fn insert_all(
        pools: &[Pool],
        links: &[PoolLink],
        range: Range<u32>,
        key_of: impl Fn(&Pool, &PoolLink) -> Key,
    ) {
        Self::locked_all(pools, links, range, |set, pool, li, l| {
            set.insert(links, li, key_of(pool, l));
        });
    }

    /// Removes the agent of each of `links[range]` from its pool.
    pub(crate) fn remove_all(pools: &[Pool], links: &[PoolLink], range: Range<u32>) {
        Self::locked_all(pools, links, range, |set, _, li, _| set.remove(links, li));
    }

    /// Runs `f` on the pools of `links[range]` with up to `BATCH` of them
    /// locked at once, in ascending pool order (so two threads doing this
    /// cannot deadlock; a claim holds a single pool). Unlocking is a locked
    /// instruction that waits for the pending stores: one unlock after a
    /// batch lets the cache misses of all its pools overlap, instead of
    /// paying them one pool after the other.
    fn locked_all(
        pools: &[Pool],
        links: &[PoolLink],
        range: Range<u32>,
        mut f: impl FnMut(&mut Set, &Pool, u32, &PoolLink),
    ) {
        const BATCH: usize = 16;
        let mut next = range.start;
        while next < range.end {
            let end = range.end.min(next + BATCH as u32);
            let mut held: [Option<Held<'_>>; BATCH] = std::array::from_fn(|_| None);
            for (h, li) in held.iter_mut().zip(next..end) {
                if let Some(l) = links.get(li as usize) {
                    if let Some(pool) = pools.get(l.pool as usize) {
                        *h = Some((pool.lock(), pool, li, l));
                    }
                }
            }
            // Read each pool's node first: independent loads whose cache
            // misses overlap, where `f` alone would wait for one at a time.
            let mut sink = 0u64;
            for (set, _, _, l) in held.iter().flatten() {
                sink = sink.wrapping_add(set.peek(l));
            }
            std::hint::black_box(sink);
            for (set, pool, li, l) in held.iter_mut().flatten() {
                f(set, pool, *li, l);
            }
            next = end;
        }
    }

    /// Round robin: remember who took the last call (its member number).
    pub(crate) fn took(&self, member: u32) {
        if self.strategy == Strategy::RoundRobin {
            self.cursor.store(u64::from(member) + 1, SeqCst);
        }
    }

    pub(crate) fn cursor(&self) -> Option<u32> {
        self.cursor.load(SeqCst).checked_sub(1).map(|c| c as u32)
    }

    /// Claims the best available agent (its word becomes `Deciding`),
    /// skipping the agents in `skip` and those that are not `Available`
    /// (claimed by another thread, or leaving: whoever moves an agent out
    /// of `Available` removes its entries).
    pub(crate) fn claim<'a>(
        &self,
        agents: &'a [Slot],
        links: &[PoolLink],
        skip: &[u32],
    ) -> Option<&'a Slot> {
        let mut set = self.lock();
        let try_idx = |idx: u32| -> Try {
            if skip.contains(&idx) {
                return Try::Pass;
            }
            let Some(slot) = agents.get(idx as usize) else {
                return Try::Pass;
            };
            loop {
                let w = slot.word();
                if w.tag != Tag::Available {
                    return Try::Pass;
                }
                if slot.try_claim(w.epoch) {
                    return Try::Claimed(slot);
                }
                // Lost a race; look at the word again.
            }
        };
        match &mut *set {
            Set::Heap(heap) => {
                heap.pop_tombstones(links);
                let root = heap.nodes.first()?;
                if let Try::Claimed(s) = try_idx(root.idx) {
                    return Some(s);
                }
                // Rare: walk on in order, best first, over the heap's
                // frontier (children of the entries passed so far).
                let nodes = &heap.nodes;
                let mut frontier: Vec<usize> = (1..=D).filter(|&c| c < nodes.len()).collect();
                while let Some((fi, &at)) = frontier
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &at)| nodes.get(at).map(Node::key))
                {
                    frontier.swap_remove(fi);
                    let Some(n) = nodes.get(at) else { continue };
                    if !n.dead() {
                        if let Try::Claimed(s) = try_idx(n.idx) {
                            return Some(s);
                        }
                    }
                    frontier.extend((at * D + 1..=at * D + D).filter(|&c| c < nodes.len()));
                }
                None
            }
            Set::Bits { words, summary, .. } => {
                // Agents after the cursor first, then from the start.
                // Members are in index order: the next one is the next index.
                let start = self.cursor().map_or(0, |c| c as usize + 1);
                let mut at = start;
                let mut wrapped = false;
                loop {
                    match next_bit(words, summary, at) {
                        Some(m) if !wrapped || m < start => {
                            let idx = self.members.get(m).copied().unwrap_or(u32::MAX);
                            if let Try::Claimed(s) = try_idx(idx) {
                                return Some(s);
                            }
                            at = m + 1;
                        }
                        _ if !wrapped && start > 0 => {
                            wrapped = true;
                            at = 0;
                        }
                        _ => return None,
                    }
                }
            }
        }
    }

    /// Entries currently held; for status and tests.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The eligible agents now available here (for ordered strategies the
    /// live heap entries), and up to `n` of those next in line: the best of
    /// the heap's top two levels, or the next members after the round robin
    /// cursor. O(n + heap arity): for the call record's explanation.
    pub(crate) fn next_in_line(&self, n: usize) -> (usize, Vec<u32>) {
        let set = self.lock();
        match &*set {
            Set::Heap(heap) => {
                let mut near: Vec<&Node> = heap
                    .nodes
                    .iter()
                    .take(1 + D)
                    .filter(|node| !node.dead())
                    .collect();
                near.sort_unstable_by_key(|node| node.key());
                (
                    heap.live,
                    near.iter().take(n).map(|node| node.idx).collect(),
                )
            }
            Set::Bits {
                words,
                summary,
                len,
            } => {
                let start = self.cursor().map_or(0, |c| c as usize + 1);
                let mut out = Vec::with_capacity(n);
                let mut at = start;
                while out.len() < n {
                    match next_bit(words, summary, at) {
                        Some(m) => {
                            out.extend(self.members.get(m).copied());
                            at = m + 1;
                        }
                        None => break,
                    }
                }
                at = 0;
                while out.len() < n {
                    match next_bit(words, summary, at) {
                        Some(m) if m < start => {
                            out.extend(self.members.get(m).copied());
                            at = m + 1;
                        }
                        _ => break,
                    }
                }
                (*len, out)
            }
        }
    }

    /// How many agents are eligible here at all.
    pub(crate) fn members(&self) -> usize {
        self.members.len()
    }
}

/// The first set bit at or after `from`.
fn next_bit(words: &[u64], summary: &[u64], from: usize) -> Option<usize> {
    let w = from / 64;
    let first = words.get(w)? & (!0u64 << (from % 64));
    if first != 0 {
        return Some(w * 64 + first.trailing_zeros() as usize);
    }
    // Non-zero words after `w`, found through the summary.
    let next = w + 1;
    let mut s = next / 64;
    let mut bits = summary.get(s)? & (!0u64 << (next % 64));
    loop {
        if bits != 0 {
            let w = s * 64 + bits.trailing_zeros() as usize;
            return Some(w * 64 + words.get(w)?.trailing_zeros() as usize);
        }
        s += 1;
        bits = *summary.get(s)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_keeps_order_under_inserts_and_removes() {
        let n = 300u32;
        let links: Vec<PoolLink> = (0..n)
            .map(|m| PoolLink {
                pool: 0,
                member: m,
                score: 0,
                pos: std::sync::atomic::AtomicU32::new(NONE),
            })
            .collect();
        let mut heap = Heap::default();
        let mut live = std::collections::BTreeSet::new();
        let mut s = 0x9E37_79B9u64;
        for step in 0..20000u32 {
            s = random_key(s, step, 0);
            let m = (s % u64::from(n)) as u32;
            live.retain(|k: &(u64, u32)| k.1 != m);
            if s % 3 == 0 {
                heap.remove(&links, m);
            } else {
                let k = (s >> 40) % 50;
                heap.upsert(&links, m, (k, 0, m));
                live.insert((k, m));
            }
            if s % 7 == 0 {
                heap.pop_tombstones(&links);
                if let Some(&(k, m)) = live.iter().next() {
                    assert_eq!(heap.nodes[0].key(), (k, 0, m));
                }
            }
            assert_eq!(heap.live, live.len());
            assert!(heap.nodes.len() <= 2 * live.len() + SLACK + 1);
            for (i, nd) in heap.nodes.iter().enumerate() {
                assert_eq!(links[nd.link() as usize].pos.load(Relaxed), i as u32);
                if i > 0 {
                    assert!(heap.nodes[(i - 1) / D].key() <= nd.key());
                }
            }
            let live_nodes = heap.nodes.iter().filter(|n| !n.dead()).count();
            assert_eq!(live_nodes, live.len());
        }
    }

    #[test]
    fn next_bit_walks_set_bits_in_order() {
        let n = 64 * 64 * 2 + 70;
        let words_n = n / 64 + 1;
        let mut words = vec![0u64; words_n];
        let mut summary = vec![0u64; words_n.div_ceil(64)];
        let set = [0usize, 5, 63, 64, 4095, 4096, 8000, n - 1];
        for &b in &set {
            words[b / 64] |= 1 << (b % 64);
            summary[b / 64 / 64] |= 1 << ((b / 64) % 64);
        }
        let mut got = Vec::new();
        let mut at = 0;
        while let Some(b) = next_bit(&words, &summary, at) {
            got.push(b);
            at = b + 1;
        }
        assert_eq!(got, set);
        assert_eq!(next_bit(&words, &summary, 6), Some(63));
    }
}
