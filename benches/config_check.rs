//! `sipacd check` on files with many errors: the time per error must stay
//! flat as their number grows (line:col of each error used to be found by
//! scanning the file from its start, so 40,000 unknown keys took 21 s).
//!
//! `cargo bench --bench config_check` prints, per size, the time for the
//! whole file and per error; the 32,000/2,000 per-error ratio should stay
//! near 1 (linear), far from 16 (quadratic).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::Path;
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [2_000, 8_000, 32_000];

fn file(errors: usize) -> String {
    let mut text = String::from(
        "[server]\ndomain = \"x\"\n\n[[numbers]]\nnumber = \"1\"\nto = \"queue:q\"\n\n[queues.q]\n",
    );
    for i in 0..errors {
        // Alternate unknown keys and out-of-range values.
        if i % 2 == 0 {
            text.push_str(&format!("bogus_{i} = 1\n"));
        } else {
            text.push_str(&format!("[queues.q{i}]\nwrapup_s = 9223372036854775807\n"));
        }
    }
    text
}

fn check(text: &str) -> usize {
    match sipacd::config::parse_str(text, Path::new("/etc/sipacd/bench.toml")) {
        Ok(_) => 0,
        Err(e) => e.0.len(),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("config_check");
    group.sample_size(10);
    for n in SIZES {
        let text = file(n);
        assert_eq!(check(&text), n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, t| {
            b.iter(|| check(t))
        });
    }
    group.finish();

    // A plain figure beside criterion's: per-error cost at each size.
    let mut per_error = Vec::new();
    for n in SIZES {
        let text = file(n);
        let start = Instant::now();
        let runs = 3;
        for _ in 0..runs {
            check(&text);
        }
        let each = start.elapsed() / runs;
        let per = each.as_secs_f64() / n as f64 * 1e6;
        println!(
            "config_check {n:>6} errors: {:>8.1} ms, {per:.2} µs per error",
            ms(each)
        );
        per_error.push(per);
    }
    if let (Some(first), Some(last)) = (per_error.first(), per_error.last()) {
        println!(
            "config_check per-error ratio {}/{}: {:.2} (1 = linear)",
            SIZES[SIZES.len() - 1],
            SIZES[0],
            last / first
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

criterion_group!(benches, bench);
criterion_main!(benches);
