//! Which source a leg takes RTP from: symmetric-RTP latching with the
//! takeover protection of "strict RTP". A leg learns its peer from the first
//! valid packet (the SDP address, or wherever the phone's NAT puts it) and
//! from then on accepts a different source only if
//! * it is exactly the address the SDP signalled (the real peer showing up
//!   after a stray packet was learnt first), or
//! * it carries the latched stream itself: the same SSRC, its sequence
//!   number just ahead of the last one accepted (a NAT re-binding or the
//!   phone changing network mid-call), or
//! * signalling moved the peer (a re-INVITE or UPDATE with a new address):
//!   the driver calls [`Latch::reset`] and the leg learns again.
//!
//! Silence does not open the door: a caller quiet for seconds (VAD, hold)
//! keeps its latch, and a third party sending to the leg's port is dropped.

use std::net::SocketAddr;

/// How far ahead of the last accepted sequence number a packet from a new
/// address may be and still count as the latched stream continuing. A
/// quiet phone (VAD) does not advance its sequence numbers, so the gap is
/// only what was lost on the way; guessing a 32-bit SSRC and a sequence
/// inside this window is out of reach for a blind sender.
pub const MAX_REBIND_GAP: u16 = 500;

/// What to do with a valid RTP packet from some source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the latched source.
    Accept,
    /// The first packet since the leg opened or signalling moved the peer:
    /// its source is now the latched one.
    Learned,
    /// A new source replaces the latched one (counted as a re-latch).
    Moved(Move),
    /// Someone else: dropped and counted.
    Foreign,
}

/// Why a new source may replace the latched one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The address the SDP names.
    Signalled,
    /// The latched SSRC continuing in sequence from elsewhere.
    SameStream,
}

#[derive(Debug, Clone, Default)]
pub struct Latch {
    /// Where the SDP says the peer is.
    signalled: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    /// The latched stream: its SSRC and highest sequence number accepted.
    stream: Option<(u32, u16)>,
}

impl Latch {
    /// A leg whose SDP names `signalled` (None: no usable address, e.g.
    /// an INVITE without SDP), learning.
    pub fn new(signalled: Option<SocketAddr>) -> Latch {
        Latch {
            signalled,
            ..Latch::default()
        }
    }

    /// The latched source, once a packet came.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// The SSRC last accepted from the latched source.
    pub fn ssrc(&self) -> Option<u32> {
        self.stream.map(|(s, _)| s)
    }

    pub fn signalled(&self) -> Option<SocketAddr> {
        self.signalled
    }

    /// New SDP from signalling. A moved address forgets the latched source
    /// and learns again; the same address keeps it (a hold or a codec
    /// change is no reason to let anyone in).
    pub fn set_signalled(&mut self, signalled: Option<SocketAddr>) {
        if signalled != self.signalled {
            self.reset();
        }
        self.signalled = signalled;
    }

    /// Forget the source: the next valid packet is learnt.
    pub fn reset(&mut self) {
        self.latched = None;
        self.stream = None;
    }

    /// Decides on a valid RTP packet (`ssrc`, `seq`) from `from`, and
    /// updates the latch when it is accepted.
    pub fn admit(&mut self, from: SocketAddr, ssrc: u32, seq: u16) -> Verdict {
        let verdict = match self.latched {
            None => Verdict::Learned,
            Some(l) if l == from => Verdict::Accept,
            Some(_) if self.signalled == Some(from) => Verdict::Moved(Move::Signalled),
            Some(_) if self.continues(ssrc, seq) => Verdict::Moved(Move::SameStream),
            Some(_) => return Verdict::Foreign,
        };
        self.latched = Some(from);
        self.note(ssrc, seq);
        verdict
    }

    /// Whether (`ssrc`, `seq`) is the next part of the latched stream.
    fn continues(&self, ssrc: u32, seq: u16) -> bool {
        match self.stream {
            Some((s, last)) => s == ssrc && (1..=MAX_REBIND_GAP).contains(&seq.wrapping_sub(last)),
            None => false,
        }
    }

    /// Remembers the stream's newest sequence number (a new SSRC from the
    /// latched source starts its own).
    fn note(&mut self, ssrc: u32, seq: u16) {
        match &mut self.stream {
            Some((s, last)) if *s == ssrc => {
                if (seq.wrapping_sub(*last) as i16) > 0 {
                    *last = seq;
                }
            }
            other => *other = Some((ssrc, seq)),
        }
    }

    /// Whether RTCP from `from` may be the peer's: from the latched RTP
    /// source's host (its RTCP port may differ behind NAT) or the
    /// signalled host; anything before the RTP latch is taken, as RTP is.
    pub fn admits_rtcp(&self, from: SocketAddr) -> bool {
        match self.latched {
            None => true,
            Some(l) => l.ip() == from.ip() || self.signalled.is_some_and(|s| s.ip() == from.ip()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const SDP: &str = "192.0.2.1:4000";
    const NAT: &str = "198.51.100.7:31000";
    const THIRD: &str = "203.0.113.66:5000";

    #[test]
    fn learns_the_first_source_then_drops_any_other() {
        let mut l = Latch::new(Some(addr(SDP)));
        assert_eq!(l.admit(addr(NAT), 7, 100), Verdict::Learned);
        assert_eq!(l.latched(), Some(addr(NAT)));
        assert_eq!(l.admit(addr(NAT), 7, 101), Verdict::Accept);
        // A third party: another SSRC, or the right one far out of sequence.
        assert_eq!(l.admit(addr(THIRD), 9, 102), Verdict::Foreign);
        assert_eq!(l.admit(addr(THIRD), 7, 101), Verdict::Foreign, "a replay");
        assert_eq!(l.admit(addr(THIRD), 7, 101 + 600), Verdict::Foreign);
        assert_eq!(l.latched(), Some(addr(NAT)));
    }

    #[test]
    fn the_signalled_address_always_wins() {
        let mut l = Latch::new(Some(addr(SDP)));
        // A stray packet raced the phone's first one.
        assert_eq!(l.admit(addr(THIRD), 9, 1), Verdict::Learned);
        assert_eq!(l.admit(addr(SDP), 7, 500), Verdict::Moved(Move::Signalled));
        assert_eq!(l.admit(addr(THIRD), 9, 2), Verdict::Foreign);
        assert_eq!(l.ssrc(), Some(7));
    }

    #[test]
    fn the_same_stream_continuing_from_a_new_address_follows_it() {
        let mut l = Latch::new(Some(addr(SDP)));
        l.admit(addr(NAT), 7, 65_534);
        l.admit(addr(NAT), 7, 65_535);
        // Reordered old packet: accepted, but does not move the window back.
        assert_eq!(l.admit(addr(NAT), 7, 65_533), Verdict::Accept);
        // The NAT re-binds: sequence continues across the wrap.
        let rebound = addr("198.51.100.7:31002");
        assert_eq!(l.admit(rebound, 7, 3), Verdict::Moved(Move::SameStream));
        assert_eq!(l.latched(), Some(rebound));
        // The old binding's late packets are now the foreign ones.
        assert_eq!(l.admit(addr(NAT), 7, 2), Verdict::Foreign);
        // Exactly at the edge of the window, and just beyond.
        let far = addr("198.51.100.8:1000");
        assert_eq!(l.admit(far, 7, 3 + MAX_REBIND_GAP + 1), Verdict::Foreign);
        assert_eq!(
            l.admit(far, 7, 3 + MAX_REBIND_GAP),
            Verdict::Moved(Move::SameStream)
        );
    }

    #[test]
    fn signalling_a_new_address_learns_again_the_same_one_does_not() {
        let mut l = Latch::new(Some(addr(SDP)));
        l.admit(addr(NAT), 7, 1);
        l.set_signalled(Some(addr(SDP)));
        assert_eq!(
            l.admit(addr(THIRD), 9, 1),
            Verdict::Foreign,
            "hold re-INVITE"
        );
        l.set_signalled(Some(addr("192.0.2.50:4100")));
        assert_eq!(l.latched(), None);
        assert_eq!(l.admit(addr("192.0.2.50:4100"), 11, 1), Verdict::Learned);
    }

    #[test]
    fn rtcp_only_from_the_peers_host() {
        let mut l = Latch::new(Some(addr(SDP)));
        assert!(l.admits_rtcp(addr(THIRD)), "nothing learnt yet");
        l.admit(addr(NAT), 7, 1);
        assert!(l.admits_rtcp(addr("198.51.100.7:31001")));
        assert!(l.admits_rtcp(addr("192.0.2.1:4001")));
        assert!(!l.admits_rtcp(addr(THIRD)));
    }
}
