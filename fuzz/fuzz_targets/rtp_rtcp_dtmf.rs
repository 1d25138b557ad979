//! A UDP packet on a media port: RTP header, RTCP compound checks and
//! rewrites, RFC 4733 events, and SIP INFO DTMF bodies.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sipacd::media::dtmf::{parse_info, Rfc4733Receiver};
use sipacd::media::rtcp;

fuzz_target!(|data: &[u8]| {
    if let Ok(rtp) = rtp_rs::RtpReader::new(data) {
        let _ = (rtp.ssrc(), rtp.sequence_number(), rtp.payload().len());
    }
    if rtcp::check(data).is_ok() {
        let mut copy = data.to_vec();
        rtcp::map_ssrcs(&mut copy, |s| s.wrapping_add(1));
        let _ = rtcp::sr_lsr(&copy);
    }
    // The same bytes as a stream of RFC 4733 payloads, 4 bytes each.
    let start = Instant::now();
    let mut rx = Rfc4733Receiver::new();
    for (i, chunk) in data.chunks(4).enumerate() {
        let now = start + Duration::from_millis(20 * i as u64);
        rx.on_packet(160 * (i as u32 / 3), chunk, now);
        if let Some(t) = rx.next_timeout() {
            rx.handle_timeout(t);
        }
        while rx.poll_event().is_some() {}
    }
    for ct in ["application/dtmf-relay", "application/dtmf", "text/plain"] {
        let _ = parse_info(ct, data);
    }
});
