//! The engine's part of the estimated wait ([`crate::acd::estimate`]):
//! feeding it the handle time of each answered call, and asking it for a
//! queue or a waiting caller, with the router's staffing of the queue.

use std::time::Duration;

use super::{CallHandle, Endpoint, Now};
use crate::acd::estimate::Staffing;

impl Endpoint {
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
        super::shard::lock(&self.shared.estimates).handled(queue, handle);
    }

    /// The expected wait at `position` of `queue` (1 = next), given its
    /// staffing as the router counts it.
    pub(super) fn estimated_wait(
        &self,
        queue: &str,
        position: usize,
        staff: Staffing,
        now: Now,
    ) -> Option<Duration> {
        super::shard::lock(&self.shared.estimates).estimate(queue, position, staff, now.mono)
    }

    /// The queue's average handle time, if a call of it ended yet.
    #[cfg(test)]
    pub(super) fn handle_time(&self, queue: &str) -> Option<Duration> {
        super::shard::lock(&self.shared.estimates).handle_time(queue)
    }

    /// The router's staffing of `queue` now.
    pub(super) fn staffing(&self, queue: &str, now: Now) -> Staffing {
        self.router
            .queues(now.mono)
            .into_iter()
            .find(|q| &*q.name == queue)
            .map_or_else(Staffing::default, |q| Staffing {
                available: q.agents_available,
                busy: q.agents_busy,
            })
    }
}
