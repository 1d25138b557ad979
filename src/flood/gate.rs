//! The flood gate the socket readers ask before a message is parsed:
//! allow-listed networks pass under a shared read lock only; any other
//! source goes through the [`Pike`] table. Both are replaced by a reload
//! ([`FloodGate::reconfigure`]). Counters for `/metrics`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::pike::{Pike, PikeConfig, Verdict};
use crate::registrar::Network;

#[derive(Debug, Default)]
pub struct FloodStats {
    /// Messages dropped unread because their source was blocked.
    pub dropped: AtomicU64,
    /// Times a source was blocked.
    pub blocks: AtomicU64,
    /// Times a blocked source went over the limit again, so its block
    /// started again.
    pub extended: AtomicU64,
}

#[derive(Debug)]
pub struct FloodGate {
    allow: RwLock<Arc<[Network]>>,
    pike: Mutex<Pike>,
    pub stats: FloodStats,
}

impl FloodGate {
    pub fn new(cfg: PikeConfig, allow: Vec<Network>) -> FloodGate {
        FloodGate {
            allow: RwLock::new(allow.into()),
            pike: Mutex::new(Pike::new(cfg)),
            stats: FloodStats::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pike> {
        self.pike.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn allowed(&self, ip: IpAddr) -> bool {
        let allow = self.allow.read().unwrap_or_else(|e| e.into_inner());
        allow.iter().any(|n| n.contains(ip))
    }

    /// Takes a reload's limits and allow list. Blocks in force stay (a
    /// source now allow-listed is let through at once).
    pub fn reconfigure(&self, cfg: PikeConfig, allow: Vec<Network>) {
        *self.allow.write().unwrap_or_else(|e| e.into_inner()) = allow.into();
        self.lock().set_config(cfg);
    }

    /// The limits in force.
    pub fn config(&self) -> PikeConfig {
        self.lock().config()
    }

    /// Whether a message from `ip` arriving at `now` may be read.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        if self.allowed(ip) {
            return true;
        }
        match self.lock().check(ip, now) {
            Verdict::Pass => true,
            Verdict::NowBlocked => {
                self.stats.blocks.fetch_add(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %ip, "request flood: source blocked");
                false
            }
            Verdict::Extended => {
                self.stats.extended.fetch_add(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Verdict::Drop => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether `ip` is blocked at `now` (TCP accepts ask this).
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        !self.allowed(ip) && self.lock().is_blocked(ip, now)
    }

    pub fn blocked(&self, now: Instant) -> Vec<(IpAddr, Duration)> {
        self.lock().blocked(now)
    }

    /// Forgets quiet sources (the metrics scrape calls it: with no traffic
    /// from outside the allow list, nothing else would).
    pub fn prune(&self, now: Instant) {
        self.lock().prune(now);
    }

    pub fn unblock(&self, ip: IpAddr, now: Instant) -> bool {
        self.lock().unblock(ip, now)
    }

    /// Sources in the table (memory checks).
    pub fn tracked(&self) -> usize {
        self.lock().tracked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_listed_networks_are_never_blocked_and_others_are_counted() {
        let cfg = PikeConfig {
            window: Duration::from_secs(2),
            max_requests: 2,
            block: Duration::from_secs(5),
        };
        let g = FloodGate::new(cfg, vec![Network::parse("127.0.0.0/8").unwrap()]);
        let now = Instant::now();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let out: IpAddr = "192.0.2.3".parse().unwrap();
        assert!((0..100).all(|_| g.admit(lo, now)));
        assert!(g.admit(out, now) && g.admit(out, now));
        assert!(!g.admit(out, now));
        assert!(!g.admit(out, now));
        assert!(g.is_blocked(out, now));
        assert_eq!(g.stats.blocks.load(Ordering::Relaxed), 1);
        assert_eq!(g.stats.dropped.load(Ordering::Relaxed), 2);
        assert!(g.unblock(out, now));
        assert!(g.admit(out, now));
    }

    #[test]
    fn a_reload_changes_the_limits_and_the_allow_list() {
        let cfg = PikeConfig {
            window: Duration::from_secs(2),
            max_requests: 100,
            block: Duration::from_secs(5),
        };
        let g = FloodGate::new(cfg, vec![]);
        let now = Instant::now();
        let a: IpAddr = "192.0.2.3".parse().unwrap();
        assert!((0..50).all(|_| g.admit(a, now)));
        let tighter = PikeConfig {
            max_requests: 10,
            ..cfg
        };
        g.reconfigure(tighter, vec![]);
        assert_eq!(g.config(), tighter);
        assert!(!g.admit(a, now), "over the new limit at once");
        assert!(g.is_blocked(a, now));
        g.reconfigure(tighter, vec![Network::parse("192.0.2.0/24").unwrap()]);
        assert!(g.admit(a, now), "allow-listed by the reload");
        assert!(!g.is_blocked(a, now));
    }
}
