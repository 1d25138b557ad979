//! Prometheus counters, shared by the tasks where the events happen: the
//! signalling task's endpoint (SIP messages, queue outcomes, routing
//! latency), the media task (RTP) and the daemon (reloads). They are
//! `prometheus-client` atomics behind one `Arc`, so counting never waits
//! and never does I/O; `/metrics` encodes them together with the gauges
//! computed at scrape time from the admin views (see [`Metrics::render`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

mod atomic_histogram;

pub use atomic_histogram::AtomicHistogram;

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
    pub sip_requests: Family<RequestLabels, Counter>,
    pub sip_responses: Family<ResponseLabels, Counter>,
    pub sip_parse_errors: Counter,
    /// SIP messages received and thrown away (parse errors are apart).
    pub sip_dropped: Family<ReasonLabel, Counter>,
    pub rtp_relayed: Counter,
    pub rtp_dropped: Family<ReasonLabel, Counter>,
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
    /// The socket layer's own atomics, read at scrape time.
    transport: OnceLock<Arc<TransportStats>>,
    /// The call-record writer's counters, read at scrape time.
    cdr: OnceLock<crate::cdr::WriterStatsSource>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            queue_offered: Family::default(),
            queue_answered: Family::default(),
            queue_abandoned: Family::default(),
            queue_overflowed: Family::default(),
            queue_closed: Family::default(),
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            sip_parse_errors: Counter::default(),
            sip_dropped: Family::default(),
            rtp_relayed: Counter::default(),
            rtp_dropped: Family::default(),
            routing_seconds: AtomicHistogram::new(ROUTING_BUCKETS),
            shard_decisions: Family::default(),
            shard_handovers: Counter::default(),
            handler_panics: Counter::default(),
            reloads: Family::default(),
            transport: OnceLock::new(),
            cdr: OnceLock::new(),
        }
    }
}

/// The label value of a SIP method: the token for the ones we know,
/// `other` for the rest (a peer must not create series at will).
pub fn method_label(m: &rsip::Method) -> &'static str {
    use rsip::Method::*;
    match m {
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Info => "INFO",
        Invite => "INVITE",
        Message => "MESSAGE",
        Notify => "NOTIFY",
        Options => "OPTIONS",
        PRack => "PRACK",
        Publish => "PUBLISH",
        Refer => "REFER",
        Register => "REGISTER",
        Subscribe => "SUBSCRIBE",
        Update => "UPDATE",
    }
}

/// One shard's handles on the SIP counters it has used. After the first
/// message of a kind, counting one is an atomic add on that series instead
/// of a lookup in the family's map behind its lock, which every shard would
/// take for every message.
#[derive(Debug, Default)]
pub struct SipCounters {
    requests: std::collections::HashMap<(&'static str, &'static str), Counter>,
    responses: std::collections::HashMap<(&'static str, &'static str, u16), Counter>,
}

impl SipCounters {
    /// Counts one SIP message; `direction` is `in` or `out`.
    pub fn count_sip(&mut self, m: &Metrics, direction: &'static str, msg: &rsip::SipMessage) {
        match msg {
            rsip::SipMessage::Request(r) => {
                let method = method_label(&r.method);
                self.requests
                    .entry((direction, method))
                    .or_insert_with(|| {
                        m.sip_requests
                            .get_or_create(&RequestLabels { direction, method })
                            .clone()
                    })
                    .inc();
            }
            rsip::SipMessage::Response(r) => {
                let method =
                    crate::sip::headers::cseq(r).map_or("other", |(_, m)| method_label(&m));
                self.count_response(m, direction, method, r.status_code.code());
            }
        }
    }

    pub fn count_response(
        &mut self,
        m: &Metrics,
        direction: &'static str,
        method: &'static str,
        code: u16,
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
            .inc();
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    pub fn queue_event(family: &Family<QueueLabel, Counter>, queue: &str) {
        family
            .get_or_create(&QueueLabel {
                queue: queue.to_owned(),
            })
            .inc();
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// Lets the scrape read the call-record writer's counters.
    pub fn attach_cdr(&self, stats: crate::cdr::WriterStatsSource) {
        let _ = self.cdr.set(stats);
    }

    /// Lets the scrape read the socket layer's counters.
    pub fn attach_transport(&self, stats: Arc<TransportStats>) {
        let _ = self.transport.set(stats);
    }

    /// The whole exposition: counters plus gauges from `queues` and
    /// `agents`, in the Prometheus text format (0.0.4), or OpenMetrics
    /// when `openmetrics`.
    pub fn render(&self, queues: &[QueueView], agents: &[AgentView], openmetrics: bool) -> String {
        let mut reg = Registry::with_prefix("sipacd");
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
        let longest = Family::<QueueLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for q in queues {
            let l = QueueLabel {
                queue: q.name.clone(),
            };
            waiting.get_or_create(&l).set(i64::from(q.waiting));
            longest.get_or_create(&l).set(q.longest_wait_s);
        }
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

        let by_state = Family::<StateLabel, Gauge>::default();
        for state in AGENT_STATES {
            let n = agents.iter().filter(|a| a.state == state).count();
            by_state
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        reg.register("agents", "Configured agents by state", by_state);

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
        let dropped = self.sip_dropped.clone();
        let _ = dropped.get_or_create(&ReasonLabel {
            reason: "foreign_via",
        });
        reg.register(
            "sip_dropped",
            "Received SIP messages dropped, by reason (foreign_via: a response whose top Via is not ours)",
            dropped,
        );
        if let Some(t) = self.transport.get() {
            let c = |a: &std::sync::atomic::AtomicU64| ConstCounter::new(a.load(Ordering::Relaxed));
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
        }

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
                "cdr_backlog",
                "Call records handed to the writer and not written yet",
                ConstGauge::new(i64::try_from(w.backlog).unwrap_or(i64::MAX)),
            );
        }

        reg.register(
            "rtp_relayed_packets",
            "RTP packets relayed from one call leg to the other",
            self.rtp_relayed.clone(),
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

        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &reg)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)
        };
        out
    }
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
        Metrics::queue_event(&m.queue_offered, "sales");
        Metrics::queue_event(&m.queue_offered, "sales");
        let mut sip = SipCounters::default();
        sip.count_response(&m, "out", "INVITE", 404);
        sip.count_response(&m, "out", "INVITE", 404); // the cached handle
        m.routing_seconds.observe(2e-6);
        m.reload(false);
        let text = m.render(
            &[queue("sales", 3, 12.5), queue("support", 0, 0.0)],
            &[],
            false,
        );
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
