//! The wallboard (`GET /`) in a real headless Chromium, driven over the
//! DevTools protocol at 1920x1080: the page is loaded first, then calls are
//! placed, and the page must show (from the event stream: it is not
//! reloaded) a caller waiting, who talks to whom with the talk time ticking,
//! today's figures per queue with the service level coloured against the
//! target, when the queue closes in its zone and the viewer's, the agent's
//! local time and shift, and the events in plain words; all read from the
//! DOM. Screenshots go to `target/tmp/wallboard-*.png`. The JSON views
//! behind it are checked first, against the call records.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it); without it the
//! browser test fails (see `common::require`).

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
                "--window-size=1920,1080",
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
    let (code, text) = http_text(port, method, path, token, body);
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The same, the body as text.
fn http_text(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
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
    (code, String::from_utf8_lossy(&buf).into_owned())
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

/// The text of the first element matching `sel` inside `scope` (a CSS
/// selector), as a JS expression.
fn text_of(scope: &str, sel: &str) -> String {
    format!("document.querySelector('{scope} {sel}')?.textContent")
}

/// The page's `fmtDur`, for figures read from the views.
fn fmt_dur(secs: f64) -> String {
    let s = secs.max(0.0).floor() as u64;
    let (h, m, r) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{r:02}")
    } else {
        format!("{m}:{r:02}")
    }
}

/// The page's `fmtAt`: `HH:MM` on `tz`'s wall clock, with the weekday
/// when that is not today there.
fn fmt_at(rfc3339: &str, tz: chrono_tz::Tz) -> String {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&tz);
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    if at.date_naive() == today {
        at.format("%H:%M").to_string()
    } else {
        at.format("%a %H:%M").to_string()
    }
}

/// What the browser's clock says it is: the viewer's zone.
const VIEWER_ZONE: &str = "Europe/Berlin";

#[test]
fn the_wallboard_shows_queues_talks_agents_and_events() {
    if !require(
        Path::new(CHROMIUM).exists(),
        "chromium (Debian package `chromium`)",
    ) {
        return;
    }
    let Board {
        d,
        mut agent,
        closes,
        opens,
        shift_ends,
    } = start_board();
    let admin = d.cfg.spec.admin_port;

    // Without the token the page is refused; with ?token= it is served.
    assert_eq!(http(admin, "GET", "/", None, None).0, 401);

    let mut b = Browser::start();
    b.call("Page.enable", json!({}));
    b.call(
        "Emulation.setTimezoneOverride",
        json!({"timezoneId": VIEWER_ZONE}),
    );
    // A wall screen's viewport, whatever the window around it.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": false}),
    );
    let url = format!("{}/?token={TOKEN}", d.admin_url());
    b.call("Page.navigate", json!({"url": url}));
    let w = waiting("billing");
    let bob_state = agent_state("2001");
    b.wait_for(
        "the live stream, an empty queue and Bob available",
        &format!(
            "document.getElementById('conn')?.textContent === 'live' && {w} === '0' \
             && ({bob_state}) === 'available'"
        ),
        SHOW,
    );
    b.eval("window.__same_page = true");

    // The colours against a 90 % target: green at or above it, amber
    // within 10 points, red below.
    assert_eq!(
        b.eval("[slClass(90, 90), slClass(100, 90), slClass(80, 90), slClass(79.9, 90), slClass(null, 90)].join('|')"),
        json!(" good| good| fair| poor|")
    );

    // When billing closes, in its zone and the viewer's.
    let jakarta = chrono_tz::Asia::Jakarta;
    let here: chrono_tz::Tz = VIEWER_ZONE.parse().unwrap();
    let closing = format!(
        "closes {} Asia/Jakarta ({} here)",
        fmt_at(&closes, jakarta),
        fmt_at(&closes, here)
    );
    let next = text_of("[data-queue=\"billing\"]", ".next-change");
    b.wait_for(
        "when billing closes",
        &format!("{next} === {}", json!(closing)),
        SHOW,
    );
    assert_eq!(
        b.eval(&text_of("[data-queue=\"support\"]", ".next-change")),
        json!("open, no closing time")
    );
    let kolkata = chrono_tz::Asia::Kolkata;
    assert_eq!(
        b.eval(&text_of("[data-queue=\"sales\"]", ".next-change")),
        json!(format!(
            "opens {} Asia/Kolkata ({} here)",
            fmt_at(&opens, kolkata),
            fmt_at(&opens, here)
        ))
    );
    assert_eq!(
        b.eval("document.querySelector('[data-queue=\"sales\"]').className"),
        json!("queue closed")
    );
    // Bob's wall clock and shift, in Jakarta.
    let bob_row = "tr[data-agent=\"2001\"]";
    let local = b.eval(&text_of(bob_row, ".local"));
    let local = local.as_str().unwrap_or_default();
    let jkt_now = chrono::Utc::now().with_timezone(&jakarta);
    let minutes = [jkt_now - chrono::Duration::minutes(1), jkt_now];
    assert!(
        minutes
            .iter()
            .any(|t| local == format!("{} Asia/Jakarta", t.format("%H:%M"))),
        "Bob's local time: {local}"
    );
    assert_eq!(
        b.eval(&text_of(bob_row, ".shift")),
        json!(format!("on shift until {}", fmt_at(&shift_ends, jakarta)))
    );

    // 1: answered at once: green against the 90 % target.
    let mut first = Caller::dial_from(d.sip_port(), "1700", "555-0100");
    answer_next(&mut agent);
    let talk = "tr[data-call]";
    b.wait_for(
        "Bob talking to 555-0100",
        &format!(
            "{} === 'Bob ↔ 555-0100' && {} === 'billing'",
            text_of(talk, ".who"),
            text_of(talk, ".in-queue")
        ),
        SHOW,
    );
    first.bye();
    agent.expect_bye(WAIT).expect("the first call hung up");
    let tile = "[data-queue=\"billing\"]";
    b.wait_for(
        "one answered call, within the service level",
        &format!(
            "{} === '1' && {} === '100%' && document.querySelector('{tile} .sl').classList.contains('good')",
            text_of(tile, ".answered b"),
            text_of(tile, ".sl b"),
        ),
        SHOW,
    );

    // 2: abandoned while Bob is at lunch.
    set_state(admin, "2001", r#"{"state":"paused","reason":"lunch"}"#);
    b.wait_for(
        "Bob at lunch",
        &format!("({bob_state}) === 'paused (lunch)'"),
        SHOW,
    );
    let mut second = Caller::dial_from(d.sip_port(), "1700", "555-0199");
    b.wait_for("the second caller waiting", &format!("{w} === '1'"), SHOW);
    // Nobody serves billing (Bob paused): no estimate to show.
    let estwait = text_of(tile, ".estwait b");
    let billing_now = by(&get(admin, "/api/v1/queues"), "name", "billing").clone();
    assert_eq!(
        billing_now["estimated_wait_s"],
        Value::Null,
        "{billing_now}"
    );
    b.wait_for("no estimated wait", &format!("{estwait} === '–'"), SHOW);
    second.bye();

    // 3: waits, from the event stream (the page is not reloaded), then
    // Bob comes back and answers.
    let before: u64 = b
        .eval("document.getElementById('events-received').textContent")
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap();
    let mut third = Caller::dial_from(d.sip_port(), "1700", "555-0101");
    b.wait_for(
        "one caller waiting, from the event stream",
        &format!(
            "{w} === '1' && Number(document.getElementById('events-received').textContent) > {before}"
        ),
        SHOW,
    );
    let longest = text_of(tile, ".longest b");
    b.wait_for(
        "the longest wait ticking",
        &format!("!['0:00', undefined].includes({longest})"),
        SHOW,
    );
    b.screenshot(&shot_path("wallboard-waiting.png"));
    std::thread::sleep(Duration::from_secs(2));
    // How long Bob has been at lunch ticks too.
    b.wait_for(
        "Bob paused for a while",
        &format!(
            "/^0:0[1-9]|^0:[1-5][0-9]/.test({} || '')",
            text_of(bob_row, ".for")
        ),
        SHOW,
    );
    set_state(admin, "2001", r#"{"state":"available"}"#);
    answer_next(&mut agent);
    b.wait_for(
        "the call answered by Bob, talk time ticking",
        &format!(
            "{w} === '0' && ({bob_state}) === 'on call' && window.__same_page === true \
             && {} === '1' && {} === '0' && {} === 'Bob ↔ 555-0101' && {} === '555-0101' \
             && !['0:00', undefined].includes({})",
            tile_count("billing", "busy"),
            tile_count("billing", "paused"),
            text_of(talk, ".who"),
            text_of(talk, ".caller"),
            text_of(talk, ".talk"),
        ),
        SHOW,
    );
    // Bob on a call, nobody waiting: a new caller would wait for Bob, one
    // handle time (learnt from the first call, which lasted well under a
    // second); the tile shows the view's estimate, no longer "–".
    let est = by(&get(admin, "/api/v1/queues"), "name", "billing")["estimated_wait_s"].clone();
    let est = est
        .as_f64()
        .unwrap_or_else(|| panic!("an estimate with Bob busy: {est}"));
    assert!((0.0..5.0).contains(&est), "one short handle time: {est}");
    b.wait_for(
        "the estimated wait of the view",
        &format!("{estwait} === {}", json!(fmt_dur(est))),
        &estwait,
    );
    b.screenshot(&shot_path("wallboard-talking.png"));
    third.bye();
    agent.expect_bye(WAIT).expect("the third call hung up");

    // Today's figures as the view has them, and red: 1 of 3 within 2 s.
    let mut billing = Value::Null;
    common::wait_until("three calls today", WAIT, || {
        billing = by(&get(admin, "/api/v1/queues"), "name", "billing").clone();
        billing["offered_today"] == 3
    });
    let asa = fmt_dur(billing["asa_today_s"].as_f64().unwrap());
    b.wait_for(
        "today's figures on the tile",
        &format!(
            "{} === '3' && {} === '2' && {} === '1 (33%)' && {} === {} && {} === '33%' \
             && document.querySelector('{tile} .sl').classList.contains('poor') \
             && {} === 'service level (target 90% in 2 s)' \
             && document.getElementById('talks-empty').style.display === ''",
            text_of(tile, ".offered b"),
            text_of(tile, ".answered b"),
            text_of(tile, ".abandoned b"),
            text_of(tile, ".asa b"),
            json!(asa),
            text_of(tile, ".sl b"),
            text_of(tile, ".sl span"),
        ),
        SHOW,
    );

    // The events, in plain words. The waits are the records'.
    let recs = final_records(admin, &[&second.call_id, &third.call_id]);
    let abandoned_wait = (recs[0]["ended_ms"].as_i64().unwrap()
        - recs[0]["queued_ms"].as_i64().unwrap()) as f64
        / 1000.0;
    let log =
        b.eval("[...document.querySelectorAll('#log li')].map(li => li.lastChild.textContent)");
    let lines: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let near = |secs: f64| [secs - 0.5, secs, secs + 0.5].map(fmt_dur);
    let said = |want: &[String]| want.iter().any(|w| lines.contains(&w.as_str()));
    let answered: Vec<String> = near(wait_ms(&recs[1]) as f64 / 1000.0)
        .iter()
        .map(|d| format!("Caller 555-0101 waited {d} in billing, answered by Bob"))
        .collect();
    assert!(said(&answered), "no {answered:?} in {lines:#?}");
    let gave_up: Vec<String> = near(abandoned_wait)
        .iter()
        .map(|d| format!("Caller 555-0199 hung up after waiting {d} in billing"))
        .collect();
    assert!(said(&gave_up), "no {gave_up:?} in {lines:#?}");
    for want in [
        "Bob is paused (lunch)",
        "Bob is available",
        "Caller 555-0101 is waiting in billing, position 1",
    ] {
        assert!(lines.contains(&want), "no {want:?} in {lines:#?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Caller 555-0101's call with Bob ended after ")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('{') && !l.contains('=')),
        "not plain words: {lines:#?}"
    );
    b.screenshot(&shot_path("wallboard-today.png"));

    // 4: Bob hangs up, the caller rates the call 4 in billing's survey:
    // the tile's CSAT and Bob's row show it (no score before).
    let csat = text_of(tile, ".csat b");
    assert_eq!(b.eval(&csat), json!("–"));
    assert_eq!(
        b.eval(&text_of(bob_row, ".csat")),
        json!("–"),
        "Bob has no score yet"
    );
    let mut fourth = Caller::dial_from(d.sip_port(), "1700", "555-0104");
    let inv = agent
        .expect_invite(WAIT)
        .expect("Bob offered the fourth call");
    agent.answer(&inv);
    b.wait_for(
        "Bob talking to 555-0104",
        &format!("{} === 'Bob ↔ 555-0104'", text_of(talk, ".who")),
        SHOW,
    );
    let bye = agent.request_in_dialog(&inv, "BYE", 2, None);
    assert!(bye.starts_with("SIP/2.0 200"), "{bye}");
    let mut rated = Value::Null;
    common::wait_until("the caller scored the call", WAIT, || {
        // The survey's prompt may still be starting: press again until
        // the view has the score (a second press of a rated call is
        // ignored; the survey hangs up once it has one).
        let _ = fourth.dtmf_info('4');
        rated = by(&get(admin, "/api/v1/queues"), "name", "billing").clone();
        rated["csat_responses_today"] == 1
    });
    assert_eq!(rated["csat_today"], 4.0, "{rated}");
    // The same score on /metrics, per queue and per agent.
    let (code, metrics) = http_text(admin, "GET", "/metrics", Some(TOKEN), None);
    assert_eq!(code, 200);
    for line in [
        "sipacd_queue_csat_responses_total{queue=\"billing\"} 1",
        "sipacd_queue_csat_mean{queue=\"billing\"} 4.0",
        "sipacd_agent_csat_mean{agent=\"2001\"} 4.0",
        "sipacd_agent_csat_score_total{agent=\"2001\"} 4",
        "sipacd_queue_csat_responses_total{queue=\"sales\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in:\n{metrics}"
        );
    }
    b.wait_for(
        "today's CSAT on the tile and Bob's row",
        &format!(
            "{csat} === '4.0' && {} === 'CSAT (1 score)' && {} === '4.0 (1 score)'",
            text_of(tile, ".csat span"),
            text_of(bob_row, ".csat"),
        ),
        SHOW,
    );
    let log =
        b.eval("[...document.querySelectorAll('#log li')].map(li => li.lastChild.textContent)");
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|l| l == "Caller 555-0104 rated the call with Bob 4 in billing"),
        "{log:#}"
    );
    b.screenshot(&shot_path("wallboard-csat.png"));
}

/// A daily window from `from` to `to` minutes around now on the wall clock
/// of `offset_min` (a zone without DST), and the instant it ends there as
/// RFC 3339 (what the views must say).
/// A caller who chose a callback hangs up, yet still waits on the board:
/// the tile counts it in `waiting` and apart as a callback, and the event
/// log says so in words.
#[test]
fn the_wallboard_counts_a_caller_who_chose_a_callback() {
    if !require(
        Path::new(CHROMIUM).exists(),
        "chromium (Debian package `chromium`)",
    ) {
        return;
    }
    let mut spec = ConfigSpec::new();
    // Nobody serves support (1001 never registers): callers wait.
    spec.support_extra = "\n[queues.support.callback]\ntrunk = \"gw\"\nafter_s = 1\n\
        prompt = \"moh.wav\"\nnumber_prompt = \"moh.wav\"\naccepted_prompt = \"moh.wav\"\n\
        agent_prompt = \"moh.wav\"\n"
        .into();
    spec.extra = "\n[trunks.gw]\nuri = \"sip:gw@127.0.0.1:9\"\n".into();
    let d = Daemon::start_with(spec);
    let mut b = Browser::start();
    b.call("Page.enable", json!({}));
    b.call(
        "Page.navigate",
        json!({"url": format!("{}/", d.admin_url())}),
    );
    let w = waiting("support");
    let callbacks = text_of("[data-queue=\"support\"]", ".callbacks b");
    b.wait_for(
        "the live stream and nobody waiting",
        &format!("document.getElementById('conn')?.textContent === 'live' && {w} === '0' && {callbacks} === '0'"),
        SHOW,
    );
    let caller = Caller::dial_from(d.sip_port(), "1500", "5550101");
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("callback offered")),
        "{}",
        d.stderr()
    );
    // 1, then # for the number it calls from.
    caller.press("1#", 0);
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("callback accepted")),
        "{}",
        d.stderr()
    );
    assert!(caller.expect_bye(WAIT).is_some(), "the goodbye, then BYE");
    b.wait_for(
        "one waiting, a callback",
        &format!("{w} === '1' && {callbacks} === '1'"),
        SHOW,
    );
    b.wait_for(
        "the callback in words",
        "document.getElementById('log').innerText.includes('chose to be called back on 5550101')",
        "document.getElementById('log').innerText",
    );
    b.screenshot(&shot_path("wallboard-callback.png"));
}

fn window_around_now(offset_min: i32, from: i64, to: i64) -> (String, String) {
    let (window, _, end) = window_and_edges(offset_min, from, to);
    (window, end)
}

/// The same window, with when it starts and ends.
fn window_and_edges(offset_min: i32, from: i64, to: i64) -> (String, String, String) {
    use chrono::{Duration as Minutes, FixedOffset, Timelike, Utc};
    let zone = FixedOffset::east_opt(offset_min * 60).unwrap();
    let now = Utc::now().with_timezone(&zone);
    let a = (now + Minutes::minutes(from)).with_second(0).unwrap();
    let b = (now + Minutes::minutes(to)).with_second(0).unwrap();
    let window = format!(
        "mon-sun {:02}:{:02}-{:02}:{:02}",
        a.hour(),
        a.minute(),
        b.hour(),
        b.minute()
    );
    let rfc = |t: chrono::DateTime<FixedOffset>| t.format("%Y-%m-%dT%H:%M:00%:z").to_string();
    (window, rfc(a), rfc(b))
}

fn by<'a>(list: &'a Value, key: &str, val: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|v| v[key] == val))
        .unwrap_or_else(|| panic!("no {key}={val} in {list}"))
}

fn get(admin: u16, path: &str) -> Value {
    let (code, v) = http(admin, "GET", path, Some(TOKEN), None);
    assert_eq!(code, 200, "GET {path}: {v}");
    v
}

fn set_state(admin: u16, agent: &str, body: &str) {
    let path = format!("/api/v1/agents/{agent}/state");
    assert_eq!(http(admin, "POST", &path, Some(TOKEN), Some(body)).0, 200);
}

/// The final (not `in_progress`) call records of `ids`, in that order.
fn final_records(admin: u16, ids: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    common::wait_until("the final call records", WAIT, || {
        let all = get(admin, "/api/v1/cdr");
        out = ids
            .iter()
            .filter_map(|id| all.as_array()?.iter().find(|r| r["id"] == *id).cloned())
            .collect();
        out.len() == ids.len() && out.iter().all(|r| r["disposition"] != "in_progress")
    });
    out
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn wait_ms(rec: &Value) -> i64 {
    rec["answered_ms"].as_i64().unwrap() - rec["queued_ms"].as_i64().unwrap()
}

/// A wallboard scenario on the daemon: queue `billing` (number 1700, target
/// 90 % within 2 s, open in Jakarta until `closes`), agent 2001 in Jakarta
/// on shift until `shift_ends`. Three calls: answered at once, abandoned,
/// answered after 3 s. Returns the Call-IDs, and keeps the agent phone.
struct Board {
    d: Daemon,
    agent: AgentPhone,
    /// When billing closes and sales opens (RFC 3339, in their zones).
    closes: String,
    opens: String,
    shift_ends: String,
}

fn start_board() -> Board {
    let agent = AgentPhone::new("2001");
    // Jakarta is UTC+7 all year.
    let (open, closes) = window_around_now(7 * 60, -30, 90);
    let (shift, shift_ends) = window_around_now(7 * 60, -60, 120);
    // Kolkata is UTC+5:30 all year; sales opens there in an hour.
    let (late, opens, _) = window_and_edges(5 * 60 + 30, 60, 120);
    let mut spec = ConfigSpec::new();
    spec.admin_token = TOKEN.into();
    spec.extra = format!(
        "{}\n[schedules.office]\ntimezone = \"Asia/Jakarta\"\nopen = [\"{open}\"]\n\n\
         [queues.billing]\nskills = {{ support = 1 }}\nschedule = \"office\"\n\
         service_level_s = 2\nservice_level_target = 90\nsurvey = \"ivr:post\"\n\n\
         [ivr.post]\nstart = \"rate\"\n\n[ivr.post.nodes.rate]\ntype = \"survey\"\n\
         prompt = \"moh.wav\"\ntimeout_s = 10\n\n\
         [schedules.late]\ntimezone = \"Asia/Kolkata\"\nopen = [\"{late}\"]\n\n\
         [queues.sales]\nskills = {{ sales = 1 }}\nschedule = \"late\"\n\n\
         [[numbers]]\nnumber = \"1700\"\nto = \"queue:billing\"\n",
        agent.toml(&format!(
            "name = \"Bob\"\nskills = {{ support = 3 }}\ntimezone = \"Asia/Jakarta\"\n\
             shift = [\"{shift}\"]"
        ))
    );
    let d = Daemon::start_with(spec);
    Board {
        d,
        agent,
        closes,
        opens,
        shift_ends,
    }
}

/// The agent answers the next offer; returns when the agent was offered
/// and when it answered (Unix ms, the test's clock).
fn answer_next(agent: &mut AgentPhone) -> (i64, i64) {
    let inv = agent.expect_invite(WAIT).expect("Bob offered the call");
    let offered = now_ms();
    agent.answer(&inv);
    (offered, now_ms())
}

#[test]
fn the_views_carry_todays_figures_clocks_and_talks() {
    let Board {
        d,
        mut agent,
        closes,
        opens,
        shift_ends,
    } = start_board();
    let admin = d.cfg.spec.admin_port;
    common::wait_until("Bob available", WAIT, || {
        by(&get(admin, "/api/v1/agents"), "id", "2001")["state"] == "available"
    });

    // 1: answered at once. While it lasts, Bob's view says whom he talks to.
    let mut first = Caller::dial_from(d.sip_port(), "1700", "5550101");
    let (offered, answered) = answer_next(&mut agent);
    common::wait_until("Bob on the call", WAIT, || {
        !by(&get(admin, "/api/v1/agents"), "id", "2001")["call"].is_null()
    });
    let bob = by(&get(admin, "/api/v1/agents"), "id", "2001").clone();
    let call = &bob["call"];
    assert_eq!(
        (&call["id"], &call["caller"], &call["queue"]),
        (&json!(first.call_id), &json!("5550101"), &json!("billing")),
        "{bob}"
    );
    let since = call["since_ms"].as_i64().unwrap();
    assert!(offered - 1000 <= since && since <= answered + 1000, "{bob}");
    let calls = get(admin, "/api/v1/calls");
    assert_eq!(by(&calls, "id", &first.call_id)["answered_ms"], since);
    first.bye();
    agent.expect_bye(WAIT).expect("the first call hung up");

    // 2: abandoned while Bob is paused.
    set_state(admin, "2001", r#"{"state":"paused","reason":"lunch"}"#);
    let mut second = Caller::dial_from(d.sip_port(), "1700", "5550102");
    common::wait_until("the second caller queued", WAIT, || {
        by(&get(admin, "/api/v1/calls"), "id", &second.call_id)["state"] == "queued"
    });
    second.bye();

    // 3: waits 3 s (over the 2 s service level), then Bob answers.
    let mut third = Caller::dial_from(d.sip_port(), "1700", "5550103");
    std::thread::sleep(Duration::from_secs(3));
    set_state(admin, "2001", r#"{"state":"available"}"#);
    answer_next(&mut agent);
    third.bye();
    agent.expect_bye(WAIT).expect("the third call hung up");

    let ids = [&*first.call_id, &*second.call_id, &*third.call_id];
    let recs = final_records(admin, &ids);
    let dispositions: Vec<&Value> = recs.iter().map(|r| &r["disposition"]).collect();
    assert_eq!(
        dispositions,
        [&json!("answered"), &json!("abandoned"), &json!("answered")]
    );
    let (w1, w3) = (wait_ms(&recs[0]), wait_ms(&recs[2]));
    assert!(w1 <= 2000 && w3 > 2000, "waits {w1} ms and {w3} ms");
    // The final record of the first call says when Bob answered: the same
    // instant his view showed.
    assert_eq!(recs[0]["answered_ms"], since);

    let mut billing = Value::Null;
    common::wait_until("today's figures", WAIT, || {
        billing = by(&get(admin, "/api/v1/queues"), "name", "billing").clone();
        billing["offered_today"] == 3
    });
    assert_eq!(billing["answered_today"], 2, "{billing}");
    assert_eq!(billing["abandoned_today"], 1, "{billing}");
    assert_eq!(
        billing["abandon_rate_today"],
        json!(100.0 / 3.0),
        "{billing}"
    );
    // One of the three answered within 2 s.
    assert_eq!(
        billing["service_level_today"],
        json!(100.0 / 3.0),
        "{billing}"
    );
    let asa = (w1 + w3) as f64 / 1000.0 / 2.0;
    assert_eq!(billing["asa_today_s"], json!(asa), "{billing}");
    assert_eq!(billing["service_level_s"], 2, "{billing}");
    assert_eq!(billing["service_level_target"], 90, "{billing}");
    assert_eq!(billing["open"], true, "{billing}");
    assert_eq!(
        billing["next_change"],
        json!({"open": false, "at": closes, "timezone": "Asia/Jakarta"}),
        "{billing}"
    );
    let sales = by(&get(admin, "/api/v1/queues"), "name", "sales").clone();
    assert_eq!(sales["open"], false, "{sales}");
    assert_eq!(
        sales["next_change"],
        json!({"open": true, "at": opens, "timezone": "Asia/Kolkata"}),
        "{sales}"
    );
    // Support took no call: nothing to divide; no schedule: no change.
    let support = by(&get(admin, "/api/v1/queues"), "name", "support").clone();
    assert_eq!(
        (
            &support["offered_today"],
            &support["abandon_rate_today"],
            &support["asa_today_s"],
            &support["service_level_target"],
            &support["next_change"]
        ),
        (
            &json!(0),
            &Value::Null,
            &Value::Null,
            &json!(80),
            &Value::Null
        ),
        "{support}"
    );

    // Agents: their zone, wall clock and shift.
    let agents = get(admin, "/api/v1/agents");
    let bob = by(&agents, "id", "2001");
    assert_eq!(bob["timezone"], "Asia/Jakarta", "{bob}");
    let local = chrono::DateTime::parse_from_rfc3339(bob["local_time"].as_str().unwrap()).unwrap();
    assert_eq!(local.offset().local_minus_utc(), 7 * 3600, "{bob}");
    assert!((local.timestamp_millis() - now_ms()).abs() < 5000, "{bob}");
    assert_eq!(bob["on_shift"], true, "{bob}");
    assert_eq!(
        bob["shift_next_change"],
        json!({"on_shift": false, "at": shift_ends}),
        "{bob}"
    );
    assert_eq!(bob["call"], Value::Null, "{bob}");
    let alice = by(&agents, "id", "1001");
    assert_eq!(
        (
            &alice["timezone"],
            &alice["on_shift"],
            &alice["shift_next_change"]
        ),
        (&json!("UTC"), &json!(true), &Value::Null),
        "{alice}"
    );
}
