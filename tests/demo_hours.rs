//! The demo's numbers (`config/sipacd.toml`) at every half hour of a week,
//! a summer one and a winter one (the agents' Berlin and New York shifts
//! move against UTC), and on the office's closed dates: where does each
//! call lead, and does an agent take it?
//!
//! Sans-IO: the compiled demo file, the IVR state machine and the ACD
//! router, each given the instant under test as its wall clock (`wall`) and
//! a monotonic `now` that the test advances itself to the next timer (menu
//! timeouts, relax steps, max_wait). No clock is faked, nothing sleeps.
//!
//! What the demo's comments promise, checked here:
//! * 1500 while the office is open: the menu; 1 leads to billing, 2 to
//!   support, no key to general.
//! * 1500 while the office is closed: the follow-the-sun support queue.
//! * 1501: the support queue.
//! * A caller who reaches a queue whose schedule is open is offered to an
//!   agent on shift (all demo agents registered) before `max_wait_s`, at
//!   the latest when the queue's last relax step applies; a caller who
//!   reaches a closed queue hears voicemail.wav, leaves a message (the
//!   walk sends no voice: it ends after the node's 5 s of silence) and is
//!   hung up.

use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, TimeZone, Utc, Weekday};
use sipacd::acd::{AcdConfig, CallId, Output, Router, Timer};
use sipacd::config::{self, Config, Target};
use sipacd::ivr::{IvrAction, IvrEvent, IvrRun};
use std::path::Path;
use std::time::Instant;

/// The queue behind option 1 and 2 of the menu, and the one a caller who
/// presses nothing reaches, as the demo's comments say.
const MENU: [(char, &str); 2] = [('1', "billing"), ('2', "support")];
const MENU_FAIL: &str = "general";
/// Where 1500 leads while the office is closed.
const FOLLOW_THE_SUN: &str = "support";
/// What a caller of a closed queue hears before its message, and the
/// silence that ends a message.
const MESSAGE_PROMPT: &str = "voicemail.wav";
const MESSAGE_SILENCE_S: u64 = 5;

/// One thing the caller meets, in order.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A prompt played to the caller (file name).
    Prompt(String),
    /// The caller entered this queue.
    Queue(String),
    /// The router offered the caller to `agent` after `waited_s` in `queue`.
    Agent {
        queue: String,
        agent: String,
        waited_s: u64,
    },
    /// The caller left a queue without an agent (closed, max_wait...).
    Diverted(String),
    /// A message was recorded for this long (start to stop).
    Message {
        seconds: u64,
    },
    Hangup,
}

fn demo() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sipacd.toml");
    config::load(&path).unwrap_or_else(|e| panic!("demo config rejected:\n{e}"))
}

/// A router on the demo with every agent registered at `wall` (each is on
/// shift or not as its shift says at that instant).
fn router(cfg: &Config, t0: Instant, wall: DateTime<Utc>) -> Router {
    let r = Router::new(&AcdConfig::from(cfg), t0, 1);
    for id in cfg.agents.keys() {
        r.agent_registered(id, t0, wall)
            .unwrap_or_else(|e| panic!("agent {id}: {e}"));
    }
    r
}

/// One call walked through the IVR and the router.
struct Walk<'a> {
    cfg: &'a Config,
    router: Router,
    run: IvrRun,
    t0: Instant,
    now: Instant,
    wall: DateTime<Utc>,
    /// The queue the call waits in and since when.
    queued: Option<(String, Instant)>,
    timers: Vec<(Instant, Timer)>,
    steps: Vec<Step>,
    /// When the message being recorded started.
    message: Option<Instant>,
}

const CALL: CallId = CallId(1);

impl Walk<'_> {
    fn wall_now(&self) -> DateTime<Utc> {
        self.wall + chrono::Duration::from_std(self.now - self.t0).unwrap_or_default()
    }

    fn done(&self) -> bool {
        matches!(self.steps.last(), Some(Step::Agent { .. } | Step::Hangup))
    }

    /// Carries out the IVR's actions, and what they lead to, until the IVR
    /// waits for the caller or the call is in a queue.
    fn act(&mut self, mut actions: Vec<IvrAction>) {
        while !actions.is_empty() && !self.done() {
            let (now, wall) = (self.now, self.wall_now());
            let mut next = Vec::new();
            for a in actions {
                match a {
                    IvrAction::PlayPrompt { id, path } => {
                        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                        self.steps.push(Step::Prompt(name.unwrap_or_default()));
                        // The prompt plays to its end at once; a menu's
                        // timeout then runs from `now`.
                        next.extend(self.run.on_event(
                            self.cfg,
                            IvrEvent::PromptEnded(id),
                            now,
                            wall,
                        ));
                    }
                    IvrAction::EnterQueue { queue, priority } => {
                        self.steps.push(Step::Queue(queue.clone()));
                        let outs = self
                            .router
                            .caller_arrives(CALL, &queue, priority, now, wall)
                            .unwrap_or_else(|e| panic!("queue {queue}: {e}"));
                        self.queued = Some((queue, now));
                        next.extend(self.route(outs));
                    }
                    IvrAction::Hangup => {
                        self.steps.push(Step::Hangup);
                        return;
                    }
                    IvrAction::StopPrompt | IvrAction::SetVariable { .. } => {}
                    IvrAction::StartMessage => {
                        assert!(self.message.is_none(), "a second message: {:?}", self.steps);
                        self.message = Some(now);
                    }
                    IvrAction::StopMessage => {
                        let Some(since) = self.message.take() else {
                            panic!("a message stopped that never started: {:?}", self.steps);
                        };
                        self.steps.push(Step::Message {
                            seconds: (now - since).as_secs(),
                        });
                    }
                    // The demo takes no score on the paths walked here.
                    IvrAction::Score(_) => {
                        panic!("a survey step on a demo path: {:?}", self.steps)
                    }
                }
            }
            actions = next;
        }
    }

    /// Takes the router's outputs; returns the IVR's actions of a divert.
    fn route(&mut self, outs: Vec<Output>) -> Vec<IvrAction> {
        let mut actions = Vec::new();
        for o in outs {
            match o {
                Output::Offer(offer) => {
                    let Some((queue, since)) = self.queued.take() else {
                        panic!("an offer for a call in no queue: {:?}", self.steps);
                    };
                    let offered_from = self.router.names().queue_name(offer.queue).cloned();
                    assert_eq!(
                        offered_from.as_deref(),
                        Some(queue.as_str()),
                        "offered from another queue"
                    );
                    self.steps.push(Step::Agent {
                        queue,
                        agent: offer.agent_name.to_string(),
                        waited_s: (self.now - since).as_secs(),
                    });
                    return Vec::new();
                }
                Output::Divert { reason, target, .. } => {
                    self.steps.push(Step::Diverted(format!("{reason:?}")));
                    self.timers.clear();
                    self.queued = None;
                    match target {
                        Some(t) => {
                            let (now, wall) = (self.now, self.wall_now());
                            actions.extend(self.run.resume(self.cfg, t, now, wall));
                        }
                        None => {
                            self.steps.push(Step::Hangup);
                            return Vec::new();
                        }
                    }
                }
                Output::Arm { at, timer } => self.timers.push((at, timer)),
            }
        }
        actions
    }

    /// Lets time run on to the next deadline, the IVR's or the router's; a
    /// waiting menu gets the next of `keys` at once instead.
    fn wait(&mut self, keys: &mut impl Iterator<Item = char>) {
        if !self.run.is_finished() {
            let (now, wall) = (self.now, self.wall_now());
            let actions = match (keys.next(), self.run.poll_timeout()) {
                (Some(k), _) => self.run.on_event(self.cfg, IvrEvent::Digit(k), now, wall),
                (None, Some(at)) => {
                    self.now = self.now.max(at);
                    let wall = self.wall_now();
                    self.run.handle_timeout(self.cfg, self.now, wall)
                }
                (None, None) => panic!(
                    "the IVR waits for nothing at {}: {:?}",
                    self.wall, self.steps
                ),
            };
            return self.act(actions);
        }
        self.timers.sort_by_key(|(at, _)| *at);
        if self.timers.is_empty() {
            panic!("the call is stuck at {}: {:?}", self.wall, self.steps);
        }
        let (at, timer) = self.timers.remove(0);
        self.now = self.now.max(at);
        let outs = self.router.timer(&timer, self.now);
        let actions = self.route(outs);
        self.act(actions);
    }
}

/// Follows one call from `target` at `wall` to an agent or a hangup,
/// pressing `keys` in menus (one per menu prompt, after it played; then
/// none: menus time out).
fn walk(cfg: &Config, target: Target, keys: &[char], wall: DateTime<Utc>) -> Vec<Step> {
    let t0 = Instant::now();
    let (run, actions) = IvrRun::start(cfg, target, t0, wall);
    let mut w = Walk {
        cfg,
        router: router(cfg, t0, wall),
        run,
        t0,
        now: t0,
        wall,
        queued: None,
        timers: Vec::new(),
        steps: Vec::new(),
        message: None,
    };
    w.act(actions);
    let mut keys = keys.iter().copied();
    for _ in 0..100 {
        if w.done() {
            return w.steps;
        }
        w.wait(&mut keys);
    }
    panic!("the call did not settle at {wall}: {:?}", w.steps);
}

fn number(cfg: &Config, n: &str) -> Target {
    cfg.numbers
        .iter()
        .find(|r| r.number == n)
        .unwrap_or_else(|| panic!("the demo has no number {n}"))
        .to
        .clone()
}

/// Every half hour of the week starting on `monday` (00:00 UTC).
fn week(monday: NaiveDate) -> Vec<DateTime<Utc>> {
    assert_eq!(monday.weekday(), Weekday::Mon, "{monday}");
    let start = Utc.from_utc_datetime(&monday.and_hms_opt(0, 0, 0).unwrap_or_default());
    (0..7 * 48).map(|i| start + Days::minutes(30 * i)).collect()
}

/// Every half hour of the office's closed dates, in the office's zone.
fn holidays(cfg: &Config) -> Vec<DateTime<Utc>> {
    let office = &cfg.schedules["office"];
    assert!(
        !office.closed_dates.is_empty(),
        "the demo office has closed dates"
    );
    let mut out = Vec::new();
    for d in &office.closed_dates {
        let midnight = office
            .timezone
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .unwrap_or_else(|| panic!("no local midnight on {d}"));
        out.extend((0..48).map(|i| (midnight + Days::minutes(30 * i)).with_timezone(&Utc)));
    }
    out
}

/// The instants under test: a summer week, a winter one, the holidays.
fn instants(cfg: &Config) -> Vec<DateTime<Utc>> {
    let mut v = week(NaiveDate::from_ymd_opt(2026, 6, 29).unwrap_or_default());
    v.extend(week(
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default(),
    ));
    v.extend(holidays(cfg));
    v
}

fn queue_open(cfg: &Config, queue: &str, wall: DateTime<Utc>) -> bool {
    let q = &cfg.queues[queue];
    q.schedule
        .as_ref()
        .is_none_or(|s| cfg.schedules[s].is_open(wall))
}

/// Checks what a caller meets after entering `queue` at `wall`: an agent
/// of that queue (by its last relax step at the latest, before max_wait_s)
/// while the queue is open, else the message prompt, a message that ends
/// on silence and a hangup. Waits longer
/// than zero are noted in `waits`.
fn check_queue(
    cfg: &Config,
    queue: &str,
    tail: &[Step],
    wall: DateTime<Utc>,
    waits: &mut Vec<String>,
) -> Result<(), String> {
    let q = &cfg.queues[queue];
    if !queue_open(cfg, queue, wall) {
        let want = [
            Step::Diverted("Closed".into()),
            Step::Prompt(MESSAGE_PROMPT.into()),
            Step::Message {
                seconds: MESSAGE_SILENCE_S,
            },
            Step::Hangup,
        ];
        return if tail == want {
            Ok(())
        } else {
            Err(format!(
                "{wall}: queue {queue} is closed, want {want:?}, got {tail:?}"
            ))
        };
    }
    let limit = q.relax.last().map_or(0, |r| r.after_s);
    match tail {
        [Step::Agent {
            queue: got,
            agent,
            waited_s,
        }] if got == queue
            && *waited_s <= limit
            && (q.max_wait_s == 0 || *waited_s < q.max_wait_s) =>
        {
            if *waited_s > 0 {
                waits.push(format!("{wall} {queue}: {agent} after {waited_s} s"));
            }
            Ok(())
        }
        _ => Err(format!(
            "{wall}: queue {queue} is open but no agent took the caller by {limit} s: {tail:?}"
        )),
    }
}

fn finish(what: &str, errors: Vec<String>, waits: Vec<String>) {
    eprintln!("{what}: {} waits for a relax step", waits.len());
    for w in waits.iter().take(20) {
        eprintln!("  {w}");
    }
    assert!(
        errors.is_empty(),
        "{what}: {} failures, first ones:\n{}",
        errors.len(),
        errors
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn number_1500_is_the_menu_while_the_office_is_open_else_the_follow_the_sun_queue() {
    let cfg = demo();
    let to = number(&cfg, "1500");
    let office = &cfg.schedules["office"];
    let holidays = holidays(&cfg);
    let (mut errors, mut waits) = (Vec::new(), Vec::new());
    // How many instants fell in each case: each must occur.
    let (mut menu, mut sun, mut closed) = (0, 0, 0);
    for wall in instants(&cfg) {
        let open = office.is_open(wall);
        if open && holidays.contains(&wall) {
            errors.push(format!("{wall}: the office is open on a closed date"));
        }
        if !open {
            let steps = walk(&cfg, to.clone(), &[], wall);
            if queue_open(&cfg, FOLLOW_THE_SUN, wall) {
                sun += 1;
            } else {
                closed += 1;
            }
            match steps.split_first() {
                Some((Step::Queue(q), tail)) if q == FOLLOW_THE_SUN => {
                    if let Err(e) = check_queue(&cfg, q, tail, wall, &mut waits) {
                        errors.push(e);
                    }
                }
                _ => errors.push(format!(
                    "{wall}: office closed, want queue {FOLLOW_THE_SUN} first, got {steps:?}"
                )),
            }
            continue;
        }
        menu += 1;
        let mut choices: Vec<(Vec<char>, &str)> =
            MENU.iter().map(|(k, q)| (vec![*k], *q)).collect();
        choices.push((Vec::new(), MENU_FAIL));
        for (keys, want) in choices {
            let steps = walk(&cfg, to.clone(), &keys, wall);
            // The menu (replayed while no key comes), then the queue.
            let menus = steps
                .iter()
                .take_while(|s| **s == Step::Prompt("menu.wav".into()))
                .count();
            match &steps[menus..] {
                [Step::Queue(q), tail @ ..] if menus > 0 && q == want => {
                    if let Err(e) = check_queue(&cfg, q, tail, wall, &mut waits) {
                        errors.push(e);
                    }
                }
                _ => errors.push(format!(
                    "{wall}: office open, keys {keys:?}: want the menu then queue {want}, got {steps:?}"
                )),
            }
        }
    }
    assert!(
        menu > 0 && sun > 0 && closed > 0,
        "cases met: menu {menu}, follow-the-sun {sun}, closed {closed}"
    );
    finish("1500", errors, waits);
}

#[test]
fn number_1501_is_the_support_queue_at_every_hour() {
    let cfg = demo();
    let to = number(&cfg, "1501");
    let (mut errors, mut waits) = (Vec::new(), Vec::new());
    for wall in instants(&cfg) {
        let steps = walk(&cfg, to.clone(), &[], wall);
        match steps.split_first() {
            Some((Step::Queue(q), tail)) if q == "support" => {
                if let Err(e) = check_queue(&cfg, q, tail, wall, &mut waits) {
                    errors.push(e);
                }
            }
            _ => errors.push(format!("{wall}: want queue support first, got {steps:?}")),
        }
    }
    finish("1501", errors, waits);
}

/// Every queue a caller can land in (by the menu, a closed branch or an
/// overflow) has an agent on shift who takes the caller whenever the
/// queue is open.
#[test]
fn every_open_queue_has_an_agent_on_shift() {
    let cfg = demo();
    let (mut errors, mut waits) = (Vec::new(), Vec::new());
    for wall in instants(&cfg) {
        for queue in cfg.queues.keys() {
            let steps = walk(&cfg, Target::Queue(queue.clone()), &[], wall);
            match steps.split_first() {
                Some((Step::Queue(q), tail)) if q == queue => {
                    if let Err(e) = check_queue(&cfg, q, tail, wall, &mut waits) {
                        errors.push(e);
                    }
                }
                _ => errors.push(format!("{wall}: want queue {queue} first, got {steps:?}")),
            }
        }
    }
    finish("queues", errors, waits);
}
