//! RTCP (RFC 3550 §6): checking what a peer sends before relaying it, and
//! our own Sender Reports while a leg hears a prompt, music or silence
//! (nobody else's RTCP to relay then). Sans-IO: the driver passes the
//! instant and the wall clock (as NTP time) in and sends what is written.
//!
//! RTCP is never a reason to end a call: malformed packets are dropped and
//! counted by the caller, and a peer sending none is fine.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// Why a datagram is not valid compound RTCP (RFC 3550 Appendix A.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("shorter than an RTCP header")]
    TooShort,
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    #[error("first packet is type {0}, not SR or RR")]
    FirstNotReport(u8),
    #[error("packet type {0} is not RTCP")]
    NotRtcp(u8),
    #[error("length field runs past the datagram")]
    Length,
    #[error("padding before the last packet, or longer than the packet")]
    Padding,
}

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;

/// What a valid compound packet says about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpInfo {
    /// SSRC of the first (SR or RR) packet.
    pub ssrc: u32,
    /// Packets in the compound datagram.
    pub packets: usize,
}

/// Validates a compound RTCP datagram: every packet version 2 with a
/// type in 192-223 (RFC 5761's RTCP range), the first an SR or RR, lengths
/// adding up exactly, padding only on the last packet.
pub fn check(pkt: &[u8]) -> Result<RtcpInfo, RtcpError> {
    if pkt.len() < 8 {
        return Err(RtcpError::TooShort);
    }
    let first_pt = pkt[1];
    if first_pt != PT_SR && first_pt != PT_RR {
        // Version first: a wrong version says more than a wrong type.
        if pkt[0] >> 6 != 2 {
            return Err(RtcpError::Version(pkt[0] >> 6));
        }
        return Err(RtcpError::FirstNotReport(first_pt));
    }
    let ssrc = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
    let mut off = 0;
    let mut packets = 0;
    while off < pkt.len() {
        let rest = &pkt[off..];
        if rest.len() < 4 {
            return Err(RtcpError::TooShort);
        }
        if rest[0] >> 6 != 2 {
            return Err(RtcpError::Version(rest[0] >> 6));
        }
        if !(192..=223).contains(&rest[1]) {
            return Err(RtcpError::NotRtcp(rest[1]));
        }
        let words = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let len = (words + 1) * 4;
        if len > rest.len() {
            return Err(RtcpError::Length);
        }
        if rest[0] & 0x20 != 0 {
            let pad = rest[len - 1] as usize;
            if off + len != pkt.len() || pad == 0 || pad > len - 4 {
                return Err(RtcpError::Padding);
            }
        }
        off += len;
        packets += 1;
    }
    Ok(RtcpInfo { ssrc, packets })
}

/// Rewrites every SSRC field of a compound packet that [`check`] accepted
/// through `map`: the sender of SR, RR, APP, XR and feedback (RFC 4585)
/// packets, SR/RR report blocks, SDES chunks, BYE lists, and the media
/// SSRC of feedback. Fields of unknown packet types stay as they are; a
/// truncated packet is rewritten only as far as it goes.
pub fn map_ssrcs(pkt: &mut [u8], map: impl Fn(u32) -> u32) {
    let at = |pkt: &mut [u8], i: usize| {
        if let Some(b) = pkt.get_mut(i..i + 4) {
            let v = map(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            b.copy_from_slice(&v.to_be_bytes());
        }
    };
    let mut off = 0;
    while off + 4 <= pkt.len() {
        let count = (pkt[off] & 0x1F) as usize;
        let pt = pkt[off + 1];
        let words = u16::from_be_bytes([pkt[off + 2], pkt[off + 3]]) as usize;
        let end = (off + (words + 1) * 4).min(pkt.len());
        let body = &mut pkt[..end];
        match pt {
            PT_SR | PT_RR => {
                at(body, off + 4);
                let blocks = off + if pt == PT_SR { 28 } else { 8 };
                for b in 0..count {
                    at(body, blocks + 24 * b);
                }
            }
            PT_SDES => {
                // Chunks: SSRC, items until a null one, padded to a word.
                let mut c = off + 4;
                for _ in 0..count {
                    at(body, c);
                    let mut i = c + 4;
                    while i < end && body[i] != 0 {
                        i += 2 + body.get(i + 1).copied().unwrap_or(0) as usize;
                    }
                    c = (i + 4) & !3;
                    if c >= end {
                        break;
                    }
                }
            }
            203 => {
                for k in 0..count {
                    at(body, off + 4 + 4 * k);
                }
            }
            204 | 207 => at(body, off + 4),
            205 | 206 => {
                at(body, off + 4);
                at(body, off + 8);
            }
            _ => {}
        }
        off += (words + 1) * 4;
    }
}

/// Seconds from 1900 (NTP era 0) to 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A wall-clock time as a 64-bit NTP timestamp (32.32 fixed point).
pub fn ntp_time(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The sender's side of an SR: what our stream has sent so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ssrc: u32,
    /// NTP wall-clock time of the report.
    pub ntp: u64,
    /// The RTP timestamp that corresponds to `ntp` in our stream.
    pub rtp_ts: u32,
    pub packets: u32,
    /// Payload octets (headers and padding excluded).
    pub octets: u32,
}

/// Writes a compound SR (no report blocks) + SDES CNAME into `out`
/// (cleared first). RFC 3550 §6.1: every compound packet carries a CNAME.
pub fn write_sr(info: &SenderInfo, cname: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0x80, PT_SR, 0, 6]);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_ts.to_be_bytes());
    out.extend_from_slice(&info.packets.to_be_bytes());
    out.extend_from_slice(&info.octets.to_be_bytes());
    // SDES: one chunk, CNAME item, then a null item padding to 32 bits.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let start = out.len();
    out.extend_from_slice(&[0x81, PT_SDES, 0, 0]);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.push(1); // CNAME
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

/// RFC 3550 §6.2: at most one report every 5 s (we are one sender and one
/// receiver: no bandwidth scaling is needed).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// When our next Sender Report is due: the first after half an interval
/// (§6.2's "initial" halving), then every interval scaled by a random
/// factor in [0.5, 1.5] so that streams started together do not report in
/// lock step (§6.3.1).
#[derive(Debug, Clone)]
pub struct ReportTimer {
    next: Instant,
    /// xorshift state: deterministic per seed, enough for spreading.
    rng: u32,
}

impl ReportTimer {
    pub fn new(seed: u32, now: Instant) -> ReportTimer {
        let mut t = ReportTimer {
            next: now,
            rng: seed | 1,
        };
        t.next = now + t.jittered() / 2;
        t
    }

    fn jittered(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        // 0.5 + (0..1024)/1024 of the interval
        let k = 512 + (self.rng % 1024);
        REPORT_INTERVAL * k / 1024
    }

    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// True (once) when a report is due at `now`; schedules the next one
    /// from `now`, so a late driver does not burst reports.
    pub fn poll(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.jittered();
        true
    }

    /// Restarts the wait (our stream starts or resumes sending reports).
    pub fn restart(&mut self, now: Instant) {
        self.next = now + self.jittered() / 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rr(ssrc: u32) -> Vec<u8> {
        let mut v = vec![0x80, PT_RR, 0, 1];
        v.extend_from_slice(&ssrc.to_be_bytes());
        v
    }

    fn info() -> SenderInfo {
        SenderInfo {
            ssrc: 0xDEAD_BEEF,
            ntp: 0x0102_0304_0506_0708,
            rtp_ts: 0x1111_2222,
            packets: 250,
            octets: 40_000,
        }
    }

    #[test]
    fn our_sender_report_is_valid_compound_rtcp_with_exact_fields() {
        let mut out = Vec::new();
        write_sr(&info(), "sipacd@127.0.0.1", &mut out);
        assert_eq!(
            check(&out),
            Ok(RtcpInfo {
                ssrc: 0xDEAD_BEEF,
                packets: 2
            })
        );
        assert_eq!(&out[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&out[8..16], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&out[16..20], &0x1111_2222u32.to_be_bytes());
        assert_eq!(&out[20..24], &250u32.to_be_bytes());
        assert_eq!(&out[24..28], &40_000u32.to_be_bytes());
        // SDES: SC=1, the same SSRC, CNAME item, null-terminated, padded.
        let sdes = &out[28..];
        assert_eq!((sdes[0], sdes[1]), (0x81, 202));
        assert_eq!(&sdes[4..8], &0xDEAD_BEEFu32.to_be_bytes());
        assert_eq!((sdes[8], sdes[9] as usize), (1, "sipacd@127.0.0.1".len()));
        assert_eq!(&sdes[10..26], b"sipacd@127.0.0.1");
        assert_eq!(sdes[26], 0);
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn cname_of_every_length_pads_to_words() {
        let mut out = Vec::new();
        for n in 0..=300 {
            write_sr(&info(), &"x".repeat(n), &mut out);
            assert!(check(&out).is_ok(), "cname length {n}");
        }
    }

    #[test]
    fn malformed_compounds_are_told_apart() {
        assert_eq!(check(&[]), Err(RtcpError::TooShort));
        assert_eq!(check(&[0x80, 201, 0, 0]), Err(RtcpError::TooShort));
        let mut v1 = rr(1);
        v1[0] = 0x40;
        assert_eq!(check(&v1), Err(RtcpError::Version(1)));
        let mut sdes_first = rr(1);
        sdes_first[1] = PT_SDES;
        assert_eq!(check(&sdes_first), Err(RtcpError::FirstNotReport(202)));
        let mut long = rr(1);
        long[3] = 9;
        assert_eq!(check(&long), Err(RtcpError::Length));
        let mut trailing = rr(1);
        trailing.extend_from_slice(&[0x80, 0x00, 0, 0]);
        assert_eq!(check(&trailing), Err(RtcpError::NotRtcp(0)));
        let mut short_tail = rr(1);
        short_tail.extend_from_slice(&[0x81]);
        assert_eq!(check(&short_tail), Err(RtcpError::TooShort));
        // Padding on a packet that is not the last one.
        let mut pad = rr(1);
        pad[0] |= 0x20;
        pad.extend(rr(2));
        assert_eq!(check(&pad), Err(RtcpError::Padding));
        // Correct padding on the last packet: 4 bytes, count 4.
        let mut ok = rr(1);
        ok.extend_from_slice(&[0xA0, 203, 0, 1, 0, 0, 0, 4]);
        assert_eq!(check(&ok).map(|i| i.packets), Ok(2));
        // RTP (payload type 0) is not RTCP.
        assert_eq!(
            check(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(RtcpError::FirstNotReport(0))
        );
    }

    #[test]
    fn every_ssrc_field_is_mapped_and_nothing_else() {
        // SR with two report blocks, SDES with two chunks, BYE, PSFB, APP.
        let mut p = vec![0x82, PT_SR, 0, 18];
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&[0xEE; 20]); // sender info
        for about in [2u32, 3] {
            p.extend_from_slice(&about.to_be_bytes());
            p.extend_from_slice(&[0xEE; 20]);
        }
        p.extend_from_slice(&[0x82, PT_SDES, 0, 6]);
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&[1, 3, b'a', b'b', b'c', 0, 0, 0]); // CNAME "abc"
        p.extend_from_slice(&2u32.to_be_bytes());
        p.extend_from_slice(&[1, 2, b'x', b'y', 0, 0, 0, 0]);
        p.extend_from_slice(&[0x81, 203, 0, 1]);
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&[0x81, 206, 0, 2]);
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&2u32.to_be_bytes());
        assert_eq!(check(&p).map(|i| i.packets), Ok(4));
        let before = p.clone();
        map_ssrcs(&mut p, |x| x + 0x1000);
        assert_eq!(check(&p).map(|i| i.ssrc), Ok(0x1001));
        let ssrc_at = [4, 28, 52, 80, 92, 108, 116, 120];
        for (i, (a, b)) in before.iter().zip(&p).enumerate() {
            let field = ssrc_at.iter().find(|&&f| (f..f + 4).contains(&i));
            match field {
                Some(&f) if i == f + 2 => assert_eq!(*b, a + 0x10, "byte {i}"),
                _ => assert_eq!(a, b, "byte {i} is not an SSRC"),
            }
        }
    }

    #[test]
    fn ntp_time_of_known_instants() {
        assert_eq!(ntp_time(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let half = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(ntp_time(half), ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31));
    }

    #[test]
    fn reports_every_five_seconds_give_or_take_half() {
        let t = Instant::now();
        let mut timer = ReportTimer::new(0xCAFE, t);
        let first = timer.next_due() - t;
        assert!(first >= REPORT_INTERVAL / 4 && first <= REPORT_INTERVAL * 3 / 4);
        assert!(!timer.poll(t));
        let mut now = timer.next_due();
        let mut gaps = Vec::new();
        for _ in 0..50 {
            assert!(timer.poll(now));
            assert!(!timer.poll(now), "once per due time");
            gaps.push(timer.next_due() - now);
            now = timer.next_due();
        }
        assert!(gaps
            .iter()
            .all(|g| *g >= REPORT_INTERVAL / 2 && *g <= REPORT_INTERVAL * 3 / 2));
        let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
        assert!(mean > Duration::from_secs(4) && mean < Duration::from_secs(6));
        assert!(gaps.windows(2).any(|w| w[0] != w[1]), "randomised");
        // A driver 30 s late gets one report, not six.
        let late = now + Duration::from_secs(30);
        assert!(timer.poll(late));
        assert!(!timer.poll(late));
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(pkt in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(i) = check(&pkt) {
                prop_assert!(i.packets >= 1);
                prop_assert_eq!(pkt.len() % 4, 0);
            }
            // Whatever it is given: same length, no panic.
            let mut m = pkt.clone();
            map_ssrcs(&mut m, |x| !x);
            prop_assert_eq!(m.len(), pkt.len());
        }
    }
}
