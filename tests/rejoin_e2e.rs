//! Rejoin in place (a queue's `rejoin_s`) against the running daemon, with
//! raw-UDP callers and one agent's phone behind a static contact, paused
//! through the admin API while the line forms.
//!
//! Queue `line` keeps a place 20 s: caller A (5551001) waits, B (5551002)
//! waits behind it, A hangs up; C (5551003), another number, arrives and
//! waits behind B; A calls again and `GET /api/v1/calls` shows it at
//! position 1 again, ahead of B and C. Once the agent is made available it
//! is offered A, then B, then C.
//!
//! Queue `brief` keeps a place 2 s: D (5551004) waits, E (5551005) behind
//! it, D hangs up and calls again after 3 s: it lands behind E.

mod common;

use common::http::{get_json, post_json};
use common::phone::{AgentPhone, Caller};
use common::sip::header;
use common::{ConfigSpec, Daemon};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// The waiting callers of `queue` in `GET /api/v1/calls`, as (Call-ID,
/// position), by position.
fn line(d: &Daemon, queue: &str) -> Vec<(String, u64)> {
    let calls = get_json(&format!("{}/api/v1/calls", d.admin_url()));
    let mut v: Vec<(String, u64)> = calls
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["queue"] == queue)
        .filter_map(|c| Some((c["id"].as_str()?.to_owned(), c["position"].as_u64()?)))
        .collect();
    v.sort_by_key(|(_, p)| *p);
    v
}

/// Waits until the callers waiting in `queue` are `want`, in that order
/// (positions 1, 2, ...).
fn wait_line(d: &Daemon, queue: &str, want: &[&Caller], what: &str) {
    let ids: Vec<(String, u64)> = want
        .iter()
        .zip(1..)
        .map(|(c, p)| (c.call_id.clone(), p))
        .collect();
    let until = Instant::now() + T;
    loop {
        let seen = line(d, queue);
        if seen == ids {
            return;
        }
        if Instant::now() >= until {
            let calls = get_json(&format!("{}/api/v1/calls", d.admin_url()));
            panic!(
                "{what}: wanted {ids:?}, the line is {seen:?}\n{calls:#}\n{}",
                d.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spec(agent: &AgentPhone) -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        r#"{}
[queues.line]
skills = {{ line = 1 }}
rejoin_s = 20

[queues.brief]
skills = {{ brief = 1 }}
rejoin_s = 2

[[numbers]]
number = "1840"
to = "queue:line"

[[numbers]]
number = "1841"
to = "queue:brief"
"#,
        agent.toml("skills = { line = 1 }")
    );
    spec
}

fn set_state(d: &Daemon, agent: &str, state: &str) {
    let (code, v) = post_json(
        &format!("{}/api/v1/agents/{agent}/state", d.admin_url()),
        &json!({ "state": state }),
    );
    assert_eq!(code, 200, "{v}");
}

/// The agent is offered the caller `number`: answers, the caller hangs up,
/// the agent's leg ends.
fn takes(agent: &mut AgentPhone, caller: &mut Caller, number: &str, d: &Daemon) {
    let inv = agent
        .expect_invite(T)
        .unwrap_or_else(|| panic!("no offer for {number}\n{}", d.stderr()));
    let from = header(&inv, "From", Some("f")).unwrap_or_default();
    assert!(
        from.contains(&format!("<sip:{number}@")),
        "the agent was offered {from}, not {number}"
    );
    agent.answer(&inv);
    caller.bye();
    assert!(
        agent.expect_bye(T).is_some(),
        "{number}: no BYE to the agent"
    );
}

#[test]
fn a_caller_who_calls_back_within_rejoin_s_is_ahead_again_and_is_served_first() {
    let mut agent = AgentPhone::new("2401");
    let d = Daemon::start_with(spec(&agent));
    let port = d.sip_port();
    // Nobody free: the line forms.
    set_state(&d, "2401", "paused");

    let a = Caller::dial_from(port, "1840", "5551001");
    wait_line(&d, "line", &[&a], "A waits");
    let mut b = Caller::dial_from(port, "1840", "5551002");
    wait_line(&d, "line", &[&a, &b], "B waits behind A");
    let mut a = a;
    a.bye();
    wait_line(&d, "line", &[&b], "A hung up");
    // Another number does not take A's place.
    let mut c = Caller::dial_from(port, "1840", "5551003");
    wait_line(&d, "line", &[&b, &c], "C waits behind B");
    // A calls again within rejoin_s: its old place, ahead of B.
    let mut a2 = Caller::dial_from(port, "1840", "5551001");
    wait_line(&d, "line", &[&a2, &b, &c], "A is back at position 1");
    let calls = get_json(&format!("{}/api/v1/calls", d.admin_url()));
    let back = calls
        .as_array()
        .and_then(|v| v.iter().find(|c| c["id"] == a2.call_id.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(back["from"], "5551001", "{back}");

    // The agent serves them in that order.
    set_state(&d, "2401", "available");
    takes(&mut agent, &mut a2, "5551001", &d);
    takes(&mut agent, &mut b, "5551002", &d);
    takes(&mut agent, &mut c, "5551003", &d);
    assert!(line(&d, "line").is_empty());
}

#[test]
fn a_caller_who_calls_back_after_rejoin_s_starts_at_the_end() {
    let agent = AgentPhone::new("2401");
    let d = Daemon::start_with(spec(&agent));
    let port = d.sip_port();

    // Queue `brief`: nobody has its skill.
    let mut first = Caller::dial_from(port, "1841", "5551004");
    wait_line(&d, "brief", &[&first], "D waits");
    let mut e = Caller::dial_from(port, "1841", "5551005");
    wait_line(&d, "brief", &[&first, &e], "E waits behind D");
    first.bye();
    wait_line(&d, "brief", &[&e], "D hung up");
    // Past brief's rejoin_s of 2 s.
    std::thread::sleep(Duration::from_secs(3));
    let mut again = Caller::dial_from(port, "1841", "5551004");
    wait_line(&d, "brief", &[&e, &again], "D is back, behind E");
    again.bye();
    e.bye();
    wait_line(&d, "brief", &[], "both gone");
}
