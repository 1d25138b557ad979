//! The calls of one shard: a slab of slots, an index from (Call-ID, our
//! tag) to slot, and one deadline table, so that a loop turn looks only at
//! the calls that have something due.
//!
//! Every change to a call goes through [`CallTable::get_mut`] (or insert
//! and remove), which marks its slot; [`CallTable::reindex`] then re-reads
//! the deadlines of the marked calls only (`Call::poll_timeout`, which
//! combines its answer, ring, IVR, announcement and session timers). Until
//! then [`CallTable::next_deadline`] also looks at the marked calls, so a
//! deadline is never missed.

use ahash::AHashMap as HashMap;
use std::collections::BTreeSet;
use std::time::Instant;

use super::CallKey;
use crate::call::Call;
use crate::sip::transaction::TxKey;

/// A call's place in the slab.
pub(super) type Slot = u32;

/// A call of this shard: its slot and the slot's generation when the call
/// was put there. Every map of the engine that finds a call holds one of
/// these; a handle kept past its call's end finds nothing, even once the
/// slot holds another call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct CallHandle {
    slot: Slot,
    generation: u32,
}

#[derive(Debug, Default)]
struct Entry {
    /// Bumped each time the slot is emptied.
    generation: u32,
    call: Option<(CallKey, Call)>,
}

#[derive(Debug, Default)]
pub(super) struct CallTable {
    slots: Vec<Entry>,
    free: Vec<Slot>,
    /// The one index by (Call-ID, our tag), for messages from the wire.
    index: HashMap<CallKey, CallHandle>,
    /// (deadline, slot) of every call that has one.
    deadlines: BTreeSet<(Instant, Slot)>,
    /// Each slot's entry in `deadlines`.
    armed: Vec<Option<Instant>>,
    /// Slots changed since the last reindex (may repeat).
    dirty: Vec<Slot>,
    /// Deadline entries handed out by `due` so far (tests: a turn with
    /// nothing due hands out, and so visits, none).
    visited: u64,
}

impl CallTable {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The call a message from the wire names by (Call-ID, our tag).
    pub fn find(&self, ck: &CallKey) -> Option<CallHandle> {
        self.index.get(ck).copied()
    }

    fn entry(&self, h: CallHandle) -> Option<&(CallKey, Call)> {
        let e = self.slots.get(h.slot as usize)?;
        (e.generation == h.generation)
            .then_some(e.call.as_ref())
            .flatten()
    }

    pub fn get(&self, h: CallHandle) -> Option<&Call> {
        self.entry(h).map(|(_, c)| c)
    }

    /// The call's (Call-ID, our tag).
    pub fn key(&self, h: CallHandle) -> Option<&CallKey> {
        self.entry(h).map(|(k, _)| k)
    }

    /// The call's Call-ID, for log lines ("" once the call is gone).
    pub fn call_id(&self, h: CallHandle) -> &str {
        self.key(h).map_or("", |(id, _)| id.as_str())
    }

    /// The call, marked for its deadline to be read again.
    pub fn get_mut(&mut self, h: CallHandle) -> Option<&mut Call> {
        let e = self.slots.get_mut(h.slot as usize)?;
        if e.generation != h.generation {
            return None;
        }
        let (_, call) = e.call.as_mut()?;
        self.dirty.push(h.slot);
        Some(call)
    }

    pub fn insert(&mut self, ck: CallKey, call: Call) -> CallHandle {
        if let Some(old) = self.find(&ck) {
            // A (Call-ID, tag) is never reused; be safe anyway.
            self.remove(old);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Entry::default());
                self.armed.push(None);
                Slot::try_from(self.slots.len() - 1).unwrap_or(Slot::MAX)
            }
        };
        let generation = self.slots.get(slot as usize).map_or(0, |e| e.generation);
        let h = CallHandle { slot, generation };
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            entry.call = Some((ck.clone(), call));
            self.index.insert(ck, h);
            self.dirty.push(slot);
        }
        h
    }

    /// Takes the call out; its handle (and every copy) finds nothing from
    /// now on.
    pub fn remove(&mut self, h: CallHandle) -> Option<(CallKey, Call)> {
        let e = self.slots.get_mut(h.slot as usize)?;
        if e.generation != h.generation {
            return None;
        }
        let (ck, call) = e.call.take()?;
        e.generation = e.generation.wrapping_add(1);
        self.index.remove(&ck);
        self.disarm(h.slot);
        self.free.push(h.slot);
        Some((ck, call))
    }

    fn live(&self) -> impl Iterator<Item = (CallHandle, &CallKey, &Call)> {
        self.slots.iter().zip(0..).filter_map(|(e, slot)| {
            let (k, c) = e.call.as_ref()?;
            let h = CallHandle {
                slot,
                generation: e.generation,
            };
            Some((h, k, c))
        })
    }

    pub fn handles(&self) -> impl Iterator<Item = CallHandle> + '_ {
        self.live().map(|(h, _, _)| h)
    }

    #[cfg(test)]
    pub fn values(&self) -> impl Iterator<Item = &Call> {
        self.live().map(|(_, _, c)| c)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&CallKey, &Call)> {
        self.live().map(|(_, k, c)| (k, c))
    }

    fn disarm(&mut self, slot: Slot) {
        if let Some(at) = self.armed.get_mut(slot as usize).and_then(Option::take) {
            self.deadlines.remove(&(at, slot));
        }
    }

    fn call_at(&self, slot: Slot) -> Option<&Call> {
        self.slots
            .get(slot as usize)
            .and_then(|e| e.call.as_ref())
            .map(|(_, c)| c)
    }

    /// Re-reads the deadlines of the calls changed since the last time.
    pub fn reindex(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            let at = self.call_at(slot).and_then(Call::poll_timeout);
            let armed = self.armed.get(slot as usize).copied().flatten();
            if armed == at {
                continue;
            }
            self.disarm(slot);
            if let Some(at) = at {
                self.deadlines.insert((at, slot));
                if let Some(a) = self.armed.get_mut(slot as usize) {
                    *a = Some(at);
                }
            }
        }
        dirty.clear();
        // Keep the allocation for the next turn.
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// The earliest deadline of any call.
    pub fn next_deadline(&self) -> Option<Instant> {
        let indexed = self.deadlines.first().map(|(at, _)| *at);
        let pending = self
            .dirty
            .iter()
            .filter_map(|&s| self.call_at(s))
            .filter_map(Call::poll_timeout)
            .min();
        indexed.into_iter().chain(pending).min()
    }

    /// The calls with a deadline at or before `now`, earliest first.
    pub fn due(&mut self, now: Instant) -> Vec<CallHandle> {
        self.reindex();
        let due: Vec<CallHandle> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|&(_, slot)| {
                let e = self.slots.get(slot as usize)?;
                e.call.as_ref().map(|_| CallHandle {
                    slot,
                    generation: e.generation,
                })
            })
            .collect();
        self.visited += due.len() as u64;
        due
    }

    /// Deadline entries handed out by [`CallTable::due`] so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn visited(&self) -> u64 {
        self.visited
    }
}

/// The INVITE (transaction and request) each call is being answered on,
/// and the way back from a transaction to its call (a CANCEL names the
/// INVITE's transaction).
#[derive(Debug, Default)]
pub(super) struct InviteTable {
    /// Shared: a handler that answers takes a reference count, not a copy.
    by_call: HashMap<CallHandle, (TxKey, std::sync::Arc<rsip::Request>)>,
    by_tx: HashMap<TxKey, CallHandle>,
}

impl InviteTable {
    pub fn get(&self, ck: CallHandle) -> Option<&(TxKey, std::sync::Arc<rsip::Request>)> {
        self.by_call.get(&ck)
    }

    /// `ck` is answered on `key` from now on (a re-INVITE replaces the
    /// initial INVITE).
    pub fn insert(&mut self, ck: CallHandle, key: TxKey, req: std::sync::Arc<rsip::Request>) {
        self.by_tx.insert(key.clone(), ck);
        if let Some((old, _)) = self.by_call.insert(ck, (key, req)) {
            self.by_tx.remove(&old);
        }
    }

    pub fn remove(&mut self, ck: CallHandle) {
        if let Some((key, _)) = self.by_call.remove(&ck) {
            self.by_tx.remove(&key);
        }
    }

    /// The call whose INVITE transaction is `key`.
    pub fn call_of(&self, key: &TxKey) -> Option<CallHandle> {
        self.by_tx.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A ringing call whose answer is due `ring` after `now`.
    fn ringing(id: &str, ports: &crate::media::PortPool, ring: Duration, now: Instant) -> Call {
        let text = format!(
            "INVITE sip:1500@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{id}\r\n\
             From: <sip:c@127.0.0.1>;tag=a\r\nTo: <sip:1500@127.0.0.1>\r\nCall-ID: {id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
        );
        let Ok(rsip::SipMessage::Request(req)) = crate::sip::message::parse(text.as_bytes()) else {
            panic!("test INVITE does not parse");
        };
        let dialog = crate::sip::dialog::Dialog::from_uas(&req, "t".to_owned()).unwrap();
        let peer = crate::sip::Peer::udp("127.0.0.1:5070".parse().unwrap());
        let target = crate::config::Target::Hangup;
        let lease = ports.allocate().unwrap();
        Call::new(dialog, peer, "1500".into(), target, None, lease, ring, now).0
    }

    fn key(id: &str) -> CallKey {
        (id.to_owned(), "t".to_owned())
    }

    #[test]
    fn only_calls_with_something_due_are_visited() {
        let ports = crate::media::PortPool::new(30000..=30100);
        let t0 = Instant::now();
        let mut table = CallTable::default();
        let mut h = Vec::new();
        for i in 0..20 {
            let ring = Duration::from_secs(10 + i);
            h.push(table.insert(
                key(&format!("c{i}")),
                ringing(&format!("c{i}"), &ports, ring, t0),
            ));
        }
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(10)));
        table.reindex();
        assert_eq!(table.due(t0 + Duration::from_secs(5)), Vec::new());
        let due = table.due(t0 + Duration::from_secs(11));
        assert_eq!(due, vec![h[0], h[1]]);
        // A call changed through get_mut is looked at again: its deadline
        // moves (here: it is answered, and nothing is due any more).
        table.get_mut(h[0]).unwrap().state = crate::call::CallState::Confirmed;
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(10)));
        table.reindex();
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(11)));
        // A removed call leaves no deadline behind, and its slot is reused.
        table.remove(h[1]);
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(12)));
        let n = table.insert(key("n"), ringing("n", &ports, Duration::from_secs(1), t0));
        assert_eq!(table.len(), 20);
        assert_eq!(table.slots.len(), 20, "the freed slot was reused");
        assert_eq!(table.due(t0 + Duration::from_secs(2)), vec![n]);
        assert_eq!(table.get(n).map(|c| c.number.as_str()), Some("1500"));
        assert_eq!(table.find(&key("n")), Some(n));
    }

    #[test]
    fn a_timer_fires_at_its_deadline_and_an_idle_turn_visits_nothing() {
        let ports = crate::media::PortPool::new(30000..=30300);
        let t0 = Instant::now();
        let mut table = CallTable::default();
        // 100 ringing calls due 30 s out, and one due at 5 s.
        let far: Vec<_> = (0..100)
            .map(|i| {
                let id = format!("far{i}");
                table.insert(key(&id), ringing(&id, &ports, Duration::from_secs(30), t0))
            })
            .collect();
        let near = table.insert(
            key("near"),
            ringing("near", &ports, Duration::from_secs(5), t0),
        );
        // Turns before anything is due hand out, and visit, nothing.
        for ms in [0, 1000, 4999] {
            assert_eq!(table.due(t0 + Duration::from_millis(ms)), Vec::new());
        }
        assert_eq!(table.visited(), 0);
        // At its deadline exactly, the one call is due, and only it.
        assert_eq!(table.due(t0 + Duration::from_secs(5)), vec![near]);
        assert_eq!(table.visited(), 1);
        // Answered: its deadline goes, and the next turns visit nothing
        // again until the far calls are due.
        table.get_mut(near).unwrap().state = crate::call::CallState::Confirmed;
        assert_eq!(table.due(t0 + Duration::from_secs(6)), Vec::new());
        assert_eq!(table.due(t0 + Duration::from_secs(29)), Vec::new());
        assert_eq!(table.visited(), 1);
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(table.due(t0 + Duration::from_secs(30)).len(), far.len());
        assert_eq!(table.visited(), 1 + far.len() as u64);
    }

    #[test]
    fn a_stale_handle_finds_nothing_after_its_slot_is_reused() {
        let ports = crate::media::PortPool::new(30000..=30100);
        let t0 = Instant::now();
        let ring = Duration::from_secs(5);
        let mut table = CallTable::default();
        let old = table.insert(key("old"), ringing("old", &ports, ring, t0));
        assert_eq!(table.call_id(old), "old");
        let (ck, _) = table.remove(old).unwrap();
        assert_eq!(ck, key("old"));
        let new = table.insert(key("new"), ringing("new", &ports, ring, t0));
        assert_eq!(table.slots.len(), 1, "the slot was reused");
        assert_ne!(old, new);
        assert!(table.get(old).is_none());
        assert!(table.get_mut(old).is_none());
        assert!(table.key(old).is_none());
        assert_eq!(table.call_id(old), "");
        assert!(
            table.remove(old).is_none(),
            "a stale handle removes nothing"
        );
        assert_eq!(table.call_id(new), "new");
        assert_eq!(table.find(&key("old")), None);
        assert_eq!(table.handles().collect::<Vec<_>>(), vec![new]);
        assert_eq!(table.due(t0 + ring), vec![new]);
    }
}
