//! The bound on server transactions of all shards together. Each request
//! sipacd answers lives on as a server transaction (32 s over UDP, timer
//! J), so a flood of requests from many sources, each under its per-source
//! limits, could otherwise grow the tables without end. Over the bound a
//! new request is answered statelessly (503 with Retry-After, no
//! transaction, no retransmission) and counted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shared by every shard's transaction layer (behind an `Arc`).
#[derive(Debug)]
pub struct TxBudget {
    /// Server transactions alive now, on all shards.
    live: AtomicUsize,
    /// At most this many (`max_transactions`; a reload changes it).
    cap: AtomicUsize,
    /// Requests answered 503 because the bound was reached.
    pub refused: AtomicU64,
    /// New INVITEs answered 503 because the daemon was behind
    /// (`TransactionLayer::set_behind`).
    pub shed: AtomicU64,
}

impl Default for TxBudget {
    /// No bound (tests, tools).
    fn default() -> Self {
        TxBudget::new(usize::MAX)
    }
}

impl TxBudget {
    pub fn new(cap: usize) -> TxBudget {
        TxBudget {
            live: AtomicUsize::new(0),
            cap: AtomicUsize::new(cap),
            refused: AtomicU64::new(0),
            shed: AtomicU64::new(0),
        }
    }

    /// Takes a place for one new server transaction; false (and counted)
    /// when all are taken. A lost race may go over by one per shard.
    pub fn try_take(&self) -> bool {
        let cap = self.cap.load(Ordering::Relaxed);
        if self.live.load(Ordering::Relaxed) >= cap {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Gives `n` places back (transactions ended).
    pub fn release(&self, n: usize) {
        let _ = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    pub fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    /// Server transactions alive now, on all shards.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_cap_counted_over_it_and_given_back() {
        let b = TxBudget::new(2);
        assert!(b.try_take() && b.try_take());
        assert!(!b.try_take());
        assert_eq!(b.refused.load(Ordering::Relaxed), 1);
        b.release(1);
        assert!(b.try_take());
        b.set_cap(5);
        assert!(b.try_take());
        assert_eq!(b.live(), 3);
        b.release(10);
        assert_eq!(b.live(), 0, "never below zero");
    }
}
