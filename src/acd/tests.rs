//! Sans-IO tests of the router: every rule on a virtual clock, then a
//! property test against the sequential model.

use super::model::Model;
use super::*;
use crate::config::{Agent, Queue, Relax, Schedule, Strategy, Target, Window};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn skills(s: &[(&str, u8)]) -> BTreeMap<String, u8> {
    s.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn agent(id: &str, s: &[(&str, u8)]) -> Agent {
    Agent {
        id: id.into(),
        name: id.into(),
        credential: None,
        skills: skills(s),
        timezone: chrono_tz::UTC,
        shift: vec![],
        contact: None,
        media_encryption: Default::default(),
    }
}

fn queue(name: &str, s: &[(&str, u8)], strategy: Strategy) -> Queue {
    Queue {
        name: name.into(),
        skills: skills(s),
        strategy,
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
        priority: 0,
        transfer_priority: 0,
        service_level_s: 20,
        service_level_target: 80,
        record: Default::default(),
        record_prompt: None,
        rejoin_s: 0,
        survey: None,
        callback: None,
    }
}

fn cfg(agents: Vec<Agent>, queues: Vec<Queue>) -> AcdConfig {
    AcdConfig {
        agents: agents.into_iter().map(|a| (a.id.clone(), a)).collect(),
        queues: queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
        schedules: BTreeMap::new(),
    }
}

/// A Wednesday noon UTC.
fn wall() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap()
}

struct H {
    r: Router,
    t0: Instant,
}

impl H {
    fn new(c: &AcdConfig) -> H {
        let t0 = Instant::now();
        H {
            r: Router::new(c, t0, 7),
            t0,
        }
    }
    fn at(&self, s: u64) -> Instant {
        self.t0 + Duration::from_secs(s)
    }
    fn login(&self, ids: &[&str]) {
        for id in ids {
            self.r.agent_registered(id, self.t0, wall()).unwrap();
        }
    }
    fn arrive(&self, call: u64, q: &str, s: u64) -> Vec<Output> {
        self.r
            .caller_arrives(CallId(call), q, 0, self.at(s), wall())
            .unwrap()
    }
    fn state(&self, id: &str) -> AgentState {
        self.r.agent(id).unwrap().state
    }
    /// Answer and hang up `call` on `agent` at second `s`.
    fn serve(&self, agent: &str, call: u64, s: u64) -> Vec<Output> {
        self.r.answered(agent, CallId(call), self.at(s)).unwrap();
        self.r.call_ended(agent, CallId(call), self.at(s)).unwrap()
    }
}

fn offers(out: &[Output]) -> Vec<(String, u64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Offer(of) => Some((of.agent_name.to_string(), of.call.0)),
            _ => None,
        })
        .collect()
}

fn one(out: &[Output]) -> (String, u64) {
    let o = offers(out);
    assert_eq!(o.len(), 1, "{out:?}");
    o[0].clone()
}

#[test]
fn longest_idle_picks_the_agent_idle_longest() {
    let h = H::new(&cfg(
        vec![agent("a", &[]), agent("b", &[]), agent("c", &[])],
        vec![queue("q", &[], Strategy::LongestIdle)],
    ));
    h.login(&["a", "b", "c"]);
    // Give each a call ending at different times: b ended first.
    assert_eq!(one(&h.arrive(1, "q", 0)).0, "a");
    assert_eq!(one(&h.arrive(2, "q", 0)).0, "b");
    assert_eq!(one(&h.arrive(3, "q", 0)).0, "c");
    h.serve("b", 2, 10);
    h.serve("c", 3, 20);
    h.serve("a", 1, 30);
    assert_eq!(one(&h.arrive(4, "q", 40)).0, "b");
    assert_eq!(one(&h.arrive(5, "q", 40)).0, "c");
}

#[test]
fn most_skilled_picks_highest_score() {
    let h = H::new(&cfg(
        vec![
            agent("a", &[("x", 5), ("y", 5)]),
            agent("b", &[("x", 9), ("y", 8)]),
            agent("c", &[("x", 10), ("y", 2)]),
        ],
        vec![queue("q", &[("x", 1), ("y", 1)], Strategy::MostSkilled)],
    ));
    h.login(&["a", "b", "c"]);
    assert_eq!(one(&h.arrive(1, "q", 0)).0, "b"); // 17
    assert_eq!(one(&h.arrive(2, "q", 0)).0, "c"); // 12
    assert_eq!(one(&h.arrive(3, "q", 0)).0, "a"); // 10
}

#[test]
fn fewest_calls_picks_least_busy() {
    let h = H::new(&cfg(
        vec![agent("a", &[]), agent("b", &[])],
        vec![queue("q", &[], Strategy::FewestCalls)],
    ));
    h.login(&["a", "b"]);
    assert_eq!(one(&h.arrive(1, "q", 0)).0, "a");
    h.serve("a", 1, 1);
    assert_eq!(one(&h.arrive(2, "q", 2)).0, "b");
    h.serve("b", 2, 3);
    // Both 1 call: tie goes to longest idle (a ended first).
    assert_eq!(one(&h.arrive(3, "q", 4)).0, "a");
    h.serve("a", 3, 5);
    assert_eq!(one(&h.arrive(4, "q", 6)).0, "b");
    assert_eq!(h.r.agent("a").unwrap().calls_taken, 2);
}

#[test]
fn round_robin_rotates() {
    let h = H::new(&cfg(
        vec![agent("a", &[]), agent("b", &[]), agent("c", &[])],
        vec![queue("q", &[], Strategy::RoundRobin)],
    ));
    h.login(&["a", "b", "c"]);
    let mut got = Vec::new();
    for i in 0..6 {
        let (a, c) = one(&h.arrive(i, "q", i));
        h.serve(&a, c, i);
        got.push(a);
    }
    assert_eq!(got, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn random_is_seeded_and_spreads() {
    let c = cfg(
        (0..8).map(|i| agent(&format!("a{i}"), &[])).collect(),
        vec![queue("q", &[], Strategy::Random)],
    );
    let run = |seed| {
        let t0 = Instant::now();
        let r = Router::new(&c, t0, seed);
        for i in 0..8 {
            r.agent_registered(&format!("a{i}"), t0, wall()).unwrap();
        }
        let mut got = Vec::new();
        for i in 0..40 {
            let out = r.caller_arrives(CallId(i), "q", 0, t0, wall()).unwrap();
            let (a, call) = one(&out);
            r.answered(&a, CallId(call), t0).unwrap();
            r.call_ended(&a, CallId(call), t0).unwrap();
            got.push(a);
        }
        got
    };
    assert_eq!(run(1), run(1));
    let picks = run(1);
    let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
    assert!(distinct.len() >= 4, "{picks:?}");
}

#[test]
fn skills_gate_eligibility_and_relax_widens() {
    let mut q = queue("q", &[("billing", 5)], Strategy::LongestIdle);
    q.relax = vec![Relax {
        after_s: 60,
        skills: skills(&[("billing", 1)]),
    }];
    let h = H::new(&cfg(
        vec![
            agent("junior", &[("billing", 2)]),
            agent("other", &[("sales", 9)]),
        ],
        vec![q],
    ));
    h.login(&["junior", "other"]);
    let out = h.arrive(1, "q", 0);
    assert!(offers(&out).is_empty());
    let relax = out
        .iter()
        .find_map(|o| match o {
            Output::Arm {
                at,
                timer: t @ Timer::Relax { .. },
            } => Some((*at, t.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(relax.0, h.at(60));
    // Early fire does nothing.
    assert!(h.r.timer(&relax.1, h.at(59)).is_empty());
    assert_eq!(one(&h.r.timer(&relax.1, h.at(60))), ("junior".into(), 1));
    assert_eq!(h.state("other"), AgentState::Available);
}

#[test]
fn priority_then_longest_wait_across_queues() {
    let mut hi = queue("hi", &[], Strategy::LongestIdle);
    hi.priority = 5;
    let lo = queue("lo", &[], Strategy::LongestIdle);
    let lo2 = queue("lo2", &[], Strategy::LongestIdle);
    let h = H::new(&cfg(vec![agent("a", &[])], vec![hi, lo, lo2]));
    h.login(&["a"]);
    let (_, c) = one(&h.arrive(1, "lo", 0));
    assert!(offers(&h.arrive(2, "lo2", 1)).is_empty());
    assert!(offers(&h.arrive(3, "lo", 2)).is_empty());
    assert!(offers(&h.arrive(4, "hi", 3)).is_empty());
    h.r.answered("a", CallId(c), h.at(4)).unwrap();
    // Highest queue priority first, although it arrived last.
    assert_eq!(one(&h.r.call_ended("a", CallId(c), h.at(5)).unwrap()).1, 4);
    h.r.answered("a", CallId(4), h.at(6)).unwrap();
    // Then the longest wait across lo and lo2.
    assert_eq!(one(&h.r.call_ended("a", CallId(4), h.at(7)).unwrap()).1, 2);
    // A caller's own (IVR) priority adds to its queue's.
    h.r.caller_arrives(CallId(9), "lo", 10, h.at(8), wall())
        .unwrap();
    h.r.answered("a", CallId(2), h.at(9)).unwrap();
    assert_eq!(one(&h.r.call_ended("a", CallId(2), h.at(9)).unwrap()).1, 9);
}

#[test]
fn wrapup_delays_next_offer() {
    let mut q = queue("q", &[], Strategy::LongestIdle);
    q.wrapup_s = 10;
    let h = H::new(&cfg(vec![agent("a", &[])], vec![q]));
    h.login(&["a"]);
    one(&h.arrive(1, "q", 0));
    assert_eq!(h.state("a"), AgentState::Ringing);
    h.r.answered("a", CallId(1), h.at(1)).unwrap();
    assert_eq!(h.state("a"), AgentState::OnCall);
    let out = h.r.call_ended("a", CallId(1), h.at(5)).unwrap();
    let Output::Arm { at, timer } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(*at, h.at(15));
    assert_eq!(h.state("a"), AgentState::Wrapup);
    assert!(offers(&h.arrive(2, "q", 6)).is_empty());
    assert_eq!(one(&h.r.timer(timer, h.at(15))), ("a".into(), 2));
    // A stale wrap-up timer does nothing.
    assert!(h.r.timer(timer, h.at(16)).is_empty());
    assert_eq!(h.state("a"), AgentState::Ringing);
}

#[test]
fn rona_pauses_and_reoffers() {
    let h = H::new(&cfg(
        vec![agent("a", &[]), agent("b", &[])],
        vec![queue("q", &[], Strategy::RoundRobin)],
    ));
    h.login(&["a", "b"]);
    let out = h.arrive(1, "q", 0);
    assert_eq!(one(&out).0, "a");
    let ring = out
        .iter()
        .find_map(|o| match o {
            Output::Arm { at, timer } => Some((*at, timer.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(ring.0, h.at(15));
    let out = h.r.timer(&ring.1, h.at(15));
    assert_eq!(one(&out), ("b".into(), 1));
    let a = h.r.agent("a").unwrap();
    assert_eq!(a.state, AgentState::Paused);
    assert_eq!(a.pause_reason.as_deref(), Some(RONA));
    // Unpausing makes it available again and it takes the next caller.
    h.r.set_state("a", AdminState::Available, h.at(20)).unwrap();
    assert_eq!(one(&h.arrive(2, "q", 21)).0, "a");
}

#[test]
fn busy_or_decline_reoffers_elsewhere() {
    let h = H::new(&cfg(
        vec![agent("a", &[]), agent("b", &[])],
        vec![queue("q", &[], Strategy::RoundRobin)],
    ));
    h.login(&["a", "b"]);
    assert_eq!(one(&h.arrive(1, "q", 0)).0, "a");
    let out = h.r.rejected("a", CallId(1), h.at(1)).unwrap();
    assert_eq!(one(&out), ("b".into(), 1));
    assert_eq!(h.state("a"), AgentState::Available);
    // The refusal is remembered for the queue's retry_s (5 s): a timer
    // offers the caller again when it is over.
    assert!(out.contains(&Output::Arm {
        at: h.at(6),
        timer: Timer::RetryRefused { call: CallId(1) },
    }));
    // b declines too: both refused it lately, so the caller waits instead
    // of ping-ponging between two refusing phones...
    let out = h.r.rejected("b", CallId(1), h.at(2)).unwrap();
    assert!(offers(&out).is_empty(), "{out:?}");
    assert_eq!(h.r.waiting_calls(), vec![CallId(1)]);
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(h.state("b"), AgentState::Available);
    // ...and an early timer changes nothing...
    let early = h.r.timer(&Timer::RetryRefused { call: CallId(1) }, h.at(5));
    assert!(offers(&early).is_empty(), "{early:?}");
    // ...until a's refusal is over: a is offered the caller again.
    let out = h.r.timer(&Timer::RetryRefused { call: CallId(1) }, h.at(6));
    assert_eq!(one(&out), ("a".into(), 1));
    assert!(h.r.rejected("b", CallId(1), h.at(6)).is_err());
}

#[test]
fn refused_twice_goes_to_a_third_agent_not_back() {
    let h = H::new(&cfg(
        vec![
            agent("a", &[("s", 9)]),
            agent("b", &[("s", 7)]),
            agent("c", &[("s", 5)]),
        ],
        vec![queue("q", &[("s", 1)], Strategy::MostSkilled)],
    ));
    h.login(&["a", "b", "c"]);
    assert_eq!(one(&h.arrive(1, "q", 0)).0, "a");
    assert_eq!(one(&h.r.rejected("a", CallId(1), h.at(1)).unwrap()).0, "b");
    // a is free and the most skilled, but it refused this caller: c rings.
    assert_eq!(one(&h.r.rejected("b", CallId(1), h.at(2)).unwrap()).0, "c");
    // A new caller is not held back by the first one's refusals.
    assert_eq!(one(&h.arrive(2, "q", 3)).0, "a");
}

#[test]
fn shift_in_agent_zone_skips_and_returns() {
    let mut berlin = agent("berlin", &[]);
    berlin.timezone = "Europe/Berlin".parse::<Tz>().unwrap();
    berlin.shift = vec![Window::parse("mon-fri 09:00-17:00").unwrap()];
    let mut tokyo = agent("tokyo", &[]);
    tokyo.timezone = "Asia/Tokyo".parse::<Tz>().unwrap();
    tokyo.shift = vec![Window::parse("mon-fri 09:00-17:00").unwrap()];
    let h = H::new(&cfg(
        vec![berlin, tokyo],
        vec![queue("q", &[], Strategy::LongestIdle)],
    ));
    // Wednesday 07:30 UTC: 08:30 in Berlin (CET), 16:30 in Tokyo.
    let early = Utc.with_ymd_and_hms(2026, 3, 4, 7, 30, 0).unwrap();
    h.r.agent_registered("berlin", h.t0, early).unwrap();
    h.r.agent_registered("tokyo", h.t0, early).unwrap();
    assert_eq!(h.state("berlin"), AgentState::OffShift);
    let out =
        h.r.caller_arrives(CallId(1), "q", 0, h.at(1), early)
            .unwrap();
    assert_eq!(one(&out).0, "tokyo");
    assert!(offers(
        &h.r.caller_arrives(CallId(2), "q", 0, h.at(2), early)
            .unwrap()
    )
    .is_empty());
    // 08:00 UTC = 09:00 Berlin: the shift starts and the waiting caller goes.
    let nine = Utc.with_ymd_and_hms(2026, 3, 4, 8, 0, 0).unwrap();
    let out = h.r.refresh_shifts(h.at(1800), nine);
    assert_eq!(one(&out), ("berlin".into(), 2));
    // Tokyo's shift ends mid-call: off_shift only after the call.
    let late = Utc.with_ymd_and_hms(2026, 3, 4, 8, 1, 0).unwrap();
    h.r.answered("tokyo", CallId(1), h.at(1801)).unwrap();
    h.r.refresh_shifts(h.at(1860), late);
    assert_eq!(h.state("tokyo"), AgentState::OnCall);
    h.r.call_ended("tokyo", CallId(1), h.at(1900)).unwrap();
    assert_eq!(h.state("tokyo"), AgentState::OffShift);
}

#[test]
fn closed_schedule_diverts_to_closed_target() {
    let mut q = queue("q", &[], Strategy::LongestIdle);
    q.schedule = Some("office".into());
    q.closed = Some(Target::Ivr {
        ivr: "main".into(),
        node: "after_hours".into(),
    });
    let mut c = cfg(vec![agent("a", &[])], vec![q]);
    c.schedules.insert(
        "office".into(),
        Schedule {
            timezone: "Asia/Jakarta".parse().unwrap(),
            open: vec![Window::parse("mon-fri 08:00-20:00").unwrap()],
            closed_dates: vec![],
        },
    );
    let h = H::new(&c);
    h.login(&["a"]);
    // 14:00 UTC = 21:00 in Jakarta: closed.
    let night = Utc.with_ymd_and_hms(2026, 3, 4, 14, 0, 0).unwrap();
    let out = h.r.caller_arrives(CallId(1), "q", 0, h.t0, night).unwrap();
    assert_eq!(
        out,
        vec![Output::Divert {
            call: CallId(1),
            queue: "q".into(),
            reason: DivertReason::Closed,
            target: Some(Target::Ivr {
                ivr: "main".into(),
                node: "after_hours".into()
            }),
        }]
    );
    // 05:00 UTC = 12:00 in Jakarta: open.
    let noon = Utc.with_ymd_and_hms(2026, 3, 4, 5, 0, 0).unwrap();
    let out = h.r.caller_arrives(CallId(2), "q", 0, h.t0, noon).unwrap();
    assert_eq!(one(&out).0, "a");
}

#[test]
fn overflow_on_max_wait_and_max_waiting() {
    let mut q = queue("q", &[], Strategy::LongestIdle);
    q.max_wait_s = 30;
    q.max_waiting = 2;
    q.overflow = Some(Target::Queue("general".into()));
    let h = H::new(&cfg(vec![agent("a", &[])], vec![q]));
    let out = h.arrive(1, "q", 0);
    let max_wait = out
        .iter()
        .find_map(|o| match o {
            Output::Arm {
                at,
                timer: t @ Timer::MaxWait { .. },
            } => Some((*at, t.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(max_wait.0, h.at(30));
    h.arrive(2, "q", 1);
    let full = h.arrive(3, "q", 2);
    assert!(matches!(
        &full[..],
        [Output::Divert { reason: DivertReason::MaxWaiting, target: Some(Target::Queue(g)), .. }] if g == "general"
    ));
    let out = h.r.timer(&max_wait.1, h.at(30));
    assert!(matches!(
        &out[..],
        [Output::Divert {
            call: CallId(1),
            reason: DivertReason::MaxWait,
            ..
        }]
    ));
    assert_eq!(h.r.waiting_calls(), vec![CallId(2)]);
    // There is room again.
    assert!(!matches!(
        h.arrive(4, "q", 31).first(),
        Some(Output::Divert { .. })
    ));
}

#[test]
fn caller_hangup_while_waiting_and_ringing() {
    let h = H::new(&cfg(
        vec![agent("a", &[])],
        vec![queue("q", &[], Strategy::LongestIdle)],
    ));
    h.arrive(1, "q", 0);
    h.r.caller_hangup(CallId(1), h.at(1));
    assert!(h.r.waiting_calls().is_empty());
    h.login(&["a"]);
    assert_eq!(h.state("a"), AgentState::Available);
    one(&h.arrive(2, "q", 2));
    h.arrive(3, "q", 3);
    // Hang-up while ringing frees the agent for the next caller.
    assert_eq!(one(&h.r.caller_hangup(CallId(2), h.at(4))), ("a".into(), 3));
    assert!(h.r.answered("a", CallId(2), h.at(5)).is_err());
}

#[test]
fn pause_and_logout_are_respected() {
    let h = H::new(&cfg(
        vec![agent("a", &[]), agent("b", &[])],
        vec![queue("q", &[], Strategy::LongestIdle)],
    ));
    h.login(&["a", "b"]);
    h.r.set_state("a", AdminState::Paused("lunch".into()), h.t0)
        .unwrap();
    h.r.agent_unregistered("b", h.t0).unwrap();
    assert_eq!(h.state("a"), AgentState::Paused);
    assert_eq!(h.state("b"), AgentState::LoggedOut);
    assert!(offers(&h.arrive(1, "q", 0)).is_empty());
    let out = h.r.agent_registered("b", h.at(1), wall()).unwrap();
    assert_eq!(one(&out), ("b".into(), 1));
    // Pause during a call applies after it.
    h.r.set_state("b", AdminState::Paused("break".into()), h.at(2))
        .unwrap();
    assert_eq!(h.state("b"), AgentState::Ringing);
    h.serve("b", 1, 3);
    assert_eq!(h.state("b"), AgentState::Paused);
}

#[test]
fn logout_code_outlasts_registration_refreshes_until_login() {
    let h = H::new(&cfg(
        vec![agent("a", &[])],
        vec![queue("q", &[], Strategy::LongestIdle)],
    ));
    h.login(&["a"]);
    h.r.set_state("a", AdminState::Paused("lunch".into()), h.t0)
        .unwrap();
    h.r.set_logged_in("a", false, h.t0).unwrap();
    assert_eq!(h.state("a"), AgentState::LoggedOut);
    assert!(h.r.logged_off("a"));
    // The phone's next REGISTER refresh does not log it back in.
    h.r.agent_registered("a", h.at(1), wall()).unwrap();
    assert_eq!(h.state("a"), AgentState::LoggedOut);
    assert!(offers(&h.arrive(1, "q", 2)).is_empty());
    // Login: available again (its pause gone) and takes the waiting caller.
    let out = h.r.set_logged_in("a", true, h.at(3)).unwrap();
    assert_eq!(one(&out), ("a".into(), 1));
    assert!(!h.r.logged_off("a"));
    assert_eq!(h.r.agent("a").unwrap().pause_reason, None);
    // A logout during a call applies after it.
    h.r.set_logged_in("a", false, h.at(4)).unwrap();
    assert_eq!(h.state("a"), AgentState::Ringing);
    h.serve("a", 1, 5);
    assert_eq!(h.state("a"), AgentState::LoggedOut);
}

#[test]
fn a_caller_for_one_agent_rings_it_only_if_available_and_waits_after_a_no_answer() {
    let h = H::new(&cfg(
        vec![agent("a", &[]), agent("b", &[])],
        vec![queue("q", &[], Strategy::LongestIdle)],
    ));
    h.login(&["a"]);
    // b is logged out: refused, nothing changes.
    assert!(h.r.caller_for_agent(CallId(7), "q", 0, "b", h.t0).is_err());
    assert!(h.r.agent_of_call(CallId(7)).is_none());
    let out = h.r.caller_for_agent(CallId(7), "q", 0, "a", h.t0).unwrap();
    assert_eq!(offers(&out), [("a".to_owned(), 7)]);
    assert_eq!(h.state("a"), AgentState::Ringing);
    // a is ringing now: another direct offer to it is refused.
    assert!(h.r.caller_for_agent(CallId(8), "q", 0, "a", h.t0).is_err());
    // No answer: the caller waits in q and b, logging in, takes it.
    h.r.ring_no_answer("a", CallId(7), h.at(1)).unwrap();
    let out = h.r.agent_registered("b", h.at(2), wall()).unwrap();
    assert_eq!(one(&out), ("b".into(), 7));
    h.serve("b", 7, 3);
}

#[test]
fn reload_keeps_state_counters_and_callers() {
    let c1 = cfg(
        vec![
            agent("a", &[("x", 5)]),
            agent("b", &[("x", 5)]),
            agent("gone", &[("x", 5)]),
        ],
        vec![
            queue("q", &[("x", 1)], Strategy::LongestIdle),
            queue("old", &[("y", 1)], Strategy::LongestIdle),
        ],
    );
    let mut h = H::new(&c1);
    h.login(&["a", "b", "gone"]);
    one(&h.arrive(1, "q", 0)); // a
    h.serve("a", 1, 1);
    one(&h.arrive(2, "q", 2)); // b
    one(&h.arrive(3, "q", 2)); // gone
    h.r.answered("gone", CallId(3), h.at(3)).unwrap();
    h.r.set_state("a", AdminState::Paused("lunch".into()), h.at(3))
        .unwrap();
    h.arrive(4, "old", 4);
    h.arrive(5, "q", 4);
    // New file: `gone` and queue `old` removed, `c` added, q changes strategy.
    let mut q2 = queue("q", &[("x", 1)], Strategy::FewestCalls);
    q2.wrapup_s = 5;
    let c2 = cfg(
        vec![
            agent("a", &[("x", 5)]),
            agent("b", &[("x", 5)]),
            agent("c", &[("x", 5)]),
        ],
        vec![q2],
    );
    let out = h.r.reload(&c2, h.at(5), wall());
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Divert {
            call: CallId(4),
            reason: DivertReason::QueueRemoved,
            ..
        }
    )));
    let a = h.r.agent("a").unwrap();
    assert_eq!(
        (a.state, a.pause_reason.as_deref(), a.calls_taken),
        (AgentState::Paused, Some("lunch"), 1)
    );
    assert_eq!(h.state("b"), AgentState::Ringing);
    assert_eq!(h.state("c"), AgentState::LoggedOut);
    assert_eq!(h.r.waiting_calls(), vec![CallId(5)]);
    // The removed agent finishes its call, then leaves.
    assert_eq!(h.state("gone"), AgentState::OnCall);
    let out = h.r.call_ended("gone", CallId(3), h.at(6)).unwrap();
    assert_eq!(h.state("gone"), AgentState::Wrapup);
    let Some(Output::Arm { timer, .. }) = out.first() else {
        panic!("{out:?}")
    };
    h.r.timer(timer, h.at(11));
    assert!(h.r.agent("gone").is_none());
    assert!(h.r.agents().iter().all(|a| &*a.id != "gone"));
    // The queued caller is still served after the reload.
    let out = h.r.agent_registered("c", h.at(7), wall()).unwrap();
    assert_eq!(one(&out), ("c".into(), 5));
}

#[test]
fn reload_that_moves_ids_keeps_each_agents_own_state() {
    let c1 = cfg(
        vec![agent("b", &[("x", 5)]), agent("d", &[("x", 5)])],
        vec![queue("q", &[("x", 1)], Strategy::LongestIdle)],
    );
    let mut h = H::new(&c1);
    h.login(&["b", "d"]);
    one(&h.arrive(1, "q", 0)); // b
    h.r.answered("b", CallId(1), h.at(1)).unwrap();
    h.r.set_state("d", AdminState::Paused("lunch".into()), h.at(1))
        .unwrap();
    let (b1, d1) = (h.r.names().agent("b"), h.r.names().agent("d"));
    assert!(b1.is_some() && d1.is_some() && b1 != d1);
    // "a" and "c" sort before "b" and "d": both survivors change id.
    let c2 = cfg(
        vec![
            agent("a", &[("x", 5)]),
            agent("b", &[("x", 5)]),
            agent("c", &[("x", 5)]),
            agent("d", &[("x", 5)]),
        ],
        vec![
            queue("p", &[("x", 1)], Strategy::LongestIdle),
            queue("q", &[("x", 1)], Strategy::LongestIdle),
        ],
    );
    h.r.reload(&c2, h.at(2), wall());
    let names = h.r.names();
    assert_ne!(names.agent("b"), b1, "b's id moved");
    assert_ne!(names.agent("d"), d1, "d's id moved");
    let ids: std::collections::BTreeSet<_> = ["a", "b", "c", "d"]
        .iter()
        .filter_map(|n| names.agent(n))
        .collect();
    assert_eq!(ids.len(), 4, "distinct ids");
    for n in ["a", "b", "c", "d"] {
        let id = names.agent(n).unwrap();
        assert_eq!(names.agent_name(id).map(|s| &**s), Some(n));
    }
    assert_eq!(h.state("b"), AgentState::OnCall);
    let d = h.r.agent("d").unwrap();
    assert_eq!(
        (d.state, d.pause_reason.as_deref()),
        (AgentState::Paused, Some("lunch"))
    );
    assert_eq!(h.state("a"), AgentState::LoggedOut);
    // b's call, named by b's id from the old table (now a's), still
    // ends on b: the name no longer matches, so the name decides.
    assert_eq!(h.r.names().agent_name(b1.unwrap()).map(|s| &**s), Some("a"));
    let stale = crate::acd::AgentRef::Id(b1.unwrap(), "b");
    h.r.call_ended(stale, CallId(1), h.at(3)).unwrap();
    let b = h.r.agent("b").unwrap();
    assert_eq!((b.state, b.calls_taken), (AgentState::Available, 1));
    // A reload that drops an agent: the others keep their state.
    let c3 = cfg(
        vec![agent("b", &[("x", 5)]), agent("d", &[("x", 5)])],
        vec![queue("q", &[("x", 1)], Strategy::LongestIdle)],
    );
    h.r.reload(&c3, h.at(4), wall());
    assert!(h.r.agent("a").is_none());
    assert_eq!(h.r.agent("b").unwrap().calls_taken, 1);
    assert_eq!(h.state("d"), AgentState::Paused);
    assert_eq!(h.r.names().queue("p"), None);
}

/// The agent timers among `out`, with when they are due.
fn agent_timers(out: &[Output]) -> Vec<(Instant, Timer)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Arm { at, timer } => match timer {
                Timer::RingTimeout { .. } | Timer::WrapupEnd { .. } => Some((*at, timer.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn agent_timers_kept_over_a_reload_that_moves_ids_hit_their_own_agent() {
    let mut q = queue("q", &[], Strategy::LongestIdle);
    q.wrapup_s = 10;
    let c1 = cfg(vec![agent("b", &[]), agent("d", &[])], vec![q.clone()]);
    let mut h = H::new(&c1);
    h.login(&["b", "d"]);
    // The agent offered call 1 talks and wraps up; the other rings with
    // call 2.
    let wrapping = one(&h.arrive(1, "q", 0)).0;
    let ringing = if wrapping == "b" { "d" } else { "b" }.to_string();
    let ended = h.serve(&wrapping, 1, 1);
    let wrap = agent_timers(&ended);
    assert_eq!(wrap.len(), 1, "{ended:?}");
    assert_eq!(wrap[0].0, h.at(11));
    let out = h.arrive(2, "q", 2);
    assert_eq!(one(&out), (ringing.clone(), 2));
    let ring = agent_timers(&out);
    assert_eq!(ring.len(), 1, "{out:?}");
    assert_eq!(ring[0].0, h.at(17));
    let old_ids = (h.r.names().agent("b"), h.r.names().agent("d"));
    // "a" and "c" sort first: b's and d's ids move, and the old ones now
    // name other agents (b's old id is a's, d's old id is b's).
    let c2 = cfg(
        vec![
            agent("a", &[]),
            agent("b", &[]),
            agent("c", &[]),
            agent("d", &[]),
        ],
        vec![q],
    );
    let reloaded = h.r.reload(&c2, h.at(3), wall());
    assert_ne!(h.r.names().agent("b"), old_ids.0);
    assert_ne!(h.r.names().agent("d"), old_ids.1);
    // The reload arms both again, under the new ids, for the same instants.
    let mut again = agent_timers(&reloaded);
    again.sort();
    let id = |n: &str| h.r.names().agent(n).unwrap();
    let mut want = vec![
        (
            h.at(11),
            Timer::WrapupEnd {
                agent: id(&wrapping),
                call: CallId(1),
            },
        ),
        (
            h.at(17),
            Timer::RingTimeout {
                agent: id(&ringing),
                call: CallId(2),
            },
        ),
    ];
    want.sort();
    assert_eq!(again, want);
    // The old timers fire first: their ids name other agents now, which
    // are not busy with those calls, so nothing happens to anyone.
    assert!(h.r.timer(&wrap[0].1, h.at(11)).is_empty());
    assert!(h.r.timer(&ring[0].1, h.at(17)).is_empty());
    assert_eq!(h.state(&wrapping), AgentState::Wrapup);
    assert_eq!(h.state(&ringing), AgentState::Ringing);
    assert_eq!(h.state("a"), AgentState::LoggedOut);
    // The ones armed again end the wrap-up and ring out the right agents.
    assert!(h.r.timer(&want[0].1, h.at(11)).is_empty());
    assert_eq!(h.state(&wrapping), AgentState::Available);
    let out = h.r.timer(&want[1].1, h.at(17));
    assert_eq!(
        one(&out),
        (wrapping.clone(), 2),
        "re-offered to the free one"
    );
    let r = h.r.agent(&ringing).unwrap();
    assert_eq!(
        (r.state, r.pause_reason.as_deref()),
        (AgentState::Paused, Some(RONA))
    );
}

#[test]
fn a_ring_timer_of_an_earlier_offer_leaves_a_later_offer_ringing() {
    let h = H::new(&cfg(
        vec![agent("a", &[])],
        vec![queue("q", &[], Strategy::LongestIdle)],
    ));
    h.login(&["a"]);
    let out = h.arrive(1, "q", 0);
    let first = agent_timers(&out);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, h.at(15));
    // Refused at 1 (retry_s 5): offered to the same agent again at 6.
    let out = h.r.rejected("a", CallId(1), h.at(1)).unwrap();
    assert!(offers(&out).is_empty(), "{out:?}");
    let retry = out
        .iter()
        .find_map(|o| match o {
            Output::Arm { at, timer } if matches!(timer, Timer::RetryRefused { .. }) => {
                Some((*at, timer.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(retry.0, h.at(6));
    let out = h.r.timer(&retry.1, h.at(6));
    assert_eq!(one(&out), ("a".into(), 1));
    let second = agent_timers(&out);
    assert_eq!(second[0].0, h.at(21));
    // The first offer's timer is the same timer value, but early for this
    // ring: the agent keeps ringing.
    assert_eq!(first[0].1, second[0].1);
    assert!(h.r.timer(&first[0].1, h.at(15)).is_empty());
    assert_eq!(h.state("a"), AgentState::Ringing);
    assert!(h.r.timer(&second[0].1, h.at(21)).is_empty());
    let a = h.r.agent("a").unwrap();
    assert_eq!(
        (a.state, a.pause_reason.as_deref()),
        (AgentState::Paused, Some(RONA))
    );
}

#[test]
fn index_stays_bounded() {
    let h = H::new(&cfg(
        (0..10)
            .map(|i| agent(&format!("a{i}"), &[("x", 5)]))
            .collect(),
        vec![
            queue("q1", &[("x", 1)], Strategy::LongestIdle),
            queue("q2", &[("x", 2)], Strategy::FewestCalls),
            queue("q3", &[("x", 3)], Strategy::RoundRobin),
        ],
    ));
    let ids: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    for id in &ids {
        h.r.agent_registered(id, h.t0, wall()).unwrap();
    }
    for i in 0..300u64 {
        let q = ["q1", "q2", "q3"][(i % 3) as usize];
        let (a, c) = one(&h.arrive(i, q, i));
        h.serve(&a, c, i);
    }
    // One entry per (pool, eligible agent) at most.
    assert!(h.r.index_entries() <= 30, "{}", h.r.index_entries());
}

#[test]
fn pools_nobody_claims_from_stay_bounded_and_ordered() {
    let h = H::new(&cfg(
        (0..10)
            .map(|i| agent(&format!("a{i}"), &[("x", 5)]))
            .collect(),
        vec![
            queue("busy", &[("x", 1)], Strategy::LongestIdle),
            // Another pool with the same agents; no caller ever claims
            // from it, so only a new stay's re-index drops old entries.
            queue("quiet", &[("x", 1)], Strategy::FewestCalls),
        ],
    ));
    for i in 0..10 {
        h.r.agent_registered(&format!("a{i}"), h.t0, wall())
            .unwrap();
    }
    let mut served = BTreeMap::<String, u64>::new();
    for i in 0..300u64 {
        let (a, c) = one(&h.arrive(i, "busy", i));
        h.serve(&a, c, i);
        *served.entry(a).or_default() += 1;
    }
    // 300 stays were indexed into "quiet": one entry per agent remains.
    assert!(h.r.index_entries() <= 20, "{}", h.r.index_entries());
    // That pool still routes by its own order: fewest calls taken.
    let least = served
        .iter()
        .min_by_key(|(id, n)| (**n, (*id).clone()))
        .map(|(id, _)| id.clone());
    let fewest = served.values().min().copied();
    let (a, _) = one(&h.arrive(1000, "quiet", 400));
    assert_eq!(served.get(&a).copied(), fewest, "{a} vs {least:?}");
}

// ---- property test against the sequential model ---------------------------

mod prop {
    use super::*;
    use crate::config::Strategy as Strat;
    use proptest::prelude::{prop_assert_eq, prop_oneof, proptest, ProptestConfig, Strategy as _};

    #[derive(Debug, Clone)]
    enum Ev {
        Arrive(usize, i32),
        Register(usize),
        Unregister(usize),
        Pause(usize),
        Unpause(usize),
        Answer(usize),
        End(usize),
        Reject(usize),
        Hangup(u64),
        Advance(u64),
    }

    fn ev() -> impl proptest::strategy::Strategy<Value = Ev> {
        prop_oneof![
            3 => (0..4usize, 0..3i32).prop_map(|(q, p)| Ev::Arrive(q, p)),
            2 => (0..6usize).prop_map(Ev::Register),
            1 => (0..6usize).prop_map(Ev::Unregister),
            1 => (0..6usize).prop_map(Ev::Pause),
            1 => (0..6usize).prop_map(Ev::Unpause),
            3 => (0..6usize).prop_map(Ev::Answer),
            3 => (0..6usize).prop_map(Ev::End),
            1 => (0..6usize).prop_map(Ev::Reject),
            1 => (0..40u64).prop_map(Ev::Hangup),
            2 => (1..40u64).prop_map(Ev::Advance),
        ]
    }

    fn world() -> AcdConfig {
        let strategies = [
            Strat::LongestIdle,
            Strat::MostSkilled,
            Strat::RoundRobin,
            Strat::FewestCalls,
        ];
        let agents = (0..6)
            .map(|i| {
                agent(
                    &format!("a{i}"),
                    &[("x", (i * 3 % 10 + 1) as u8), ("y", (i * 7 % 10 + 1) as u8)],
                )
            })
            .collect();
        let queues = (0..4)
            .map(|i| {
                let mut q = queue(&format!("q{i}"), &[("x", 4 + i as u8)], strategies[i]);
                q.priority = (i % 2) as i32;
                q.wrapup_s = (i as u64) * 3;
                q.ring_timeout_s = 10;
                q.max_wait_s = if i == 3 { 50 } else { 0 };
                q.max_waiting = 4;
                q.relax = vec![Relax {
                    after_s: 20,
                    skills: skills(&[("x", 1)]),
                }];
                q
            })
            .collect::<Vec<_>>();
        let mut queues = queues;
        queues.push(queue("q4", &[], Strat::Random));
        cfg(agents, queues)
    }

    fn norm(mut v: Vec<Output>) -> Vec<Output> {
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn router_matches_model(evs in proptest::collection::vec(ev(), 1..80)) {
            let c = world();
            let t0 = Instant::now();
            let r = Router::new(&c, t0, 3);
            let mut m = Model::new(&c, t0, 3);
            let mut now = t0;
            let mut timers: Vec<(Instant, Timer)> = Vec::new();
            let mut next_call = 0u64;
            let agent_of = |i: usize| format!("a{i}");
            for e in evs {
                let (a, b) = match e {
                    Ev::Arrive(q, p) => {
                        next_call += 1;
                        let q = if q == 0 && next_call % 5 == 0 { "q4".to_string() } else { format!("q{q}") };
                        (r.caller_arrives(CallId(next_call), &q, p, now, wall()).ok(),
                         m.caller_arrives(CallId(next_call), &q, p, now, wall()).ok())
                    }
                    Ev::Register(i) => (r.agent_registered(&agent_of(i), now, wall()).ok(), m.agent_registered(&agent_of(i), now, wall()).ok()),
                    Ev::Unregister(i) => (r.agent_unregistered(&agent_of(i), now).ok(), m.agent_unregistered(&agent_of(i), now).ok()),
                    Ev::Pause(i) => (r.set_state(&agent_of(i), AdminState::Paused("p".into()), now).ok(), m.set_state(&agent_of(i), AdminState::Paused("p".into()), now).ok()),
                    Ev::Unpause(i) => (r.set_state(&agent_of(i), AdminState::Available, now).ok(), m.set_state(&agent_of(i), AdminState::Available, now).ok()),
                    Ev::Answer(i) | Ev::End(i) | Ev::Reject(i) => {
                        let Some(call) = r.agent(&agent_of(i)).unwrap().call else { continue };
                        match e {
                            Ev::Answer(_) => (r.answered(&agent_of(i), call, now).ok().map(|_| vec![]), m.answered(&agent_of(i), call, now).ok().map(|_| vec![])),
                            Ev::End(_) => (r.call_ended(&agent_of(i), call, now).ok(), m.call_ended(&agent_of(i), call, now).ok()),
                            _ => (r.rejected(&agent_of(i), call, now).ok(), m.rejected(&agent_of(i), call, now).ok()),
                        }
                    }
                    Ev::Hangup(c) => (Some(r.caller_hangup(CallId(c), now)), Some(m.caller_hangup(CallId(c), now))),
                    Ev::Advance(s) => {
                        now += Duration::from_secs(s);
                        let mut ra = Vec::new();
                        let mut ma = Vec::new();
                        timers.sort();
                        let (due, rest): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(at, _)| *at <= now);
                        timers = rest;
                        for (_, t) in due {
                            ra.extend(r.timer(&t, now));
                            ma.extend(m.timer(&t, now));
                        }
                        (Some(ra), Some(ma))
                    }
                };
                prop_assert_eq!(a.clone().map(norm), b.map(norm));
                for o in a.unwrap_or_default() {
                    if let Output::Arm { at, timer } = o {
                        timers.push((at, timer));
                    }
                }
                let rs: Vec<_> = r.agents().into_iter().map(|s| (s.id, s.state.as_str(), s.calls_taken)).collect();
                prop_assert_eq!(rs, m.agent_states());
                prop_assert_eq!(r.waiting_calls(), m.waiting_calls());
            }
        }
    }
}

#[test]
fn position_follows_priority_then_arrival_across_relax_levels() {
    let mut q = queue("q", &[("s", 5)], Strategy::LongestIdle);
    q.relax = vec![Relax {
        after_s: 10,
        skills: skills(&[("s", 1)]),
    }];
    let h = H::new(&cfg(vec![agent("a", &[("s", 9)])], vec![q]));
    // Nobody logged in: everyone waits.
    h.arrive(1, "q", 0);
    h.arrive(2, "q", 1);
    h.r.caller_arrives(CallId(3), "q", 5, h.at(2), wall())
        .unwrap();
    assert_eq!(h.r.position(CallId(3)), Some(1), "higher priority first");
    assert_eq!(h.r.position(CallId(1)), Some(2));
    assert_eq!(h.r.position(CallId(2)), Some(3));
    // Call 1 reaches its relax step (another lane): its place is kept.
    h.r.timer(
        &Timer::Relax {
            call: CallId(1),
            level: 1,
        },
        h.at(10),
    );
    assert_eq!(h.r.position(CallId(1)), Some(2));
    assert_eq!(h.r.position(CallId(2)), Some(3));
    h.r.caller_hangup(CallId(3), h.at(11));
    assert_eq!(h.r.position(CallId(3)), None);
    assert_eq!(h.r.position(CallId(1)), Some(1));
    assert_eq!(h.r.position(CallId(2)), Some(2));
}

#[test]
fn one_queues_staffing_counts_as_the_queue_listing_does() {
    let c = cfg(
        vec![
            agent("a", &[("x", 5)]),
            agent("b", &[("x", 5)]),
            agent("c", &[("x", 5)]),
            agent("y", &[("y", 5)]),
        ],
        vec![
            queue("q", &[("x", 1)], Strategy::LongestIdle),
            queue("other", &[("y", 1)], Strategy::LongestIdle),
        ],
    );
    let h = H::new(&c);
    h.login(&["a", "b", "c", "y"]);
    one(&h.arrive(1, "q", 0)); // one of a, b, c rings
    h.r.set_state("c", AdminState::Paused("lunch".into()), h.at(1))
        .unwrap();
    let q = h.r.names().queue("q").unwrap();
    let listed = h.r.queues(h.at(1));
    let listed = listed.iter().find(|s| &*s.name == "q").unwrap();
    let staff = h.r.staffing(q);
    assert_eq!(
        (staff.available, staff.busy),
        (listed.agents_available, listed.agents_busy)
    );
    // The ringing agent is busy, the paused one neither, y serves another
    // queue.
    assert_eq!((staff.available, staff.busy), (1, 1));
    assert_eq!(h.r.staffing(QueueId::NONE).available, 0);
}

#[test]
fn a_reload_says_where_each_id_went() {
    let c1 = cfg(
        vec![agent("b", &[("x", 5)]), agent("d", &[("x", 5)])],
        vec![
            queue("q", &[("x", 1)], Strategy::LongestIdle),
            queue("z", &[("x", 1)], Strategy::LongestIdle),
        ],
    );
    let mut h = H::new(&c1);
    let (b, d) = (
        h.r.names().agent("b").unwrap(),
        h.r.names().agent("d").unwrap(),
    );
    let (q, z) = (
        h.r.names().queue("q").unwrap(),
        h.r.names().queue("z").unwrap(),
    );
    assert_eq!(h.r.renumbering().generation(), 0);
    // "a" comes before both agents, "m" before "q"; "z" is gone.
    let c2 = cfg(
        vec![
            agent("a", &[("x", 5)]),
            agent("b", &[("x", 5)]),
            agent("d", &[("x", 5)]),
        ],
        vec![
            queue("m", &[("x", 1)], Strategy::LongestIdle),
            queue("q", &[("x", 1)], Strategy::LongestIdle),
        ],
    );
    h.r.reload(&c2, h.at(1), wall());
    let r = h.r.renumbering();
    assert_eq!(r.generation(), 1);
    assert_eq!(r.agent(b), h.r.names().agent("b"));
    assert_eq!(r.agent(d), h.r.names().agent("d"));
    assert_ne!(r.agent(b), Some(b), "b moved");
    assert_eq!(r.queue(q), h.r.names().queue("q"));
    assert_eq!(r.queue(z), None, "z is gone");
}
