//! `GET /metrics` against the running binary: a scripted set of calls
//! (answered with RTP relayed, abandoned while queued, overflowed, an
//! unknown number, an OPTIONS, a malformed message, two reloads), then the
//! exposition is parsed by the Python `prometheus_client` parsers (the
//! Prometheus text one and the OpenMetrics one) and the counters compared
//! with what the test did.

mod common;

use common::phone::{AgentPhone, Caller};
use common::sip::Uac;
use common::{require, ConfigSpec, Daemon};
use serde_json::Value;
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "m3trics-t0ken";
const WAIT: Duration = Duration::from_secs(10);

/// A blocking GET: (status, content type, body).
fn get(url: &str, token: Option<&str>, accept: Option<&str>) -> (u16, String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, ctype, resp.text().await.unwrap())
    })
}

fn post(url: &str, token: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    })
}

/// Parses an exposition with the real Python parser and hands back the
/// families as JSON: `[{"name","type","samples":[[name,{labels},value]]}]`.
const PARSE_PY: &str = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families as classic
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
parse = om if sys.argv[1] == "openmetrics" else classic
out = []
for f in parse(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type,
                "samples": [[s.name, s.labels, s.value] for s in f.samples]})
print(json.dumps(out))
"#;

fn have_parser() -> bool {
    Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Parsed families of one scrape.
struct Scrape(Vec<Value>);

impl Scrape {
    fn parse(text: &str, mode: &str) -> Scrape {
        let mut child = Command::new("python3")
            .args(["-c", PARSE_PY, mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the {mode} parser rejected the exposition: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Scrape(v.as_array().unwrap().clone())
    }

    fn family(&self, name: &str) -> &Value {
        self.0
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    /// The value of sample `name` whose labels include `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .0
            .iter()
            .flat_map(|f| f["samples"].as_array().unwrap())
            .filter(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
            .map(|s| s[2].as_f64().unwrap())
            .collect();
        match found[..] {
            [v] => v,
            _ => panic!("{} samples {name}{labels:?}: {found:?}", found.len()),
        }
    }
}

/// An RTP packet: PCMU, 160 bytes of silence.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// The port of the SDP `m=audio` line in `msg`.
fn sdp_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in:\n{msg}"))
}

#[test]
fn metrics_count_a_scripted_set_of_calls() {
    if !require(
        have_parser(),
        "python3 with prometheus_client (pip install prometheus-client)",
    ) {
        return;
    }
    let mut agent = AgentPhone::new("2001");
    let mut spec = ConfigSpec::new();
    spec.admin_token = TOKEN.into();
    spec.extra = format!(
        "{}\n[queues.short]\nskills = {{ sales = 1 }}\nmax_wait_s = 1\noverflow = \"hangup\"\n\n\
         [[numbers]]\nnumber = \"1700\"\nto = \"queue:short\"\n",
        agent.toml("skills = { support = 3 }")
    );
    let mut d = Daemon::start_with(spec);
    let url = format!("{}/metrics", d.admin_url());
    let scrape = || {
        let (s, ctype, body) = get(&url, Some(TOKEN), None);
        assert_eq!(s, 200, "{body}");
        assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
        Scrape::parse(&body, "text")
    };

    // The token is enforced like the rest of the API.
    assert_eq!(get(&url, None, None).0, 401);
    assert_eq!(get(&url, Some("wrong"), None).0, 401);
    // Before: the readiness probes' OPTIONS are already counted.
    let before = scrape();
    let in_req = |s: &Scrape, m: &str| {
        s.get(
            "sipacd_sip_requests_total",
            &[("direction", "in"), ("method", m)],
        )
    };
    let options_before = in_req(&before, "OPTIONS");

    // 1. Answered by 2001; RTP from the agent's side is relayed to the
    // caller, a garbage packet and a foreign stream are dropped.
    let mut answered = Caller::dial(d.sip_port(), "1500");
    let inv = agent.expect_invite(WAIT).expect("offer to 2001");
    agent.answer(&inv);
    let leg_port = sdp_port(&inv);
    let api = |path: &str| -> Value {
        let (s, _, body) = get(&format!("{}{path}", d.admin_url()), Some(TOKEN), None);
        assert_eq!(s, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let wait_until = |what: &str, f: &dyn Fn() -> bool| common::wait_until(what, WAIT, f);
    wait_until("the call to be connected", &|| {
        api("/api/v1/calls")[0]["state"] == "connected"
    });
    // The media task opens the agent leg right after the answer.
    std::thread::sleep(Duration::from_millis(300));
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 1..=5 {
        media
            .send_to(&rtp(seq, 0xA6E7), ("127.0.0.1", leg_port))
            .unwrap();
    }
    let relayed = || scrape().get("sipacd_rtp_relayed_packets_total", &[]);
    wait_until("5 packets relayed", &|| relayed() >= 5.0);
    media.send_to(b"not rtp", ("127.0.0.1", leg_port)).unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .send_to(&rtp(1, 0x5742), ("127.0.0.1", leg_port))
        .unwrap();
    let dropped =
        |reason: &str| scrape().get("sipacd_rtp_dropped_packets_total", &[("reason", reason)]);
    wait_until("the garbage and foreign packets counted", &|| {
        dropped("garbage") >= 1.0 && dropped("foreign") >= 1.0
    });
    answered.bye();
    assert!(agent.expect_bye(WAIT).is_some(), "agent got no BYE");

    // 2. Abandoned: 2001 paused, the caller waits (seen by the gauges),
    // then hangs up.
    let pause = r#"{"state":"paused","reason":"lunch"}"#;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/v1/agents/2001/state", d.admin_url()))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(pause)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(s, 200);
    let mut abandoned = Caller::dial(d.sip_port(), "1500");
    wait_until("the caller to be queued", &|| {
        api("/api/v1/calls")[0]["state"] == "queued"
    });
    std::thread::sleep(Duration::from_millis(300));
    let waiting = scrape();
    assert_eq!(
        waiting.get("sipacd_queue_callers_waiting", &[("queue", "support")]),
        1.0
    );
    let longest = waiting.get("sipacd_queue_longest_wait_seconds", &[("queue", "support")]);
    assert!((0.3..60.0).contains(&longest), "longest wait {longest}");
    assert_eq!(
        waiting.get("sipacd_queue_callers_waiting", &[("queue", "short")]),
        0.0
    );
    abandoned.bye();

    // 3. Overflowed: nobody has the `sales` skill; after max_wait_s the
    // caller is sent on to `hangup`.
    let overflowed = Caller::dial(d.sip_port(), "1700");
    assert!(
        overflowed.expect_bye(WAIT).is_some(),
        "no BYE after max_wait_s"
    );

    // 4. An unknown number, 5. an OPTIONS, 6. a malformed message.
    let uac = Uac::new(d.sip_port());
    assert_eq!(uac.invite("9999", WAIT).last(), Some(&404));
    assert_eq!(uac.options(WAIT), Some(200));
    uac.send(b"INVITE sip:1500@127.0.0.1 SIP/2.0\r\nVia: nonsense\r\nCSeq: x\r\n\r\n");
    // 7. Reloads: one applied, one rejected (then the file is put back).
    assert_eq!(
        post(&format!("{}/api/v1/reload", d.admin_url()), TOKEN),
        200
    );
    let good = std::fs::read_to_string(d.cfg.config_path()).unwrap();
    d.cfg.write_text("[server]\nbogus_key = 1\n");
    assert_eq!(
        post(&format!("{}/api/v1/reload", d.admin_url()), TOKEN),
        400
    );
    d.cfg.write_text(&good);

    let parse_errors = || scrape().get("sipacd_sip_parse_errors_total", &[]);
    wait_until("the malformed message counted", &|| parse_errors() >= 1.0);
    // Every call has ended (its record written) before the final scrape.
    wait_until("no calls left", &|| {
        api("/api/v1/calls").as_array().is_some_and(Vec::is_empty)
    });
    let after = scrape();
    let q = |name: &str, queue: &str| after.get(name, &[("queue", queue)]);
    // support: answered + abandoned; short: the overflow.
    assert_eq!(q("sipacd_queue_calls_offered_total", "support"), 2.0);
    assert_eq!(q("sipacd_queue_calls_answered_total", "support"), 1.0);
    assert_eq!(q("sipacd_queue_calls_abandoned_total", "support"), 1.0);
    assert_eq!(q("sipacd_queue_calls_overflowed_total", "support"), 0.0);
    assert_eq!(q("sipacd_queue_calls_offered_total", "short"), 1.0);
    assert_eq!(q("sipacd_queue_calls_overflowed_total", "short"), 1.0);
    assert_eq!(q("sipacd_queue_calls_answered_total", "short"), 0.0);
    assert_eq!(q("sipacd_queue_calls_abandoned_total", "short"), 0.0);
    assert_eq!(q("sipacd_queue_callers_waiting", "support"), 0.0);

    // SIP: three calls dialled plus the 404, each ACKed once; two BYEs
    // from callers; one OPTIONS more than before; the 404 and the parse error.
    assert_eq!(in_req(&after, "INVITE"), 4.0);
    assert_eq!(in_req(&after, "ACK"), 4.0);
    assert_eq!(in_req(&after, "BYE"), 2.0);
    assert_eq!(in_req(&after, "OPTIONS"), options_before + 1.0);
    let resp = |dir: &str, method: &str, code: &str| {
        after.get(
            "sipacd_sip_responses_total",
            &[("direction", dir), ("method", method), ("code", code)],
        )
    };
    assert_eq!(resp("out", "INVITE", "404"), 1.0);
    assert_eq!(resp("out", "BYE", "200"), 2.0);
    assert!(resp("out", "INVITE", "200") >= 3.0);
    assert!(resp("in", "INVITE", "200") >= 1.0);
    assert!(resp("in", "BYE", "200") >= 2.0);
    assert_eq!(after.get("sipacd_sip_parse_errors_total", &[]), 1.0);
    assert_eq!(
        after.get("sipacd_sip_dropped_total", &[("reason", "foreign_via")]),
        0.0
    );

    // RTP: exactly what was sent.
    assert_eq!(after.get("sipacd_rtp_relayed_packets_total", &[]), 5.0);
    let drop = |r: &str| after.get("sipacd_rtp_dropped_packets_total", &[("reason", r)]);
    assert_eq!(drop("garbage"), 1.0);
    assert_eq!(drop("foreign"), 1.0);
    assert_eq!(drop("payload_type"), 0.0);

    // Agents: 2001 paused, 1001 never registered.
    let agents = |state: &str| after.get("sipacd_agents", &[("state", state)]);
    assert_eq!(agents("paused"), 1.0);
    assert_eq!(agents("logged_out"), 1.0);
    assert_eq!(
        agents("available") + agents("on_call") + agents("ringing"),
        0.0
    );

    // Call records: the writer keeps up (each call writes its in_progress
    // row and its final one, so at least two per call ended), nothing lost.
    assert!(
        after.get("sipacd_cdr_records_written_total", &[]) >= 6.0,
        "records written: {}",
        after.get("sipacd_cdr_records_written_total", &[])
    );
    assert_eq!(after.get("sipacd_cdr_records_failed_total", &[]), 0.0);
    assert_eq!(after.family("sipacd_cdr_backlog")["type"], "gauge");

    // Routing latency: a histogram with observations, cumulative buckets.
    assert_eq!(
        after.family("sipacd_routing_decision_seconds")["type"],
        "histogram"
    );
    let count = after.get("sipacd_routing_decision_seconds_count", &[]);
    assert!(count >= 3.0, "routing decisions observed: {count}");
    assert_eq!(
        after.get("sipacd_routing_decision_seconds_bucket", &[("le", "+Inf")]),
        count
    );
    assert!(after.get("sipacd_routing_decision_seconds_sum", &[]) > 0.0);
    assert_eq!(
        after.family("sipacd_queue_calls_offered")["type"],
        "counter"
    );
    assert_eq!(after.family("sipacd_agents")["type"], "gauge");

    // Reloads.
    let reloads = |r: &str| after.get("sipacd_config_reloads_total", &[("result", r)]);
    assert_eq!((reloads("ok"), reloads("failed")), (1.0, 1.0));

    // The same figures in OpenMetrics, for scrapers that ask for it,
    // accepted by the stricter OpenMetrics parser.
    let (s, ctype, body) = get(
        &url,
        Some(TOKEN),
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert_eq!(s, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let om = Scrape::parse(&body, "openmetrics");
    assert_eq!(
        om.get("sipacd_queue_calls_offered_total", &[("queue", "support")]),
        2.0
    );
    assert_eq!(
        om.family("sipacd_routing_decision_seconds")["type"],
        "histogram"
    );
    assert!(d.is_alive());
}
