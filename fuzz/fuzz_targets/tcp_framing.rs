//! A TCP byte stream cut into SIP messages, arriving in pieces: the first
//! byte picks the piece size, so the same stream is framed at many splits.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sipacd::sip::framing::next_frame;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1);
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match next_frame(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return, // the connection would be closed
            }
        }
    }
});
