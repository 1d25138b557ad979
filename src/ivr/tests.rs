//! IVR tests on a virtual clock: `now` is advanced by hand, `wall` is fixed
//! per test, no sockets and no sleeps.

use super::*;
use crate::config::wav::tests::wav_bytes;
use crate::config::{self, Config, Node, Target};
use chrono::{DateTime, TimeZone, Utc};
use std::path::Path;
use std::time::{Duration, Instant};

const CONF: &str = r#"[server]
prompts = "p"
timezone = "Asia/Jakarta"

[schedules.office]
timezone = "Asia/Jakarta"
open = ["mon-fri 08:00-20:00"]

[schedules.berlin]
timezone = "Europe/Berlin"
open = ["mon-sun 08:00-17:00"]

[queues.billing]
[queues.support]
[queues.general]

[ivr.main]
start = "hours"

[ivr.main.nodes.hours]
type = "schedule"
schedule = "office"
open = "menu"
closed = "after_hours"

[ivr.main.nodes.menu]
type = "menu"
prompt = "menu.wav"
timeout_s = 5
retries = 2
options = { "1" = "billing", "2" = "support", "3" = "ivr:acct", "9" = "queue:general" }
on_fail = "general"

[ivr.main.nodes.billing]
type = "queue"
queue = "billing"
priority = 3

[ivr.main.nodes.support]
type = "queue"
queue = "support"

[ivr.main.nodes.general]
type = "queue"
queue = "general"

[ivr.main.nodes.after_hours]
type = "play"
prompt = "closed.wav"
next = "bye"

[ivr.main.nodes.bye]
type = "hangup"

[ivr.acct]
start = "ask"

[ivr.acct.nodes.ask]
type = "collect"
prompt = "menu.wav"
max_digits = 4
variable = "account"
timeout_s = 3
next = "check"

[ivr.acct.nodes.check]
type = "schedule"
schedule = "berlin"
open = "ivr:main.billing"
closed = "hangup"

[ivr.pin]
start = "c"

[ivr.pin.nodes.c]
type = "collect"
variable = "pin"
max_digits = 3
terminator = ""
timeout_s = 2
next = "queue:support"
"#;

fn cfg() -> Config {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    std::fs::create_dir(&p).unwrap();
    for f in ["menu.wav", "closed.wav"] {
        std::fs::write(p.join(f), wav_bytes(1, 1, 8000, 16, 8)).unwrap();
    }
    // The IVR never opens prompts, so the dir may go once validation is done.
    config::parse_str(CONF, &dir.path().join("sipacd.toml")).unwrap()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Monday 2026-03-02 10:00 in Jakarta (UTC+7): the office is open.
fn monday_10_jakarta() -> DateTime<Utc> {
    utc(2026, 3, 2, 3, 0)
}

/// Sunday 2026-03-01 10:00 in Jakarta: closed.
fn sunday_10_jakarta() -> DateTime<Utc> {
    utc(2026, 3, 1, 3, 0)
}

fn ivr(name: &str, node: &str) -> Target {
    Target::Ivr {
        ivr: name.into(),
        node: node.into(),
    }
}

/// One call on a virtual clock.
struct Sim {
    cfg: Config,
    run: IvrRun,
    now: Instant,
    wall: DateTime<Utc>,
}

impl Sim {
    fn start(cfg: Config, target: Target, wall: DateTime<Utc>) -> (Sim, Vec<IvrAction>) {
        let now = Instant::now();
        let (run, out) = IvrRun::start(&cfg, target, now, wall);
        (
            Sim {
                cfg,
                run,
                now,
                wall,
            },
            out,
        )
    }

    fn ev(&mut self, e: IvrEvent) -> Vec<IvrAction> {
        self.run.on_event(&self.cfg, e, self.now, self.wall)
    }

    fn digit(&mut self, d: char) -> Vec<IvrAction> {
        self.ev(IvrEvent::Digit(d))
    }

    /// Ends the prompt the last `PlayPrompt` in `out` started.
    fn end_prompt(&mut self, out: &[IvrAction]) -> Vec<IvrAction> {
        self.ev(IvrEvent::PromptEnded(last_prompt(out)))
    }

    /// Advances the clock by `secs`, firing the deadline if it passed.
    fn advance(&mut self, secs: u64) -> Vec<IvrAction> {
        self.now += Duration::from_secs(secs);
        self.wall += chrono::Duration::seconds(secs as i64);
        match self.run.poll_timeout() {
            Some(d) if d <= self.now => self.run.handle_timeout(&self.cfg, self.now, self.wall),
            _ => Vec::new(),
        }
    }
}

fn last_prompt(out: &[IvrAction]) -> PromptId {
    out.iter()
        .rev()
        .find_map(|a| match a {
            IvrAction::PlayPrompt { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no PlayPrompt in {out:?}"))
}

fn prompt_names(out: &[IvrAction]) -> Vec<String> {
    out.iter()
        .filter_map(|a| match a {
            IvrAction::PlayPrompt { path, .. } => {
                Some(path.file_name().unwrap().to_string_lossy().into_owned())
            }
            _ => None,
        })
        .collect()
}

fn enter(queue: &str, priority: i32) -> IvrAction {
    IvrAction::EnterQueue {
        queue: queue.into(),
        priority,
    }
}

#[test]
fn open_hours_menu_choice_enters_queue_with_node_priority() {
    let (mut s, out) = Sim::start(cfg(), ivr("main", "hours"), monday_10_jakarta());
    assert_eq!(prompt_names(&out), ["menu.wav"]);
    assert!(!s.run.is_finished());
    let out = s.end_prompt(&out);
    assert!(out.is_empty());
    assert!(s.run.poll_timeout().is_some());
    assert_eq!(s.digit('1'), [enter("billing", 3)]);
    assert_eq!(
        s.run.outcome(),
        Some(&IvrOutcome::Queued {
            queue: "billing".into(),
            priority: 3
        })
    );
    assert_eq!(s.run.path(), ["main.hours", "main.menu", "main.billing"]);
    assert_eq!(s.run.poll_timeout(), None);
    // Events after the end change nothing.
    assert!(s.digit('2').is_empty());
}

#[test]
fn closed_hours_play_then_hangup() {
    let (mut s, out) = Sim::start(cfg(), ivr("main", "hours"), sunday_10_jakarta());
    assert_eq!(prompt_names(&out), ["closed.wav"]);
    // `play` is not interruptible and has no timeout.
    assert!(s.digit('1').is_empty());
    assert_eq!(s.run.poll_timeout(), None);
    assert_eq!(s.end_prompt(&out), [IvrAction::Hangup]);
    assert_eq!(s.run.outcome(), Some(&IvrOutcome::HungUp));
    assert_eq!(s.run.path(), ["main.hours", "main.after_hours", "main.bye"]);
    // After-hours demand: the closed branch is handed out once.
    assert_eq!(
        s.run.take_closed_branches(),
        [("main".to_owned(), "hours".to_owned())]
    );
    assert!(s.run.take_closed_branches().is_empty());
}

#[test]
fn open_hours_take_no_closed_branch() {
    let (mut s, out) = Sim::start(cfg(), ivr("main", "hours"), monday_10_jakarta());
    assert_eq!(prompt_names(&out), ["menu.wav"]);
    assert!(s.run.take_closed_branches().is_empty());
}

#[test]
fn menu_timeouts_replay_then_on_fail() {
    let (mut s, out) = Sim::start(cfg(), ivr("main", "menu"), monday_10_jakarta());
    let mut out = out;
    // First play plus `retries = 2` replays.
    for _ in 0..2 {
        assert!(s.end_prompt(&out).is_empty());
        let start = s.now;
        assert_eq!(s.run.poll_timeout(), Some(start + Duration::from_secs(5)));
        assert!(s.advance(4).is_empty(), "not yet");
        out = s.advance(1);
        assert_eq!(prompt_names(&out), ["menu.wav"]);
        assert_eq!(
            s.run.poll_timeout(),
            None,
            "no timeout while the prompt plays"
        );
    }
    assert!(s.end_prompt(&out).is_empty());
    assert_eq!(s.advance(5), [enter("general", 0)]);
    assert_eq!(s.run.path(), ["main.menu", "main.general"]);
}

#[test]
fn invalid_digits_count_as_failures() {
    let (mut s, out) = Sim::start(cfg(), ivr("main", "menu"), monday_10_jakarta());
    // Invalid digit during the prompt: stop it, replay from the start.
    let out2 = s.digit('7');
    assert_eq!(out2.first(), Some(&IvrAction::StopPrompt));
    assert_eq!(prompt_names(&out2), ["menu.wav"]);
    assert_ne!(last_prompt(&out), last_prompt(&out2));
    // Invalid digit after the prompt ended.
    assert!(s.end_prompt(&out2).is_empty());
    let out3 = s.digit('#');
    assert_eq!(prompt_names(&out3), ["menu.wav"]);
    assert!(!out3.contains(&IvrAction::StopPrompt));
    // Third failure: on_fail.
    assert_eq!(s.digit('8'), [IvrAction::StopPrompt, enter("general", 0)]);
}

#[test]
fn barge_in_stops_the_prompt_and_a_stale_end_is_ignored() {
    let (mut s, out) = Sim::start(cfg(), ivr("main", "menu"), monday_10_jakarta());
    let old = last_prompt(&out);
    let out = s.digit('3');
    // Stop the menu, then the collect prompt of `acct` starts.
    assert_eq!(out.first(), Some(&IvrAction::StopPrompt));
    assert_eq!(prompt_names(&out), ["menu.wav"]);
    // The media task reports the end of the stopped menu prompt late: the
    // collect prompt is still playing, so no timeout starts.
    assert!(s.ev(IvrEvent::PromptEnded(old)).is_empty());
    assert_eq!(s.run.poll_timeout(), None);
    assert!(s.end_prompt(&out).is_empty());
    assert!(s.run.poll_timeout().is_some());
}

#[test]
fn collect_ends_on_max_digits_and_jumps_across_ivrs() {
    // Sunday 2026-03-29 06:30 UTC = 08:30 CEST (the day Berlin springs
    // forward): open. Jakarta office hours do not matter for `acct`.
    let (mut s, out) = Sim::start(cfg(), ivr("main", "menu"), utc(2026, 3, 29, 6, 30));
    s.end_prompt(&out);
    let out = s.digit('3');
    assert_eq!(prompt_names(&out), ["menu.wav"]);
    // Barge-in on the collect prompt with the first digit.
    assert_eq!(s.digit('4'), [IvrAction::StopPrompt]);
    assert!(s.digit('2').is_empty());
    assert!(s.digit('*').is_empty());
    let out = s.digit('7');
    assert_eq!(
        out,
        [
            IvrAction::SetVariable {
                name: "account".into(),
                value: "42*7".into()
            },
            enter("billing", 3)
        ]
    );
    assert_eq!(
        s.run.variables().get("account").map(String::as_str),
        Some("42*7")
    );
    assert_eq!(
        s.run.path(),
        ["main.menu", "acct.ask", "acct.check", "main.billing"]
    );
}

#[test]
fn collect_ends_on_terminator_without_storing_it() {
    let (mut s, out) = Sim::start(cfg(), ivr("acct", "ask"), utc(2026, 3, 29, 6, 30));
    s.end_prompt(&out);
    s.digit('5');
    let out = s.digit('#');
    assert_eq!(
        out,
        [
            IvrAction::SetVariable {
                name: "account".into(),
                value: "5".into()
            },
            enter("billing", 3)
        ]
    );
}

#[test]
fn collect_timeout_keeps_what_was_gathered() {
    let (mut s, out) = Sim::start(cfg(), ivr("acct", "ask"), utc(2026, 3, 29, 6, 30));
    s.end_prompt(&out);
    assert!(s.advance(2).is_empty());
    s.digit('9');
    // The timeout restarts at each digit: 2 s after `9` nothing happens.
    assert!(s.advance(2).is_empty());
    let out = s.advance(1);
    assert_eq!(
        out.first(),
        Some(&IvrAction::SetVariable {
            name: "account".into(),
            value: "9".into()
        })
    );
}

#[test]
fn collect_without_prompt_or_terminator() {
    let (mut s, out) = Sim::start(cfg(), ivr("pin", "c"), monday_10_jakarta());
    // No prompt: the timeout runs at once.
    assert!(out.is_empty());
    assert_eq!(s.run.poll_timeout(), Some(s.now + Duration::from_secs(2)));
    // With `terminator = ""`, `#` is an ordinary digit; non-DTMF is dropped.
    assert!(s.digit('#').is_empty());
    assert!(s.digit('x').is_empty());
    assert!(s.digit('\r').is_empty());
    assert!(s.digit('1').is_empty());
    assert_eq!(
        s.digit('2'),
        [
            IvrAction::SetVariable {
                name: "pin".into(),
                value: "#12".into()
            },
            enter("support", 0)
        ]
    );
}

#[test]
fn collect_timeout_with_nothing_stores_empty() {
    let (mut s, _) = Sim::start(cfg(), ivr("pin", "c"), monday_10_jakarta());
    let out = s.advance(2);
    assert_eq!(
        out,
        [
            IvrAction::SetVariable {
                name: "pin".into(),
                value: String::new()
            },
            enter("support", 0)
        ]
    );
    assert_eq!(s.run.variables().get("pin").map(String::as_str), Some(""));
}

#[test]
fn schedule_branches_across_berlin_dst_change() {
    // Berlin springs forward on Sun 2026-03-29. 06:30 UTC is 07:30 CET on
    // Saturday (closed) but 08:30 CEST on Sunday (open).
    for (wall, open) in [
        (utc(2026, 3, 28, 6, 30), false),
        (utc(2026, 3, 29, 6, 30), true),
        (utc(2026, 3, 29, 5, 59), false), // 07:59 CEST
        (utc(2026, 3, 29, 14, 59), true), // 16:59 CEST
        (utc(2026, 3, 29, 15, 0), false), // 17:00 CEST
    ] {
        let (s, out) = Sim::start(cfg(), ivr("acct", "check"), wall);
        let want = if open {
            vec![enter("billing", 3)]
        } else {
            vec![IvrAction::Hangup]
        };
        assert_eq!(out, want, "at {wall}");
        assert!(s.run.is_finished());
    }
}

#[test]
fn schedule_branches_in_jakarta() {
    let (_, out) = Sim::start(cfg(), ivr("main", "hours"), monday_10_jakarta());
    assert_eq!(prompt_names(&out), ["menu.wav"]);
    let (_, out) = Sim::start(cfg(), ivr("main", "hours"), sunday_10_jakarta());
    assert_eq!(prompt_names(&out), ["closed.wav"]);
    // Monday 20:00 local is closed (window end is exclusive).
    let (_, out) = Sim::start(cfg(), ivr("main", "hours"), utc(2026, 3, 2, 13, 0));
    assert_eq!(prompt_names(&out), ["closed.wav"]);
}

#[test]
fn queue_and_hangup_targets() {
    let (s, out) = Sim::start(cfg(), Target::Queue("support".into()), monday_10_jakarta());
    assert_eq!(out, [enter("support", 0)]);
    assert!(s.run.path().is_empty());
    let (mut s, out) = Sim::start(cfg(), ivr("main", "menu"), monday_10_jakarta());
    s.end_prompt(&out);
    // `queue:general` straight from a menu option.
    assert_eq!(s.digit('9'), [enter("general", 0)]);
    let (s, out) = Sim::start(cfg(), Target::Hangup, monday_10_jakarta());
    assert_eq!(out, [IvrAction::Hangup]);
    assert_eq!(s.run.outcome(), Some(&IvrOutcome::HungUp));
}

#[test]
fn caller_hangs_up_mid_menu() {
    let (mut s, out) = Sim::start(cfg(), ivr("main", "menu"), monday_10_jakarta());
    s.end_prompt(&out);
    assert!(s.run.poll_timeout().is_some());
    assert!(s.ev(IvrEvent::CallerHungUp).is_empty());
    assert_eq!(s.run.outcome(), Some(&IvrOutcome::CallerHungUp));
    assert_eq!(s.run.poll_timeout(), None);
    assert!(s.advance(60).is_empty());
    assert!(s.digit('1').is_empty());
    // A late resume does not bring the caller back.
    let cfg = s.cfg.clone();
    assert!(s
        .run
        .resume(&cfg, ivr("main", "menu"), s.now, s.wall)
        .is_empty());
}

#[test]
fn resume_after_queue_keeps_variables_and_path() {
    let (mut s, out) = Sim::start(cfg(), ivr("pin", "c"), monday_10_jakarta());
    assert!(out.is_empty());
    s.digit('1');
    s.digit('2');
    s.digit('3');
    assert!(s.run.is_finished());
    // The support queue turned out closed: the router sends the caller on.
    let cfg = s.cfg.clone();
    let out = s
        .run
        .resume(&cfg, ivr("main", "after_hours"), s.now, s.wall);
    assert_eq!(prompt_names(&out), ["closed.wav"]);
    assert_eq!(s.end_prompt(&out), [IvrAction::Hangup]);
    assert_eq!(
        s.run.variables().get("pin").map(String::as_str),
        Some("123")
    );
    assert_eq!(s.run.path(), ["pin.c", "main.after_hours", "main.bye"]);
}

#[test]
fn non_waiting_loop_is_cut_with_hangup() {
    // Validation rejects this; build it behind its back (as a bad reload
    // might) to check the run-time bound.
    let mut c = cfg();
    let main = c.ivrs.get_mut("main").unwrap();
    for (a, b) in [("x", "y"), ("y", "x")] {
        main.nodes.insert(
            a.into(),
            Node::Schedule {
                schedule: "office".into(),
                open: ivr("main", b),
                closed: ivr("main", b),
            },
        );
    }
    let (s, out) = Sim::start(c, ivr("main", "x"), monday_10_jakarta());
    assert_eq!(out, [IvrAction::Hangup]);
    assert!(matches!(
        s.run.outcome(),
        Some(IvrOutcome::Failed(IvrError::TooManySteps(_)))
    ));
    assert_eq!(s.run.path().len(), MAX_STEPS_WITHOUT_WAIT as usize);
}

#[test]
fn long_non_waiting_chain_under_the_bound_is_fine() {
    let mut c = cfg();
    let main = c.ivrs.get_mut("main").unwrap();
    let n = MAX_STEPS_WITHOUT_WAIT - 1;
    for i in 0..n {
        let next = if i + 1 == n {
            ivr("main", "support")
        } else {
            ivr("main", &format!("s{}", i + 1))
        };
        main.nodes.insert(
            format!("s{i}"),
            Node::Schedule {
                schedule: "office".into(),
                open: next.clone(),
                closed: next,
            },
        );
    }
    let (_, out) = Sim::start(c, ivr("main", "s0"), monday_10_jakarta());
    assert_eq!(out, [enter("support", 0)]);
}

#[test]
fn reload_that_removes_the_next_node_hangs_up() {
    let (mut s, out) = Sim::start(cfg(), ivr("main", "menu"), monday_10_jakarta());
    s.end_prompt(&out);
    // The running menu keeps its copy; the target vanished in the new file.
    s.cfg.ivrs.get_mut("main").unwrap().nodes.remove("billing");
    assert_eq!(s.digit('1'), [IvrAction::Hangup]);
    assert_eq!(
        s.run.outcome(),
        Some(&IvrOutcome::Failed(IvrError::UnknownTarget(
            "ivr:main.billing".into()
        )))
    );
}

#[test]
fn huge_timeout_does_not_panic() {
    let mut c = cfg();
    if let Some(Node::Menu { timeout_s, .. }) =
        c.ivrs.get_mut("main").unwrap().nodes.get_mut("menu")
    {
        *timeout_s = u64::MAX;
    }
    let (mut s, out) = Sim::start(c, ivr("main", "menu"), monday_10_jakarta());
    assert!(s.end_prompt(&out).is_empty());
    // Overflowing deadline: wait for the caller without a timer.
    assert_eq!(s.run.poll_timeout(), None);
    assert_eq!(s.digit('2'), [enter("support", 0)]);
}

#[test]
fn demo_config_number_1500_to_billing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sipacd.toml");
    let cfg = config::load(&path).unwrap();
    let to = cfg
        .numbers
        .iter()
        .find(|n| n.number == "1500")
        .unwrap()
        .to
        .clone();
    let (mut s, out) = Sim::start(cfg, to, monday_10_jakarta());
    assert_eq!(prompt_names(&out), ["menu.wav"]);
    s.end_prompt(&out);
    assert_eq!(s.digit('1'), [enter("billing", 0)]);
    assert_eq!(s.run.path(), ["main.hours", "main.menu", "main.billing"]);
    // On a Sunday the office is closed: straight to the follow-the-sun
    // support queue (whose own schedule then decides; tests/demo_hours.rs).
    let (_, out) = Sim::start(s.cfg.clone(), ivr("main", "hours"), sunday_10_jakarta());
    assert_eq!(out, [enter("support", 0)]);
}
