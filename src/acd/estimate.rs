//! Estimated wait per queue and per caller position, like Asterisk's
//! `announce-holdtime` but for each place in the line rather than one
//! average for everyone.
//!
//! Every agent serving a queue frees up, on average, once per handle time
//! (talk plus wrap-up). With `n` agents serving, one frees up every
//! `AHT / n`; a caller with `k` callers ahead of it beyond the agents free
//! now waits for `k + 1` of those: `(position - available) * AHT / n`.
//! The handle time is a moving average of the queue's recent calls
//! (recent calls weigh most, so a change of pace shows within a few
//! calls). Before the first call of a queue ends, the interval between its
//! recent answers stands in for `AHT / n`. With no agent serving, or no
//! history at all, there is no estimate.
//!
//! Sans-IO: every figure comes with an explicit `now`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Weight of the newest handle time in the moving average.
const ALPHA: f64 = 0.25;
/// Answers older than this do not count as the recent answer rate.
const ANSWER_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Recent answers kept per queue (the rate needs no more).
const MAX_ANSWERS: usize = 64;

/// What serves a queue now, as the router counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Staffing {
    /// Agents free to take a call now.
    pub available: usize,
    /// Agents ringing, on a call or in wrap-up: they free up in turn.
    pub busy: usize,
}

impl Staffing {
    fn serving(self) -> usize {
        self.available + self.busy
    }
}

#[derive(Debug, Default)]
struct History {
    /// Moving average of handle times, in seconds.
    aht_s: Option<f64>,
    answers: VecDeque<Instant>,
}

/// Recent answers and handle times per queue.
#[derive(Debug, Default)]
pub struct WaitEstimator {
    queues: HashMap<String, History>,
}

impl WaitEstimator {
    /// A caller of `queue` was answered at `now`.
    pub fn answered(&mut self, queue: &str, now: Instant) {
        let h = self.queues.entry(queue.to_owned()).or_default();
        if h.answers.len() >= MAX_ANSWERS {
            h.answers.pop_front();
        }
        h.answers.push_back(now);
    }

    /// An answered call of `queue` ended after `handle` (talk plus the
    /// queue's wrap-up).
    pub fn handled(&mut self, queue: &str, handle: Duration) {
        let h = self.queues.entry(queue.to_owned()).or_default();
        let s = handle.as_secs_f64();
        h.aht_s = Some(match h.aht_s {
            Some(avg) => avg + ALPHA * (s - avg),
            None => s,
        });
    }

    /// The average handle time of `queue`, if a call of it ended yet.
    pub fn handle_time(&self, queue: &str) -> Option<Duration> {
        self.queues
            .get(queue)
            .and_then(|h| h.aht_s)
            .map(Duration::from_secs_f64)
    }

    /// The expected wait of the caller at `position` (1 = served next) of
    /// `queue`; `None` when nobody serves the queue or nothing is known.
    pub fn estimate(
        &self,
        queue: &str,
        position: usize,
        staff: Staffing,
        now: Instant,
    ) -> Option<Duration> {
        let n = staff.serving();
        if n == 0 {
            return None;
        }
        let position = position.max(1);
        if position <= staff.available {
            return Some(Duration::ZERO);
        }
        let h = self.queues.get(queue)?;
        let every_s = match h.aht_s {
            Some(aht) => aht / n as f64,
            None => recent_answer_interval(&h.answers, now)?,
        };
        let turns = (position - staff.available) as f64;
        Some(Duration::from_secs_f64(turns * every_s))
    }

    /// The expected wait of a caller arriving now, behind `waiting`.
    pub fn for_new_caller(
        &self,
        queue: &str,
        waiting: usize,
        staff: Staffing,
        now: Instant,
    ) -> Option<Duration> {
        self.estimate(queue, waiting + 1, staff, now)
    }
}

/// Mean seconds between the answers of the last [`ANSWER_WINDOW`]; needs
/// two of them.
fn recent_answer_interval(answers: &VecDeque<Instant>, now: Instant) -> Option<f64> {
    let recent: Vec<Instant> = answers
        .iter()
        .copied()
        .filter(|t| now.saturating_duration_since(*t) <= ANSWER_WINDOW)
        .collect();
    let (first, last) = (recent.first()?, recent.last()?);
    if recent.len() < 2 {
        return None;
    }
    Some(last.saturating_duration_since(*first).as_secs_f64() / (recent.len() - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(available: usize, busy: usize) -> Staffing {
        Staffing { available, busy }
    }

    fn secs(d: Option<Duration>) -> Option<u64> {
        d.map(|d| d.as_secs_f64().round() as u64)
    }

    #[test]
    fn nothing_known_or_nobody_serving_means_no_estimate() {
        let mut e = WaitEstimator::default();
        let t0 = Instant::now();
        assert_eq!(e.estimate("q", 1, staff(0, 1), t0), None);
        e.handled("q", Duration::from_secs(60));
        assert_eq!(e.estimate("q", 1, staff(0, 0), t0), None, "nobody serving");
        assert_eq!(e.estimate("other", 1, staff(0, 2), t0), None);
    }

    #[test]
    fn each_position_waits_one_more_turn_and_agents_joining_shorten_it() {
        let mut e = WaitEstimator::default();
        let t0 = Instant::now();
        e.handled("q", Duration::from_secs(120));
        // Two agents busy: one frees up every 60 s.
        assert_eq!(secs(e.estimate("q", 1, staff(0, 2), t0)), Some(60));
        assert_eq!(secs(e.estimate("q", 3, staff(0, 2), t0)), Some(180));
        // Four serving: every 30 s.
        assert_eq!(secs(e.estimate("q", 3, staff(0, 4), t0)), Some(90));
        // One free now: the first caller is taken at once, the third
        // waits two turns.
        assert_eq!(secs(e.estimate("q", 1, staff(1, 3), t0)), Some(0));
        assert_eq!(secs(e.estimate("q", 3, staff(1, 3), t0)), Some(60));
        assert_eq!(secs(e.for_new_caller("q", 2, staff(1, 3), t0)), Some(60));
    }

    #[test]
    fn the_handle_time_follows_recent_calls() {
        let mut e = WaitEstimator::default();
        for _ in 0..3 {
            e.handled("q", Duration::from_secs(100));
        }
        assert_eq!(e.handle_time("q"), Some(Duration::from_secs(100)));
        for _ in 0..10 {
            e.handled("q", Duration::from_secs(20));
        }
        let aht = e.handle_time("q").unwrap().as_secs_f64();
        assert!(aht < 25.0 && aht > 20.0, "{aht}");
    }

    #[test]
    fn before_any_call_ends_the_answer_rate_stands_in() {
        let mut e = WaitEstimator::default();
        let t0 = Instant::now();
        e.answered("q", t0);
        assert_eq!(
            e.estimate("q", 1, staff(0, 1), t0),
            None,
            "one answer is no rate"
        );
        e.answered("q", t0 + Duration::from_secs(40));
        e.answered("q", t0 + Duration::from_secs(80));
        let now = t0 + Duration::from_secs(90);
        assert_eq!(secs(e.estimate("q", 2, staff(0, 3), now)), Some(80));
        // Answers older than the window no longer count.
        let later = t0 + ANSWER_WINDOW + Duration::from_secs(41);
        assert_eq!(e.estimate("q", 2, staff(0, 3), later), None);
    }
}
