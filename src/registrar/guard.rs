//! Limits on password guessing, in the spirit of fail2ban and Kamailio's
//! pike + htable recipes, sans-IO: failures and sources go in with `now`,
//! "is this source blocked" comes out.
//!
//! * **Per source.** A source (an IPv4 address, or an IPv6 /64: one
//!   subscriber's whole prefix) that fails `max_failures` digest answers
//!   within `window` is blocked for `block`: every REGISTER from it is
//!   refused with 403 before its credentials are looked at, so a right
//!   guess made while blocked is worth nothing. Each further block of the
//!   same source doubles, up to [`MAX_BLOCK_DOUBLINGS`] times `block`; the
//!   count is forgotten once the source has been quiet that long.
//! * **Per user.** A user name that collects `user_max_failures` failures
//!   within `window`, from any sources, is under a distributed attack. The
//!   user is *not* blocked (that would let anyone lock a real agent out by
//!   guessing wrongly from elsewhere); instead every source that fails for
//!   that user is blocked at its first failure, so each attacking address
//!   gets one guess per block. Sources the user has authenticated from
//!   before keep the normal per-source allowance, so the agent's own phone
//!   is not blocked for one mistyped password during an attack.
//! * **Trusted networks** (an office NAT that many phones share) are never
//!   blocked; their failures are still counted for the user.
//!
//! User names are tracked whether or not they exist, in the same bounded
//! table, so the limits behave the same for real and made-up users and
//! tell a prober nothing. Both tables are bounded: when full, expired
//! entries go first, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// Consecutive blocks of one source double its block this many times.
pub const MAX_BLOCK_DOUBLINGS: u32 = 6;
/// Sources tracked at once (a flood of spoofed UDP sources must not take
/// the memory): each entry is a few dozen bytes.
const MAX_SOURCES: usize = 100_000;
/// User names tracked at once (made-up ones included).
const MAX_USERS: usize = 20_000;
/// Known-good sources remembered per user.
const MAX_GOOD_SOURCES: usize = 8;

/// An IP network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`, or one
/// address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(s: &str) -> Option<Network> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.trim().parse::<IpAddr>().ok()?, Some(p.trim())),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The unit a block applies to: the address, or its /64 for IPv6.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The limits (from `[server]`, see `docs/sip-behaviour.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// Failures from one source within `window` before it is blocked;
    /// 0 turns the per-source limit off.
    pub max_failures: u32,
    /// Failures for one user within `window`, from all sources, after
    /// which each failing source is blocked at once; 0 turns it off.
    pub user_max_failures: u32,
    pub window: Duration,
    /// The first block of a source; repeated blocks double it.
    pub block: Duration,
    /// Networks never blocked.
    pub trusted: Vec<Network>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_failures: 10,
            user_max_failures: 50,
            window: Duration::from_secs(60),
            block: Duration::from_secs(60),
            trusted: Vec::new(),
        }
    }
}

/// What became of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; the source may try again.
    Counted,
    /// This failure got the source blocked for the given time.
    Blocked(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Source {
    failures: u32,
    window_start: SystemTime,
    blocked_until: Option<SystemTime>,
    /// Blocks so far (for the doubling), forgotten after a quiet spell.
    strikes: u32,
    last_seen: SystemTime,
}

#[derive(Debug, Clone)]
struct User {
    failures: u32,
    window_start: SystemTime,
    last_seen: SystemTime,
    /// Sources this user authenticated from (most recent last).
    good: Vec<IpAddr>,
}

/// Failure bookkeeping for the registrar.
#[derive(Debug, Default)]
pub struct Guard {
    cfg: GuardConfig,
    sources: HashMap<IpAddr, Source>,
    users: HashMap<String, User>,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard {
            cfg,
            ..Guard::default()
        }
    }

    pub fn set_config(&mut self, cfg: GuardConfig) {
        self.cfg = cfg;
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.cfg.trusted.iter().any(|n| n.contains(ip))
    }

    /// How long `ip` stays blocked, if it is blocked at `now`.
    pub fn blocked(&self, ip: IpAddr, now: SystemTime) -> Option<Duration> {
        let until = self.sources.get(&source_key(ip))?.blocked_until?;
        until.duration_since(now).ok().filter(|d| !d.is_zero())
    }

    /// Sources blocked at `now` with the time each has left (for the admin
    /// view and tests), IPv6 ones as their /64.
    pub fn blocked_sources(&self, now: SystemTime) -> Vec<(IpAddr, Duration)> {
        let mut out: Vec<(IpAddr, Duration)> = self
            .sources
            .iter()
            .filter_map(|(ip, s)| {
                let left = s.blocked_until?.duration_since(now).ok()?;
                (!left.is_zero()).then_some((*ip, left))
            })
            .collect();
        out.sort();
        out
    }

    /// Lifts the block on `ip` at `now` (its strikes stay); false if it
    /// had none.
    pub fn unblock(&mut self, ip: IpAddr, now: SystemTime) -> bool {
        match self.sources.get_mut(&source_key(ip)) {
            Some(s) if s.blocked_until.is_some_and(|u| u > now) => {
                s.blocked_until = None;
                s.failures = 0;
                s.window_start = now;
                true
            }
            _ => false,
        }
    }

    /// How many sources are blocked at `now`.
    pub fn blocked_count(&self, now: SystemTime) -> usize {
        self.sources
            .values()
            .filter(|s| s.blocked_until.is_some_and(|u| u > now))
            .count()
    }

    /// A digest answer for `user` from `ip` that did not verify.
    pub fn failure(&mut self, ip: IpAddr, user: &str, now: SystemTime) -> Verdict {
        let window = self.cfg.window;
        let under_attack = self.count_user(user, now);
        if self.trusted(ip) {
            return Verdict::Counted;
        }
        let key = source_key(ip);
        let known_good = self.users.get(user).is_some_and(|u| u.good.contains(&key));
        let limit = match (under_attack && !known_good, self.cfg.max_failures) {
            (true, _) => 1,
            (false, 0) => return Verdict::Counted,
            (false, n) => n,
        };
        if !self.sources.contains_key(&key) && self.sources.len() >= MAX_SOURCES {
            self.prune_sources(now);
        }
        let block = self.cfg.block;
        let s = self.sources.entry(key).or_insert(Source {
            failures: 0,
            window_start: now,
            blocked_until: None,
            strikes: 0,
            last_seen: now,
        });
        if elapsed(s.window_start, now) > window {
            s.failures = 0;
            s.window_start = now;
        }
        s.failures = s.failures.saturating_add(1);
        s.last_seen = now;
        if s.failures < limit {
            return Verdict::Counted;
        }
        let doubling = s.strikes.min(MAX_BLOCK_DOUBLINGS);
        let time = block.saturating_mul(1 << doubling);
        s.strikes = s.strikes.saturating_add(1);
        s.failures = 0;
        s.window_start = now;
        s.blocked_until = Some(now.checked_add(time).unwrap_or(now));
        Verdict::Blocked(time)
    }

    /// A REGISTER from `ip` that authenticated as `user`: the source is
    /// known good for the user from now on.
    pub fn success(&mut self, ip: IpAddr, user: &str, now: SystemTime) {
        let key = source_key(ip);
        // Only users that exist get here, so this cannot grow the table
        // with made-up names.
        let u = self.user_entry(user, now);
        u.last_seen = now;
        if let Some(i) = u.good.iter().position(|g| *g == key) {
            u.good.remove(i);
        } else if u.good.len() >= MAX_GOOD_SOURCES {
            u.good.remove(0);
        }
        u.good.push(key);
    }

    /// Counts a failure for `user`; true once the user is under attack.
    fn count_user(&mut self, user: &str, now: SystemTime) -> bool {
        let (window, limit) = (self.cfg.window, self.cfg.user_max_failures);
        let u = self.user_entry(user, now);
        if elapsed(u.window_start, now) > window {
            u.failures = 0;
            u.window_start = now;
        }
        u.failures = u.failures.saturating_add(1);
        u.last_seen = now;
        limit > 0 && u.failures > limit
    }

    fn user_entry(&mut self, user: &str, now: SystemTime) -> &mut User {
        if !self.users.contains_key(user) && self.users.len() >= MAX_USERS {
            self.prune_users(now);
        }
        self.users.entry(user.to_string()).or_insert_with(|| User {
            failures: 0,
            window_start: now,
            last_seen: now,
            good: Vec::new(),
        })
    }

    /// Forgets what no longer matters at `now` (call it from a timer).
    pub fn prune(&mut self, now: SystemTime) {
        self.prune_sources(now);
        self.prune_users(now);
    }

    fn prune_sources(&mut self, now: SystemTime) {
        let memory = self.memory();
        self.sources.retain(|_, s| {
            let blocked = s.blocked_until.is_some_and(|u| u > now);
            blocked || elapsed(s.last_seen, now) <= memory
        });
        if self.sources.len() >= MAX_SOURCES {
            // Still full of live entries (a wide flood): drop the oldest
            // unblocked tenth, so the scan is paid once per many inserts.
            let mut ages: Vec<(SystemTime, IpAddr)> = self
                .sources
                .iter()
                .filter(|(_, s)| s.blocked_until.is_none_or(|u| u <= now))
                .map(|(ip, s)| (s.last_seen, *ip))
                .collect();
            ages.sort_unstable();
            for (_, ip) in ages.iter().take(MAX_SOURCES / 10 + 1) {
                self.sources.remove(ip);
            }
        }
    }

    fn prune_users(&mut self, now: SystemTime) {
        let window = self.cfg.window;
        // Known-good sources are kept for a day after the last success.
        let keep = Duration::from_secs(86_400);
        self.users.retain(|_, u| {
            let age = elapsed(u.last_seen, now);
            age <= window || (!u.good.is_empty() && age <= keep)
        });
        if self.users.len() >= MAX_USERS {
            let mut ages: Vec<(SystemTime, String)> = self
                .users
                .iter()
                .filter(|(_, u)| u.good.is_empty())
                .map(|(name, u)| (u.last_seen, name.clone()))
                .collect();
            ages.sort_unstable();
            for (_, name) in ages.iter().take(MAX_USERS / 10 + 1) {
                self.users.remove(name);
            }
        }
    }

    /// How long a quiet source's strikes are remembered: its longest block.
    fn memory(&self) -> Duration {
        let longest = self.cfg.block.saturating_mul(1 << MAX_BLOCK_DOUBLINGS);
        longest.max(self.cfg.window)
    }

    #[cfg(test)]
    pub fn tracked(&self) -> (usize, usize) {
        (self.sources.len(), self.users.len())
    }
}

fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guard(max: u32, user_max: u32) -> Guard {
        Guard::new(GuardConfig {
            max_failures: max,
            user_max_failures: user_max,
            window: Duration::from_secs(60),
            block: Duration::from_secs(30),
            trusted: vec![Network::parse("10.1.0.0/16").unwrap()],
        })
    }

    #[test]
    fn a_source_is_blocked_at_its_nth_failure_and_freed_after_the_block() {
        let mut g = guard(3, 0);
        let a = ip("192.0.2.7");
        assert_eq!(g.failure(a, "1001", t(0)), Verdict::Counted);
        assert_eq!(g.failure(a, "1001", t(1)), Verdict::Counted);
        assert_eq!(g.blocked(a, t(2)), None);
        assert_eq!(
            g.failure(a, "1002", t(2)),
            Verdict::Blocked(Duration::from_secs(30))
        );
        assert_eq!(g.blocked(a, t(3)), Some(Duration::from_millis(29_999)));
        // Another source is not affected.
        assert_eq!(g.blocked(ip("192.0.2.8"), t(3)), None);
        assert_eq!(g.blocked(a, t(32_002)), None);
        assert_eq!(
            g.blocked_sources(t(3)),
            vec![(a, Duration::from_millis(29_999))]
        );
    }

    #[test]
    fn repeated_blocks_double_up_to_the_cap() {
        let mut g = guard(1, 0);
        let a = ip("192.0.2.7");
        let mut now = 0;
        let mut seen = Vec::new();
        for _ in 0..9 {
            match g.failure(a, "x", t(now)) {
                Verdict::Blocked(d) => {
                    seen.push(d.as_secs());
                    now += d.as_millis() as u64;
                }
                Verdict::Counted => panic!("limit 1 blocks at once"),
            }
        }
        assert_eq!(seen, [30, 60, 120, 240, 480, 960, 1920, 1920, 1920]);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut g = guard(3, 0);
        let a = ip("192.0.2.7");
        for i in 0..10 {
            // Two failures per 61 s window never reach three.
            assert_eq!(g.failure(a, "u", t(i * 61_000)), Verdict::Counted);
            assert_eq!(g.failure(a, "u", t(i * 61_000 + 1)), Verdict::Counted);
        }
    }

    #[test]
    fn ipv6_sources_are_blocked_per_64_and_mapped_v4_is_v4() {
        let mut g = guard(2, 0);
        g.failure(ip("2001:db8:1:2::1"), "u", t(0));
        assert!(matches!(
            g.failure(ip("2001:db8:1:2:ffff::9"), "u", t(1)),
            Verdict::Blocked(_)
        ));
        assert!(g.blocked(ip("2001:db8:1:2::77"), t(2)).is_some());
        assert!(g.blocked(ip("2001:db8:1:3::1"), t(2)).is_none());
        g.failure(ip("::ffff:192.0.2.1"), "u", t(0));
        g.failure(ip("192.0.2.1"), "u", t(1));
        assert!(g.blocked(ip("192.0.2.1"), t(2)).is_some());
    }

    #[test]
    fn trusted_networks_are_never_blocked() {
        let mut g = guard(1, 0);
        for i in 0..20 {
            assert_eq!(g.failure(ip("10.1.200.3"), "u", t(i)), Verdict::Counted);
        }
        assert_eq!(g.blocked(ip("10.1.200.3"), t(30)), None);
        assert!(matches!(
            g.failure(ip("10.2.0.1"), "u", t(0)),
            Verdict::Blocked(_)
        ));
    }

    #[test]
    fn a_user_under_attack_makes_each_new_source_one_guess_but_keeps_its_own() {
        let mut g = guard(10, 5);
        let home = ip("198.51.100.20");
        g.success(home, "1001", t(0));
        // Five attackers, one failure each: the user's count reaches 5.
        for i in 0..5u8 {
            let a = IpAddr::from([203, 0, 113, i]);
            assert_eq!(g.failure(a, "1001", t(1)), Verdict::Counted);
        }
        // From now on a new attacking source is blocked at its first miss...
        assert!(matches!(
            g.failure(ip("203.0.113.50"), "1001", t(2)),
            Verdict::Blocked(_)
        ));
        // ...and so is an earlier one at its next.
        assert!(matches!(
            g.failure(ip("203.0.113.1"), "1001", t(3)),
            Verdict::Blocked(_)
        ));
        // The agent's own address keeps the normal allowance: one typo is
        // not a block, and the user as such is never blocked.
        assert_eq!(g.failure(home, "1001", t(4)), Verdict::Counted);
        assert_eq!(g.blocked(home, t(5)), None);
        // Another user is not under attack.
        assert_eq!(
            g.failure(ip("203.0.113.60"), "1002", t(6)),
            Verdict::Counted
        );
    }

    #[test]
    fn tables_stay_bounded_and_are_pruned() {
        let mut g = guard(1_000, 0);
        for i in 0..(MAX_SOURCES as u32 + 500) {
            g.failure(IpAddr::from(i.to_be_bytes()), &format!("u{i}"), t(0));
        }
        let (sources, users) = g.tracked();
        assert!(sources <= MAX_SOURCES, "{sources}");
        assert!(users <= MAX_USERS, "{users}");
        g.prune(t(10_000_000));
        assert_eq!(g.tracked(), (0, 0));
    }

    #[test]
    fn networks_parse_and_match() {
        let n = Network::parse("192.0.2.0/24").unwrap();
        assert!(n.contains(ip("192.0.2.255")) && !n.contains(ip("192.0.3.0")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("2001:db8::/32")
            .unwrap()
            .contains(ip("2001:db8:ffff::1")));
        assert!(Network::parse("192.0.2.1")
            .unwrap()
            .contains(ip("192.0.2.1")));
        for bad in [
            "192.0.2.0/33",
            "x/8",
            "192.0.2.0/",
            "192.0.2.0/+8",
            "::/129",
        ] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }
}
