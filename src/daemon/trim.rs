//! Giving memory back after a flood. glibc's allocator keeps what was
//! freed in its arenas for the next burst; after a flood of requests has
//! ended and the transaction tables have shrunk, that room would stay
//! resident for good. `malloc_trim(0)` hands the free pages of every arena
//! back to the system. It walks the arenas under their locks, so it runs
//! off the signalling shards (on a blocking thread) and only when the
//! tables shrank by a lot since the last time ([`TrimPolicy`]).

use std::time::Duration;

/// How often the housekeeping tick looks at the tables.
pub const TICK: Duration = Duration::from_secs(1);

/// A drop in live server transactions worth a trim: below this much the
/// room is a few MB, which the next burst reuses anyway.
pub const MIN_DROP: usize = 4_000;

/// When to trim, from the live server transactions seen each tick
/// (sans-IO: the count goes in, whether to trim comes out).
#[derive(Debug, Default)]
pub struct TrimPolicy {
    /// The most transactions seen since the last trim.
    peak: usize,
}

impl TrimPolicy {
    /// One tick with `live` transactions alive: true when they fell to
    /// half the peak since the last trim, by at least [`MIN_DROP`].
    pub fn tick(&mut self, live: usize) -> bool {
        self.peak = self.peak.max(live);
        let dropped = self.peak - live;
        if dropped >= MIN_DROP && live <= self.peak / 2 {
            self.peak = live;
            return true;
        }
        false
    }
}

/// Hands freed memory back to the system (glibc; nothing elsewhere).
/// Returns whether any was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_freed_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks
    // each arena in turn); it only returns free pages to the kernel.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_the_tables_fell_to_half_their_peak_by_enough() {
        let mut p = TrimPolicy::default();
        // A flood builds up: no trim while it grows or barely falls.
        for live in [0, 20_000, 80_000, 79_000, 45_000] {
            assert!(!p.tick(live), "{live}");
        }
        assert!(p.tick(40_000), "half of the 80,000 peak");
        assert!(!p.tick(39_000), "the peak starts again from there");
        assert!(
            !p.tick(25_000),
            "a drop under MIN_DROP since: 15,000 is not half of 40,000"
        );
        assert!(p.tick(20_000));
        // Small tables never trim, however they move.
        let mut q = TrimPolicy::default();
        assert!(!(0..100).any(|i| q.tick(if i % 2 == 0 { 3_000 } else { 0 })));
    }
}
