//! The admin API, `sipacd status|reload|report` and the call records,
//! against the running binary: callers and a static-contact agent (2001)
//! are plain UDP sockets driven by the test.

mod common;

use common::sip::{call_id, header, method, ok_for, status_code, Uac};
use common::{sipacd_bin, ConfigSpec, Daemon};
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "t0ken-e2e";

/// Blocking wrapper over an async reqwest client.
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Http {
    fn new(base: String, token: Option<&str>) -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            // No pooled connections: the daemon gets killed and restarted.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            base,
            token: token.map(str::to_owned),
        }
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.rt.block_on(async {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body))
    }

    fn ok(&self, path: &str) -> Value {
        let (s, v) = self.get(path);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }
}

fn wait_until(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, WAIT, f)
}

fn find<'a>(list: &'a Value, key: &str, val: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == val)
        .unwrap_or_else(|| panic!("no {key}={val} in {list}"))
}

/// Agent 2001's softphone: answers OPTIONS, BYE and CANCEL; answers
/// INVITEs with 200 + SDP while `answer` is set, else lets them ring.
struct Agent {
    port: u16,
    events: mpsc::Receiver<String>,
    stop: Arc<AtomicBool>,
}

impl Agent {
    fn start(answer: bool) -> Agent {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let answer = Arc::new(AtomicBool::new(answer));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let (a, s) = (answer, stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let Some(meth) = method(&m).map(str::to_owned) else {
                    continue; // a response (to nothing we sent)
                };
                let reply = match meth.as_str() {
                    "INVITE" if a.load(Ordering::Relaxed) => Some(answer_invite(&m, port)),
                    "OPTIONS" | "BYE" | "CANCEL" => Some(ok_for(&m)),
                    _ => None,
                };
                if let Some(r) = reply {
                    sock.send_to(r.as_bytes(), from).unwrap();
                }
                let _ = tx.send(meth);
            }
        });
        Agent { port, events, stop }
    }

    /// Waits for a request with this method (OPTIONS pings are skipped).
    fn expect(&self, what: &str) {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(m) if m == what => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("agent got no {what}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer_invite(inv: &str, port: u16) -> String {
    let sdp = "v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let ok = ok_for(inv);
    let mut out = String::new();
    for line in ok.split("\r\n") {
        if line.is_empty() {
            break;
        }
        if line.starts_with("To:") || line.starts_with("t:") {
            out.push_str(&format!("{line};tag=agent2001\r\n"));
        } else if !line.starts_with("Content-Length") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "Contact: <sip:2001@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ));
    out
}

/// A caller on a raw UDP socket, one call.
struct Caller {
    uac: Uac,
    cid: String,
    from: String,
    number: String,
    to: String,
}

impl Caller {
    /// Sends the INVITE and waits for the final answer (non-2xx are ACKed
    /// by the daemon's transaction rules: we ACK them too).
    fn call(sip_port: u16, number: &str) -> (Caller, u16) {
        let uac = Uac::new(sip_port);
        let p = uac.port;
        let cid = format!("e2e-{}", common::sip::token());
        let from = format!(
            "From: <sip:5550100@127.0.0.1:{p}>;tag={}",
            common::sip::token()
        );
        let sdp = format!(
            "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            p + 1
        );
        let inv = format!(
            "INVITE sip:{number}@127.0.0.1:{sip_port} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
             {from}\r\nTo: <sip:{number}@127.0.0.1>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:c@127.0.0.1:{p}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            via = Self::via(p),
        );
        uac.send(inv.as_bytes());
        let mut c = Caller {
            uac,
            cid,
            from,
            number: number.to_owned(),
            to: String::new(),
        };
        let code = loop {
            let m = c.recv("a final answer to the INVITE");
            if let Some(code) = status_code(&m).filter(|c| *c >= 200) {
                c.to = header(&m, "To", Some("t")).unwrap().to_owned();
                break code;
            }
        };
        c.request("ACK", 1);
        (c, code)
    }

    fn via(p: u16) -> String {
        format!(
            "Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{};rport",
            common::sip::token()
        )
    }

    fn recv(&self, what: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(m) = self.uac.recv(left) {
                if call_id(&m) == Some(self.cid.as_str()) {
                    return m;
                }
            }
        }
        panic!("caller got no {what}");
    }

    fn request(&self, meth: &str, cseq: u32) {
        let (n, t) = (&self.number, self.uac.target);
        let msg = format!(
            "{meth} sip:{n}@127.0.0.1:{t} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\n\
             To: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {meth}\r\nContent-Length: 0\r\n\r\n",
            via = Self::via(self.uac.port),
            from = self.from,
            to = self.to,
            cid = self.cid,
        );
        self.uac.send(msg.as_bytes());
    }

    /// Hangs up and waits for the 200.
    fn bye(&self) {
        self.request("BYE", 2);
        loop {
            let m = self.recv("200 for our BYE");
            if status_code(&m) == Some(200) {
                return;
            }
        }
    }

    /// Waits for the daemon's BYE and answers it.
    fn answer_bye(&self) {
        loop {
            let m = self.recv("a BYE from sipacd");
            if method(&m) == Some("BYE") {
                self.uac.send(ok_for(&m).as_bytes());
                return;
            }
        }
    }
}

fn spec_with_agent(agent_port: u16) -> ConfigSpec {
    let mut spec = ConfigSpec::new();
    spec.extra = agent_extra(agent_port, "");
    spec
}

fn agent_extra(agent_port: u16, more: &str) -> String {
    format!(
        "\n[agents.2001]\nname = \"Bob\"\ncontact = \"sip:2001@127.0.0.1:{agent_port}\"\n\
         skills = {{ support = 3 }}\n{more}"
    )
}

fn sipacd(args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = Command::new(sipacd_bin());
    cmd.args(args).env_remove("SIPACD_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("SIPACD_ADMIN_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn admin_api_views_pause_and_reload() {
    let agent = Agent::start(false);
    let mut spec = spec_with_agent(agent.port);
    spec.admin_token = TOKEN.into();
    let mut d = Daemon::start_with(spec);
    let api = Http::new(d.admin_url(), Some(TOKEN));
    let anon = Http::new(d.admin_url(), None);
    let wrong = Http::new(d.admin_url(), Some("nope"));

    // Health is open; everything under /api needs the token, and a refused
    // request changes nothing.
    assert_eq!(anon.get("/health"), (200, json!({"status": "ok"})));
    assert_eq!(anon.get("/api/v1/queues").0, 401);
    assert_eq!(wrong.get("/api/v1/agents").0, 401);
    let pause = json!({"state": "paused", "reason": "lunch"});
    assert_eq!(anon.post("/api/v1/agents/2001/state", pause.clone()).0, 401);
    let agents = api.ok("/api/v1/agents");
    assert_eq!(
        find(&agents, "id", "2001")["state"],
        "available",
        "{agents}"
    );
    let a1001 = find(&agents, "id", "1001");
    assert_eq!(a1001["state"], "logged_out");
    assert_eq!(a1001["registered"], false);
    assert_eq!(a1001["skills"], json!({"support": 5}));

    // Pause 2001 over the API.
    let (s, v) = api.post("/api/v1/agents/2001/state", pause);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["pause_reason"].as_str()),
        (Some("paused"), Some("lunch"))
    );
    let agents = api.ok("/api/v1/agents");
    let a2001 = find(&agents, "id", "2001");
    assert_eq!(a2001["state"], "paused");
    assert_eq!(a2001["pause_reason"], "lunch");
    assert_eq!(a2001["name"], "Bob");
    assert_eq!(
        api.post("/api/v1/agents/9999/state", json!({"state": "available"}))
            .0,
        404
    );
    assert_eq!(
        api.post("/api/v1/agents/2001/state", json!({"state": "dancing"}))
            .0,
        400
    );
    // 1001 is logged out: it cannot be made available.
    assert_eq!(
        api.post("/api/v1/agents/1001/state", json!({"state": "available"}))
            .0,
        409
    );

    // A caller waits: nobody can take the call.
    let (caller, code) = Caller::call(d.sip_port(), "1500");
    assert_eq!(code, 200);
    wait_until("the call to be queued", || {
        api.ok("/api/v1/calls")[0]["state"] == "queued"
    });
    std::thread::sleep(Duration::from_millis(300));
    let calls = api.ok("/api/v1/calls");
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    let c = &calls[0];
    assert_eq!(c["id"], caller.cid.as_str());
    assert_eq!(
        (c["from"].as_str(), c["number"].as_str()),
        (Some("5550100"), Some("1500"))
    );
    assert_eq!(c["queue"], "support");
    assert_eq!(c["agent"], Value::Null);
    assert!(c["wait_s"].as_f64().unwrap() >= 0.2, "{c}");
    let q = api.ok("/api/v1/queues");
    let support = find(&q, "name", "support");
    assert_eq!(support["waiting"], 1);
    assert_eq!(support["agents_available"], 0);
    assert_eq!(support["agents_busy"], 0);
    assert_eq!(support["open"], true);
    assert!(support["longest_wait_s"].as_f64().unwrap() >= 0.2);

    // Unpause: the waiting call is offered to 2001 at once, which rings.
    let (s, v) = api.post("/api/v1/agents/2001/state", json!({"state": "available"}));
    assert_eq!(s, 200, "{v}");
    agent.expect("INVITE");
    let agents = api.ok("/api/v1/agents");
    assert_eq!(find(&agents, "id", "2001")["state"], "ringing");
    let calls = api.ok("/api/v1/calls");
    assert_eq!(
        (calls[0]["state"].as_str(), calls[0]["agent"].as_str()),
        (Some("offered"), Some("2001"))
    );
    assert_eq!(
        find(&api.ok("/api/v1/queues"), "name", "support")["agents_busy"],
        1
    );

    // `sipacd status`: queues then agents, with the token from the env.
    let url = d.admin_url();
    let out = sipacd(&["status", "--admin", &url], Some(TOKEN));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("queue"), "{t}");
    let row = |first: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row {first} in:\n{t}"))
            .split_whitespace()
            .collect()
    };
    assert_eq!(row("support")[..3], ["support", "yes", "1"]);
    assert_eq!(row("2001")[..4], ["2001", "Bob", "ringing", "yes"]);
    assert_eq!(row("1001")[..4], ["1001", "Alice", "logged_out", "no"]);
    let out = sipacd(&["status", "--admin", &url], None);
    assert!(!out.status.success());
    assert!(text(&out).contains("401"), "{}", text(&out));

    // Reload over the API: a new queue appears...
    d.cfg.spec.extra = agent_extra(agent.port, "\n[queues.sales]\n");
    d.cfg.write();
    let (s, v) = api.post("/api/v1/reload", json!({}));
    assert_eq!(s, 200, "{v}");
    let changed = v["changed"].as_array().unwrap();
    assert!(
        changed
            .iter()
            .any(|c| c.as_str().unwrap().contains("sales")),
        "{v}"
    );
    assert!(api
        .ok("/api/v1/queues")
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == "sales"));
    // ...a broken file is refused with its errors, the old config stays...
    d.cfg.write_text("[server]\nbogus_key = 1\n");
    let (s, v) = api.post("/api/v1/reload", json!({}));
    assert_eq!(s, 400, "{v}");
    assert!(!v["errors"].as_array().unwrap().is_empty(), "{v}");
    assert!(api
        .ok("/api/v1/queues")
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == "sales"));
    // ...and `sipacd reload` says the same and exits non-zero.
    let out = sipacd(&["reload", "--admin", &url], Some(TOKEN));
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("reload rejected") && t.contains("bogus_key"),
        "{t}"
    );
    d.cfg.spec.extra = agent_extra(agent.port, "\n[queues.sales]\n[queues.vip]\n");
    d.cfg.write();
    let out = sipacd(&["reload", "--admin", &url], Some(TOKEN));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.starts_with("reload applied") && t.contains("vip"), "{t}");
    // Calls survive reloads.
    assert_eq!(api.ok("/api/v1/calls").as_array().unwrap().len(), 1);
    caller.bye();
    agent.expect("CANCEL");
    assert!(d.is_alive());
}

/// The records of `ids`, once none of them is `in_progress`.
fn final_records(api: &Http, ids: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    wait_until("the final call records", || {
        let all = api.ok("/api/v1/cdr");
        out = ids
            .iter()
            .filter_map(|id| {
                all.as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["id"] == *id)
                    .cloned()
            })
            .collect();
        out.len() == ids.len() && out.iter().all(|r| r["disposition"] != "in_progress")
    });
    out
}

#[test]
fn call_records_and_report_after_scripted_calls_and_kill_9() {
    let agent = Agent::start(true);
    let mut d = Daemon::start_with(spec_with_agent(agent.port));
    let api = Http::new(d.admin_url(), None);
    let port = d.sip_port();

    // 1. Answered by 2001; the caller hangs up after a moment of talk.
    let (answered, code) = Caller::call(port, "1500");
    assert_eq!(code, 200);
    agent.expect("ACK");
    wait_until("the call to be connected", || {
        api.ok("/api/v1/calls")[0]["state"] == "connected"
    });
    assert_eq!(
        find(&api.ok("/api/v1/agents"), "id", "2001")["state"],
        "on_call"
    );
    std::thread::sleep(Duration::from_millis(300));
    answered.bye();
    agent.expect("BYE");

    // 2. Abandoned: 2001 paused, the caller gives up after half a second.
    let (s, _) = api.post("/api/v1/agents/2001/state", json!({"state": "paused"}));
    assert_eq!(s, 200);
    let (abandoned, code) = Caller::call(port, "1500");
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_millis(500));
    abandoned.bye();

    // 3. Rejected: nobody answers 9999.
    let (rejected, code) = Caller::call(port, "9999");
    assert_eq!(code, 404);

    // 4. Closed: 1600's IVR hangs up at once.
    let (closed, code) = Caller::call(port, "1600");
    assert_eq!(code, 200);
    closed.answer_bye();

    let ids = [&answered.cid, &abandoned.cid, &rejected.cid, &closed.cid].map(String::as_str);
    let recs = final_records(&api, &ids);
    let [a, b, r, c] = [&recs[0], &recs[1], &recs[2], &recs[3]];
    assert_eq!(a["disposition"], "answered", "{a}");
    assert_eq!(a["hangup_by"], "caller");
    assert_eq!(a["agent"], "2001");
    assert_eq!(a["queue"], "support");
    assert_eq!(a["caller"], "5550100");
    assert_eq!(a["ivr_path"], json!(["queue:support"]));
    let t = |k: &str| {
        a[k].as_i64()
            .unwrap_or_else(|| panic!("{k} missing in {a}"))
    };
    assert!(
        t("arrived_ms") <= t("queued_ms") && t("queued_ms") <= t("offered_ms"),
        "{a}"
    );
    assert!(t("offered_ms") <= t("answered_ms") && t("answered_ms") + 250 <= t("ended_ms"));
    let routing = &a["routing"];
    assert_eq!(routing["chosen"], "2001");
    assert!(routing["strategy"]
        .as_str()
        .unwrap()
        .starts_with("longest_idle"));
    // The router's own account: the chosen agent, how many have the skills
    // and how many of those were still free; not a row per agent of the
    // centre (1001 has the skills but is logged out: eligible, not free).
    let cands = routing["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 1, "{routing}");
    assert_eq!(
        find(&routing["candidates"], "agent", "2001")["note"],
        "chosen"
    );
    assert_eq!(routing["eligible"], 2, "{routing}");
    assert_eq!(routing["free"], 0, "{routing}");

    assert_eq!(b["disposition"], "abandoned", "{b}");
    assert_eq!(b["hangup_by"], "caller");
    assert_eq!(b["answered_ms"], Value::Null);
    assert!(b["queued_ms"].is_i64());
    assert_eq!(r["disposition"], "rejected", "{r}");
    assert_eq!(r["number"], "9999");
    assert_eq!(c["disposition"], "closed", "{c}");
    assert_eq!(c["hangup_by"], "system");
    assert_eq!(c["ivr_path"], json!(["bye.bye"]));

    // 5. A call waiting when the daemon is killed: `interrupted` after the
    // restart on the same data directory.
    let (cut, code) = Caller::call(port, "1500");
    assert_eq!(code, 200);
    wait_until("the arrival record", || {
        api.ok("/api/v1/cdr")
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == cut.cid.as_str() && r["disposition"] == "in_progress")
    });
    d.kill9_and_restart();
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("interrupted=1")),
        "{}",
        d.stderr()
    );
    let recs = final_records(&api, &[&cut.cid, &answered.cid]);
    assert_eq!(recs[0]["disposition"], "interrupted", "{}", recs[0]);
    assert_eq!(
        recs[1]["disposition"], "answered",
        "records survive kill -9"
    );

    // The report, computed by hand: support was offered 3 calls (answered,
    // abandoned, interrupted); the abandon was under 5 s; 2001 took 1.
    let cfg = d.cfg.config_path();
    let out = sipacd(&["report", "--config", cfg.to_str().unwrap()], None);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let row = |first: &str| -> Vec<String> {
        t.lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row {first} in:\n{t}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // queue offered answered abandoned aband% aband<5s overflowed closed
    // SL% ...; aband% = 1 abandoned / (1 answered + 1 abandoned).
    assert_eq!(
        row("support")[..8],
        ["support", "3", "1", "1", "50.0", "1", "0", "0"],
        "{t}"
    );
    // 1 answered out of 3 offered minus 1 short abandon, within 20 s: 50%.
    assert_eq!(row("support")[8], "50.0", "{t}");
    assert_eq!(row("2001")[..2], ["2001", "1"], "{t}");
    // The same figures as JSON, with the overall classes: the answered,
    // abandoned and interrupted calls were queued; 1600's IVR ended its
    // call itself (self-served); the rejected one never reached the IVR.
    let out = sipacd(
        &["report", "--config", cfg.to_str().unwrap(), "--json"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let j: Value =
        serde_json::from_str(&text(&out)).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let support = find(&j["queues"], "queue", "support");
    assert_eq!(support["offered"], 3, "{support}");
    assert_eq!(support["abandon_rate_pct"], 50.0, "{support}");
    let all = &j["overall"][0];
    assert_eq!(
        [
            &all["calls"],
            &all["queued"],
            &all["self_served"],
            &all["ivr_abandoned"]
        ],
        [&json!(4), &json!(3), &json!(1), &json!(0)],
        "{all}"
    );
    assert_eq!(all["self_service_pct"], 25.0, "{all}");
    let out = sipacd(
        &[
            "report",
            "--config",
            cfg.to_str().unwrap(),
            "--queue",
            "sales",
            "--since",
            "today",
        ],
        None,
    );
    assert!(out.status.success());
    assert!(!text(&out).contains("support"), "{}", text(&out));
}
