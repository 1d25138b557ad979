//! The flood gate the socket readers ask before a message is parsed:
//! allow-listed networks pass without a lock; any other source goes
//! through the [`Pike`] table. Counters for `/metrics`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::pike::{Pike, PikeConfig, Verdict};
use crate::registrar::Network;

#[derive(Debug, Default)]
pub struct FloodStats {
    /// Messages dropped unread because their source was blocked.
    pub dropped: AtomicU64,
    /// Times a source was blocked.
    pub blocks: AtomicU64,
}

#[derive(Debug)]
pub struct FloodGate {
    allow: Vec<Network>,
    pike: Mutex<Pike>,
    pub stats: FloodStats,
}

impl FloodGate {
    pub fn new(cfg: PikeConfig, allow: Vec<Network>) -> FloodGate {
        FloodGate {
            allow,
            pike: Mutex::new(Pike::new(cfg)),
            stats: FloodStats::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pike> {
        self.pike.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(ip))
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
}
