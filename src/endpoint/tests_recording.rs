//! Recording as the engine drives it: which calls are recorded, the notice
//! played before the bridge, the media engine's `Record` command, and the
//! record's link to the file.

use super::super::MediaCommand;
use super::*;

/// The harness with queue `support` recording as `record` says.
fn recording_harness(record: &str, prompt: bool) -> Harness {
    let prompt = if prompt {
        "record_prompt = \"menu.wav\"\n"
    } else {
        ""
    };
    Harness::with_config(|t| {
        t.replace(
            "[queues.support]\nring_timeout_s = 10\n",
            &format!("[queues.support]\nring_timeout_s = 10\nrecord = {record}\n{prompt}"),
        )
    })
}

/// A caller answered by agent 2001: the caller's leg and the commands
/// the answer gave.
fn answered(h: &mut Harness, call_id: &str) -> (u64, Vec<MediaCommand>) {
    let (_, out) = queued_caller(h, call_id);
    let caller_leg = media_cmds(h)
        .iter()
        .find_map(|c| match c {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("caller leg");
    let inv = requests_to(&out, agent(5080)).remove(0);
    h.send_from(agent(5080), &answer(&inv, 200, "ag", AGENT_SDP));
    (caller_leg, media_cmds(h))
}

fn events(h: &mut Harness) -> Vec<crate::events::EventKind> {
    std::iter::from_fn(|| h.ep.poll_event(h.now))
        .map(|e| e.kind)
        .collect()
}

#[test]
fn a_recorded_call_hears_the_notice_then_is_bridged_and_recorded() {
    let mut h = recording_harness("\"all\"", true);
    let (caller_leg, cmds) = answered(&mut h, "rec1");
    let agent_leg = match cmds.as_slice() {
        [MediaCommand::Open { leg, .. }, MediaCommand::Play {
            leg: played,
            prompts,
            looped: false,
        }] => {
            assert_eq!(*played, caller_leg);
            assert!(prompts[0].ends_with("menu.wav"), "{prompts:?}");
            *leg
        }
        other => panic!("expected Open + the notice, got {other:?}"),
    };
    // The notice ends: bridged, and recorded from then on.
    h.ep.handle_media_event(
        super::super::MediaEvent::PromptEnded { leg: caller_leg },
        h.now,
    );
    let cmds = media_cmds(&mut h);
    let path = match cmds.as_slice() {
        [MediaCommand::Bridge { a, b }, MediaCommand::Record {
            caller,
            agent,
            path,
        }] => {
            assert_eq!((*a, *b), (caller_leg, agent_leg));
            assert_eq!((*caller, *agent), (caller_leg, agent_leg));
            path.clone()
        }
        other => panic!("expected Bridge + Record, got {other:?}"),
    };
    let rel = path
        .strip_prefix(&h.ep.cfg.server.data_dir)
        .expect("under data_dir")
        .to_str()
        .expect("utf-8")
        .to_owned();
    assert!(
        rel.starts_with("recordings/") && rel.ends_with("/rec1.wav"),
        "{rel}"
    );
    let kinds = events(&mut h);
    assert!(
        kinds.iter().any(
            |k| matches!(k, crate::events::EventKind::RecordingStarted { path, .. } if *path == rel)
        ),
        "{kinds:?}"
    );
    // The caller hangs up: the recording ends before the call's end.
    h.ep.shutdown(h.now);
    h.drain_all();
    let _ = h.advance_all(Duration::from_secs(40));
    let kinds = events(&mut h);
    let ended_rec = kinds.iter().position(
        |k| matches!(k, crate::events::EventKind::RecordingEnded { path, .. } if *path == rel),
    );
    let ended = kinds
        .iter()
        .position(|k| matches!(k, crate::events::EventKind::Ended(_)));
    assert!(
        matches!((ended_rec, ended), (Some(r), Some(e)) if r < e),
        "{kinds:?}"
    );
}

#[test]
fn the_record_links_the_file() {
    let mut h = recording_harness("\"all\"", false);
    let (_, cmds) = answered(&mut h, "rec2");
    assert!(
        cmds.iter()
            .any(|c| matches!(c, MediaCommand::Record { .. })),
        "no notice: recorded at once: {cmds:?}"
    );
    let recs = h.records();
    let last = recs.last().expect("a record");
    let link = last.recording.as_deref().expect("linked");
    assert!(link.ends_with("/rec2.wav"), "{link}");
}

#[test]
fn a_share_of_calls_is_recorded_per_call_and_none_records_nothing() {
    for (record, expect) in [
        ("\"none\"", Some(false)),
        ("0", Some(false)),
        ("100", Some(true)),
    ] {
        let mut h = recording_harness(record, false);
        let (_, cmds) = answered(&mut h, "rec3");
        let recorded = cmds
            .iter()
            .any(|c| matches!(c, MediaCommand::Record { .. }));
        assert_eq!(Some(recorded), expect, "record = {record}: {cmds:?}");
        assert!(
            cmds.iter()
                .any(|c| matches!(c, MediaCommand::Bridge { .. })),
            "bridged either way"
        );
    }
    // A percentage picks about that share, each call once.
    let policy = crate::config::RecordPolicy::Percent(30);
    let picked = (0..1000)
        .filter(|i| policy.records(&format!("call-{i}@host")))
        .count();
    assert!((230..370).contains(&picked), "{picked} of 1000 at 30 %");
    assert_eq!(policy.records("same"), policy.records("same"));
}
