//! Blind transfer against the running daemon: SIPp plays the caller and
//! two agents' softphones (static contacts). Agent 2001 answers the caller
//! in queue `support` and REFERs it to 1700 (queue `billing`); the SIPp
//! scenario checks the 202 and the NOTIFY sequence (100 Trying, then 200 OK
//! ending the subscription) before sipacd's BYE. Agent 2002, the only one
//! with `billing`'s skill, is offered the caller and answers; the call
//! record keeps one call with both legs in order.
//!
//! A REFER naming an agent id (`sip:2002@…`) rings that agent alone in the
//! caller's queue; one naming an agent that cannot ring (1001, never
//! registered) ends the subscription with `480` and leaves the caller with
//! the transferor.
//!
//! Without SIPp these tests fail (see `common::require`).

mod common;

use common::sipp::{run_sipp, run_sipp_at, sipp_or_skip, SippRun};
use common::{ConfigSpec, Daemon};
use sipacd::cdr::{CdrFilter, CdrStore, Disposition};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// The one finished call record in `d`'s store.
fn final_record(d: &Daemon) -> sipacd::cdr::CallRecord {
    let data = d.cfg.root().join("data");
    let mut rec = None;
    common::wait_until("the final call record", Duration::from_secs(10), || {
        let store = CdrStore::open_reader(&data).expect("records");
        rec = store
            .query(&CdrFilter::default())
            .expect("query")
            .into_iter()
            .find(|r| r.ended_ms.is_some());
        rec.is_some()
    });
    rec.expect("record")
}

/// Agent, queue and transfer target of each leg of `rec`, in order.
fn legs(rec: &sipacd::cdr::CallRecord) -> Vec<(&str, Option<&str>, Option<&str>)> {
    rec.legs
        .iter()
        .map(|l| {
            (
                l.agent.as_str(),
                l.queue.as_deref(),
                l.transferred_to.as_deref(),
            )
        })
        .collect()
}

/// Two SIPp agents on static contacts: 2001 takes queue `support`, 2002
/// has no skill any queue asks for (only a transfer to its id reaches it).
fn two_agents(first: u16, second: u16) -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2001]\ncontact = \"sip:2001@127.0.0.1:{first}\"\nskills = {{ support = 5 }}\n\
         \n[agents.2002]\ncontact = \"sip:2002@127.0.0.1:{second}\"\nskills = {{ billing = 1 }}\n"
    );
    spec
}

#[test]
fn a_sipp_agent_transfers_its_caller_to_an_agent_id_and_that_agent_answers() {
    if !sipp_or_skip() {
        return;
    }
    let (first, second) = (common::free_port(), common::free_port());
    let d = Daemon::start_with(two_agents(first, second));
    let port = d.sip_port();
    let transferor = std::thread::spawn(move || {
        run_sipp_at(
            first,
            port,
            "agent_transfers_to_agent",
            &["-m", "2", "-key", "target", "2002"],
            T,
        )
    });
    let target = std::thread::spawn(move || {
        run_sipp_at(second, port, "agent_takes_direct_transfer", &["-m", "2"], T)
    });
    std::thread::sleep(Duration::from_millis(1500));
    let caller = run_sipp(port, "call_caller_waits", &["-s", "1500"], T);
    check("caller", &caller, &d);
    check("transferring agent", &transferor.join().expect("sipp"), &d);
    check("agent 2002", &target.join().expect("sipp"), &d);

    let rec = final_record(&d);
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    assert_eq!(rec.agent.as_deref(), Some("2002"), "{rec:?}");
    assert_eq!(
        legs(&rec),
        [
            ("2001", Some("support"), Some("agent:2002")),
            ("2002", Some("support"), None)
        ],
        "{rec:?}"
    );
    assert!(
        rec.legs[0].ended_ms <= Some(rec.legs[1].answered_ms),
        "legs in order: {rec:?}"
    );
    assert!(d.stderr().contains("blind transfer"), "{}", d.stderr());
}

#[test]
fn a_transfer_to_an_agent_that_cannot_ring_fails_with_480_and_the_caller_stays() {
    if !sipp_or_skip() {
        return;
    }
    let (first, second) = (common::free_port(), common::free_port());
    let d = Daemon::start_with(two_agents(first, second));
    let port = d.sip_port();
    // 1001 is configured but has never registered.
    let transferor = std::thread::spawn(move || {
        run_sipp_at(
            first,
            port,
            "agent_transfer_fails",
            &["-m", "2", "-key", "target", "1001"],
            T,
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    let caller = run_sipp(port, "call_caller_waits", &["-s", "1500"], T);
    check("caller", &caller, &d);
    check("transferring agent", &transferor.join().expect("sipp"), &d);

    let rec = final_record(&d);
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    assert_eq!(rec.agent.as_deref(), Some("2001"), "{rec:?}");
    assert_eq!(legs(&rec), [("2001", Some("support"), None)], "{rec:?}");
    assert!(
        d.stderr().contains("transfer to agent failed"),
        "{}",
        d.stderr()
    );
}

fn check(name: &str, run: &SippRun, d: &Daemon) {
    assert!(
        run.success(),
        "{name}: {}\n--- sipacd ---\n{}",
        run.report(),
        d.stderr()
    );
}

#[test]
fn a_sipp_agent_transfers_its_caller_to_another_queue_where_a_second_agent_answers() {
    if !sipp_or_skip() {
        return;
    }
    let (first, second) = (common::free_port(), common::free_port());
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[agents.2001]\ncontact = \"sip:2001@127.0.0.1:{first}\"\nskills = {{ support = 5 }}\n\
         \n[agents.2002]\ncontact = \"sip:2002@127.0.0.1:{second}\"\nskills = {{ billing = 1 }}\n\
         \n[queues.billing]\nskills = {{ billing = 1 }}\ntransfer_priority = 5\n\
         \n[[numbers]]\nnumber = \"1700\"\nto = \"queue:billing\"\n"
    );
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let transferor =
        std::thread::spawn(move || run_sipp_at(first, port, "agent_transfers", &["-m", "2"], T));
    let target = std::thread::spawn(move || {
        run_sipp_at(second, port, "agent_takes_transfer", &["-m", "2"], T)
    });
    // Both agents' pings answered: they are reachable before the call.
    std::thread::sleep(Duration::from_millis(1500));
    let caller = run_sipp(port, "call_caller_waits", &["-s", "1500"], T);
    check("caller", &caller, &d);
    check("transferring agent", &transferor.join().expect("sipp"), &d);
    check("second agent", &target.join().expect("sipp"), &d);

    let data = d.cfg.root().join("data");
    let mut rec = None;
    common::wait_until("the final call record", Duration::from_secs(10), || {
        let store = CdrStore::open_reader(&data).expect("records");
        rec = store
            .query(&CdrFilter::default())
            .expect("query")
            .into_iter()
            .find(|r| r.ended_ms.is_some());
        rec.is_some()
    });
    let rec = rec.expect("record");
    assert_eq!(rec.disposition, Disposition::Answered, "{rec:?}");
    assert_eq!(rec.agent.as_deref(), Some("2002"), "{rec:?}");
    assert_eq!(rec.queue.as_deref(), Some("billing"), "{rec:?}");
    let legs: Vec<(&str, Option<&str>, Option<&str>)> = rec
        .legs
        .iter()
        .map(|l| {
            (
                l.agent.as_str(),
                l.queue.as_deref(),
                l.transferred_to.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            ("2001", Some("support"), Some("queue:billing")),
            ("2002", Some("billing"), None)
        ],
        "{rec:?}"
    );
    assert!(
        rec.legs[0].ended_ms <= Some(rec.legs[1].answered_ms),
        "legs in order: {rec:?}"
    );
    assert!(d.stderr().contains("blind transfer"), "{}", d.stderr());
}
