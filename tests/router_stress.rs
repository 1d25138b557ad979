//! Many threads hit one router at once: callers arrive and hang up, agents
//! answer, finish and get freed. Checks that no agent is ever offered two
//! calls at once and that no caller is lost.

use chrono::{TimeZone, Utc};
use sipacd::acd::{AcdConfig, CallId, Output, Router};
use sipacd::config::{Agent, Queue, Strategy};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const THREADS: u64 = 6;
const CALLS_PER_THREAD: u64 = 3000;
const AGENTS: usize = 12;

fn config() -> AcdConfig {
    let agents = (0..AGENTS)
        .map(|i| Agent {
            id: format!("a{i}"),
            name: format!("a{i}"),
            credential: None,
            skills: [("x".to_string(), (i % 10 + 1) as u8)]
                .into_iter()
                .collect(),
            timezone: chrono_tz::UTC,
            shift: vec![],
            contact: None,
            media_encryption: Default::default(),
        })
        .collect::<Vec<_>>();
    let strategies = [
        Strategy::LongestIdle,
        Strategy::MostSkilled,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::Random,
    ];
    let queues = strategies
        .iter()
        .enumerate()
        .map(|(i, s)| Queue {
            name: format!("q{i}"),
            // q0 needs x>=6, the others accept everyone.
            skills: if i == 0 {
                [("x".to_string(), 6)].into_iter().collect()
            } else {
                BTreeMap::new()
            },
            strategy: *s,
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
            service_level_s: 20,
            service_level_target: 80,
            transfer_priority: 0,
            record: Default::default(),
            record_prompt: None,
            rejoin_s: 0,
            survey: None,
            callback: None,
        })
        .collect::<Vec<_>>();
    AcdConfig {
        agents: agents.into_iter().map(|a| (a.id.clone(), a)).collect(),
        queues: queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
        schedules: BTreeMap::new(),
    }
}

#[derive(Default)]
struct Book {
    /// agent -> call it rings or talks with
    busy: HashMap<String, u64>,
    /// offers not yet answered/ended
    pending: Vec<(String, u64)>,
    hung_up: HashSet<u64>,
    served: HashSet<u64>,
    violations: Vec<String>,
}

impl Book {
    fn record(&mut self, out: Vec<Output>) {
        for o in out {
            if let Output::Offer(of) = o {
                let agent = of.agent_name.to_string();
                if let Some(prev) = self.busy.get(&agent) {
                    // Only legal if a caller hung up (the router frees the
                    // agent at once, and the records of racing threads may
                    // then land in either order). Double offers of live calls
                    // are also caught by `answered` failing below.
                    if !self.hung_up.contains(prev) && !self.hung_up.contains(&of.call.0) {
                        self.violations.push(format!(
                            "{agent} offered {} while busy with {prev}",
                            of.call.0
                        ));
                    }
                }
                self.busy.insert(agent.clone(), of.call.0);
                self.pending.push((agent, of.call.0));
            }
        }
    }
}

#[test]
fn concurrent_routing_never_double_claims_nor_loses_callers() {
    let t0 = Instant::now();
    let wall = Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap();
    let router = Arc::new(Router::new(&config(), t0, 11));
    let book = Arc::new(Mutex::new(Book::default()));
    for i in 0..AGENTS {
        let out = router.agent_registered(&format!("a{i}"), t0, wall).unwrap();
        book.lock().unwrap().record(out);
    }
    let next_call = Arc::new(AtomicU64::new(1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let router = router.clone();
            let book = book.clone();
            let next_call = next_call.clone();
            std::thread::spawn(move || {
                let mut rng = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut rand = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut arrived = 0;
                while arrived < CALLS_PER_THREAD {
                    let r = rand() % 10;
                    let now = Instant::now().max(t0);
                    if r < 5 {
                        let call = next_call.fetch_add(1, Ordering::SeqCst);
                        let q = format!("q{}", rand() % 5);
                        let out = router
                            .caller_arrives(CallId(call), &q, (rand() % 3) as i32, now, wall)
                            .unwrap();
                        book.lock().unwrap().record(out);
                        arrived += 1;
                        if rand() % 20 == 0 {
                            // Hang up at once: races with being offered.
                            book.lock().unwrap().hung_up.insert(call);
                            let out = router.caller_hangup(CallId(call), now);
                            book.lock().unwrap().record(out);
                        }
                    } else {
                        let job = {
                            let mut b = book.lock().unwrap();
                            let n = b.pending.len();
                            if n == 0 {
                                None
                            } else {
                                let i = (rand() as usize) % n;
                                let job = b.pending.swap_remove(i);
                                if b.hung_up.contains(&job.1) {
                                    None
                                } else {
                                    b.busy.remove(&job.0);
                                    Some(job)
                                }
                            }
                        };
                        if let Some((agent, call)) = job {
                            let (out, served) = match rand() % 10 {
                                0 => (router.rejected(&agent, CallId(call), now), false),
                                1 => (router.ring_no_answer(&agent, CallId(call), now), false),
                                _ => (
                                    router
                                        .answered(&agent, CallId(call), now)
                                        .and_then(|_| router.call_ended(&agent, CallId(call), now)),
                                    true,
                                ),
                            };
                            let mut b = book.lock().unwrap();
                            match out {
                                Ok(out) => {
                                    if served {
                                        b.served.insert(call);
                                    }
                                    b.record(out);
                                }
                                // Only a caller who hung up meanwhile may
                                // make the agent's event stale.
                                Err(e) => assert!(b.hung_up.contains(&call), "{e}"),
                            }
                        }
                        // Unpause agents RONA paused.
                        if rand() % 4 == 0 {
                            let a = format!("a{}", rand() % AGENTS as u64);
                            let out = router
                                .set_state(&a, sipacd::acd::AdminState::Available, now)
                                .unwrap();
                            book.lock().unwrap().record(out);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Drain: unpause everyone and finish every offer.
    let now = Instant::now();
    let mut b = book.lock().unwrap();
    for i in 0..AGENTS {
        let out = router
            .set_state(&format!("a{i}"), sipacd::acd::AdminState::Available, now)
            .unwrap();
        b.record(out);
    }
    while let Some((agent, call)) = b.pending.pop() {
        if b.hung_up.contains(&call) {
            continue;
        }
        b.busy.remove(&agent);
        router.answered(&agent, CallId(call), now).unwrap();
        let out = router.call_ended(&agent, CallId(call), now).unwrap();
        b.served.insert(call);
        b.record(out);
    }
    assert!(
        b.violations.is_empty(),
        "{:?}",
        &b.violations[..b.violations.len().min(5)]
    );
    // Every agent is free now, so nobody may still be waiting (a lost
    // wake-up would leave a caller here), and every caller is accounted for.
    assert_eq!(router.waiting_calls(), vec![]);
    let total = next_call.load(Ordering::SeqCst) - 1;
    for c in 1..=total {
        assert!(
            b.served.contains(&c) || b.hung_up.contains(&c),
            "caller {c} lost"
        );
    }
    for a in router.agents() {
        assert_eq!(a.state.as_str(), "available", "{a:?}");
    }
    assert_eq!(total, THREADS * CALLS_PER_THREAD);
}
