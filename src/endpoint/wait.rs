//! The engine's part of the estimated wait ([`crate::acd::estimate`]):
//! feeding it the handle time of each answered call, and asking it for a
//! queue or a waiting caller, with the router's staffing of the queue.
//! The figures are kept by the router's queue ids and follow them through
//! a reload.

use std::sync::MutexGuard;
use std::time::Duration;

use super::{CallHandle, Endpoint, Now};
#[cfg(test)]
use crate::acd::estimate::Staffing;
use crate::acd::estimate::WaitEstimator;
use crate::acd::QueueId;

impl Endpoint {
    /// The shards' estimator, its ids brought up to the router's table.
    fn estimator(&self) -> MutexGuard<'_, WaitEstimator> {
        let mut e = super::shard::lock(&self.shared.estimates);
        e.follow(self.router.renumbering());
        e
    }

    fn queue_id(&self, queue: &str) -> QueueId {
        self.router.names().queue(queue).unwrap_or(QueueId::NONE)
    }

    /// A caller of `queue` was answered.
    pub(super) fn note_answered(&mut self, queue: &str, now: Now) {
        let q = self.queue_id(queue);
        self.estimator().answered(q, now.mono);
    }

    /// An answered call is ending: its talk time plus the queue's wrap-up
    /// is one more handle time of the queue.
    pub(super) fn note_handle_time(&mut self, ck: CallHandle, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let (Some(answered), Some(queue)) = (call.answered_at, call.queue()) else {
            return;
        };
        let talk = now.wall.duration_since(answered).unwrap_or_default();
        let wrapup = self.cfg.queues.get(queue).map_or(0, |q| q.wrapup_s);
        let handle = talk + Duration::from_secs(wrapup);
        let q = self.queue_id(queue);
        self.estimator().handled(q, handle);
    }

    /// The expected wait at `position` of `queue` (1 = next), with its
    /// staffing as the router counts it now.
    pub(super) fn estimated_wait(
        &self,
        queue: &str,
        position: usize,
        now: Now,
    ) -> Option<Duration> {
        let q = self.queue_id(queue);
        let staff = self.router.staffing(q);
        self.estimator().estimate(q, position, staff, now.mono)
    }

    /// The queue's average handle time, if a call of it ended yet.
    #[cfg(test)]
    pub(super) fn handle_time(&self, queue: &str) -> Option<Duration> {
        let q = self.queue_id(queue);
        self.estimator().handle_time(q)
    }

    /// As [`Endpoint::estimated_wait`], with a staffing counted elsewhere
    /// (the tests' oracle counts it from the router's queue listing).
    #[cfg(test)]
    pub(super) fn estimate_with(
        &self,
        queue: &str,
        position: usize,
        staff: Staffing,
        now: Now,
    ) -> Option<Duration> {
        let q = self.queue_id(queue);
        self.estimator().estimate(q, position, staff, now.mono)
    }
}
