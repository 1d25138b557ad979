//! Over `server.max_calls`, a new INVITE gets 503 (with Retry-After), and
//! the calls already up are not disturbed.

mod common;

use common::sip::Uac;
use common::{ConfigSpec, Daemon};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

#[test]
fn invite_over_max_calls_gets_503() {
    let mut spec = ConfigSpec::new();
    spec.max_calls = 1;
    let mut d = Daemon::start_with(spec);
    let first = Uac::new(d.sip_port());
    let codes = first.invite_with("1500", T, false);
    assert_eq!(
        codes.last(),
        Some(&200),
        "first call: {codes:?}\n{}",
        d.stderr()
    );

    let second = Uac::new(d.sip_port());
    let codes = second.invite("1500", T);
    assert_eq!(
        codes.last(),
        Some(&503),
        "second call over max_calls = 1: {codes:?}"
    );
    assert!(d.is_alive());
    assert_eq!(common::sip::options_status(d.sip_port(), T), Some(200));
}
