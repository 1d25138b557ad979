//! RTP/RTCP port pairs from `server.rtp_ports`.
//!
//! A pair is an even RTP port and the odd RTCP port above it (RFC 3550
//! §11). A pair is never handed out twice while in use; it returns to the
//! pool when its lease is dropped, so a leg that ends for any reason (BYE,
//! timeout, a panicking task) gives its ports back.
//!
//! A pair given back is handed out again first, once it has rested for
//! [`REUSE_AFTER`] (late packets of its last call have stopped): the media
//! task keeps such pairs' sockets open, so reusing them saves binding new
//! ones. Otherwise the pool walks the range from a cursor.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a released pair rests before it is preferred again.
pub const REUSE_AFTER: Duration = Duration::from_secs(1);

/// An RTP port and its RTCP companion (`rtp + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortPair {
    pub rtp: u16,
}

impl PortPair {
    pub fn rtcp(self) -> u16 {
        self.rtp.saturating_add(1)
    }
}

#[derive(Debug)]
struct PoolState {
    free: BTreeSet<u16>,
    /// Where the next allocation starts: rotating through the range keeps a
    /// just-freed port idle for a while, so late packets of an old call do
    /// not land in a new one.
    cursor: u16,
    /// Released pairs, oldest first, with when (an entry is stale if the
    /// pair was taken again or released again since: `released` says).
    recycled: VecDeque<(u16, Instant)>,
    released: HashMap<u16, Instant>,
    reuse_after: Duration,
    /// Pairs the probe found taken, and when that was last logged.
    in_use_skips: u64,
    in_use_logged: Option<Instant>,
}

/// At most one warning per this long for pairs found taken: under load a
/// pair whose call just ended may still be closing, and a line per skip
/// flooded the log (16,925 lines in one bench run).
const IN_USE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Tries whether a pair can be bound now (another process may hold a port
/// of the range, or the process may be out of file descriptors). The
/// daemon sets one; sans-IO tests run without.
pub type Probe = Arc<dyn Fn(PortPair) -> std::io::Result<()> + Send + Sync>;

/// Whether `e` says the process (EMFILE) or the system (ENFILE) has no
/// file descriptor left, as opposed to a port being taken.
pub fn out_of_fds(e: &std::io::Error) -> bool {
    // Linux errno values; elsewhere the message still names the error.
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// Shared pool of port pairs. Cloning shares the same pool.
#[derive(Clone)]
pub struct PortPool {
    state: Arc<Mutex<PoolState>>,
    probe: Option<Probe>,
}

impl std::fmt::Debug for PortPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortPool")
            .field("state", &self.state)
            .field("probe", &self.probe.is_some())
            .finish()
    }
}

impl PortPool {
    /// Every even port `p` in the range with `p + 1` also in it.
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let (lo, hi) = (*range.start(), *range.end());
        let first = lo + (lo % 2);
        let free: BTreeSet<u16> = (first..hi)
            .step_by(2)
            .filter(|p| p.checked_add(1).is_some_and(|q| q <= hi))
            .collect();
        PortPool {
            state: Arc::new(Mutex::new(PoolState {
                free,
                cursor: first,
                recycled: VecDeque::new(),
                released: HashMap::new(),
                reuse_after: REUSE_AFTER,
                in_use_skips: 0,
                in_use_logged: None,
            })),
            probe: None,
        }
    }

    /// The same, skipping pairs `probe` finds taken (by another process):
    /// a caller is never answered with a port sipacd cannot bind.
    pub fn with_probe(range: RangeInclusive<u16>, probe: Probe) -> Self {
        PortPool {
            probe: Some(probe),
            ..PortPool::new(range)
        }
    }

    /// Leases a pair, or `None` when the range is exhausted (the caller
    /// answers 503 rather than failing). A pair the probe finds taken goes
    /// back to the pool behind the cursor (tried again a round later).
    pub fn allocate(&self) -> Option<PortLease> {
        let tries = self.available();
        for _ in 0..=tries {
            let lease = self.take_next()?;
            let Some(probe) = &self.probe else {
                return Some(lease);
            };
            match probe(lease.pair) {
                Ok(()) => return Some(lease),
                // Every other pair would fail alike: stop trying.
                Err(e) if out_of_fds(&e) => {
                    tracing::warn!(
                        port = lease.pair.rtp,
                        error = %e,
                        "cannot open RTP sockets: out of file descriptors (raise the open-file limit)"
                    );
                    return None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    self.note_in_use(lease.pair.rtp);
                }
                Err(e) => {
                    tracing::warn!(port = lease.pair.rtp, error = %e, "RTP port pair cannot be bound: skipped");
                }
            }
        }
        None
    }

    /// Counts a pair found taken; warns about it at most once per
    /// [`IN_USE_LOG_EVERY`], with how many were skipped in all.
    fn note_in_use(&self, port: u16) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.in_use_skips += 1;
        let now = Instant::now();
        if st
            .in_use_logged
            .is_some_and(|at| now.duration_since(at) < IN_USE_LOG_EVERY)
        {
            tracing::debug!(port, "RTP port pair in use: skipped");
            return;
        }
        st.in_use_logged = Some(now);
        tracing::warn!(
            port,
            skipped = st.in_use_skips,
            "RTP port pair in use by another process: skipped (logged at most once a minute; skipped counts them all)"
        );
    }

    /// Pairs the probe has found taken since start.
    #[cfg(test)]
    fn in_use_skips(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_use_skips
    }

    /// How long a released pair rests before it is preferred (tests).
    pub fn with_reuse_after(self, rest: Duration) -> Self {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reuse_after = rest;
        self
    }

    fn take_next(&self) -> Option<PortLease> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let port = match st.rested(Instant::now()) {
            Some(p) => p,
            None => {
                let p = st
                    .free
                    .range(st.cursor..)
                    .next()
                    .or_else(|| st.free.iter().next())
                    .copied()?;
                st.cursor = p.wrapping_add(2);
                p
            }
        };
        st.free.remove(&port);
        st.released.remove(&port);
        Some(PortLease {
            pair: PortPair { rtp: port },
            pool: self.clone(),
        })
    }

    /// Pairs currently free.
    pub fn available(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .len()
    }

    fn release(&self, pair: PortPair) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.free.insert(pair.rtp);
        st.released.insert(pair.rtp, now);
        st.recycled.push_back((pair.rtp, now));
    }
}

impl PoolState {
    /// The oldest released pair that has rested long enough and is still
    /// free, dropping stale entries on the way.
    fn rested(&mut self, now: Instant) -> Option<u16> {
        while let Some(&(port, at)) = self.recycled.front() {
            let current = self.released.get(&port) == Some(&at) && self.free.contains(&port);
            if !current {
                self.recycled.pop_front();
                continue;
            }
            if now.saturating_duration_since(at) < self.reuse_after {
                return None;
            }
            self.recycled.pop_front();
            return Some(port);
        }
        None
    }
}

/// A pair in use; returned to the pool on drop.
#[derive(Debug)]
pub struct PortLease {
    pair: PortPair,
    pool: PortPool,
}

impl PortLease {
    pub fn pair(&self) -> PortPair {
        self.pair
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.release(self.pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_released_pair_is_handed_out_again_first_once_rested() {
        let pool = PortPool::new(20000..=20009).with_reuse_after(Duration::ZERO);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!((a.pair().rtp, b.pair().rtp), (20000, 20002));
        drop(b);
        drop(a);
        // Oldest released first, not the cursor's 20004.
        let c = pool.allocate().unwrap();
        assert_eq!(c.pair().rtp, 20002);
        let d = pool.allocate().unwrap();
        assert_eq!(d.pair().rtp, 20000);
        // Nothing rested left: the cursor goes on.
        assert_eq!(pool.allocate().unwrap().pair().rtp, 20004);
    }

    #[test]
    fn a_pair_that_has_not_rested_is_not_preferred() {
        let pool = PortPool::new(20000..=20009).with_reuse_after(Duration::from_secs(3600));
        drop(pool.allocate().unwrap());
        assert_eq!(pool.allocate().unwrap().pair().rtp, 20002, "20000 rests");
    }

    #[test]
    fn pairs_the_probe_finds_taken_are_skipped_and_kept() {
        let taken = Arc::new(Mutex::new(HashSet::from([20000u16])));
        let t = taken.clone();
        let probe: Probe = Arc::new(move |p| match t.lock().unwrap().contains(&p.rtp) {
            true => Err(std::io::ErrorKind::AddrInUse.into()),
            false => Ok(()),
        });
        let pool = PortPool::with_probe(20000..=20005, probe);
        let a = pool.allocate().unwrap();
        assert_eq!(a.pair().rtp, 20002, "20000 is taken: skipped");
        assert_eq!(pool.available(), 2, "the taken pair stays in the pool");
        let b = pool.allocate().unwrap();
        assert_eq!(b.pair().rtp, 20004);
        // Only the taken pair is left: no lease while it stays taken...
        assert!(pool.allocate().is_none());
        // (every skip counted, though only the first is logged)
        assert!(pool.in_use_skips() >= 2, "{}", pool.in_use_skips());
        // ...and it is handed out once its squatter is gone.
        taken.lock().unwrap().clear();
        assert_eq!(pool.allocate().unwrap().pair().rtp, 20000);
    }

    #[test]
    fn out_of_file_descriptors_is_not_taken_for_a_busy_port() {
        let calls = Arc::new(Mutex::new(0u32));
        let c = calls.clone();
        let probe: Probe = Arc::new(move |_| {
            *c.lock().unwrap() += 1;
            Err(std::io::Error::from_raw_os_error(24))
        });
        let pool = PortPool::with_probe(20000..=20009, probe);
        assert!(pool.allocate().is_none());
        assert_eq!(*calls.lock().unwrap(), 1, "no use trying every other pair");
        assert_eq!(pool.available(), 5, "nothing lost from the pool");
        assert!(out_of_fds(&std::io::Error::from_raw_os_error(23)));
        assert!(!out_of_fds(&std::io::ErrorKind::AddrInUse.into()));
    }

    #[test]
    fn pairs_are_even_and_inside_the_range() {
        let pool = PortPool::new(20001..=20010);
        assert_eq!(pool.available(), 4); // 20002,20004,20006,20008 (20010 has no 20011)
        let lease = pool.allocate().unwrap();
        assert_eq!(lease.pair().rtp % 2, 0);
        assert_eq!(lease.pair().rtcp(), lease.pair().rtp + 1);
    }

    #[test]
    fn never_handed_out_twice_and_exhaustion_is_none() {
        let pool = PortPool::new(30000..=30007);
        let leases: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(leases.len(), 4);
        let distinct: HashSet<_> = leases.iter().map(|l| l.pair()).collect();
        assert_eq!(distinct.len(), 4);
        assert!(pool.allocate().is_none());
        drop(leases);
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn released_port_is_not_reused_first() {
        let pool = PortPool::new(40000..=40009);
        let a = pool.allocate().unwrap().pair();
        let b = pool.allocate().unwrap();
        assert_ne!(a, b.pair());
        // `a` was released when its lease dropped; the cursor moves on.
        let c = pool.allocate().unwrap();
        assert_ne!(c.pair(), a);
    }
}
