//! ACD routing with real SIP peers: SIPp plays the caller and the agents'
//! softphones (static contacts; each also answers sipacd's OPTIONS ping), sipacd routes.
//! Refusals (486, 603) and a ring-out are played by SIPp agents; a raw-UDP
//! phone without the queue's skill checks that it is never offered the call.

mod common;

use common::phone::AgentPhone;
use common::sipp::{run_sipp, run_sipp_at, sipp_or_skip, SippRun};
use common::{ConfigSpec, Daemon};
use std::thread::JoinHandle;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn agent_toml(id: &str, port: u16, skill: u8) -> String {
    format!(
        "\n[agents.{id}]\ncontact = \"sip:{id}@127.0.0.1:{port}\"\nskills = {{ s = {skill} }}\n"
    )
}

/// Starts a SIPp agent on `port` playing `scenario`: one ping, one offer.
fn sipp_agent(port: u16, target: u16, scenario: &'static str) -> JoinHandle<SippRun> {
    std::thread::spawn(move || run_sipp_at(port, target, scenario, &["-m", "2"], T))
}

fn check(name: &str, run: &SippRun, d: &Daemon) {
    assert!(
        run.success(),
        "{name}: {}\n--- sipacd ---\n{}",
        run.report(),
        d.stderr()
    );
}

/// Most skilled first: 2001 answers 486, 2002 answers 603, 2003 (least
/// skilled of the three) answers and talks until the caller hangs up. The
/// phone with too low a skill is never offered the call, and neither
/// refusing agent is offered it twice (each SIPp agent plays one call).
#[test]
fn refused_by_two_sipp_agents_the_call_reaches_the_third() {
    if !sipp_or_skip() {
        return;
    }
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let mut low = AgentPhone::new("2004");
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "{}{}{}{}\n[queues.agents]\nskills = {{ s = 3 }}\nstrategy = \"most_skilled\"\n\
         \n[[numbers]]\nnumber = \"1810\"\nto = \"queue:agents\"\n",
        agent_toml("2001", ports[0], 9),
        agent_toml("2002", ports[1], 7),
        agent_toml("2003", ports[2], 5),
        low.toml("skills = { s = 2 }"),
    );
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let busy = sipp_agent(ports[0], port, "agent_refuses");
    let decline = sipp_agent(ports[1], port, "agent_declines");
    let answers = sipp_agent(ports[2], port, "agent_answers");
    std::thread::sleep(Duration::from_millis(500));
    let caller = run_sipp(port, "call_caller_waits", &["-s", "1810"], T);
    check("caller", &caller, &d);
    check("486 agent", &busy.join().unwrap(), &d);
    check("603 agent", &decline.join().unwrap(), &d);
    check("answering agent", &answers.join().unwrap(), &d);
    low.expect_no_invite(Duration::from_millis(200), "its skill is below the queue's");
    let log = d.stderr();
    assert!(log.contains("agent answered"), "no bridge logged:\n{log}");
}

/// The first agent rings until `ring_timeout_s`: sipacd CANCELs it (the
/// SIPp phone answers 200 and 487) and offers the call to the next agent,
/// who answers.
#[test]
fn a_sipp_agent_that_rings_out_is_cancelled_and_the_next_answers() {
    if !sipp_or_skip() {
        return;
    }
    let ports: Vec<u16> = (0..2).map(|_| common::free_port()).collect();
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "{}{}\n[queues.agents]\nskills = {{ s = 1 }}\nstrategy = \"most_skilled\"\nring_timeout_s = 1\n\
         \n[[numbers]]\nnumber = \"1811\"\nto = \"queue:agents\"\n",
        agent_toml("2011", ports[0], 9),
        agent_toml("2012", ports[1], 5),
    );
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let rings = sipp_agent(ports[0], port, "agent_rings_out");
    let answers = sipp_agent(ports[1], port, "agent_answers");
    std::thread::sleep(Duration::from_millis(500));
    let caller = run_sipp(port, "call_caller_waits", &["-s", "1811"], T);
    check("caller", &caller, &d);
    check("ringing agent", &rings.join().unwrap(), &d);
    check("answering agent", &answers.join().unwrap(), &d);
    let log = d.stderr();
    assert!(log.contains("agent answered"), "no bridge logged:\n{log}");
}
