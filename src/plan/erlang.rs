//! Erlang C (callers wait as long as it takes) and Erlang A (callers give
//! up after an exponential patience) for one interval.
//!
//! Notation: `calls` arrive in an interval of `interval_s`, each holds an
//! agent `handle_s` (talk plus wrap-up); the offered load is
//! `A = calls * handle_s / interval_s` erlangs. The service level is the
//! share of callers answered within `target_s`; under Erlang A a caller who
//! gives up first counts against it.
//!
//! Erlang C uses the Erlang B recursion (no factorials, no overflow).
//! Erlang A (M/M/n+M, Palm) takes the birth-death chain's stationary
//! distribution and, for a caller who finds `j` callers ahead, the
//! probability of reaching an agent within `target_s` before giving up:
//! the callers ahead leave at `n/handle + j/patience`, the caller gives up
//! at `1/patience`; that absorbing chain is solved by uniformization.

/// One interval's traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Calls offered in the interval.
    pub calls: f64,
    pub interval_s: f64,
    /// Mean handle time (talk plus wrap-up).
    pub handle_s: f64,
    /// Mean patience of callers; `None`: they never give up (Erlang C).
    pub patience_s: Option<f64>,
}

impl Traffic {
    /// Offered load in erlangs.
    pub fn load(&self) -> f64 {
        if self.interval_s <= 0.0 {
            return 0.0;
        }
        self.calls * self.handle_s / self.interval_s
    }
}

/// What `agents` achieve on `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub agents: u32,
    /// Share answered within the target, 0..=1.
    pub service_level: f64,
    /// Probability a caller waits at all.
    pub p_wait: f64,
    /// Share of callers who give up (0 under Erlang C).
    pub abandon: f64,
    /// Mean wait of answered callers, seconds (Erlang C; Erlang A: mean
    /// time in queue of all callers).
    pub asa_s: f64,
    /// Share of agent time busy.
    pub occupancy: f64,
}

/// Erlang C: probability that a caller waits, `n` agents, load `a`.
/// 1 when the agents cannot keep up (`n <= a`).
pub fn erlang_c(n: u32, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    if f64::from(n) <= a {
        return 1.0;
    }
    let b = erlang_b(n, a);
    let n = f64::from(n);
    n * b / (n - a * (1.0 - b))
}

/// Erlang B: blocking probability with `n` servers and load `a`.
pub fn erlang_b(n: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (f64::from(k) + a * b);
    }
    b
}

/// Service level, waiting and occupancy of `n` agents on `t` within
/// `target_s`: Erlang A when `t.patience_s` is known, else Erlang C.
pub fn outcome(n: u32, t: &Traffic, target_s: f64) -> Outcome {
    match t.patience_s {
        Some(p) if p > 0.0 && p.is_finite() => erlang_a(n, t, target_s, p),
        _ => erlang_c_outcome(n, t, target_s),
    }
}

fn erlang_c_outcome(n: u32, t: &Traffic, target_s: f64) -> Outcome {
    let a = t.load();
    let nf = f64::from(n);
    if a <= 0.0 {
        return Outcome {
            agents: n,
            service_level: 1.0,
            p_wait: 0.0,
            abandon: 0.0,
            asa_s: 0.0,
            occupancy: 0.0,
        };
    }
    if nf <= a || t.handle_s <= 0.0 {
        return Outcome {
            agents: n,
            service_level: 0.0,
            p_wait: 1.0,
            abandon: 0.0,
            asa_s: f64::INFINITY,
            occupancy: 1.0,
        };
    }
    let c = erlang_c(n, a);
    Outcome {
        agents: n,
        service_level: 1.0 - c * (-(nf - a) * target_s / t.handle_s).exp(),
        p_wait: c,
        abandon: 0.0,
        asa_s: c * t.handle_s / (nf - a),
        occupancy: a / nf,
    }
}

/// Stationary probabilities are cut where they fall below this.
const TAIL: f64 = 1e-13;
/// And never hold more states than this.
const MAX_STATES: usize = 20_000;

fn erlang_a(n: u32, t: &Traffic, target_s: f64, patience_s: f64) -> Outcome {
    let a = t.load();
    let nf = f64::from(n);
    if a <= 0.0 || t.handle_s <= 0.0 {
        return erlang_c_outcome(n, t, target_s);
    }
    let lambda = t.calls / t.interval_s;
    let mu = 1.0 / t.handle_s;
    let theta = 1.0 / patience_s;
    // Unnormalised stationary weights: p[k] for k callers in the system.
    let mut p: Vec<f64> = Vec::with_capacity(n as usize + 64);
    p.push(1.0);
    let mut w = 1.0;
    let mut max_w: f64 = 1.0;
    for k in 1..MAX_STATES {
        let kf = k as f64;
        let death = if kf <= nf {
            kf * mu
        } else {
            nf * mu + (kf - nf) * theta
        };
        w *= lambda / death;
        p.push(w);
        max_w = max_w.max(w);
        if kf > nf && w < TAIL * max_w {
            break;
        }
    }
    let total: f64 = p.iter().sum();
    let n_us = n as usize;
    let waiting: Vec<f64> = p.iter().skip(n_us).map(|x| x / total).collect();
    let p_wait: f64 = waiting.iter().sum();
    // Mean queue length, then abandonment by Little's law on the queue.
    let lq: f64 = waiting.iter().enumerate().map(|(j, x)| j as f64 * x).sum();
    let abandon = (theta * lq / lambda).clamp(0.0, 1.0);
    let served_late = reached_in_time(&waiting, nf * mu, theta, target_s);
    let answered_rate = lambda * (1.0 - abandon);
    Outcome {
        agents: n,
        service_level: ((1.0 - p_wait) + served_late).clamp(0.0, 1.0),
        p_wait,
        abandon,
        asa_s: lq / lambda,
        occupancy: if n == 0 {
            1.0
        } else {
            (answered_rate / mu / nf).min(1.0)
        },
    }
}

/// Of arrivals that find `j` callers ahead with probability `arrive[j]`,
/// the probability mass that reaches an agent within `t` seconds: ahead of
/// it callers leave at `serve + j * theta`, it gives up at `theta`.
fn reached_in_time(arrive: &[f64], serve: f64, theta: f64, t: f64) -> f64 {
    if arrive.is_empty() || t <= 0.0 {
        return 0.0;
    }
    let j_max = arrive.len() - 1;
    let rate = serve + j_max as f64 * theta + theta;
    let lt = rate * t;
    // Steps of the uniformized chain until the Poisson tail is negligible.
    let steps = (lt + 12.0 * lt.sqrt() + 30.0).ceil() as usize;
    let mut mass = arrive.to_vec();
    let mut served = 0.0;
    let mut result = 0.0;
    // Poisson(n; lt) weights, computed in log space for large lt.
    let mut log_w = -lt;
    let mut cum_w = 0.0;
    for step in 0..=steps {
        let weight = log_w.exp();
        result += weight * served;
        cum_w += weight;
        // One step: from j, move to j-1 (or served) or give up.
        let mut next = vec![0.0; mass.len()];
        for (j, m) in mass.iter().enumerate() {
            if *m == 0.0 {
                continue;
            }
            let down = (serve + j as f64 * theta) / rate;
            let quit = theta / rate;
            let stay = (1.0 - down - quit).max(0.0);
            if j == 0 {
                served += m * down;
            } else {
                next[j - 1] += m * down;
            }
            next[j] += m * stay;
        }
        mass = next;
        log_w += lt.ln() - ((step + 1) as f64).ln();
    }
    // Whatever Poisson mass lies past `steps` has served at least this much.
    result + (1.0 - cum_w).max(0.0) * served
}

/// The fewest agents whose service level on `t` reaches `target` (a
/// fraction) within `target_s`, with its outcome; `None` if even
/// `max_agents` do not (or nothing is offered: then 0 agents are needed).
pub fn agents_needed(t: &Traffic, target_s: f64, target: f64, max_agents: u32) -> Outcome {
    let none = outcome(0, t, target_s);
    if t.calls <= 0.0 {
        return none;
    }
    // Erlang C needs more agents than the load; start just above it.
    let start = match t.patience_s {
        Some(_) => 1,
        None => (t.load().floor() as u32).saturating_add(1),
    };
    let mut last = none;
    for n in start.max(1)..=max_agents.max(1) {
        last = outcome(n, t, target_s);
        if last.service_level >= target {
            return last;
        }
    }
    last
}

/// Agents to schedule for `needed` on the phones when a share `shrinkage`
/// (breaks, training, absence; 0..1) of scheduled time is lost.
pub fn with_shrinkage(needed: u32, shrinkage: f64) -> u32 {
    if needed == 0 {
        return 0;
    }
    let keep = (1.0 - shrinkage.clamp(0.0, 0.95)).max(0.05);
    (f64::from(needed) / keep - 1e-9).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 calls in 30 minutes, 180 s handle time: 10 erlangs.
    fn published() -> Traffic {
        Traffic {
            calls: 100.0,
            interval_s: 1800.0,
            handle_s: 180.0,
            patience_s: None,
        }
    }

    #[test]
    fn erlang_c_matches_the_published_example() {
        let t = published();
        assert!((t.load() - 10.0).abs() < 1e-12);
        let sl = |n| outcome(n, &t, 20.0).service_level;
        // 13 agents: 79.6%, 14 agents: 88.8% within 20 s.
        assert!((sl(13) - 0.796).abs() < 0.0005, "{}", sl(13));
        assert!((sl(14) - 0.888).abs() < 0.0005, "{}", sl(14));
        let need = agents_needed(&t, 20.0, 0.8, 200);
        assert_eq!(need.agents, 14);
        // Occupancy at 14: 10/14.
        assert!((need.occupancy - 10.0 / 14.0).abs() < 1e-9);
    }

    #[test]
    fn erlang_c_table_values() {
        // Erlang C probability of waiting, from the standard tables
        // (load 10 erlangs; load 2 erlangs with 3 agents: 4/9).
        for (n, a, want) in [
            (11, 10.0, 0.6821),
            (12, 10.0, 0.4494),
            (13, 10.0, 0.2853),
            (14, 10.0, 0.1741),
            (3, 2.0, 0.4444),
        ] {
            let c = erlang_c(n, a);
            assert!((c - want).abs() < 0.00051, "C({n}, {a}) = {c}, want {want}");
        }
        assert_eq!(erlang_c(10, 10.0), 1.0);
        assert_eq!(erlang_c(5, 0.0), 0.0);
        // Erlang B: 2 erlangs on 3 lines block 21.05% of calls.
        assert!((erlang_b(3, 2.0) - 0.2105).abs() < 0.0001);
    }

    #[test]
    fn erlang_c_asa_by_hand() {
        // M/M/1, load 0.5, handle 100 s: P(wait) = 0.5, ASA = 0.5*100/0.5.
        let t = Traffic {
            calls: 18.0,
            interval_s: 3600.0,
            handle_s: 100.0,
            patience_s: None,
        };
        let o = outcome(1, &t, 0.0);
        assert!((o.p_wait - 0.5).abs() < 1e-12);
        assert!((o.asa_s - 100.0).abs() < 1e-9);
        assert!((o.service_level - 0.5).abs() < 1e-12);
    }

    #[test]
    fn erlang_a_tends_to_erlang_c_with_endless_patience() {
        let mut t = published();
        t.patience_s = Some(1e9);
        for n in [11, 13, 14, 16] {
            let a = outcome(n, &t, 20.0);
            let c = erlang_c_outcome(n, &published(), 20.0);
            assert!(
                (a.service_level - c.service_level).abs() < 0.002,
                "n={n}: A {} C {}",
                a.service_level,
                c.service_level
            );
            assert!((a.p_wait - c.p_wait).abs() < 0.002);
        }
    }

    #[test]
    fn erlang_a_with_abandonment_needs_fewer_agents() {
        let mut t = published();
        t.patience_s = Some(60.0);
        let a = agents_needed(&t, 20.0, 0.8, 200);
        assert!(a.abandon > 0.0 && a.abandon < 0.1, "{a:?}");
        assert!(a.agents <= 14);
        // Even 10 agents (= the load) are stable under Erlang A.
        let o = outcome(10, &t, 20.0);
        assert!(o.service_level > 0.3 && o.service_level < 0.8, "{o:?}");
        assert!(o.abandon > 0.05, "{o:?}");
    }

    /// Erlang A against a seeded simulation of the same queue (M/M/n+M):
    /// the formula and an independent count of callers must agree.
    #[test]
    fn erlang_a_agrees_with_a_simulation() {
        use rand::{Rng, SeedableRng};
        let (n, lambda, mu, theta, target) = (5usize, 1.0 / 40.0, 1.0 / 180.0, 1.0 / 90.0, 20.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut exp = |rate: f64| -(1.0 - rng.gen::<f64>()).ln() / rate;
        // Agents free at; FIFO: each caller takes the earliest free agent
        // unless it gives up first (patience does not depend on others).
        let mut free = vec![0.0f64; n];
        let (mut t, mut answered_in, mut abandoned, total) = (0.0, 0u32, 0u32, 200_000u32);
        for _ in 0..total {
            t += exp(lambda);
            let patience = exp(theta);
            let handle = exp(mu);
            let (i, at) = free
                .iter()
                .copied()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, 0.0));
            let start = at.max(t);
            if start - t > patience {
                abandoned += 1;
                continue;
            }
            if start - t <= target {
                answered_in += 1;
            }
            free[i] = start + handle;
        }
        let traffic = Traffic {
            calls: lambda * 3600.0,
            interval_s: 3600.0,
            handle_s: 1.0 / mu,
            patience_s: Some(1.0 / theta),
        };
        let o = outcome(n as u32, &traffic, target);
        let sim_sl = f64::from(answered_in) / f64::from(total);
        let sim_ab = f64::from(abandoned) / f64::from(total);
        assert!(
            (o.service_level - sim_sl).abs() < 0.01,
            "{o:?} sim {sim_sl}"
        );
        assert!((o.abandon - sim_ab).abs() < 0.01, "{o:?} sim {sim_ab}");
    }

    #[test]
    fn shrinkage_rounds_up() {
        assert_eq!(with_shrinkage(14, 0.0), 14);
        assert_eq!(with_shrinkage(14, 0.3), 20);
        assert_eq!(with_shrinkage(7, 0.3), 10);
        assert_eq!(with_shrinkage(0, 0.3), 0);
    }

    #[test]
    fn no_calls_need_no_agents() {
        let mut t = published();
        t.calls = 0.0;
        assert_eq!(agents_needed(&t, 20.0, 0.8, 100).agents, 0);
    }
}
