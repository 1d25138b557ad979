//! Tests of loading and validation. Each error test asserts where the error
//! points (line:col) as well as what it says.

use super::wav::tests::wav_bytes;
use super::*;
use std::net::SocketAddr;
use std::path::Path;

/// A temp dir with `p/menu.wav` (PCM16), `p/ulaw.wav`, `p/stereo.wav`.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("menu.wav"), wav_bytes(1, 1, 8000, 16, 8)).unwrap();
    std::fs::write(p.join("ulaw.wav"), wav_bytes(7, 1, 8000, 8, 8)).unwrap();
    std::fs::write(p.join("stereo.wav"), wav_bytes(1, 2, 8000, 16, 8)).unwrap();
    dir
}

const BASE: &str = r#"[server]
prompts = "p"

[schedules.office]
open = ["mon-fri 08:00-20:00"]

[agents.1001]
password = "x"
skills = { billing = 5 }

[queues.billing]
skills = { billing = 3 }

[[numbers]]
number = "1500"
to = "ivr:main"

[ivr.main]
start = "menu"

[ivr.main.nodes.menu]
type = "menu"
prompt = "menu.wav"
options = { "1" = "q" }

[ivr.main.nodes.q]
type = "queue"
queue = "billing"
"#;

fn parse_in(dir: &Path, text: &str) -> Result<Config, ConfigErrors> {
    parse_str(text, &dir.join("sipacd.toml"))
}

/// Errors as `(line, col, message)`.
fn errs(text: &str) -> Vec<(usize, usize, String)> {
    let dir = setup();
    match parse_in(dir.path(), text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.into_iter().map(|e| (e.line, e.col, e.message)).collect(),
    }
}

/// Asserts an error at `line:col` whose message contains `needle`.
fn has(errors: &[(usize, usize, String)], line: usize, col: usize, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|(l, c, m)| *l == line && *c == col && m.contains(needle)),
        "no error {line}:{col} containing {needle:?} in {errors:#?}"
    );
}

#[test]
fn base_config_is_valid() {
    let dir = setup();
    let c = parse_in(dir.path(), BASE).unwrap();
    assert_eq!(c.numbers.len(), 1);
    assert_eq!(
        c.numbers[0].to,
        Target::Ivr { ivr: "main".into(), node: "menu".into() }
    );
    let Node::Menu { options, timeout_s, retries, on_fail, prompt } = &c.ivrs["main"].nodes["menu"] else {
        panic!("menu expected");
    };
    assert_eq!(options[&'1'], Target::Ivr { ivr: "main".into(), node: "q".into() });
    assert_eq!((*timeout_s, *retries), (5, 2));
    assert_eq!(*on_fail, Target::Hangup);
    assert_eq!(*prompt, dir.path().join("p").join("menu.wav"));
    assert_eq!(c.agents["1001"].credential, Some(Credential::Password("x".into())));
    assert_eq!(c.agents["1001"].name, "1001");
    assert_eq!(c.source_path, dir.path().join("sipacd.toml"));
}

#[test]
fn empty_file_gets_documented_defaults() {
    let c = parse_str("", Path::new("/etc/sipacd/sipacd.toml")).unwrap();
    let s = &c.server;
    assert_eq!(s.sip.len(), 2);
    assert_eq!(s.sip[0].to_string(), "udp:0.0.0.0:5060");
    assert_eq!(s.sip[1].transport, crate::sip::Transport::Tcp);
    assert_eq!(s.advertise.to_string(), "127.0.0.1");
    assert_eq!(s.domain, "127.0.0.1");
    assert_eq!(s.rtp_ports, 10000..=20000);
    assert_eq!(s.admin, "127.0.0.1:8088".parse::<SocketAddr>().unwrap());
    assert_eq!(s.admin_token, None);
    assert_eq!(s.digest_algorithms, vec![DigestAlgorithm::Md5]);
    assert_eq!(s.data_dir, Path::new("/etc/sipacd/data"));
    assert_eq!(s.prompts, Path::new("/etc/sipacd/prompts"));
    assert_eq!(s.timezone, chrono_tz::UTC);
    assert_eq!((s.drain_s, s.max_calls, s.rtp_timeout_s), (30, 5000, 60));
    // A bare file name resolves against the working directory.
    let c = parse_str("", Path::new("sipacd.toml")).unwrap();
    assert_eq!(c.server.data_dir, Path::new("./data"));
}

#[test]
fn demo_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sipacd.toml");
    let c = match load(&path) {
        Ok(c) => c,
        Err(e) => panic!("demo config rejected:\n{e}"),
    };
    assert_eq!(c.server.sip.len(), 2);
    assert_eq!(c.server.admin.port(), 8088);
    assert!(c.server.prompts.join("moh.wav").exists());
    assert!(c.server.data_dir.ends_with("config/../data"));
    assert!(c.queues.len() >= 3);
    assert_eq!(c.agents.len(), 4);
    let zones: std::collections::BTreeSet<_> = c.agents.values().map(|a| a.timezone.name()).collect();
    assert!(zones.len() >= 3);
    let to: Vec<_> = c.numbers.iter().map(|n| (n.number.as_str(), n.to.to_string())).collect();
    assert_eq!(to, [("1500", "ivr:main.hours".to_string()), ("1501", "queue:support".to_string())]);
    assert_eq!(
        c.queues["billing"].closed,
        Some(Target::Ivr { ivr: "main".into(), node: "after_hours".into() })
    );
}

#[test]
fn broken_file_reports_path_line_col() {
    let e = parse_str("[server]\nadmin = \"127.0.0.1:8088\"\nsip = [\n", Path::new("conf/x.toml"))
        .unwrap_err();
    assert_eq!(e.0.len(), 1);
    let shown = e.to_string();
    assert!(shown.starts_with("conf/x.toml:"), "{shown}");
    let e = &e.0[0];
    assert_eq!(e.line, 4);
    assert_eq!(shown, format!("conf/x.toml:{}:{}: {}", e.line, e.col, e.message));
}

#[test]
fn unknown_keys_are_errors() {
    let e = errs("[server]\nadmin = \"127.0.0.1:1\"\nsipp = []\n");
    assert_eq!(e.len(), 1);
    has(&e, 3, 1, "sipp");
    let e = errs("[queues.q]\nstrategy = \"random\"\n  ring_timeout = 3\n");
    has(&e, 3, 3, "ring_timeout");
    let e = errs("[ivrs.main]\nstart = \"x\"\n");
    has(&e, 1, 2, "ivrs");
}

#[test]
fn load_missing_file_is_an_error() {
    let e = load(Path::new("/nonexistent/sipacd.toml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/sipacd.toml:1:1: cannot read"));
}
