//! One signalling shard's handles on the per-queue, per-agent and per-IVR
//! counters. A family's map sits behind a lock that every shard would take
//! for every event; a handle is the series' own atomic, so after the first
//! event of a queue (agent, node) counting is a hash lookup in a map the
//! shard owns and an atomic add.

use ahash::AHashMap as HashMap;

use prometheus_client::metrics::counter::Counter;

use super::{AgentLabel, FloatCounter, IvrNodeLabel, Metrics, QueueLabel};

/// The counters of one queue.
#[derive(Debug, Clone)]
pub struct QueueCounters {
    pub offered: Counter,
    pub answered: Counter,
    /// Answered within the queue's `service_level_s`.
    pub answered_in_sl: Counter,
    pub abandoned: Counter,
    pub overflowed: Counter,
    pub closed: Counter,
}

/// The counters of one agent.
#[derive(Debug, Clone)]
pub struct AgentCounters {
    pub answered: Counter,
    pub talk_seconds: FloatCounter,
}

#[derive(Debug, Default)]
pub struct CounterHandles {
    queues: HashMap<String, QueueCounters>,
    agents: HashMap<String, AgentCounters>,
    ivr_closed: HashMap<(String, String), Counter>,
}

impl CounterHandles {
    pub fn queue(&mut self, m: &Metrics, queue: &str) -> &QueueCounters {
        if !self.queues.contains_key(queue) {
            let l = QueueLabel {
                queue: queue.to_owned(),
            };
            let h = QueueCounters {
                offered: m.queue_offered.get_or_create(&l).clone(),
                answered: m.queue_answered.get_or_create(&l).clone(),
                answered_in_sl: m.queue_answered_in_sl.get_or_create(&l).clone(),
                abandoned: m.queue_abandoned.get_or_create(&l).clone(),
                overflowed: m.queue_overflowed.get_or_create(&l).clone(),
                closed: m.queue_closed.get_or_create(&l).clone(),
            };
            self.queues.insert(queue.to_owned(), h);
        }
        &self.queues[queue]
    }

    pub fn agent(&mut self, m: &Metrics, agent: &str) -> &AgentCounters {
        if !self.agents.contains_key(agent) {
            let l = AgentLabel {
                agent: agent.to_owned(),
            };
            let h = AgentCounters {
                answered: m.agent_answered.get_or_create(&l).clone(),
                talk_seconds: m.agent_talk_seconds.get_or_create(&l).clone(),
            };
            self.agents.insert(agent.to_owned(), h);
        }
        &self.agents[agent]
    }

    /// The closed-branch counter of schedule node `node` of IVR `ivr`.
    pub fn ivr_closed(&mut self, m: &Metrics, ivr: &str, node: &str) -> &Counter {
        // The owned key costs two small allocations per event: a call takes
        // a closed branch once at most, far from every message.
        let key = (ivr.to_owned(), node.to_owned());
        self.ivr_closed.entry(key).or_insert_with(|| {
            m.ivr_closed
                .get_or_create(&IvrNodeLabel {
                    ivr: ivr.to_owned(),
                    node: node.to_owned(),
                })
                .clone()
        })
    }
}
