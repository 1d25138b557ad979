//! Callback keeping the caller's place, against the running daemon: a
//! waiting caller is offered a callback, presses 1, keys another number
//! and `#`, is told goodbye and hung up on; its place is kept ahead of a
//! caller who came later. When the agent (a raw SIP phone with a static
//! contact) is free again, sipacd calls it first, then the customer
//! through the trunk: a SIPp "gateway" on loopback that challenges with
//! 401, checks the digest and answers, echoing the agent's audio. A
//! second test kills the daemon with a callback waiting: after the
//! restart it is still called back. Others reload the configuration with
//! a callback waiting (`sipacd reload`: it keeps its place and is called
//! back), and check that a caller who came first and took the callback
//! is served before a caller who came later and stayed on the line.

mod common;

use common::baresip::{baresip_or_skip, caller_account, sine_wav, Baresip};
use common::http::{get_json, post_json, request};
use common::phone::{echoed, AgentPhone, Caller};
use common::sip::{header, method};
use common::sipp::{run_sipp_at, sipp_or_skip, SippRun};
use common::spoken::{self, Spoken};
use common::{free_port, sipacd_bin, wait_until, ConfigSpec, Daemon};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const CUSTOMER: &str = "0301234567";

/// The callback settings of the queue: offered after 1 s, every prompt
/// the test directory's half-second tone but the agent's, the repository's
/// spoken `callback-agent.wav` (so the agent's hearing it can be told).
fn spec(gw_port: u16, agent: &AgentPhone) -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.support_extra = format!(
        "wrapup_s = 1\n\n[queues.support.callback]\ntrunk = \"gw\"\n\
        after_s = 1\nretry_s = [2]\nprompt = \"moh.wav\"\nnumber_prompt = \"moh.wav\"\n\
        accepted_prompt = \"moh.wav\"\nagent_prompt = \"{}\"\n",
        agent_prompt().display()
    );
    spec.extra = format!(
        "\n[trunks.gw]\nuri = \"sip:gw@127.0.0.1:{gw_port}\"\nusername = \"acme\"\n\
         password = \"pw\"\ncaller_id = \"1500\"\n{}",
        agent.toml("skills = { support = 5 }")
    );
    spec
}

/// The repository's prompt the agent hears before the customer is called.
fn agent_prompt() -> std::path::PathBuf {
    spoken::dir().join("callback-agent.wav")
}

/// What the agent hears, in order, before the customer is called: the
/// agent prompt, then the number called back digit by digit.
fn agent_hears(agent: &AgentPhone) -> (Vec<String>, Vec<String>) {
    let mut expected = vec!["callback-agent.wav".to_string()];
    expected.extend(CUSTOMER.chars().map(|c| format!("{c}.wav")));
    let mut names: Vec<&str> = expected.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let heard = Spoken::new(&names).heard_in_order(
        agent.rtp_socket(),
        expected.len(),
        5,
        Duration::from_secs(15),
    );
    (heard, expected)
}

/// The digits' prompts in the daemon's prompt directory (read when
/// played, so no reload is needed).
fn copy_digits(d: &Daemon) {
    for c in '0'..='9' {
        let name = format!("{c}.wav");
        std::fs::copy(
            spoken::dir().join(&name),
            d.cfg.root().join("prompts").join(&name),
        )
        .unwrap();
    }
}

fn set_state(d: &Daemon, agent: &str, state: &str) {
    let url = format!("{}/api/v1/agents/{agent}/state", d.admin_url());
    let (status, v) = post_json(&url, &json!({ "state": state }));
    assert_eq!(status, 200, "{v}");
}

fn logged(d: &Daemon, what: &str) {
    assert!(
        d.wait_for_log(T, |l| l.contains(what)),
        "never logged `{what}`:\n{}",
        d.stderr()
    );
}

/// sipacd's RTP port in an SDP body (its offer to the agent).
fn sdp_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next()?.parse().ok())
        .expect("an m=audio line")
}

fn callbacks(d: &Daemon) -> Value {
    get_json(&format!("{}/api/v1/callbacks", d.admin_url()))
}

fn support(d: &Daemon) -> Value {
    let queues = get_json(&format!("{}/api/v1/queues", d.admin_url()));
    queues
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == "support"))
        .cloned()
        .expect("queue support")
}

fn records(d: &Daemon) -> Vec<Value> {
    let v = get_json(&format!("{}/api/v1/cdr", d.admin_url()));
    v.as_array().cloned().unwrap_or_default()
}

/// A caller accepts the callback with another number: the goodbye, then
/// sipacd's BYE; the callback waits in its place. Returns the caller.
fn accept_callback(d: &Daemon, from: &str, keys: &str) -> Caller {
    let caller = Caller::dial_from(d.sip_port(), "1500", from);
    logged(d, "callback offered");
    caller.press(keys, 0);
    logged(d, "callback accepted: the caller's place is kept");
    assert!(
        caller.expect_bye(T).is_some(),
        "sipacd hangs up after the goodbye\n{}",
        d.stderr()
    );
    caller
}

#[test]
fn a_caller_takes_a_callback_keeps_its_place_and_is_called_back_through_the_challenged_trunk() {
    if !sipp_or_skip() {
        return;
    }
    let gw_port = free_port();
    let mut agent = AgentPhone::new("2001");
    let d = Daemon::start_with(spec(gw_port, &agent));
    copy_digits(&d);
    let port = d.sip_port();
    // Nobody free: callers wait.
    set_state(&d, "2001", "paused");

    // 1001 takes a callback to another number; 1002 comes later and waits.
    let first = accept_callback(&d, "1001", &format!("1{CUSTOMER}#"));
    let later = Caller::dial_from(port, "1500", "1002");
    wait_until("both wait, the callback counted", T, || {
        let q = support(&d);
        q["waiting"] == 2 && q["callbacks_waiting"] == 1
    });
    let list = callbacks(&d);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let cb = &list[0];
    assert_eq!(
        (&cb["number"], &cb["caller"], &cb["state"], &cb["position"]),
        (
            &json!(CUSTOMER),
            &json!("1001"),
            &json!("waiting"),
            &json!(1)
        ),
        "{cb}"
    );
    assert_eq!(cb["call"], json!(first.call_id), "{cb}");
    let calls = get_json(&format!("{}/api/v1/calls", d.admin_url()));
    let live = calls
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == json!(later.call_id)))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        live["position"], 2,
        "the later caller waits behind: {calls}"
    );

    // The agent is free: the callback comes first, the agent's phone
    // shows whom it calls back and hears why (the 2 s agent prompt) and
    // whom (the number, digit by digit) before the customer's phone rings.
    let (_, gw) = call_back_and_reach(&d, &mut agent, gw_port, |agent| {
        let (heard, expected) = agent_hears(agent);
        assert_eq!(
            heard,
            expected,
            "the agent prompt, then the number called back\n{}",
            d.stderr()
        );
        assert!(
            !d.stderr().contains("callback: calling the customer"),
            "the customer is called only once the agent heard the prompt\n{}",
            d.stderr()
        );
        logged(&d, "callback: calling the customer");
    });
    // The gateway's 401 was answered: the INVITE again, CSeq + 1.
    assert!(gw.messages.contains("CSeq: 2 INVITE"), "{}", gw.report());

    // Wrap-up over, the later caller is next.
    let next = agent.expect_invite(T).expect("the later caller's offer");
    assert!(
        header(&next, "From", Some("f")).is_some_and(|f| f.contains("sip:1002@")),
        "{next}"
    );
    assert!(header(&next, "X-Sipacd-Callback", None).is_none(), "{next}");
    let mut later = later;
    later.bye();
    drop(first);

    wait_until("both records written", T, || {
        records(&d)
            .iter()
            .filter(|r| !r["callback"].is_null())
            .count()
            == 2
    });
    let recs = records(&d);
    let asked = recs
        .iter()
        .find(|r| r["id"] == json!(first_call_id(&recs, "1001")))
        .cloned()
        .expect("the record of the call that asked");
    assert_eq!(asked["disposition"], "callback", "{asked}");
    assert_eq!(asked["callback"]["number"], CUSTOMER, "{asked}");
    assert!(asked["callback"]["offered_ms"].is_i64(), "{asked}");
    assert!(asked["callback"]["accepted_ms"].is_i64(), "{asked}");
    let placed = recs
        .iter()
        .find(|r| r["callback"]["attempt"] == 1)
        .cloned()
        .expect("the record of the call placed for it");
    assert_eq!(placed["callback"]["outcome"], "reached", "{placed}");
    assert_eq!(placed["callback"]["origin"], asked["id"], "{placed}");
    assert_eq!(placed["agent"], "2001", "{placed}");
    assert_eq!(placed["disposition"], "answered", "{placed}");
    let metrics = request("GET", &format!("{}/metrics", d.admin_url()), None).1;
    // The later caller was offered one too (it waited past after_s).
    for (step, n) in [("offered", 2), ("accepted", 1), ("reached", 1)] {
        let line = format!("sipacd_callbacks_total{{queue=\"support\",step=\"{step}\"}} {n}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }

    // `sipacd report` on the daemon's own records, the later caller's
    // among them (it was offered a callback too): the callback figures.
    // The report reads the store, which the writer fills in batches.
    let report = |d: &Daemon| -> Value {
        let out = std::process::Command::new(common::sipacd_bin())
            .args(["report", "--json", "--fcr-window-h", "1", "--config"])
            .arg(d.cfg.config_path())
            .output()
            .expect("run sipacd report");
        assert!(out.status.success(), "{out:?}");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        report["callbacks"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["queue"] == "support"))
            .cloned()
            .unwrap_or_else(|| panic!("no callback row for support: {report}"))
    };
    let mut row = Value::Null;
    wait_until("the later caller's record stored", T, || {
        row = report(&d);
        row["offered"] == 2
    });
    assert_eq!(row["accepted"], 1, "{row}");
    assert_eq!(row["accepted_pct"], 50.0, "{row}");
    assert_eq!(row["tries"], 1, "{row}");
    assert_eq!(row["reached"], 1, "{row}");
    assert_eq!(row["gave_up"], 0, "{row}");
    let ttc = row["time_to_callback_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("{row}"));
    assert!(
        (0.1..20.0).contains(&ttc),
        "time to callback {ttc} s: {row}"
    );
}

/// The id of the record whose caller is `caller` (its first).
fn first_call_id(recs: &[Value], caller: &str) -> String {
    recs.iter()
        .find(|r| r["caller"] == caller && r["number"] == "1500")
        .and_then(|r| r["id"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_waiting_callback_survives_a_kill_9_and_is_called_back_after_the_restart() {
    if !sipp_or_skip() {
        return;
    }
    let gw_port = free_port();
    let mut agent = AgentPhone::new("2001");
    let mut d = Daemon::start_with(spec(gw_port, &agent));
    set_state(&d, "2001", "paused");
    // `#` alone: the number the caller calls from.
    let _caller = accept_callback(&d, "0307654321", "1#");
    let list = callbacks(&d);
    let id = list[0]["id"].as_str().expect("an id").to_owned();
    assert_eq!(list[0]["number"], "0307654321", "{list}");
    let file = d.cfg.root().join("data/callbacks.json");
    wait_until("the callback is on disk", T, || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.contains(&id))
    });

    d.kill9_and_restart();
    let list = callbacks(&d);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], json!(id), "{list}");
    assert_eq!(list[0]["number"], "0307654321", "{list}");
    // Its place kept the time it had waited.
    assert!(
        list[0]["waited_s"].as_f64().is_some_and(|w| w >= 1.0),
        "{list}"
    );
    // Waiting, or (the agent available again after the restart) being
    // called already.
    assert!(
        ["waiting", "calling"].contains(&list[0]["state"].as_str().unwrap_or_default()),
        "{list}"
    );

    // The agent (available again after the restart, or made so) is
    // offered the callback.
    set_state(&d, "2001", "available");
    let invite = agent
        .expect_invite(T)
        .expect("the callback's INVITE after the restart");
    assert_eq!(
        header(&invite, "X-Sipacd-Callback", None),
        Some("0307654321"),
        "{invite}"
    );
    assert_eq!(method(&invite), Some("INVITE"));
    // Cancelled over the API: the agent's phone is CANCELled, the list empty.
    let (status, body) = request(
        "DELETE",
        &format!("{}/api/v1/callbacks/{id}", d.admin_url()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(agent.expect_cancel(T).is_some(), "{}", d.stderr());
    assert!(callbacks(&d).as_array().is_some_and(Vec::is_empty));
    let (status, _) = request(
        "DELETE",
        &format!("{}/api/v1/callbacks/{id}", d.admin_url()),
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn a_busy_customer_is_tried_again_after_retry_s_then_given_up() {
    if !sipp_or_skip() {
        return;
    }
    let gw_port = free_port();
    let mut agent = AgentPhone::new("2001");
    let d = Daemon::start_with(spec(gw_port, &agent));
    let port = d.sip_port();
    set_state(&d, "2001", "paused");
    let _caller = accept_callback(&d, "1001", &format!("1{CUSTOMER}#"));
    let gateway = std::thread::spawn(move || {
        run_sipp_at(gw_port, port, "gateway_busy_callback", &["-m", "2"], T)
    });
    std::thread::sleep(Duration::from_millis(500));
    set_state(&d, "2001", "available");

    // Try 1: the agent answers, the customer is busy, the agent's call
    // ends; the callback waits for its retry.
    let invite = agent.expect_invite(T).expect("try 1 to the agent");
    agent.answer(&invite);
    assert!(agent.expect_bye(T).is_some(), "{}", d.stderr());
    logged(&d, "gave_up=false");
    let list = callbacks(&d);
    assert_eq!(list[0]["state"], "retry", "{list}");
    assert_eq!(list[0]["attempts"], 1, "{list}");
    // Try 2, after retry_s (2 s) and the agent's wrap-up: busy again, the
    // last try the queue allows.
    let invite = agent.expect_invite(T).expect("try 2 to the agent");
    assert_eq!(
        header(&invite, "X-Sipacd-Callback", None),
        Some(CUSTOMER),
        "{invite}"
    );
    agent.answer(&invite);
    assert!(agent.expect_bye(T).is_some(), "{}", d.stderr());
    logged(&d, "gave_up=true");
    assert!(callbacks(&d).as_array().is_some_and(Vec::is_empty));
    let gw = gateway.join().expect("sipp");
    assert!(
        gw.success(),
        "{}\n--- sipacd ---\n{}",
        gw.report(),
        d.stderr()
    );

    wait_until("both tries recorded", T, || {
        records(&d)
            .iter()
            .filter(|r| r["callback"]["outcome"] == "busy")
            .count()
            == 2
    });
    let recs = records(&d);
    let tries: Vec<(i64, bool)> = recs
        .iter()
        .filter(|r| !r["callback"]["attempt"].is_null())
        .map(|r| {
            (
                r["callback"]["attempt"].as_i64().unwrap_or(0),
                r["callback"]["gave_up"] == true,
            )
        })
        .collect();
    assert_eq!(tries, [(1, false), (2, true)], "{recs:?}");
    let metrics = request("GET", &format!("{}/metrics", d.admin_url()), None).1;
    let line = "sipacd_callbacks_total{queue=\"support\",step=\"gave_up\"} 1";
    assert!(metrics.contains(line), "{line} in\n{metrics}");
}

/// The agent is made available with the gateway ready: its first INVITE
/// must be the callback of `CUSTOMER`, from `CUSTOMER`; it answers, and
/// `on_answer` runs (what the agent hears before the customer is called);
/// the customer is then called through the gateway and bridged (audio
/// both ways). The agent hangs up. Returns the agent's INVITE and the
/// gateway's run.
fn call_back_and_reach(
    d: &Daemon,
    agent: &mut AgentPhone,
    gw_port: u16,
    on_answer: impl FnOnce(&AgentPhone),
) -> (String, SippRun) {
    let port = d.sip_port();
    let gateway = std::thread::spawn(move || {
        let media = free_port().to_string();
        let args = ["-rtp_echo", "-mp", &media];
        run_sipp_at(gw_port, port, "gateway_answers_callback", &args, T)
    });
    std::thread::sleep(Duration::from_millis(500));
    set_state(d, "2001", "available");
    let invite = agent
        .expect_invite(T)
        .expect("the agent's first INVITE once it is free");
    assert_eq!(
        header(&invite, "X-Sipacd-Callback", None),
        Some(CUSTOMER),
        "the agent's first call is the callback\n{invite}\n{}",
        d.stderr()
    );
    assert!(
        header(&invite, "From", Some("f")).is_some_and(|f| f.contains(&format!("sip:{CUSTOMER}@"))),
        "{invite}"
    );
    agent.answer(&invite);
    on_answer(agent);
    logged(d, "callback: the customer answered; bridged to the agent");
    let heard = echoed(agent.rtp_socket(), sdp_port(&invite), 50);
    assert!(
        heard >= 25,
        "only {heard} of 50 packets came back from the customer\n{}",
        d.stderr()
    );
    assert!(
        callbacks(d).as_array().is_some_and(Vec::is_empty),
        "a reached callback is done"
    );
    // The agent hangs up: sipacd ends the customer's call (its BYE).
    let bye = agent.request_in_dialog(&invite, "BYE", 2, None);
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    let gw = gateway.join().expect("sipp");
    assert!(
        gw.success(),
        "{}\n--- sipacd ---\n{}",
        gw.report(),
        d.stderr()
    );
    (invite, gw)
}

#[test]
fn a_waiting_callback_keeps_its_place_across_sipacd_reload_and_is_called_back() {
    if !sipp_or_skip() {
        return;
    }
    let gw_port = free_port();
    let mut agent = AgentPhone::new("2001");
    let mut d = Daemon::start_with(spec(gw_port, &agent));
    set_state(&d, "2001", "paused");
    // The caller takes the callback and is hung up on: nobody is on the
    // line any more, only the callback holds the place.
    let caller = accept_callback(&d, "1001", &format!("1{CUSTOMER}#"));
    let before = callbacks(&d);
    assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");
    let id = before[0]["id"].as_str().expect("an id").to_owned();
    assert_eq!(before[0]["position"], 1, "{before}");

    // The file gains a queue; `sipacd reload` applies it.
    d.cfg.spec.extra.push_str("\n[queues.sales]\n");
    d.cfg.write();
    let out = std::process::Command::new(sipacd_bin())
        .args(["reload", "--admin", &d.admin_url()])
        .env_remove("SIPACD_ADMIN_TOKEN")
        .output()
        .expect("sipacd reload runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", d.stderr());
    assert!(
        text.starts_with("reload applied") && text.contains("sales"),
        "{text}"
    );
    let queues = get_json(&format!("{}/api/v1/queues", d.admin_url()));
    assert!(
        queues
            .as_array()
            .is_some_and(|a| a.iter().any(|q| q["name"] == "sales")),
        "the reload applied: {queues}"
    );

    // The same callback, at the same place, still counted as waiting.
    let after = callbacks(&d);
    assert_eq!(after.as_array().map(Vec::len), Some(1), "{after}");
    let cb = &after[0];
    assert_eq!(
        (&cb["id"], &cb["state"], &cb["position"], &cb["number"]),
        (&json!(id), &json!("waiting"), &json!(1), &json!(CUSTOMER)),
        "{after}"
    );
    assert_eq!(cb["call"], json!(caller.call_id), "{cb}");
    assert_eq!(cb["accepted_ms"], before[0]["accepted_ms"], "{cb}");
    let q = support(&d);
    assert_eq!(
        (&q["waiting"], &q["callbacks_waiting"]),
        (&json!(1), &json!(1)),
        "{q}"
    );

    // An agent becomes free: the callback is placed and reached.
    call_back_and_reach(&d, &mut agent, gw_port, |_| {});
    wait_until("the placed call's record", T, || {
        records(&d)
            .iter()
            .any(|r| r["callback"]["outcome"] == "reached")
    });
}

#[test]
fn a_first_callers_callback_is_served_before_a_later_caller_who_stayed_on_the_line() {
    if !sipp_or_skip() {
        return;
    }
    let gw_port = free_port();
    let mut agent = AgentPhone::new("2001");
    let d = Daemon::start_with(spec(gw_port, &agent));
    let port = d.sip_port();
    set_state(&d, "2001", "paused");
    // A first, then B: both wait on the line.
    let first = Caller::dial_from(port, "1500", "1001");
    wait_until("A waits", T, || support(&d)["waiting"] == 1);
    let later = Caller::dial_from(port, "1500", "1002");
    wait_until("both wait", T, || support(&d)["waiting"] == 2);
    // Only then does A take the callback (B, offered too, keeps waiting).
    let a_offered = |l: &str| l.contains("callback offered") && l.contains(&first.call_id);
    assert!(d.wait_for_log(T, a_offered), "A's offer\n{}", d.stderr());
    first.press(&format!("1{CUSTOMER}#"), 0);
    logged(&d, "callback accepted: the caller's place is kept");
    assert!(first.expect_bye(T).is_some(), "{}", d.stderr());
    wait_until("A's callback and B wait", T, || {
        let q = support(&d);
        q["waiting"] == 2 && q["callbacks_waiting"] == 1
    });
    let list = callbacks(&d);
    assert_eq!(list[0]["call"], json!(first.call_id), "{list}");
    assert_eq!(
        list[0]["position"], 1,
        "A's callback keeps A's place: {list}"
    );
    let calls = get_json(&format!("{}/api/v1/calls", d.admin_url()));
    let b = calls
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == json!(later.call_id)))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        b["position"], 2,
        "B, though on the line, is behind: {calls}"
    );

    // One agent free: the callback first (asserted by its INVITE), then B.
    call_back_and_reach(&d, &mut agent, gw_port, |_| {});
    let next = agent
        .expect_invite(T)
        .expect("B's offer after the callback");
    assert!(
        header(&next, "From", Some("f")).is_some_and(|f| f.contains("sip:1002@")),
        "{next}"
    );
    assert!(header(&next, "X-Sipacd-Callback", None).is_none(), "{next}");
    let mut later = later;
    later.bye();
    drop(first);
}

#[test]
fn a_baresip_caller_takes_the_callback_with_its_keypad_and_is_called_back() {
    if !sipp_or_skip() || !baresip_or_skip() {
        return;
    }
    let gw_port = free_port();
    let mut agent = AgentPhone::new("2001");
    let d = Daemon::start_with(spec(gw_port, &agent));
    set_state(&d, "2001", "paused");
    // A real softphone dials support; offered the callback after 1 s, it
    // keys 1, another number and # (RFC 4733 from baresip's keypad).
    let port = d.sip_port();
    let mut phone = Baresip::start("caller", &caller_account(port), &sine_wav(440.0, 20.0));
    let mut ctrl = phone.ctrl();
    let r = ctrl.command("dial", &format!("sip:1500@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        ctrl.wait_event("CALL_ESTABLISHED", T).is_some(),
        "not answered; baresip:\n{}\nsipacd:\n{}",
        phone.output(),
        d.stderr()
    );
    logged(&d, "callback offered");
    for key in format!("1{CUSTOMER}#").chars() {
        let r = ctrl.command("sndcode", &key.to_string());
        assert_eq!(r["ok"], true, "sndcode {key}: {r}");
        std::thread::sleep(Duration::from_millis(250));
    }
    logged(&d, "callback accepted: the caller's place is kept");
    assert!(
        ctrl.wait_event("CALL_CLOSED", T).is_some(),
        "sipacd hangs up after the goodbye; baresip:\n{}\nsipacd:\n{}",
        phone.output(),
        d.stderr()
    );
    phone.stop();
    let list = callbacks(&d);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        (&list[0]["number"], &list[0]["caller"], &list[0]["state"]),
        (&json!(CUSTOMER), &json!("5551234"), &json!("waiting")),
        "{list}"
    );
    // An agent frees up: the callback is placed and reached.
    call_back_and_reach(&d, &mut agent, gw_port, |_| {});
}
