//! Every RFC 4475 torture message, byte-exact over UDP, to the running
//! daemon: the answers it gives must be the RFC's, and afterwards it must
//! still be alive and answering OPTIONS.
//!
//! The messages come from `SIPACD_TESTDATA` or
//! `$CARGO_MANIFEST_DIR/../shared/testdata/rfc4475`; when absent the test
//! fails, unless `SIPACD_SKIP_TESTDATA=1` asks to skip it.
//!
//! Most messages carry a Via naming some other host; sipacd must answer at
//! the address and port each came from (RFC 3581 behaviour, always on), so
//! every answer must reach the one socket that sent them.

mod common;

use common::sip::{call_id, status_code};
use common::Daemon;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// RFC 4475 §3.1.2 messages that must get 400.
const MUST_400: &[&str] = &[
    "badinv01",
    "clerr",
    "scalar02",
    "quotbal",
    "lwsruri",
    "ncl",
    "mismatch01",
];
/// §3.1.2 messages a receiver may reject or accept liberally.
const LIBERAL: &[&str] = &[
    "ltgtruri", "lwsstart", "trws", "escruri", "baddate", "regbadct", "badaspec", "baddn",
];
/// §3.1.1 valid messages: must be handled, never refused as malformed.
const VALID: &[&str] = &[
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
];
/// Valid messages whose method is unknown to any UAS.
const UNKNOWN_METHOD: &[&str] = &["intmeth", "esc02"];
/// Responses among the messages (nobody may answer a response).
const RESPONSES: &[&str] = &["unreason", "noreason", "bcast", "bigcode", "scalarlg"];

fn data_dir() -> PathBuf {
    match std::env::var_os("SIPACD_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/rfc4475"),
    }
}

fn messages() -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(data_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Non-blocking sockets that catch sipacd's answers.
struct Collector {
    socks: Vec<UdpSocket>,
}

impl Collector {
    fn new(main: &UdpSocket) -> Collector {
        let socks = vec![main.try_clone().unwrap()];
        for s in &socks {
            s.set_nonblocking(true).unwrap();
        }
        Collector { socks }
    }

    fn collect(&self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            let mut got = false;
            for s in &self.socks {
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    got = true;
                }
            }
            if !got {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        out
    }
}

/// The answers each message got (status code, text), keyed by file name.
fn send_all(d: &Daemon, msgs: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<(u16, String)>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let col = Collector::new(&sock);
    let target = ("127.0.0.1", d.sip_port());
    let ids: BTreeMap<String, String> = msgs
        .iter()
        .filter_map(|(n, b)| Some((call_id(&String::from_utf8_lossy(b))?.to_string(), n.clone())))
        .collect();
    let mut answers: BTreeMap<String, Vec<(u16, String)>> = BTreeMap::new();
    let mut file_answer = |name: &str, got: Vec<String>| {
        for m in got {
            let Some(code) = status_code(&m) else {
                continue;
            };
            // By Call-ID; an answer without a known one belongs to the
            // message just sent (insuf has no Call-ID at all).
            let owner = call_id(&m)
                .and_then(|c| ids.get(c).cloned())
                .unwrap_or(name.to_string());
            answers.entry(owner).or_default().push((code, m));
        }
    };
    for (name, bytes) in msgs {
        sock.send_to(bytes, target).unwrap();
        let got = col.collect(Duration::from_millis(250));
        file_answer(name, got);
    }
    // Stragglers (e.g. retransmitted final responses) by Call-ID only.
    let late = col.collect(Duration::from_secs(1));
    file_answer("(late)", late);
    answers
}

#[test]
fn rfc4475_torture_messages() {
    let msgs = messages();
    if msgs.is_empty() {
        let what = format!(
            "RFC 4475 messages in {} (or SIPACD_TESTDATA)",
            data_dir().display()
        );
        // Never a silent pass: skipping must be asked for.
        assert!(
            std::env::var("SIPACD_SKIP_TESTDATA").as_deref() == Ok("1"),
            "{what} are missing: point SIPACD_TESTDATA at them, or set SIPACD_SKIP_TESTDATA=1 to skip"
        );
        eprintln!("SKIPPED: {what} are missing (SIPACD_SKIP_TESTDATA=1)");
        return;
    }
    assert!(
        msgs.len() >= 49,
        "expected the 49 RFC 4475 messages, found {}",
        msgs.len()
    );
    let mut d = Daemon::start();
    let answers = send_all(&d, &msgs);
    let codes = |n: &str| -> Vec<u16> {
        answers
            .get(n)
            .map(|a| a.iter().map(|(c, _)| *c).collect())
            .unwrap_or_default()
    };
    let final_text = |n: &str| -> String {
        answers
            .get(n)
            .and_then(|a| a.iter().find(|(c, _)| *c >= 200))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("{n}: no final answer"))
    };
    let finals = |n: &str| -> Vec<u16> { codes(n).into_iter().filter(|c| *c >= 200).collect() };
    let summary: BTreeMap<&String, Vec<u16>> = answers
        .iter()
        .map(|(n, a)| (n, a.iter().map(|(c, _)| *c).collect()))
        .collect();
    eprintln!("answers seen: {summary:?}");

    let mut problems = Vec::new();
    for n in MUST_400 {
        if finals(n).is_empty() || finals(n).iter().any(|c| *c != 400) {
            problems.push(format!("{n}: must be refused with 400, got {:?}", codes(n)));
        }
    }
    if finals("badvers").is_empty() || finals("badvers").iter().any(|c| *c != 505) {
        problems.push(format!("badvers: must get 505, got {:?}", codes("badvers")));
    }
    if finals("mismatch02").iter().any(|c| *c != 501 && *c != 400) {
        problems.push(format!(
            "mismatch02: 501 or 400, got {:?}",
            codes("mismatch02")
        ));
    }
    for n in LIBERAL {
        // Rejected or accepted, but an INVITE/OPTIONS with bad syntax is never
        // a reason for a server error.
        if finals(n).iter().any(|c| *c >= 500) {
            problems.push(format!("{n}: server error {:?}", codes(n)));
        }
    }
    for n in VALID {
        // intmeth and esc02 carry methods nobody implements (`!interesting-
        // Method0123456789_*+`.%indeed'~`, `RE%47IST%45R`, which is not
        // REGISTER): a UAS answers those 501 Not Implemented (RFC 3261
        // §21.5.2). Any other 5xx, a 400 or a 505 is a refusal.
        let unknown_method = UNKNOWN_METHOD.contains(n);
        if finals(n).is_empty() {
            problems.push(format!("{n}: valid request got no final answer"));
        }
        if finals(n)
            .iter()
            .any(|c| *c == 400 || *c == 505 || (*c >= 500 && !(unknown_method && *c == 501)))
        {
            problems.push(format!("{n}: valid message refused: {:?}", codes(n)));
        }
    }
    for n in RESPONSES {
        if !codes(n).is_empty() {
            problems.push(format!(
                "{n} is a response, yet was answered: {:?}",
                codes(n)
            ));
        }
    }
    assert!(
        d.is_alive(),
        "sipacd died during the torture run:\n{}",
        d.stderr()
    );
    assert!(
        !d.stderr().contains("panicked"),
        "sipacd panicked:\n{}",
        d.stderr()
    );
    assert_eq!(
        common::sip::options_status(d.sip_port(), Duration::from_secs(2)),
        Some(200),
        "sipacd no longer answers OPTIONS after the torture messages"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // RFC 4475 §3.3.7 and §3.3.8: the answer names what we lack.
    let bext01 = final_text("bext01");
    assert!(bext01.starts_with("SIP/2.0 420 "), "bext01: {bext01}");
    assert!(
        bext01.contains("Unsupported: nothingSupportsThis, nothingSupportsThisEither"),
        "bext01: {bext01}"
    );
    let invut = final_text("invut");
    assert!(invut.starts_with("SIP/2.0 415 "), "invut: {invut}");
    assert!(invut.contains("Accept: application/sdp"), "invut: {invut}");
}
