//! Outbound calls through a trunk, against the running daemon: a SIPp
//! "gateway" on loopback challenges sipacd's INVITE with 401, checks the
//! digest answer with SIPp's own code, answers, and hangs up later. The
//! call is started with `POST /api/v1/trunks/{name}/calls`.

mod common;

use common::http::{post_json, request};
use common::sipp::{run_sipp_at, sipp_or_skip};
use common::{free_port, wait_until, ConfigSpec, Daemon};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_challenged_call_through_a_trunk_is_authenticated_answered_and_ended() {
    if !sipp_or_skip() {
        return;
    }
    let gw_port = free_port();
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "\n[trunks.gw]\nuri = \"sip:gw@127.0.0.1:{gw_port}\"\nusername = \"acme\"\n\
         password = \"pw\"\ncaller_id = \"1500\"\nmax_calls = 1\n"
    );
    let d = Daemon::start_with(spec);
    let sip = d.sip_port();
    let gateway = std::thread::spawn(move || {
        run_sipp_at(
            gw_port,
            sip,
            "gateway_challenges",
            &[],
            Duration::from_secs(20),
        )
    });
    // SIPp binds its port before anything is sent to it.
    std::thread::sleep(Duration::from_millis(500));

    let base = d.admin_url();
    let url = format!("{base}/api/v1/trunks/gw/calls");
    let (status, placed) = post_json(&url, &json!({"to": "5551234", "ring_timeout_s": 15}));
    assert_eq!(status, 202, "{placed}");
    assert_eq!(placed["trunk"], "gw");
    assert!(placed["call"].as_str().is_some_and(|c| !c.is_empty()));

    // The trunk's max_calls is 1: a second call is refused while it runs.
    let (status, _) = post_json(&url, &json!({"to": "5550000"}));
    assert_eq!(status, 409);
    let (status, _) = post_json(
        &format!("{base}/api/v1/trunks/nope/calls"),
        &json!({"to": "1"}),
    );
    assert_eq!(status, 404);
    let (status, _) = post_json(&url, &json!({"to": "55 5"}));
    assert_eq!(status, 400);

    let run = gateway.join().unwrap();
    run.assert_ok();
    assert!(
        run.messages.contains("CSeq: 2 INVITE"),
        "the INVITE went again with CSeq + 1:\n{}",
        run.report()
    );
    let answered = "sipacd_trunk_calls_total{trunk=\"gw\",result=\"answered\"} 1";
    wait_until("the answered trunk call is counted", WAIT, || {
        request("GET", &format!("{base}/metrics"), None)
            .1
            .contains(answered)
    });
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("the trunk's far end hung up")),
        "{}",
        d.stderr()
    );
    // Its place on the trunk is free again (the gateway is gone, so this
    // one only goes out).
    let (status, v) = post_json(&url, &json!({"to": "5550001", "ring_timeout_s": 1}));
    assert_eq!(status, 202, "{v}");
}
