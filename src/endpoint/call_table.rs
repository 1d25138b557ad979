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

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::CallKey;
use crate::call::Call;
use crate::sip::transaction::TxKey;

/// A call's place in the slab.
pub(super) type Slot = u32;

#[derive(Debug, Default)]
pub(super) struct CallTable {
    slots: Vec<Option<(CallKey, Call)>>,
    free: Vec<Slot>,
    index: HashMap<CallKey, Slot>,
    /// (deadline, slot) of every call that has one.
    deadlines: BTreeSet<(Instant, Slot)>,
    /// Each slot's entry in `deadlines`.
    armed: Vec<Option<Instant>>,
    /// Slots changed since the last reindex (may repeat).
    dirty: Vec<Slot>,
}

impl CallTable {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn contains_key(&self, ck: &CallKey) -> bool {
        self.index.contains_key(ck)
    }

    pub fn get(&self, ck: &CallKey) -> Option<&Call> {
        let slot = *self.index.get(ck)?;
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|(_, c)| c)
    }

    /// The call, marked for its deadline to be read again.
    pub fn get_mut(&mut self, ck: &CallKey) -> Option<&mut Call> {
        let slot = *self.index.get(ck)?;
        self.dirty.push(slot);
        self.slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .map(|(_, c)| c)
    }

    pub fn insert(&mut self, ck: CallKey, call: Call) {
        if let Some(old) = self.remove(&ck) {
            drop(old); // a (Call-ID, tag) is never reused; be safe anyway
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.armed.push(None);
                Slot::try_from(self.slots.len() - 1).unwrap_or(Slot::MAX)
            }
        };
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Some((ck.clone(), call));
            self.index.insert(ck, slot);
            self.dirty.push(slot);
        }
    }

    pub fn remove(&mut self, ck: &CallKey) -> Option<Call> {
        let slot = self.index.remove(ck)?;
        self.disarm(slot);
        let (_, call) = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(call)
    }

    pub fn keys(&self) -> impl Iterator<Item = &CallKey> {
        self.slots.iter().flatten().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Call> {
        self.slots.iter().flatten().map(|(_, c)| c)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&CallKey, &Call)> {
        self.slots.iter().flatten().map(|(k, c)| (k, c))
    }

    fn disarm(&mut self, slot: Slot) {
        if let Some(at) = self.armed.get_mut(slot as usize).and_then(Option::take) {
            self.deadlines.remove(&(at, slot));
        }
    }

    /// Re-reads the deadlines of the calls changed since the last time.
    pub fn reindex(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            let at = self
                .slots
                .get(slot as usize)
                .and_then(Option::as_ref)
                .and_then(|(_, c)| c.poll_timeout());
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
            .filter_map(|&s| self.slots.get(s as usize).and_then(Option::as_ref))
            .filter_map(|(_, c)| c.poll_timeout())
            .min();
        indexed.into_iter().chain(pending).min()
    }

    /// The calls with a deadline at or before `now`, earliest first.
    pub fn due(&mut self, now: Instant) -> Vec<CallKey> {
        self.reindex();
        self.deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, s)| self.slots.get(*s as usize).and_then(Option::as_ref))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The INVITE (transaction and request) each call is being answered on,
/// and the way back from a transaction to its call (a CANCEL names the
/// INVITE's transaction).
#[derive(Debug, Default)]
pub(super) struct InviteTable {
    by_call: HashMap<CallKey, (TxKey, rsip::Request)>,
    by_tx: HashMap<TxKey, CallKey>,
}

impl InviteTable {
    pub fn get(&self, ck: &CallKey) -> Option<&(TxKey, rsip::Request)> {
        self.by_call.get(ck)
    }

    /// `ck` is answered on `key` from now on (a re-INVITE replaces the
    /// initial INVITE).
    pub fn insert(&mut self, ck: CallKey, key: TxKey, req: rsip::Request) {
        self.by_tx.insert(key.clone(), ck.clone());
        if let Some((old, _)) = self.by_call.insert(ck, (key, req)) {
            self.by_tx.remove(&old);
        }
    }

    pub fn remove(&mut self, ck: &CallKey) {
        if let Some((key, _)) = self.by_call.remove(ck) {
            self.by_tx.remove(&key);
        }
    }

    /// The call whose INVITE transaction is `key`.
    pub fn call_of(&self, key: &TxKey) -> Option<&CallKey> {
        self.by_tx.get(key)
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
        for i in 0..20 {
            let ring = Duration::from_secs(10 + i);
            table.insert(
                key(&format!("c{i}")),
                ringing(&format!("c{i}"), &ports, ring, t0),
            );
        }
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(10)));
        table.reindex();
        assert_eq!(
            table.due(t0 + Duration::from_secs(5)),
            Vec::<CallKey>::new()
        );
        let due = table.due(t0 + Duration::from_secs(11));
        assert_eq!(due, vec![key("c0"), key("c1")]);
        // A call changed through get_mut is looked at again: its deadline
        // moves (here: it is answered, and nothing is due any more).
        table.get_mut(&key("c0")).unwrap().state = crate::call::CallState::Confirmed;
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(10)));
        table.reindex();
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(11)));
        // A removed call leaves no deadline behind, and its slot is reused.
        table.remove(&key("c1"));
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(12)));
        table.insert(key("n"), ringing("n", &ports, Duration::from_secs(1), t0));
        assert_eq!(table.len(), 20);
        assert_eq!(table.slots.len(), 20, "the freed slot was reused");
        assert_eq!(table.due(t0 + Duration::from_secs(2)), vec![key("n")]);
        assert_eq!(
            table.get(&key("n")).map(|c| c.number.as_str()),
            Some("1500")
        );
    }
}
