//! End-to-end checks of the contract's `[schedules]`, `[agents]`, `[queues]`
//! and `[ivr]` rules that `tests/routing_e2e.rs`, `tests/ivr_media_e2e.rs`,
//! `tests/reload.rs` and `tests/demo_walk.rs` do not already drive through
//! the running daemon: menu options and retries, schedule and play nodes,
//! closed dates and windows crossing midnight, queue and caller priority,
//! `max_waiting`, overflow into an IVR node, `retry_s`, the strategies told
//! apart by a history that separates them, several skills at once, `ha1`
//! credentials, shifts crossing midnight, per-queue music, a queue closing
//! under its waiting callers, and a reload while an agent rings.
//!
//! Time-dependent configs are built around the current time; where a test
//! needs a given local hour it picks a fixed-offset zone (`Etc/GMT±N`) in
//! which it is that hour now, so no clock is faked.

mod common;

use chrono::{Datelike, Duration as Minutes, FixedOffset, Timelike, Utc};
use common::phone::{AgentPhone, Caller};
use common::sip::header;
use common::{ConfigSpec, Daemon, DOMAIN};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// An offer that should come now: generous for a loaded CI machine.
const OFFER: Duration = Duration::from_secs(5);
/// How long we watch for an offer that must not come.
const QUIET: Duration = Duration::from_millis(1000);

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn number(n: &str, to: &str) -> String {
    format!("\n[[numbers]]\nnumber = \"{n}\"\nto = \"{to}\"\n")
}

fn start(extra: String) -> Daemon {
    let mut spec = ConfigSpec::new();
    spec.extra = extra;
    Daemon::start_with(spec)
}

fn queue_of(invite: &str) -> &str {
    header(invite, "X-Sipacd-Queue", None).unwrap_or_default()
}

fn from_of(invite: &str) -> &str {
    header(invite, "From", Some("f")).unwrap_or_default()
}

/// `mon-sun HH:MM-HH:MM` from `from` to `to` minutes around now, in UTC.
fn utc_window(from: i64, to: i64) -> String {
    let now = Utc::now();
    let a = now + Minutes::minutes(from);
    let b = now + Minutes::minutes(to);
    format!(
        "mon-sun {:02}:{:02}-{:02}:{:02}",
        a.hour(),
        a.minute(),
        b.hour(),
        b.minute()
    )
}

/// A fixed-offset zone in which the local hour is `hour` now: its tz name
/// (`Etc/GMT-3` is UTC+3) and its offset.
fn zone_at_local_hour(hour: i64) -> (String, FixedOffset) {
    let mut o = hour - i64::from(Utc::now().hour());
    if o < -12 {
        o += 24;
    }
    if o > 14 {
        o -= 24;
    }
    let name = match o {
        0 => "Etc/GMT".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    (name, FixedOffset::east_opt((o * 3600) as i32).unwrap())
}

/// RTP packets the caller receives within `within` (stops at `enough`).
fn rtp_heard(caller: &Caller, enough: usize, within: Duration) -> usize {
    let s = caller.rtp_socket();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 2048];
    let mut n = 0;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && n < enough {
        if let Ok((len, _)) = s.recv_from(&mut buf) {
            if len > 12 && buf[0] >> 6 == 2 {
                n += 1;
            }
        }
    }
    n
}

/// Which of `phones` gets the next offer within [`OFFER`], and the INVITE.
fn offered(phones: &mut [&mut AgentPhone]) -> (usize, String) {
    let deadline = Instant::now() + OFFER;
    while Instant::now() < deadline {
        for (i, p) in phones.iter_mut().enumerate() {
            if let Some(inv) = p.expect_invite(Duration::from_millis(30)) {
                return (i, inv);
            }
        }
    }
    panic!("no agent was offered the call within {OFFER:?}");
}

/// Ends an answered call from the caller's side; the agent gets the BYE.
fn hang_up(caller: &mut Caller, agent: &mut AgentPhone) {
    caller.bye();
    assert!(agent.expect_bye(OFFER).is_some(), "agent leg not ended");
}

// ---------------------------------------------------------------- [ivr]

/// `menu`: option 2 among two reaches option 2's queue (through a `queue`
/// node), and option 1's agent is not offered the caller.
#[test]
fn a_menu_choice_reaches_the_queue_of_that_option_only() {
    let mut one = AgentPhone::new("3001");
    let mut two = AgentPhone::new("3002");
    let extra = [
        one.toml("skills = { one = 5 }"),
        two.toml("skills = { two = 5 }"),
        "\n[queues.first]\nskills = { one = 1 }\n[queues.second]\nskills = { two = 1 }\n".into(),
        number("3500", "ivr:pick"),
        r#"
[ivr.pick]
start = "menu"

[ivr.pick.nodes.menu]
type = "menu"
prompt = "moh.wav"
timeout_s = 5
retries = 1
options = { "1" = "queue:first", "2" = "to_second" }
on_fail = "ivr:bye"

[ivr.pick.nodes.to_second]
type = "queue"
queue = "second"
"#
        .into(),
    ]
    .concat();
    let d = start(extra);

    let c = Caller::dial_from(d.sip_port(), "3500", "7100002");
    std::thread::sleep(Duration::from_millis(200));
    c.press("2", 0);
    let inv = two
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("option 2's agent got no offer:\n{}", d.stderr()));
    assert_eq!(queue_of(&inv), "second");
    assert!(from_of(&inv).contains("7100002"), "{inv}");
    one.expect_no_invite(QUIET, "for a caller who pressed 2");
}

/// `menu` with `timeout_s` and `retries`: no digit replays the menu
/// `retries` times, each followed by `timeout_s`, then `on_fail` is taken.
#[test]
fn a_menu_without_a_choice_replays_then_takes_on_fail() {
    let mut agent = AgentPhone::new("3011");
    let extra = [
        agent.toml(""),
        "\n[queues.fallback]\n".into(),
        number("3510", "ivr:slow"),
        r#"
[ivr.slow]
start = "menu"

[ivr.slow.nodes.menu]
type = "menu"
prompt = "moh.wav"
timeout_s = 1
retries = 1
options = { "1" = "ivr:bye" }
on_fail = "queue:fallback"
"#
        .into(),
    ]
    .concat();
    let d = start(extra);

    let dialed = Instant::now();
    let c = Caller::dial(d.sip_port(), "3510");
    // The prompt (0.5 s) plays, and plays again after the first timeout.
    assert!(rtp_heard(&c, 10, OFFER) >= 10, "menu prompt not heard");
    let inv = agent
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("on_fail not taken:\n{}", d.stderr()));
    assert_eq!(queue_of(&inv), "fallback");
    // Two plays of 0.5 s and two timeouts of 1 s: 3 s. Without the replay
    // it would be 1.5 s.
    let took = dialed.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "on_fail after {took:?}: the menu was not replayed `retries` times"
    );
}

/// `menu`: a digit that is no option counts as a failure like a timeout:
/// with `retries = 1`, two wrong digits take `on_fail` without waiting for
/// the (long) `timeout_s`.
#[test]
fn wrong_menu_digits_count_as_failures() {
    let mut agent = AgentPhone::new("3016");
    let extra = [
        agent.toml(""),
        "\n[queues.fallback]\n".into(),
        number("3515", "ivr:strict"),
        r#"
[ivr.strict]
start = "menu"

[ivr.strict.nodes.menu]
type = "menu"
prompt = "moh.wav"
timeout_s = 60
retries = 1
options = { "1" = "ivr:bye" }
on_fail = "queue:fallback"
"#
        .into(),
    ]
    .concat();
    let d = start(extra);

    let c = Caller::dial(d.sip_port(), "3515");
    std::thread::sleep(Duration::from_millis(200));
    c.press("9", 0);
    agent.expect_no_invite(Duration::from_millis(700), "after one wrong digit of two");
    c.press("9", 1);
    let inv = agent
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("two wrong digits did not take on_fail:\n{}", d.stderr()));
    assert_eq!(queue_of(&inv), "fallback");
}

/// `schedule` node: `open` while its schedule is open, `closed` otherwise.
#[test]
fn an_ivr_schedule_node_branches_on_its_schedule() {
    let mut day = AgentPhone::new("3021");
    let mut night = AgentPhone::new("3022");
    let extra = [
        day.toml("skills = { day = 5 }"),
        night.toml("skills = { night = 5 }"),
        format!(
            "\n[schedules.now]\ntimezone = \"UTC\"\nopen = [\"{}\"]\n",
            utc_window(-60, 60)
        ),
        format!(
            "\n[schedules.past]\ntimezone = \"UTC\"\nopen = [\"{}\"]\n",
            utc_window(-120, -60)
        ),
        "\n[queues.dayq]\nskills = { day = 1 }\n[queues.nightq]\nskills = { night = 1 }\n".into(),
        number("3520", "ivr:open_now"),
        number("3521", "ivr:closed_now"),
        r#"
[ivr.open_now]
start = "hours"
[ivr.open_now.nodes.hours]
type = "schedule"
schedule = "now"
open = "queue:dayq"
closed = "queue:nightq"

[ivr.closed_now]
start = "hours"
[ivr.closed_now.nodes.hours]
type = "schedule"
schedule = "past"
open = "queue:dayq"
closed = "queue:nightq"
"#
        .into(),
    ]
    .concat();
    let d = start(extra);

    let _a = Caller::dial_from(d.sip_port(), "3520", "7100001");
    let inv = day.expect_invite(OFFER).expect("open branch taken");
    assert!(from_of(&inv).contains("7100001"), "{inv}");
    let _b = Caller::dial_from(d.sip_port(), "3521", "7100002");
    let inv = night.expect_invite(OFFER).expect("closed branch taken");
    assert!(from_of(&inv).contains("7100002"), "{inv}");
    day.expect_no_invite(Duration::from_millis(300), "from the closed branch");
}

/// `play` node: the prompt is heard, then `next` (a `hangup`) ends the call.
/// Reached as `ivr:IVR.NODE` from a closed queue: that node, not the IVR's
/// `start` (which would queue the caller to an agent).
#[test]
fn a_closed_queue_branch_to_an_ivr_node_plays_its_prompt_then_hangs_up() {
    let mut trap = AgentPhone::new("3031");
    let extra = [
        trap.toml(""),
        format!(
            "\n[schedules.past]\ntimezone = \"UTC\"\nopen = [\"{}\"]\n",
            utc_window(-120, -60)
        ),
        "\n[queues.shut]\nschedule = \"past\"\nclosed = \"ivr:info.msg\"\n\
         \n[queues.trapq]\n"
            .into(),
        number("3530", "queue:shut"),
        r#"
[ivr.info]
start = "wrong"
[ivr.info.nodes.wrong]
type = "queue"
queue = "trapq"
[ivr.info.nodes.msg]
type = "play"
prompt = "moh.wav"
next = "end"
[ivr.info.nodes.end]
type = "hangup"
"#
        .into(),
    ]
    .concat();
    let d = start(extra);

    let c = Caller::dial(d.sip_port(), "3530");
    // moh.wav is 0.5 s: 25 packets of 20 ms.
    let heard = rtp_heard(&c, 15, OFFER);
    assert!(
        heard >= 15,
        "only {heard} RTP packets of the play prompt:\n{}",
        d.stderr()
    );
    assert!(
        c.expect_bye(OFFER).is_some(),
        "no hangup after the play node:\n{}",
        d.stderr()
    );
    trap.expect_no_invite(Duration::from_millis(300), "from the IVR's start node");
}

/// A `queue` node's `priority` adds to the caller's: a later caller who came
/// through it is served before an earlier one who dialed the queue directly.
#[test]
fn an_ivr_queue_node_priority_serves_that_caller_first() {
    let mut agent = AgentPhone::new("3041");
    let extra = [
        agent.toml(""),
        "\n[queues.line]\nwrapup_s = 0\n".into(),
        number("3540", "queue:line"),
        number("3541", "ivr:vip"),
        "\n[ivr.vip]\nstart = \"in\"\n[ivr.vip.nodes.in]\ntype = \"queue\"\nqueue = \"line\"\npriority = 3\n"
            .into(),
    ]
    .concat();
    let d = start(extra);

    let mut busy = Caller::dial_from(d.sip_port(), "3540", "7100000");
    let inv = agent.expect_invite(OFFER).expect("first caller offered");
    agent.answer(&inv);
    let _plain = Caller::dial_from(d.sip_port(), "3540", "7100001");
    std::thread::sleep(Duration::from_millis(300));
    let _vip = Caller::dial_from(d.sip_port(), "3541", "7100002");
    std::thread::sleep(Duration::from_millis(300));
    hang_up(&mut busy, &mut agent);
    let inv = agent
        .expect_invite(OFFER)
        .expect("a waiting caller offered");
    assert!(
        from_of(&inv).contains("7100002"),
        "the priority-3 caller should come first:\n{inv}"
    );
}

// ---------------------------------------------------------- [schedules]

/// Windows whose end is not after their start cross midnight and belong to
/// the day they start; `closed_dates` close the windows that start on that
/// date (in the schedule's zone). The zone is chosen so that it is 01:xx
/// there now; a closed schedule diverts to the queue's `closed` target.
#[test]
fn closed_dates_and_windows_crossing_midnight() {
    let (tz, off) = zone_at_local_hour(1);
    let local = Utc::now().with_timezone(&off);
    let today = local.date_naive();
    let yesterday = today.pred_opt().unwrap();
    let wd = |d: chrono::NaiveDate| DAYS[d.weekday().num_days_from_monday() as usize];
    let sched = |name: &str, open: String, closed: &str| {
        format!("\n[schedules.{name}]\ntimezone = \"{tz}\"\nopen = [\"{open}\"]\nclosed_dates = [{closed}]\n")
    };
    let from_yesterday = format!("{} 22:00-04:00", wd(yesterday));
    let from_today = format!("{} 22:00-04:00", wd(today));
    let q = |name: &str, closed: &str| {
        format!("\n[queues.{name}]\nschedule = \"{name}\"\nclosed = \"{closed}\"\n")
    };
    let mut agent = AgentPhone::new("3051");
    let extra = [
        agent.toml(""),
        // Started yesterday 22:00 and runs to 04:00: open now.
        sched("overnight", from_yesterday.clone(), ""),
        // Starts tonight: not open now.
        sched("tonight", from_today, ""),
        // Today is a closed date, but the open window started yesterday.
        sched(
            "holiday_today",
            from_yesterday.clone(),
            &format!("\"{today}\""),
        ),
        // Yesterday was a closed date: the window it started is closed.
        sched("holiday_yday", from_yesterday, &format!("\"{yesterday}\"")),
        // Open all day every day, except today.
        sched(
            "all_day",
            "mon-sun 00:00-24:00".into(),
            &format!("\"{today}\""),
        ),
        q("overnight", "ivr:bye"),
        q("tonight", "queue:fallback"),
        q("holiday_today", "ivr:bye"),
        q("holiday_yday", "ivr:bye"),
        q("all_day", "ivr:bye"),
        "\n[queues.fallback]\n".into(),
        number("3550", "queue:overnight"),
        number("3551", "queue:tonight"),
        number("3552", "queue:holiday_today"),
        number("3553", "queue:holiday_yday"),
        number("3554", "queue:all_day"),
    ]
    .concat();
    let d = start(extra);
    let ctx = format!("zone {tz}, local {local}");

    let mut open = |num: &str, queue: &str| {
        let mut c = Caller::dial(d.sip_port(), num);
        let inv = agent
            .expect_invite(OFFER)
            .unwrap_or_else(|| panic!("{queue} should be open ({ctx}):\n{}", d.stderr()));
        assert_eq!(queue_of(&inv), queue, "{ctx}");
        c.bye();
        assert!(agent.expect_cancel(OFFER).is_some());
    };
    open("3550", "overnight");
    open("3552", "holiday_today");
    // Closed to `queue:fallback`: offered from there.
    open("3551", "fallback");

    for (num, queue) in [("3553", "holiday_yday"), ("3554", "all_day")] {
        let c = Caller::dial(d.sip_port(), num);
        assert!(
            c.expect_bye(OFFER).is_some(),
            "{queue} should be closed ({ctx}): its closed branch hangs up"
        );
        agent.expect_no_invite(Duration::from_millis(200), "from a closed queue");
    }
}

// ------------------------------------------------------------- [queues]

/// An agent serving two queues takes the caller of the higher `priority`
/// queue first, even one who has waited less.
#[test]
fn the_higher_priority_queue_is_served_first() {
    let mut agent = AgentPhone::new("3061");
    let extra = [
        agent.toml(""),
        "\n[queues.lo]\nwrapup_s = 0\n[queues.hi]\nwrapup_s = 0\npriority = 5\n".into(),
        number("3560", "queue:lo"),
        number("3561", "queue:hi"),
    ]
    .concat();
    let d = start(extra);

    let mut busy = Caller::dial_from(d.sip_port(), "3560", "7100000");
    let inv = agent.expect_invite(OFFER).expect("first caller offered");
    agent.answer(&inv);
    let _early = Caller::dial_from(d.sip_port(), "3560", "7100001");
    std::thread::sleep(Duration::from_millis(300));
    let _late = Caller::dial_from(d.sip_port(), "3561", "7100002");
    std::thread::sleep(Duration::from_millis(300));
    hang_up(&mut busy, &mut agent);
    let inv = agent
        .expect_invite(OFFER)
        .expect("a waiting caller offered");
    assert_eq!(queue_of(&inv), "hi", "{inv}");
    assert!(from_of(&inv).contains("7100002"), "{inv}");
}

/// `max_waiting`: the caller beyond it goes to `overflow` at once; the
/// callers within it stay.
#[test]
fn max_waiting_overflows_the_caller_beyond_it() {
    let mut agent = AgentPhone::new("3071");
    let extra = [
        agent.toml(""),
        "\n[queues.full]\nskills = { nobody = 1 }\nmax_waiting = 1\noverflow = \"queue:spill\"\n\
         \n[queues.spill]\n"
            .into(),
        number("3570", "queue:full"),
    ]
    .concat();
    let d = start(extra);

    let _first = Caller::dial_from(d.sip_port(), "3570", "7100001");
    agent.expect_no_invite(Duration::from_millis(500), "while one caller waits");
    let _second = Caller::dial_from(d.sip_port(), "3570", "7100002");
    let inv = agent
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("second caller not overflowed:\n{}", d.stderr()));
    assert_eq!(queue_of(&inv), "spill");
    assert!(from_of(&inv).contains("7100002"), "{inv}");
}

/// `overflow = "ivr:IVR.NODE"` on `max_wait_s` enters that node (here a
/// queue node), not the IVR's start.
#[test]
fn max_wait_overflows_into_an_ivr_node() {
    let mut agent = AgentPhone::new("3081");
    let extra = [
        agent.toml("skills = { spill = 5, trap = 5 }"),
        "\n[queues.slow]\nskills = { nobody = 1 }\nmax_wait_s = 1\noverflow = \"ivr:side.toq\"\n\
         \n[queues.spill]\nskills = { spill = 1 }\n[queues.trapq]\nskills = { trap = 1 }\n"
            .into(),
        number("3580", "queue:slow"),
        "\n[ivr.side]\nstart = \"wrong\"\n[ivr.side.nodes.wrong]\ntype = \"queue\"\nqueue = \"trapq\"\n\
         [ivr.side.nodes.toq]\ntype = \"queue\"\nqueue = \"spill\"\n"
            .into(),
    ]
    .concat();
    let d = start(extra);

    let _c = Caller::dial(d.sip_port(), "3580");
    let queued = Instant::now();
    let inv = agent
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("not overflowed:\n{}", d.stderr()));
    assert_eq!(queue_of(&inv), "spill");
    assert!(
        queued.elapsed() >= Duration::from_millis(900),
        "overflowed after {:?}, before max_wait_s",
        queued.elapsed()
    );
}

/// `retry_s`: a caller refused by the only free agent waits, and is offered
/// to that agent again once `retry_s` is over (not before).
#[test]
fn a_refused_caller_is_offered_again_after_retry_s() {
    let mut agent = AgentPhone::new("3091");
    let extra = [
        agent.toml(""),
        "\n[queues.rt]\nretry_s = 2\n".into(),
        number("3590", "queue:rt"),
    ]
    .concat();
    let d = start(extra);

    let _c = Caller::dial_from(d.sip_port(), "3590", "7100001");
    let inv = agent.expect_invite(OFFER).expect("offered");
    agent.refuse(&inv, 486);
    let refused = Instant::now();
    let again = agent
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("never offered again:\n{}", d.stderr()));
    assert!(from_of(&again).contains("7100001"), "{again}");
    assert!(
        refused.elapsed() >= Duration::from_millis(1800),
        "offered again {:?} after the refusal, within retry_s",
        refused.elapsed()
    );
}

/// Every skill the queue lists, each at least at its level (equal is
/// enough); an agent missing one, or below on one, is never offered.
#[test]
fn every_listed_skill_must_reach_its_level() {
    let mut missing = AgentPhone::new("3101");
    let mut low = AgentPhone::new("3102");
    let mut exact = AgentPhone::new("3103");
    let extra = [
        missing.toml("skills = { french = 10 }"),
        low.toml("skills = { french = 10, tax = 4 }"),
        exact.toml("skills = { french = 5, tax = 5 }"),
        // most_skilled would prefer the other two if they were eligible.
        "\n[queues.ftax]\nskills = { french = 5, tax = 5 }\nstrategy = \"most_skilled\"\n".into(),
        number("3600", "queue:ftax"),
    ]
    .concat();
    let d = start(extra);

    let _c = Caller::dial(d.sip_port(), "3600");
    let inv = exact.expect_invite(OFFER).expect("the agent with both");
    assert_eq!(queue_of(&inv), "ftax");
    exact.answer(&inv);
    let _c2 = Caller::dial(d.sip_port(), "3600");
    missing.expect_no_invite(QUIET, "without the tax skill");
    low.expect_no_invite(Duration::from_millis(100), "with tax 4 < 5");
}

/// `round_robin` resumes after the agent who took the last call, whatever
/// the order in which agents went idle (longest_idle would pick another).
#[test]
fn round_robin_resumes_after_the_last_agent_who_took_a_call() {
    let mut a = AgentPhone::new("3111");
    let mut b = AgentPhone::new("3112");
    let mut c = AgentPhone::new("3113");
    let extra = [
        a.toml(""),
        b.toml(""),
        c.toml(""),
        "\n[queues.rr]\nstrategy = \"round_robin\"\nwrapup_s = 0\n".into(),
        number("3610", "queue:rr"),
    ]
    .concat();
    let d = start(extra);
    let mut phones = [&mut a, &mut b, &mut c];

    // Three callers, kept up: each goes to another agent, in the
    // rotation's order.
    let mut calls = Vec::new();
    let mut took = Vec::new();
    for _ in 0..3 {
        let caller = Caller::dial(d.sip_port(), "3610");
        let (i, inv) = offered(&mut phones);
        phones[i].answer(&inv);
        calls.push(caller);
        took.push(i);
    }
    let mut distinct = took.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "three callers, three agents: {took:?}");
    // End the last-offered call first: the first agent offered is then the
    // one idle the shortest time, so only the rotation picks it next.
    for k in (0..3).rev() {
        hang_up(&mut calls[k], phones[took[k]]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let _next = Caller::dial(d.sip_port(), "3610");
    let (i, _) = offered(&mut phones);
    assert_eq!(
        i, took[0],
        "after the third agent took a call, the rotation goes back to the first \
         (offer order {took:?})"
    );
}

/// `fewest_calls` picks the agent with fewer answered calls even though the
/// other has been idle longer.
#[test]
fn fewest_calls_prefers_fewer_answered_calls_over_idle_time() {
    let mut p = AgentPhone::new("3121");
    let mut q = AgentPhone::new("3122");
    let extra = [
        p.toml(""),
        q.toml(""),
        "\n[queues.fc]\nstrategy = \"fewest_calls\"\nwrapup_s = 0\n".into(),
        number("3620", "queue:fc"),
    ]
    .concat();
    let d = start(extra);
    let mut phones = [&mut p, &mut q];

    // X takes and ends a call.
    let mut c1 = Caller::dial(d.sip_port(), "3620");
    let (x, inv) = offered(&mut phones);
    let y = 1 - x;
    phones[x].answer(&inv);
    hang_up(&mut c1, phones[x]);
    // Y (no calls yet) takes the next and keeps it.
    let mut c2 = Caller::dial(d.sip_port(), "3620");
    let (i, inv) = offered(&mut phones);
    assert_eq!(i, y, "the agent without calls first");
    phones[y].answer(&inv);
    // X takes a second call and ends it: X has 2 calls, idle since now.
    let mut c3 = Caller::dial(d.sip_port(), "3620");
    let (i, inv) = offered(&mut phones);
    assert_eq!(i, x);
    phones[x].answer(&inv);
    hang_up(&mut c3, phones[x]);
    std::thread::sleep(Duration::from_millis(200));
    // Y ends its call last: 1 call, idle the shortest time.
    hang_up(&mut c2, phones[y]);
    let _c4 = Caller::dial(d.sip_port(), "3620");
    let (i, _) = offered(&mut phones);
    assert_eq!(i, y, "fewest calls (1 vs 2) beats idle time");
}

/// `longest_idle` picks the agent idle the longest, not the next in a
/// rotation nor the one with fewer calls.
#[test]
fn longest_idle_prefers_the_agent_idle_longest() {
    let mut p = AgentPhone::new("3131");
    let mut q = AgentPhone::new("3132");
    let extra = [
        p.toml(""),
        q.toml(""),
        "\n[queues.li]\nstrategy = \"longest_idle\"\nwrapup_s = 0\n".into(),
        number("3630", "queue:li"),
    ]
    .concat();
    let d = start(extra);
    let mut phones = [&mut p, &mut q];

    let mut c1 = Caller::dial(d.sip_port(), "3630");
    let (x, inv) = offered(&mut phones);
    let y = 1 - x;
    phones[x].answer(&inv);
    let mut c2 = Caller::dial(d.sip_port(), "3630");
    let (i, inv) = offered(&mut phones);
    assert_eq!(i, y);
    phones[y].answer(&inv);
    // Y (who took the last call) ends first, X later: Y idle longest.
    hang_up(&mut c2, phones[y]);
    std::thread::sleep(Duration::from_millis(200));
    hang_up(&mut c1, phones[x]);
    let _c3 = Caller::dial(d.sip_port(), "3630");
    let (i, _) = offered(&mut phones);
    assert_eq!(i, y, "the agent idle longest");
}

// ------------------------------------------------------------- [agents]

/// `ha1` instead of `password`: the agent registers with the password the
/// hash was made from, and its registered contact is offered calls.
#[test]
fn an_agent_with_ha1_registers_and_is_offered_calls() {
    use md5::{Digest, Md5};
    let ha1 = format!(
        "{:x}",
        Md5::digest(format!("3141:{DOMAIN}:hashed-pw").as_bytes())
    );
    let extra = [
        format!("\n[agents.3141]\nha1 = \"{ha1}\"\nskills = {{ h = 3 }}\n"),
        "\n[queues.hq]\nskills = { h = 1 }\n".into(),
        number("3640", "queue:hq"),
    ]
    .concat();
    let d = start(extra);

    let mut agent = AgentPhone::new("3141");
    agent.register(d.sip_port(), DOMAIN, "hashed-pw");
    let _c = Caller::dial_from(d.sip_port(), "3640", "7100001");
    let inv = agent
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("registered ha1 agent got no offer:\n{}", d.stderr()));
    assert_eq!(queue_of(&inv), "hq");
    assert!(from_of(&inv).contains("7100001"), "{inv}");
}

// ------------------------------------------------------------- reload

/// A reload while an agent's phone rings keeps the offer: the agent answers
/// after the reload, caller and agent are bridged, and BYE ends both legs.
#[test]
fn a_reload_while_the_agent_rings_keeps_the_offer() {
    let mut agent = AgentPhone::new("3151");
    let base = [
        agent.toml(""),
        "\n[queues.rl]\nring_timeout_s = 15\n".into(),
        number("3650", "queue:rl"),
    ]
    .concat();
    let mut spec = ConfigSpec::new();
    spec.extra = base.clone();
    let mut d = Daemon::start_with(spec);

    let mut c = Caller::dial_from(d.sip_port(), "3650", "7100001");
    let inv = agent.expect_invite(OFFER).expect("offered");
    d.cfg.spec.extra = format!("{base}{}", number("3651", "ivr:bye"));
    d.cfg.write();
    d.signal("HUP");
    assert!(
        d.wait_for_log(Duration::from_secs(10), |l| {
            let l = l.to_ascii_lowercase();
            l.contains("reload") && l.contains("applied")
        }),
        "no reload:\n{}",
        d.stderr()
    );
    assert!(
        agent.expect_cancel(Duration::from_millis(300)).is_none(),
        "the offer was cancelled by the reload"
    );
    agent.answer(&inv);
    assert!(
        c.expect_bye(Duration::from_millis(500)).is_none(),
        "the caller was hung up"
    );
    // Media flows from the caller through sipacd to the agent.
    let agent_rtp: &UdpSocket = agent.rtp_socket();
    agent_rtp
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let leg = c.leg_port.expect("caller leg");
    let mut pkt = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
    pkt.extend_from_slice(&[0x55; 160]);
    let mut relayed = false;
    let deadline = Instant::now() + OFFER;
    let mut buf = [0u8; 2048];
    let mut seq = 1u16;
    while !relayed && Instant::now() < deadline {
        seq += 1;
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        c.rtp_socket().send_to(&pkt, ("127.0.0.1", leg)).unwrap();
        if let Ok((n, _)) = agent_rtp.recv_from(&mut buf) {
            relayed = n > 12 && buf[12..n].iter().all(|b| *b == 0x55);
        }
    }
    assert!(
        relayed,
        "caller audio not bridged to the agent after reload"
    );
    hang_up(&mut c, &mut agent);
}

/// A window of an agent's `shift` crossing midnight belongs to the day it
/// starts, read in the agent's `timezone`: the shift begun yesterday 22:00
/// is on now (01:xx there), the one beginning tonight is not.
#[test]
fn an_agent_shift_crossing_midnight_belongs_to_its_start_day() {
    let (tz, off) = zone_at_local_hour(1);
    let today = Utc::now().with_timezone(&off).date_naive();
    let yesterday = today.pred_opt().unwrap();
    let wd = |d: chrono::NaiveDate| DAYS[d.weekday().num_days_from_monday() as usize];
    let mut on = AgentPhone::new("3161");
    let mut off_shift = AgentPhone::new("3162");
    // `most_skilled` would pick the off-shift agent if shifts were ignored.
    let extra = [
        on.toml(&format!(
            "skills = {{ n = 2 }}\ntimezone = \"{tz}\"\nshift = [\"{} 22:00-04:00\"]",
            wd(yesterday)
        )),
        off_shift.toml(&format!(
            "skills = {{ n = 9 }}\ntimezone = \"{tz}\"\nshift = [\"{} 22:00-04:00\"]",
            wd(today)
        )),
        "\n[queues.nq]\nskills = { n = 1 }\nstrategy = \"most_skilled\"\n".into(),
        number("3660", "queue:nq"),
    ]
    .concat();
    let d = start(extra);

    let _c1 = Caller::dial(d.sip_port(), "3660");
    let inv = on
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("on-shift agent not offered ({tz}):\n{}", d.stderr()));
    on.answer(&inv);
    let _c2 = Caller::dial(d.sip_port(), "3660");
    off_shift.expect_no_invite(QUIET, "before its shift starts tonight");
}

/// A PCM WAV (8 kHz mono 16-bit) of a square wave of half-period `half`
/// samples: each file's frames are its own.
fn square_wav(path: &std::path::Path, half: u32, samples: u32) {
    let wav = common::wav_from_samples(&common::square_wave(half, 3000, samples));
    std::fs::write(path, wav).unwrap();
}

/// How many of the caller's next `total` RTP packets carry a PCMU frame of
/// the prompt at `path`.
fn frames_heard(caller: &Caller, path: &std::path::Path, total: usize) -> usize {
    use sipacd::media::{Codec, Prompt};
    let p = Prompt::load(path).unwrap();
    let frames: std::collections::HashSet<Vec<u8>> = (0..p.len())
        .filter_map(|i| p.frame(i, Codec::Pcmu))
        .map(|f| f.to_vec())
        .collect();
    let s = caller.rtp_socket();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 2048];
    let (mut seen, mut hits) = (0, 0);
    let deadline = Instant::now() + OFFER;
    while seen < total && Instant::now() < deadline {
        if let Ok((len, _)) = s.recv_from(&mut buf) {
            if len > 12 && buf[1] & 0x7F == 0 {
                seen += 1;
                if frames.contains(&buf[12..len]) {
                    hits += 1;
                }
            }
        }
    }
    hits
}

/// `music`: a queued caller hears its own queue's music file.
#[test]
fn queued_callers_hear_their_queues_music() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("tune-a.wav"), dir.path().join("tune-b.wav"));
    square_wav(&a, 7, 8000);
    square_wav(&b, 13, 8000);
    let extra = [
        format!(
            "\n[queues.qa]\nskills = {{ nobody = 1 }}\nmusic = \"{}\"\n\
             \n[queues.qb]\nskills = {{ nobody = 1 }}\nmusic = \"{}\"\n",
            a.display(),
            b.display()
        ),
        number("3670", "queue:qa"),
        number("3671", "queue:qb"),
    ]
    .concat();
    let d = start(extra);

    let ca = Caller::dial(d.sip_port(), "3670");
    let cb = Caller::dial(d.sip_port(), "3671");
    let heard_a = frames_heard(&ca, &a, 40);
    assert!(
        heard_a >= 20,
        "qa's caller heard {heard_a} frames of qa's music"
    );
    assert_eq!(frames_heard(&ca, &b, 20), 0, "qa's caller hears qb's music");
    let heard_b = frames_heard(&cb, &b, 40);
    assert!(
        heard_b >= 20,
        "qb's caller heard {heard_b} frames of qb's music"
    );
    assert!(d.stderr().lines().all(|l| !l.contains("ERROR")));
}

/// A queue closed by a reload (its schedule now over) turns new callers to
/// `closed`, while the caller already waiting keeps its place and is served.
#[test]
fn a_queue_that_closes_keeps_its_waiting_callers() {
    let mut agent = AgentPhone::new("3171");
    let agent_toml = agent.toml("");
    let base = |open: String| {
        [
            agent_toml.clone(),
            format!("\n[schedules.hours]\ntimezone = \"UTC\"\nopen = [\"{open}\"]\n"),
            "\n[queues.cq]\nschedule = \"hours\"\nclosed = \"ivr:bye\"\nwrapup_s = 0\n".into(),
            number("3680", "queue:cq"),
        ]
        .concat()
    };
    let mut spec = ConfigSpec::new();
    spec.extra = base(utc_window(-60, 60).replace("mon-sun ", ""));
    let mut d = Daemon::start_with(spec);

    let mut busy = Caller::dial_from(d.sip_port(), "3680", "7100000");
    let inv = agent.expect_invite(OFFER).expect("first caller offered");
    agent.answer(&inv);
    let _waiting = Caller::dial_from(d.sip_port(), "3680", "7100001");
    std::thread::sleep(Duration::from_millis(300));

    d.cfg.spec.extra = base(utc_window(-120, -60));
    d.cfg.write();
    d.signal("HUP");
    assert!(
        d.wait_for_log(Duration::from_secs(10), |l| {
            let l = l.to_ascii_lowercase();
            l.contains("reload") && l.contains("applied")
        }),
        "no reload:\n{}",
        d.stderr()
    );
    let late = Caller::dial_from(d.sip_port(), "3680", "7100002");
    assert!(
        late.expect_bye(OFFER).is_some(),
        "a new caller of the closed queue goes to its closed branch"
    );
    hang_up(&mut busy, &mut agent);
    let inv = agent
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("the waiting caller was dropped:\n{}", d.stderr()));
    assert!(from_of(&inv).contains("7100001"), "{inv}");
}

// ------------------------------------------------------------- server

/// Another process holds a port of `server.rtp_ports`: a call answered
/// after that must still get working media (sipacd leases the next free
/// pair) instead of an SDP answer naming a port nobody listens on.
#[test]
fn a_busy_rtp_port_is_skipped_not_answered_with() {
    let mut spec = ConfigSpec::new();
    // Hold the first pair, the one the pool hands out first.
    let _squatter = UdpSocket::bind(("127.0.0.1", spec.rtp_base)).unwrap();
    spec.extra = [
        number("3690", "ivr:info"),
        "\n[ivr.info]\nstart = \"msg\"\n[ivr.info.nodes.msg]\ntype = \"play\"\n\
         prompt = \"moh.wav\"\nnext = \"end\"\n[ivr.info.nodes.end]\ntype = \"hangup\"\n"
            .into(),
    ]
    .concat();
    let d = Daemon::start_with(spec);

    let c = Caller::dial(d.sip_port(), "3690");
    let heard = rtp_heard(&c, 15, OFFER);
    assert!(
        heard >= 15,
        "answered on port {:?}, heard {heard} RTP packets:\n{}",
        c.leg_port,
        d.stderr()
    );
    assert!(c.expect_bye(OFFER).is_some(), "no hangup after the prompt");
}
