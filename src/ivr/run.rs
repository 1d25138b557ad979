//! The per-call state machine.

use super::{
    IvrAction, IvrError, IvrEvent, IvrOutcome, PromptId, MAX_PATH, MAX_STEPS_WITHOUT_WAIT,
};
use crate::config::{Config, Node, Target};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A `menu` node being played, copied at entry so a reload mid-call cannot
/// change the node under the caller.
#[derive(Debug, Clone)]
struct Menu {
    prompt: PathBuf,
    timeout: Duration,
    retries: u32,
    options: BTreeMap<char, Target>,
    on_fail: Target,
    /// Failed attempts so far (invalid digit or timeout).
    failures: u32,
}

/// A `collect` node gathering digits.
#[derive(Debug, Clone)]
struct Collect {
    max_digits: u32,
    variable: String,
    timeout: Duration,
    terminator: Option<char>,
    next: Target,
    digits: String,
}

/// A `voicemail` node: its prompt, then the recording.
#[derive(Debug, Clone)]
struct Message {
    max: Duration,
    end_key: Option<char>,
    /// `None`: silence does not end the message.
    silence: Option<Duration>,
    next: Target,
    /// When the recording ends at the latest; `None` while the prompt plays.
    until: Option<Instant>,
    /// Since when the caller has been silent.
    quiet_since: Option<Instant>,
}

impl Message {
    /// The earlier of the length limit and the end of the silence allowed.
    fn deadline(&self) -> Option<Instant> {
        let until = self.until?;
        let quiet = self
            .silence
            .zip(self.quiet_since)
            .and_then(|(s, q)| q.checked_add(s));
        Some(quiet.map_or(until, |q| q.min(until)))
    }
}

/// A `survey` node waiting for a score.
#[derive(Debug, Clone)]
struct Survey {
    prompt: PathBuf,
    min: u8,
    max: u8,
    timeout: Duration,
    retries: u32,
    next: Target,
    failures: u32,
}

#[derive(Debug, Clone)]
enum State {
    /// A `play` node: waiting for its prompt to end.
    Play {
        next: Target,
    },
    Menu(Menu),
    Collect(Collect),
    Message(Message),
    Survey(Survey),
    Done(IvrOutcome),
}

/// One call's walk through the IVR.
#[derive(Debug, Clone)]
pub struct IvrRun {
    state: State,
    /// The prompt playing now, if the IVR started one and it has not ended.
    playing: Option<PromptId>,
    next_prompt: u64,
    /// Deadline of a menu or collect wait.
    deadline: Option<Instant>,
    steps_without_wait: u32,
    variables: BTreeMap<String, String>,
    path: Vec<String>,
    /// `schedule` nodes (ivr, node) that took their `closed` branch and
    /// that [`IvrRun::take_closed_branches`] has not handed out yet.
    closed_branches: Vec<(String, String)>,
}

impl IvrRun {
    /// Starts a call at `target` (usually a number's `to`).
    pub fn start(
        cfg: &Config,
        target: Target,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> (IvrRun, Vec<IvrAction>) {
        let mut run = IvrRun {
            state: State::Done(IvrOutcome::HungUp),
            playing: None,
            next_prompt: 0,
            deadline: None,
            steps_without_wait: 0,
            variables: BTreeMap::new(),
            path: Vec::new(),
            closed_branches: Vec::new(),
        };
        let mut out = Vec::new();
        run.goto(cfg, target, now, wall, &mut out);
        (run, out)
    }

    /// Re-enters the IVR at `target` after the run finished in a queue (the
    /// queue was closed or overflowed to an `ivr:` target). Variables and
    /// path are kept. Does nothing if the caller hung up.
    pub fn resume(
        &mut self,
        cfg: &Config,
        target: Target,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<IvrAction> {
        let mut out = Vec::new();
        if self.state_is_live() {
            self.stop_prompt(&mut out);
        }
        if matches!(self.state, State::Done(IvrOutcome::CallerHungUp)) {
            return out;
        }
        self.deadline = None;
        self.goto(cfg, target, now, wall, &mut out);
        out
    }

    /// Feeds one event.
    pub fn on_event(
        &mut self,
        cfg: &Config,
        event: IvrEvent,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<IvrAction> {
        let mut out = Vec::new();
        match event {
            IvrEvent::CallerHungUp => {
                if self.state_is_live() {
                    self.finish(IvrOutcome::CallerHungUp);
                }
            }
            IvrEvent::PromptEnded(id) => {
                if self.playing != Some(id) {
                    tracing::debug!(%id, "ignoring end of a prompt that is not playing");
                    return out;
                }
                self.playing = None;
                self.prompt_ended(cfg, now, wall, &mut out);
            }
            IvrEvent::Digit(d) => {
                if !is_dtmf(d) {
                    tracing::debug!(digit = ?d, "ignoring a non-DTMF digit");
                    return out;
                }
                self.digit(cfg, d, now, wall, &mut out);
            }
            IvrEvent::Voice => {
                if let State::Message(m) = &mut self.state {
                    if m.until.is_some() {
                        m.quiet_since = Some(now);
                        self.deadline = m.deadline();
                    }
                }
            }
        }
        out
    }

    /// The deadline the driver must call `handle_timeout` at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Acts on an expired deadline; an early or spurious call does nothing.
    pub fn handle_timeout(
        &mut self,
        cfg: &Config,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<IvrAction> {
        let mut out = Vec::new();
        match self.deadline {
            Some(d) if now >= d => self.deadline = None,
            _ => return out,
        }
        match &self.state {
            State::Menu(_) => self.menu_failed(cfg, now, wall, &mut out),
            State::Collect(_) => self.collect_done(cfg, now, wall, &mut out),
            State::Message(m) => match m.deadline() {
                Some(d) if now >= d => self.message_done(cfg, now, wall, &mut out),
                // The caller spoke since: wait for the new deadline.
                d => self.deadline = d,
            },
            State::Survey(_) => self.survey_failed(cfg, now, wall, &mut out),
            State::Play { .. } | State::Done(_) => {}
        }
        out
    }

    /// Variables stored by `collect` nodes so far.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// The nodes entered, as `ivr.node`, oldest first (at most `MAX_PATH`).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The `schedule` nodes that sent the call down their `closed` branch
    /// since the last call (after-hours demand), as (ivr, node).
    pub fn take_closed_branches(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.closed_branches)
    }

    /// How the run ended; `None` while it still waits for the caller.
    pub fn outcome(&self) -> Option<&IvrOutcome> {
        match &self.state {
            State::Done(o) => Some(o),
            _ => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        !self.state_is_live()
    }

    fn state_is_live(&self) -> bool {
        !matches!(self.state, State::Done(_))
    }

    fn prompt_ended(
        &mut self,
        cfg: &Config,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) {
        match &self.state {
            State::Play { next } => {
                let next = next.clone();
                self.goto(cfg, next, now, wall, out);
            }
            State::Menu(m) => self.deadline = now.checked_add(m.timeout),
            State::Collect(c) => self.deadline = now.checked_add(c.timeout),
            State::Message(_) => self.start_message(now, out),
            State::Survey(s) => self.deadline = now.checked_add(s.timeout),
            State::Done(_) => {}
        }
    }

    fn digit(
        &mut self,
        cfg: &Config,
        d: char,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) {
        match &mut self.state {
            // A `play` prompt is not interruptible; the digit is dropped.
            State::Play { .. } | State::Done(_) => {}
            // The end key ends the message (once recording); others are
            // part of it.
            State::Message(m) => {
                if m.until.is_some() && m.end_key == Some(d) {
                    self.message_done(cfg, now, wall, out);
                }
            }
            State::Survey(s) => {
                let score = d
                    .to_digit(10)
                    .and_then(|v| u8::try_from(v).ok())
                    .filter(|v| (s.min..=s.max).contains(v));
                let next = s.next.clone();
                self.stop_prompt(out);
                self.deadline = None;
                match score {
                    Some(v) => {
                        out.push(IvrAction::Score(v));
                        self.goto(cfg, next, now, wall, out);
                    }
                    None => self.survey_failed(cfg, now, wall, out),
                }
            }
            State::Menu(m) => {
                let choice = m.options.get(&d).cloned();
                self.stop_prompt(out);
                self.deadline = None;
                match choice {
                    Some(t) => self.goto(cfg, t, now, wall, out),
                    None => self.menu_failed(cfg, now, wall, out),
                }
            }
            State::Collect(c) => {
                let ended = if c.terminator == Some(d) {
                    true
                } else {
                    c.digits.push(d);
                    c.digits.chars().count() >= c.max_digits as usize
                };
                let timeout = c.timeout;
                self.stop_prompt(out);
                if ended {
                    self.deadline = None;
                    self.collect_done(cfg, now, wall, out);
                } else {
                    // The timeout counts from the last digit.
                    self.deadline = now.checked_add(timeout);
                }
            }
        }
    }

    /// An invalid digit or a timeout: replay, or `on_fail` when out of retries.
    fn menu_failed(
        &mut self,
        cfg: &Config,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) {
        let State::Menu(m) = &mut self.state else {
            return;
        };
        m.failures = m.failures.saturating_add(1);
        if m.failures > m.retries {
            let on_fail = m.on_fail.clone();
            self.goto(cfg, on_fail, now, wall, out);
        } else {
            let prompt = m.prompt.clone();
            self.play(prompt, out);
        }
    }

    /// The prompt of a `voicemail` node ended (or it had none): record.
    fn start_message(&mut self, now: Instant, out: &mut Vec<IvrAction>) {
        let State::Message(m) = &mut self.state else {
            return;
        };
        m.until = now.checked_add(m.max);
        m.quiet_since = Some(now);
        self.deadline = m.deadline();
        out.push(IvrAction::StartMessage);
    }

    fn message_done(
        &mut self,
        cfg: &Config,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) {
        let State::Message(m) = &self.state else {
            return;
        };
        let next = m.next.clone();
        out.push(IvrAction::StopMessage);
        self.goto(cfg, next, now, wall, out);
    }

    /// A wrong digit or no digit: ask again, or go on without a score.
    fn survey_failed(
        &mut self,
        cfg: &Config,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) {
        let State::Survey(s) = &mut self.state else {
            return;
        };
        s.failures = s.failures.saturating_add(1);
        if s.failures > s.retries {
            let next = s.next.clone();
            self.goto(cfg, next, now, wall, out);
        } else {
            let prompt = s.prompt.clone();
            self.play(prompt, out);
        }
    }

    fn collect_done(
        &mut self,
        cfg: &Config,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) {
        let State::Collect(c) = &mut self.state else {
            return;
        };
        let (name, value, next) = (
            c.variable.clone(),
            std::mem::take(&mut c.digits),
            c.next.clone(),
        );
        self.variables.insert(name.clone(), value.clone());
        out.push(IvrAction::SetVariable { name, value });
        self.goto(cfg, next, now, wall, out);
    }

    /// Follows `target` through nodes that do not wait until one that does,
    /// or until the run ends.
    fn goto(
        &mut self,
        cfg: &Config,
        mut target: Target,
        now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<IvrAction>,
    ) {
        self.deadline = None;
        loop {
            self.steps_without_wait += 1;
            if self.steps_without_wait > MAX_STEPS_WITHOUT_WAIT {
                return self.fail(IvrError::TooManySteps(target.to_string()), out);
            }
            let (ivr, node_name) = match target {
                Target::Hangup => {
                    self.stop_prompt(out);
                    out.push(IvrAction::Hangup);
                    return self.finish(IvrOutcome::HungUp);
                }
                Target::Queue(queue) => return self.enter_queue(queue, 0, out),
                Target::Ivr { ivr, node } => (ivr, node),
            };
            let Some(node) = cfg.ivrs.get(&ivr).and_then(|i| i.nodes.get(&node_name)) else {
                let t = Target::Ivr {
                    ivr,
                    node: node_name,
                };
                return self.fail(IvrError::UnknownTarget(t.to_string()), out);
            };
            tracing::debug!(ivr = %ivr, node = %node_name, kind = node.kind(), "ivr step");
            if self.path.len() < MAX_PATH {
                self.path.push(format!("{ivr}.{node_name}"));
            }
            match node {
                Node::Schedule {
                    schedule,
                    open,
                    closed,
                } => {
                    let Some(s) = cfg.schedules.get(schedule) else {
                        return self.fail(IvrError::UnknownSchedule(schedule.clone()), out);
                    };
                    if s.is_open(wall) {
                        target = open.clone();
                    } else {
                        self.closed_branches.push((ivr.clone(), node_name.clone()));
                        target = closed.clone();
                    }
                }
                Node::Queue { queue, priority } => {
                    return self.enter_queue(queue.clone(), *priority, out)
                }
                Node::Hangup => target = Target::Hangup,
                Node::Play { prompt, next } => {
                    self.state = State::Play { next: next.clone() };
                    return self.play(prompt.clone(), out);
                }
                Node::Menu {
                    prompt,
                    timeout_s,
                    retries,
                    options,
                    on_fail,
                } => {
                    self.state = State::Menu(Menu {
                        prompt: prompt.clone(),
                        timeout: Duration::from_secs(*timeout_s),
                        retries: *retries,
                        options: options.clone(),
                        on_fail: on_fail.clone(),
                        failures: 0,
                    });
                    return self.play(prompt.clone(), out);
                }
                Node::Collect {
                    prompt,
                    max_digits,
                    variable,
                    timeout_s,
                    terminator,
                    next,
                } => {
                    let timeout = Duration::from_secs(*timeout_s);
                    self.state = State::Collect(Collect {
                        max_digits: *max_digits,
                        variable: variable.clone(),
                        timeout,
                        terminator: *terminator,
                        next: next.clone(),
                        digits: String::new(),
                    });
                    match prompt {
                        Some(p) => return self.play(p.clone(), out),
                        None => {
                            self.stop_prompt(out);
                            self.steps_without_wait = 0;
                            self.deadline = now.checked_add(timeout);
                            return;
                        }
                    }
                }
                Node::Voicemail {
                    prompt,
                    max_s,
                    end_key,
                    silence_s,
                    next,
                } => {
                    self.state = State::Message(Message {
                        max: Duration::from_secs(*max_s),
                        end_key: *end_key,
                        silence: (*silence_s > 0).then(|| Duration::from_secs(*silence_s)),
                        next: next.clone(),
                        until: None,
                        quiet_since: None,
                    });
                    match prompt {
                        Some(p) => return self.play(p.clone(), out),
                        None => {
                            self.stop_prompt(out);
                            self.steps_without_wait = 0;
                            return self.start_message(now, out);
                        }
                    }
                }
                Node::Survey {
                    prompt,
                    min,
                    max,
                    timeout_s,
                    retries,
                    next,
                } => {
                    self.state = State::Survey(Survey {
                        prompt: prompt.clone(),
                        min: *min,
                        max: *max,
                        timeout: Duration::from_secs(*timeout_s),
                        retries: *retries,
                        next: next.clone(),
                        failures: 0,
                    });
                    return self.play(prompt.clone(), out);
                }
            }
        }
    }

    /// Starts a prompt; the caller now waits, so the step count restarts.
    fn play(&mut self, path: PathBuf, out: &mut Vec<IvrAction>) {
        self.next_prompt += 1;
        let id = PromptId(self.next_prompt);
        self.playing = Some(id);
        self.steps_without_wait = 0;
        self.deadline = None;
        out.push(IvrAction::PlayPrompt { id, path });
    }

    fn stop_prompt(&mut self, out: &mut Vec<IvrAction>) {
        if self.playing.take().is_some() {
            out.push(IvrAction::StopPrompt);
        }
    }

    fn enter_queue(&mut self, queue: String, priority: i32, out: &mut Vec<IvrAction>) {
        self.stop_prompt(out);
        out.push(IvrAction::EnterQueue {
            queue: queue.clone(),
            priority,
        });
        self.finish(IvrOutcome::Queued { queue, priority });
    }

    fn fail(&mut self, e: IvrError, out: &mut Vec<IvrAction>) {
        tracing::error!(error = %e, path = ?self.path, "ivr cannot continue; hanging up");
        self.stop_prompt(out);
        out.push(IvrAction::Hangup);
        self.finish(IvrOutcome::Failed(e));
    }

    fn finish(&mut self, outcome: IvrOutcome) {
        self.playing = None;
        self.deadline = None;
        self.state = State::Done(outcome);
    }
}

fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}
