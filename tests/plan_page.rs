//! The admin server's `/plan` page and `GET /api/v1/plan`, on the real
//! daemon, the page in a real headless Chromium (DevTools protocol, as the
//! wallboard's test): the queue `help` opens 08:00-20:00 Berlin time every
//! day and its only agent works 08:00-18:00 there, so every day has a gap
//! 18:00-20:00. The page must mark exactly those cells, carry no script,
//! and the screenshot (`target/tmp/plan-page.png`) must show a gap cell in
//! the gap colour and a closed one in the closed colour, read back from the
//! PNG's pixels.
//!
//! Needs Debian's `chromium`; without it the test fails (see
//! `common::require`).

mod common;

use base64::Engine as _;
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
const TOKEN: &str = "plan-t0ken";
const WAIT: Duration = Duration::from_secs(20);

const EXTRA: &str = r#"
[schedules.berlin_day]
timezone = "Europe/Berlin"
open = ["mon-sun 08:00-20:00"]

[agents.2001]
name = "Bernd"
password = "x"
timezone = "Europe/Berlin"
shift = ["mon-sun 08:00-18:00"]
skills = { night = 5 }

[queues.help]
skills = { night = 3 }
schedule = "berlin_day"
"#;

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-crash-reporter",
                "--disable-breakpad",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
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
        let port: u16 = browser_ws
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {browser_ws}"));
        let (_, list) = get(port, "/json/list", None);
        let list: Value = serde_json::from_str(&list).unwrap();
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

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r["exceptionDetails"].is_null(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    fn wait_for(&mut self, what: &str, expr: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.eval(expr) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let body = self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''");
        panic!("the page never showed {what}; page says: {body}");
    }
}

/// GET on its own connection (closed by the server after the answer).
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Bodies here are small and sent with a length (no chunking).
    (status, body.to_owned())
}

fn shot_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn plan_api_and_page_show_the_evening_gap() {
    let mut spec = ConfigSpec::new();
    spec.admin_token = TOKEN.to_owned();
    spec.extra = EXTRA.to_owned();
    let port = spec.admin_port;
    let daemon = Daemon::start_with(spec);

    // The API: behind the token, same data as `sipacd plan --format json`.
    let q = "/api/v1/plan?from=2027-01-04&queue=help&history_weeks=0";
    assert_eq!(get(port, q, None).0, 401);
    let (status, body) = get(port, q, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let help = &v["queues"][0];
    assert_eq!(help["queue"], "help");
    let gaps: Vec<(&str, &str)> = help["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "gap")
        .map(|r| {
            (
                r["start_local"].as_str().unwrap(),
                r["end_local"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(gaps.len(), 7, "{gaps:?}");
    assert_eq!(gaps[0], ("2027-01-04 18:00", "2027-01-04 20:00"));
    assert_eq!(gaps[6], ("2027-01-10 18:00", "2027-01-10 20:00"));
    assert_eq!(get(port, "/api/v1/plan?interval=7", Some(TOKEN)).0, 400);

    if !require(Path::new(CHROMIUM).exists(), "chromium") {
        return;
    }
    let mut b = Browser::start();
    b.call("Page.enable", json!({}));
    let url = format!(
        "{}/plan?from=2027-01-04&history_weeks=0&token={TOKEN}",
        daemon.admin_url()
    );
    b.call("Page.navigate", json!({"url": url}));
    let gap_cells = "document.querySelectorAll('section[data-queue=\"help\"] rect.gap')";
    b.wait_for(
        "the gap cells",
        &format!("{gap_cells}.length > 0 && document.readyState === 'complete'"),
    );
    // 18:00-20:00 on 7 days, 30-minute cells: 28, all at 18:00..19:30.
    assert_eq!(b.eval(&format!("{gap_cells}.length")), json!(28));
    let locals = b.eval(&format!(
        "[...new Set([...{gap_cells}].map(r => r.dataset.local))].sort().join(',')"
    ));
    assert_eq!(locals, json!("18:00,18:30,19:00,19:30"));
    assert_eq!(
        b.eval("document.querySelectorAll('section[data-queue=\"help\"] li.gap').length"),
        json!(7)
    );
    // The harness's support queue has its always-on agent: no gap.
    assert_eq!(
        b.eval("document.querySelectorAll('section[data-queue=\"support\"] rect.gap').length"),
        json!(0)
    );
    assert_eq!(b.eval("document.scripts.length"), json!(0));

    // The screenshot, read back: a gap cell's pixels are the gap colour
    // (#dc2626), a closed cell's (07:00) the closed colour (#e5e7eb).
    let r = b.call("Page.captureScreenshot", json!({"format": "png"}));
    let data = r["data"].as_str().expect("screenshot data").to_owned();
    let png = base64::engine::general_purpose::STANDARD
        .decode(&data)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(shot_path("plan-page.png"), &png).unwrap();
    let probe = |sel: &str| {
        format!(
            "(() => {{ const r = document.querySelector('{sel}').getBoundingClientRect();
                 return [Math.round(r.left + 3), Math.round(r.top + 3)]; }})()"
        )
    };
    let gap_at = b.eval(&probe(
        "section[data-queue=\"help\"] rect.gap[data-local=\"18:00\"]",
    ));
    let closed_at = b.eval(&probe(
        "section[data-queue=\"help\"] rect.closed[data-local=\"07:00\"]",
    ));
    let pixel = |b: &mut Browser, at: &Value| {
        b.eval(&format!(
            "new Promise(ok => {{ const i = new Image(); i.onload = () => {{
                const c = document.createElement('canvas'); c.width = i.width; c.height = i.height;
                const g = c.getContext('2d'); g.drawImage(i, 0, 0);
                ok([...g.getImageData({x}, {y}, 1, 1).data].slice(0, 3)); }};
              i.src = 'data:image/png;base64,{data}'; }})",
            x = at[0],
            y = at[1]
        ))
    };
    let near = |px: &Value, want: [i64; 3]| {
        px.as_array().is_some_and(|p| {
            p.iter()
                .zip(want)
                .all(|(a, w)| (a.as_i64().unwrap_or(-99) - w).abs() <= 6)
        })
    };
    let gap_px = pixel(&mut b, &gap_at);
    assert!(
        near(&gap_px, [0xdc, 0x26, 0x26]),
        "gap cell pixel {gap_px} at {gap_at}"
    );
    let closed_px = pixel(&mut b, &closed_at);
    assert!(
        near(&closed_px, [0xe5, 0xe7, 0xeb]),
        "closed cell pixel {closed_px} at {closed_at}"
    );
}
