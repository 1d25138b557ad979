//! The queues as the engine itself counts them, from its calls and the
//! router. The daemon serves the live board's fold of the event stream
//! instead (`admin::board`); this count is the oracle the engine's tests
//! hold that fold to, so the two cannot drift apart unseen.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::views::{is_waiting, waited_s};
use super::{Endpoint, Now};
use crate::views::{next_open_change, QueueView};

impl Endpoint {
    /// The queues as the engine itself counts them. The daemon serves the
    /// live board's fold of the events instead (`admin::board`); this is
    /// the oracle the tests hold that fold to.
    pub fn queue_views(&self, now: Now) -> Vec<QueueView> {
        let wall: DateTime<Utc> = now.wall.into();
        let router_queues: HashMap<String, crate::acd::QueueStatus> = self
            .router
            .queues(now.mono)
            .into_iter()
            .map(|q| (q.name.to_string(), q))
            .collect();
        self.cfg
            .queues
            .values()
            .map(|q| {
                let waits: Vec<f64> = self
                    .calls
                    .values()
                    .filter(|c| c.queue() == Some(q.name.as_str()) && is_waiting(c))
                    .map(|c| waited_s(c.queued_at, now.mono))
                    .collect();
                let st = router_queues.get(q.name.as_str());
                let count = |f: fn(&crate::acd::QueueStatus) -> usize| {
                    u32::try_from(st.map_or(0, f)).unwrap_or(u32::MAX)
                };
                let staff = crate::acd::estimate::Staffing {
                    available: st.map_or(0, |s| s.agents_available),
                    busy: st.map_or(0, |s| s.agents_busy),
                };
                // The router's count of waiting callers is every shard's,
                // so every shard gives the same estimate.
                let position = st.map_or(0, |s| s.waiting) + 1;
                let estimated_wait_s = self
                    .estimate_with(&q.name, position, staff, now)
                    .map(|d| d.as_secs_f64().round());
                let schedule = q.schedule.as_ref().and_then(|n| self.cfg.schedules.get(n));
                let open = schedule.is_none_or(|s| s.is_open(wall));
                let (callbacks, longest_callback) = self.callbacks_waiting(&q.name, now);
                QueueView {
                    name: q.name.clone(),
                    waiting: u32::try_from(waits.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(callbacks),
                    callbacks_waiting: callbacks,
                    longest_wait_s: waits.into_iter().fold(longest_callback, f64::max),
                    agents_available: count(|s| s.agents_available),
                    agents_busy: count(|s| s.agents_busy),
                    open,
                    agents_wrapup: count(|s| s.agents_wrapup),
                    agents_paused: count(|s| s.agents_paused),
                    // Today's figures are the admin's (`admin::today`).
                    service_level_today: None,
                    offered_today: 0,
                    answered_today: 0,
                    abandoned_today: 0,
                    abandon_rate_today: None,
                    asa_today_s: None,
                    csat_today: None,
                    csat_responses_today: 0,
                    service_level_s: q.service_level_s,
                    service_level_target: q.service_level_target,
                    next_change: schedule.and_then(|s| next_open_change(s, wall)),
                    estimated_wait_s,
                    handle_time_s: self.handle_time(&q.name).map(|d| d.as_secs_f64().round()),
                }
            })
            .collect()
    }
}
