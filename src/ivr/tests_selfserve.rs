//! `voicemail` and `survey` nodes on a virtual clock.

use super::*;
use crate::config::wav::tests::wav_bytes;
use crate::config::{self, Config, Target};
use chrono::{TimeZone, Utc};
use std::time::{Duration, Instant};

const CONF: &str = r#"[server]
prompts = "p"

[queues.q]

[ivr.vm]
start = "leave"

[ivr.vm.nodes.leave]
type = "voicemail"
prompt = "menu.wav"
max_s = 60
silence_s = 4
next = "thanks"

[ivr.vm.nodes.thanks]
type = "play"
prompt = "closed.wav"

[ivr.quick]
start = "rec"

[ivr.quick.nodes.rec]
type = "voicemail"
end_key = "*"
silence_s = 0
max_s = 10

[ivr.csat]
start = "ask"

[ivr.csat.nodes.ask]
type = "survey"
prompt = "menu.wav"
timeout_s = 3
retries = 1
next = "thanks"

[ivr.csat.nodes.thanks]
type = "play"
prompt = "closed.wav"
"#;

fn cfg() -> Config {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("p");
    std::fs::create_dir(&p).expect("mkdir");
    for f in ["menu.wav", "closed.wav"] {
        std::fs::write(p.join(f), wav_bytes(1, 1, 8000, 16, 8)).expect("write");
    }
    config::parse_str(CONF, &dir.path().join("sipacd.toml")).expect("config")
}

struct Sim {
    cfg: Config,
    run: IvrRun,
    now: Instant,
}

impl Sim {
    fn start(ivr: &str, node: &str) -> (Sim, Vec<IvrAction>) {
        let cfg = cfg();
        let now = Instant::now();
        let t = Target::Ivr {
            ivr: ivr.into(),
            node: node.into(),
        };
        let (run, out) = IvrRun::start(&cfg, t, now, wall());
        (Sim { cfg, run, now }, out)
    }
    fn ev(&mut self, e: IvrEvent) -> Vec<IvrAction> {
        self.run.on_event(&self.cfg, e, self.now, wall())
    }
    fn end_prompt(&mut self, out: &[IvrAction]) -> Vec<IvrAction> {
        let id = out
            .iter()
            .rev()
            .find_map(|a| match a {
                IvrAction::PlayPrompt { id, .. } => Some(*id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no prompt in {out:?}"));
        self.ev(IvrEvent::PromptEnded(id))
    }
    fn advance(&mut self, secs: u64) -> Vec<IvrAction> {
        self.now += Duration::from_secs(secs);
        match self.run.poll_timeout() {
            Some(d) if d <= self.now => self.run.handle_timeout(&self.cfg, self.now, wall()),
            _ => Vec::new(),
        }
    }
}

fn wall() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 3, 0, 0)
        .single()
        .expect("date")
}

fn has(out: &[IvrAction], a: &IvrAction) -> bool {
    out.contains(a)
}

#[test]
fn a_message_starts_after_its_prompt_and_ends_after_the_silence_allowed() {
    let (mut s, out) = Sim::start("vm", "leave");
    assert!(matches!(out.as_slice(), [IvrAction::PlayPrompt { .. }]));
    assert!(!has(&out, &IvrAction::StartMessage));
    let out = s.end_prompt(&out);
    assert_eq!(out, vec![IvrAction::StartMessage]);
    // Speech keeps it going past the 4 s of silence allowed.
    for _ in 0..5 {
        assert!(s.advance(3).is_empty());
        s.ev(IvrEvent::Voice);
    }
    assert!(s.advance(3).is_empty(), "3 s quiet: still recording");
    let out = s.advance(1);
    assert_eq!(out.first(), Some(&IvrAction::StopMessage), "{out:?}");
    assert!(matches!(out.get(1), Some(IvrAction::PlayPrompt { .. })));
}

#[test]
fn the_length_limit_ends_a_message_whatever_the_caller_says() {
    let (mut s, out) = Sim::start("vm", "leave");
    s.end_prompt(&out);
    let mut stopped_at = None;
    for t in 1..=61 {
        s.ev(IvrEvent::Voice);
        let out = s.advance(1);
        if has(&out, &IvrAction::StopMessage) {
            stopped_at = Some(t);
            break;
        }
    }
    assert_eq!(stopped_at, Some(60));
}

#[test]
fn the_end_key_ends_a_message_and_other_digits_do_not() {
    let (mut s, out) = Sim::start("quick", "rec");
    assert_eq!(out, vec![IvrAction::StartMessage], "no prompt: at once");
    assert!(s.ev(IvrEvent::Digit('#')).is_empty());
    // No silence limit: 9 quiet seconds go by.
    assert!(s.advance(9).is_empty());
    let out = s.ev(IvrEvent::Digit('*'));
    assert_eq!(out, vec![IvrAction::StopMessage, IvrAction::Hangup]);
    assert!(s.run.is_finished());
}

#[test]
fn a_survey_takes_a_digit_in_range_as_the_score() {
    let (mut s, out) = Sim::start("csat", "ask");
    let out2 = s.end_prompt(&out);
    assert!(out2.is_empty());
    let out = s.ev(IvrEvent::Digit('4'));
    assert_eq!(out.first(), Some(&IvrAction::Score(4)), "{out:?}");
}

#[test]
fn a_survey_asks_again_on_a_wrong_digit_then_goes_on_without_a_score() {
    let (mut s, out) = Sim::start("csat", "ask");
    s.end_prompt(&out);
    let out = s.ev(IvrEvent::Digit('7'));
    assert!(
        matches!(out.last(), Some(IvrAction::PlayPrompt { .. })),
        "{out:?}"
    );
    s.end_prompt(&out);
    let out = s.advance(3);
    assert!(
        !out.iter().any(|a| matches!(a, IvrAction::Score(_))),
        "{out:?}"
    );
    // On to `thanks` (a play node).
    assert!(matches!(out.last(), Some(IvrAction::PlayPrompt { .. })));
    assert!(s.run.path().iter().any(|p| p == "csat.thanks"));
}

#[test]
fn a_survey_range_above_its_max_is_refused() {
    let text = CONF.replace("retries = 1\n", "retries = 1\nmin = 6\nmax = 3\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("p");
    std::fs::create_dir(&p).expect("mkdir");
    for f in ["menu.wav", "closed.wav"] {
        std::fs::write(p.join(f), wav_bytes(1, 1, 8000, 16, 8)).expect("write");
    }
    let e = config::parse_str(&text, &dir.path().join("sipacd.toml"))
        .expect_err("min above max")
        .to_string();
    assert!(e.contains("min (6) is above max (3)"), "{e}");
}
