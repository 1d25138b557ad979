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
