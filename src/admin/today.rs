//! Today's figures per queue (the wallboard, `GET /api/v1/queues`), folded
//! from the calls that ended today in `server.timezone`: offered, answered,
//! abandoned, their waits, and the service level (answered within the
//! queue's `service_level_s`, divided by answered plus abandoned), and
//! the post-call survey scores (CSAT) per queue and per agent. One
//! board is shared by every shard; a call costs one short lock at its end.

use ahash::AHashMap as HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, Utc};

use crate::cdr::Disposition;
use crate::config::Config;
use crate::events::{unix_ms, Ended, Event, EventKind, Now};

/// One queue's calls of the day.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ServiceCount {
    /// Answered within `service_level_s`.
    pub within: u64,
    /// Answered + abandoned + overflowed + interrupted, as `cdr::report`.
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// Summed waits of the answered calls.
    pub answered_wait_ms: u64,
}

impl ServiceCount {
    /// Percent of answered and abandoned calls answered within the service
    /// level; `None` before the first such call.
    pub fn service_level(&self) -> Option<f64> {
        let total = self.answered + self.abandoned;
        (total > 0).then(|| 100.0 * self.within as f64 / total as f64)
    }

    /// Percent of offered calls abandoned.
    pub fn abandon_rate(&self) -> Option<f64> {
        (self.offered > 0).then(|| 100.0 * self.abandoned as f64 / self.offered as f64)
    }

    /// Average speed of answer, in seconds.
    pub fn asa_s(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answered_wait_ms as f64 / 1000.0 / self.answered as f64)
    }
}

/// Survey scores: how many, and their sum.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Csat {
    pub responses: u64,
    pub sum: u64,
}

impl Csat {
    /// The mean score; `None` before the first.
    pub fn mean(&self) -> Option<f64> {
        (self.responses > 0).then(|| self.sum as f64 / self.responses as f64)
    }
}

#[derive(Debug, Default)]
struct Day {
    day: Option<NaiveDate>,
    queues: HashMap<String, ServiceCount>,
    queue_csat: HashMap<String, Csat>,
    agent_csat: HashMap<String, Csat>,
}

/// The day's counts, shared by the shards that fold into it and the views
/// that read it.
#[derive(Debug, Clone, Default)]
pub struct TodayBoard {
    day: Arc<Mutex<Day>>,
}

fn local_day(cfg: &Config, wall: std::time::SystemTime) -> NaiveDate {
    DateTime::<Utc>::from(wall)
        .with_timezone(&cfg.server.timezone)
        .date_naive()
}

impl TodayBoard {
    /// Counts a call that ended (other events change nothing here).
    pub fn fold(&self, ev: &Event, cfg: &Config) {
        match &ev.kind {
            EventKind::Ended(end) => self.count(end, ev.at, cfg),
            EventKind::CsatScored {
                queue,
                agent,
                score,
                ..
            } => {
                let mut today = self.today(cfg, ev.at);
                let add = |c: &mut Csat| {
                    c.responses += 1;
                    c.sum += u64::from(*score);
                };
                if let Some(q) = queue {
                    add(today.queue_csat.entry(q.clone()).or_default());
                }
                if let Some(a) = agent {
                    add(today.agent_csat.entry(a.clone()).or_default());
                }
            }
            _ => {}
        }
    }

    /// The board, started afresh on a new day.
    fn today(&self, cfg: &Config, at: Now) -> std::sync::MutexGuard<'_, Day> {
        let day = local_day(cfg, at.wall);
        let mut today = self.day.lock().unwrap_or_else(PoisonError::into_inner);
        if today.day != Some(day) {
            *today = Day {
                day: Some(day),
                ..Day::default()
            };
        }
        today
    }

    /// Today's survey scores of `agent`.
    pub fn agent_csat(&self, agent: &str, cfg: &Config, now: Now) -> Csat {
        let today = self.day.lock().unwrap_or_else(PoisonError::into_inner);
        if today.day != Some(local_day(cfg, now.wall)) {
            return Csat::default();
        }
        today.agent_csat.get(agent).copied().unwrap_or_default()
    }

    /// Today's survey scores of `queue`.
    pub fn queue_csat(&self, queue: &str, cfg: &Config, now: Now) -> Csat {
        let today = self.day.lock().unwrap_or_else(PoisonError::into_inner);
        if today.day != Some(local_day(cfg, now.wall)) {
            return Csat::default();
        }
        today.queue_csat.get(queue).copied().unwrap_or_default()
    }

    /// Fills the day's survey scores into agent views.
    pub fn fill_agents(&self, views: &mut [crate::views::AgentView], cfg: &Config, now: Now) {
        for v in views {
            let c = self.agent_csat(&v.id, cfg, now);
            v.csat_today = c.mean();
            v.csat_responses_today = c.responses;
        }
    }

    fn count(&self, end: &Ended, at: Now, cfg: &Config) {
        let Some(queue) = end.queue.as_deref().filter(|_| !end.placed) else {
            return;
        };
        let answered = end.disposition == Disposition::Answered;
        let offered = matches!(
            end.disposition,
            Disposition::Answered
                | Disposition::Abandoned
                | Disposition::Overflowed
                | Disposition::Interrupted
        );
        if !offered {
            return;
        }
        let sl_ms = cfg
            .queues
            .get(queue)
            .map_or(20, |q| q.service_level_s)
            .saturating_mul(1000);
        let from = end.queued.unwrap_or(end.arrived).max(end.arrived);
        let waited_ms = end
            .answered
            .map_or(0, |a| unix_ms(a).saturating_sub(unix_ms(from)));
        let mut today = self.today(cfg, at);
        let c = today.queues.entry(queue.to_owned()).or_default();
        c.offered += 1;
        if answered {
            let waited_ms = u64::try_from(waited_ms).unwrap_or(0);
            c.answered += 1;
            c.answered_wait_ms = c.answered_wait_ms.saturating_add(waited_ms);
            if waited_ms <= sl_ms {
                c.within += 1;
            }
        } else if end.disposition == Disposition::Abandoned {
            c.abandoned += 1;
        }
    }

    /// Today's counts of `queue` (all zero before its first call of the
    /// day).
    pub fn queue(&self, queue: &str, cfg: &Config, now: Now) -> ServiceCount {
        let today = self.day.lock().unwrap_or_else(PoisonError::into_inner);
        if today.day != Some(local_day(cfg, now.wall)) {
            return ServiceCount::default();
        }
        today.queues.get(queue).copied().unwrap_or_default()
    }

    /// Fills the day's figures into queue views.
    pub fn fill(&self, views: &mut [super::QueueView], cfg: &Config, now: Now) {
        for v in views {
            let t = self.queue(&v.name, cfg, now);
            v.service_level_today = t.service_level();
            v.offered_today = t.offered;
            v.answered_today = t.answered;
            v.abandoned_today = t.abandoned;
            v.abandon_rate_today = t.abandon_rate();
            v.asa_today_s = t.asa_s();
            let c = self.queue_csat(&v.name, cfg, now);
            v.csat_today = c.mean();
            v.csat_responses_today = c.responses;
        }
    }
}
