//! A histogram of atomics: every signalling shard observes routing
//! decisions into it at once, and prometheus-client's own `Histogram`
//! would put one mutex behind all of them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: Vec<f64>,
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: Vec<AtomicU64>,
    /// The sum in nanounits, so it adds up without a lock.
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> AtomicHistogram {
        let bounds: Vec<f64> = bounds.into_iter().collect();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        AtomicHistogram {
            inner: Arc::new(Inner {
                bounds,
                counts,
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.inner.bounds.partition_point(|b| *b < v);
        if let Some(c) = self.inner.counts.get(i) {
            c.fetch_add(1, Relaxed);
        }
        // Saturating float-to-int cast: negative and NaN add nothing.
        self.inner.sum_nanos.fetch_add((v * 1e9) as u64, Relaxed);
    }

    /// (sum, count, (upper bound, count) per bucket) as observed so far.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let counts: Vec<u64> = self.inner.counts.iter().map(|c| c.load(Relaxed)).collect();
        let buckets = self
            .inner
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        let sum = self.inner.sum_nanos.load(Relaxed) as f64 / 1e9;
        (sum, counts.iter().sum(), buckets)
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_sum_and_encode_like_a_histogram() {
        let h = AtomicHistogram::new([1e-6, 1e-3]);
        h.observe(5e-7);
        h.observe(1e-6); // on the bound: in the first bucket (le)
        h.observe(2e-4);
        h.observe(5.0);
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 4);
        assert!((sum - 5.000_201_5).abs() < 1e-6, "{sum}");
        assert_eq!(buckets[0], (1e-6, 2));
        assert_eq!(buckets[1], (1e-3, 1));
        assert_eq!(buckets[2].1, 1);
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register("x", "x", h);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(text.contains("x_bucket{le=\"0.001\"} 3"), "{text}");
        assert!(text.contains("x_bucket{le=\"+Inf\"} 4"), "{text}");
        assert!(text.contains("x_count 4"), "{text}");
    }

    #[test]
    fn threads_observe_without_losing_counts() {
        let h = AtomicHistogram::new([1e-6]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let h = h.clone();
                s.spawn(move || (0..10_000).for_each(|_| h.observe(2e-6)));
            }
        });
        assert_eq!(h.snapshot().1, 40_000);
    }
}
