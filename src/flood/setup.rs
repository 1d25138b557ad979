//! Calls in setup per source: INVITEs taken as calls and not yet
//! confirmed by the caller's ACK (or ended). One source that never ACKs
//! would otherwise hold every call slot (and its RTP ports) for the 32 s
//! an un-ACKed answer lives. Shared by every shard behind one small lock,
//! touched once per call step.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::registrar::source_key;

#[derive(Debug, Default)]
pub struct SetupCounts {
    by_source: Mutex<HashMap<IpAddr, u32>>,
    /// INVITEs answered 503 because their source was at its cap.
    pub refused: AtomicU64,
}

impl SetupCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.by_source.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a setup place for `ip` unless it holds `cap` already
    /// (0: no cap). The caller gives it back with [`SetupCounts::release`].
    pub fn try_take(&self, ip: IpAddr, cap: usize) -> bool {
        let key = source_key(ip);
        let mut m = self.lock();
        let n = m.entry(key).or_insert(0);
        if cap > 0 && *n as usize >= cap {
            if *n == 0 {
                m.remove(&key);
            }
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *n = n.saturating_add(1);
        true
    }

    /// A call from `ip` left setup (confirmed or ended).
    pub fn release(&self, ip: IpAddr) {
        let key = source_key(ip);
        let mut m = self.lock();
        if let Some(n) = m.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&key);
            }
        }
        if m.is_empty() && m.capacity() > 1024 {
            m.shrink_to_fit();
        }
    }

    /// Calls in setup from `ip`.
    pub fn of(&self, ip: IpAddr) -> u32 {
        self.lock().get(&source_key(ip)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_at_most_cap_places_and_each_release_frees_one() {
        let s = SetupCounts::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(s.try_take(a, 2));
        assert!(s.try_take(a, 2));
        assert!(!s.try_take(a, 2));
        assert!(s.try_take(b, 2), "another source is not touched");
        s.release(a);
        assert!(s.try_take(a, 2));
        assert_eq!(s.refused.load(Ordering::Relaxed), 1);
        for _ in 0..3 {
            s.release(a);
        }
        assert_eq!(s.of(a), 0);
        assert!(s.try_take(a, 0), "0: no cap");
    }
}
