//! The README's baresip account line, taken from README.md itself, against
//! the demo configuration as shipped: baresip 1.0 registers and the agent
//! turns `available` in `/api/v1/agents`.
//!
//! The demo file is moved to the test's ports and directories (as in
//! tests/demo_walk.rs) and the README line's server address to the test's
//! SIP port; nothing else changes, except one thing that depends on the
//! clock: agent 1001's shift (Jakarta office hours) is removed, so the
//! agent is `available` rather than `off_shift` whenever the test runs.
//!
//! Without baresip this test prints a note and skips, or fails when `CI`
//! is set.

mod common;

use common::baresip::{baresip_or_skip, sine_wav, Baresip};
use common::demo::{demo_on, repo};
use common::{ConfigSpec, Daemon};
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// The line in the code block after "With baresip, one line in" in
/// README.md.
fn readme_account_line() -> String {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let after = readme
        .split_once("With baresip, one line in")
        .map(|(_, rest)| rest)
        .expect("README.md has no baresip account line");
    let block = after
        .split_once("```\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .expect("README.md: no code block after the baresip sentence");
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one account line, got {lines:?}");
    lines[0].trim().to_string()
}

fn agents(admin_port: u16) -> Option<Value> {
    let url = format!("http://127.0.0.1:{admin_port}/api/v1/agents");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let r = reqwest::get(url).await.ok()?;
        r.json().await.ok()
    })
}

#[test]
fn the_readme_baresip_line_registers_against_the_demo() {
    if !baresip_or_skip() {
        return;
    }
    let line = readme_account_line();
    let spec = ConfigSpec::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut doc = demo_on(&spec, tmp.path());

    // The line names the demo's user, domain, password and address.
    let user = line
        .strip_prefix("<sip:")
        .and_then(|r| r.split_once('@'))
        .map(|(u, _)| u.to_string())
        .unwrap_or_else(|| panic!("not a baresip account line: {line}"));
    let domain = doc["server"]["domain"].as_str().unwrap().to_string();
    assert!(line.contains(&format!("@{domain}")), "{line}");
    let password = doc["agents"][user.as_str()]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("the demo has no agent {user} with a password"))
        .to_string();
    assert!(line.contains(&format!(";auth_pass={password}")), "{line}");
    let shipped = std::fs::read_to_string(repo("config/sipacd.toml")).unwrap();
    let listen = shipped.parse::<toml_edit::DocumentMut>().unwrap()["server"]["sip"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("udp:")
        .to_string();
    let addr = format!("\"sip:{listen}\"");
    assert!(line.contains(&addr), "{line} does not name {addr}");
    let line = line.replace(&addr, &format!("\"sip:127.0.0.1:{}\"", spec.sip_port));

    if let Some(t) = doc["agents"][user.as_str()].as_table_like_mut() {
        t.remove("shift");
    }
    let d = Daemon::start_with_text(spec, &doc.to_string());
    let phone = Baresip::start("readme", &line, &sine_wav(1000.0, 1.0));
    assert!(
        phone.wait_for_output(WAIT, |o| o
            .contains(&format!("{user}@{domain}: {{0/UDP/v4}} 200 OK"))),
        "baresip did not register with the README line {line}\nbaresip:\n{}\nsipacd:\n{}",
        phone.output(),
        d.stderr()
    );
    let deadline = Instant::now() + WAIT;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(list) = agents(d.cfg.spec.admin_port) {
            let me = list
                .as_array()
                .and_then(|a| a.iter().find(|a| a["id"] == user.as_str()).cloned());
            if let Some(me) = me {
                if me["state"] == "available" && me["registered"] == true {
                    return;
                }
                last = me;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "agent {user} did not turn available: {last}\nbaresip:\n{}\nsipacd:\n{}",
        phone.output(),
        d.stderr()
    );
}
