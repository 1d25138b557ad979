//! `sipacd check --config PATH`: `ok` and exit 0 for a good file; one
//! `PATH:LINE:COL: message` line per error and exit 1 for a broken one.

mod common;

use common::{parse_diagnostics, sipacd_bin, ConfigDir, ConfigSpec};
use std::process::Command;

/// Runs `sipacd check` and returns (exit code, stdout + stderr).
fn check(path: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(sipacd_bin())
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .expect("run sipacd check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// 1-based number of the line holding `needle` in `text`.
fn line_of(text: &str, needle: &str) -> u32 {
    let i = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the test config"));
    i as u32 + 1
}

#[test]
fn good_file_is_ok() {
    let cfg = ConfigDir::new(ConfigSpec::new());
    let (code, out) = check(&cfg.config_path());
    assert_eq!(code, Some(0), "check failed on the harness config:\n{out}");
    assert!(
        out.lines().any(|l| l.trim() == "ok"),
        "no `ok` line:\n{out}"
    );
    assert!(
        parse_diagnostics(&out).is_empty(),
        "diagnostics on a good file:\n{out}"
    );
}

/// Each injectable error: (what, text to replace, replacement, needle on its line).
const ERRORS: &[(&str, &str, &str, &str)] = &[
    (
        "unknown key",
        "drain_s = 2\n",
        "drain_s = 2\ncolour = \"red\"\n",
        "colour = ",
    ),
    (
        "bad time zone",
        "timezone = \"UTC\"",
        "timezone = \"Mars/Olympus_Mons\"",
        "Mars/Olympus_Mons",
    ),
    (
        "dangling queue reference",
        "to = \"queue:support\"",
        "to = \"queue:nowhere\"",
        "queue:nowhere",
    ),
    (
        "missing prompt",
        "music = \"moh.wav\"",
        "music = \"missing.wav\"",
        "missing.wav",
    ),
];

/// Writes the harness config with the named errors injected, runs `check`
/// and asserts exit 1 and one positioned diagnostic per error.
fn assert_reported(which: &[&str]) {
    let cfg = ConfigDir::new(ConfigSpec::new());
    let mut bad = cfg.spec.render(cfg.root());
    for (what, from, to, _) in ERRORS {
        if which.contains(what) {
            assert!(bad.contains(from), "{from:?} not in the test config");
            bad = bad.replacen(from, to, 1);
        }
    }
    cfg.write_text(&bad);

    let (code, out) = check(&cfg.config_path());
    assert_eq!(code, Some(1), "check must exit 1 on a broken file:\n{out}");
    assert!(
        !out.lines().any(|l| l.trim() == "ok"),
        "`ok` on a broken file:\n{out}"
    );
    let diags = parse_diagnostics(&out);
    let path = cfg.config_path();
    for (what, _, _, needle) in ERRORS.iter().filter(|e| which.contains(&e.0)) {
        let line = line_of(&bad, needle);
        let hit = diags.iter().any(|(p, l, c, _)| {
            *l == line && *c >= 1 && std::path::Path::new(p).file_name() == path.file_name()
        });
        // A missing prompt may also be reported against the prompt's path.
        let prompt_hit = *what == "missing prompt"
            && diags
                .iter()
                .any(|(p, _, _, m)| p.contains("missing.wav") || m.contains("missing.wav"));
        assert!(
            hit || prompt_hit,
            "no `PATH:{line}:COL: ` diagnostic for the {what} (line {line}):\n{out}"
        );
    }
}

#[test]
fn unknown_key_is_reported_with_its_position() {
    assert_reported(&["unknown key"]);
}

#[test]
fn semantic_errors_are_all_reported() {
    assert_reported(&[
        "bad time zone",
        "dangling queue reference",
        "missing prompt",
    ]);
}

/// The contract: every error at once, an unknown key included (it must not
/// hide the others).
#[test]
fn every_error_is_reported_at_once() {
    let all: Vec<&str> = ERRORS.iter().map(|e| e.0).collect();
    assert_reported(&all);
}

#[test]
fn prompt_in_wrong_format_is_reported() {
    let cfg = ConfigDir::new(ConfigSpec::new());
    // 44.1 kHz instead of 8 kHz: a valid WAV, but not one sipacd can play.
    let mut wav = common::wav_bytes(800);
    wav[24..28].copy_from_slice(&44100u32.to_le_bytes());
    wav[28..32].copy_from_slice(&88200u32.to_le_bytes());
    std::fs::write(cfg.root().join("prompts/moh.wav"), wav).unwrap();
    let (code, out) = check(&cfg.config_path());
    assert_eq!(code, Some(1), "a 44.1 kHz prompt must be refused:\n{out}");
    assert!(
        !parse_diagnostics(&out).is_empty(),
        "no PATH:LINE:COL diagnostic:\n{out}"
    );
}

#[test]
fn missing_config_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(&dir.path().join("nope.toml"));
    assert_eq!(code, Some(1), "check on a missing file must exit 1:\n{out}");
    assert!(
        out.contains("nope.toml"),
        "the message must name the file:\n{out}"
    );
}

#[test]
fn diagnostic_parser() {
    let d = parse_diagnostics("ok\n/tmp/a b/x.toml:12:5: unknown key `colour`\nnoise: 1: x\n");
    assert_eq!(
        d,
        vec![(
            "/tmp/a b/x.toml".to_string(),
            12,
            5,
            "unknown key `colour`".to_string()
        )]
    );
}
