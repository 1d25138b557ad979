//! The whole sans-IO engine fed what phones could send: messages from a
//! caller, an agent and a TCP peer, time passing, media events, and the
//! agent's phone answering what the engine sends it, so fuzzed input
//! reaches IVR walks, queues, offers and bridged calls, not only parsing.
//!
//! Input: NUL-separated chunks. Each chunk's first byte steers (bits 0-1:
//! which peer sends the rest of the chunk; bits 2-3: seconds that pass
//! after it; bit 4: every prompt ends; bit 5: every leg hears digit '1';
//! bit 6: the agent's phone answers each INVITE sent to it with 200).
#![no_main]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use sipacd::config::Config;
use sipacd::endpoint::{Endpoint, MediaCommand, MediaEvent, Now};
use sipacd::sip::Peer;

const CONFIG: &str = r#"
[server]
sip = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
advertise = "127.0.0.1"
domain = "fuzz.sipacd.local"
rtp_ports = "30000-30999"
data_dir = "DATA"
prompts = "PROMPTS"
max_calls = 50

[agents.1001]
password = "fuzz1001"
skills = { support = 5 }

[agents.1002]
contact = "sip:1002@127.0.0.1:5080"
skills = { support = 5 }

[queues.support]
skills = { support = 1 }
ring_timeout_s = 5
wrapup_s = 1
max_wait_s = 30
announce_position_s = 5
music = "moh.wav"

[[numbers]]
number = "1500"
to = "queue:support"

[[numbers]]
number = "1600"
to = "ivr:main"

[ivr.main]
start = "menu"

[ivr.main.nodes.menu]
type = "menu"
prompt = "menu.wav"
timeout_s = 2
retries = 1
options = { "1" = "ask", "2" = "support" }
on_fail = "bye"

[ivr.main.nodes.ask]
type = "collect"
prompt = "menu.wav"
max_digits = 4
variable = "account"
next = "support"

[ivr.main.nodes.support]
type = "queue"
queue = "support"

[ivr.main.nodes.bye]
type = "hangup"
"#;

fn config() -> Arc<Config> {
    static CFG: OnceLock<Arc<Config>> = OnceLock::new();
    CFG.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let data = std::env::temp_dir().join("sipacd-fuzz-engine");
        let text = CONFIG
            .replace("DATA", &data.to_string_lossy())
            .replace("PROMPTS", &root.join("prompts").to_string_lossy());
        let cfg = sipacd::config::parse_str(&text, &data.join("fuzz.toml"))
            .unwrap_or_else(|e| panic!("the fuzz configuration is refused: {e}"));
        Arc::new(cfg)
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let mono = Instant::now();
    let wall = SystemTime::now();
    let mut elapsed = Duration::ZERO;
    let now = |elapsed: Duration| Now {
        mono: mono + elapsed,
        wall: wall + elapsed,
    };
    let mut ep = Endpoint::new(config(), now(elapsed));
    let peers = [
        Peer::udp(SocketAddr::from(([127, 0, 0, 1], 5070))),
        Peer::udp(SocketAddr::from(([127, 0, 0, 1], 5080))),
        Peer::tcp(SocketAddr::from(([127, 0, 0, 1], 5090))),
    ];
    let mut legs: Vec<u64> = Vec::new();
    for chunk in data.split(|b| *b == 0).take(64) {
        let Some((&ctl, msg)) = chunk.split_first() else {
            continue;
        };
        let from = peers[usize::from(ctl & 3) % peers.len()];
        if !msg.is_empty() {
            ep.handle_inbound(msg, from, now(elapsed));
        }
        elapsed += Duration::from_secs(u64::from((ctl >> 2) & 3));
        ep.handle_timeout(now(elapsed));
        let mut answers = Vec::new();
        while let Some((to, bytes)) = ep.poll_transmit() {
            if ctl & 0x40 != 0 && to == peers[1] && bytes.starts_with(b"INVITE ") {
                answers.push(answer_200(&bytes));
            }
        }
        for a in answers.into_iter().flatten() {
            ep.handle_inbound(&a, peers[1], now(elapsed));
        }
        while let Some(cmd) = ep.poll_media() {
            if let MediaCommand::Open { leg, .. } = cmd {
                legs.push(leg);
            }
        }
        for &leg in &legs {
            if ctl & 0x10 != 0 {
                ep.handle_media_event(MediaEvent::PromptEnded { leg }, now(elapsed));
            }
            if ctl & 0x20 != 0 {
                ep.handle_media_event(MediaEvent::Digit { leg, digit: '1' }, now(elapsed));
            }
        }
        while ep.poll_event(now(elapsed)).is_some() {}
        while ep.poll_foreign().is_some() {}
        while ep.poll_transmit().is_some() {}
        while ep.poll_media().is_some() {}
    }
});

/// The 200 OK a phone would send to an INVITE: its Via, From, Call-ID and
/// CSeq copied, a tag added to To, an SDP answer.
fn answer_200(invite: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(invite).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in head.lines().skip(1) {
        let name = line.split(':').next()?.trim().to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" | "record-route" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" | "t" => {
                out.push_str(line);
                out.push_str(";tag=fuzzagent\r\n");
            }
            _ => {}
        }
    }
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    out.push_str("Contact: <sip:1002@127.0.0.1:5080>\r\nContent-Type: application/sdp\r\n");
    out.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
    Some(out.into_bytes())
}
