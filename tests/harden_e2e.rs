//! Against the real daemon: password guessing is blocked per source while
//! the agent registers from elsewhere; values and files that used to pass
//! `check` and crash or hang the daemon are refused; control characters
//! do not reach the log raw; data files are not world-readable; the admin
//! API takes `bearer` in any case; a reload names its number changes.

mod common;

use common::sip::{header, status_code, token};
use common::{parse_diagnostics, sipacd_bin, ConfigDir, ConfigSpec, Daemon};
use common::{AGENT_PASSWORD, DOMAIN};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// A REGISTER client on one loopback address (127.0.0.x), so that tests
/// can play an attacker and an agent from different sources.
struct Registrant {
    sock: UdpSocket,
    port: u16,
    daemon: SocketAddr,
    call_id: String,
    cseq: u32,
}

/// What a challenge said: (nonce, opaque).
type Challenge = (String, Option<String>);

impl Registrant {
    fn new(ip: [u8; 4], daemon: u16) -> Registrant {
        let sock = UdpSocket::bind(SocketAddr::from((ip, 0))).unwrap();
        let port = sock.local_addr().unwrap().port();
        Registrant {
            sock,
            port,
            daemon: SocketAddr::from(([127, 0, 0, 1], daemon)),
            call_id: format!("guess-{}", token()),
            cseq: 0,
        }
    }

    fn ip(&self) -> String {
        self.sock.local_addr().unwrap().ip().to_string()
    }

    /// Sends one REGISTER for `user` (with `auth` lines) and returns the
    /// final response.
    fn send(&mut self, user: &str, auth: &str) -> String {
        self.cseq += 1;
        let (ip, port, cseq) = (self.ip(), self.port, self.cseq);
        let msg = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK{br};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag={tag}\r\n\
             To: <sip:{user}@{DOMAIN}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{ip}:{port}>\r\nExpires: 300\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            br = token(),
            tag = token(),
            cid = self.call_id,
        );
        self.sock.send_to(msg.as_bytes(), self.daemon).unwrap();
        let want = format!("{cseq} REGISTER");
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 65536];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.sock.set_read_timeout(Some(left)).unwrap();
            let Ok(n) = self.sock.recv(&mut buf) else {
                break;
            };
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if status_code(&m).is_some_and(|c| c >= 200)
                && header(&m, "CSeq", None) == Some(want.as_str())
            {
                return m;
            }
        }
        panic!("no answer to REGISTER {cseq} from {ip}");
    }

    /// A REGISTER without credentials: the challenge, or None when the
    /// answer was not a 401 (a blocked source gets 403).
    fn challenge(&mut self, user: &str) -> Result<Challenge, u16> {
        let m = self.send(user, "");
        let code = status_code(&m).unwrap_or(0);
        if code != 401 {
            return Err(code);
        }
        let www = header(&m, "WWW-Authenticate", None).expect("WWW-Authenticate");
        let param = |name: &str| {
            www.split(',')
                .map(|p| p.trim().trim_start_matches("Digest ").trim())
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        Ok((param("nonce").expect("nonce"), param("opaque")))
    }

    /// Answers `challenge` for `user` with `password` at count `nc`.
    fn answer(&mut self, user: &str, password: &str, c: &Challenge, nc: u32) -> u16 {
        use md5::{Digest, Md5};
        let hex = |s: String| format!("{:x}", Md5::digest(s.as_bytes()));
        let uri = format!("sip:{DOMAIN}");
        let cnonce = token();
        let nc = format!("{nc:08x}");
        let ha1 = hex(format!("{user}:{DOMAIN}:{password}"));
        let ha2 = hex(format!("REGISTER:{uri}"));
        let response = hex(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.0));
        let mut auth = format!(
            "Authorization: Digest username=\"{user}\", realm=\"{DOMAIN}\", nonce=\"{}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, \
             cnonce=\"{cnonce}\"",
            c.0
        );
        if let Some(o) = &c.1 {
            auth.push_str(&format!(", opaque=\"{o}\""));
        }
        auth.push_str("\r\n");
        status_code(&self.send(user, &auth)).unwrap_or(0)
    }
}

/// The address the `failregex` of `contrib/fail2ban/filter.d/sipacd.conf`
/// takes from `line`, matched with Python's `re` as fail2ban does (its
/// `<ADDR>` stood in for by an IPv4/IPv6 pattern).
fn fail2ban_match(line: &str) -> Option<String> {
    let conf = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib/fail2ban/filter.d/sipacd.conf"),
    )
    .unwrap();
    let regex = conf
        .lines()
        .find_map(|l| l.strip_prefix("failregex = "))
        .expect("failregex");
    let script = "import re,sys\n\
        r=sys.argv[1].replace('<ADDR>','(?P<addr>[0-9A-Fa-f:.]+)')\n\
        m=re.search(r,sys.argv[2])\n\
        print(m.group('addr') if m else '')";
    let out = Command::new("python3")
        .args(["-c", script, regex, line])
        .output()
        .expect("python3 (to match the fail2ban filter)");
    let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!found.is_empty()).then_some(found)
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn get(url: &str, auth: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5"]);
    if let Some(a) = auth {
        cmd.args(["-H", &format!("Authorization: {a}")]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn guessing_is_blocked_per_source_while_the_agent_registers_from_elsewhere() {
    let mut spec = ConfigSpec::new();
    spec.server_extra = "auth_max_failures = 5\nauth_window_s = 60\nauth_block_s = 3\n".to_string();
    let d = Daemon::start_with(spec);
    let port = d.sip_port();
    let mut attacker = Registrant::new([127, 0, 0, 2], port);

    // Each wrong guess spends its nonce: reusing it with the next nc is
    // challenged again, without the answer being checked.
    let c = attacker.challenge("1001").unwrap();
    assert_eq!(attacker.answer("1001", "guess-0", &c, 1), 403);
    assert_eq!(attacker.answer("1001", AGENT_PASSWORD, &c, 2), 401);

    // Four more wrong guesses, each with a fresh challenge: the fifth
    // failure blocks the source.
    for i in 1..5 {
        let c = attacker
            .challenge("1001")
            .unwrap_or_else(|code| panic!("blocked too early, at guess {i}: {code}"));
        assert_eq!(attacker.answer("1001", &format!("guess-{i}"), &c, 1), 403);
    }
    // Blocked: no challenge any more, and the right password (here on a
    // nonce obtained before the block) does not help.
    assert_eq!(attacker.challenge("1001"), Err(403));
    assert_eq!(attacker.answer("1001", AGENT_PASSWORD, &c, 2), 403);
    assert_eq!(attacker.challenge("no-such-user"), Err(403));

    // The agent, from another address, registers at once.
    let mut agent = Registrant::new([127, 0, 0, 3], port);
    let c = agent.challenge("1001").unwrap();
    assert_eq!(agent.answer("1001", AGENT_PASSWORD, &c, 1), 200);

    let (_, m) = get(&format!("{}/metrics", d.admin_url()), None);
    assert_eq!(metric(&m, "sipacd_sip_auth_failures_total"), 5.0, "{m}");
    assert_eq!(metric(&m, "sipacd_sip_auth_blocks_total"), 1.0, "{m}");
    assert_eq!(
        metric(&m, "sipacd_sip_auth_blocked_requests_total"),
        3.0,
        "{m}"
    );
    assert!(d.wait_for_log(WAIT, |l| l
        .contains("source blocked after repeated failed REGISTERs")
        && l.contains("127.0.0.2")));
    // The shipped fail2ban filter finds the blocked source in that line.
    let line = d
        .stderr()
        .lines()
        .find(|l| l.contains("source blocked after"))
        .unwrap()
        .to_string();
    assert_eq!(
        fail2ban_match(&line).as_deref(),
        Some("127.0.0.2"),
        "{line}"
    );
    // The gauge of blocked sources follows (set each housekeeping second).
    let blocked_now = || {
        let (_, m) = get(&format!("{}/metrics", d.admin_url()), None);
        metric(&m, "sipacd_sip_auth_blocked_sources")
    };
    common::wait_until("one source blocked", WAIT, || blocked_now() == 1.0);

    // After its block the source is challenged again, and the right
    // password works.
    std::thread::sleep(Duration::from_millis(3_200));
    let c = attacker
        .challenge("1001")
        .expect("unblocked after auth_block_s");
    assert_eq!(attacker.answer("1001", AGENT_PASSWORD, &c, 1), 200);
    common::wait_until("no source blocked", WAIT, || blocked_now() == 0.0);
}

#[test]
fn a_guessing_run_is_stopped_within_the_limit_and_logs_stay_short() {
    let mut spec = ConfigSpec::new();
    spec.server_extra = "auth_max_failures = 10\nauth_block_s = 60\n".to_string();
    let d = Daemon::start_with(spec);
    let mut attacker = Registrant::new([127, 0, 0, 4], d.sip_port());
    // A dictionary run: at most 10 guesses get an answer that is checked.
    let mut checked = 0;
    for i in 0..200 {
        match attacker.challenge("1001") {
            Ok(c) => {
                assert_eq!(attacker.answer("1001", &format!("pw{i}"), &c, 1), 403);
                checked += 1;
            }
            Err(code) => assert_eq!(code, 403),
        }
    }
    assert_eq!(checked, 10);
    // 10 failures and 190 refusals: far fewer log lines than requests.
    let log = d.stderr();
    let lines = log
        .lines()
        .filter(|l| {
            l.contains("REGISTER with failing credentials") || l.contains("REGISTER refused")
        })
        .count();
    assert!(lines <= 25, "{lines} lines:\n{log}");
}

/// Runs `sipacd check`, giving up (and failing) after `limit`: a hang
/// guard, not a speed limit (the output is read while it runs, so a long
/// list of errors cannot fill the pipe and stall it).
fn check_within(path: &std::path::Path, limit: Duration) -> (Option<i32>, String) {
    let child = Command::new(sipacd_bin())
        .arg("check")
        .arg("--config")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sipacd check");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.expect("sipacd check output"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("sipacd check still running after {limit:?}");
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn mkfifo(path: &std::path::Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success());
}

#[test]
fn check_refuses_fifos_promptly() {
    let dir = ConfigDir::new(ConfigSpec::new());
    // A prompt that is a named pipe, with no writer.
    std::fs::remove_file(dir.root().join("prompts/moh.wav")).unwrap();
    mkfifo(&dir.root().join("prompts/moh.wav"));
    let (code, out) = check_within(&dir.config_path(), Duration::from_secs(10));
    assert_eq!(code, Some(1), "{out}");
    let d = parse_diagnostics(&out);
    assert_eq!(d.len(), 1, "{out}");
    let music = dir.spec.render(dir.root());
    let line = music
        .lines()
        .position(|l| l.starts_with("music ="))
        .unwrap()
        + 1;
    assert_eq!(d[0].1 as usize, line, "{out}");
    assert!(
        d[0].3.contains("named pipe (FIFO), not a regular file"),
        "{out}"
    );

    // The configuration file itself a named pipe.
    let fifo = dir.root().join("fifo.toml");
    mkfifo(&fifo);
    let (code, out) = check_within(&fifo, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("is a named pipe (FIFO), not a regular file"),
        "{out}"
    );
}

#[test]
fn a_reload_naming_a_fifo_is_refused_and_sigterm_still_stops_the_daemon() {
    let mut d = Daemon::start_with(ConfigSpec::new());
    let moh = d.cfg.root().join("prompts/moh.wav");
    std::fs::remove_file(&moh).unwrap();
    mkfifo(&moh);
    d.signal("HUP");
    assert!(
        d.wait_for_log(WAIT, |l| l
            .contains("named pipe (FIFO), not a regular file")),
        "reload did not report the FIFO:\n{}",
        d.stderr()
    );
    // A second reload is not stuck behind the first, and SIGTERM ends it.
    d.signal("HUP");
    common::wait_until("a second rejected reload", WAIT, || {
        d.stderr().matches("reload rejected").count() >= 2
    });
    let uac = common::sip::Uac::new(d.sip_port());
    assert_eq!(uac.options(WAIT), Some(200));
    d.signal("TERM");
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("exit after SIGTERM");
    assert!(st.success(), "{st}");
}

#[test]
fn check_refuses_values_that_would_crash_the_daemon() {
    const HUGE: &str = "9223372036854775807";
    let mut spec = ConfigSpec::new();
    spec.server_extra = String::new();
    let dir = ConfigDir::new(spec);
    let text = dir
        .spec
        .render(dir.root())
        .replace("drain_s = 2", &format!("drain_s = {HUGE}"))
        .replace("ring_s = 5", &format!("ring_s = {HUGE}"))
        .replace(
            "strategy = \"longest_idle\"",
            &format!("strategy = \"longest_idle\"\nring_timeout_s = {HUGE}\nmax_wait_s = {HUGE}"),
        );
    dir.write_text(&text);
    let (code, out) = check_within(&dir.config_path(), Duration::from_secs(20));
    assert_eq!(code, Some(1), "{out}");
    let diags = parse_diagnostics(&out);
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    for key in ["drain_s", "ring_s", "ring_timeout_s", "max_wait_s"] {
        let line = line_of(&format!("{key} = {HUGE}"));
        assert!(
            diags.iter().any(|(_, l, c, m)| *l as usize == line
                && *c as usize == key.len() + 4
                && m.starts_with(&format!("{key} = {HUGE} is out of range"))),
            "{key} at {line}: {out}"
        );
    }
    assert_eq!(diags.len(), 4, "{out}");

    // An empty file is refused too (a reload of it would drop every number).
    dir.write_text("");
    let (code, out) = check_within(&dir.config_path(), Duration::from_secs(20));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("no [server] table") && out.contains("routes no [[numbers]]"),
        "{out}"
    );
}

#[test]
fn check_reports_every_one_of_many_errors_at_its_line() {
    // 20,000 unknown keys: every one reported, at its own line (this took
    // minutes when each error's line was found by scanning the file; the
    // time is measured in benches/config_check.rs, not asserted here).
    let dir = ConfigDir::new(ConfigSpec::new());
    let mut text = dir.spec.render(dir.root());
    let first = text.lines().count() + 2;
    text.push_str("\n[queues.many]\n");
    for i in 0..20_000 {
        text.push_str(&format!("bogus_{i} = 1\n"));
    }
    dir.write_text(&text);
    let (code, out) = check_within(&dir.config_path(), Duration::from_secs(60));
    assert_eq!(code, Some(1));
    let diags = parse_diagnostics(&out);
    assert_eq!(diags.len(), 20_000);
    assert_eq!(diags[0].1 as usize, first + 1, "{:?}", diags[0]);
    assert_eq!(
        diags[19_999].1 as usize,
        first + 20_000,
        "{:?}",
        diags[19_999]
    );
}

#[test]
fn an_empty_or_numberless_file_is_refused_on_reload() {
    let mut spec = ConfigSpec::new();
    spec.admin_token = "tok".into();
    let d = Daemon::start_with(spec);
    let url = format!("{}/api/v1/reload", d.admin_url());
    let post = |auth: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "--max-time",
                "10",
                "-X",
                "POST",
            ])
            .args(["-H", &format!("Authorization: {auth}")])
            .args(["-H", "Content-Type: application/json", "-d", "{}"])
            .arg(&url)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse::<u16>().unwrap_or(0), body.to_string())
    };
    d.cfg.write_text("");
    let (code, body) = post("Bearer tok");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("routes no [[numbers]]"), "{body}");
    // The numbers still answer.
    let uac = common::sip::Uac::new(d.sip_port());
    assert_eq!(uac.invite("1600", WAIT).last(), Some(&200));

    // A reload that changes numbers names each change; `bearer` in lower
    // case is the same scheme.
    let text = d
        .cfg
        .spec
        .render(d.cfg.root())
        .replace("number = \"1600\"", "number = \"1601\"")
        .replace("ring_s = 5", "ring_s = 4");
    d.cfg.write_text(&text);
    let (code, body) = post("bearer tok");
    assert_eq!(code, 200, "{body}");
    for want in [
        "number 1600 removed",
        "number 1601 added",
        "number 1501 changed: ring_s 5 -> 4",
    ] {
        assert!(body.contains(want), "{want}: {body}");
    }
    let (code, _) = get(
        &format!("{}/api/v1/queues", d.admin_url()),
        Some("BEARER tok"),
    );
    assert_eq!(code, 200);
    let (code, _) = get(
        &format!("{}/api/v1/queues", d.admin_url()),
        Some("Basic tok"),
    );
    assert_eq!(code, 401);
}

#[test]
fn control_characters_are_escaped_in_the_log_and_queue_log_and_files_are_private() {
    let mut spec = ConfigSpec::new();
    spec.server_extra = "queue_log = \"queue_log\"\n".to_string();
    let d = Daemon::start_with(spec);
    // An INVITE whose Call-ID carries a terminal escape: the call is
    // logged with its Call-ID.
    let uac = common::sip::Uac::new(d.sip_port());
    let cid = format!("esc{}\u{1b}[2Jmark", token());
    uac.send(uac.request("INVITE", "1600", &cid, 1).as_bytes());
    let escaped = cid.replace('\u{1b}', "\\x1b");
    assert!(
        d.wait_for_log(WAIT, |l| l.contains(&escaped)),
        "Call-ID not logged (escaped):\n{}",
        d.stderr()
    );
    // A pause reason with a line break and a forged queue_log line.
    let mut r = Registrant::new([127, 0, 0, 5], d.sip_port());
    let c = r.challenge("1001").unwrap();
    assert_eq!(r.answer("1001", AGENT_PASSWORD, &c, 1), 200);
    let reason = "lunch\n1700000000|NONE|support|1001|FORGED|\u{1b}[2J";
    let body = serde_json::json!({"state": "paused", "reason": reason}).to_string();
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-d", &body])
        .arg(format!("{}/api/v1/agents/1001/state", d.admin_url()))
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("paused"),
        "{out:?}"
    );
    let qlog = d.cfg.root().join("data/queue_log");
    common::wait_until("PAUSE in queue_log", WAIT, || {
        std::fs::read_to_string(&qlog).is_ok_and(|t| t.contains("|PAUSE|"))
    });
    let text = std::fs::read_to_string(&qlog).unwrap();
    assert!(
        !text.contains("|FORGED|") && !text.contains('\u{1b}'),
        "{text:?}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("1700000000")),
        "{text:?}"
    );
    let log = d.stderr();
    assert!(!log.contains('\u{1b}') && !log.contains('\r'), "{log:?}");
    assert!(!log.lines().any(|l| l.starts_with("1700000000")), "{log:?}");

    // Files the daemon made are not readable by others, whatever the
    // umask of the shell that started it.
    use std::os::unix::fs::PermissionsExt;
    // The bindings file is written by its writer within a second.
    let bindings = d.cfg.root().join("data").join("registrations.json");
    common::wait_until("registrations.json written", Duration::from_secs(5), || {
        bindings.exists()
    });
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(d.cfg.root().join("data")).unwrap() {
        let e = entry.unwrap();
        let mode = e.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "{} is {mode:o}", e.path().display());
        seen.push(e.file_name().to_string_lossy().into_owned());
    }
    for f in ["calls.sqlite", "registrations.json", "queue_log"] {
        assert!(seen.iter().any(|s| s == f), "{f} not in {seen:?}");
    }
}

#[test]
fn an_unacknowledged_404_is_not_retransmitted() {
    let d = Daemon::start_with(ConfigSpec::new());
    let uac = common::sip::Uac::new(d.sip_port());
    let cid = format!("rej-{}", token());
    let invite = uac.request("INVITE", "9999", &cid, 1);
    uac.send(invite.as_bytes());
    // Timer G would have resent it at 0.5, 1.5 and 3.5 s.
    let got = uac.drain(Duration::from_secs(4));
    let finals: Vec<u16> = got
        .iter()
        .filter_map(|m| status_code(m))
        .filter(|c| *c >= 200)
        .collect();
    assert_eq!(finals, [404], "{got:#?}");
    // A retransmitted INVITE gets the answer again, once.
    uac.send(invite.as_bytes());
    let got = uac.drain(Duration::from_secs(2));
    let finals: Vec<u16> = got
        .iter()
        .filter_map(|m| status_code(m))
        .filter(|c| *c >= 200)
        .collect();
    assert_eq!(finals, [404], "{got:#?}");
}
