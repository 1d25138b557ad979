//! One shard's consumers of the engine's event stream, wired to where
//! their output goes: call records and agent sessions to the record
//! writer, queue_log lines to theirs, live events to the admin hub, and
//! the Prometheus counters, today's figures and the live queue figures
//! updated in place. Each
//! consumer is its own module ([`crate::events`] lists them); this only
//! hands every event to each, in order.

use std::sync::Arc;

use tracing::error;

use crate::admin::board::LiveBoard;
use crate::admin::today::TodayBoard;
use crate::admin::EventHub;
use crate::cdr::fold::{RecordFold, RecordOut};
use crate::cdr::queue_log_fold::{QueueLogFold, WaitingBoard};
use crate::cdr::{CdrHandle, QueueLogHandle};
use crate::config::Config;
use crate::endpoint::{Endpoint, Now};
use crate::events::Event;
use crate::metrics::fold::MetricsFold;
use crate::metrics::Metrics;

/// What every shard's observers share.
#[derive(Clone)]
pub struct Sinks {
    pub records: CdrHandle,
    pub qlog: Option<QueueLogHandle>,
    pub hub: EventHub,
    pub metrics: Arc<Metrics>,
    pub today: TodayBoard,
    pub board: LiveBoard,
    pub waiting: WaitingBoard,
}

/// One shard's folds.
pub struct Observers {
    sinks: Sinks,
    records: RecordFold,
    qlog: Option<QueueLogFold>,
    metrics: MetricsFold,
}

impl Observers {
    pub fn new(sinks: &Sinks) -> Observers {
        Observers {
            records: RecordFold::default(),
            qlog: sinks
                .qlog
                .as_ref()
                .map(|_| QueueLogFold::new(sinks.waiting.clone())),
            metrics: MetricsFold::new(sinks.metrics.clone()),
            sinks: sinks.clone(),
        }
    }

    /// Folds every event `ep` has queued, and adds its tally to the
    /// counters.
    pub fn drain(&mut self, ep: &mut Endpoint, now: Now) {
        let shard = ep.shard().index;
        let metrics = &mut self.metrics;
        ep.drain_tally(|t| metrics.absorb(shard, t));
        let Some(first) = ep.poll_event(now) else {
            return;
        };
        let cfg = ep.config();
        self.observe(&first, &cfg);
        while let Some(ev) = ep.poll_event(now) {
            self.observe(&ev, &cfg);
        }
    }

    fn observe(&mut self, ev: &Event, cfg: &Config) {
        self.records.fold(ev);
        while let Some(out) = self.records.poll() {
            let sent = match out {
                RecordOut::Call(r) => self.sinks.records.record_boxed(r),
                RecordOut::Session {
                    agent,
                    logged_in,
                    at_ms,
                } => self.sinks.records.agent_state(&agent, logged_in, at_ms),
            };
            if let Err(e) = sent {
                error!(error = %e, "call record lost");
            }
        }
        if let (Some(fold), Some(tx)) = (&mut self.qlog, &self.sinks.qlog) {
            fold.fold(ev);
            while let Some(line) = fold.poll() {
                if !tx.write(line.format()) {
                    error!("queue_log writer gone: line lost");
                }
            }
        }
        self.metrics.fold(ev, cfg);
        self.sinks.today.fold(ev, cfg);
        self.sinks.board.fold(ev, cfg);
        // Building a live event formats its time and copies its strings:
        // only worth it for someone listening.
        if self.sinks.hub.subscribers() > 0 {
            for live in crate::admin::live::live_events(ev) {
                self.sinks.hub.publish(&live);
            }
        }
    }
}
