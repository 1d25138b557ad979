//! The Prometheus queue, agent and IVR counters, folded from the engine's
//! event stream: offered, answered (and within the service level),
//! abandoned, overflowed and closed per queue; answered and talk time per
//! agent; closed branches per IVR `schedule` node; survey scores per queue
//! and agent (`super::csat`).

use ahash::AHashMap as HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::acd::DivertReason;
use crate::config::Config;
use crate::events::{CallRef, Event, EventKind};

use super::{CounterHandles, Metrics};

/// Where one shard's calls stand, as far as the counters care.
#[derive(Debug)]
enum Stage {
    /// Waiting in this queue.
    Waiting(String),
    /// Talking to this agent since then.
    Talking(String, Instant),
}

/// One shard's counting.
#[derive(Debug)]
pub struct MetricsFold {
    metrics: Arc<Metrics>,
    handles: CounterHandles,
    sip: super::SipCounters,
    calls: HashMap<CallRef, Stage>,
}

impl MetricsFold {
    pub fn new(metrics: Arc<Metrics>) -> MetricsFold {
        MetricsFold {
            metrics,
            handles: CounterHandles::default(),
            sip: super::SipCounters::default(),
            calls: HashMap::new(),
        }
    }

    /// Adds what shard `shard`'s engine counted of its own work.
    pub fn absorb(&mut self, shard: usize, tally: &crate::endpoint::Tally) {
        self.sip.absorb(&self.metrics, shard, tally);
    }

    pub fn fold(&mut self, ev: &Event, cfg: &Config) {
        let m = &*self.metrics;
        match &ev.kind {
            EventKind::Queued {
                call,
                queue,
                refused,
                ..
            } => {
                self.handles.queue(m, queue).offered.inc();
                if refused.is_none() {
                    self.calls
                        .insert(call.clone(), Stage::Waiting(queue.clone()));
                }
            }
            EventKind::Diverted {
                call,
                queue,
                reason,
                ..
            } => {
                let c = self.handles.queue(m, queue);
                match reason {
                    DivertReason::Closed => c.closed.inc(),
                    _ => c.overflowed.inc(),
                };
                self.calls.remove(call);
            }
            EventKind::Answered {
                call,
                agent,
                waited,
                ..
            } => {
                if let Some(Stage::Waiting(queue)) = self.calls.remove(call) {
                    let sl = cfg.queues.get(&queue).map(|q| q.service_level_s);
                    let c = self.handles.queue(m, &queue);
                    c.answered.inc();
                    if sl.is_some_and(|sl| waited.as_secs_f64() <= sl as f64) {
                        c.answered_in_sl.inc();
                    }
                    self.handles.agent(m, agent).answered.inc();
                    let stage = Stage::Talking(agent.clone(), ev.at.mono);
                    self.calls.insert(call.clone(), stage);
                }
            }
            // The first agent's talk ends here; the caller's next queue
            // (a `Queued` that follows) starts a new stage.
            EventKind::Transferred { call, .. } | EventKind::SurveyStarted { call, .. } => {
                if let Some(Stage::Talking(agent, since)) = self.calls.remove(call) {
                    let talked = ev.at.mono.saturating_duration_since(since);
                    let c = self.handles.agent(m, &agent);
                    c.talk_seconds.inc_by(talked.as_secs_f64());
                }
            }
            // The consulted agent talks with the caller from now on: its
            // talk time counts from the join (its answer was counted on the
            // consultation call).
            EventKind::Joined { call, agent, .. } => {
                let stage = Stage::Talking(agent.clone(), ev.at.mono);
                self.calls.insert(call.clone(), stage);
            }
            EventKind::Ended(end) => match self.calls.remove(&end.call) {
                Some(Stage::Waiting(queue)) => {
                    self.handles.queue(m, &queue).abandoned.inc();
                }
                Some(Stage::Talking(agent, since)) => {
                    let talked = ev.at.mono.saturating_duration_since(since);
                    let c = self.handles.agent(m, &agent);
                    c.talk_seconds.inc_by(talked.as_secs_f64());
                }
                None => {}
            },
            EventKind::CsatScored {
                queue,
                agent,
                score,
                ..
            } => {
                // Once per survey: no handle cache needed.
                let label = super::CsatLabel {
                    queue: queue.clone().unwrap_or_default(),
                    agent: agent.clone().unwrap_or_default(),
                };
                m.csat_responses.get_or_create(&label).inc();
                m.csat_score.get_or_create(&label).inc_by(u64::from(*score));
                m.csat.add(queue.as_deref(), agent.as_deref(), *score);
            }
            EventKind::CallbackOffered { queue, .. } => {
                m.callbacks.get_or_create(&callback(queue, "offered")).inc();
            }
            // The caller left its place to the callback: not abandoned.
            EventKind::CallbackAccepted { call, queue, .. } => {
                self.calls.remove(call);
                m.callbacks.get_or_create(&callback(queue, "accepted")).inc();
            }
            EventKind::CallbackResult {
                queue,
                outcome,
                gave_up,
                ..
            } => {
                if *outcome == crate::events::CallbackOutcome::Reached {
                    m.callbacks.get_or_create(&callback(queue, "reached")).inc();
                } else if *gave_up {
                    m.callbacks.get_or_create(&callback(queue, "gave_up")).inc();
                }
            }
            EventKind::CallbackCancelled { queue, .. } => {
                m.callbacks
                    .get_or_create(&callback(queue, "cancelled"))
                    .inc();
            }
            EventKind::VoicemailEnded { .. } => {
                m.voicemails.inc();
            }
            EventKind::CallbackAttempt { .. } | EventKind::CallbackRestored { .. } => {}
            EventKind::IvrClosed { ivr, node, .. } => {
                self.handles.ivr_closed(m, ivr, node).inc();
            }
            EventKind::Trunk { trunk, step, .. } => {
                let result = match step {
                    crate::events::TrunkStep::Answered => "answered",
                    crate::events::TrunkStep::Failed { .. } => "failed",
                    _ => return,
                };
                // Once per outbound call: no handle cache needed.
                m.trunk_calls
                    .get_or_create(&super::TrunkResultLabel {
                        trunk: trunk.clone(),
                        result,
                    })
                    .inc();
            }
            EventKind::Arrived { .. }
            | EventKind::Rejected { .. }
            | EventKind::IvrStep { .. }
            // Counted as the trunk call's `answered`.
            | EventKind::TrunkBridged { .. }
            | EventKind::Offered { .. }
            | EventKind::RingNoAnswer { .. }
            | EventKind::AgentState { .. }
            | EventKind::AgentReachable { .. }
            | EventKind::AgentPaused { .. }
            | EventKind::AgentLogin { .. }
            | EventKind::RecordingStarted { .. }
            | EventKind::Monitor { .. }
            | EventKind::RecordingEnded { .. }
            | EventKind::VoicemailStarted { .. } => {}
        }
    }
}

fn callback(queue: &str, step: &'static str) -> super::CallbackLabel {
    super::CallbackLabel {
        queue: queue.to_owned(),
        step,
    }
}
