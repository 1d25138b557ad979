//! Routing decisions per second: the indexed router against the naive
//! full-scan model, with 1,000 / 10,000 / 100,000 agents over 1,000 queues
//! and 50 skills, on one thread and on two contending threads.
//!
//! One iteration = 2 decisions: a caller arrives (an agent is claimed, or it
//! queues) and a busy agent finishes (it picks the best waiting caller, or
//! becomes available). Criterion's `elem/s` is decisions per second.
//!
//! `ROUTER_BENCH_SKIP_NAIVE=1` skips the naive model (its setup at 100,000
//! agents takes minutes) when only the indexed router is of interest.
//!
//! At the end it prints, per variant, the median µs per decision over the
//! measured runs and the 100,000/1,000 ratio (the aim: at most 2), e.g.
//! `ROUTER_BENCH_SKIP_NAIVE=1 cargo bench --bench router -- indexed`.

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sipacd::acd::model::Model;
use sipacd::acd::{AcdConfig, CallId, Output, Router};
use sipacd::config::{Agent, Queue, Strategy};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const QUEUES: usize = 1000;
const SKILLS: usize = 50;

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn config(agents: usize) -> AcdConfig {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let strategies = [
        Strategy::LongestIdle,
        Strategy::MostSkilled,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::Random,
    ];
    let agents = (0..agents)
        .map(|i| {
            let mut skills = BTreeMap::new();
            while skills.len() < 5 {
                let s = rng(&mut seed) as usize % SKILLS;
                skills.insert(format!("s{s}"), (5 + rng(&mut seed) % 6) as u8);
            }
            Agent {
                id: format!("agent{i:06}"),
                name: String::new(),
                credential: None,
                skills,
                timezone: chrono_tz::UTC,
                shift: vec![],
                contact: None,
                media_encryption: Default::default(),
            }
        })
        .collect::<Vec<_>>();
    let queues = (0..QUEUES)
        .map(|i| {
            // Two skills per queue (think language + product).
            let a = i % SKILLS;
            let b = (a + 1 + (i / SKILLS) % (SKILLS - 1)) % SKILLS;
            Queue {
                name: format!("q{i:04}"),
                skills: [(format!("s{a}"), 3), (format!("s{b}"), 3)]
                    .into_iter()
                    .collect(),
                strategy: strategies[i % strategies.len()],
                schedule: None,
                closed: None,
                ring_timeout_s: 15,
                wrapup_s: 0,
                retry_s: 5,
                max_wait_s: 0,
                max_waiting: 0,
                overflow: None,
                music: None,
                announce_position_s: 0,
                relax: vec![],
                priority: (i % 3) as i32,
                transfer_priority: 0,
                service_level_s: 20,
                service_level_target: 80,
                record: Default::default(),
                record_prompt: None,
                rejoin_s: 0,
                survey: None,
                callback: None,
            }
        })
        .collect::<Vec<_>>();
    AcdConfig {
        agents: agents.into_iter().map(|a| (a.id.clone(), a)).collect(),
        queues: queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
        schedules: BTreeMap::new(),
    }
}

fn wall() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap()
}

fn offers(out: Vec<Output>, busy: &mut VecDeque<(Arc<str>, CallId)>) {
    for o in out {
        if let Output::Offer(of) = o {
            busy.push_back((of.agent_name, of.call));
        }
    }
}

/// The clock of the `call`-th event: time moves on (a microsecond an
/// event), so agents freed later are idle for less time and the idle-time
/// keys of `longest_idle` and `most_skilled` differ as they do in a day.
fn tick(base: Instant, call: CallId) -> Instant {
    base + Duration::from_micros(call.0)
}

/// What the bench asks of a router: the indexed one, or the naive model
/// behind a mutex.
trait Acd: Sync {
    fn arrives(&self, call: CallId, queue: &str, now: Instant) -> Vec<Output>;
    /// The agent answers the call and it ends at once.
    fn finishes(&self, agent: &str, call: CallId, now: Instant) -> Vec<Output>;
    fn hangup(&self, call: CallId, now: Instant);
    fn waiting(&self) -> Vec<CallId>;
}

impl Acd for Router {
    fn arrives(&self, call: CallId, queue: &str, now: Instant) -> Vec<Output> {
        self.caller_arrives(call, queue, 0, now, wall())
            .unwrap_or_default()
    }
    fn finishes(&self, agent: &str, call: CallId, now: Instant) -> Vec<Output> {
        let _ = self.answered(agent, call, now);
        self.call_ended(agent, call, now).unwrap_or_default()
    }
    fn hangup(&self, call: CallId, now: Instant) {
        self.caller_hangup(call, now);
    }
    fn waiting(&self) -> Vec<CallId> {
        self.waiting_calls()
    }
}

impl Acd for Mutex<Model> {
    fn arrives(&self, call: CallId, queue: &str, now: Instant) -> Vec<Output> {
        let Ok(mut m) = self.lock() else {
            return vec![];
        };
        m.caller_arrives(call, queue, 0, now, wall())
            .unwrap_or_default()
    }
    fn finishes(&self, agent: &str, call: CallId, now: Instant) -> Vec<Output> {
        let Ok(mut m) = self.lock() else {
            return vec![];
        };
        let _ = m.answered(agent, call, now);
        m.call_ended(agent, call, now).unwrap_or_default()
    }
    fn hangup(&self, call: CallId, now: Instant) {
        if let Ok(mut m) = self.lock() {
            m.caller_hangup(call, now);
        }
    }
    fn waiting(&self) -> Vec<CallId> {
        self.lock().map(|m| m.waiting_calls()).unwrap_or_default()
    }
}

/// One worker's loop: a caller arrives at a random queue; half the time
/// (always once 64 calls are up) the oldest call ends. Returns the calls
/// still up, for `settle`.
fn cycles<A: Acd>(
    r: &A,
    iters: u64,
    names: &[String],
    next: &AtomicU64,
    seed: u64,
    now: Instant,
) -> VecDeque<(Arc<str>, CallId)> {
    let mut s = seed | 1;
    let mut busy = VecDeque::new();
    for _ in 0..iters {
        let call = CallId(next.fetch_add(1, Ordering::Relaxed));
        let now = tick(now, call);
        let q = &names[rng(&mut s) as usize % names.len()];
        offers(r.arrives(call, q, now), &mut busy);
        if busy.len() > 64 || rng(&mut s) % 2 == 0 {
            if let Some((agent, call)) = busy.pop_front() {
                offers(r.finishes(&agent, call, now), &mut busy);
            }
        }
    }
    busy
}

/// After a timed run, untimed: waiting callers hang up and every call still
/// up ends, so each run starts from the same state (every agent available,
/// no one waiting) instead of inheriting the last run's leftovers, which
/// piled up over the samples (callers of queues few agents serve) and made
/// the figures drift from run to run.
fn settle<A: Acd>(
    r: &A,
    leftovers: Vec<VecDeque<(Arc<str>, CallId)>>,
    next: &AtomicU64,
    t0: Instant,
) {
    let now = tick(t0, CallId(next.load(Ordering::Relaxed)));
    for call in r.waiting() {
        r.hangup(call, now);
    }
    let mut busy: VecDeque<_> = leftovers.into_iter().flatten().collect();
    while let Some((agent, call)) = busy.pop_front() {
        offers(r.finishes(&agent, call, now), &mut busy);
    }
}

/// One timed run of `iters` iterations on `threads` threads sharing `r`.
fn timed_run<A: Acd>(
    r: &A,
    threads: u64,
    iters: u64,
    names: &[String],
    next: &AtomicU64,
    t0: Instant,
) -> Duration {
    let start = Instant::now();
    let leftovers = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || cycles(r, iters / threads, names, next, iters + t, t0)))
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().ok())
            .collect::<Vec<_>>()
    });
    let took = start.elapsed();
    settle(r, leftovers, next, t0);
    took
}

fn setup_router(n: usize) -> (Router, Vec<String>, Instant) {
    let c = config(n);
    let t0 = Instant::now();
    let r = Router::new(&c, t0, 1);
    for id in c.agents.keys() {
        r.agent_registered(id, t0, wall()).unwrap();
    }
    (r, c.queues.keys().cloned().collect(), t0)
}

/// µs per decision of every timed run, by (variant, agents).
type Figures = Mutex<BTreeMap<(&'static str, usize), Vec<f64>>>;

fn record(figs: &Figures, name: &'static str, n: usize, iters: u64, took: Duration) {
    // Criterion's first warm-up runs are tiny; they say little (a naive
    // scan at 100,000 agents takes milliseconds: few iterations suffice).
    if iters >= 100 || took >= Duration::from_millis(20) {
        let us = took.as_secs_f64() * 1e6 / (2 * iters) as f64;
        if let Ok(mut f) = figs.lock() {
            f.entry((name, n)).or_default().push(us);
        }
    }
}

fn summary(figs: &Figures) {
    let Ok(mut f) = figs.lock() else { return };
    let mut median = BTreeMap::new();
    let mut best = BTreeMap::new();
    for ((name, n), v) in f.iter_mut() {
        v.sort_by(f64::total_cmp);
        if let (Some(m), Some(b)) = (v.get(v.len() / 2), v.first()) {
            median.insert((*name, *n), *m);
            best.insert((*name, *n), *b);
        }
    }
    // Wall time over all threads: 2 threads share the iterations.
    // The best run is the one least disturbed by other processes.
    println!(
        "\nrouting: wall µs per decision, median (best) of the runs; decisions/s over all threads"
    );
    for ((name, n), us) in &median {
        let b = best.get(&(*name, *n)).copied().unwrap_or(f64::NAN);
        println!(
            "  {name:<20} {n:>7} agents: {us:>7.3} ({b:.3}) µs  {:>5.2} M/s",
            1.0 / us
        );
    }
    let names: std::collections::BTreeSet<_> = median.keys().map(|(name, _)| *name).collect();
    for name in names {
        let ratio = |m: &BTreeMap<(&str, usize), f64>| {
            Some(m.get(&(name, 100_000))? / m.get(&(name, 1_000))?)
        };
        if let (Some(r), Some(rb)) = (ratio(&median), ratio(&best)) {
            println!("  {name:<20} 100k/1k ratio: {r:.2} (best: {rb:.2}; aim: <= 2)");
        }
    }
}

fn bench(c: &mut Criterion) {
    let figs: Figures = Mutex::new(BTreeMap::new());
    let mut g = c.benchmark_group("routing");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(2));
    for n in [1_000usize, 10_000, 100_000] {
        let (r, names, t0) = setup_router(n);
        let next = AtomicU64::new(1);
        let mut variant = |name: &'static str, acd: &dyn Fn(u64) -> Duration| {
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_custom(|iters| {
                    let took = acd(iters);
                    record(&figs, name, n, iters, took);
                    took
                })
            });
        };
        variant("indexed_1thread", &|i| {
            timed_run(&r, 1, i, &names, &next, t0)
        });
        variant("indexed_2threads", &|i| {
            timed_run(&r, 2, i, &names, &next, t0)
        });
        if std::env::var_os("ROUTER_BENCH_SKIP_NAIVE").is_some() {
            continue;
        }
        let cfg = config(n);
        let m = Mutex::new(Model::new(&cfg, t0, 1));
        for id in cfg.agents.keys() {
            let _ = m.lock().map(|mut m| m.agent_registered(id, t0, wall()));
        }
        variant("naive_scan_1thread", &|i| {
            timed_run(&m, 1, i, &names, &next, t0)
        });
        variant("naive_scan_2threads", &|i| {
            timed_run(&m, 2, i, &names, &next, t0)
        });
    }
    g.finish();
    summary(&figs);
}

/// A reload of the same file with every agent logged in: the router builds
/// its pools anew and carries each agent's state over. Every shard is parked
/// meanwhile, so this is how long signalling stalls on SIGHUP.
fn reload(c: &mut Criterion) {
    let mut g = c.benchmark_group("reload");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(3));
    println!("\nreload: ms per reload of the same file, every agent logged in");
    for n in [1_000usize, 10_000, 100_000] {
        let cfg = config(n);
        let (mut r, _, t0) = setup_router(n);
        let mut best = Duration::MAX;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    r.reload(&cfg, t0, wall());
                }
                let took = start.elapsed();
                best = best.min(took / iters.max(1) as u32);
                took
            })
        });
        println!(
            "  {n:>7} agents: {:>8.1} ms (best run)",
            best.as_secs_f64() * 1e3
        );
    }
    g.finish();
}

criterion_group!(benches, bench, reload);
criterion_main!(benches);
