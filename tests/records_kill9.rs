//! A daemon killed with SIGKILL in the middle of a bridged call: after the
//! restart, the call's record still says which queue and agent it had and
//! when it was queued, offered and answered (the row written at the
//! answer), and is marked `interrupted`.

mod common;

use common::phone::{AgentPhone, Caller};
use common::{ConfigSpec, Daemon};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn a_bridged_call_cut_off_by_kill_9_keeps_its_agent_queue_and_times() {
    let mut agent = AgentPhone::new("2001");
    let mut spec = ConfigSpec::new();
    spec.extra = agent.toml("skills = { support = 3 }");
    let mut d = Daemon::start_with(spec);
    let caller = Caller::dial(d.sip_port(), "1500");
    let inv = agent.expect_invite(WAIT).expect("offer to 2001");
    agent.answer(&inv);
    // The answer's row goes through the record writer's next batch.
    let store_dir = d.cfg.root().join("data");
    common::wait_until("the answered row written", WAIT, || {
        let Ok(store) = sipacd::cdr::CdrStore::open_reader(&store_dir) else {
            return false;
        };
        store
            .query(&Default::default())
            .is_ok_and(|rows| rows.iter().any(|r| r.answered_ms.is_some()))
    });
    d.kill9_and_restart();
    drop(caller);
    let store = sipacd::cdr::CdrStore::open_reader(&store_dir).expect("records");
    let rows = store.query(&Default::default()).expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        r.disposition,
        sipacd::cdr::Disposition::Interrupted,
        "{r:?}"
    );
    assert_eq!(r.queue.as_deref(), Some("support"), "{r:?}");
    assert_eq!(r.agent.as_deref(), Some("2001"), "{r:?}");
    let (q, o, a) = (r.queued_ms, r.offered_ms, r.answered_ms);
    assert!(q.is_some() && o.is_some() && a.is_some(), "{r:?}");
    assert!(r.arrived_ms <= q.unwrap() && q <= o && o <= a, "{r:?}");
}
