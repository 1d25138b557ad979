//! Prometheus counters, shared by the tasks where the events happen: the
//! signalling task's endpoint (SIP messages, queue outcomes, routing
//! latency), the media task (RTP) and the daemon (reloads). They are
//! `prometheus-client` atomics behind one `Arc`, so counting never waits
//! and never does I/O; `/metrics` encodes them together with the gauges
//! computed at scrape time from the admin views (see [`Metrics::render`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

mod atomic_histogram;
mod csat;
pub mod fold;
mod handles;
mod process;

pub use atomic_histogram::AtomicHistogram;
pub use csat::{CsatSum, CsatTotals};
pub use handles::{AgentCounters, CounterHandles, QueueCounters};
pub use process::ProcessStats;

/// A counter of seconds (talk time), added to in fractions.
pub type FloatCounter = Counter<f64, AtomicU64>;

use crate::admin::{AgentView, QueueView};
use crate::daemon::transport::TransportStats;

/// Agent states as the admin API names them; every one is exported, zeros
/// included, so a dashboard's series do not come and go.
pub const AGENT_STATES: [&str; 7] = [
    "logged_out",
    "available",
    "ringing",
    "on_call",
    "wrapup",
    "paused",
    "off_shift",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabel {
    pub agent: String,
}

/// A node of an IVR (`[ivr.IVR.nodes.NODE]`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrunkResultLabel {
    pub trunk: String,
    pub result: &'static str,
}

/// A queue's callbacks by step: offered, accepted, reached, gave_up,
/// cancelled.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabel {
    pub queue: String,
    pub step: &'static str,
}

/// The queue and agent a survey score is for (`""` when the call had none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CsatLabel {
    pub queue: String,
    pub agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IvrNodeLabel {
    pub ivr: String,
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueStateLabels {
    queue: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentStateLabel {
    agent: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    os: &'static str,
    arch: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `in` (received) or `out` (sent, retransmissions included).
    pub direction: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub direction: &'static str,
    /// The CSeq method the response answers.
    pub method: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    pub shard: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// Routing decisions take microseconds; the top buckets catch a stall.
const ROUTING_BUCKETS: [f64; 12] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 1e-1,
];

/// Every counter of the daemon. Cloning a field clones a handle to the
/// same atomics.
#[derive(Debug)]
pub struct Metrics {
    pub queue_offered: Family<QueueLabel, Counter>,
    pub queue_answered: Family<QueueLabel, Counter>,
    pub queue_abandoned: Family<QueueLabel, Counter>,
    pub queue_overflowed: Family<QueueLabel, Counter>,
    pub queue_closed: Family<QueueLabel, Counter>,
    /// Answered within the queue's `service_level_s`.
    pub queue_answered_in_sl: Family<QueueLabel, Counter>,
    pub agent_answered: Family<AgentLabel, Counter>,
    pub agent_talk_seconds: Family<AgentLabel, FloatCounter>,
    /// Calls an IVR `schedule` node sent down its `closed` branch.
    pub ivr_closed: Family<IvrNodeLabel, Counter>,
    /// Outbound calls through each trunk by how they went: `answered` or
    /// `failed` (the gateway's code is in the live event).
    pub trunk_calls: Family<TrunkResultLabel, Counter>,
    /// Post-call survey scores: how many, and their sum (mean = sum /
    /// responses), per queue and agent.
    pub csat_responses: Family<CsatLabel, Counter>,
    pub csat_score: Family<CsatLabel, Counter>,
    /// The same scores per queue and per agent, with their means.
    pub csat: CsatTotals,
    /// Messages left in `voicemail` nodes.
    pub voicemails: Counter,
    pub callbacks: Family<CallbackLabel, Counter>,
    pub sip_requests: Family<RequestLabels, Counter>,
    pub sip_responses: Family<ResponseLabels, Counter>,
    pub sip_parse_errors: Counter,
    /// SIP messages received and thrown away (parse errors are apart).
    pub sip_dropped: Family<ReasonLabel, Counter>,
    pub rtp_relayed: Counter,
    pub rtp_dropped: Family<ReasonLabel, Counter>,
    /// Recordings started, and RTP packets a recording lost because its
    /// writer lagged (the relayed audio never waits for it).
    pub recordings: Counter,
    pub recording_lost: Counter,
    pub routing_seconds: AtomicHistogram,
    /// Router calls per signalling shard (each runs on its own task).
    pub shard_decisions: Family<ShardLabel, Counter>,
    /// Router outputs handed from the shard that decided them to the one
    /// owning the call.
    pub shard_handovers: Counter,
    /// Event handlers that panicked (the event was dropped, the shard
    /// went on).
    pub handler_panics: Counter,
    pub reloads: Family<ResultLabel, Counter>,
    /// The registrar's guessing limits: failed answers, blocks, REGISTERs
    /// refused while blocked, sources blocked now.
    pub sip_auth_failures: Counter,
    pub sip_auth_blocks: Counter,
    pub sip_auth_refused: Counter,
    pub sip_auth_blocked_sources: Gauge,
    /// The socket layer's own atomics, read at scrape time.
    transport: OnceLock<Arc<TransportStats>>,
    bindings: OnceLock<Arc<crate::registrar::WriterStats>>,
    flood: OnceLock<(Arc<crate::flood::FloodGate>, Arc<crate::flood::SetupCounts>)>,
    transactions: OnceLock<Arc<crate::sip::transaction::TxBudget>>,
    /// Times freed memory was handed back to the system after a flood.
    pub memory_trims: Counter,
    /// The call-record writer's counters, read at scrape time.
    cdr: OnceLock<crate::cdr::WriterStatsSource>,
    /// What the configuration in force says the series are.
    config: Mutex<ConfigSeries>,
}

/// The parts of the configuration that name series or give their values:
/// set at start and after each applied reload, read at scrape time.
#[derive(Debug, Default, Clone)]
struct ConfigSeries {
    /// (queue, service_level_s, service_level_target as a ratio).
    queues: Vec<(String, u64, f64)>,
    /// Every IVR `schedule` node, (ivr, node).
    schedule_nodes: Vec<(String, String)>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            queue_offered: Family::default(),
            queue_answered: Family::default(),
            queue_abandoned: Family::default(),
            queue_overflowed: Family::default(),
            queue_closed: Family::default(),
            queue_answered_in_sl: Family::default(),
            agent_answered: Family::default(),
            agent_talk_seconds: Family::default(),
            ivr_closed: Family::default(),
            trunk_calls: Family::default(),
            csat_responses: Family::default(),
            csat_score: Family::default(),
            csat: CsatTotals::default(),
            voicemails: Counter::default(),
            callbacks: Family::default(),
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            sip_parse_errors: Counter::default(),
            sip_dropped: Family::default(),
            rtp_relayed: Counter::default(),
            rtp_dropped: Family::default(),
            recordings: Counter::default(),
            recording_lost: Counter::default(),
            routing_seconds: AtomicHistogram::new(ROUTING_BUCKETS),
            shard_decisions: Family::default(),
            shard_handovers: Counter::default(),
            handler_panics: Counter::default(),
            reloads: Family::default(),
            sip_auth_failures: Counter::default(),
            sip_auth_blocks: Counter::default(),
            sip_auth_refused: Counter::default(),
            sip_auth_blocked_sources: Gauge::default(),
            transport: OnceLock::new(),
            flood: OnceLock::new(),
            transactions: OnceLock::new(),
            memory_trims: Counter::default(),
            bindings: OnceLock::new(),
            cdr: OnceLock::new(),
            config: Mutex::default(),
        }
    }
}

/// One shard's handles on the SIP counters it has used. After the first
/// message of a kind, counting is an atomic add on that series instead of
/// a lookup in the family's map behind its lock, which every shard would
/// take for every turn.
#[derive(Debug, Default)]
pub struct SipCounters {
    requests: ahash::AHashMap<(&'static str, &'static str), Counter>,
    responses: ahash::AHashMap<(&'static str, &'static str, u16), Counter>,
    dropped: ahash::AHashMap<&'static str, Counter>,
    decisions: Option<Counter>,
}

impl SipCounters {
    /// Adds what one shard's engine counted since the last time.
    pub fn absorb(&mut self, m: &Metrics, shard: usize, t: &crate::endpoint::Tally) {
        for (&(direction, method), &n) in &t.requests {
            self.requests
                .entry((direction, method))
                .or_insert_with(|| {
                    m.sip_requests
                        .get_or_create(&RequestLabels { direction, method })
                        .clone()
                })
                .inc_by(n);
        }
        for (&(direction, method, code), &n) in &t.responses {
            self.count_response(m, direction, method, code, n);
        }
        for (&reason, &n) in &t.dropped {
            self.dropped
                .entry(reason)
                .or_insert_with(|| m.sip_dropped.get_or_create(&ReasonLabel { reason }).clone())
                .inc_by(n);
        }
        m.sip_parse_errors.inc_by(t.parse_errors);
        m.sip_auth_failures.inc_by(t.auth.failures);
        m.sip_auth_blocks.inc_by(t.auth.blocks);
        m.sip_auth_refused.inc_by(t.auth.refused);
        if let Some(n) = t.auth.blocked_sources {
            m.sip_auth_blocked_sources
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        m.shard_handovers.inc_by(t.handovers);
        for &secs in &t.decisions {
            m.routing_seconds.observe(secs);
        }
        let shard = shard as u64;
        self.decisions
            .get_or_insert_with(|| {
                m.shard_decisions
                    .get_or_create(&ShardLabel { shard })
                    .clone()
            })
            .inc_by(t.decisions.len() as u64);
    }

    pub fn count_response(
        &mut self,
        m: &Metrics,
        direction: &'static str,
        method: &'static str,
        code: u16,
        n: u64,
    ) {
        self.responses
            .entry((direction, method, code))
            .or_insert_with(|| {
                m.sip_responses
                    .get_or_create(&ResponseLabels {
                        direction,
                        method,
                        code,
                    })
                    .clone()
            })
            .inc_by(n);
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Takes the queues' service-level settings and the IVRs' schedule
    /// nodes from `cfg` (at start and after each applied reload).
    pub fn set_config(&self, cfg: &crate::config::Config) {
        let queues = cfg
            .queues
            .values()
            .map(|q| {
                let target = f64::from(q.service_level_target) / 100.0;
                (q.name.clone(), q.service_level_s, target)
            })
            .collect();
        let schedule_nodes = cfg
            .ivrs
            .values()
            .flat_map(|ivr| {
                ivr.nodes
                    .iter()
                    .filter(|(_, n)| matches!(n, crate::config::Node::Schedule { .. }))
                    .map(|(name, _)| (ivr.name.clone(), name.clone()))
            })
            .collect();
        *self.lock_config() = ConfigSeries {
            queues,
            schedule_nodes,
        };
    }

    fn lock_config(&self) -> std::sync::MutexGuard<'_, ConfigSeries> {
        // The data is replaced whole: a panic elsewhere cannot leave it torn.
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// Lets the scrape read the call-record writer's counters.
    pub fn attach_cdr(&self, stats: crate::cdr::WriterStatsSource) {
        let _ = self.cdr.set(stats);
    }

    /// Lets the scrape read the registrations writer's counters.
    pub fn attach_bindings(&self, stats: Arc<crate::registrar::WriterStats>) {
        let _ = self.bindings.set(stats);
    }

    /// Lets the scrape read the bound on server transactions.
    pub fn attach_transactions(&self, budget: Arc<crate::sip::transaction::TxBudget>) {
        let _ = self.transactions.set(budget);
    }

    /// Lets the scrape read the flood limits' counters.
    pub fn attach_flood(
        &self,
        gate: Arc<crate::flood::FloodGate>,
        setup: Arc<crate::flood::SetupCounts>,
    ) {
        let _ = self.flood.set((gate, setup));
    }

    /// Lets the scrape read the socket layer's counters.
    pub fn attach_transport(&self, stats: Arc<TransportStats>) {
        let _ = self.transport.set(stats);
    }

    /// The whole exposition: counters plus gauges from `queues` and
    /// `agents`, the configuration's series and the process's, in the
    /// Prometheus text format (0.0.4), or OpenMetrics when `openmetrics`.
    pub fn render(&self, queues: &[QueueView], agents: &[AgentView], openmetrics: bool) -> String {
        let mut root = Registry::default();
        if let Some(p) = ProcessStats::read() {
            register_process(&mut root, &p);
        }
        let reg = root.sub_registry_with_prefix("sipacd");
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                os: std::env::consts::OS,
                arch: std::env::consts::ARCH,
            })
            .set(1);
        reg.register(
            "build_info",
            "Always 1; the labels say which build runs",
            build,
        );
        self.register_queues(reg, queues);
        self.register_agents(reg, agents);
        self.register_ivrs(reg);
        reg.register(
            "trunk_calls",
            "Outbound calls placed through a trunk, by result (answered or failed)",
            self.trunk_calls.clone(),
        );
        reg.register(
            "csat_responses",
            "Post-call survey scores given, per queue and agent",
            self.csat_responses.clone(),
        );
        reg.register(
            "csat_score",
            "Sum of the post-call survey scores, per queue and agent (mean = csat_score_total / csat_responses_total)",
            self.csat_score.clone(),
        );
        let queue_names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
        let agent_ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
        self.csat.register(reg, &queue_names, &agent_ids);
        reg.register(
            "voicemail_messages",
            "Messages callers left in voicemail nodes",
            self.voicemails.clone(),
        );
        reg.register(
            "callbacks",
            "Callbacks per queue by step: offered to a waiting caller, accepted, reached (the customer answered), gave_up (every try failed), cancelled",
            self.callbacks.clone(),
        );
        self.register_sip(reg);
        self.register_rest(reg);

        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &root)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &root)
        };
        out
    }

    fn register_queues(&self, reg: &mut Registry, queues: &[QueueView]) {
        let queue_counters = [
            (
                "queue_calls_offered",
                "Callers that entered the queue (an overflow counts in each queue entered)",
                &self.queue_offered,
            ),
            (
                "queue_calls_answered",
                "Calls from the queue answered by an agent",
                &self.queue_answered,
            ),
            (
                "queue_calls_answered_in_sl",
                "Calls from the queue answered within its service_level_s",
                &self.queue_answered_in_sl,
            ),
            (
                "queue_calls_abandoned",
                "Callers that hung up while waiting or while an agent's phone rang",
                &self.queue_abandoned,
            ),
            (
                "queue_calls_overflowed",
                "Callers sent on by max_wait_s, max_waiting or a removed queue",
                &self.queue_overflowed,
            ),
            (
                "queue_calls_closed",
                "Callers sent on because the queue's schedule was closed",
                &self.queue_closed,
            ),
        ];
        for (name, help, fam) in queue_counters {
            // Every configured queue shows, zeros included.
            for q in queues {
                let _ = fam.get_or_create(&QueueLabel {
                    queue: q.name.clone(),
                });
            }
            reg.register(name, help, fam.clone());
        }

        let waiting = Family::<QueueLabel, Gauge>::default();
        let longest = Family::<QueueLabel, Gauge<f64, AtomicU64>>::default();
        let open = Family::<QueueLabel, Gauge>::default();
        let estimated = Family::<QueueLabel, Gauge<f64, AtomicU64>>::default();
        for q in queues {
            let l = QueueLabel {
                queue: q.name.clone(),
            };
            waiting.get_or_create(&l).set(i64::from(q.waiting));
            longest.get_or_create(&l).set(q.longest_wait_s);
            open.get_or_create(&l).set(i64::from(q.open));
            // No series while there is no estimate: absent, not zero.
            if let Some(w) = q.estimated_wait_s {
                estimated.get_or_create(&l).set(w);
            }
        }
        reg.register_with_unit(
            "queue_estimated_wait",
            "The expected wait of a caller arriving now (absent while nobody serves the queue or nothing is known)",
            Unit::Seconds,
            estimated,
        );
        reg.register(
            "queue_callers_waiting",
            "Callers waiting in the queue now",
            waiting,
        );
        reg.register_with_unit(
            "queue_longest_wait",
            "How long the longest-waiting caller of the queue has waited",
            Unit::Seconds,
            longest,
        );
        reg.register(
            "queue_open",
            "1 while the queue's schedule is open, 0 while it is closed",
            open,
        );
        let queue_agents = Family::<QueueStateLabels, Gauge>::default();
        for q in queues {
            let busy = q.agents_busy.saturating_sub(q.agents_wrapup);
            let states = [
                ("available", q.agents_available),
                ("busy", busy),
                ("wrapup", q.agents_wrapup),
                ("paused", q.agents_paused),
            ];
            for (state, n) in states {
                queue_agents
                    .get_or_create(&QueueStateLabels {
                        queue: q.name.clone(),
                        state,
                    })
                    .set(i64::from(n));
            }
        }
        reg.register(
            "queue_agents",
            "Logged-in agents that serve the queue, by state (available; busy: ringing or on a call; wrapup; paused)",
            queue_agents,
        );

        let sl_seconds = Family::<QueueLabel, Gauge>::default();
        let sl_target = Family::<QueueLabel, Gauge<f64, AtomicU64>>::default();
        for (queue, secs, target) in &self.lock_config().queues {
            let l = QueueLabel {
                queue: queue.clone(),
            };
            sl_seconds
                .get_or_create(&l)
                .set(i64::try_from(*secs).unwrap_or(i64::MAX));
            sl_target.get_or_create(&l).set(*target);
        }
        reg.register_with_unit(
            "queue_service_level",
            "The queue's service_level_s: answered within this counts as in service level",
            Unit::Seconds,
            sl_seconds,
        );
        reg.register(
            "queue_service_level_target_ratio",
            "The queue's service_level_target (percent) as a ratio",
            sl_target,
        );
    }

    fn register_agents(&self, reg: &mut Registry, agents: &[AgentView]) {
        let by_state = Family::<StateLabel, Gauge>::default();
        for state in AGENT_STATES {
            let n = agents.iter().filter(|a| a.state == state).count();
            by_state
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        reg.register("agents", "Configured agents by state", by_state);

        // One series per configured agent and state: 1 for its state now.
        let agent_state = Family::<AgentStateLabel, Gauge>::default();
        for a in agents {
            for state in AGENT_STATES {
                agent_state
                    .get_or_create(&AgentStateLabel {
                        agent: a.id.clone(),
                        state,
                    })
                    .set(i64::from(a.state == state));
            }
            let l = AgentLabel {
                agent: a.id.clone(),
            };
            let _ = self.agent_answered.get_or_create(&l);
            let _ = self.agent_talk_seconds.get_or_create(&l);
        }
        reg.register(
            "agent_state",
            "1 for the state each configured agent is in now, 0 for the others",
            agent_state,
        );
        reg.register(
            "agent_calls_answered",
            "Calls the agent answered",
            self.agent_answered.clone(),
        );
        reg.register(
            "agent_talk_seconds",
            "Seconds the agent talked on answered calls (counted when each call ends)",
            self.agent_talk_seconds.clone(),
        );
    }

    fn register_ivrs(&self, reg: &mut Registry) {
        for (ivr, node) in &self.lock_config().schedule_nodes {
            let _ = self.ivr_closed.get_or_create(&IvrNodeLabel {
                ivr: ivr.clone(),
                node: node.clone(),
            });
        }
        reg.register(
            "ivr_closed",
            "Calls an IVR schedule node sent down its closed branch (after-hours demand)",
            self.ivr_closed.clone(),
        );
    }

    fn register_sip(&self, reg: &mut Registry) {
        reg.register(
            "sip_requests",
            "SIP requests by direction and method",
            self.sip_requests.clone(),
        );
        reg.register(
            "sip_responses",
            "SIP responses by direction, CSeq method and status code",
            self.sip_responses.clone(),
        );
        reg.register(
            "sip_parse_errors",
            "Received SIP messages that could not be parsed",
            self.sip_parse_errors.clone(),
        );
        reg.register(
            "sip_auth_failures",
            "REGISTER digest answers that did not verify (wrong password or unknown user)",
            self.sip_auth_failures.clone(),
        );
        reg.register(
            "sip_auth_blocks",
            "Times a source was blocked for failing REGISTER authentication too often",
            self.sip_auth_blocks.clone(),
        );
        reg.register(
            "sip_auth_blocked_sources",
            "Sources blocked now for failing REGISTER authentication",
            self.sip_auth_blocked_sources.clone(),
        );
        reg.register(
            "sip_auth_blocked_requests",
            "REGISTERs refused with 403 because their source was blocked",
            self.sip_auth_refused.clone(),
        );
        let dropped = self.sip_dropped.clone();
        let _ = dropped.get_or_create(&ReasonLabel {
            reason: "foreign_via",
        });
        reg.register(
            "sip_dropped",
            "Received SIP messages dropped, by reason (foreign_via: a response whose top Via is not ours)",
            dropped,
        );
        if let Some(b) = self.transactions.get() {
            reg.register(
                "sip_server_transactions",
                "Server transactions alive now, on all shards (max_transactions bounds them)",
                ConstGauge::new(i64::try_from(b.live()).unwrap_or(i64::MAX)),
            );
            reg.register(
                "sip_transactions_refused",
                "Requests answered with a stateless 503 because max_transactions server transactions were alive",
                ConstCounter::new(b.refused.load(Ordering::Relaxed)),
            );
            reg.register(
                "sip_overload_rejected",
                "New INVITEs answered with a stateless 503 because SIP datagrams waited 100 ms or more before being read",
                ConstCounter::new(b.shed.load(Ordering::Relaxed)),
            );
        }
        reg.register(
            "memory_trims",
            "Times freed memory was handed back to the system once the transaction tables shrank",
            self.memory_trims.clone(),
        );
        if let Some((gate, setup)) = self.flood.get() {
            let c = |a: &AtomicU64| ConstCounter::new(a.load(Ordering::Relaxed));
            reg.register(
                "sip_flood_dropped",
                "SIP messages dropped unread because their source was blocked for flooding",
                c(&gate.stats.dropped),
            );
            reg.register(
                "sip_flood_blocks",
                "Times a source was blocked for sending over pike_max_requests per pike_window_s",
                c(&gate.stats.blocks),
            );
            reg.register(
                "sip_flood_block_extensions",
                "Times a blocked source went over pike_max_requests again, so its block started again",
                c(&gate.stats.extended),
            );
            gate.prune(std::time::Instant::now());
            let blocked = gate.blocked(std::time::Instant::now()).len();
            reg.register(
                "sip_flood_blocked_sources",
                "Sources blocked now for flooding",
                ConstGauge::new(i64::try_from(blocked).unwrap_or(i64::MAX)),
            );
            reg.register(
                "sip_flood_tracked_sources",
                "Sources the flood limiter keeps counts for",
                ConstGauge::new(i64::try_from(gate.tracked()).unwrap_or(i64::MAX)),
            );
            reg.register(
                "sip_setup_limited",
                "INVITEs answered 503 because their source had max_calls_in_setup_per_source calls in setup",
                c(&setup.refused),
            );
        }
        if let Some(t) = self.transport.get() {
            let c = |a: &AtomicU64| ConstCounter::new(a.load(Ordering::Relaxed));
            reg.register(
                "sip_tcp_framing_errors",
                "TCP connections closed because their stream was not valid SIP framing",
                c(&t.framing_errors),
            );
            reg.register(
                "sip_tcp_refused",
                "TCP connections refused because too many were open",
                c(&t.tcp_refused),
            );
            reg.register(
                "sip_send_errors",
                "SIP messages that could not be sent",
                c(&t.send_errors),
            );
            reg.register(
                "sip_tcp_refused_per_source",
                "TCP connections refused because their address had too many open",
                c(&t.tcp_refused_per_source),
            );
            reg.register(
                "sip_tcp_timed_out",
                "TCP connections closed by the message or idle timeout",
                c(&t.tcp_timed_out),
            );
            reg.register(
                "sip_tcp_connect_failures",
                "Outbound TCP connects that failed or timed out",
                c(&t.tcp_connect_failures),
            );
            reg.register(
                "sip_tls_handshake_failures",
                "TLS connections closed because their handshake failed or took too long",
                c(&t.tls_handshake_failures),
            );
            reg.register(
                "sip_tls_no_flow",
                "SIP messages dropped because the TLS connection of their peer was gone",
                c(&t.tls_no_flow),
            );
            reg.register(
                "sip_tcp_dropped",
                "SIP messages dropped: queued for a failed connect or a peer that does not read",
                c(&t.tcp_dropped),
            );
            let g = |a: &AtomicU64| {
                ConstGauge::new(i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX))
            };
            reg.register(
                "sip_tcp_connecting",
                "Outbound TCP connects under way",
                g(&t.tcp_connecting),
            );
            reg.register(
                "sip_tcp_connections",
                "Open SIP TCP connections",
                g(&t.tcp_open),
            );
        }
    }

    fn register_rest(&self, reg: &mut Registry) {
        if let Some(cdr) = self.cdr.get() {
            let w = cdr.read();
            reg.register(
                "cdr_records_written",
                "Call records (and their updates) written to SQLite",
                ConstCounter::new(w.written),
            );
            reg.register(
                "cdr_records_failed",
                "Call records dropped after repeated write errors",
                ConstCounter::new(w.failed),
            );
            reg.register(
                "cdr_batches",
                "Transactions the call-record writer committed",
                ConstCounter::new(w.batches),
            );
            reg.register(
                "cdr_write_failing",
                "1 while call records cannot be written (they wait and are retried; /health says degraded)",
                ConstGauge::new(i64::from(w.failing)),
            );
            reg.register(
                "cdr_pending",
                "Call records waiting for a retry after a failed write",
                ConstGauge::new(i64::try_from(w.pending).unwrap_or(i64::MAX)),
            );
            reg.register(
                "cdr_backlog",
                "Call records handed to the writer and not written yet",
                ConstGauge::new(i64::try_from(w.backlog).unwrap_or(i64::MAX)),
            );
        }

        if let Some(b) = self.bindings.get() {
            reg.register(
                "registrations_save_failing",
                "1 while registrations.json cannot be saved (retried every second; /health says degraded)",
                ConstGauge::new(i64::from(b.failing.load(Ordering::Relaxed))),
            );
            reg.register(
                "registrations_save_failures",
                "Failed attempts to save registrations.json",
                ConstCounter::new(b.failures.load(Ordering::Relaxed)),
            );
        }
        reg.register(
            "rtp_relayed_packets",
            "RTP packets relayed from one call leg to the other",
            self.rtp_relayed.clone(),
        );
        reg.register(
            "recordings",
            "Calls whose recording started",
            self.recordings.clone(),
        );
        reg.register(
            "recording_lost_packets",
            "RTP packets left out of a recording because its writer lagged (the relayed audio is unaffected)",
            self.recording_lost.clone(),
        );
        let rtp_dropped = self.rtp_dropped.clone();
        for reason in RTP_DROP_REASONS {
            let _ = rtp_dropped.get_or_create(&ReasonLabel { reason });
        }
        reg.register(
            "rtp_dropped_packets",
            "RTP packets received and not delivered, by reason (garbage, foreign, payload_type, overload, send_error)",
            rtp_dropped,
        );
        reg.register_with_unit(
            "routing_decision",
            "Time the ACD router took per decision (a caller arrives, an agent frees up, a timer)",
            Unit::Seconds,
            self.routing_seconds.clone(),
        );
        reg.register(
            "routing_decisions_by_shard",
            "Router calls made by each signalling shard (one per tokio worker)",
            self.shard_decisions.clone(),
        );
        reg.register(
            "routing_handovers",
            "Router outputs handed to the shard owning the call",
            self.shard_handovers.clone(),
        );
        reg.register(
            "handler_panics",
            "Signalling event handlers that panicked: the event was dropped, the shard went on",
            self.handler_panics.clone(),
        );
        let reloads = self.reloads.clone();
        for result in ["ok", "failed"] {
            let _ = reloads.get_or_create(&ResultLabel { result });
        }
        reg.register("config_reloads", "Configuration reloads by result", reloads);
    }
}

/// The standard process series (no `sipacd_` prefix, as every exporter
/// names them).
fn register_process(reg: &mut Registry, p: &ProcessStats) {
    let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    reg.register(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        ConstCounter::new(p.cpu_seconds),
    );
    reg.register(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        gauge(p.resident_bytes),
    );
    reg.register(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        gauge(p.virtual_bytes),
    );
    reg.register(
        "process_open_fds",
        "Number of open file descriptors",
        gauge(p.open_fds),
    );
    if let Some(max) = p.max_fds {
        reg.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            gauge(max),
        );
    }
    reg.register(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        ConstGauge::new(p.start_time_seconds),
    );
}

/// Why the media task did not deliver an RTP packet.
pub const RTP_DROP_REASONS: [&str; 5] = [
    "garbage",
    "foreign",
    "payload_type",
    "overload",
    "send_error",
];

/// Content types of the two encodings.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, waiting: u32, longest: f64) -> QueueView {
        QueueView {
            name: name.into(),
            waiting,
            longest_wait_s: longest,
            agents_available: 0,
            agents_busy: 0,
            agents_wrapup: 0,
            agents_paused: 0,
            open: true,
            service_level_today: None,
            ..QueueView::default()
        }
    }

    #[test]
    fn renders_counters_gauges_and_histogram() {
        let m = Metrics::new();
        let mut handles = CounterHandles::default();
        handles.queue(&m, "sales").offered.inc();
        handles.queue(&m, "sales").offered.inc(); // the cached handle
        handles.agent(&m, "1001").talk_seconds.inc_by(12.5);
        let mut sip = SipCounters::default();
        sip.count_response(&m, "out", "INVITE", 404, 1);
        sip.count_response(&m, "out", "INVITE", 404, 1); // the cached handle
        m.routing_seconds.observe(2e-6);
        m.reload(false);
        let mut sales = queue("sales", 3, 12.5);
        (
            sales.agents_available,
            sales.agents_busy,
            sales.agents_wrapup,
        ) = (1, 3, 1);
        let mut support = queue("support", 0, 0.0);
        support.open = false;
        let agent = AgentView {
            id: "1001".into(),
            name: "Alice".into(),
            state: "wrapup".into(),
            pause_reason: None,
            registered: true,
            skills: Default::default(),
            calls_taken: 0,
            state_since_ms: None,
            ..Default::default()
        };
        let text = m.render(&[sales, support], &[agent], false);
        for line in [
            "# TYPE sipacd_queue_calls_offered_total counter",
            "sipacd_queue_calls_offered_total{queue=\"sales\"} 2",
            "sipacd_queue_calls_offered_total{queue=\"support\"} 0",
            "sipacd_queue_callers_waiting{queue=\"sales\"} 3",
            "sipacd_queue_longest_wait_seconds{queue=\"sales\"} 12.5",
            "sipacd_agents{state=\"paused\"} 0",
            "sipacd_sip_responses_total{direction=\"out\",method=\"INVITE\",code=\"404\"} 2",
            "sipacd_routing_decision_seconds_count 1",
            "sipacd_config_reloads_total{result=\"failed\"} 1",
            "sipacd_config_reloads_total{result=\"ok\"} 0",
            "sipacd_queue_open{queue=\"sales\"} 1",
            "sipacd_queue_open{queue=\"support\"} 0",
            "sipacd_queue_agents{queue=\"sales\",state=\"available\"} 1",
            "sipacd_queue_agents{queue=\"sales\",state=\"busy\"} 2",
            "sipacd_queue_agents{queue=\"sales\",state=\"wrapup\"} 1",
            "sipacd_agent_state{agent=\"1001\",state=\"wrapup\"} 1",
            "sipacd_agent_state{agent=\"1001\",state=\"available\"} 0",
            "sipacd_agent_talk_seconds_total{agent=\"1001\"} 12.5",
            "sipacd_agent_calls_answered_total{agent=\"1001\"} 0",
            "# TYPE sipacd_build_info gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
        let om = m.render(&[], &[], true);
        assert!(om.ends_with("# EOF\n"), "{om}");
    }
}
