//! A request-density limiter per source address, in the spirit of
//! Kamailio's pike module, sans-IO: a source and `now` go in, "pass" or
//! "drop" comes out.
//!
//! Each source (an IPv4 address, or an IPv6 /64) may send `max_requests`
//! messages per `window`; the message that goes over it gets the source
//! blocked for `block`, and every message from a blocked source is dropped
//! unread until the block ends. The table is bounded: idle entries are
//! forgotten every window, and when it is full of live ones the oldest
//! unblocked tenth goes (a flood of spoofed sources costs at most
//! [`MAX_SOURCES`] entries); after a flood its room is given back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::registrar::source_key;

/// Sources tracked at once; each entry is a few dozen bytes.
pub const MAX_SOURCES: usize = 100_000;

/// The limits (`pike_*` keys of `[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PikeConfig {
    /// The sampling window.
    pub window: Duration,
    /// Messages per window from one source; 0 turns the limit off.
    pub max_requests: u32,
    /// How long a source that went over stays blocked.
    pub block: Duration,
}

impl Default for PikeConfig {
    fn default() -> Self {
        PikeConfig {
            window: Duration::from_secs(2),
            max_requests: 100,
            block: Duration::from_secs(60),
        }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// This message got its source blocked (drop it too).
    NowBlocked,
    /// The source is blocked: drop the message.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
    last_seen: Instant,
}

/// The per-source table.
#[derive(Debug)]
pub struct Pike {
    cfg: PikeConfig,
    sources: HashMap<IpAddr, Entry>,
    next_prune: Option<Instant>,
}

impl Pike {
    pub fn new(cfg: PikeConfig) -> Pike {
        Pike {
            cfg,
            sources: HashMap::new(),
            next_prune: None,
        }
    }

    pub fn config(&self) -> PikeConfig {
        self.cfg
    }

    /// One message from `ip` at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.cfg.max_requests == 0 {
            return Verdict::Pass;
        }
        if self.next_prune.is_none_or(|at| now >= at) {
            self.prune(now);
        }
        let key = source_key(ip);
        if !self.sources.contains_key(&key) && self.sources.len() >= MAX_SOURCES {
            self.evict_oldest(now);
        }
        let cfg = self.cfg;
        let e = self.sources.entry(key).or_insert(Entry {
            window_start: now,
            count: 0,
            blocked_until: None,
            last_seen: now,
        });
        e.last_seen = now;
        if let Some(until) = e.blocked_until {
            if now < until {
                return Verdict::Drop;
            }
            e.blocked_until = None;
            e.count = 0;
            e.window_start = now;
        }
        if now.saturating_duration_since(e.window_start) >= cfg.window {
            e.count = 0;
            e.window_start = now;
        }
        e.count = e.count.saturating_add(1);
        if e.count <= cfg.max_requests {
            return Verdict::Pass;
        }
        e.blocked_until = now.checked_add(cfg.block);
        Verdict::NowBlocked
    }

    /// Sources blocked at `now`, with the time each has left.
    pub fn blocked(&self, now: Instant) -> Vec<(IpAddr, Duration)> {
        let mut out: Vec<(IpAddr, Duration)> = self
            .sources
            .iter()
            .filter_map(|(ip, e)| {
                let left = e.blocked_until?.saturating_duration_since(now);
                (!left.is_zero()).then_some((*ip, left))
            })
            .collect();
        out.sort();
        out
    }

    /// Whether `ip` is blocked at `now`.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&source_key(ip))
            .and_then(|e| e.blocked_until)
            .is_some_and(|u| u > now)
    }

    /// Lifts the block on `ip` (its /64 for IPv6); false if it had none.
    pub fn unblock(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.sources.get_mut(&source_key(ip)) {
            Some(e) if e.blocked_until.is_some_and(|u| u > now) => {
                e.blocked_until = None;
                e.count = 0;
                e.window_start = now;
                true
            }
            _ => false,
        }
    }

    /// Forgets sources idle for a window and not blocked; gives the room
    /// of a past flood back.
    pub fn prune(&mut self, now: Instant) {
        let window = self.cfg.window;
        self.sources.retain(|_, e| {
            e.blocked_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(e.last_seen) < window
        });
        if self.sources.capacity() > 4 * self.sources.len().max(256) {
            self.sources.shrink_to_fit();
        }
        self.next_prune = now.checked_add(window);
    }

    fn evict_oldest(&mut self, now: Instant) {
        self.prune(now);
        if self.sources.len() < MAX_SOURCES {
            return;
        }
        let mut ages: Vec<(Instant, IpAddr)> = self
            .sources
            .iter()
            .filter(|(_, e)| e.blocked_until.is_none_or(|u| u <= now))
            .map(|(ip, e)| (e.last_seen, *ip))
            .collect();
        ages.sort_unstable();
        for (_, ip) in ages.iter().take(MAX_SOURCES / 10 + 1) {
            self.sources.remove(ip);
        }
    }

    /// Sources in the table (tests, memory checks).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pike(max: u32) -> (Pike, Instant) {
        let cfg = PikeConfig {
            window: Duration::from_secs(2),
            max_requests: max,
            block: Duration::from_secs(10),
        };
        (Pike::new(cfg), Instant::now())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_source_over_the_density_is_blocked_for_its_time_then_passes() {
        let (mut p, t0) = pike(3);
        let a = ip("192.0.2.1");
        for i in 0..3 {
            assert_eq!(p.check(a, t0 + ms(i)), Verdict::Pass);
        }
        assert_eq!(p.check(a, t0 + ms(3)), Verdict::NowBlocked);
        assert_eq!(p.check(a, t0 + ms(4)), Verdict::Drop);
        assert_eq!(
            p.blocked(t0 + ms(5)),
            vec![(a, Duration::from_secs(10) - ms(2))]
        );
        // Still blocked just before the end, free after it.
        assert_eq!(p.check(a, t0 + ms(10_002)), Verdict::Drop);
        assert_eq!(p.check(a, t0 + ms(10_004)), Verdict::Pass);
        assert!(p.blocked(t0 + ms(10_004)).is_empty());
    }

    #[test]
    fn the_count_starts_again_each_window_and_other_sources_are_not_touched() {
        let (mut p, t0) = pike(3);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for w in 0..5u64 {
            for i in 0..3 {
                assert_eq!(p.check(a, t0 + ms(w * 2000 + i)), Verdict::Pass);
            }
        }
        for i in 0..4 {
            p.check(b, t0 + ms(i));
        }
        assert_eq!(p.check(b, t0 + ms(5)), Verdict::Drop);
        assert_eq!(p.check(a, t0 + ms(10_000)), Verdict::Pass);
    }

    #[test]
    fn an_ipv6_source_is_its_slash_64() {
        let (mut p, t0) = pike(2);
        p.check(ip("2001:db8:1:2::1"), t0);
        p.check(ip("2001:db8:1:2::2"), t0);
        assert_eq!(p.check(ip("2001:db8:1:2::3"), t0), Verdict::NowBlocked);
        assert_eq!(p.check(ip("2001:db8:1:3::1"), t0), Verdict::Pass);
    }

    #[test]
    fn unblock_lifts_a_block_at_once() {
        let (mut p, t0) = pike(1);
        let a = ip("192.0.2.9");
        p.check(a, t0);
        assert_eq!(p.check(a, t0), Verdict::NowBlocked);
        assert!(p.unblock(a, t0 + ms(1)));
        assert!(!p.unblock(a, t0 + ms(1)), "no block left to lift");
        assert_eq!(p.check(a, t0 + ms(2)), Verdict::Pass);
    }

    #[test]
    fn zero_turns_it_off() {
        let (mut p, t0) = pike(0);
        for _ in 0..1000 {
            assert_eq!(p.check(ip("192.0.2.1"), t0), Verdict::Pass);
        }
        assert_eq!(p.tracked(), 0);
    }

    #[test]
    fn the_table_stays_bounded_under_spoofed_sources_and_empties_after() {
        let (mut p, t0) = pike(5);
        for i in 0..(MAX_SOURCES as u32 + 20_000) {
            let a = IpAddr::V4((0x0a00_0000 + i).into());
            p.check(a, t0 + ms(u64::from(i) / 100_000));
        }
        assert!(p.tracked() <= MAX_SOURCES, "{} tracked", p.tracked());
        p.prune(t0 + Duration::from_secs(5));
        assert_eq!(p.tracked(), 0);
    }

    #[test]
    fn blocked_sources_survive_eviction() {
        let (mut p, t0) = pike(1);
        let a = ip("192.0.2.77");
        p.check(a, t0);
        p.check(a, t0);
        for i in 0..(MAX_SOURCES as u32 + 10) {
            p.check(IpAddr::V4((0x0a00_0000 + i).into()), t0 + ms(1));
        }
        assert_eq!(p.check(a, t0 + ms(2)), Verdict::Drop);
    }
}
