//! An SDP body from a peer: parsed, and when it parses, answered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipacd::media::sdp::{answer, Origin, SdpOffer};

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = SdpOffer::parse(data) {
        let origin = Origin {
            session_id: 1,
            version: 1,
        };
        if let Ok(text) = answer(&offer, [127, 0, 0, 1].into(), 20000, origin) {
            // Our own answer must be SDP we accept.
            if let Err(e) = SdpOffer::parse(text.as_bytes()) {
                panic!("our own answer was refused: {e:?}");
            }
        }
    }
});
