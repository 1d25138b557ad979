//! A request-density limiter per source address, in the spirit of
//! Kamailio's pike module, sans-IO: a source and `now` go in, "pass" or
//! "drop" comes out.
//!
//! Each source (an IPv4 address, or an IPv6 /64) may send `max_requests`
//! messages per `window`; the message that goes over it gets the source
//! blocked for `block`, and every message from a blocked source is dropped
//! unread until the block ends. Counting goes on while it is blocked: a
//! source still over the limit during its block has it start again from
//! that message (as pike keeps a flooding source blocked), so a block ends
//! only once the source has kept under the limit for a whole block. Each
//! further block of the same source doubles, up to
//! [`MAX_BLOCK_DOUBLINGS`] times `block`; a source quiet for as long as
//! its last block starts afresh. The table is bounded: idle entries are
//! forgotten every window, and when it is full of live ones the oldest
//! unblocked tenth goes (a flood of spoofed sources costs at most
//! [`MAX_SOURCES`] entries); after a flood its room is given back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::registrar::source_key;

/// Sources tracked at once; each entry is a few dozen bytes.
pub const MAX_SOURCES: usize = 100_000;

/// Repeated blocks double up to this many times (64 times `block`), as the
/// guessing limits' blocks do.
pub const MAX_BLOCK_DOUBLINGS: u32 = 6;

/// The limits (`pike_*` keys of `[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PikeConfig {
    /// The sampling window.
    pub window: Duration,
    /// Messages per window from one source; 0 turns the limit off.
    pub max_requests: u32,
    /// How long a source that went over stays blocked the first time.
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
    /// The source is blocked and went over the limit again: its block
    /// starts again from this message (drop it). Said once per window.
    Extended,
    /// The source is blocked: drop the message.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
    last_seen: Instant,
    /// Blocks in a row; the next one lasts `block` doubled this often.
    strikes: u32,
    /// The length of the block in force, or of the last one.
    block_len: Duration,
}

impl Entry {
    fn blocked_at(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|u| u > now)
    }

    /// Whether the source has been quiet (no message, no block) for as
    /// long as its last block: its strikes are forgotten then.
    fn quiet_long_enough(&self, now: Instant) -> bool {
        let since = self
            .blocked_until
            .map_or(self.last_seen, |u| u.max(self.last_seen));
        now.saturating_duration_since(since) >= self.block_len
    }
}

/// The length of a source's `strikes`-th block in a row (1 = the first).
fn block_for(cfg: PikeConfig, strikes: u32) -> Duration {
    let doublings = strikes.saturating_sub(1).min(MAX_BLOCK_DOUBLINGS);
    cfg.block.saturating_mul(1 << doublings)
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

    /// Takes new limits (reload). Sources keep their counts and blocks in
    /// force; the new limits apply from their next message, and a new
    /// `block` from their next block.
    pub fn set_config(&mut self, cfg: PikeConfig) {
        self.cfg = cfg;
        self.next_prune = None;
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
            strikes: 0,
            block_len: cfg.block,
        });
        if e.strikes > 0 && !e.blocked_at(now) && e.quiet_long_enough(now) {
            e.strikes = 0;
        }
        e.last_seen = now;
        if e.blocked_until.is_some_and(|u| now >= u) {
            // The block is over: a fresh window.
            e.blocked_until = None;
            e.count = 0;
            e.window_start = now;
        }
        if now.saturating_duration_since(e.window_start) >= cfg.window {
            e.count = 0;
            e.window_start = now;
        }
        e.count = e.count.saturating_add(1);
        let over = e.count > cfg.max_requests;
        if e.blocked_until.is_some() {
            if !over {
                return Verdict::Drop;
            }
            // Still flooding: the block runs again from this message.
            let again = now.checked_add(e.block_len);
            e.blocked_until = e.blocked_until.max(again);
            return match e.count == cfg.max_requests.saturating_add(1) {
                true => Verdict::Extended,
                false => Verdict::Drop,
            };
        }
        if !over {
            return Verdict::Pass;
        }
        e.strikes = e.strikes.saturating_add(1);
        e.block_len = block_for(cfg, e.strikes);
        // A block too long for the clock is as good as for ever.
        e.blocked_until = Some(now.checked_add(e.block_len).unwrap_or(now + cfg.block));
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
            .is_some_and(|e| e.blocked_at(now))
    }

    /// Lifts the block on `ip` (its /64 for IPv6) and forgets its past
    /// blocks; false if it had none in force.
    pub fn unblock(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.sources.get_mut(&source_key(ip)) {
            Some(e) if e.blocked_at(now) => {
                e.blocked_until = None;
                e.count = 0;
                e.window_start = now;
                e.strikes = 0;
                true
            }
            _ => false,
        }
    }

    /// Forgets sources idle for a window, not blocked and with no recent
    /// block to remember; gives the room of a past flood back.
    pub fn prune(&mut self, now: Instant) {
        let window = self.cfg.window;
        self.sources.retain(|_, e| {
            e.blocked_at(now)
                || now.saturating_duration_since(e.last_seen) < window
                || (e.strikes > 0 && !e.quiet_long_enough(now))
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
            .filter(|(_, e)| !e.blocked_at(now))
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
        assert_eq!(
            p.blocked(t0 + ms(5)),
            vec![(a, Duration::from_secs(10) - ms(2))]
        );
        // Quiet from then on: still blocked just before the end, free after it.
        assert_eq!(p.check(a, t0 + ms(10_002)), Verdict::Drop);
        assert_eq!(p.check(a, t0 + ms(10_003)), Verdict::Pass);
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
    #[test]
    fn a_blocked_source_that_keeps_flooding_stays_blocked() {
        let (mut p, t0) = pike(3);
        let a = ip("192.0.2.1");
        for i in 0..3 {
            p.check(a, t0 + ms(i));
        }
        assert_eq!(p.check(a, t0 + ms(3)), Verdict::NowBlocked);
        // Over the limit again in a later window of the block: it runs
        // again from there (said once per window), however long it goes on.
        for w in 1..=20u64 {
            let at = t0 + ms(w * 2000);
            for i in 0..3 {
                assert_eq!(p.check(a, at + ms(i)), Verdict::Drop, "window {w}");
            }
            assert_eq!(p.check(a, at + ms(3)), Verdict::Extended, "window {w}");
            assert_eq!(p.check(a, at + ms(4)), Verdict::Drop);
        }
        let last = t0 + ms(40_004);
        assert_eq!(p.blocked(last), vec![(a, Duration::from_secs(10))]);
        // Under the limit while blocked: dropped, the block is not longer.
        for i in 0..3 {
            assert_eq!(p.check(a, last + ms(5000 + i)), Verdict::Drop);
        }
        assert_eq!(p.blocked(last + ms(5003)), vec![(a, ms(4997))]);
        assert_eq!(p.check(a, last + ms(10_000)), Verdict::Pass);
    }

    #[test]
    fn repeated_blocks_double_up_to_the_cap_and_a_quiet_source_starts_afresh() {
        let (mut p, t0) = pike(1);
        let a = ip("192.0.2.5");
        let mut at = t0;
        let mut lengths = Vec::new();
        for _ in 0..9 {
            assert_eq!(p.check(a, at), Verdict::Pass);
            assert_eq!(p.check(a, at), Verdict::NowBlocked);
            let left = p.blocked(at)[0].1;
            lengths.push(left.as_secs());
            // Back right after the block ends (within its length).
            at += left;
        }
        assert_eq!(lengths, vec![10, 20, 40, 80, 160, 320, 640, 640, 640]);
        // Quiet for as long as the last block (640 s) after it ended:
        // kept in the table until then, forgotten after.
        p.prune(at + Duration::from_secs(639));
        assert_eq!(p.tracked(), 1, "its past blocks are remembered");
        let later = at + Duration::from_secs(640);
        p.prune(later);
        assert_eq!(p.tracked(), 0);
        assert_eq!(p.check(a, later), Verdict::Pass);
        assert_eq!(p.check(a, later), Verdict::NowBlocked);
        assert_eq!(p.blocked(later)[0].1, Duration::from_secs(10));
    }

    #[test]
    fn a_source_quiet_for_its_block_after_it_ended_starts_afresh_without_a_prune() {
        let (mut p, t0) = pike(1);
        let a = ip("192.0.2.6");
        p.check(a, t0);
        p.check(a, t0);
        // Its block (10 s) ended at 10 s; quiet 10 s more.
        let back = t0 + Duration::from_secs(20);
        // The window (2 s) has long passed, but the table still knows it.
        assert_eq!(p.check(a, back), Verdict::Pass);
        assert_eq!(p.check(a, back), Verdict::NowBlocked);
        assert_eq!(p.blocked(back)[0].1, Duration::from_secs(10));
        // Back before that: the second block is twice as long.
        let soon = back + Duration::from_secs(15);
        p.check(a, soon);
        assert_eq!(p.check(a, soon), Verdict::NowBlocked);
        assert_eq!(p.blocked(soon)[0].1, Duration::from_secs(20));
        // Lifting a block by hand forgets the past ones too.
        assert!(p.unblock(a, soon));
        p.check(a, soon + ms(1));
        assert_eq!(p.check(a, soon + ms(1)), Verdict::NowBlocked);
        assert_eq!(p.blocked(soon + ms(1))[0].1, Duration::from_secs(10));
    }

    #[test]
    fn new_limits_apply_to_the_next_message_and_blocks_in_force_stay() {
        let (mut p, t0) = pike(3);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        p.check(b, t0);
        assert_eq!(p.check(b, t0), Verdict::Pass);
        p.check(a, t0);
        p.check(a, t0);
        let cfg = PikeConfig {
            window: Duration::from_secs(2),
            max_requests: 1,
            block: Duration::from_secs(30),
        };
        p.set_config(cfg);
        assert_eq!(p.config(), cfg);
        assert_eq!(p.check(a, t0 + ms(1)), Verdict::NowBlocked);
        assert_eq!(p.blocked(t0 + ms(1)), vec![(a, Duration::from_secs(30))]);
        p.set_config(PikeConfig {
            max_requests: 0,
            ..cfg
        });
        assert_eq!(p.check(a, t0 + ms(2)), Verdict::Pass, "0: off");
        assert!(
            p.is_blocked(a, t0 + ms(2)),
            "the block in force stays listed"
        );
    }
}
