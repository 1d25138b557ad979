//! Real softphones over TLS: baresip 1.0 and linphonec 5.1 register as
//! agent 1001 over a TLS connection to the daemon (certificate made at test
//! time, the phone given its CA) and are called down that connection by a
//! UDP caller; the call connects and carries audio both ways.
//!
//! Without the phones these tests fail under CI (see `common::require`).

mod common;

use common::baresip::{assert_tone, baresip_or_skip, caller_account, sine_wav, Baresip};
use common::linphone::{linphonec_or_skip, Linphone, Role};
use common::tls::Pki;
use common::{ConfigSpec, Daemon, AGENT_PASSWORD, DOMAIN};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// A daemon with a `tls:` listener and a certificate from `pki`; returns
/// it and its TLS port.
fn start(pki: &Pki) -> (Daemon, u16) {
    let (cert, key, _) = pki.issue("server");
    let tls_port = common::free_port();
    let mut spec = ConfigSpec::new();
    spec.sip_extra = format!(", \"tls:127.0.0.1:{tls_port}\"");
    spec.server_extra = Pki::server_lines(&cert, &key);
    (Daemon::start_with(spec), tls_port)
}

/// Waits for agent 1001's binding and checks it was made over TLS.
fn tls_binding(d: &Daemon, phone_output: &dyn Fn() -> String) -> serde_json::Value {
    let b = d.wait_binding("1001", WAIT).unwrap_or_else(|| {
        panic!(
            "the phone did not register over TLS; phone:\n{}\nsipacd:\n{}",
            phone_output(),
            d.stderr()
        )
    });
    assert_eq!(b["transport"], "tls", "{b}");
    b
}

#[test]
fn baresip_registers_over_tls_and_is_called_down_that_connection() {
    if !baresip_or_skip() {
        return;
    }
    let pki = Pki::new();
    let (d, tls_port) = start(&pki);
    let account = format!(
        "<sip:1001@{DOMAIN};transport=tls>;auth_pass={AGENT_PASSWORD};\
         outbound=\"sip:127.0.0.1:{tls_port};transport=tls\";regint=60;\
         answermode=auto;audio_codecs=PCMU"
    );
    let cafile = format!("sip_cafile {}\n", pki.ca_path().display());
    let mut agent = Baresip::start_with("agent", &account, &sine_wav(1000.0, 20.0), &cafile);
    let mut agent_ctrl = agent.ctrl();
    tls_binding(&d, &|| agent.output());

    let port = d.sip_port();
    let mut caller = Baresip::start("caller", &caller_account(port), &sine_wav(440.0, 20.0));
    let mut caller_ctrl = caller.ctrl();
    let r = caller_ctrl.command("dial", &format!("sip:1500@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some(),
        "the agent's phone never got the call over TLS; agent:\n{}\nsipacd:\n{}",
        agent.output(),
        d.stderr()
    );
    assert!(caller_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some());
    for (who, ctrl) in [("agent", &mut agent_ctrl), ("caller", &mut caller_ctrl)] {
        assert!(
            ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some(),
            "the {who}'s phone never received RTP; sipacd:\n{}",
            d.stderr()
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let r = caller_ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(
        agent_ctrl.wait_event("CALL_CLOSED", WAIT).is_some(),
        "the BYE did not reach the agent over TLS; sipacd:\n{}",
        d.stderr()
    );
    caller.stop();
    agent.stop();
    for (who, want, own) in [(&agent, 440.0, 1000.0), (&caller, 1000.0, 440.0)] {
        let files = who.heard();
        assert_eq!(files.len(), 1, "{}: recordings {files:?}", who.name);
        assert_tone(&who.name, &files[0], want, own, 2.0);
    }
}

/// A baresip caller at 440 Hz dials the queue, the linphonec agent (which
/// registered over TLS) takes the call and both get audio; after 3 s the
/// caller hangs up and the agent sees the call end. Returns the caller.
fn call_the_linphone_agent(d: &Daemon, agent: &Linphone) -> Baresip {
    let port = d.sip_port();
    let caller = Baresip::start("caller", &caller_account(port), &sine_wav(440.0, 20.0));
    let mut caller_ctrl = caller.ctrl();
    let r = caller_ctrl.command("dial", &format!("sip:1500@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        agent.wait_for_output(WAIT, |o| o.contains("Media streams established")),
        "the Linphone agent never got the call over TLS; linphonec:\n{}\nsipacd:\n{}",
        agent.output(),
        d.stderr()
    );
    assert!(
        caller_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some()
            && caller_ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some(),
        "the caller's phone never got audio; sipacd:\n{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    let r = caller_ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(
        agent.wait_for_output(WAIT, |o| o.contains("ended")),
        "the BYE did not reach the Linphone agent over TLS; sipacd:\n{}",
        d.stderr()
    );
    caller
}

#[test]
fn linphonec_registers_over_tls_and_is_called_down_that_connection() {
    if !linphonec_or_skip() || !baresip_or_skip() {
        return;
    }
    let pki = Pki::new();
    let (d, tls_port) = start(&pki);
    let ca = pki.ca_path();
    let mut agent = Linphone::start(
        "agent",
        Role::TlsAgent {
            user: "1001",
            password: AGENT_PASSWORD,
            domain: DOMAIN,
            proxy_port: tls_port,
            ca: &ca,
        },
        &sine_wav(1000.0, 30.0),
    );
    let b = tls_binding(&d, &|| agent.output() + &agent.log());
    let contact = b["contact"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(contact.contains("transport=tls"), "{b}");

    let mut caller = call_the_linphone_agent(&d, &agent);
    // One offer, taken at once: sipacd opens no TLS connection of its own,
    // so it came down the connection linphonec registered on.
    assert_eq!(
        agent.messages("INVITE ").len(),
        1,
        "{:?}",
        agent.messages("INVITE ")
    );
    caller.stop();
    agent.stop();
    assert_tone("linphone agent", agent.heard(), 440.0, 1000.0, 2.0);
    let heard = caller.heard();
    assert_eq!(heard.len(), 1, "caller recordings {heard:?}");
    assert_tone("baresip caller", &heard[0], 1000.0, 440.0, 2.0);
}

/// Agent 1001 as `GET /api/v1/agents` shows it.
fn agent_1001(d: &Daemon) -> serde_json::Value {
    let all = common::http::get_json(&format!("{}/api/v1/agents", d.admin_url()));
    all.as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "1001").cloned())
        .unwrap_or_default()
}

#[test]
fn linphonec_over_tls_registers_its_instance_again_after_a_restart_and_is_called_on_the_new_connection(
) {
    if !linphonec_or_skip() || !baresip_or_skip() {
        return;
    }
    let pki = Pki::new();
    let (mut d, tls_port) = start(&pki);
    let ca = pki.ca_path();
    let mut agent = Linphone::start(
        "agent",
        Role::TlsAgent {
            user: "1001",
            password: AGENT_PASSWORD,
            domain: DOMAIN,
            proxy_port: tls_port,
            ca: &ca,
        },
        &sine_wav(1000.0, 60.0),
    );
    let first = tls_binding(&d, &|| agent.output() + &agent.log());
    let instance = first["instance"].as_str().unwrap_or_default().to_owned();
    assert!(instance.contains("urn:uuid:"), "no +sip.instance: {first}");

    // The daemon dies and comes back (past the 1 s in which a binding
    // reaches the disk): the TLS connection is gone with it, the restored
    // binding cannot be used, and linphonec registers again on a new
    // connection with the same instance, replacing it.
    std::thread::sleep(Duration::from_millis(1500));
    d.kill9_and_restart();
    // linphonec connects from its SIP port again, so the source may be the
    // same: the new REGISTER is told by its CSeq (on disk within 1 s).
    let again = |b: &serde_json::Value| b["cseq"].as_u64() > first["cseq"].as_u64();
    common::wait_until(
        "linphonec registered again",
        Duration::from_secs(90),
        || agent_1001(&d)["registered"] == true && d.bindings_of("1001").iter().any(again),
    );
    let now = d.bindings_of("1001");
    assert_eq!(now.len(), 1, "one binding per instance: {now:?}");
    assert_eq!(now[0]["instance"], instance.as_str(), "{now:?}");
    assert_eq!(now[0]["transport"], "tls", "{now:?}");

    let mut caller = call_the_linphone_agent(&d, &agent);
    caller.stop();
    agent.stop();
    let heard = caller.heard();
    assert_eq!(heard.len(), 1, "caller recordings {heard:?}");
    assert_tone("baresip caller", &heard[0], 1000.0, 440.0, 2.0);
}
