//! Rate limit for the log lines of failed REGISTERs. A guessing run makes
//! thousands of failures a second; one line each filled 97 MB of log in
//! one test run. The first [`LINES_PER_INTERVAL`] events of each
//! [`INTERVAL`] are logged one by one (enough for an operator, or a
//! fail2ban filter, to see the sources), the rest are counted and told in
//! one summary line when the interval is over.

use std::time::{Duration, SystemTime};

pub const INTERVAL: Duration = Duration::from_secs(10);
pub const LINES_PER_INTERVAL: u32 = 20;

/// What was not logged in one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Suppressed {
    pub failures: u64,
    pub blocked: u64,
}

/// Which kind of event is being logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A digest answer that did not verify.
    Failure,
    /// A REGISTER refused because its source is blocked.
    Blocked,
}

#[derive(Debug, Default)]
pub struct FailureLog {
    started: Option<SystemTime>,
    lines: u32,
    suppressed: Suppressed,
}

impl FailureLog {
    /// True if `event` may be logged on its own line; otherwise it is
    /// counted for the summary. A summary of the previous interval, if it
    /// is over and suppressed anything, is returned for logging first.
    pub fn note(&mut self, event: Event, now: SystemTime) -> (bool, Option<Suppressed>) {
        let summary = self.flush(now);
        self.started.get_or_insert(now);
        if self.lines < LINES_PER_INTERVAL {
            self.lines += 1;
            return (true, summary);
        }
        match event {
            Event::Failure => self.suppressed.failures += 1,
            Event::Blocked => self.suppressed.blocked += 1,
        }
        (false, summary)
    }

    /// Ends the interval if it is over at `now`: what it suppressed, if
    /// anything (call it from a timer too, so the last summary comes out
    /// when the attack stops).
    pub fn flush(&mut self, now: SystemTime) -> Option<Suppressed> {
        let started = self.started?;
        let over = now.duration_since(started).is_ok_and(|age| age >= INTERVAL);
        if !over {
            return None;
        }
        let s = std::mem::take(&mut self.suppressed);
        self.started = None;
        self.lines = 0;
        (s != Suppressed::default()).then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    #[test]
    fn lines_then_counts_then_one_summary() {
        let mut log = FailureLog::default();
        let mut logged = 0;
        for i in 0..1_000 {
            let ev = if i % 2 == 0 {
                Event::Failure
            } else {
                Event::Blocked
            };
            let (line, summary) = log.note(ev, t(i));
            assert_eq!(summary, None);
            logged += u32::from(line);
        }
        assert_eq!(logged, LINES_PER_INTERVAL);
        assert_eq!(log.flush(t(5_000)), None, "interval not over");
        let s = log.flush(t(10_000)).unwrap();
        assert_eq!(
            s.failures + s.blocked,
            1_000 - u64::from(LINES_PER_INTERVAL)
        );
        assert_eq!(s.failures, 490);
        assert_eq!(log.flush(t(30_000)), None, "said once");
        // A new interval logs again, and an over interval's summary comes
        // with the next event.
        for i in 0..(LINES_PER_INTERVAL + 3) {
            log.note(Event::Failure, t(40_000 + u64::from(i)));
        }
        let (line, summary) = log.note(Event::Failure, t(60_000));
        assert!(line);
        assert_eq!(
            summary,
            Some(Suppressed {
                failures: 3,
                blocked: 0
            })
        );
    }
}
