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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::ids::{QueueId, Renumbering};

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

/// One queue's recent answers and handle times: the figures an estimate
/// is made of. The engine keeps one per queue id ([`WaitEstimator`]); a
/// consumer of the event stream may keep its own by name.
#[derive(Debug, Default, Clone)]
pub struct QueueHistory {
    /// Moving average of handle times, in seconds.
    aht_s: Option<f64>,
    answers: VecDeque<Instant>,
}

impl QueueHistory {
    /// A caller was answered at `now`.
    pub fn answered(&mut self, now: Instant) {
        if self.answers.len() >= MAX_ANSWERS {
            self.answers.pop_front();
        }
        self.answers.push_back(now);
    }

    /// An answered call ended after `handle` (talk plus the queue's
    /// wrap-up).
    pub fn handled(&mut self, handle: Duration) {
        let s = handle.as_secs_f64();
        self.aht_s = Some(match self.aht_s {
            Some(avg) => avg + ALPHA * (s - avg),
            None => s,
        });
    }

    /// The average handle time, if a call ended yet.
    pub fn handle_time(&self) -> Option<Duration> {
        self.aht_s.map(Duration::from_secs_f64)
    }
}

/// The expected wait of the caller at `position` (1 = served next) of a
/// queue with `history`; `None` when nobody serves the queue or nothing is
/// known.
pub fn estimate(
    history: Option<&QueueHistory>,
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
    let h = history?;
    let every_s = match h.aht_s {
        Some(aht) => aht / n as f64,
        None => recent_answer_interval(&h.answers, now)?,
    };
    let turns = (position - staff.available) as f64;
    Some(Duration::from_secs_f64(turns * every_s))
}

/// The engine's histories, by queue id of the router's table. A reload
/// renumbers the queues: the histories follow their queue's name into the
/// new numbering ([`WaitEstimator::follow`]), a removed queue's are
/// dropped.
#[derive(Debug, Default)]
pub struct WaitEstimator {
    queues: Vec<QueueHistory>,
    /// The router generation the ids are of.
    generation: u64,
}

impl WaitEstimator {
    /// Brings the ids up to the router's table (O(1) when no reload
    /// happened since the last call).
    pub fn follow(&mut self, renumbering: &Renumbering) {
        if self.generation == renumbering.generation() {
            return;
        }
        let old = std::mem::take(&mut self.queues);
        if self.generation + 1 == renumbering.generation() {
            for (i, h) in old.into_iter().enumerate() {
                let Some(q) = renumbering.queue(QueueId::from_index(i as u32)) else {
                    continue;
                };
                *self.slot(q) = h;
            }
        }
        self.generation = renumbering.generation();
    }

    fn slot(&mut self, queue: QueueId) -> &mut QueueHistory {
        let i = queue.index();
        if self.queues.len() <= i {
            self.queues.resize_with(i + 1, QueueHistory::default);
        }
        &mut self.queues[i]
    }

    /// A caller of `queue` was answered at `now`.
    pub fn answered(&mut self, queue: QueueId, now: Instant) {
        if queue != QueueId::NONE {
            self.slot(queue).answered(now);
        }
    }

    /// An answered call of `queue` ended after `handle` (talk plus the
    /// queue's wrap-up).
    pub fn handled(&mut self, queue: QueueId, handle: Duration) {
        if queue != QueueId::NONE {
            self.slot(queue).handled(handle);
        }
    }

    /// The average handle time of `queue`, if a call of it ended yet.
    pub fn handle_time(&self, queue: QueueId) -> Option<Duration> {
        self.queues
            .get(queue.index())
            .and_then(QueueHistory::handle_time)
    }

    /// The expected wait of the caller at `position` (1 = served next) of
    /// `queue`; `None` when nobody serves the queue or nothing is known.
    pub fn estimate(
        &self,
        queue: QueueId,
        position: usize,
        staff: Staffing,
        now: Instant,
    ) -> Option<Duration> {
        estimate(self.queues.get(queue.index()), position, staff, now)
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
    use crate::acd::ids::Names;

    fn staff(available: usize, busy: usize) -> Staffing {
        Staffing { available, busy }
    }

    fn secs(d: Option<Duration>) -> Option<u64> {
        d.map(|d| d.as_secs_f64().round() as u64)
    }

    const Q: QueueId = QueueId::from_index(0);
    const OTHER: QueueId = QueueId::from_index(1);

    #[test]
    fn nothing_known_or_nobody_serving_means_no_estimate() {
        let mut e = WaitEstimator::default();
        let t0 = Instant::now();
        assert_eq!(e.estimate(Q, 1, staff(0, 1), t0), None);
        e.handled(Q, Duration::from_secs(60));
        assert_eq!(e.estimate(Q, 1, staff(0, 0), t0), None, "nobody serving");
        assert_eq!(e.estimate(OTHER, 1, staff(0, 2), t0), None);
        e.handled(QueueId::NONE, Duration::from_secs(60));
        assert_eq!(e.handle_time(QueueId::NONE), None, "no queue keeps nothing");
    }

    #[test]
    fn each_position_waits_one_more_turn_and_agents_joining_shorten_it() {
        let mut e = WaitEstimator::default();
        let t0 = Instant::now();
        e.handled(Q, Duration::from_secs(120));
        // Two agents busy: one frees up every 60 s.
        assert_eq!(secs(e.estimate(Q, 1, staff(0, 2), t0)), Some(60));
        assert_eq!(secs(e.estimate(Q, 3, staff(0, 2), t0)), Some(180));
        // Four serving: every 30 s.
        assert_eq!(secs(e.estimate(Q, 3, staff(0, 4), t0)), Some(90));
        // One free now: the first caller is taken at once, the third
        // waits two turns.
        assert_eq!(secs(e.estimate(Q, 1, staff(1, 3), t0)), Some(0));
        assert_eq!(secs(e.estimate(Q, 3, staff(1, 3), t0)), Some(60));
    }

    #[test]
    fn the_handle_time_follows_recent_calls() {
        let mut e = WaitEstimator::default();
        for _ in 0..3 {
            e.handled(Q, Duration::from_secs(100));
        }
        assert_eq!(e.handle_time(Q), Some(Duration::from_secs(100)));
        for _ in 0..10 {
            e.handled(Q, Duration::from_secs(20));
        }
        let aht = e.handle_time(Q).unwrap().as_secs_f64();
        assert!(aht < 25.0 && aht > 20.0, "{aht}");
    }

    #[test]
    fn before_any_call_ends_the_answer_rate_stands_in() {
        let mut e = WaitEstimator::default();
        let t0 = Instant::now();
        e.answered(Q, t0);
        assert_eq!(
            e.estimate(Q, 1, staff(0, 1), t0),
            None,
            "one answer is no rate"
        );
        e.answered(Q, t0 + Duration::from_secs(40));
        e.answered(Q, t0 + Duration::from_secs(80));
        let now = t0 + Duration::from_secs(90);
        assert_eq!(secs(e.estimate(Q, 2, staff(0, 3), now)), Some(80));
        // Answers older than the window no longer count.
        let later = t0 + ANSWER_WINDOW + Duration::from_secs(41);
        assert_eq!(e.estimate(Q, 2, staff(0, 3), later), None);
    }

    fn table(queues: &[&str]) -> Names {
        let mut n = Names::default();
        for q in queues {
            n.intern_queue(q);
        }
        n
    }

    #[test]
    fn a_reload_carries_each_history_to_its_queue_by_name() {
        let mut e = WaitEstimator::default();
        let old = table(&["billing", "gone", "support"]);
        let id = |n: &Names, q: &str| n.queue(q).expect("queue");
        e.follow(&Renumbering::default());
        e.handled(id(&old, "billing"), Duration::from_secs(10));
        e.handled(id(&old, "gone"), Duration::from_secs(20));
        e.handled(id(&old, "support"), Duration::from_secs(30));
        // The new table drops "gone" and adds "alpha" before the others.
        let new = table(&["alpha", "billing", "support"]);
        let r = Renumbering::between(&old, &new, 1);
        e.follow(&r);
        e.follow(&r); // a second look changes nothing
        let aht = |e: &WaitEstimator, q| e.handle_time(q).map(|d| d.as_secs());
        assert_eq!(aht(&e, id(&new, "billing")), Some(10));
        assert_eq!(aht(&e, id(&new, "support")), Some(30));
        assert_eq!(aht(&e, id(&new, "alpha")), None, "a new queue starts empty");
        // Two reloads missed at once cannot be mapped: start over.
        e.follow(&Renumbering::between(&new, &old, 3));
        assert_eq!(aht(&e, id(&old, "billing")), None);
    }
}
