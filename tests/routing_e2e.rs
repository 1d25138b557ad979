//! End-to-end routing through the running daemon: raw-UDP callers dial
//! numbers routed to queues and raw-UDP agent phones (static contacts) get,
//! or do not get, the offers the ACD rules call for: skills, shifts in the
//! agent's zone, closed queues, ring no answer, overflow, relax steps,
//! hang-ups while queued or ringing, refusals and wrap-up.
//!
//! Time-dependent configs are built around the current time (schedules in
//! UTC, shifts in Asia/Tokyo), so no clock is faked.

mod common;

use chrono::{Duration as Minutes, Timelike, Utc};
use common::phone::{AgentPhone, Caller};
use common::sip::header;
use common::{ConfigSpec, Daemon};
use std::time::{Duration, Instant};

/// An offer that should come now: generous for a loaded CI machine.
const OFFER: Duration = Duration::from_secs(5);
/// How long we watch for an offer that must not come.
const QUIET: Duration = Duration::from_millis(1500);

fn number(n: &str, to: &str) -> String {
    format!("\n[[numbers]]\nnumber = \"{n}\"\nto = \"{to}\"\n")
}

fn start(extra: String) -> Daemon {
    let mut spec = ConfigSpec::new();
    spec.extra = extra;
    Daemon::start_with(spec)
}

/// `mon-sun HH:MM-HH:MM` from `from` to `to` minutes around `now` (wraps
/// past midnight as the schedule syntax allows).
fn window<Tz: chrono::TimeZone>(now: &chrono::DateTime<Tz>, from: i64, to: i64) -> String {
    let a = now.clone() + Minutes::minutes(from);
    let b = now.clone() + Minutes::minutes(to);
    format!(
        "mon-sun {:02}:{:02}-{:02}:{:02}",
        a.hour(),
        a.minute(),
        b.hour(),
        b.minute()
    )
}

fn queue_of(invite: &str) -> &str {
    header(invite, "X-Sipacd-Queue", None).unwrap_or_default()
}

fn from_of(invite: &str) -> &str {
    header(invite, "From", Some("f")).unwrap_or_default()
}

#[test]
fn the_agent_with_the_needed_skill_gets_the_call() {
    let mut low = AgentPhone::new("2001");
    let mut none = AgentPhone::new("2002");
    let mut good = AgentPhone::new("2003");
    let extra = [
        low.toml("skills = { spanish = 3 }"),
        none.toml("skills = { english = 9 }"),
        good.toml("skills = { spanish = 7 }"),
        "\n[queues.spanish]\nskills = { spanish = 5 }\nwrapup_s = 0\n".into(),
        number("2900", "queue:spanish"),
    ]
    .concat();
    let d = start(extra);

    let mut c1 = Caller::dial_from(d.sip_port(), "2900", "7000001");
    let inv = good.expect_invite(OFFER).expect("skilled agent offered");
    assert_eq!(queue_of(&inv), "spanish");
    assert!(from_of(&inv).contains("7000001"), "{inv}");
    good.answer(&inv);

    // The skilled agent is busy: a second caller waits rather than going to
    // an agent with too low a level or without the skill.
    let mut c2 = Caller::dial_from(d.sip_port(), "2900", "7000002");
    low.expect_no_invite(QUIET, "with spanish=3 for a queue needing 5");
    none.expect_no_invite(Duration::from_millis(100), "without the skill");

    // Once free (no wrap-up), the skilled agent gets the waiting caller.
    c1.bye();
    assert!(good.expect_bye(OFFER).is_some());
    let inv2 = good.expect_invite(OFFER).expect("waiting caller offered");
    assert!(from_of(&inv2).contains("7000002"), "{inv2}");
    c2.bye();
    assert!(good.expect_cancel(OFFER).is_some());
    low.expect_no_invite(Duration::from_millis(100), "at all");
    none.expect_no_invite(Duration::from_millis(100), "at all");
}

#[test]
fn an_agent_off_shift_in_its_zone_is_skipped() {
    let tokyo = Utc::now().with_timezone(&chrono_tz::Asia::Tokyo);
    let mut off = AgentPhone::new("2101");
    let mut on = AgentPhone::new("2102");
    // `most_skilled` would pick the off-shift agent if shifts were ignored.
    let extra = [
        off.toml(&format!(
            "skills = {{ night = 10 }}\ntimezone = \"Asia/Tokyo\"\nshift = [\"{}\"]",
            window(&tokyo, 60, 120)
        )),
        on.toml(&format!(
            "skills = {{ night = 2 }}\ntimezone = \"Asia/Tokyo\"\nshift = [\"{}\"]",
            window(&tokyo, -60, 60)
        )),
        "\n[queues.night]\nskills = { night = 1 }\nstrategy = \"most_skilled\"\n".into(),
        number("2910", "queue:night"),
    ]
    .concat();
    let d = start(extra);

    let _c1 = Caller::dial(d.sip_port(), "2910");
    let inv = on.expect_invite(OFFER).expect("on-shift agent offered");
    assert_eq!(queue_of(&inv), "night");
    on.answer(&inv);
    let _c2 = Caller::dial(d.sip_port(), "2910");
    off.expect_no_invite(QUIET, "outside its Tokyo shift");
}

#[test]
fn a_closed_queue_sends_callers_to_its_closed_branch() {
    let now = Utc::now();
    let mut agent = AgentPhone::new("2201");
    let extra = [
        agent.toml(""),
        format!(
            "\n[schedules.gone]\ntimezone = \"UTC\"\nopen = [\"{}\"]\n",
            window(&now, -120, -60)
        ),
        format!(
            "\n[schedules.here]\ntimezone = \"UTC\"\nopen = [\"{}\"]\n",
            window(&now, -60, 60)
        ),
        "\n[queues.shut]\nschedule = \"gone\"\nclosed = \"ivr:bye\"\n".into(),
        "\n[queues.open]\nschedule = \"here\"\nclosed = \"ivr:bye\"\n".into(),
        number("2920", "queue:shut"),
        number("2921", "queue:open"),
    ]
    .concat();
    let d = start(extra);

    let shut = Caller::dial(d.sip_port(), "2920");
    assert!(
        shut.expect_bye(OFFER).is_some(),
        "the closed branch (a hangup node) should hang up"
    );
    agent.expect_no_invite(Duration::from_millis(500), "from a closed queue");

    // The same agent and branch, with a schedule open now: routed.
    let _open = Caller::dial(d.sip_port(), "2921");
    let inv = agent.expect_invite(OFFER).expect("open queue routes");
    assert_eq!(queue_of(&inv), "open");
}

#[test]
fn ring_no_answer_reoffers_and_pauses_the_agent() {
    let mut first = AgentPhone::new("2301");
    let mut second = AgentPhone::new("2302");
    let extra = [
        first.toml("skills = { rona = 9 }"),
        second.toml("skills = { rona = 5 }"),
        "\n[queues.rona]\nskills = { rona = 1 }\nstrategy = \"most_skilled\"\n\
         ring_timeout_s = 1\nwrapup_s = 0\n"
            .into(),
        number("2930", "queue:rona"),
    ]
    .concat();
    let d = start(extra);

    let _c1 = Caller::dial_from(d.sip_port(), "2930", "7000001");
    first.expect_invite(OFFER).expect("most skilled offered");
    let rang = Instant::now();
    assert!(first.expect_cancel(OFFER).is_some(), "no CANCEL after RONA");
    assert!(
        rang.elapsed() >= Duration::from_millis(800),
        "cancelled after {:?}, before ring_timeout_s",
        rang.elapsed()
    );
    let inv = second.expect_invite(OFFER).expect("re-offered to the next");
    assert!(from_of(&inv).contains("7000001"), "{inv}");
    second.answer(&inv);

    // The first agent is paused (rona): the next caller waits for it in vain.
    let _c2 = Caller::dial_from(d.sip_port(), "2930", "7000002");
    first.expect_no_invite(QUIET, "while paused for ring no answer");
    assert!(
        d.wait_for_log(Duration::from_secs(1), |l| l.contains("rona")
            && l.contains("2301")),
        "no rona pause logged for 2301:\n{}",
        d.stderr()
    );
}

#[test]
fn max_wait_overflows_to_another_queue() {
    let mut agent = AgentPhone::new("2401");
    let extra = [
        agent.toml("skills = { vulcan = 5 }"),
        "\n[queues.first]\nskills = { klingon = 5 }\nmax_wait_s = 1\noverflow = \"queue:other\"\n"
            .into(),
        "\n[queues.other]\nskills = { vulcan = 1 }\n".into(),
        number("2940", "queue:first"),
    ]
    .concat();
    let d = start(extra);

    let _c = Caller::dial(d.sip_port(), "2940");
    let queued = Instant::now();
    let inv = agent.expect_invite(OFFER).expect("offered after overflow");
    assert_eq!(queue_of(&inv), "other");
    assert!(
        queued.elapsed() >= Duration::from_millis(900),
        "overflowed after {:?}, before max_wait_s",
        queued.elapsed()
    );
}

#[test]
fn a_relax_step_lets_a_lower_skilled_agent_take_a_long_waiting_caller() {
    let mut agent = AgentPhone::new("2501");
    let extra = [
        agent.toml("skills = { billing = 3 }"),
        "\n[queues.billing]\nskills = { billing = 8 }\n\
         relax = [{ after_s = 1, skills = { billing = 1 } }]\n"
            .into(),
        number("2950", "queue:billing"),
    ]
    .concat();
    let d = start(extra);

    let _c = Caller::dial(d.sip_port(), "2950");
    let queued = Instant::now();
    let inv = agent.expect_invite(OFFER).expect("offered after relax");
    assert!(
        queued.elapsed() >= Duration::from_millis(900),
        "offered after {:?}, before the relax step",
        queued.elapsed()
    );
    assert_eq!(queue_of(&inv), "billing");
    let wait: u64 = header(&inv, "X-Sipacd-Wait", None)
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "X-Sipacd-Wait {wait}");
}

#[test]
fn a_caller_who_hangs_up_while_queued_is_never_offered() {
    let mut agent = AgentPhone::new("2601");
    let extra = [
        agent.toml("skills = { hq = 5 }"),
        "\n[queues.hq]\nskills = { hq = 1 }\nwrapup_s = 0\n".into(),
        number("2960", "queue:hq"),
    ]
    .concat();
    let d = start(extra);

    let mut c1 = Caller::dial_from(d.sip_port(), "2960", "7000001");
    let inv = agent.expect_invite(OFFER).expect("first caller offered");
    agent.answer(&inv);
    // The agent is busy: the second caller waits, then gives up.
    let mut c2 = Caller::dial_from(d.sip_port(), "2960", "7000002");
    std::thread::sleep(Duration::from_millis(300));
    c2.bye();
    // The agent frees up: nobody is left to offer.
    c1.bye();
    assert!(agent.expect_bye(OFFER).is_some());
    agent.expect_no_invite(QUIET, "for a caller who had hung up");
    // Still available: a new caller does reach it.
    let _c3 = Caller::dial_from(d.sip_port(), "2960", "7000003");
    let inv3 = agent.expect_invite(OFFER).expect("third caller offered");
    assert!(from_of(&inv3).contains("7000003"), "{inv3}");
}

#[test]
fn a_caller_who_hangs_up_while_the_agent_rings_cancels_the_offer() {
    let mut agent = AgentPhone::new("2611");
    let extra = [
        agent.toml("skills = { hq = 5 }"),
        "\n[queues.hq]\nskills = { hq = 1 }\nwrapup_s = 0\n".into(),
        number("2961", "queue:hq"),
    ]
    .concat();
    let d = start(extra);

    let mut c = Caller::dial(d.sip_port(), "2961");
    let inv = agent.expect_invite(OFFER).expect("offered");
    c.bye();
    let cancel = agent.expect_cancel(OFFER).expect("CANCEL to the agent");
    assert_eq!(
        header(&cancel, "Call-ID", Some("i")),
        header(&inv, "Call-ID", Some("i"))
    );
    agent.expect_no_invite(QUIET, "after the caller left");
}

#[test]
fn busy_here_reoffers_to_another_agent() {
    let mut busy = AgentPhone::new("2701");
    let mut other = AgentPhone::new("2702");
    let extra = [
        busy.toml("skills = { busy = 9 }"),
        other.toml("skills = { busy = 5 }"),
        "\n[queues.busy]\nskills = { busy = 1 }\nstrategy = \"most_skilled\"\n".into(),
        number("2970", "queue:busy"),
    ]
    .concat();
    let d = start(extra);

    let _c = Caller::dial_from(d.sip_port(), "2970", "7000001");
    let inv = busy.expect_invite(OFFER).expect("most skilled offered");
    busy.refuse(&inv, 486);
    let inv2 = other.expect_invite(OFFER).expect("re-offered after 486");
    assert!(from_of(&inv2).contains("7000001"), "{inv2}");
    other.answer(&inv2);
    busy.expect_no_invite(Duration::from_millis(300), "again once answered");
}

#[test]
fn decline_reoffers_to_an_agent_that_did_not_refuse() {
    let mut decline = AgentPhone::new("2711");
    let mut other = AgentPhone::new("2712");
    let extra = [
        decline.toml("skills = { busy = 9 }"),
        other.toml("skills = { busy = 5 }"),
        "\n[queues.busy]\nskills = { busy = 1 }\nstrategy = \"most_skilled\"\n".into(),
        number("2971", "queue:busy"),
    ]
    .concat();
    let d = start(extra);

    let _c = Caller::dial_from(d.sip_port(), "2971", "7000001");
    let inv = decline.expect_invite(OFFER).expect("most skilled offered");
    decline.refuse(&inv, 603);
    let inv2 = other.expect_invite(OFFER).expect("re-offered after 603");
    assert!(from_of(&inv2).contains("7000001"), "{inv2}");
}

/// A call refused by A (486) then B (603) goes to idle C, not back to A:
/// each refusal keeps that agent from the same caller for `retry_s`.
#[test]
fn a_call_refused_twice_goes_to_a_third_agent() {
    let mut busy = AgentPhone::new("2721");
    let mut decline = AgentPhone::new("2722");
    let mut other = AgentPhone::new("2723");
    let extra = [
        busy.toml("skills = { busy = 9 }"),
        decline.toml("skills = { busy = 7 }"),
        other.toml("skills = { busy = 5 }"),
        "\n[queues.busy]\nskills = { busy = 1 }\nstrategy = \"most_skilled\"\n".into(),
        number("2972", "queue:busy"),
    ]
    .concat();
    let d = start(extra);

    let _c = Caller::dial_from(d.sip_port(), "2972", "7000001");
    let inv = busy.expect_invite(OFFER).expect("most skilled offered");
    busy.refuse(&inv, 486);
    let inv2 = decline.expect_invite(OFFER).expect("re-offered after 486");
    decline.refuse(&inv2, 603);
    let inv3 = other
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("not re-offered to the third agent:\n{}", d.stderr()));
    assert!(from_of(&inv3).contains("7000001"), "{inv3}");
    busy.expect_no_invite(Duration::from_millis(100), "again after refusing");
}

#[test]
fn wrapup_keeps_the_agent_from_new_offers() {
    let mut agent = AgentPhone::new("2801");
    let extra = [
        agent.toml("skills = { wu = 5 }"),
        "\n[queues.wu]\nskills = { wu = 1 }\nwrapup_s = 2\n".into(),
        number("2980", "queue:wu"),
    ]
    .concat();
    let d = start(extra);

    let mut c1 = Caller::dial(d.sip_port(), "2980");
    let inv = agent.expect_invite(OFFER).expect("offered");
    agent.answer(&inv);
    let ended = Instant::now();
    c1.bye();
    assert!(agent.expect_bye(OFFER).is_some());
    let _c2 = Caller::dial_from(d.sip_port(), "2980", "7000002");
    let inv2 = agent.expect_invite(OFFER).expect("offered after wrap-up");
    let after = ended.elapsed();
    assert!(
        after >= Duration::from_millis(1900),
        "offered {after:?} after the call ended, within wrapup_s"
    );
    assert!(from_of(&inv2).contains("7000002"), "{inv2}");
}
