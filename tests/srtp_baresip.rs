//! SRTP (SDES) with a real softphone: baresip 1.0 with its `srtp` module
//! as an agent that insists on SRTP (`mediaenc=srtp-mand`), called by a
//! plain-RTP caller through sipacd. sipacd decrypts on the agent's leg and
//! encrypts towards it: each phone's recording must hold the other's tone
//! (garbled audio, or SRTP the phone cannot authenticate, would not). A
//! number with `media_encryption = "srtp"` refuses a plain offer with 488.
//!
//! Without baresip and its srtp module these tests fail (see
//! `common::require`).

mod common;

use common::baresip::{
    assert_tone, baresip_or_skip, caller_account, read_wav_8k_mono, rms, sine_wav, tone_share,
    Baresip, MODULE_PATH,
};
use common::{ConfigSpec, Daemon, DOMAIN};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const SRTP_PASSWORD: &str = "s3cret-1002";

fn srtp_or_skip() -> bool {
    baresip_or_skip()
        && common::require(
            std::path::Path::new(MODULE_PATH).join("srtp.so").exists(),
            "baresip's srtp module (Debian package baresip-core)",
        )
}

/// Agent 1002 of queue `support`, SRTP only; number 1502 SRTP only.
fn spec() -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        r#"
[agents.1002]
name = "Bob"
password = "{SRTP_PASSWORD}"
skills = {{ support = 5 }}
media_encryption = "srtp"

[[numbers]]
number = "1502"
to = "queue:support"
media_encryption = "srtp"
"#
    );
    spec
}

/// baresip's account for agent 1002, SRTP mandatory (RTP/SAVP, a=crypto).
fn srtp_agent_account(port: u16) -> String {
    format!(
        "<sip:1002@{DOMAIN}>;auth_pass={SRTP_PASSWORD};outbound=\"sip:127.0.0.1:{port}\";regint=60;answermode=auto;audio_codecs=PCMU;mediaenc=srtp-mand"
    )
}

/// `GET /metrics` (the harness sets no admin token).
fn metrics(d: &Daemon) -> String {
    let url = format!("{}/metrics", d.admin_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

/// The phones' SRTP and SRTCP were authentic: at most a stray packet or
/// two refused (one was seen in a few runs, around the moment baresip
/// switches SRTP on at the answer; a broken key refuses every packet).
fn assert_few_refused(d: &Daemon) {
    let text = metrics(d);
    assert!(text.contains("sipacd_rtp_dropped_packets"), "{text}");
    let refused: f64 = text
        .lines()
        .filter(|l| l.contains("reason=\"srtp_auth\"") || l.contains("reason=\"srtcp_auth\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        refused <= 2.0,
        "{refused} SRTP/SRTCP packets refused:\n{text}"
    );
}

fn assert_heard(who: &Baresip, want: f64, own: f64, min_s: f64) {
    let files = who.heard();
    assert_eq!(files.len(), 1, "{}: recordings {files:?}", who.name);
    assert_tone(&who.name, &files[0], want, own, min_s);
}

#[test]
fn srtp_agent_and_plain_caller_hear_each_other() {
    if !srtp_or_skip() {
        return;
    }
    let d = Daemon::start_with(spec());
    let port = d.sip_port();
    let mut agent = Baresip::start_with_modules(
        "srtp-agent",
        &srtp_agent_account(port),
        &sine_wav(1000.0, 20.0),
        &["srtp.so"],
    );
    let mut agent_ctrl = agent.ctrl();
    assert!(
        d.wait_binding("1002", WAIT).is_some(),
        "agent did not register; baresip:\n{}\nsipacd:\n{}",
        agent.output(),
        d.stderr()
    );
    let mut caller = Baresip::start("caller", &caller_account(port), &sine_wav(440.0, 20.0));
    let mut caller_ctrl = caller.ctrl();
    let r = caller_ctrl.command("dial", &format!("sip:1500@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some(),
        "the SRTP agent never got the call; agent:\n{}\ncaller:\n{}\nsipacd:\n{}",
        agent.output(),
        caller.output(),
        d.stderr()
    );
    assert!(caller_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some());
    assert!(d.wait_for_log(WAIT, |l| l.contains("agent answered: bridged")));
    for (who, ctrl) in [("agent", &mut agent_ctrl), ("caller", &mut caller_ctrl)] {
        assert!(
            ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some(),
            "the {who}'s phone never received RTP; agent:\n{}\nsipacd:\n{}",
            agent.output(),
            d.stderr()
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let r = caller_ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(caller_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    assert!(agent_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    caller.stop();
    agent.stop();
    // The agent's phone did SRTP (its srtp module says so on the call).
    let out = agent.output().to_lowercase();
    assert!(
        out.contains("srtp is enabled (cryptosuite=aes_cm_128_hmac_sha1_80)"),
        "agent output:\n{out}"
    );
    assert_heard(&agent, 440.0, 1000.0, 2.0);
    assert_heard(&caller, 1000.0, 440.0, 2.0);
    // Nothing of the agent's SRTP was refused.
    assert_few_refused(&d);
}

#[test]
fn srtp_number_refuses_a_plain_offer_with_488() {
    if !srtp_or_skip() {
        return;
    }
    let d = Daemon::start_with(spec());
    let port = d.sip_port();
    let caller = Baresip::start("plain-caller", &caller_account(port), &sine_wav(440.0, 5.0));
    let mut ctrl = caller.ctrl();
    let r = ctrl.command("dial", &format!("sip:1502@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        caller.wait_for_output(WAIT, |o| o.contains("488")),
        "no 488 for a plain offer to an SRTP number; caller:\n{}\nsipacd:\n{}",
        caller.output(),
        d.stderr()
    );
    assert!(!caller.output().contains("CALL_ESTABLISHED"));
}

/// A SIPp caller sending real G.711 A-law audio (sip-tester's pcap) as
/// plain RTP, to the SRTP agent: the agent's recording holds the caller's
/// speech, and the agent's SRTP is accepted by sipacd all along (with
/// `rtp_timeout_s = 2`, a leg whose packets failed authentication would be
/// hung up, and SIPp fails on the unexpected BYE).
#[test]
fn sipp_caller_with_plain_rtp_talks_to_an_srtp_agent() {
    let pcap = std::path::Path::new("/usr/share/sip-tester/g711a.pcap");
    if !srtp_or_skip()
        || !common::sipp::sipp_or_skip()
        || !common::require(pcap.is_file(), "sip-tester's pcap files")
    {
        return;
    }
    let mut spec = spec();
    spec.rtp_timeout_s = 2;
    let mut d = Daemon::start_with(spec);
    let port = d.sip_port();
    let mut agent = Baresip::start_with_modules(
        "srtp-agent-sipp",
        &srtp_agent_account(port),
        &sine_wav(1000.0, 20.0),
        &["srtp.so"],
    );
    let mut agent_ctrl = agent.ctrl();
    assert!(
        d.wait_binding("1002", WAIT).is_some(),
        "agent did not register; baresip:\n{}",
        agent.output()
    );
    let media = common::free_port().to_string();
    let sipp = std::thread::spawn(move || {
        common::sipp::run_sipp(
            port,
            "caller_g711a",
            &["-s", "1500", "-mp", &media],
            Duration::from_secs(30),
        )
    });
    assert!(
        agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some(),
        "the SRTP agent never got the call; agent:\n{}\nsipacd:\n{}",
        agent.output(),
        d.stderr()
    );
    let run = sipp.join().unwrap();
    assert!(
        run.success(),
        "{}\n--- agent ---\n{}\n--- sipacd ---\n{}",
        run.report(),
        agent.output(),
        d.stderr()
    );
    assert!(agent_ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    agent.stop();
    assert!(
        !d.stderr().contains("no RTP for rtp_timeout_s"),
        "{}",
        d.stderr()
    );
    let files = agent.heard();
    assert_eq!(files.len(), 1, "recordings {files:?}");
    let levels: Vec<f64> = read_wav_8k_mono(&files[0])
        .chunks_exact(4000)
        .map(rms)
        .collect();
    eprintln!("agent heard rms per 0.5 s: {levels:.0?}");
    let speech = levels.iter().filter(|&&l| l > 300.0).count();
    assert!(
        speech >= 6,
        "the agent heard too little of the caller: rms per 0.5 s {levels:.0?}"
    );
    assert!(agent.output().to_lowercase().contains("srtp is enabled"));
    assert!(d.is_alive(), "{}", d.stderr());
}

/// An SRTP caller (`mediaenc=srtp-mand`) on the SRTP number, waiting in
/// the queue with no agent: the queue's music (the harness's 400 Hz
/// square wave) reaches it encrypted, and it hears it.
#[test]
fn srtp_caller_hears_the_queue_music() {
    if !srtp_or_skip() {
        return;
    }
    let d = Daemon::start_with(spec());
    let port = d.sip_port();
    let account = format!("{};mediaenc=srtp-mand", caller_account(port));
    let mut caller = Baresip::start_with_modules(
        "srtp-caller",
        &account,
        &sine_wav(1000.0, 20.0),
        &["srtp.so"],
    );
    let mut ctrl = caller.ctrl();
    let r = ctrl.command("dial", &format!("sip:1502@127.0.0.1:{port}"));
    assert_eq!(r["ok"], true, "dial: {r}");
    assert!(
        ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some(),
        "the SRTP caller was not answered; caller:\n{}\nsipacd:\n{}",
        caller.output(),
        d.stderr()
    );
    assert!(
        ctrl.wait_event("CALL_RTPESTAB", WAIT).is_some(),
        "no RTP reached the SRTP caller; sipacd:\n{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    let r = ctrl.command("hangup", "");
    assert_eq!(r["ok"], true, "hangup: {r}");
    assert!(ctrl.wait_event("CALL_CLOSED", WAIT).is_some());
    caller.stop();
    assert!(caller.output().to_lowercase().contains("srtp is enabled"));
    let files = caller.heard();
    assert_eq!(files.len(), 1, "recordings {files:?}");
    let table: Vec<(f64, f64)> = read_wav_8k_mono(&files[0])
        .chunks_exact(4000)
        .map(|w| (rms(w), tone_share(w, 400.0)))
        .collect();
    eprintln!("srtp caller per 0.5 s (rms, share 400 Hz): {table:.2?}");
    let music = table.iter().filter(|&&(l, s)| l > 500.0 && s > 0.5).count();
    assert!(
        music >= 4,
        "the SRTP caller did not hear the music: per 0.5 s (rms, share 400 Hz) {table:.2?}"
    );
    assert_few_refused(&d);
}
