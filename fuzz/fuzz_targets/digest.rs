//! An Authorization header value from a phone (or a guesser).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipacd::registrar::parse_authorization;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(creds) = parse_authorization(text) {
        let _ = format!("{creds:?}");
    }
});
