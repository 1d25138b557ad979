//! Retransmission of 2xx responses to INVITE until the ACK arrives
//! (RFC 3261 §13.3.1.4). Sans-IO, same poll/handle pattern as the layer.
//!
//! Entries are keyed by Call-ID + CSeq number, which an ACK for the 2xx
//! repeats. Retransmissions happen on every transport: the 2xx travels
//! end to end and a later hop may be UDP. Each entry's next instant (a
//! retransmission or giving up) is one entry of a deadline table, so a
//! turn visits only the 2xx responses that have something due.

use ahash::AHashMap as HashMap;
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Request, Response};

use super::timers::TimerConfig;
use super::{Transmit, TxError, Wire};
use crate::sip::Peer;

/// What the retransmitter reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uas2xxEvent {
    /// 64*T1 passed without an ACK: the dialog is confirmed but the session
    /// should be torn down with BYE (RFC 3261 §13.3.1.4). `tag` is the 2xx's
    /// To tag (ours), which with the Call-ID names the dialog.
    AckTimeout {
        call_id: String,
        cseq: u32,
        tag: Option<String>,
    },
}

/// The Call-ID and CSeq number an ACK matches its 2xx by. The number is
/// read as `message::peek_request` reads it (any LWS before the method):
/// rsip's typed CSeq refuses a tab there, which left such an ACK
/// unmatched and its call hung up at the 2xx's timeout.
pub(crate) fn ack_ids(ack: &Request) -> Option<(&str, u32)> {
    let call_id = ack.call_id_header().ok()?;
    Some((call_id.value(), crate::sip::headers::cseq(ack)?.0))
}

#[derive(Debug)]
struct Entry {
    key: (String, u32),
    tag: Option<String>,
    wire: Wire,
    to: Peer,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

impl Entry {
    /// When it next has something to do.
    fn due(&self) -> Instant {
        self.next.min(self.give_up)
    }
}

#[derive(Debug)]
pub struct Uas2xxRetransmitter {
    cfg: TimerConfig,
    entries: HashMap<u64, Entry>,
    by_key: HashMap<(String, u32), u64>,
    /// Entries of each Call-ID (usually one), for [`Self::stop`].
    by_call: HashMap<String, Vec<u64>>,
    /// (due, entry) of every entry.
    deadlines: BTreeSet<(Instant, u64)>,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Uas2xxEvent>,
    /// Entries looked at by `handle_timeout` so far (tests: a turn with
    /// nothing due looks at none).
    visited: u64,
}

impl Uas2xxRetransmitter {
    pub fn new(cfg: TimerConfig) -> Self {
        Uas2xxRetransmitter {
            cfg,
            entries: HashMap::new(),
            by_key: HashMap::new(),
            by_call: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            visited: 0,
        }
    }

    /// Schedule retransmissions of `resp`, which the caller has just sent
    /// once. A second `start` for the same Call-ID/CSeq replaces the first.
    /// `wire` is `resp` as it was sent.
    pub fn start(
        &mut self,
        resp: &Response,
        wire: Wire,
        to: Peer,
        now: Instant,
    ) -> Result<(), TxError> {
        let call_id = resp.call_id_header()?.value().to_string();
        let cseq = resp.cseq_header()?.typed()?.seq;
        let key = (call_id, cseq);
        if let Some(old) = self.by_key.get(&key).copied() {
            self.remove(old);
        }
        let id = self.next_id;
        self.next_id += 1;
        let entry = Entry {
            key: key.clone(),
            tag: crate::sip::headers::to_tag(resp),
            wire,
            to,
            next: now + self.cfg.t1,
            interval: self.cfg.t1,
            give_up: now + self.cfg.t1x64(),
        };
        self.deadlines.insert((entry.due(), id));
        self.by_call.entry(key.0.clone()).or_default().push(id);
        self.by_key.insert(key, id);
        self.entries.insert(id, entry);
        Ok(())
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        self.deadlines.remove(&(e.due(), id));
        self.by_key.remove(&e.key);
        if let Some(ids) = self.by_call.get_mut(&e.key.0) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_call.remove(&e.key.0);
            }
        }
        Some(e)
    }

    /// Stop retransmitting for this ACK. Returns whether it matched.
    pub fn on_ack(&mut self, ack: &Request) -> bool {
        ack_ids(ack).is_some_and(|(call_id, cseq)| self.on_ack_ids(call_id, cseq))
    }

    /// [`Self::on_ack`] for an ACK known by its Call-ID and CSeq number.
    pub fn on_ack_ids(&mut self, call_id: &str, cseq: u32) -> bool {
        let key = (call_id.to_string(), cseq);
        match self.by_key.get(&key).copied() {
            Some(id) => self.remove(id).is_some(),
            None => false,
        }
    }

    /// Forget every entry of a call (e.g. it was torn down).
    pub fn stop(&mut self, call_id: &str) {
        for id in self.by_call.remove(call_id).unwrap_or_default() {
            self.remove(id);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let t2 = self.cfg.t2;
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.visited += 1;
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            if e.give_up <= now {
                if let Some(e) = self.remove(id) {
                    self.events.push_back(Uas2xxEvent::AckTimeout {
                        call_id: e.key.0,
                        cseq: e.key.1,
                        tag: e.tag,
                    });
                }
                continue;
            }
            self.transmits.push_back(Transmit {
                to: e.to,
                wire: e.wire.clone(),
            });
            e.interval = (e.interval * 2).min(t2);
            e.next = now + e.interval;
            self.deadlines.insert((e.due(), id));
        }
    }

    /// Entries looked at by `handle_timeout` so far.
    pub fn visited(&self) -> u64 {
        self.visited
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Uas2xxEvent> {
        self.events.pop_front()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(call_id: &str, tag: &str) -> Response {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{call_id}\r\n\
             From: <sip:a@10.0.0.1>;tag=f\r\nTo: <sip:b@10.0.0.2>;tag={tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        match crate::sip::message::parse(text.as_bytes()) {
            Ok(rsip::SipMessage::Response(r)) => r,
            other => panic!("test 200 does not parse: {other:?}"),
        }
    }

    fn peer() -> Peer {
        Peer::udp("10.0.0.1:5060".parse().unwrap())
    }

    #[test]
    fn a_turn_visits_only_the_responses_that_are_due() {
        let t0 = Instant::now();
        let cfg = TimerConfig::default();
        let mut r = Uas2xxRetransmitter::new(cfg);
        // 50 answered calls, one every 100 ms: each resends T1 after its
        // start (c3 at T1 + 300 ms).
        for i in 0..50u64 {
            let at = t0 + Duration::from_millis(100 * i);
            let resp = ok(&format!("c{i}"), &format!("t{i}"));
            r.start(&resp, Wire::from(resp.clone()), peer(), at)
                .unwrap();
        }
        assert_eq!(r.poll_timeout(), Some(t0 + cfg.t1));
        // Nothing due: nothing looked at.
        r.handle_timeout(t0 + cfg.t1 - Duration::from_millis(1));
        assert_eq!(r.visited(), 0);
        assert!(r.poll_transmit().is_none());
        // At T1 exactly the first is due: one visited, one resent.
        r.handle_timeout(t0 + cfg.t1);
        assert_eq!(r.visited(), 1);
        assert!(r.poll_transmit().is_some());
        assert!(r.poll_transmit().is_none());
        // An ACKed or stopped call is never visited again.
        r.stop("c1");
        r.stop("c2");
        assert_eq!(r.len(), 48);
        r.handle_timeout(t0 + cfg.t1 + Duration::from_millis(300));
        assert_eq!(r.visited(), 2, "only c3 was due");
        // At 64*T1 after its start the first gives up, with its To tag.
        let mut end = t0 + cfg.t1x64();
        r.handle_timeout(end);
        let ev = r.poll_event();
        assert_eq!(
            ev,
            Some(Uas2xxEvent::AckTimeout {
                call_id: "c0".into(),
                cseq: 1,
                tag: Some("t0".into()),
            })
        );
        // All give up in the end, and nothing is left to visit.
        end += Duration::from_secs(10);
        r.handle_timeout(end);
        assert!(r.is_empty());
        assert_eq!(r.poll_timeout(), None);
        let before = r.visited();
        r.handle_timeout(end + Duration::from_secs(60));
        assert_eq!(r.visited(), before);
    }
}
