//! Attended transfer (REFER with Replaces) against the running daemon on
//! two signalling shards. Agent 2001 talks with a caller of queue `front`,
//! puts it on hold (re-INVITE `sendonly`: the caller hears music), dials
//! queue `billing` (1700) from its phone to consult agent 2002, then
//! REFERs the caller with `Replaces` naming that consultation. The caller
//! and the consultation are placed on different shards (their Call-IDs
//! pick them). sipacd owes 2001: 202, NOTIFY 100, NOTIFY 200 ending the
//! subscription, and a BYE on each of its two calls; the caller and 2002
//! then hear each other's tones (and not 2001's); 2001 is in wrap-up; a
//! hang-up by 2002 reaches the caller; the caller's record has both legs
//! in order and the consultation's says where its agent went.
//!
//! The first test's phones are the raw-UDP ones of `common::phone`, each
//! streaming its own tone (`common::tone`); the second has Linphone as the
//! transferring agent, the third SIPp phones throughout.

mod common;

use common::http::get_json;
use common::phone::{AgentPhone, Caller};
use common::sip::header;
use common::tone::ToneStream;
use common::{ConfigSpec, Daemon};
use sipacd::cdr::{CdrFilter, CdrStore};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const CALLER_HZ: f64 = 600.0;
const TRANSFEROR_HZ: f64 = 1000.0;
const CONSULTED_HZ: f64 = 1400.0;
const TONES: [f64; 3] = [CALLER_HZ, TRANSFEROR_HZ, CONSULTED_HZ];
const SHARDS: usize = 2;
const HOLD_SDP: &str = "v=0\r\no=agent 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
     m=audio PORT RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";

/// sipacd's RTP port in an SDP (`m=audio PORT ...`).
fn sdp_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in:\n{msg}"))
}

/// A Call-ID starting with `prefix` that the daemon gives to `shard`.
fn call_id_on(prefix: &str, shard: usize) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}-{}", std::process::id()))
        .find(|c| sipacd::endpoint::shard_of_call_id(c, SHARDS) == shard)
        .unwrap_or_default()
}

/// What `tone` heard over the next 2.5 s, after the media settled.
fn listen(tone: &ToneStream, who: &str) -> Vec<bool> {
    std::thread::sleep(Duration::from_millis(400));
    let mark = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    tone.hears(who, mark, &TONES)
}

fn agent_state(d: &Daemon, id: &str) -> String {
    let agents = get_json(&format!("{}/api/v1/agents", d.admin_url()));
    agents
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == id))
        .and_then(|x| x["state"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The record of call `cid` once it has ended.
fn final_record(d: &Daemon, cid: &str) -> sipacd::cdr::CallRecord {
    let data = d.cfg.root().join("data");
    let mut rec = None;
    common::wait_until("the call's final record", WAIT, || {
        let store = CdrStore::open_reader(&data).expect("records");
        rec = store
            .query(&CdrFilter::default())
            .expect("query")
            .into_iter()
            .find(|r| r.id == cid && r.ended_ms.is_some());
        rec.is_some()
    });
    rec.expect("record")
}

/// A record's legs as (agent, queue, transferred_to).
fn legs_of(r: &sipacd::cdr::CallRecord) -> Vec<(&str, Option<&str>, Option<&str>)> {
    r.legs
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

fn sipfrag(notify: &str) -> &str {
    notify.split("\r\n\r\n").nth(1).unwrap_or_default().trim()
}

#[test]
fn an_agent_consults_another_and_joins_the_caller_with_it_by_refer_with_replaces() {
    let mut transferor = AgentPhone::new("2001");
    let mut consulted = AgentPhone::new("2002");
    let mut spec = ConfigSpec::new();
    spec.env
        .push(("TOKIO_WORKER_THREADS".into(), SHARDS.to_string()));
    spec.extra = transferor.toml("skills = { front = 1 }")
        + &consulted.toml("skills = { billing = 1 }")
        + "\n[queues.front]\nskills = { front = 1 }\nwrapup_s = 60\nmusic = \"moh.wav\"\n\
           \n[queues.billing]\nskills = { billing = 1 }\n\
           \n[[numbers]]\nnumber = \"1800\"\nto = \"queue:front\"\n\
           \n[[numbers]]\nnumber = \"1700\"\nto = \"queue:billing\"\n";
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let fail = |what: &str| -> String { format!("{what}\n--- sipacd ---\n{}", d.stderr()) };

    // The caller (shard 0) reaches 2001.
    let caller_cid = call_id_on("caller", 0);
    let caller = Caller::dial_as(port, "1800", "5551234", caller_cid.clone());
    let inv1 = transferor
        .expect_invite(WAIT)
        .unwrap_or_else(|| panic!("{}", fail("2001 was not offered the call")));
    transferor.answer(&inv1);
    let caller_tone = ToneStream::start(
        caller.rtp_socket(),
        CALLER_HZ,
        caller.leg_port.expect("caller leg port"),
    );
    let transferor_tone =
        ToneStream::start(transferor.rtp_socket(), TRANSFEROR_HZ, sdp_port(&inv1));

    // Hold, as a softphone does before consulting.
    let rtp = transferor.rtp_socket().local_addr().unwrap().port();
    let hold = HOLD_SDP.replace("PORT", &rtp.to_string());
    let held = transferor.request_in_dialog(&inv1, "INVITE", 1, Some(&hold));
    assert!(held.starts_with("SIP/2.0 200"), "{held}");

    // The consultation (shard 1): 2001's phone dials 1700; 2002 answers.
    let consult_cid = call_id_on("consult", 1);
    let consult = Caller::dial_as(port, "1700", "2001", consult_cid.clone());
    let consult_tone = ToneStream::start(
        consult.rtp_socket(),
        TRANSFEROR_HZ,
        consult.leg_port.expect("consultation leg port"),
    );
    let inv2 = consulted
        .expect_invite(WAIT)
        .unwrap_or_else(|| panic!("{}", fail("2002 was not offered the consultation")));
    consulted.answer(&inv2);
    let consulted_tone = ToneStream::start(consulted.rtp_socket(), CONSULTED_HZ, sdp_port(&inv2));
    assert_eq!(
        listen(&consulted_tone, "2002 consulted"),
        [false, true, false],
        "2002 hears 2001 during the consultation"
    );

    // The transfer.
    let (ours, theirs) = consult.tags();
    let refer_to = format!(
        "Refer-To: <sip:2002@127.0.0.1:{port}?Replaces={consult_cid}%3Bto-tag%3D{theirs}%3Bfrom-tag%3D{ours}>\r\n\
         Referred-By: <sip:2001@127.0.0.1>\r\n"
    );
    let accepted = transferor.request_in_dialog_with(&inv1, "REFER", 2, None, &refer_to);
    assert!(accepted.starts_with("SIP/2.0 202"), "{}", fail(&accepted));
    let notify = |phone: &mut AgentPhone, frag: &str| {
        phone
            .expect_request(WAIT, |m| {
                m.starts_with("NOTIFY") && sipfrag(m).starts_with(frag)
            })
            .unwrap_or_else(|| panic!("{}", fail(&format!("no NOTIFY {frag}"))))
    };
    let trying = notify(&mut transferor, "SIP/2.0 100");
    assert_eq!(
        header(&trying, "Event", Some("o")),
        Some("refer"),
        "{trying}"
    );
    assert!(header(&trying, "Subscription-State", None).is_some_and(|s| s.starts_with("active")));
    let done = notify(&mut transferor, "SIP/2.0 200");
    assert!(
        header(&done, "Subscription-State", None).is_some_and(|s| s.starts_with("terminated")),
        "{done}"
    );
    let bye1 = transferor
        .expect_bye(WAIT)
        .unwrap_or_else(|| panic!("{}", fail("no BYE on 2001's leg of the caller's call")));
    assert_eq!(common::sip::call_id(&bye1), common::sip::call_id(&inv1));
    assert!(
        consult.expect_bye(WAIT).is_some(),
        "{}",
        fail("no BYE on the consultation")
    );
    drop((transferor_tone, consult_tone));

    // The caller and 2002 hear each other, and nobody hears 2001.
    assert_eq!(listen(&caller_tone, "caller"), [false, false, true]);
    assert_eq!(listen(&consulted_tone, "2002"), [true, false, false]);
    assert_eq!(agent_state(&d, "2001"), "wrapup");
    assert_eq!(agent_state(&d, "2002"), "on_call");

    // 2002 hangs up: the caller gets its BYE.
    let bye = consulted.request_in_dialog(&inv2, "BYE", 1, None);
    assert!(bye.starts_with("SIP/2.0 200"), "{}", fail(&bye));
    assert!(
        caller.expect_bye(WAIT).is_some(),
        "{}",
        fail("no BYE to the caller")
    );
    drop((caller_tone, consulted_tone));

    let data = d.cfg.root().join("data");
    let mut recs = Vec::new();
    common::wait_until("both final call records", WAIT, || {
        let store = CdrStore::open_reader(&data).expect("records");
        recs = store
            .query(&CdrFilter::default())
            .expect("query")
            .into_iter()
            .filter(|r| r.ended_ms.is_some())
            .collect();
        recs.len() == 2
    });
    let rec = |cid: &str| {
        recs.iter()
            .find(|r| r.id == cid)
            .unwrap_or_else(|| panic!("no record of {cid}: {recs:?}"))
    };
    let first = rec(&caller_cid);
    assert_eq!(first.agent.as_deref(), Some("2002"), "{first:?}");
    assert_eq!(
        legs_of(first),
        [
            ("2001", Some("front"), Some("attended:agent:2002")),
            ("2002", Some("billing"), None)
        ],
        "{first:?}"
    );
    assert!(first.legs[0].ended_ms <= Some(first.legs[1].answered_ms));
    assert!(first.hold_ms > 0, "the caller was held: {first:?}");
    let second = rec(&consult_cid);
    assert_eq!(
        legs_of(second),
        [(
            "2002",
            Some("billing"),
            Some(format!("attended:{caller_cid}").as_str())
        )],
        "{second:?}"
    );
    let log = d.stderr();
    assert!(log.contains("attended transfer"), "{log}");
}

/// The same with a real softphone as the transferring agent: Linphone
/// (`linphonec` 5.1, agent 1001 registered with its password) answers the
/// caller, holds it (`pause`), places the consultation to 1700, and
/// `transfer 1 --to-call 2` sends the REFER with Replaces. Without linphonec this test fails (see `common::require`).
#[test]
fn a_linphone_agent_transfers_its_caller_to_the_agent_it_consulted() {
    linphone_consults_and_transfers("1700", "billing");
}

/// The same with the consultation dialled straight to the colleague's
/// agent id: Linphone answers sipacd's digest challenge, and 2002 rings
/// in the queue of 1001's call (`support`).
#[test]
fn a_linphone_agent_dials_a_colleague_by_agent_id_and_transfers_to_it() {
    linphone_consults_and_transfers("2002", "support");
}

/// Linphone agent 1001 consults by dialling `number`; 2002 answers the
/// consultation, which is in `queue`.
fn linphone_consults_and_transfers(number: &str, queue: &str) {
    if !common::linphone::linphonec_or_skip() {
        return;
    }
    let mut consulted = AgentPhone::new("2002");
    let mut spec = ConfigSpec::new();
    spec.env
        .push(("TOKIO_WORKER_THREADS".into(), SHARDS.to_string()));
    spec.extra = consulted.toml("skills = { billing = 1 }")
        + "\n[queues.billing]\nskills = { billing = 1 }\n\
           \n[[numbers]]\nnumber = \"1700\"\nto = \"queue:billing\"\n";
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let mut agent = common::linphone::Linphone::start(
        "transferor",
        common::linphone::Role::Agent {
            user: "1001",
            password: common::AGENT_PASSWORD,
            domain: common::DOMAIN,
            proxy_port: port,
        },
        &common::baresip::sine_wav(TRANSFEROR_HZ, 40.0),
    );
    let fail = |what: &str, agent: &common::linphone::Linphone| -> String {
        format!(
            "{what}\n--- linphonec ---\n{}\n--- sipacd ---\n{}",
            agent.output(),
            d.stderr()
        )
    };
    assert!(
        d.wait_binding("1001", WAIT).is_some(),
        "{}",
        fail("linphonec did not register", &agent)
    );
    let established = |agent: &common::linphone::Linphone, n: usize| {
        agent.wait_for_output(WAIT, |o| {
            o.matches("Media streams established").count() >= n
        })
    };

    let caller_cid = call_id_on("lcaller", 0);
    let caller = Caller::dial_as(port, "1500", "5551234", caller_cid.clone());
    let caller_tone = ToneStream::start(
        caller.rtp_socket(),
        CALLER_HZ,
        caller.leg_port.expect("caller leg port"),
    );
    assert!(
        established(&agent, 1),
        "{}",
        fail("no call to 1001", &agent)
    );
    std::thread::sleep(Duration::from_secs(1));

    // The consultation: Linphone holds call 1 and dials 1700.
    agent.command("pause");
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("hold changed")
            && l.contains("held=true")),
        "{}",
        fail("Linphone did not hold the caller", &agent)
    );
    agent.command(&format!("call sip:{number}@127.0.0.1:{port}"));
    let inv = consulted
        .expect_invite(WAIT)
        .unwrap_or_else(|| panic!("{}", fail("2002 was not offered the consultation", &agent)));
    consulted.answer(&inv);
    let consulted_tone = ToneStream::start(consulted.rtp_socket(), CONSULTED_HZ, sdp_port(&inv));
    assert!(
        established(&agent, 2),
        "{}",
        fail("the consultation has no media", &agent)
    );
    std::thread::sleep(Duration::from_secs(1));

    if number == "2002" {
        let log = d.stderr();
        assert!(
            log.contains("consultation call agent=1001 target=2002 queue=support"),
            "{log}"
        );
    }
    agent.command("transfer 1 --to-call 2");
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("attended transfer")
            && l.contains("transferor=1001")),
        "{}",
        fail("no attended transfer", &agent)
    );
    assert_eq!(listen(&caller_tone, "caller"), [false, false, true]);
    assert_eq!(listen(&consulted_tone, "2002"), [true, false, false]);

    // What Linphone was sent: the 202, both NOTIFYs, a BYE on each call.
    let log_has = |agent: &common::linphone::Linphone, start: &str, n: usize| {
        common::wait_until(start, WAIT, || agent.messages(start).len() >= n);
    };
    log_has(&agent, "SIP/2.0 202", 1);
    log_has(&agent, "NOTIFY ", 2);
    log_has(&agent, "BYE ", 2);
    let log = agent.log();
    assert!(log.contains("SIP/2.0 100 Trying"), "{log}");
    assert!(log.contains("Replaces="), "{log}");

    let bye = consulted.request_in_dialog(&inv, "BYE", 1, None);
    assert!(bye.starts_with("SIP/2.0 200"), "{}", fail(&bye, &agent));
    assert!(
        caller.expect_bye(WAIT).is_some(),
        "{}",
        fail("no BYE to the caller", &agent)
    );
    drop((caller_tone, consulted_tone));
    agent.stop();

    let rec = final_record(&d, &caller_cid);
    assert_eq!(
        legs_of(&rec),
        [
            ("1001", Some("support"), Some("attended:agent:2002")),
            ("2002", Some(queue), None)
        ],
        "{rec:?}"
    );
}

/// The same with SIPp phones. The transferring agent's two dialogs are two
/// SIPp twins (3PCC): `agent_transfers_attended` answers the caller, holds
/// it, has its twin `agent_consults` dial 1700 (Call-ID `consult_cid`, From
/// tag `consultA`), gets sipacd's To tag of that dialog back from it, and
/// sends the REFER with Replaces; it checks the 202, the NOTIFY sequence
/// and sipacd's BYE, its twin the BYE of the consultation. The consulted
/// agent (`agent_takes_consultation`) keeps its dialog and gets sipacd's BYE
/// when the caller (`call_caller_is_transferred`, on the other shard) hangs
/// up. Without SIPp this test fails (see `common::require`).
#[test]
fn sipp_agents_do_an_attended_transfer_across_shards() {
    if !common::sipp::sipp_or_skip() {
        return;
    }
    use common::sipp::{run_sipp, run_sipp_at, SippRun};
    let (first, second, twin) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let mut spec = ConfigSpec::new();
    spec.env
        .push(("TOKIO_WORKER_THREADS".into(), SHARDS.to_string()));
    spec.extra = format!(
        "\n[agents.2001]\ncontact = \"sip:2001@127.0.0.1:{first}\"\nskills = {{ support = 5 }}\n\
         \n[agents.2002]\ncontact = \"sip:2002@127.0.0.1:{second}\"\nskills = {{ billing = 1 }}\n\
         \n[queues.billing]\nskills = {{ billing = 1 }}\n\
         \n[[numbers]]\nnumber = \"1700\"\nto = \"queue:billing\"\n"
    );
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let caller_cid = call_id_on("sipp-caller", 0);
    let consult_cid = call_id_on("sipp-consult", 1);
    let t = Duration::from_secs(25);
    let twin_addr = format!("127.0.0.1:{twin}");
    let consults = {
        let twin_addr = twin_addr.clone();
        std::thread::spawn(move || {
            run_sipp(port, "agent_consults", &["-3pcc", &twin_addr, "-m", "1"], t)
        })
    };
    let consulted = std::thread::spawn(move || {
        run_sipp_at(second, port, "agent_takes_consultation", &["-m", "2"], t)
    });
    // The twin listens before the transferor connects to it; both agents'
    // pings are answered before the call.
    std::thread::sleep(Duration::from_millis(1500));
    let transfers = {
        let cid = consult_cid.clone();
        std::thread::spawn(move || {
            run_sipp_at(
                first,
                port,
                "agent_transfers_attended",
                &["-3pcc", &twin_addr, "-m", "2", "-key", "consult_cid", &cid],
                t,
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let caller = run_sipp(
        port,
        "call_caller_is_transferred",
        &["-s", "1500", "-cid_str", &caller_cid],
        t,
    );
    let check = |name: &str, run: &SippRun| {
        assert!(
            run.success(),
            "{name}: {}\n--- sipacd ---\n{}",
            run.report(),
            d.stderr()
        );
    };
    check("caller", &caller);
    check("transferring agent", &transfers.join().expect("sipp"));
    check("its consultation", &consults.join().expect("sipp"));
    check("consulted agent", &consulted.join().expect("sipp"));

    let rec = final_record(&d, &caller_cid);
    assert_eq!(
        legs_of(&rec),
        [
            ("2001", Some("support"), Some("attended:agent:2002")),
            ("2002", Some("billing"), None)
        ],
        "{rec:?}"
    );
    assert!(rec.hold_ms > 0, "{rec:?}");
    assert!(d.stderr().contains("attended transfer"), "{}", d.stderr());
}
