//! The wallboard (`GET /`) in a real headless Chromium, driven over the
//! DevTools protocol: the page is loaded first, then a call is placed, and
//! the page must show it waiting (from the event stream: the page is not
//! reloaded), then answered by an agent whose state it shows. Screenshots
//! go to `target/tmp/wallboard-*.png`.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it); without it the test
//! is skipped with a note, or fails when CI is set.

mod common;

use base64::Engine as _;
use common::phone::{AgentPhone, Caller};
use common::{require, ConfigSpec, Daemon};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "wall-t0ken";
/// Generous: a loaded CI machine starting a browser.
const WAIT: Duration = Duration::from_secs(20);

/// The browser process, killed when dropped (also when the test panics
/// while it starts).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium with one page, controlled over its DevTools socket.
struct Browser {
    _child: Process,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    log: Arc<Mutex<String>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-crash-reporter",
                "--disable-breakpad",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1400,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        let mut child = Process(child);
        // Chromium says where DevTools listens on stderr; the rest of its
        // stderr is kept (and drained, so it never blocks) for failures.
        let stderr = child.0.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
                let mut l = keep.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let browser_ws = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!("chromium did not start DevTools:\n{}", log.lock().unwrap())
        });
        // ws://127.0.0.1:PORT/devtools/browser/ID: the page's socket is
        // listed on the same port.
        let port: u16 = browser_ws
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {browser_ws}"));
        let (_, list) = http(port, "GET", "/json/list", None, None);
        let page = list
            .as_array()
            .and_then(|l| l.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target in {list}"))
            .to_owned();
        let (ws, _) = tungstenite::connect(page.as_str()).unwrap();
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(WAIT)).unwrap();
        }
        Browser {
            _child: child,
            ws,
            next_id: 0,
            log,
            _profile: profile,
        }
    }

    /// One DevTools command; returns its `result` (events are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().unwrap_or_else(|e| {
                panic!(
                    "DevTools {method}: {e}\nchromium:\n{}",
                    self.log.lock().unwrap()
                )
            });
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "DevTools {method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expr` in the page; returns its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        assert!(r["exceptionDetails"].is_null(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is `true`; panics with `show` evaluated.
    fn wait_for(&mut self, what: &str, expr: &str, show: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.eval(expr) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let state = self.eval(show);
        panic!("the page never showed {what}; page says: {state}");
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = r["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

/// A small HTTP/1.1 request on its own connection; returns the status and
/// the body (by Content-Length) as JSON, Null if it is not.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.unwrap_or("");
    write!(
        &s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).unwrap();
    (code, serde_json::from_slice(&buf).unwrap_or(Value::Null))
}

fn shot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// What the page shows, for failure messages.
const SHOW: &str = "JSON.stringify({conn: document.getElementById('conn').textContent, \
    events: document.getElementById('events-received').textContent, \
    error: document.getElementById('error').textContent, \
    queues: document.getElementById('queues').innerText, \
    agents: document.getElementById('agents').innerText})";

fn waiting(queue: &str) -> String {
    format!("document.querySelector('[data-queue=\"{queue}\"] .waiting b')?.textContent")
}

/// One of the agent counts of a queue tile (`available`, `busy`, ...).
fn tile_count(queue: &str, which: &str) -> String {
    format!(
        "document.querySelector('[data-queue=\"{queue}\"] .agents-row .{which} b')?.textContent"
    )
}

fn agent_state(id: &str) -> String {
    format!("document.querySelector('tr[data-agent=\"{id}\"] .state')?.textContent")
}

#[test]
fn the_wallboard_sees_a_call_arrive_and_get_answered() {
    if !require(
        Path::new(CHROMIUM).exists(),
        "chromium (Debian package `chromium`)",
    ) {
        return;
    }
    let mut agent = AgentPhone::new("2001");
    let mut spec = ConfigSpec::new();
    spec.admin_token = TOKEN.into();
    spec.extra = agent.toml("name = \"Bob\"\nskills = { support = 3 }");
    let d = Daemon::start_with(spec);
    let admin = d.cfg.spec.admin_port;

    // Without the token the page is refused; with ?token= it is served.
    assert_eq!(http(admin, "GET", "/", None, None).0, 401);
    // Bob is at lunch, so the caller will wait.
    let lunch = r#"{"state":"paused","reason":"lunch"}"#;
    let path = "/api/v1/agents/2001/state";
    assert_eq!(http(admin, "POST", path, Some(TOKEN), Some(lunch)).0, 200);

    let mut b = Browser::start();
    b.call("Page.enable", json!({}));
    let url = format!("{}/?token={TOKEN}", d.admin_url());
    b.call("Page.navigate", json!({"url": url}));
    let w = waiting("support");
    b.wait_for(
        "the live stream and an empty queue",
        &format!(
            "document.getElementById('conn')?.textContent === 'live' && {w} === '0' \
             && ({}) === 'paused (lunch)'",
            agent_state("2001")
        ),
        SHOW,
    );
    let before: u64 = b
        .eval("document.getElementById('events-received').textContent")
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap();

    // The page is up: now the call. It must appear without a reload.
    b.eval("window.__same_page = true");
    let mut caller = Caller::dial(d.sip_port(), "1500");
    b.wait_for(
        "one caller waiting, from the event stream",
        &format!(
            "{w} === '1' && Number(document.getElementById('events-received').textContent) > {before} \
             && document.getElementById('log').textContent.includes('call_queued')"
        ),
        SHOW,
    );
    // The longest wait ticks on its own.
    let longest = "document.querySelector('[data-queue=\"support\"] .longest b')?.textContent";
    b.wait_for(
        "the longest wait ticking",
        &format!("!['0:00', undefined].includes({longest})"),
        SHOW,
    );
    b.screenshot(&shot_path("wallboard-waiting.png"));

    // Bob comes back and answers: the caller no longer waits, Bob is on
    // the call; still the same page.
    let back = r#"{"state":"available"}"#;
    assert_eq!(http(admin, "POST", path, Some(TOKEN), Some(back)).0, 200);
    let inv = agent.expect_invite(WAIT).expect("Bob offered the call");
    agent.answer(&inv);
    b.wait_for(
        "the call answered by Bob",
        &format!(
            "{w} === '0' && ({}) === 'on call' && window.__same_page === true \
             && {} === '1' && {} === '0'",
            agent_state("2001"),
            tile_count("support", "busy"),
            tile_count("support", "paused"),
        ),
        SHOW,
    );
    b.screenshot(&shot_path("wallboard-answered.png"));

    caller.bye();
    agent.expect_bye(WAIT).expect("Bob's leg hung up");
}
