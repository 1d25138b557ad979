//! One datagram through the SIP parser: parse, the cheap peek used for
//! retransmission absorption, and the error answer built for what parse
//! refused. A message parse accepts must serialise into one it accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipacd::sip::message::{error_response, parse, peek_request, serialize};

fuzz_target!(|data: &[u8]| {
    let _ = peek_request(data);
    match parse(data) {
        Ok(msg) => {
            let bytes = serialize(&msg);
            if let Err(e) = parse(&bytes) {
                panic!("our own serialisation was refused: {e:?}");
            }
        }
        Err(err) => {
            let _ = err.status();
            let _ = error_response(data, &err);
        }
    }
});
