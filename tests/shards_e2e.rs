//! The daemon on four signalling shards (`TOKIO_WORKER_THREADS=4`): callers
//! spread over the shards by Call-ID, two agents' phones take them one at a
//! time, and an agent freed by a call on one shard takes a caller waiting on
//! another. Halfway, a reload (SIGHUP) parks every shard, reloads the
//! shared router and resumes them: no waiting caller is lost. `/metrics`
//! shows routing decisions made on each shard that owns a caller, and the
//! handovers between shards.

mod common;

use common::phone::{AgentPhone, Caller};
use common::{ConfigSpec, Daemon};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const SHARDS: usize = 4;
const CALLERS: usize = 8;
const T: Duration = Duration::from_secs(5);

fn metrics(d: &Daemon) -> String {
    let url = format!("{}/metrics", d.admin_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() })
}

/// The value of the sample `name` exactly (labels included), 0 if absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The caller (by its From user `cN`) an agent's INVITE offers.
fn caller_of(invite: &str) -> usize {
    let from = invite
        .lines()
        .find(|l| l.starts_with("From:"))
        .unwrap_or_else(|| panic!("no From in:\n{invite}"));
    let user = from
        .split("<sip:c")
        .nth(1)
        .and_then(|r| r.split('@').next());
    user.and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not one of our callers: {from}"))
}

#[test]
fn callers_on_every_shard_reach_agents_freed_on_other_shards() {
    let mut agents = [AgentPhone::new("2001"), AgentPhone::new("2002")];
    let mut spec = ConfigSpec::new();
    spec.env = vec![("TOKIO_WORKER_THREADS".into(), SHARDS.to_string())];
    spec.extra = format!(
        "{}{}\n[queues.q]\nskills = {{ s = 1 }}\nstrategy = \"longest_idle\"\n\n\
         [[numbers]]\nnumber = \"1900\"\nto = \"queue:q\"\n",
        agents[0].toml("skills = { s = 5 }"),
        agents[1].toml("skills = { s = 5 }"),
    );
    let mut d = Daemon::start_with(spec);
    assert!(
        d.wait_for_log(T, |l| l.contains("signalling shards")
            && l.contains("shards=4")),
        "daemon did not start 4 shards:\n{}",
        d.stderr()
    );
    let port = d.sip_port();
    let mut callers: Vec<Caller> = (0..CALLERS)
        .map(|i| Caller::dial_from(port, "1900", &format!("c{i}")))
        .collect();
    let shard_of = |c: &Caller| sipacd::endpoint::shard_of_call_id(&c.call_id, SHARDS);
    let owners: BTreeSet<usize> = callers.iter().map(shard_of).collect();

    // Each agent answers its offer; its caller hangs up; the agent, freed
    // on that caller's shard, is offered the longest waiting caller.
    let mut served: Vec<Vec<usize>> = vec![Vec::new(), Vec::new()];
    let mut talking: HashMap<usize, usize> = HashMap::new();
    let mut reloaded = false;
    while served.iter().map(Vec::len).sum::<usize>() < CALLERS {
        if !reloaded && served.iter().map(Vec::len).sum::<usize>() >= CALLERS / 2 {
            // Callers still wait on several shards: reload with a changed
            // queue (the router is rebuilt) and go on.
            d.cfg.spec.extra = d.cfg.spec.extra.replace("longest_idle", "fewest_calls");
            d.cfg.write();
            d.signal("HUP");
            assert!(
                d.wait_for_log(T, |l| l.contains("reload applied")),
                "reload not applied:\n{}",
                d.stderr()
            );
            reloaded = true;
        }
        for (a, phone) in agents.iter_mut().enumerate() {
            if talking.contains_key(&a) {
                continue;
            }
            if let Some(inv) = phone.expect_invite(Duration::from_millis(300)) {
                let c = caller_of(&inv);
                phone.answer(&inv);
                assert!(
                    served.iter().all(|s| !s.contains(&c)),
                    "caller c{c} offered twice"
                );
                served[a].push(c);
                talking.insert(a, c);
            }
        }
        assert!(
            !talking.is_empty(),
            "no agent was offered a call; served so far {served:?}\n{}",
            d.stderr()
        );
        for (a, c) in std::mem::take(&mut talking) {
            callers[c].bye();
            assert!(
                agents[a].expect_bye(T).is_some(),
                "agent {a} got no BYE after caller c{c} hung up"
            );
        }
    }
    let all: BTreeSet<usize> = served.iter().flatten().copied().collect();
    assert_eq!(
        all.len(),
        CALLERS,
        "every caller reached an agent once: {served:?}"
    );

    // A caller taken by an agent freed on another shard is a handover.
    let cross = served
        .iter()
        .flat_map(|s| s.windows(2))
        .filter(|w| shard_of(&callers[w[0]]) != shard_of(&callers[w[1]]))
        .count();
    let text = metrics(&d);
    for s in &owners {
        let name = format!("sipacd_routing_decisions_by_shard_total{{shard=\"{s}\"}}");
        assert!(
            sample(&text, &name) > 0.0,
            "no decision on shard {s}:\n{text}"
        );
    }
    let handovers = sample(&text, "sipacd_routing_handovers_total");
    eprintln!("served by agent {served:?}; shards owning callers {owners:?}; {cross} cross-shard picks; {handovers} handovers");
    assert!(
        handovers >= cross as f64,
        "{cross} callers went to agents freed on another shard, {handovers} handovers counted"
    );
    assert!(
        owners.len() > 1 && cross > 0,
        "the callers' Call-IDs did not spread over shards ({owners:?}): nothing was tested"
    );
}
