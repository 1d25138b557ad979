//! Planning speed, printed (not asserted):
//!
//! * `coverage`: `sipacd plan`'s coverage for 1,000 queues and 100,000
//!   agents (50 skills, 6 zones, 8 shift templates, a relax step on every
//!   fifth queue) over 8 weeks at 30-minute intervals;
//! * `replay`: one month of recorded calls (200,000, three queues, 15
//!   agents) through the router on the virtual clock, in calls per second
//!   of one thread (its CPU time).
//!
//! `cargo bench --bench plan` (set `PLAN_BENCH_RUNS` for more runs).

use chrono::{TimeZone, Utc};
use rand::{Rng, SeedableRng};
use sipacd::plan::replay::{replay, ReplayCall, ReplayOptions};
use sipacd::plan::{coverage, CoverageOptions};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const ZONES: [&str; 6] = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Jakarta",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "UTC",
];
const SHIFTS: [&str; 8] = [
    "mon-fri 08:00-16:00",
    "mon-fri 16:00-24:00",
    "mon-fri 22:00-06:00",
    "sat,sun 08:00-20:00",
    "mon-thu 07:00-17:00",
    "tue-sat 10:00-18:00",
    "sun-thu 20:00-04:00",
    "mon-fri 12:00-20:00",
];

fn big_config(agents: usize, queues: usize) -> sipacd::config::Config {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut t = String::from("[server]\ntimezone = \"UTC\"\n");
    for (i, z) in ZONES.iter().enumerate() {
        let _ = writeln!(
            t,
            "[schedules.s{i}]\ntimezone = \"{z}\"\nopen = [\"mon-fri 07:00-22:00\", \"sat 09:00-13:00\"]\nclosed_dates = [\"2027-04-02\"]"
        );
    }
    for a in 0..agents {
        let skills: Vec<String> = (0..3)
            .map(|_| format!("k{} = {}", rng.gen_range(0..50), rng.gen_range(1..=10)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let _ = writeln!(
            t,
            "[agents.a{a}]\npassword = \"x\"\ntimezone = \"{}\"\nshift = [\"{}\"]\nskills = {{ {} }}",
            ZONES[rng.gen_range(0..ZONES.len())],
            SHIFTS[rng.gen_range(0..SHIFTS.len())],
            // Duplicate skill names would be rejected: keep the first.
            dedup(&skills).join(", ")
        );
    }
    for q in 0..queues {
        let relax = if q % 5 == 0 {
            format!(
                "relax = [{{ after_s = 30, skills = {{ k{} = 1 }} }}]\n",
                q % 50
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            t,
            "[queues.q{q}]\nskills = {{ k{} = {} }}\nschedule = \"s{}\"\n{relax}",
            q % 50,
            1 + q % 5,
            q % ZONES.len()
        );
    }
    sipacd::config::parse_str(&t, Path::new("/nonexistent/bench.toml"))
        .unwrap_or_else(|e| panic!("bench config: {e}"))
}

fn dedup(skills: &[String]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    skills
        .iter()
        .filter(|s| seen.insert(s.split(' ').next().unwrap_or("").to_owned()))
        .cloned()
        .collect()
}

fn runs() -> usize {
    std::env::var("PLAN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn bench_coverage() {
    let t = Instant::now();
    let cfg = big_config(100_000, 1_000);
    eprintln!(
        "coverage: config of 100,000 agents and 1,000 queues built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let opts = CoverageOptions {
        from: Some(chrono::NaiveDate::from_ymd_opt(2027, 3, 15).unwrap_or_default()),
        weeks: 8,
        interval_min: 30,
        queue: None,
        now: Utc::now(),
    };
    let mut best = f64::MAX;
    let mut gaps = 0;
    for _ in 0..runs() {
        let t = Instant::now();
        let cov = coverage(&cfg, &opts).expect("coverage");
        best = best.min(t.elapsed().as_secs_f64());
        gaps = cov.iter().map(|q| q.ranges.len()).sum::<usize>();
    }
    println!(
        "plan/coverage: 1,000 queues x 100,000 agents x 8 weeks (30 min): {best:.2} s (best of {}), {gaps} problem ranges",
        runs()
    );
}

fn bench_replay() {
    let mut t = String::from("[server]\ntimezone = \"UTC\"\n");
    for a in 0..15 {
        let _ = writeln!(
            t,
            "[agents.a{a}]\npassword = \"x\"\nskills = {{ s{} = 5, s{} = 3 }}",
            a % 3,
            (a + 1) % 3
        );
    }
    for q in 0..3 {
        let _ = writeln!(
            t,
            "[queues.q{q}]\nskills = {{ s{q} = 3 }}\nwrapup_s = 5\nstrategy = \"{}\"",
            ["longest_idle", "most_skilled", "round_robin"][q]
        );
    }
    let cfg = sipacd::config::parse_str(&t, Path::new("/nonexistent/replay.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let since = Utc
        .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let month_ms = 30 * 86_400_000i64;
    let n = 200_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut at = since;
    let calls: Vec<ReplayCall> = (0..n)
        .map(|i| {
            at += (-(1.0 - rng.gen::<f64>()).ln() * (month_ms as f64 / n as f64)) as i64;
            ReplayCall {
                id: format!("c{i}"),
                number: "1500".into(),
                queue: format!("q{}", i % 3),
                priority: 0,
                enter_ms: at,
                talk_ms: (-(1.0 - rng.gen::<f64>()).ln() * 100_000.0) as i64,
                patience_ms: Some((-(1.0 - rng.gen::<f64>()).ln() * 120_000.0) as i64),
            }
        })
        .collect();
    let opts = ReplayOptions {
        since_ms: since,
        until_ms: since + month_ms + 86_400_000,
        seed: 1,
        answer_s: 2,
    };
    let mut best = f64::MAX;
    let mut answered = 0;
    for _ in 0..runs() {
        let t = Instant::now();
        let r = replay(&cfg, &calls, &[], &[], &opts);
        best = best.min(t.elapsed().as_secs_f64());
        answered = r
            .queues
            .iter()
            .filter_map(|q| q.predicted.as_ref())
            .map(|p| p.answered)
            .sum::<u64>();
    }
    println!(
        "plan/replay: {n} calls of a month, 3 queues, 15 agents: {best:.2} s (best of {}), {:.0} calls per second on one thread, {answered} answered",
        runs(),
        n as f64 / best
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, small.
    if std::env::args().any(|a| a == "--bench") {
        bench_coverage();
        bench_replay();
    } else {
        println!("plan bench: run with `cargo bench --bench plan`");
    }
}
