//! Rejoin in place (a queue's `rejoin_s`, as mod_callcenter's abandoned
//! resume): a caller who hangs up while waiting leaves its place (arrival
//! and order) behind under (queue, caller number) for `rejoin_s`; the same
//! number entering that queue again within it takes the place back, so it
//! is ranked as if it had never left. Later, it starts at the end.
//!
//! Plain data with an explicit `now`; the router keeps one behind a mutex
//! touched only for queues with `rejoin_s` set.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::CallId;

/// A place left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub arrival: Instant,
    pub seq: u64,
    /// Kept until then.
    pub until: Instant,
}

/// The waiting callers that may leave a place, and the places kept.
#[derive(Debug, Default)]
pub(crate) struct RejoinBook {
    /// Waiting callers of queues with `rejoin_s`: their queue and number.
    waiting: HashMap<CallId, (Arc<str>, Arc<str>)>,
    kept: HashMap<(Arc<str>, Arc<str>), Place>,
}

/// Whether a caller number can name a caller again: not empty, not one of
/// the words phones send for a hidden number.
pub(crate) fn usable_number(n: &str) -> bool {
    let n = n.trim();
    !(n.is_empty()
        || n.eq_ignore_ascii_case("anonymous")
        || n.eq_ignore_ascii_case("unknown")
        || n.eq_ignore_ascii_case("restricted"))
}

impl RejoinBook {
    /// `number` enters `queue` as `call`: the place it left there, if one
    /// is still kept (it is taken, not kept twice).
    pub(crate) fn arrive(
        &mut self,
        call: CallId,
        queue: &Arc<str>,
        number: &str,
        now: Instant,
    ) -> Option<Place> {
        let key = (queue.clone(), Arc::<str>::from(number));
        let place = self.kept.remove(&key).filter(|p| now < p.until);
        self.waiting.insert(call, key);
        place
    }

    /// `call` stops waiting without leaving a place (an agent took it, it
    /// was diverted).
    pub(crate) fn forget(&mut self, call: CallId) {
        self.waiting.remove(&call);
    }

    /// `call` hung up while waiting at (`arrival`, `seq`): its place is
    /// kept for `keep`.
    pub(crate) fn hung_up(
        &mut self,
        call: CallId,
        arrival: Instant,
        seq: u64,
        keep: Duration,
        now: Instant,
    ) {
        let Some(key) = self.waiting.remove(&call) else {
            return;
        };
        // Places whose time is over go first: the book holds only callers
        // who hung up within the longest `rejoin_s`.
        self.kept.retain(|_, p| now < p.until);
        if let Some(until) = now.checked_add(keep) {
            self.kept.insert(
                key,
                Place {
                    arrival,
                    seq,
                    until,
                },
            );
        }
    }

    /// Places kept now (for tests and the book's bound).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_taken_back_within_the_time_and_not_after() {
        let t0 = Instant::now();
        let q: Arc<str> = Arc::from("support");
        let mut b = RejoinBook::default();
        assert_eq!(b.arrive(CallId(1), &q, "555", t0), None);
        b.hung_up(
            CallId(1),
            t0,
            7,
            Duration::from_secs(60),
            t0 + Duration::from_secs(10),
        );
        let back = b.arrive(CallId(2), &q, "555", t0 + Duration::from_secs(69));
        assert_eq!(back.map(|p| (p.arrival, p.seq)), Some((t0, 7)));
        // Taken once: hanging up again keeps the same place again.
        b.hung_up(
            CallId(2),
            t0,
            7,
            Duration::from_secs(60),
            t0 + Duration::from_secs(70),
        );
        assert_eq!(
            b.arrive(CallId(3), &q, "555", t0 + Duration::from_secs(131)),
            None
        );
    }

    #[test]
    fn another_number_or_queue_does_not_take_the_place_and_old_places_go() {
        let t0 = Instant::now();
        let (q, r): (Arc<str>, Arc<str>) = (Arc::from("q"), Arc::from("r"));
        let mut b = RejoinBook::default();
        b.arrive(CallId(1), &q, "555", t0);
        b.hung_up(CallId(1), t0, 1, Duration::from_secs(30), t0);
        assert_eq!(b.arrive(CallId(2), &q, "556", t0), None);
        assert_eq!(b.arrive(CallId(3), &r, "555", t0), None);
        b.forget(CallId(2));
        b.forget(CallId(3));
        b.arrive(CallId(4), &q, "557", t0);
        b.hung_up(
            CallId(4),
            t0,
            2,
            Duration::from_secs(30),
            t0 + Duration::from_secs(31),
        );
        assert_eq!(b.kept(), 1, "555's place expired when 557's was kept");
        assert!(usable_number("+6281"));
        assert!(!usable_number("Anonymous") && !usable_number(" "));
    }
}
