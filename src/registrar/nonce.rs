//! Stateless nonces and nonce-count replay protection.
//!
//! A nonce is `TTTTTTTTTTTTTTTT SSSSSSSSSSSSSSSS MMMM…` in hex: issue time
//! (unix ms), a per-process counter salt, and an HMAC-SHA256 over both with
//! the server secret. Any nonce we issued can be checked without a table, so
//! a challenge survives a restart as long as the secret does. The only state
//! is the highest `nc` seen per nonce, bounded and pruned on expiry.

use super::digest::{constant_time_eq, hmac_sha256};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many nonces we remember nc values for; beyond it the oldest go.
const MAX_TRACKED: usize = 10_000;
const MAC_BYTES: usize = 16;

/// What a nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Issued by us and younger than the TTL.
    Fresh,
    /// Issued by us but older than the TTL: challenge again with stale=true.
    Stale,
    /// Not ours (forged, garbled, or made with another secret).
    Invalid,
}

/// Issues and checks nonces; tracks nonce counts.
#[derive(Debug)]
pub struct Nonces {
    secret: [u8; 32],
    ttl: Duration,
    salt: u64,
    /// nonce -> (highest nc accepted, issue time)
    counts: HashMap<String, (u32, SystemTime)>,
    /// The same nonces by issue time, so pruning and forgetting the oldest
    /// do not scan every tracked nonce (with `MAX_TRACKED` live nonces, as
    /// when thousands of phones register at once, each new one did).
    by_age: BTreeSet<(SystemTime, String)>,
}

impl Nonces {
    pub fn new(secret: [u8; 32], ttl: Duration) -> Self {
        Nonces {
            secret,
            ttl,
            salt: 0,
            counts: HashMap::new(),
            by_age: BTreeSet::new(),
        }
    }

    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    /// A fresh nonce for a challenge sent at `now`.
    pub fn issue(&mut self, now: SystemTime) -> String {
        self.salt = self.salt.wrapping_add(1);
        let ts = unix_ms(now);
        let mac = self.mac(ts, self.salt);
        format!(
            "{:016x}{:016x}{}",
            ts,
            self.salt,
            hex::encode(mac.get(..MAC_BYTES).unwrap_or(&mac))
        )
    }

    /// Checks a nonce the client echoed back.
    pub fn check(&self, nonce: &str, now: SystemTime) -> NonceStatus {
        let Some((ts, salt, mac_hex)) = split(nonce) else {
            return NonceStatus::Invalid;
        };
        let Ok(mac) = hex::decode(mac_hex) else {
            return NonceStatus::Invalid;
        };
        let want = self.mac(ts, salt);
        if !constant_time_eq(&mac, want.get(..MAC_BYTES).unwrap_or(&want)) {
            return NonceStatus::Invalid;
        }
        let age_ms = unix_ms(now).saturating_sub(ts);
        if u128::from(age_ms) > self.ttl.as_millis() {
            NonceStatus::Stale
        } else {
            NonceStatus::Fresh
        }
    }

    /// False if `nonce` was spent by a wrong answer or `nc` is not above
    /// the highest count accepted for it (a replay).
    pub fn count_usable(&self, nonce: &str, nc: u32) -> bool {
        self.counts.get(nonce).is_none_or(|(last, _)| nc > *last)
    }

    /// Spends `nonce`: after a wrong answer no count of it is accepted, so
    /// each guess costs a new challenge.
    pub fn spend(&mut self, nonce: &str, now: SystemTime) {
        if let Some((last, _)) = self.counts.get_mut(nonce) {
            *last = u32::MAX;
            return;
        }
        self.track(nonce, u32::MAX, now);
    }

    /// Records `nc` for `nonce` if it is higher than every earlier one.
    /// Returns false for a replayed or out-of-order count.
    pub fn accept_count(&mut self, nonce: &str, nc: u32, now: SystemTime) -> bool {
        if let Some((last, _)) = self.counts.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        self.track(nonce, nc, now);
        true
    }

    fn track(&mut self, nonce: &str, nc: u32, now: SystemTime) {
        if self.counts.len() >= MAX_TRACKED {
            self.prune(now);
        }
        if self.counts.len() >= MAX_TRACKED {
            // Still full of live nonces: forget the oldest. A client using it
            // gets a fresh challenge at worst, never a replay window beyond it.
            if let Some((_, oldest)) = self.by_age.pop_first() {
                self.counts.remove(&oldest);
            }
        }
        let issued = split(nonce)
            .map(|(ts, _, _)| UNIX_EPOCH + Duration::from_millis(ts))
            .unwrap_or(now);
        self.counts.insert(nonce.to_string(), (nc, issued));
        self.by_age.insert((issued, nonce.to_string()));
    }

    /// Forgets counts of nonces past their TTL (they fail as stale anyway).
    pub fn prune(&mut self, now: SystemTime) {
        let Some(limit) = now.checked_sub(self.ttl) else {
            return;
        };
        // Issued strictly before `now - ttl`: older than the TTL.
        while let Some((issued, _)) = self.by_age.first() {
            if *issued >= limit {
                break;
            }
            if let Some((_, nonce)) = self.by_age.pop_first() {
                self.counts.remove(&nonce);
            }
        }
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.counts.len()
    }

    fn mac(&self, ts: u64, salt: u64) -> [u8; 32] {
        hmac_sha256(
            &self.secret,
            &[b"nonce", &ts.to_be_bytes(), &salt.to_be_bytes()],
        )
    }
}

fn split(nonce: &str) -> Option<(u64, u64, &str)> {
    if nonce.len() != 32 + 2 * MAC_BYTES || !nonce.is_ascii() {
        return None;
    }
    let ts = u64::from_str_radix(nonce.get(..16)?, 16).ok()?;
    let salt = u64::from_str_radix(nonce.get(16..32)?, 16).ok()?;
    Some((ts, salt, nonce.get(32..)?))
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    #[test]
    fn fresh_stale_invalid() {
        let mut n = Nonces::new([7; 32], Duration::from_secs(300));
        let a = n.issue(t(0));
        let b = n.issue(t(0));
        assert_ne!(a, b);
        assert_eq!(n.check(&a, t(10)), NonceStatus::Fresh);
        assert_eq!(n.check(&a, t(301)), NonceStatus::Stale);
        let other = Nonces::new([8; 32], Duration::from_secs(300));
        assert_eq!(other.check(&a, t(10)), NonceStatus::Invalid);
        let mut forged = a.clone();
        forged.replace_range(0..1, if a.starts_with('0') { "1" } else { "0" });
        assert_eq!(n.check(&forged, t(10)), NonceStatus::Invalid);
        assert_eq!(n.check("garbage", t(10)), NonceStatus::Invalid);
        assert_eq!(
            n.check("ü".repeat(32).as_str(), t(10)),
            NonceStatus::Invalid
        );
    }

    #[test]
    fn counts_must_increase_and_are_pruned() {
        let mut n = Nonces::new([7; 32], Duration::from_secs(300));
        let a = n.issue(t(0));
        assert!(n.accept_count(&a, 1, t(1)));
        assert!(!n.accept_count(&a, 1, t(2)));
        assert!(n.accept_count(&a, 3, t(2)));
        assert!(!n.accept_count(&a, 2, t(2)));
        n.prune(t(400));
        assert_eq!(n.tracked(), 0);
    }

    #[test]
    fn a_spent_nonce_takes_no_count() {
        let mut n = Nonces::new([7; 32], Duration::from_secs(300));
        let a = n.issue(t(0));
        let b = n.issue(t(0));
        assert!(n.count_usable(&a, 1));
        n.spend(&a, t(1));
        assert!(!n.count_usable(&a, 2) && !n.count_usable(&a, u32::MAX));
        assert!(!n.accept_count(&a, 7, t(2)));
        // Spending one in use works the same; others are untouched.
        assert!(n.accept_count(&b, 1, t(1)));
        n.spend(&b, t(2));
        assert!(!n.count_usable(&b, 2));
        let c = n.issue(t(3));
        assert!(n.count_usable(&c, 1));
    }

    #[test]
    fn prune_keeps_nonces_within_the_ttl_and_full_table_forgets_the_oldest() {
        let mut n = Nonces::new([7; 32], Duration::from_secs(300));
        let old = n.issue(t(0));
        let young = n.issue(t(200));
        assert!(n.accept_count(&old, 1, t(201)));
        assert!(n.accept_count(&young, 1, t(201)));
        n.prune(t(300)); // `old` is exactly 300 s old: still within
        assert_eq!(n.tracked(), 2);
        n.prune(t(301));
        assert_eq!(n.tracked(), 1);
        assert!(!n.accept_count(&young, 1, t(302)), "young is still tracked");

        // A full table of live nonces drops the one issued first.
        let mut n = Nonces::new([7; 32], Duration::from_secs(300));
        let first = n.issue(t(0));
        assert!(n.accept_count(&first, 5, t(0)));
        for i in 0..MAX_TRACKED {
            let x = n.issue(t(1 + (i as u64 % 100)));
            assert!(n.accept_count(&x, 1, t(100)));
        }
        assert_eq!(n.tracked(), MAX_TRACKED);
        // `first` was forgotten: its count starts over (a replay of nc 5
        // is accepted once, which the old code allowed too).
        assert!(n.accept_count(&first, 5, t(100)));
    }
}
