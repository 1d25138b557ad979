//! SIPp callers that send real media from sip-tester's pcaps against the
//! running daemon: an RFC 4733 digit picks an IVR menu option (and only
//! that one), and G.711 A-law audio keeps the caller up under a short
//! `rtp_timeout_s` while sipacd relays it, transcoded, to the agent.
//!
//! SIPp plays the pcaps from its media port (`-mp`); sipacd latches that
//! address (symmetric RTP). Without sipp these tests skip (fail under CI).

mod common;

use common::phone::AgentPhone;
use common::sip::header;
use common::sipp::{run_sipp, sipp_or_skip, SippRun};
use common::{free_port, ConfigSpec, Daemon};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PCAPS: &str = "/usr/share/sip-tester";
const WAIT: Duration = Duration::from_secs(10);

/// sipp and the pcap it plays (both from the sip-tester package).
fn ready(pcap: &str) -> bool {
    sipp_or_skip()
        && common::require(
            Path::new(PCAPS).join(pcap).is_file(),
            "sip-tester's pcap files",
        )
}

/// Runs `scenario` in the background, dialling `number`, with a media port
/// of its own (tests run in parallel).
fn sipp_call(d: &Daemon, scenario: &'static str, number: &str) -> JoinHandle<SippRun> {
    let target = d.sip_port();
    let number = number.to_string();
    let media = free_port().to_string();
    std::thread::spawn(move || {
        run_sipp(
            target,
            scenario,
            &["-s", &number, "-mp", &media],
            Duration::from_secs(20),
        )
    })
}

fn assert_sipp_ok(run: SippRun, d: &mut Daemon) {
    assert!(
        run.success(),
        "{}\n--- sipacd stderr ---\n{}",
        run.report(),
        d.stderr()
    );
    assert!(d.is_alive(), "sipacd died:\n{}", d.stderr());
}

/// The audio port sipacd offers in an INVITE to an agent.
fn offered_port(invite: &str) -> u16 {
    let m = invite
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("SDP with m=audio");
    m.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn rfc4733_digit_from_pcap_picks_its_menu_option() {
    if !ready("dtmf_2833_1.pcap") {
        return;
    }
    let mut one = AgentPhone::new("4101");
    let mut two = AgentPhone::new("4102");
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        r#"
[queues.first]
skills = {{ first = 1 }}

[queues.second]
skills = {{ second = 1 }}
{}{}
[[numbers]]
number = "1560"
to = "ivr:pick"

[ivr.pick]
start = "menu"

[ivr.pick.nodes.menu]
type = "menu"
prompt = "moh.wav"
timeout_s = 5
retries = 0
options = {{ "1" = "queue:first", "2" = "queue:second" }}
on_fail = "ivr:bye"
"#,
        one.toml("skills = { first = 5 }"),
        two.toml("skills = { second = 5 }"),
    );
    let mut d = Daemon::start_with(spec);
    let sipp = sipp_call(&d, "caller_dtmf_1", "1560");

    let inv = one
        .expect_invite(WAIT)
        .unwrap_or_else(|| panic!("digit 1 did not reach queue `first`:\n{}", d.stderr()));
    assert_eq!(header(&inv, "X-Sipacd-Queue", None), Some("first"));
    let from = header(&inv, "From", Some("f")).unwrap();
    assert!(
        from.contains("<sip:5550101@"),
        "the agent sees the SIPp caller's number: {from}"
    );
    one.answer(&inv);
    assert!(
        one.expect_bye(WAIT).is_some(),
        "the caller's BYE did not end the agent's leg"
    );
    assert_sipp_ok(sipp.join().unwrap(), &mut d);
    two.expect_no_invite(Duration::from_millis(300), "for digit 1");
}

#[test]
fn g711a_audio_from_pcap_is_received_and_relayed() {
    if !ready("g711a.pcap") {
        return;
    }
    let mut agent = AgentPhone::new("4201");
    let mut spec = ConfigSpec::new();
    // The pcap lasts 7 s: were sipacd not receiving it, the caller would be
    // hung up after 2 s and SIPp would fail on the unexpected BYE.
    spec.rtp_timeout_s = 2;
    spec.extra = format!(
        "\n[queues.talk]\nskills = {{ talk = 1 }}\n{}\n[[numbers]]\nnumber = \"1570\"\nto = \"queue:talk\"\n",
        agent.toml("skills = { talk = 5 }")
    );
    let mut d = Daemon::start_with(spec);
    let sipp = sipp_call(&d, "caller_g711a", "1570");

    let inv = agent
        .expect_invite(WAIT)
        .unwrap_or_else(|| panic!("no offer to the agent:\n{}", d.stderr()));
    let leg = offered_port(&inv);
    agent.answer(&inv);

    // The agent's phone talks too (PCMU silence: its leg has the same
    // rtp_timeout_s) and counts what sipacd relays from the caller.
    let rtp = agent.rtp_socket();
    rtp.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (mut seq, mut relayed, mut other) = (0u16, 0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sipp.is_finished() && Instant::now() < deadline {
        seq = seq.wrapping_add(1);
        let mut pkt = vec![0x80, 0, (seq >> 8) as u8, seq as u8, 0, 0, 0, 0, 9, 9, 9, 9];
        pkt[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        pkt.extend_from_slice(&[0xFF; 160]);
        rtp.send_to(&pkt, ("127.0.0.1", leg)).unwrap();
        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
            // The pcap's 30 ms A-law frames (240 bytes), re-encoded into
            // the agent's PCMU; sipacd's own frames are 20 ms (160 bytes).
            if n == 12 + 240 && buf[1] & 0x7F == 0 {
                relayed += 1;
            } else {
                other += 1;
            }
        }
    }
    assert!(
        agent.expect_bye(WAIT).is_some(),
        "the caller's BYE did not end the agent's leg"
    );
    assert_sipp_ok(sipp.join().unwrap(), &mut d);
    // 236 frames in the pcap; the first ones may come before the answer.
    assert!(
        relayed >= 100,
        "only {relayed} of the caller's frames reached the agent ({other} other packets)"
    );
    assert!(
        !d.stderr().contains("no RTP for rtp_timeout_s"),
        "a leg timed out:\n{}",
        d.stderr()
    );
}
