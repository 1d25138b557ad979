//! Why the routing-decision histogram is our own: every signalling shard
//! observes into it once per decision. prometheus-client's `Histogram` puts
//! a mutex behind each observation; `AtomicHistogram` adds with atomics.
//! Measured with one thread and with two threads observing at once (the
//! daemon's shards on a 2-core machine). Criterion prints time per
//! observation (`elem/s` = observations per second across the threads).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prometheus_client::metrics::histogram::Histogram;
use sipacd::metrics::AtomicHistogram;
use std::time::{Duration, Instant};

const BOUNDS: [f64; 12] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 1e-1,
];
const PER_ITER: u64 = 1000;

/// `threads` threads each observe `iters * PER_ITER` values at once.
fn contended(threads: usize, iters: u64, observe: &(dyn Fn(f64) + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..iters * PER_ITER {
                    observe(((i + t as u64) % 50) as f64 * 1e-6);
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram_observe");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(PER_ITER * threads as u64));
        let stock = Histogram::new(BOUNDS);
        g.bench_with_input(
            BenchmarkId::new("prometheus_client", threads),
            &threads,
            |b, &n| b.iter_custom(|iters| contended(n, iters, &|v| stock.observe(v))),
        );
        let ours = AtomicHistogram::new(BOUNDS);
        g.bench_with_input(BenchmarkId::new("atomic", threads), &threads, |b, &n| {
            b.iter_custom(|iters| contended(n, iters, &|v| ours.observe(v)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
