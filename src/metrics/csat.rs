//! Post-call survey scores (CSAT) per queue and per agent, folded from the
//! `CsatScored` events of every shard into one small table behind a mutex
//! (touched once per survey), and exported at scrape time as
//! `sipacd_queue_csat_responses_total`, `sipacd_queue_csat_score_total`
//! and `sipacd_queue_csat_mean` per queue, and the same three per agent
//! (`sipacd_agent_csat_*`). The mean is the score sum over the responses
//! since the daemon started, read from one consistent table; it is absent
//! for a queue or agent without a score (not 0, which would be a score).
//! Over a window, `increase(…score_total[1h]) / increase(…responses_total[1h])`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{AgentLabel, QueueLabel};

/// Responses and their score sum of one queue or agent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CsatSum {
    pub responses: u64,
    pub score: u64,
}

impl CsatSum {
    fn add(&mut self, score: u8) {
        self.responses += 1;
        self.score += u64::from(score);
    }

    /// The mean score; `None` before the first.
    pub fn mean(&self) -> Option<f64> {
        (self.responses > 0).then(|| self.score as f64 / self.responses as f64)
    }
}

#[derive(Debug, Default)]
struct Table {
    queues: BTreeMap<String, CsatSum>,
    agents: BTreeMap<String, CsatSum>,
}

/// The scores since start, per queue and per agent.
#[derive(Debug, Default)]
pub struct CsatTotals {
    table: Mutex<Table>,
}

impl CsatTotals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Each update is one whole step: a panic elsewhere cannot tear it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One caller's `score` for the call of `queue` (if it was in one)
    /// answered by `agent` (if one did).
    pub fn add(&self, queue: Option<&str>, agent: Option<&str>, score: u8) {
        let mut t = self.lock();
        if let Some(q) = queue {
            t.queues.entry(q.to_owned()).or_default().add(score);
        }
        if let Some(a) = agent {
            t.agents.entry(a.to_owned()).or_default().add(score);
        }
    }

    pub fn queue(&self, queue: &str) -> CsatSum {
        self.lock().queues.get(queue).copied().unwrap_or_default()
    }

    pub fn agent(&self, agent: &str) -> CsatSum {
        self.lock().agents.get(agent).copied().unwrap_or_default()
    }

    /// Registers the six families: every configured queue and agent (and
    /// any other that has scores) with its counts, zeros included; a mean
    /// only where there are scores.
    pub fn register(&self, reg: &mut Registry, queues: &[String], agents: &[String]) {
        let t = self.lock();
        let (qr, qs, qm) = families(&t.queues, queues, |q| QueueLabel { queue: q });
        let (ar, asum, am) = families(&t.agents, agents, |a| AgentLabel { agent: a });
        drop(t);
        reg.register(
            "queue_csat_responses",
            "Post-call survey scores given for the queue's calls",
            qr,
        );
        reg.register(
            "queue_csat_score",
            "Sum of the post-call survey scores of the queue's calls",
            qs,
        );
        reg.register(
            "queue_csat_mean",
            "Mean post-call survey score of the queue's calls since start (absent before the first)",
            qm,
        );
        reg.register(
            "agent_csat_responses",
            "Post-call survey scores given for the agent's calls",
            ar,
        );
        reg.register(
            "agent_csat_score",
            "Sum of the post-call survey scores of the agent's calls",
            asum,
        );
        reg.register(
            "agent_csat_mean",
            "Mean post-call survey score of the agent's calls since start (absent before the first)",
            am,
        );
    }
}

type Families<L> = (
    Family<L, Counter>,
    Family<L, Counter>,
    Family<L, Gauge<f64, AtomicU64>>,
);

fn families<L>(
    sums: &BTreeMap<String, CsatSum>,
    configured: &[String],
    label: impl Fn(String) -> L,
) -> Families<L>
where
    L: prometheus_client::encoding::EncodeLabelSet
        + Clone
        + std::hash::Hash
        + Eq
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (responses, score, mean) = (
        Family::<L, Counter>::default(),
        Family::<L, Counter>::default(),
        Family::<L, Gauge<f64, AtomicU64>>::default(),
    );
    for name in configured {
        let l = label(name.clone());
        let _ = responses.get_or_create(&l);
        let _ = score.get_or_create(&l);
    }
    for (name, s) in sums {
        let l = label(name.clone());
        responses.get_or_create(&l).inc_by(s.responses);
        score.get_or_create(&l).inc_by(s.score);
        if let Some(m) = s.mean() {
            mean.get_or_create(&l).set(m);
        }
    }
    (responses, score, mean)
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_str, Config};
    use crate::events::{CallRef, Event, EventKind, Now};
    use crate::metrics::fold::MetricsFold;
    use crate::metrics::Metrics;
    use std::sync::Arc;

    fn cfg() -> Config {
        let text = "[server]\nsip = [\"udp:127.0.0.1:5060\"]\n\n\
                    [agents.1001]\npassword = \"x\"\n[agents.1002]\npassword = \"x\"\n\
                    [agents.1003]\npassword = \"x\"\n\n\
                    [queues.sales]\n[queues.support]\n\n\
                    [[numbers]]\nnumber = \"1\"\nto = \"queue:sales\"\n";
        parse_str(text, std::path::Path::new("/nonexistent/csat.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn scored(n: u64, queue: Option<&str>, agent: Option<&str>, score: u8) -> Event {
        Event {
            at: Now {
                mono: std::time::Instant::now(),
                wall: std::time::SystemTime::now(),
            },
            kind: EventKind::CsatScored {
                call: CallRef {
                    seq: n,
                    call_id: format!("c{n}").into(),
                },
                queue: queue.map(str::to_owned),
                agent: agent.map(str::to_owned),
                score,
            },
        }
    }

    fn value<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    /// Scores folded by two shards' folds into the one table: per queue
    /// and per agent, counts, sums and means; none for those without.
    #[test]
    fn scores_of_every_shard_give_each_queue_and_agent_its_mean() {
        let cfg = cfg();
        let m: Arc<Metrics> = Metrics::new();
        let (mut a, mut b) = (MetricsFold::new(m.clone()), MetricsFold::new(m.clone()));
        a.fold(&scored(1, Some("sales"), Some("1001"), 5), &cfg);
        b.fold(&scored(2, Some("sales"), Some("1002"), 2), &cfg);
        a.fold(&scored(3, Some("sales"), Some("1001"), 4), &cfg);
        // A survey reached without a queue (a transfer to the survey IVR).
        b.fold(&scored(4, None, Some("1002"), 3), &cfg);
        let sales = m.csat.queue("sales");
        assert_eq!((sales.responses, sales.score), (3, 11));
        assert_eq!(m.csat.agent("1001").mean(), Some(4.5));
        assert_eq!(m.csat.agent("1002").mean(), Some(2.5));

        let queues: Vec<_> = cfg.queues.keys().cloned().collect();
        let views: Vec<crate::admin::QueueView> = queues
            .iter()
            .map(|q| crate::admin::QueueView {
                name: q.clone(),
                ..Default::default()
            })
            .collect();
        let agents: Vec<crate::admin::AgentView> = cfg
            .agents
            .keys()
            .map(|id| crate::admin::AgentView {
                id: id.clone(),
                ..Default::default()
            })
            .collect();
        let text = m.render(&views, &agents, false);
        let mean = |s: &str| value(&text, s).and_then(|v| v.parse::<f64>().ok());
        assert_eq!(
            value(&text, "sipacd_queue_csat_responses_total{queue=\"sales\"}"),
            Some("3"),
            "{text}"
        );
        assert_eq!(
            value(&text, "sipacd_queue_csat_score_total{queue=\"sales\"}"),
            Some("11")
        );
        let sales_mean = mean("sipacd_queue_csat_mean{queue=\"sales\"}").expect("sales mean");
        assert!((sales_mean - 11.0 / 3.0).abs() < 1e-9, "{sales_mean}");
        assert_eq!(mean("sipacd_agent_csat_mean{agent=\"1001\"}"), Some(4.5));
        assert_eq!(mean("sipacd_agent_csat_mean{agent=\"1002\"}"), Some(2.5));
        assert_eq!(
            value(&text, "sipacd_agent_csat_responses_total{agent=\"1002\"}"),
            Some("2")
        );
        // Configured without scores: counts of 0, no mean.
        assert_eq!(
            value(
                &text,
                "sipacd_queue_csat_responses_total{queue=\"support\"}"
            ),
            Some("0")
        );
        assert_eq!(
            value(&text, "sipacd_agent_csat_responses_total{agent=\"1003\"}"),
            Some("0")
        );
        assert!(
            !text.contains("sipacd_queue_csat_mean{queue=\"support\"}"),
            "{text}"
        );
        assert!(
            !text.contains("sipacd_agent_csat_mean{agent=\"1003\"}"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE sipacd_queue_csat_mean gauge"),
            "{text}"
        );
        // The queue-and-agent pairs are still there.
        assert_eq!(
            value(
                &text,
                "sipacd_csat_responses_total{queue=\"sales\",agent=\"1001\"}"
            ),
            Some("2"),
            "{text}"
        );
    }
}
