//! `GET /api/v1/events` against the running daemon: a plain TCP client
//! reads the server-sent events while a raw-UDP caller is queued, offered
//! to an agent phone, answered and hung up; then a caller abandons. The
//! stream must tell each call's story in order, with timestamps, and the
//! agent's state changes; the queue view's `service_level_today` must
//! count both calls.

mod common;

use common::phone::{AgentPhone, Caller};
use common::sse::Stream;
use common::{ConfigSpec, Daemon};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TOKEN: &str = "live-t0ken";
const WAIT: Duration = Duration::from_secs(10);

fn is(v: &Value, ty: &str, call: &str) -> bool {
    v["type"] == ty && v["call"] == call
}

fn http_get(port: u16, path: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn http_post(port: u16, path: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_event_stream_follows_calls_from_arrival_to_end() {
    let mut agent = AgentPhone::new("2001");
    let mut spec = ConfigSpec::new();
    spec.admin_token = TOKEN.into();
    spec.extra = agent.toml("name = \"Bob\"\nskills = { support = 3 }");
    let mut d = Daemon::start_with(spec);
    let admin = d.cfg.spec.admin_port;

    // The token is required: as a header or, for EventSource, as ?token=.
    assert_eq!(Stream::open(admin, "", "").status(), 401);
    assert_eq!(Stream::open(admin, "?token=wrong", "").status(), 401);
    let by_query = Stream::open(admin, &format!("?token={TOKEN}"), "");
    assert_eq!(by_query.status(), 200, "{}", by_query.head);
    drop(by_query);

    let mut s = Stream::open(admin, "", &format!("Authorization: Bearer {TOKEN}\r\n"));
    assert_eq!(s.status(), 200, "{}", s.head);
    assert!(
        s.head.to_ascii_lowercase().contains("text/event-stream"),
        "{}",
        s.head
    );
    s.until("hello", |v| v["type"] == "hello");

    // One call: queued, offered to 2001, answered, hung up by the caller.
    let mut caller = Caller::dial(d.sip_port(), "1500");
    let cid = caller.call_id.clone();
    let invite = agent.expect_invite(WAIT).expect("agent offered the call");
    agent.answer(&invite);
    caller.bye();
    agent.expect_bye(WAIT).expect("agent leg hung up");

    let arrived = s.until("call_arrived", |v| is(v, "call_arrived", &cid));
    assert_eq!(arrived["from"], "5551234");
    assert_eq!(arrived["number"], "1500");
    assert_eq!(arrived["queue"], "support");
    let queued = s.until("call_queued", |v| is(v, "call_queued", &cid));
    assert_eq!(queued["queue"], "support");
    assert_eq!(queued["position"], 1);
    let offered = s.until("call_offered", |v| is(v, "call_offered", &cid));
    assert_eq!(offered["agent"], "2001");
    let answered = s.until("call_answered", |v| is(v, "call_answered", &cid));
    assert_eq!(answered["agent"], "2001");
    assert_eq!(answered["queue"], "support");
    let ended = s.until("call_ended", |v| is(v, "call_ended", &cid));
    assert_eq!(ended["disposition"], "answered", "{ended}");
    assert_eq!(ended["hangup_by"], "caller");
    assert_eq!(ended["agent"], "2001");

    // The agent's states went along, in the same stream and order.
    let states: Vec<&str> = s
        .seen
        .iter()
        .filter(|v| v["type"] == "agent_state" && v["agent"] == "2001")
        .filter_map(|v| v["state"].as_str())
        .collect();
    let pos = |st: &str| states.iter().position(|x| *x == st);
    assert!(
        pos("ringing").is_some() && pos("ringing") < pos("on_call"),
        "agent states: {states:?}"
    );

    // Every event has a type and a timestamp, in both forms, in order.
    let mut last = 0;
    for v in &s.seen {
        assert!(v["type"].is_string(), "{v}");
        let ms = v["ts_ms"]
            .as_i64()
            .unwrap_or_else(|| panic!("no ts_ms: {v}"));
        let ts = v["ts"].as_str().unwrap_or_else(|| panic!("no ts: {v}"));
        let parsed = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
        assert_eq!(parsed.timestamp_millis(), ms, "{v}");
        assert!(ms >= last, "events out of order at {v}");
        last = ms;
    }

    // A caller who gives up while 2001 is paused: abandoned.
    let paused = r#"{"state":"paused","reason":"lunch"}"#;
    assert_eq!(http_post(admin, "/api/v1/agents/2001/state", paused), 200);
    let p = s.until("2001 paused", |v| {
        v["type"] == "agent_state" && v["agent"] == "2001" && v["state"] == "paused"
    });
    assert_eq!(p["reason"], "lunch");
    let mut quitter = Caller::dial_from(d.sip_port(), "1500", "5550199");
    let qid = quitter.call_id.clone();
    s.until("call_queued", |v| is(v, "call_queued", &qid));
    quitter.bye();
    let abandoned = s.until("call_abandoned", |v| is(v, "call_abandoned", &qid));
    assert_eq!(abandoned["queue"], "support");
    let ended = s.until("call_ended", |v| is(v, "call_ended", &qid));
    assert_eq!(ended["disposition"], "abandoned");
    assert_eq!(ended["hangup_by"], "caller");

    // Today: one answered within 20 s, one abandoned: 50 %.
    let (code, queues) = http_get(admin, "/api/v1/queues");
    assert_eq!(code, 200);
    let support = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "support")
        .unwrap();
    assert_eq!(support["service_level_today"], 50.0, "{support}");
    assert_eq!(support["agents_paused"], 1, "{support}");

    // The agent view says since when the agent is paused.
    let (_, agents) = http_get(admin, "/api/v1/agents");
    let bob = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "2001")
        .unwrap();
    assert_eq!(bob["state"], "paused");
    assert_eq!(bob["state_since_ms"], p["ts_ms"], "{bob}");

    // On SIGTERM the stream ends (it does not hold the daemon's exit up).
    d.signal("TERM");
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match s.events.recv_timeout(left) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream outlived SIGTERM"),
        }
    }
    let st = d.wait_exit(WAIT).expect("the daemon exits");
    assert!(st.success(), "{st:?}");
}
