//! Receiving RTP on a leg and relaying it to the other leg: symmetric-RTP
//! latching, garbage and foreign packets dropped and counted, then the
//! packet rewritten into the other leg's stream (its SSRC, its sequence
//! and timestamp space, its codec and telephone-event payload type).

use std::net::SocketAddr;
use std::time::Instant;

use rtp_rs::RtpReader;

use crate::media::g711::{self, Codec};
use crate::media::latch::{Latch, Verdict};
use crate::media::pacer::{InHeader, Pacer};

/// What was negotiated for one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegParams {
    /// The G.711 law we send on this leg.
    pub codec: Codec,
    /// The leg's telephone-event payload type, if it has one.
    pub te_pt: Option<u8>,
}

/// Per-leg counters. Drops are counted, never fatal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Valid packets accepted from the latched peer.
    pub received: u64,
    /// Packets written out to the other leg.
    pub relayed: u64,
    /// Of those, how many had their payload re-encoded.
    pub transcoded: u64,
    /// Valid RTP (or RTCP) from a source other than the latched peer.
    pub dropped_foreign: u64,
    /// Not RTP version 2, too short, or inconsistent header lengths.
    pub dropped_garbage: u64,
    /// Payload types we cannot relay (comfort noise, unknown, events to a
    /// leg without telephone-event).
    pub dropped_pt: u64,
    /// Valid RTCP arriving (on the RTCP port, or muxed on the RTP port).
    pub rtcp: u64,
    /// RTCP that is not valid compound RTCP (RFC 3550 A.2): dropped.
    pub dropped_rtcp: u64,
    /// Peer RTCP relayed to the other leg's peer.
    pub rtcp_relayed: u64,
    /// Sender Reports we generated (while not relaying).
    pub rtcp_sent: u64,
    /// SSRC changes accepted from the latched address.
    pub ssrc_changes: u64,
    /// Times another source replaced the latched one (the signalled
    /// address, or the same stream from a new address).
    pub relatched: u64,
}

/// Why a received packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Garbage,
    Foreign,
    /// RTCP muxed on the RTP port: not an error, just not media.
    Rtcp,
}

/// A received RTP packet's fields, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpIn<'a> {
    pub header: InHeader,
    pub pt: u8,
    pub payload: &'a [u8],
}

/// RFC 5761 §4: second byte 192-223 on an RTP port is RTCP (PT 200-204
/// with what would be RTP's marker bit).
pub fn is_rtcp(pkt: &[u8]) -> bool {
    matches!(pkt, [b0, b1, ..] if b0 >> 6 == 2 && (192..=223).contains(b1))
}

/// Check-then-parse of one datagram (rtp-rs validates the lengths).
pub fn parse(pkt: &[u8]) -> Result<RtpIn<'_>, DropReason> {
    if is_rtcp(pkt) {
        return Err(DropReason::Rtcp);
    }
    let r = RtpReader::new(pkt).map_err(|_| DropReason::Garbage)?;
    Ok(RtpIn {
        header: InHeader {
            ssrc: r.ssrc(),
            seq: r.sequence_number().into(),
            ts: r.timestamp(),
            marker: r.mark(),
        },
        pt: r.payload_type(),
        payload: r.payload(),
    })
}

/// Receiving side of a leg: symmetric RTP (RFC 4961 spirit, as phones
/// behind NAT need) under the rules of [`Latch`]; we send where the
/// latched source is and accept only from there.
#[derive(Debug, Clone)]
pub struct Inbound {
    latch: Latch,
    last_rx: Option<Instant>,
    stats: RelayStats,
}

impl Inbound {
    /// A leg whose SDP names `signalled`.
    pub fn new(signalled: Option<SocketAddr>) -> Inbound {
        Inbound {
            latch: Latch::new(signalled),
            last_rx: None,
            stats: RelayStats::default(),
        }
    }

    /// The latched peer address, once a packet came.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latch.latched()
    }

    /// The SSRC of the latched peer's stream, once a packet came.
    pub fn ssrc(&self) -> Option<u32> {
        self.latch.ssrc()
    }

    /// The SDP's address changed (or not: then the latch stays).
    pub fn set_signalled(&mut self, signalled: Option<SocketAddr>) {
        self.latch.set_signalled(signalled);
    }

    /// Forget the peer.
    pub fn reset_latch(&mut self) {
        self.latch.reset();
    }

    /// Whether RTCP from `from` may come from the peer (else it is counted
    /// as foreign).
    pub fn admits_rtcp(&mut self, from: SocketAddr) -> bool {
        let ok = self.latch.admits_rtcp(from);
        if !ok {
            self.stats.dropped_foreign += 1;
        }
        ok
    }

    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut RelayStats {
        &mut self.stats
    }

    /// When the last accepted packet came.
    pub fn last_rx(&self) -> Option<Instant> {
        self.last_rx
    }

    /// Accepts or drops (and counts) a datagram received from `from`.
    pub fn receive<'a>(
        &mut self,
        from: SocketAddr,
        pkt: &'a [u8],
        now: Instant,
    ) -> Option<RtpIn<'a>> {
        let rtp = match parse(pkt) {
            Ok(rtp) => rtp,
            Err(DropReason::Rtcp) => {
                self.stats.rtcp += 1;
                return None;
            }
            Err(_) => {
                self.stats.dropped_garbage += 1;
                return None;
            }
        };
        let before = self.latch.ssrc();
        match self.latch.admit(from, rtp.header.ssrc, rtp.header.seq) {
            Verdict::Foreign => {
                self.stats.dropped_foreign += 1;
                return None;
            }
            Verdict::Moved(_) => self.stats.relatched += 1,
            Verdict::Accept if before.is_some_and(|s| s != rtp.header.ssrc) => {
                self.stats.ssrc_changes += 1
            }
            Verdict::Accept | Verdict::Learned => {}
        }
        self.last_rx = Some(now);
        self.stats.received += 1;
        Some(rtp)
    }
}

/// Writes `rtp` (received on a leg with `from` params) into `out` as a
/// packet of the other leg, whose sender is `tx`. Returns whether a packet
/// was written; drops are counted in `stats`.
pub fn forward(
    rtp: &RtpIn<'_>,
    from: &LegParams,
    to: &LegParams,
    tx: &mut Pacer,
    now: Instant,
    out: &mut Vec<u8>,
    stats: &mut RelayStats,
) -> bool {
    let (pt, recode) = if from.te_pt == Some(rtp.pt) {
        match to.te_pt {
            Some(pt) => (pt, None),
            None => {
                stats.dropped_pt += 1;
                return false;
            }
        }
    } else if let Some(codec) = Codec::from_pt(rtp.pt) {
        // Either law is accepted whatever was negotiated: some phones
        // offer both and send the one they like.
        (to.codec.pt(), Some(codec))
    } else {
        stats.dropped_pt += 1;
        return false;
    };
    if !tx.relay_header(rtp.header, pt, now, out) {
        return false;
    }
    match recode {
        Some(codec) if codec != to.codec => {
            g711::transcode_into(codec, to.codec, rtp.payload, out);
            stats.transcoded += 1;
        }
        _ => out.extend_from_slice(rtp.payload),
    }
    tx.note_payload(rtp.payload.len());
    stats.relayed += 1;
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::pacer::{PacerConfig, Source};
    use proptest::prelude::*;

    pub(crate) fn rtp(
        pt: u8,
        seq: u16,
        ts: u32,
        ssrc: u32,
        marker: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut v = Vec::new();
        crate::media::pacer::write_header(&mut v, marker, pt, seq, ts, ssrc);
        v.extend_from_slice(payload);
        v
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn latches_first_source_and_drops_foreign_even_after_silence() {
        let t = Instant::now();
        let a = addr("10.0.0.1:4000");
        let b = addr("10.0.0.9:5000");
        let mut inb = Inbound::new(Some(a));
        assert!(inb
            .receive(a, &rtp(0, 1, 0, 7, false, &[1; 160]), t)
            .is_some());
        assert_eq!(inb.latched(), Some(a));
        assert!(inb
            .receive(b, &rtp(0, 2, 160, 8, false, &[1; 160]), t)
            .is_none());
        assert_eq!(inb.stats().dropped_foreign, 1);
        // The latched source going quiet is no reason to let another in.
        let later = t + std::time::Duration::from_secs(30);
        assert!(inb
            .receive(b, &rtp(0, 3, 320, 8, false, &[1; 160]), later)
            .is_none());
        assert_eq!((inb.latched(), inb.stats().dropped_foreign), (Some(a), 2));
        // The same stream continuing from elsewhere (NAT re-binding) does.
        assert!(inb
            .receive(b, &rtp(0, 2, 320, 7, false, &[1; 160]), later)
            .is_some());
        assert_eq!((inb.latched(), inb.stats().relatched), (Some(b), 1));
        // And the signalled address takes it back.
        assert!(inb
            .receive(a, &rtp(0, 4, 480, 7, false, &[]), later)
            .is_some());
        assert_eq!((inb.latched(), inb.stats().relatched), (Some(a), 2));
        inb.reset_latch();
        assert!(inb
            .receive(b, &rtp(0, 5, 640, 9, false, &[]), later)
            .is_some());
        assert_eq!(inb.stats().received, 4);
        assert!(!inb.admits_rtcp(addr("10.0.0.5:5001")));
        assert!(inb.admits_rtcp(addr("10.0.0.9:5001")));
        assert_eq!(inb.stats().dropped_foreign, 3);
    }

    #[test]
    fn garbage_and_rtcp_are_counted_not_accepted() {
        let t = Instant::now();
        let mut inb = Inbound::new(None);
        let a = addr("10.0.0.1:4000");
        let mut v1 = rtp(0, 1, 0, 7, false, &[0; 10]);
        v1[0] = 0x40; // version 1
        let mut ext = rtp(0, 1, 0, 7, false, &[]);
        ext[0] |= 0x10; // extension flag with no extension header
        let mut csrc = rtp(0, 1, 0, 7, false, &[0; 4]);
        csrc[0] |= 0x0F; // 15 CSRCs claimed, 1 present
        let mut pad = rtp(0, 1, 0, 7, false, &[0, 0, 200]);
        pad[0] |= 0x20; // padding longer than the packet
        for g in [&[][..], &[0x80, 0, 1][..], &v1, &ext, &csrc, &pad] {
            assert!(inb.receive(a, g, t).is_none());
        }
        assert_eq!(inb.stats().dropped_garbage, 6);
        assert_eq!(inb.latched(), None, "garbage never latches");
        let rr = [0x81, 201, 0, 1, 0, 0, 0, 7];
        assert!(inb.receive(a, &rr, t).is_none());
        assert_eq!(inb.stats().rtcp, 1);
    }

    #[test]
    fn ssrc_change_from_latched_address_is_accepted_and_counted() {
        let t = Instant::now();
        let mut inb = Inbound::new(None);
        let a = addr("[2001:db8::1]:4000");
        inb.receive(a, &rtp(0, 1, 0, 7, false, &[]), t).unwrap();
        let pkt = rtp(0, 90, 5, 8, true, &[9]);
        let got = inb.receive(a, &pkt, t).unwrap();
        assert_eq!(
            (got.header.ssrc, got.header.marker, got.payload),
            (8, true, &[9][..])
        );
        assert_eq!(inb.stats().ssrc_changes, 1);
    }

    fn tx(codec: Codec, t: Instant) -> Pacer {
        let mut p = Pacer::new(
            PacerConfig {
                ssrc: 0xB0B,
                seq: 100,
                ts: 1000,
                codec,
            },
            t,
        );
        p.set_source(Source::Relay, t);
        p
    }

    #[test]
    fn rewrites_ids_transcodes_and_maps_event_types() {
        let t = Instant::now();
        let a = LegParams {
            codec: Codec::Pcmu,
            te_pt: Some(101),
        };
        let b = LegParams {
            codec: Codec::Pcma,
            te_pt: Some(96),
        };
        let mut txb = tx(Codec::Pcma, t);
        let mut stats = RelayStats::default();
        let mut out = Vec::new();
        let payload: Vec<u8> = (0..160).map(|i| i as u8).collect();
        let pkt = rtp(0, 500, 80_000, 7, false, &payload);
        let rtp_in = parse(&pkt).unwrap();
        assert!(forward(&rtp_in, &a, &b, &mut txb, t, &mut out, &mut stats));
        let r = RtpReader::new(&out).unwrap();
        assert_eq!(
            (r.payload_type(), r.ssrc(), u16::from(r.sequence_number())),
            (8, 0xB0B, 100)
        );
        assert!(r.mark(), "first relayed packet marks the switch");
        let expect: Vec<u8> = payload
            .iter()
            .map(|&u| g711::ULAW_TO_ALAW[u as usize])
            .collect();
        assert_eq!(r.payload(), &expect[..]);
        assert_eq!(stats.transcoded, 1);

        // telephone-event 101 -> 96, same timestamp offset, untouched payload.
        let ev = rtp(101, 501, 80_000, 7, true, &[5, 0x8A, 3, 0x20]);
        assert!(forward(
            &parse(&ev).unwrap(),
            &a,
            &b,
            &mut txb,
            t,
            &mut out,
            &mut stats
        ));
        let r = RtpReader::new(&out).unwrap();
        assert_eq!(
            (
                r.payload_type(),
                u16::from(r.sequence_number()),
                r.timestamp()
            ),
            (96, 101, 1000)
        );
        assert_eq!(r.payload(), &[5, 0x8A, 3, 0x20]);
        assert_eq!((stats.relayed, stats.transcoded), (2, 1));

        // PCMA from a leg that negotiated PCMU still reaches a PCMA leg as is.
        let pa = rtp(8, 502, 80_160, 7, false, &[0xD5; 160]);
        assert!(forward(
            &parse(&pa).unwrap(),
            &a,
            &b,
            &mut txb,
            t,
            &mut out,
            &mut stats
        ));
        assert_eq!(&out[12..], &[0xD5; 160]);
        assert_eq!(stats.transcoded, 1);

        // Comfort noise and events to a leg without telephone-event: dropped.
        let cn = rtp(13, 503, 80_320, 7, false, &[40]);
        assert!(!forward(
            &parse(&cn).unwrap(),
            &a,
            &b,
            &mut txb,
            t,
            &mut out,
            &mut stats
        ));
        let no_te = LegParams { te_pt: None, ..b };
        assert!(!forward(
            &parse(&ev).unwrap(),
            &a,
            &no_te,
            &mut txb,
            t,
            &mut out,
            &mut stats
        ));
        assert_eq!(stats.dropped_pt, 2);

        // Back the other way: PCMA -> PCMU.
        let mut txa = tx(Codec::Pcmu, t);
        let back = rtp(8, 9, 9, 9, false, &expect);
        assert!(forward(
            &parse(&back).unwrap(),
            &b,
            &a,
            &mut txa,
            t,
            &mut out,
            &mut stats
        ));
        for (i, &u) in out[12..].iter().enumerate() {
            let orig = g711::ULAW_DECODE[i] as i32;
            assert!((g711::ULAW_DECODE[u as usize] as i32 - orig).abs() <= orig.abs() / 8 + 16);
        }
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(pkt in proptest::collection::vec(any::<u8>(), 0..300), port in 1u16..3) {
            let t = Instant::now();
            let mut inb = Inbound::new(None);
            let from = SocketAddr::from(([10, 0, 0, 1], port));
            let a = LegParams { codec: Codec::Pcmu, te_pt: Some(101) };
            let b = LegParams { codec: Codec::Pcma, te_pt: None };
            let mut txb = tx(Codec::Pcma, t);
            let mut out = Vec::new();
            let mut stats = RelayStats::default();
            let mut dtmf = crate::media::dtmf::Rfc4733Receiver::new();
            for _ in 0..2 {
                if let Some(r) = inb.receive(from, &pkt, t) {
                    forward(&r, &a, &b, &mut txb, t, &mut out, &mut stats);
                    dtmf.on_packet(r.header.ts, r.payload, t);
                    prop_assert!(r.payload.len() <= pkt.len());
                }
                dtmf.on_packet(0, &pkt, t);
            }
            let s = inb.stats();
            prop_assert_eq!(s.received + s.dropped_garbage + s.rtcp, 2);
        }
    }
}
