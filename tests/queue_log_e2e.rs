//! `server.queue_log` against the running binary: an answered call, an
//! abandoned one, an overflow (max_wait_s), an agent paused and unpaused
//! over the API, and a ring-no-answer leave the lines Asterisk would
//! write, in `epoch|callid|queue|agent|event|data...` form.

mod common;

use common::phone::{AgentPhone, Caller};
use common::sip::call_id;
use common::{ConfigSpec, Daemon};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(10);

fn post_state(admin: &str, body: &'static str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{admin}/api/v1/agents/2001/state"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn queue_log_lines_for_answered_abandoned_and_overflowed_calls() {
    let t0 = epoch();
    let mut agent = AgentPhone::new("2001");
    let mut spec = ConfigSpec::new();
    spec.server_extra = "queue_log = \"queue_log\"\n".into();
    spec.extra = format!(
        "{}\n[queues.short]\nskills = {{ sales = 1 }}\nmax_wait_s = 1\noverflow = \"hangup\"\n\n\
         [[numbers]]\nnumber = \"1700\"\nto = \"queue:short\"\n\n\
         [queues.quick]\nskills = {{ support = 1 }}\nring_timeout_s = 1\n\n\
         [[numbers]]\nnumber = \"1800\"\nto = \"queue:quick\"\n",
        agent.toml("skills = { support = 3 }")
    );
    let d = Daemon::start_with(spec);
    let path = d.cfg.root().join("data/queue_log");

    // Answered; the caller hangs up after a second of talk.
    let mut answered = Caller::dial_from(d.sip_port(), "1500", "5550001");
    let inv = agent.expect_invite(WAIT).expect("offer to 2001");
    agent.answer(&inv);
    let agent_leg = call_id(&inv).unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1100));
    answered.bye();
    assert!(agent.expect_bye(WAIT).is_some(), "agent got no BYE");

    // Paused for lunch; a caller waits over a second and gives up.
    assert_eq!(
        post_state(&d.admin_url(), r#"{"state":"paused","reason":"lunch"}"#),
        200
    );
    let mut abandoned = Caller::dial_from(d.sip_port(), "1500", "5550002");
    std::thread::sleep(Duration::from_millis(1200));
    abandoned.bye();

    // Nobody has `sales`: after max_wait_s the caller is sent on.
    let overflowed = Caller::dial_from(d.sip_port(), "1700", "5550003");
    assert!(
        overflowed.expect_bye(WAIT).is_some(),
        "no BYE after max_wait_s"
    );
    assert_eq!(post_state(&d.admin_url(), r#"{"state":"available"}"#), 200);

    // Ring no answer: 2001 lets the offer ring out (ring_timeout_s = 1),
    // is paused `rona`; the caller then gives up.
    let mut unanswered = Caller::dial_from(d.sip_port(), "1800", "5550004");
    assert!(agent.expect_invite(WAIT).is_some(), "offer to 2001");
    assert!(
        agent.expect_cancel(WAIT).is_some(),
        "no CANCEL after ring_timeout_s"
    );
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&path)
        .unwrap_or_default()
        .contains("|rona")
    {
        assert!(Instant::now() < deadline, "no rona pause logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    unanswered.bye();

    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let done = text
            .lines()
            .any(|l| l.contains(&unanswered.call_id) && l.contains("|ABANDON|"));
        if done || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("queue_log:\n{text}");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    for l in &lines {
        assert!(l.len() >= 5, "short line {l:?} in:\n{text}");
        let at: u64 = l[0].parse().unwrap_or_else(|_| panic!("epoch in {l:?}"));
        assert!((t0..=epoch() + 1).contains(&at), "epoch {at} in {l:?}");
    }
    let of = |cid: &str| -> Vec<Vec<&str>> {
        lines
            .iter()
            .filter(|l| l[1] == cid)
            .map(|l| l[2..].to_vec())
            .collect()
    };
    let secs = |s: &str| -> u64 { s.parse().unwrap_or_else(|_| panic!("seconds `{s}`")) };

    assert_eq!(
        lines[0][1..],
        ["NONE", "NONE", "NONE", "QUEUESTART", ""],
        "{text}"
    );
    assert_eq!(
        lines[1][1..],
        ["NONE", "NONE", "2001", "AGENTLOGIN"],
        "{text}"
    );

    // queue, agent, event, data...
    let a = of(&answered.call_id);
    assert_eq!(a.len(), 3, "{text}");
    assert_eq!(a[0], ["support", "NONE", "ENTERQUEUE", "", "5550001", "1"]);
    assert_eq!(a[1][..3], ["support", "2001", "CONNECT"]);
    assert_eq!(a[1][4], agent_leg, "bridged call id");
    assert!(secs(a[1][3]) <= 1 && secs(a[1][5]) <= 1, "{:?}", a[1]);
    assert_eq!(a[2][..3], ["support", "2001", "COMPLETECALLER"]);
    assert!(secs(a[2][3]) <= 1, "holdtime {:?}", a[2]);
    assert!((1..=3).contains(&secs(a[2][4])), "calltime {:?}", a[2]);
    assert_eq!(a[2][5], "1", "origposition");

    let b = of(&abandoned.call_id);
    assert_eq!(b.len(), 2, "{text}");
    assert_eq!(b[0], ["support", "NONE", "ENTERQUEUE", "", "5550002", "1"]);
    assert_eq!(b[1][..5], ["support", "NONE", "ABANDON", "1", "1"]);
    assert!((1..=3).contains(&secs(b[1][5])), "waittime {:?}", b[1]);

    let c = of(&overflowed.call_id);
    assert_eq!(c.len(), 2, "{text}");
    assert_eq!(c[0], ["short", "NONE", "ENTERQUEUE", "", "5550003", "1"]);
    assert_eq!(c[1][..5], ["short", "NONE", "EXITWITHTIMEOUT", "1", "1"]);
    assert!((1..=3).contains(&secs(c[1][5])), "waittime {:?}", c[1]);

    let r = of(&unanswered.call_id);
    assert_eq!(r.len(), 3, "{text}");
    assert_eq!(r[0], ["quick", "NONE", "ENTERQUEUE", "", "5550004", "1"]);
    assert_eq!(r[1][..3], ["quick", "2001", "RINGNOANSWER"]);
    let ring_ms = secs(r[1][3]);
    assert!((1000..5000).contains(&ring_ms), "ringtime {:?}", r[1]);
    assert_eq!(r[2][..5], ["quick", "NONE", "ABANDON", "1", "1"]);

    let agent_events: Vec<Vec<&str>> = of("NONE").into_iter().filter(|l| l[1] == "2001").collect();
    assert_eq!(
        agent_events,
        vec![
            vec!["NONE", "2001", "AGENTLOGIN"],
            vec!["NONE", "2001", "PAUSE", "lunch"],
            vec!["NONE", "2001", "UNPAUSE"],
            vec!["NONE", "2001", "PAUSE", "rona"],
        ],
        "{text}"
    );
}

/// Positions count the callers waiting on every signalling shard: four
/// callers whose Call-IDs go to alternating shards of a 2-shard daemon wait
/// (nobody is logged in), then hang up in another order.
#[test]
fn positions_count_callers_on_every_shard() {
    const SHARDS: usize = 2;
    let mut spec = ConfigSpec::new();
    spec.env = vec![("TOKIO_WORKER_THREADS".into(), SHARDS.to_string())];
    spec.server_extra = "queue_log = \"queue_log\"\n".into();
    let d = Daemon::start_with(spec);
    let path = d.cfg.root().join("data/queue_log");

    let mut callers: Vec<Caller> = (0..4)
        .map(|i| {
            let cid = (0..)
                .map(|n| format!("qpos-{i}-{n}"))
                .find(|c| sipacd::endpoint::shard_of_call_id(c, SHARDS) == i % SHARDS)
                .unwrap_or_default();
            let c = Caller::dial_as(d.sip_port(), "1500", &format!("555000{i}"), cid);
            std::thread::sleep(Duration::from_millis(20)); // arrival order
            c
        })
        .collect();
    // Leave in the order 3rd, 1st, 4th, 2nd: positions 3, 1, 2, 1.
    for i in [2, 0, 3, 1] {
        callers[i].bye();
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = callers[1].call_id.clone();
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let done = text
            .lines()
            .any(|l| l.contains(&last) && l.contains("|ABANDON|"));
        if done || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let field = |c: &Caller, event: &str, n: usize| -> String {
        text.lines()
            .map(|l| l.split('|').collect::<Vec<_>>())
            .find(|l| l[1] == c.call_id && l[4] == event)
            .and_then(|l| l.get(n).map(|f| f.to_string()))
            .unwrap_or_else(|| panic!("no {event} for {} in:\n{text}", c.call_id))
    };
    let origpos: Vec<String> = callers.iter().map(|c| field(c, "ENTERQUEUE", 7)).collect();
    assert_eq!(origpos, ["1", "2", "3", "4"], "{text}");
    let left: Vec<String> = [2, 0, 3, 1]
        .iter()
        .map(|i| field(&callers[*i], "ABANDON", 5))
        .collect();
    assert_eq!(left, ["3", "1", "2", "1"], "{text}");
}
