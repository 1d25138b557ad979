//! SIGHUP re-reads the file (a good one is applied, a broken one rejected with
//! the old configuration still serving); SIGTERM drains and exits 0.

mod common;

use common::sip::Uac;
use common::{ConfigSpec, Daemon};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
const NEW_NUMBER: &str = "\n[[numbers]]\nnumber = \"1700\"\nto = \"ivr:bye\"\n";

fn final_code(codes: &[u16]) -> Option<u16> {
    codes.last().copied().filter(|c| *c >= 200)
}

fn reload_line(d: &Daemon, word: &str) -> bool {
    d.wait_for_log(Duration::from_secs(10), |l| {
        let l = l.to_ascii_lowercase();
        l.contains("reload") && l.contains(word)
    })
}

#[test]
fn sighup_applies_a_good_file() {
    let mut d = Daemon::start();
    let uac = Uac::new(d.sip_port());
    assert_eq!(
        final_code(&uac.invite("1700", T)),
        Some(404),
        "1700 is not configured yet"
    );

    d.cfg.spec.extra.push_str(NEW_NUMBER);
    d.cfg.write();
    d.signal("HUP");
    assert!(
        reload_line(&d, "applied"),
        "no `reload … applied` log line:\n{}",
        d.stderr()
    );

    let codes = uac.invite("1700", T);
    assert_eq!(
        final_code(&codes),
        Some(200),
        "1700 after reload: {codes:?}\n{}",
        d.stderr()
    );
    assert_eq!(
        final_code(&uac.invite("1500", T)),
        Some(200),
        "1500 lost by the reload"
    );
    assert!(d.is_alive());
}

#[test]
fn sighup_rejects_a_broken_file_and_keeps_serving() {
    let mut d = Daemon::start();
    let uac = Uac::new(d.sip_port());
    // The broken file would add 1700 too: proof that nothing of it applied.
    let broken = format!(
        "{}{NEW_NUMBER}\n[bogus_section]\nkey = 1\n",
        d.cfg.spec.render(d.cfg.root())
    );
    d.cfg.write_text(&broken);
    d.signal("HUP");
    assert!(
        reload_line(&d, "rejected"),
        "no `reload … rejected` log line:\n{}",
        d.stderr()
    );
    assert!(
        d.is_alive(),
        "a broken reload must not stop the daemon:\n{}",
        d.stderr()
    );

    assert_eq!(
        common::sip::options_status(d.sip_port(), T),
        Some(200),
        "OPTIONS after a rejected reload"
    );
    assert_eq!(
        final_code(&uac.invite("1500", T)),
        Some(200),
        "old numbers must still work"
    );
    assert_eq!(
        final_code(&uac.invite("1700", T)),
        Some(404),
        "the rejected file leaked"
    );
}

#[test]
fn sigterm_exits_zero() {
    let mut d = Daemon::start();
    d.signal("TERM");
    let st = d.wait_exit(Duration::from_secs(10));
    assert!(
        st.is_some_and(|s| s.success()),
        "SIGTERM must exit 0 promptly, got {st:?}:\n{}",
        d.stderr()
    );
}

#[test]
fn sigterm_with_a_call_up_drains_then_exits_zero() {
    let mut spec = ConfigSpec::new();
    spec.drain_s = 2;
    let mut d = Daemon::start_with(spec);
    let uac = Uac::new(d.sip_port());
    // A call answered and left up: the drain must wait for it, but no longer
    // than drain_s.
    let codes = uac.invite_with("1500", T, false);
    assert_eq!(final_code(&codes), Some(200), "{codes:?}");
    d.signal("TERM");
    let st = d.wait_exit(Duration::from_secs(2 + 10));
    assert!(
        st.is_some_and(|s| s.success()),
        "exit after drain_s must be 0, got {st:?}:\n{}",
        d.stderr()
    );
}

/// A call answered before a reload is still the same call after it: its
/// BYE gets 200, not 481, and the daemon never hung it up.
#[test]
fn sighup_during_a_live_call_drops_nothing() {
    let mut d = Daemon::start();
    let port = d.sip_port();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = sock.local_addr().unwrap().port();
    let msg = |method: &str, cseq: u32, to: &str, branch: &str| {
        format!(
            "{method} sip:1500@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=rl1\r\nTo: {to}\r\nCall-ID: reload-live-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@127.0.0.1:{me}>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let recv_final = |method: &str| -> String {
        let deadline = std::time::Instant::now() + T;
        let mut buf = vec![0u8; 65536];
        while std::time::Instant::now() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let code = common::sip::status_code(&m).unwrap_or(0);
                let cseq = common::sip::header(&m, "CSeq", None).unwrap_or("");
                assert!(
                    common::sip::method(&m) != Some("BYE"),
                    "sipacd hung the call up:\n{m}"
                );
                if code >= 200 && cseq.ends_with(method) {
                    return m;
                }
            }
        }
        panic!("no final answer to {method}");
    };
    let target = ("127.0.0.1", port);
    sock.send_to(
        msg("INVITE", 1, "<sip:1500@127.0.0.1>", "rl-inv").as_bytes(),
        target,
    )
    .unwrap();
    let ok = recv_final("INVITE");
    assert_eq!(common::sip::status_code(&ok), Some(200));
    let to = common::sip::header(&ok, "To", None).unwrap().to_string();
    sock.send_to(msg("ACK", 1, &to, "rl-ack").as_bytes(), target)
        .unwrap();

    d.cfg.spec.extra.push_str(NEW_NUMBER);
    d.cfg.write();
    d.signal("HUP");
    assert!(reload_line(&d, "applied"), "no reload:\n{}", d.stderr());

    sock.send_to(msg("BYE", 2, &to, "rl-bye").as_bytes(), target)
        .unwrap();
    let bye_ok = recv_final("BYE");
    assert_eq!(
        common::sip::status_code(&bye_ok),
        Some(200),
        "the call did not survive the reload:\n{bye_ok}\n{}",
        d.stderr()
    );
}

/// A reload in the middle of a working contact center drops nothing: a
/// bridged call stays up, a queued caller keeps its place, an agent paused
/// by ring-no-answer stays paused, and a caller whose queue the new file
/// removes goes to that queue's overflow and still reaches an agent.
#[test]
fn sighup_keeps_bridged_queued_paused_and_diverts_a_removed_queue() {
    use common::phone::{AgentPhone, Caller};
    const OFFER: Duration = Duration::from_secs(5);
    let from = |inv: &str| {
        common::sip::header(inv, "From", Some("f"))
            .unwrap_or_default()
            .to_string()
    };
    let mut talker = AgentPhone::new("3201");
    let mut sleeper = AgentPhone::new("3202");
    let queues =
        "\n[queues.rq]\nskills = { r = 1 }\nstrategy = \"most_skilled\"\nring_timeout_s = 1\n\
                  \n[queues.gone]\nskills = { g = 1 }\noverflow = \"queue:rq\"\n";
    let numbers = "\n[[numbers]]\nnumber = \"3100\"\nto = \"queue:rq\"\n\
                   \n[[numbers]]\nnumber = \"3101\"\nto = \"queue:gone\"\n";
    let agents = [
        talker.toml("skills = { r = 5 }"),
        sleeper.toml("skills = { r = 9 }"),
    ]
    .concat();
    let mut spec = ConfigSpec::new();
    spec.extra = format!("{agents}{queues}{numbers}");
    let mut d = Daemon::start_with(spec);

    // The most skilled agent rings out (RONA, paused); the other answers.
    let mut c1 = Caller::dial_from(d.sip_port(), "3100", "7000001");
    let inv = sleeper.expect_invite(OFFER).expect("most skilled offered");
    assert!(from(&inv).contains("7000001"), "{inv}");
    assert!(sleeper.expect_cancel(OFFER).is_some(), "no CANCEL on RONA");
    let inv = talker.expect_invite(OFFER).expect("re-offered after RONA");
    talker.answer(&inv);
    // Nobody free: c2 waits in rq, c3 in gone (no agent has skill g).
    let mut c2 = Caller::dial_from(d.sip_port(), "3100", "7000002");
    let mut c3 = Caller::dial_from(d.sip_port(), "3101", "7000003");
    std::thread::sleep(Duration::from_millis(300));

    // The new file drops queue `gone` (and its number), adds a number.
    d.cfg.spec.extra = format!(
        "{agents}\n[queues.rq]\nskills = {{ r = 1 }}\nstrategy = \"most_skilled\"\nring_timeout_s = 1\n\
         \n[[numbers]]\nnumber = \"3100\"\nto = \"queue:rq\"\n{NEW_NUMBER}"
    );
    d.cfg.write();
    d.signal("HUP");
    assert!(reload_line(&d, "applied"), "no reload:\n{}", d.stderr());

    // The bridged call is untouched, and the paused agent stays paused.
    assert!(c1.expect_bye(Duration::from_millis(500)).is_none());
    sleeper.expect_no_invite(Duration::from_millis(1000), "paused by RONA");
    c1.bye();
    assert!(
        talker.expect_bye(OFFER).is_some(),
        "agent leg not ended:\n{}",
        d.stderr()
    );
    // c2 kept its place (first), then c3 arrives through the overflow.
    let inv2 = talker.expect_invite(OFFER).expect("queued caller offered");
    assert!(from(&inv2).contains("7000002"), "{inv2}");
    talker.answer(&inv2);
    c2.bye();
    assert!(talker.expect_bye(OFFER).is_some());
    let inv3 = talker
        .expect_invite(OFFER)
        .unwrap_or_else(|| panic!("diverted caller lost:\n{}", d.stderr()));
    assert!(from(&inv3).contains("7000003"), "{inv3}");
    assert_eq!(
        common::sip::header(&inv3, "X-Sipacd-Queue", None),
        Some("rq")
    );
    talker.answer(&inv3);
    c3.bye();
    assert!(talker.expect_bye(OFFER).is_some());
    sleeper.expect_no_invite(Duration::from_millis(200), "still paused");
}
