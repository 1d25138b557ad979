//! RFC 3261 §17 timers as data: an enum of timer kinds and a small table of
//! deadlines per transaction. The layer sleeps until the earliest deadline;
//! nothing here reads a clock.

use std::time::{Duration, Instant};

/// The transaction timers of RFC 3261 §17 (table 4), plus `L` from RFC 6026
/// (how long an INVITE server transaction lingers after a 2xx so that
/// retransmitted INVITEs are absorbed instead of starting a second call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// Client INVITE retransmission (unreliable only), doubles without cap.
    A,
    /// Client INVITE timeout, 64*T1.
    B,
    /// Client INVITE wait for response retransmissions, 32 s (0 on TCP).
    D,
    /// Client non-INVITE retransmission (unreliable only), capped at T2.
    E,
    /// Client non-INVITE timeout, 64*T1.
    F,
    /// Server INVITE final-response retransmission (unreliable only).
    G,
    /// Server INVITE wait for ACK, 64*T1.
    H,
    /// Server INVITE wait for ACK retransmissions, T4 (0 on TCP).
    I,
    /// Server non-INVITE wait for request retransmissions, 64*T1 (0 on TCP).
    J,
    /// Client non-INVITE wait for response retransmissions, T4 (0 on TCP).
    K,
    /// RFC 6026: server INVITE "Accepted" state after a 2xx, 64*T1.
    L,
}

impl TimerKind {
    const COUNT: usize = 11;
    const ALL: [TimerKind; Self::COUNT] = [
        TimerKind::A,
        TimerKind::B,
        TimerKind::D,
        TimerKind::E,
        TimerKind::F,
        TimerKind::G,
        TimerKind::H,
        TimerKind::I,
        TimerKind::J,
        TimerKind::K,
        TimerKind::L,
    ];
}

/// RFC 3261 timer base values.
pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);
/// Timer D over unreliable transports ("at least 32 seconds").
pub const TIMER_D: Duration = Duration::from_secs(32);

/// The three knobs every other timer derives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: T1,
            t2: T2,
            t4: T4,
        }
    }
}

impl TimerConfig {
    /// 64*T1: timers B, F, H, J (unreliable) and L.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Deadlines of one transaction, indexed by [`TimerKind`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimerTable {
    data: [Option<Instant>; TimerKind::COUNT],
}

impl TimerTable {
    pub fn set(&mut self, kind: TimerKind, at: Instant) {
        if let Some(slot) = self.data.get_mut(kind as usize) {
            *slot = Some(at);
        }
    }

    pub fn stop(&mut self, kind: TimerKind) {
        if let Some(slot) = self.data.get_mut(kind as usize) {
            *slot = None;
        }
    }

    pub fn get(&self, kind: TimerKind) -> Option<Instant> {
        self.data.get(kind as usize).copied().flatten()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().filter_map(|&x| x).min()
    }

    /// Timers due at `now`, with their deadlines.
    pub fn expired(&self, now: Instant) -> impl Iterator<Item = (Instant, TimerKind)> + '_ {
        TimerKind::ALL
            .iter()
            .filter_map(move |&k| self.get(k).filter(|&at| at <= now).map(|at| (at, k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_tracks_earliest_and_expired() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(TimerKind::H, t0 + Duration::from_secs(32));
        t.set(TimerKind::G, t0 + Duration::from_millis(500));
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_millis(500)));
        let due: Vec<_> = t.expired(t0 + Duration::from_secs(1)).collect();
        assert_eq!(due, vec![(t0 + Duration::from_millis(500), TimerKind::G)]);
        t.stop(TimerKind::G);
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_secs(32)));
    }
}
