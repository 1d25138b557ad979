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

/// Writes a compound SR with an optional reception report block (about the
/// peer's stream) + SDES CNAME into `out` (cleared first). RFC 3550 §6.1:
/// every compound packet carries a CNAME.
pub fn write_sr(info: &SenderInfo, block: Option<&[u8; 24]>, cname: &str, out: &mut Vec<u8>) {
    out.clear();
    let rc = u8::from(block.is_some());
    out.extend_from_slice(&[0x80 | rc, PT_SR, 0, 6 + 6 * rc]);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_ts.to_be_bytes());
    out.extend_from_slice(&info.packets.to_be_bytes());
    out.extend_from_slice(&info.octets.to_be_bytes());
    if let Some(b) = block {
        out.extend_from_slice(b);
    }
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

/// The middle 32 bits of an SR's NTP timestamp (its LSR in a reply), if
/// `pkt` (valid compound RTCP) starts with an SR.
pub fn sr_lsr(pkt: &[u8]) -> Option<(u32, u32)> {
    if pkt.get(1) != Some(&PT_SR) {
        return None;
    }
    let ssrc = u32::from_be_bytes(pkt.get(4..8)?.try_into().ok()?);
    let mid = u32::from_be_bytes(pkt.get(10..14)?.try_into().ok()?);
    Some((ssrc, mid))
}

/// Reception statistics of the peer's stream, for the report block of our
/// SR (RFC 3550 §6.4.1, Appendix A.1, A.3, A.8), so the phone can see loss,
/// jitter and round-trip time. A new SSRC or a wild sequence jump starts
/// over.
#[derive(Debug, Clone, Default)]
pub struct Reception {
    src: Option<Source>,
}

#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    /// False while only an SR has been seen (no sequence numbers yet).
    started: bool,
    base_seq: u32,
    /// Extended (cycles included) highest sequence number.
    max_seq: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// RFC 3550 A.8, in timestamp units times 16.
    jitter16: u32,
    last_transit: Option<i64>,
    clock0: Instant,
    /// LSR of the peer's last SR and when it came.
    lsr: Option<(u32, Instant)>,
}

/// Sequence jumps beyond this (forwards) restart the statistics.
const MAX_DROPOUT: u16 = 3000;

impl Reception {
    /// An RTP packet of the peer. `audio` is false for telephone-events,
    /// whose timestamps stand still and would read as jitter.
    pub fn on_rtp(&mut self, ssrc: u32, seq: u16, ts: u32, audio: bool, now: Instant) {
        if self.src.as_ref().is_none_or(|s| s.ssrc != ssrc) {
            self.src = Some(Source::new(ssrc, seq, now));
        }
        let Some(s) = self.src.as_mut() else {
            return;
        };
        if !s.started {
            // Known from an SR so far: the stream starts here.
            let lsr = s.lsr;
            *s = Source::new(ssrc, seq, now);
            s.lsr = lsr;
        }
        let max16 = s.max_seq as u16;
        let delta = seq.wrapping_sub(max16);
        if delta != 0 && delta < MAX_DROPOUT {
            if seq < max16 {
                s.max_seq = s.max_seq.wrapping_add(1 << 16);
            }
            s.max_seq = (s.max_seq & 0xFFFF_0000) | u32::from(seq);
        } else if (MAX_DROPOUT..=u16::MAX - 100).contains(&delta) {
            // The peer restarted its sequence: so do we.
            let lsr = s.lsr;
            *s = Source::new(ssrc, seq, now);
            s.lsr = lsr;
        }
        // Else a duplicate or a late packet: counted, max unchanged.
        s.received = s.received.wrapping_add(1);
        if audio {
            let arrival = (now.saturating_duration_since(s.clock0).as_micros() * 8 / 1000) as i64;
            let transit = arrival - i64::from(ts);
            if let Some(last) = s.last_transit {
                let d = (transit - last).unsigned_abs().min(u64::from(u32::MAX));
                // J += (|D| - J) / 16, kept times 16.
                let j = u64::from(s.jitter16);
                s.jitter16 = (j + d - ((j + 8) >> 4)).min(u64::from(u32::MAX)) as u32;
            }
            s.last_transit = Some(transit);
        }
    }

    /// The peer's SR (its SSRC and LSR) came at `now`.
    pub fn on_sr(&mut self, ssrc: u32, lsr: u32, now: Instant) {
        match &mut self.src {
            Some(s) if s.ssrc == ssrc => s.lsr = Some((lsr, now)),
            // An SR before any RTP: its LSR is still worth echoing.
            None => {
                let mut s = Source::new(ssrc, 0, now);
                s.started = false;
                s.base_seq = 1; // nothing expected yet
                s.lsr = Some((lsr, now));
                self.src = Some(s);
            }
            Some(_) => {}
        }
    }

    /// The report block about the peer's stream as of `now`, None before it
    /// sent anything; starts a new interval for the fraction lost.
    pub fn report_block(&mut self, now: Instant) -> Option<[u8; 24]> {
        let s = self.src.as_mut()?;
        let expected = s.max_seq.wrapping_add(1).wrapping_sub(s.base_seq);
        let lost = i64::from(expected) - i64::from(s.received);
        let lost = lost.clamp(-0x80_0000, 0x7F_FFFF) as i32;
        let exp_int = expected.wrapping_sub(s.expected_prior);
        let rec_int = s.received.wrapping_sub(s.received_prior);
        s.expected_prior = expected;
        s.received_prior = s.received;
        let lost_int = i64::from(exp_int) - i64::from(rec_int);
        let fraction = if exp_int == 0 || lost_int <= 0 {
            0
        } else {
            ((lost_int << 8) / i64::from(exp_int)).min(255) as u8
        };
        let (lsr, dlsr) = match s.lsr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                let units = (d.as_micros() * 65536 / 1_000_000).min(u32::MAX as u128) as u32;
                (lsr, units)
            }
            None => (0, 0),
        };
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&s.ssrc.to_be_bytes());
        b[4] = fraction;
        b[5..8].copy_from_slice(&lost.to_be_bytes()[1..]);
        b[8..12].copy_from_slice(&s.max_seq.to_be_bytes());
        b[12..16].copy_from_slice(&(s.jitter16 >> 4).to_be_bytes());
        b[16..20].copy_from_slice(&lsr.to_be_bytes());
        b[20..24].copy_from_slice(&dlsr.to_be_bytes());
        Some(b)
    }
}

impl Source {
    fn new(ssrc: u32, seq: u16, now: Instant) -> Source {
        Source {
            ssrc,
            started: true,
            base_seq: u32::from(seq),
            max_seq: u32::from(seq),
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter16: 0,
            last_transit: None,
            clock0: now,
            lsr: None,
        }
    }
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
        write_sr(&info(), None, "sipacd@127.0.0.1", &mut out);
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
            write_sr(&info(), None, &"x".repeat(n), &mut out);
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
    fn report_block_counts_loss_wraps_and_echoes_the_last_sr() {
        let t = Instant::now();
        let ms = |n: u64| t + Duration::from_millis(n);
        let mut r = Reception::default();
        assert_eq!(r.report_block(t), None);
        // 65530..=65535, then 0..=9 with 3 and 4 lost: 16 expected, 14 got.
        let mut n = 0u64;
        for seq in (65530u16..=65535)
            .chain(0..10)
            .filter(|s| *s != 3 && *s != 4)
        {
            let ts = u32::from(seq.wrapping_sub(65530)) * 160;
            let at = u64::from(seq.wrapping_sub(65530)) * 20;
            r.on_rtp(0xAB, seq, ts, true, ms(at));
            n += 1;
        }
        assert_eq!(n, 14);
        r.on_sr(0xAB, 0x1234_5678, ms(400));
        let b = r.report_block(ms(1400)).unwrap();
        assert_eq!(&b[0..4], &0xABu32.to_be_bytes());
        assert_eq!(b[4], 32, "fraction lost: 2 of 16, in 256ths");
        assert_eq!(&b[5..8], &[0, 0, 2], "cumulative lost");
        assert_eq!(&b[8..12], &(65536u32 + 9).to_be_bytes(), "one wrap");
        assert_eq!(&b[12..16], &0u32.to_be_bytes(), "perfect pacing: no jitter");
        assert_eq!(&b[16..20], &0x1234_5678u32.to_be_bytes());
        assert_eq!(&b[20..24], &65536u32.to_be_bytes(), "1 s since the SR");
        // Next interval: nothing lost, a duplicate does not count as loss.
        r.on_rtp(0xAB, 10, 16 * 160, true, ms(320));
        r.on_rtp(0xAB, 10, 16 * 160, true, ms(320));
        let b = r.report_block(ms(1500)).unwrap();
        assert_eq!(b[4], 0);
        assert_eq!(&b[5..8], &[0, 0, 1], "cumulative: 17 expected, 16 got");
    }

    #[test]
    fn jitter_follows_uneven_arrivals_and_ignores_events() {
        let t = Instant::now();
        let mut r = Reception::default();
        for i in 0..200u16 {
            // Packets every 20 ms of media, arriving 0 or 10 ms late.
            let late = if i % 2 == 0 { 0 } else { 10 };
            let at = t + Duration::from_millis(u64::from(i) * 20 + late);
            r.on_rtp(1, i, u32::from(i) * 160, true, at);
            // An event repeating one timestamp: no effect on jitter.
            r.on_rtp(1, i, 0, false, at);
        }
        let b = r.report_block(t + Duration::from_secs(5)).unwrap();
        let jitter = u32::from_be_bytes(b[12..16].try_into().unwrap());
        // |D| = 80 units every packet: J converges to 80.
        assert!((70..=80).contains(&jitter), "{jitter}");
        // A new SSRC starts over.
        r.on_rtp(2, 5000, 0, true, t);
        let b = r.report_block(t).unwrap();
        assert_eq!(
            (&b[0..4], &b[12..16]),
            (&2u32.to_be_bytes()[..], &[0u8; 4][..])
        );
    }

    #[test]
    fn our_sr_carries_the_report_block() {
        let mut out = Vec::new();
        let block = [7u8; 24];
        write_sr(&info(), Some(&block), "c", &mut out);
        assert_eq!(check(&out).map(|i| i.packets), Ok(2));
        assert_eq!(&out[..4], &[0x81, 200, 0, 12]);
        assert_eq!(&out[28..52], &block);
        assert_eq!(sr_lsr(&out), Some((0xDEAD_BEEF, 0x0304_0506)));
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
