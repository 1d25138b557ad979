//! The live board from scripted events: places kept in arrival order,
//! callbacks holding their caller's place through their tries, agents
//! counted in the queues their skills serve.

use std::time::{Duration, Instant, SystemTime};

use super::LiveBoard;
use crate::config::{parse_str, Config};
use crate::events::{CallRef, CallbackOutcome, Event, EventKind, Now};
use crate::views::QueueView;

fn cfg() -> Config {
    let text = "[server]\nsip = [\"udp:127.0.0.1:5060\"]\n\n\
                [agents.1001]\npassword = \"x\"\nskills = { support = 5 }\n\
                [agents.1002]\npassword = \"x\"\nskills = { support = 5 }\n\
                [agents.1003]\npassword = \"x\"\nskills = { sales = 5 }\n\n\
                [queues.support]\nskills = { support = 1 }\nwrapup_s = 10\n\
                [queues.sales]\nskills = { sales = 1 }\n\n\
                [[numbers]]\nnumber = \"1\"\nto = \"queue:support\"\n";
    parse_str(text, std::path::Path::new("/nonexistent/board.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

struct Script {
    board: LiveBoard,
    cfg: Config,
    start: Now,
    now: Now,
}

impl Script {
    fn new() -> Script {
        let now = Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        };
        Script {
            board: LiveBoard::default(),
            cfg: cfg(),
            start: now,
            now,
        }
    }

    fn at(&mut self, s: u64) -> &mut Script {
        let d = Duration::from_secs(s);
        self.now = Now {
            mono: self.start.mono + d,
            wall: self.start.wall + d,
        };
        self
    }

    fn ev(&mut self, kind: EventKind) -> &mut Script {
        self.board.fold(&Event { at: self.now, kind }, &self.cfg);
        self
    }

    fn queue(&self, name: &str) -> QueueView {
        self.board
            .queue_views(&self.cfg, self.now)
            .into_iter()
            .find(|q| q.name == name)
            .unwrap_or_else(|| panic!("no queue {name}"))
    }
}

fn call(n: u64) -> CallRef {
    CallRef {
        seq: n,
        call_id: format!("c{n}").into(),
    }
}

fn queued(n: u64, queue: &str) -> EventKind {
    EventKind::Queued {
        call: call(n),
        queue: queue.into(),
        caller: "100".into(),
        position: 1,
        priority: 0,
        refused: None,
    }
}

fn state(agent: &str, state: &'static str) -> EventKind {
    EventKind::AgentState {
        agent: agent.into(),
        state,
        reason: None,
    }
}

fn answered(n: u64, agent: &str) -> EventKind {
    EventKind::Answered {
        call: call(n),
        queue: Some("support".into()),
        agent: agent.into(),
        agent_call_id: format!("a{n}"),
        waited: Duration::ZERO,
        rang: Duration::ZERO,
    }
}

fn ended(n: u64) -> EventKind {
    EventKind::Ended(Box::new(crate::events::Ended {
        call: call(n),
        caller: "100".into(),
        number: "1".into(),
        queue: Some("support".into()),
        agent: None,
        disposition: crate::events::Disposition::Abandoned,
        hangup_by: crate::events::HangupBy::Caller,
        arrived: SystemTime::UNIX_EPOCH,
        queued: None,
        answered: None,
        path: Vec::new(),
        variables: Default::default(),
        hold: Duration::ZERO,
        placed: false,
    }))
}

#[test]
fn waiting_callers_and_the_longest_wait_follow_arrivals_and_departures() {
    let mut s = Script::new();
    s.ev(queued(1, "support")).at(5).ev(queued(2, "support"));
    s.ev(queued(3, "sales")).at(12);
    let q = s.queue("support");
    assert_eq!((q.waiting, q.longest_wait_s), (2, 12.0), "{q:?}");
    // The first leaves (hangs up): the second has waited 7 s.
    s.ev(ended(1));
    let q = s.queue("support");
    assert_eq!((q.waiting, q.longest_wait_s), (1, 7.0), "{q:?}");
    assert_eq!(s.queue("sales").waiting, 1);
    // An overflow moves it: out of support, into sales.
    s.ev(EventKind::Diverted {
        call: call(2),
        queue: "support".into(),
        reason: crate::acd::DivertReason::MaxWait,
        target: None,
    })
    .ev(queued(2, "sales"));
    assert_eq!(s.queue("support").waiting, 0);
    // Its wait starts again in the new queue: the longest is caller 3's.
    let sales = s.queue("sales");
    assert_eq!((sales.waiting, sales.longest_wait_s), (2, 7.0), "{sales:?}");
}

#[test]
fn agents_count_in_the_queues_their_skills_serve_by_their_last_state() {
    let mut s = Script::new();
    let q = s.queue("support");
    assert_eq!(
        (q.agents_available, q.agents_busy),
        (0, 0),
        "all logged out"
    );
    s.ev(state("1001", "available"))
        .ev(state("1002", "wrapup"))
        .ev(state("1003", "paused"));
    let q = s.queue("support");
    assert_eq!(
        (
            q.agents_available,
            q.agents_busy,
            q.agents_wrapup,
            q.agents_paused
        ),
        (1, 1, 1, 0),
        "{q:?}"
    );
    let sales = s.queue("sales");
    assert_eq!((sales.agents_available, sales.agents_paused), (0, 1));
    let states = s.board.agent_states(&s.cfg);
    let of = |id: &str| states.iter().find(|a| a.id == id).map(|a| a.state.clone());
    assert_eq!(of("1002").as_deref(), Some("wrapup"));
}

#[test]
fn the_estimate_learns_handle_times_from_answers_and_ends() {
    let mut s = Script::new();
    s.ev(state("1001", "available"));
    assert_eq!(s.queue("support").estimated_wait_s, Some(0.0), "one free");
    // Answered, talked 50 s: with wrap-up 10 s, a handle time of 60 s.
    s.ev(queued(1, "support")).ev(answered(1, "1001"));
    s.ev(state("1001", "on_call")).at(50).ev(ended(1));
    let q = s.queue("support");
    assert_eq!(q.handle_time_s, Some(60.0), "{q:?}");
    // The one agent busy: a new caller waits one handle time, the one
    // behind a waiting caller two.
    assert_eq!(q.estimated_wait_s, Some(60.0), "{q:?}");
    s.ev(queued(2, "support"));
    assert_eq!(s.queue("support").estimated_wait_s, Some(120.0));
}

#[test]
fn a_callback_keeps_its_place_through_tries_until_reached() {
    let mut s = Script::new();
    s.ev(queued(1, "support"))
        .at(3)
        .ev(queued(2, "support"))
        .at(10);
    let accepted = |n: u64| EventKind::CallbackAccepted {
        call: call(n),
        queue: "support".into(),
        id: "cb-1".into(),
        number: "555".into(),
        key: '1',
        position: 1,
    };
    // Caller 1 accepts and hangs up: its place (entered at 0) is kept.
    s.ev(accepted(1)).ev(ended(1));
    let q = s.queue("support");
    assert_eq!(
        (q.waiting, q.callbacks_waiting, q.longest_wait_s),
        (2, 1, 10.0),
        "{q:?}"
    );
    // Claimed: sipacd calls it (placed call 9); it waits no more.
    let attempt = EventKind::CallbackAttempt {
        call: call(9),
        id: "cb-1".into(),
        queue: "support".into(),
        number: "555".into(),
        attempt: 1,
        origin: "c1".into(),
        accepted: SystemTime::UNIX_EPOCH,
    };
    s.ev(attempt.clone());
    let q = s.queue("support");
    assert_eq!(
        (q.waiting, q.callbacks_waiting, q.longest_wait_s),
        (1, 0, 7.0)
    );
    // Busy, not the last try: back at its place.
    let result = |outcome, gave_up| EventKind::CallbackResult {
        call: call(9),
        id: "cb-1".into(),
        queue: "support".into(),
        number: "555".into(),
        outcome,
        gave_up,
    };
    s.ev(result(CallbackOutcome::Busy, false)).ev(ended(9));
    let q = s.queue("support");
    assert_eq!(
        (q.waiting, q.callbacks_waiting, q.longest_wait_s),
        (2, 1, 10.0)
    );
    // The agent leaves before the customer is called: no result, the
    // placed call ends, the callback is back again.
    s.ev(attempt.clone()).ev(ended(9));
    assert_eq!(s.queue("support").callbacks_waiting, 1);
    // Reached: gone for good.
    s.ev(attempt)
        .ev(result(CallbackOutcome::Reached, false))
        .ev(ended(9));
    let q = s.queue("support");
    assert_eq!((q.waiting, q.callbacks_waiting), (1, 0), "{q:?}");
}

#[test]
fn restored_and_cancelled_callbacks() {
    let mut s = Script::new();
    s.at(100).ev(EventKind::CallbackRestored {
        id: "cb-r".into(),
        queue: "support".into(),
        waited: Duration::from_secs(30),
    });
    let q = s.queue("support");
    assert_eq!((q.callbacks_waiting, q.longest_wait_s), (1, 30.0), "{q:?}");
    s.ev(EventKind::CallbackCancelled {
        id: "cb-r".into(),
        queue: "support".into(),
    });
    assert_eq!(s.queue("support").waiting, 0);
}
