//! Listen, whisper and barge against the running daemon, checked by tone
//! frequency on each of three phones: a caller (600 Hz), the agent who
//! answered it (1000 Hz) and a supervisor's phone (1400 Hz) that sipacd
//! calls when the admin API asks (`POST /api/v1/calls/ID/monitor`). Each
//! phone is a raw UDP socket in this test streaming its tone as RTP and
//! keeping what it receives (`common::tone`).
//!
//! What each phone must hear (and never its own tone):
//!
//! | mode | caller | agent | supervisor |
//! |---|---|---|---|
//! | listen | agent | caller | caller + agent |
//! | whisper | agent | caller + supervisor | caller + agent |
//! | barge | agent + supervisor | caller + supervisor | caller + agent |
//!
//! Also: PATCH changes the mode mid-call, a re-INVITE and an UPDATE from
//! the supervisor's phone are answered on its dialog, DELETE sends the
//! supervisor a BYE while the call goes on, the supervisor hanging up ends
//! only its leg, the call's end sends it a BYE, a supervisor phone that
//! refuses ends the monitor with a `failed` event; the `call_monitor` live
//! events and the record's `monitors` list say so.

mod common;

use common::http::{get_json, request};
use common::phone::{AgentPhone, Caller};
use common::sip::{header, status_code};
use common::sse::Stream;
use common::tone::ToneStream;
use common::{ConfigSpec, Daemon};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const CALLER_HZ: f64 = 600.0;
const AGENT_HZ: f64 = 1000.0;
const SUPERVISOR_HZ: f64 = 1400.0;
const TONES: [f64; 3] = [CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ];
/// How long each phone's audio is looked at after a change.
const LISTEN: Duration = Duration::from_millis(2500);
/// Time for a change to reach the media (the mixer's prebuffer, one
/// round of packets in flight).
const SETTLE: Duration = Duration::from_millis(400);

/// sipacd's RTP port in an SDP (`m=audio PORT ...`).
fn sdp_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in:\n{msg}"))
}

/// A daemon with agent 2001 (the one who answers) and 3001, a supervisor
/// without the queue's skill (never offered calls, only called to
/// monitor), both phones behind static contacts; and an SSE subscription.
struct Center {
    d: Daemon,
    agent: AgentPhone,
    sup: AgentPhone,
    events: Stream,
}

impl Center {
    fn start() -> Center {
        let agent = AgentPhone::new("2001");
        let sup = AgentPhone::new("3001");
        let mut spec = ConfigSpec::new();
        spec.extra = agent.toml("skills = { support = 3 }") + &sup.toml("name = \"Sue\"");
        let d = Daemon::start_with(spec);
        let mut events = Stream::open(d.cfg.spec.admin_port, "", "");
        assert_eq!(events.status(), 200, "{}", events.head);
        events.until("hello", |v| v["type"] == "hello");
        Center {
            d,
            agent,
            sup,
            events,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.d.admin_url())
    }

    fn monitor(&self, method: &str, call: &str, body: Option<Value>) -> (u16, Value) {
        let (code, text) = request(
            method,
            &self.url(&format!("/api/v1/calls/{call}/monitor")),
            body.as_ref(),
        );
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The next `call_monitor` event of `call` with `step`.
    fn monitor_event(&mut self, call: &str, step: &str) -> Value {
        self.events.until(&format!("call_monitor {step}"), |v| {
            v["type"] == "call_monitor" && v["call"] == call && v["step"] == step
        })
    }

    /// POSTs a monitor of `call` by `supervisor` in `mode`; the supervisor
    /// phone answers. Returns its INVITE and its tone stream.
    fn start_monitor(&mut self, call: &str, supervisor: &str, mode: &str) -> (String, ToneStream) {
        let (code, view) = self.monitor(
            "POST",
            call,
            Some(json!({"supervisor": supervisor, "mode": mode})),
        );
        assert_eq!(code, 202, "{view}\n{}", self.d.stderr());
        assert_eq!(view["state"], "calling", "{view}");
        assert_eq!(view["mode"], mode, "{view}");
        let inv = self
            .sup
            .expect_invite(WAIT)
            .unwrap_or_else(|| panic!("no INVITE to the supervisor:\n{}", self.d.stderr()));
        let tag = header(&inv, "X-Sipacd-Monitor", None).unwrap_or_default();
        assert_eq!(tag, format!("{call};mode={mode}"), "{inv}");
        self.sup.answer(&inv);
        let started = self.monitor_event(call, "started");
        assert_eq!(started["mode"], mode, "{started}");
        assert_eq!(started["supervisor"], supervisor, "{started}");
        let tone = ToneStream::start(self.sup.rtp_socket(), SUPERVISOR_HZ, sdp_port(&inv));
        (inv, tone)
    }
}

/// A bridged call: the caller dialled 1500 and agent 2001 answered; both
/// stream their tones.
struct Bridged {
    caller: Caller,
    call: String,
    /// sipacd's INVITE to the agent (its dialog).
    agent_inv: String,
    caller_tone: ToneStream,
    agent_tone: ToneStream,
}

fn bridged(c: &mut Center) -> Bridged {
    let caller = Caller::dial(c.d.sip_port(), "1500");
    let call = caller.call_id.clone();
    let inv = c.agent.expect_invite(WAIT).expect("agent offered the call");
    c.agent.answer(&inv);
    c.events.until("call_answered", |v| {
        v["type"] == "call_answered" && v["call"] == call
    });
    let caller_tone = ToneStream::start(
        caller.rtp_socket(),
        CALLER_HZ,
        caller.leg_port.expect("caller leg port"),
    );
    let agent_tone = ToneStream::start(c.agent.rtp_socket(), AGENT_HZ, sdp_port(&inv));
    Bridged {
        caller,
        call,
        agent_inv: inv,
        caller_tone,
        agent_tone,
    }
}

/// What each phone heard over the next [`LISTEN`], as (caller, agent,
/// supervisor) tones heard; `sup` None when no supervisor is on.
fn heard(b: &Bridged, sup: Option<&ToneStream>, what: &str) -> [Vec<bool>; 3] {
    std::thread::sleep(SETTLE);
    let mark = Instant::now();
    std::thread::sleep(LISTEN);
    let one = |t: &ToneStream, who: &str| t.hears(&format!("{what}: {who}"), mark, &TONES);
    [
        one(&b.caller_tone, "caller"),
        one(&b.agent_tone, "agent"),
        sup.map_or_else(Vec::new, |s| one(s, "supervisor")),
    ]
}

/// (caller, agent, supervisor) tone heard, per phone, in `mode`.
fn expected(mode: &str) -> [Vec<bool>; 3] {
    let sup = mode != "listen";
    [
        vec![false, true, mode == "barge"],
        vec![true, false, sup],
        vec![true, true, false],
    ]
}

#[test]
fn a_supervisor_listens_whispers_and_barges_and_hears_exactly_what_it_should() {
    let mut c = Center::start();
    let mut b = bridged(&mut c);
    let call = b.call.clone();

    // Before any monitor: caller and agent hear each other only.
    let [caller, agent, _] = heard(&b, None, "unmonitored");
    assert_eq!(caller, [false, true, false]);
    assert_eq!(agent, [true, false, false]);

    // Not monitored yet: PATCH and DELETE are 404; a bad mode is 400.
    assert_eq!(c.monitor("DELETE", &call, None).0, 404);
    let patch = Some(json!({"mode": "barge"}));
    assert_eq!(c.monitor("PATCH", &call, patch).0, 404);
    let bad = Some(json!({"supervisor": "3001", "mode": "shout"}));
    assert_eq!(c.monitor("POST", &call, bad).0, 400);
    let nobody = Some(json!({"supervisor": "9999", "mode": "listen"}));
    assert_eq!(c.monitor("POST", &call, nobody).0, 400);
    let unknown = Some(json!({"supervisor": "3001", "mode": "listen"}));
    assert_eq!(c.monitor("POST", "no-such-call", unknown).0, 404);

    // Listen, then whisper, then barge on the same supervisor leg.
    let (sup_inv, sup_tone) = c.start_monitor(&call, "3001", "listen");
    let again = Some(json!({"supervisor": "3001", "mode": "barge"}));
    assert_eq!(
        c.monitor("POST", &call, again).0,
        409,
        "one monitor per call"
    );
    assert_eq!(heard(&b, Some(&sup_tone), "listen"), expected("listen"));
    for mode in ["whisper", "barge"] {
        let (code, view) = c.monitor("PATCH", &call, Some(json!({ "mode": mode })));
        assert_eq!(code, 200, "{view}");
        assert_eq!(view["state"], "connected", "{view}");
        let changed = c.monitor_event(&call, "mode_changed");
        assert_eq!(changed["mode"], mode, "{changed}");
        assert_eq!(heard(&b, Some(&sup_tone), mode), expected(mode), "{mode}");
    }

    // The supervisor's phone re-INVITEs (a new SDP version) and refreshes
    // by UPDATE: both answered on its dialog, and the mix goes on.
    let ok = c.sup.request_in_dialog(&sup_inv, "INVITE", 1, Some(""));
    assert_eq!(status_code(&ok), Some(200), "re-INVITE answered:\n{ok}");
    assert_eq!(sdp_port(&ok), sdp_port(&sup_inv), "the same leg:\n{ok}");
    let ok = c.sup.request_in_dialog(&sup_inv, "UPDATE", 2, None);
    assert_eq!(status_code(&ok), Some(200), "UPDATE answered:\n{ok}");
    assert_eq!(
        heard(&b, Some(&sup_tone), "after re-INVITE"),
        expected("barge")
    );

    // DELETE: the supervisor gets a BYE, the call goes on unmonitored.
    let (code, view) = c.monitor("DELETE", &call, None);
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["state"], "ended", "{view}");
    assert!(c.sup.expect_bye(WAIT).is_some(), "no BYE to the supervisor");
    let ended = c.monitor_event(&call, "ended");
    assert_eq!(ended["reason"], "api", "{ended}");
    let [caller, agent, _] = heard(&b, None, "after DELETE");
    assert_eq!(caller, [false, true, false]);
    assert_eq!(agent, [true, false, false]);
    assert_eq!(c.monitor("DELETE", &call, None).0, 404);
    drop(sup_tone);

    // Again, in listen; this time the supervisor hangs up: only its leg
    // ends.
    let (sup_inv, sup_tone) = c.start_monitor(&call, "3001", "listen");
    assert_eq!(
        heard(&b, Some(&sup_tone), "listen again"),
        expected("listen")
    );
    let ok = c.sup.request_in_dialog(&sup_inv, "BYE", 1, None);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    let ended = c.monitor_event(&call, "ended");
    assert_eq!(ended["reason"], "supervisor", "{ended}");
    drop(sup_tone);
    let [caller, agent, _] = heard(&b, None, "after the supervisor's BYE");
    assert_eq!(caller, [false, true, false]);
    assert_eq!(agent, [true, false, false]);

    // A third time, barging; the caller hangs up: agent and supervisor
    // both get a BYE.
    let (_, sup_tone) = c.start_monitor(&call, "3001", "barge");
    assert_eq!(heard(&b, Some(&sup_tone), "barge again"), expected("barge"));
    b.caller.bye();
    assert!(c.agent.expect_bye(WAIT).is_some(), "no BYE to the agent");
    assert!(c.sup.expect_bye(WAIT).is_some(), "no BYE to the supervisor");
    let ended = c.monitor_event(&call, "ended");
    assert_eq!(ended["reason"], "call_ended", "{ended}");
    c.events.until("call_ended", |v| {
        v["type"] == "call_ended" && v["call"] == call
    });
    drop(sup_tone);

    // The record: three monitor legs in order, with their modes and ends.
    let rec = record_of(&c, &call);
    let monitors = rec["monitors"].as_array().expect("monitors");
    let summary: Vec<(String, Vec<String>, String)> = monitors
        .iter()
        .map(|m| {
            let modes = m["modes"].as_array().expect("modes");
            (
                m["supervisor"].as_str().unwrap_or("").to_owned(),
                modes
                    .iter()
                    .map(|s| s["mode"].as_str().unwrap_or("").to_owned())
                    .collect(),
                m["ended_by"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        summary,
        vec![
            (
                s("3001"),
                vec![s("listen"), s("whisper"), s("barge")],
                s("api")
            ),
            (s("3001"), vec![s("listen")], s("supervisor")),
            (s("3001"), vec![s("barge")], s("call_ended")),
        ],
        "{rec:#}"
    );
    for m in monitors {
        let (start, end) = (m["started_ms"].as_i64(), m["ended_ms"].as_i64());
        assert!(start.is_some() && end >= start, "{m}");
    }
}

/// The finished record of `call` from `GET /api/v1/cdr` (it is written
/// by the writer thread soon after the call's end).
fn record_of(c: &Center, call: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = get_json(&c.url("/api/v1/cdr"));
        let found = all.as_array().and_then(|a| {
            a.iter()
                .find(|r| r["id"] == call && !r["ended_ms"].is_null())
                .cloned()
        });
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no finished record of {call}: {all}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_refused_supervisor_phone_ends_the_monitor_and_a_sip_uri_supervisor_is_called() {
    let mut c = Center::start();
    let b = bridged(&mut c);
    let call = b.call.clone();

    // The supervisor's phone (an agent id) refuses: the monitor is over,
    // with a `failed` event that says why; the call goes on.
    let (code, _) = c.monitor(
        "POST",
        &call,
        Some(json!({"supervisor": "3001", "mode": "whisper"})),
    );
    assert_eq!(code, 202);
    let inv = c.sup.expect_invite(WAIT).expect("INVITE to the supervisor");
    c.sup.refuse(&inv, 486);
    let failed = c.monitor_event(&call, "failed");
    assert_eq!(failed["reason"], "refused", "{failed}");
    assert_eq!(failed["supervisor"], "3001", "{failed}");
    assert_eq!(
        c.monitor("PATCH", &call, Some(json!({"mode": "barge"}))).0,
        404
    );
    let [caller, agent, _] = heard(&b, None, "after the refusal");
    assert_eq!(caller, [false, true, false]);
    assert_eq!(agent, [true, false, false]);

    // A supervisor given as a SIP URI: its phone is called there.
    let mut other = AgentPhone::new("boss");
    let uri = other.contact();
    let (code, view) = c.monitor(
        "POST",
        &call,
        Some(json!({"supervisor": uri, "mode": "barge"})),
    );
    assert_eq!(code, 202, "{view}");
    let inv = other.expect_invite(WAIT).expect("INVITE to the URI");
    other.answer(&inv);
    let started = c.monitor_event(&call, "started");
    assert_eq!(started["supervisor"], uri.as_str(), "{started}");
    let boss = ToneStream::start(other.rtp_socket(), SUPERVISOR_HZ, sdp_port(&inv));
    assert_eq!(heard(&b, Some(&boss), "barge by URI"), expected("barge"));
    // The agent hangs up: the call ends, and the supervisor gets a BYE.
    let ok = c.agent.request_in_dialog(&b.agent_inv, "BYE", 1, None);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    assert!(b.caller.expect_bye(WAIT).is_some(), "no BYE to the caller");
    assert!(
        other.expect_bye(WAIT).is_some(),
        "no BYE to the URI supervisor"
    );
    let ended = c.monitor_event(&call, "ended");
    assert_eq!(ended["reason"], "agent_left", "{ended}");

    // The refused attempt left no monitor in the record; the answered one
    // did.
    let rec = record_of(&c, &call);
    let sups: Vec<&str> = rec["monitors"]
        .as_array()
        .expect("monitors")
        .iter()
        .filter_map(|m| m["supervisor"].as_str())
        .collect();
    assert_eq!(sups, [uri.as_str()], "{rec:#}");
}
