//! Linphone (`linphonec` 5.1) against the running daemon, as an agent and
//! as a caller, with baresip 1.0 on the other end. Linphone puts a quoted
//! `+sip.instance="<urn:uuid:…>"` on its Contact in REGISTER, INVITE and
//! its 2xx: the calls must connect, and each phone's recording must hold
//! the other's tone, by frequency.
//!
//! Without linphonec or baresip these tests print a note and skip, or fail
//! when `CI` is set.

mod common;

use common::baresip::{
    agent_account, assert_tone, baresip_or_skip, caller_account, sine_wav, Baresip,
};
use common::linphone::{linphonec_or_skip, Linphone, Role};
use common::{Daemon, AGENT_PASSWORD, DOMAIN};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// The Contact line with a quoted `+sip.instance` of the first message in
/// `phone`'s log that starts with `start` and is about `method` (by CSeq).
fn instance_in(phone: &Linphone, start: &str, method: &str) -> Option<String> {
    let cseq = |l: &str| l.starts_with("CSeq:") && l.trim_end().ends_with(method);
    phone
        .messages(start)
        .iter()
        .filter(|m| m.lines().any(cseq))
        .find_map(|m| {
            m.lines()
                .find(|l| l.starts_with("Contact:"))
                .filter(|l| l.contains(";+sip.instance=\"<urn:uuid:"))
                .map(str::to_string)
        })
}

/// Context for a failure: every party's output.
fn dump(d: &Daemon, linphone: &Linphone, baresip: &Baresip) -> String {
    format!(
        "--- linphonec console ---\n{}\n--- baresip ---\n{}\n--- sipacd ---\n{}",
        linphone.output(),
        baresip.output(),
        d.stderr()
    )
}

#[test]
fn linphone_agent_answers_a_baresip_caller_with_audio_both_ways() {
    if !linphonec_or_skip() || !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let port = d.sip_port();
    let mut agent = Linphone::start(
        "agent",
        Role::Agent {
            user: "1001",
            password: AGENT_PASSWORD,
            domain: DOMAIN,
            proxy_port: port,
        },
        &sine_wav(1000.0, 30.0),
    );
    let binding = d.wait_binding("1001", WAIT);
    assert!(
        binding.is_some(),
        "linphonec did not register; console:\n{}\nsipacd:\n{}",
        agent.output(),
        d.stderr()
    );
    let contact = instance_in(&agent, "REGISTER ", "REGISTER");
    assert!(
        contact.is_some(),
        "the REGISTER's Contact had no quoted +sip.instance: {:?}",
        agent.messages("REGISTER ")
    );

    let mut caller = Baresip::start("caller", &caller_account(port), &sine_wav(440.0, 20.0));
    let mut caller_ctrl = caller.ctrl();
    let r = caller_ctrl.command("dial", &format!("sip:1500@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");

    assert!(
        agent.wait_for_output(WAIT, |o| o.contains("Media streams established")),
        "the Linphone agent never got the call up\n{}",
        dump(&d, &agent, &caller)
    );
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("agent answered: bridged")),
        "sipacd did not bridge the Linphone agent\n{}",
        dump(&d, &agent, &caller)
    );
    // The 2xx that used to be left unacknowledged carried the quoted param.
    assert!(
        instance_in(&agent, "SIP/2.0 200", "INVITE").is_some(),
        "the agent's 200 had no +sip.instance: {:?}",
        agent.messages("SIP/2.0 200")
    );
    assert!(
        caller_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some()
            && caller_ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some(),
        "the caller's phone never got audio\n{}",
        dump(&d, &agent, &caller)
    );

    std::thread::sleep(Duration::from_secs(3));
    let r = caller_ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(caller_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    assert!(
        agent.wait_for_output(WAIT, |o| o.contains("ended")),
        "the Linphone agent's call did not end after the caller hung up\n{}",
        dump(&d, &agent, &caller)
    );
    let log = d.stderr();
    assert!(!log.contains("without a usable dialog"), "{log}");
    // Nothing asked for session timers, re-INVITE or UPDATE on these legs.
    assert!(agent.messages("UPDATE ").is_empty());
    let sdp = agent.log();
    assert!(
        sdp.contains("c=IN IP4 127.0.0.1") && !sdp.contains("c=IN IP6"),
        "media off loopback"
    );
    assert_eq!(agent.invite_transactions(), 1, "a re-INVITE was sent");

    caller.stop();
    agent.stop();
    assert_tone("linphone agent", agent.heard(), 440.0, 1000.0, 2.0);
    let heard = caller.heard();
    assert_eq!(heard.len(), 1, "caller recordings {heard:?}");
    assert_tone("baresip caller", &heard[0], 1000.0, 440.0, 2.0);
}

#[test]
fn linphone_caller_reaches_a_baresip_agent_with_audio_both_ways() {
    if !linphonec_or_skip() || !baresip_or_skip() {
        return;
    }
    let d = Daemon::start();
    let port = d.sip_port();
    let mut agent = Baresip::start(
        "agent",
        &agent_account(port, AGENT_PASSWORD),
        &sine_wav(1000.0, 20.0),
    );
    let mut agent_ctrl = agent.ctrl();
    assert!(
        d.wait_binding("1001", WAIT).is_some(),
        "the baresip agent did not register; baresip:\n{}\nsipacd:\n{}",
        agent.output(),
        d.stderr()
    );

    let mut caller = Linphone::start(
        "caller",
        Role::Caller { user: "5551234" },
        &sine_wav(440.0, 30.0),
    );
    caller.command(&format!("call sip:1500@127.0.0.1:{port}"));
    assert!(
        caller.wait_for_output(WAIT, |o| o.contains("Media streams established")),
        "the Linphone caller's call never came up\n{}",
        dump(&d, &caller, &agent)
    );
    // This INVITE used to get a bare 400.
    assert!(
        instance_in(&caller, "INVITE ", "INVITE").is_some(),
        "the INVITE's Contact had no +sip.instance: {:?}",
        caller.messages("INVITE ")
    );
    assert!(
        agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some()
            && agent_ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some(),
        "the baresip agent never got audio\n{}",
        dump(&d, &caller, &agent)
    );
    assert!(d.wait_for_log(WAIT, |l| l.contains("agent answered: bridged")));

    std::thread::sleep(Duration::from_secs(3));
    caller.command("terminate");
    assert!(
        agent_ctrl.wait_event("CALL_CLOSED", WAIT).is_some(),
        "the agent's call did not end after Linphone hung up\n{}",
        dump(&d, &caller, &agent)
    );
    assert!(caller.wait_for_output(WAIT, |o| o.contains("ended")));
    assert!(caller.messages("UPDATE ").is_empty());
    let sdp = caller.log();
    assert!(
        sdp.contains("c=IN IP4 127.0.0.1") && !sdp.contains("c=IN IP6"),
        "media off loopback"
    );
    assert_eq!(caller.invite_transactions(), 1, "a re-INVITE was sent");

    caller.stop();
    agent.stop();
    assert_tone("linphone caller", caller.heard(), 1000.0, 440.0, 2.0);
    let heard = agent.heard();
    assert_eq!(heard.len(), 1, "agent recordings {heard:?}");
    assert_tone("baresip agent", &heard[0], 440.0, 1000.0, 2.0);
}
