//! SRTP and SRTCP (RFC 3711) on a leg keyed by SDES (RFC 4568): a
//! [`SrtpLeg`] unprotects what the peer sends with its key and protects
//! what we send with ours. The cryptography is the `webrtc-srtp` crate's;
//! this file keeps it away from hostile input it does not check itself
//! and counts what it refuses. The plain relay never comes here: only a
//! leg with keys pays for SRTP.

use bytes::Bytes;
use thiserror::Error;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::media::crypto_attr::{CryptoAttr, SrtpKeys, Suite};

/// Packets behind the newest one that may still arrive (reordering) before
/// they count as replayed (RFC 3711 §3.3.2: at least 64).
const REPLAY_WINDOW: usize = 128;

/// SRTCP's trailer: the E flag and index (4 bytes) and an 80-bit tag for
/// both suites (RFC 3711 §3.4, RFC 4568 §6.2).
const SRTCP_TRAILER: usize = 4 + 10;

/// Distinct SSRCs the receive context may hold: it keeps state for every
/// SSRC it is shown, authenticated or not, so garbage with random SSRCs
/// could grow it. A phone uses one or two; packets from further SSRCs are
/// dropped unread.
const MAX_SSRCS: usize = 8;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SrtpError {
    #[error("SRTP context: {0}")]
    Context(String),
}

/// What an SRTP leg refused, besides what the plain path counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpStats {
    /// SRTP or SRTCP whose authentication tag did not verify (or too short
    /// to carry one, or from one SSRC too many).
    pub auth_failed: u64,
    /// Authentic packets seen before (replay window).
    pub replayed: u64,
    /// Packets we could not protect (never expected; counted, not sent).
    pub protect_failed: u64,
}

/// Why an incoming packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Auth,
    Replay,
}

pub struct SrtpLeg {
    keys: SrtpKeys,
    rx: Context,
    tx: Context,
    ssrcs: Vec<u32>,
    stats: SrtpStats,
}

impl std::fmt::Debug for SrtpLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpLeg")
            .field("keys", &self.keys)
            .field("stats", &self.stats)
            .finish()
    }
}

fn profile(suite: Suite) -> ProtectionProfile {
    match suite {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    }
}

fn context(c: &CryptoAttr, rx: bool) -> Result<Context, SrtpError> {
    let (key, salt) = c.key.split_at(16);
    let (rtp, rtcp) = if rx {
        (
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
        )
    } else {
        (None, None)
    };
    Context::new(key, salt, profile(c.suite), rtp, rtcp)
        .map_err(|e| SrtpError::Context(e.to_string()))
}

fn refused(e: &webrtc_srtp::Error) -> Refused {
    match e {
        webrtc_srtp::Error::SrtpSsrcDuplicated(..)
        | webrtc_srtp::Error::SrtcpSsrcDuplicated(..) => Refused::Replay,
        _ => Refused::Auth,
    }
}

impl SrtpLeg {
    pub fn new(keys: SrtpKeys) -> Result<SrtpLeg, SrtpError> {
        Ok(SrtpLeg {
            rx: context(&keys.remote, true)?,
            tx: context(&keys.local, false)?,
            keys,
            ssrcs: Vec::new(),
            stats: SrtpStats::default(),
        })
    }

    /// New keys from a re-INVITE or UPDATE: only the side whose key
    /// changed starts afresh. Keeping our sending context when our key
    /// stays keeps its rollover counter and SRTCP index, which the peer's
    /// receiver goes on checking.
    pub fn update(&mut self, keys: SrtpKeys) -> Result<(), SrtpError> {
        if keys.remote != self.keys.remote {
            self.rx = context(&keys.remote, true)?;
            self.ssrcs.clear();
        }
        if keys.local != self.keys.local {
            self.tx = context(&keys.local, false)?;
        }
        self.keys = keys;
        Ok(())
    }

    pub fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    pub fn stats(&self) -> &SrtpStats {
        &self.stats
    }

    /// Whether the receive context may be shown this SSRC.
    fn admit_ssrc(&mut self, ssrc: u32) -> bool {
        if self.ssrcs.contains(&ssrc) {
            return true;
        }
        if self.ssrcs.len() >= MAX_SSRCS {
            return false;
        }
        self.ssrcs.push(ssrc);
        true
    }

    fn count(&mut self, r: Refused) -> Refused {
        match r {
            Refused::Auth => self.stats.auth_failed += 1,
            Refused::Replay => self.stats.replayed += 1,
        }
        r
    }

    /// The plain RTP packet inside an SRTP one from the peer.
    pub fn unprotect_rtp(&mut self, pkt: &[u8]) -> Result<Bytes, Refused> {
        // RTP version 2 with room for a header: the crate parses the rest.
        if pkt.len() < 12 || pkt[0] >> 6 != 2 {
            return Err(self.count(Refused::Auth));
        }
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        if !self.admit_ssrc(ssrc) {
            return Err(self.count(Refused::Auth));
        }
        self.rx
            .decrypt_rtp(pkt)
            .map_err(|e| refused(&e))
            .map_err(|r| self.count(r))
    }

    /// The plain compound RTCP inside an SRTCP packet from the peer.
    pub fn unprotect_rtcp(&mut self, pkt: &[u8]) -> Result<Bytes, Refused> {
        // The crate indexes the trailer before checking the length, and
        // takes a packet without the E flag unauthenticated: both refused
        // here (we never agree to unencrypted SRTCP).
        if pkt.len() < 8 + SRTCP_TRAILER || pkt[0] >> 6 != 2 {
            return Err(self.count(Refused::Auth));
        }
        if pkt[pkt.len() - SRTCP_TRAILER] & 0x80 == 0 {
            return Err(self.count(Refused::Auth));
        }
        let ssrc = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        if !self.admit_ssrc(ssrc) {
            return Err(self.count(Refused::Auth));
        }
        self.rx
            .decrypt_rtcp(pkt)
            .map_err(|e| refused(&e))
            .map_err(|r| self.count(r))
    }

    /// The SRTP form of a plain RTP packet; None (and counted) if it
    /// cannot be protected: then it is not sent.
    pub fn protect_rtp(&mut self, pkt: &[u8]) -> Option<Bytes> {
        let r = self.tx.encrypt_rtp(pkt).ok();
        self.stats.protect_failed += u64::from(r.is_none());
        r
    }

    /// The SRTCP form of a plain compound RTCP packet.
    pub fn protect_rtcp(&mut self, pkt: &[u8]) -> Option<Bytes> {
        let r = self.tx.encrypt_rtcp(pkt).ok();
        self.stats.protect_failed += u64::from(r.is_none());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Codec;
    use crate::media::relay::tests::rtp;
    use crate::media::{Leg, LegParams, PacerConfig, Source};
    use std::net::SocketAddr;
    use std::time::Instant;

    fn keys() -> (SrtpKeys, SrtpKeys) {
        let a = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
        let b = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
        // The phone's view and ours of one SRTP leg.
        (
            SrtpKeys {
                local: a.clone(),
                remote: b.clone(),
            },
            SrtpKeys {
                local: b,
                remote: a,
            },
        )
    }

    fn leg(ssrc: u32, remote: &str, t: Instant) -> Leg {
        let params = LegParams {
            codec: Codec::Pcmu,
            te_pt: Some(101),
        };
        let ids = PacerConfig {
            ssrc,
            seq: 1000,
            ts: 50_000,
            codec: Codec::Pcmu,
        };
        let mut l = Leg::with_ids(params, Some(remote.parse().unwrap()), ids, t);
        l.play(Source::Relay, t);
        l
    }

    #[test]
    fn protect_relay_unprotect_gives_the_payload_back() {
        let t = Instant::now();
        let (ours, phone) = keys();
        let mut us = SrtpLeg::new(ours).unwrap();
        let mut agent_phone = SrtpLeg::new(phone).unwrap();
        let mut caller = leg(0xCA11, "192.0.2.1:4000", t);
        let mut agent = leg(0xA6E, "192.0.2.2:6000", t);
        let from_agent: SocketAddr = "192.0.2.2:6000".parse().unwrap();
        let payload: Vec<u8> = (0..160).map(|i| i as u8).collect();

        // Agent (SRTP) -> caller (plain).
        let wire = agent_phone
            .protect_rtp(&rtp(0, 7, 160, 0xAAA, false, &payload))
            .unwrap();
        assert_ne!(&wire[12..172], &payload[..], "encrypted on the wire");
        let mut out = Vec::new();
        let plain = us.unprotect_rtp(&wire).unwrap();
        assert!(agent.relay_to(&mut caller, from_agent, &plain, t, &mut out));
        assert_eq!(&out[12..], &payload[..]);

        // Caller (plain) -> agent (SRTP): protected on our way out.
        let from_caller: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let pkt = rtp(0, 9, 320, 0xCCC, false, &payload);
        assert!(caller.relay_to(&mut agent, from_caller, &pkt, t, &mut out));
        let sent = us.protect_rtp(&out).unwrap();
        assert_eq!(sent.len(), 12 + 160 + 10, "80-bit tag");
        let back = agent_phone.unprotect_rtp(&sent).unwrap();
        assert_eq!(&back[12..], &payload[..]);
        assert_eq!(u32::from_be_bytes(back[8..12].try_into().unwrap()), 0xA6E);

        // Replayed: dropped and counted.
        assert_eq!(us.unprotect_rtp(&wire), Err(Refused::Replay));
        assert_eq!(us.stats().replayed, 1);
        // A flipped bit: the tag fails.
        let mut bad = agent_phone
            .protect_rtp(&rtp(0, 8, 320, 0xAAA, false, &payload))
            .unwrap()
            .to_vec();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(us.unprotect_rtp(&bad), Err(Refused::Auth));
        // Plain RTP on an SRTP leg is no better.
        assert_eq!(
            us.unprotect_rtp(&rtp(0, 10, 480, 0xAAA, false, &payload)),
            Err(Refused::Auth)
        );
        assert_eq!(us.stats().auth_failed, 2);
    }

    #[test]
    fn srtcp_both_ways_and_unauthenticated_rtcp_refused() {
        let (ours, phone) = keys();
        let mut us = SrtpLeg::new(ours).unwrap();
        let mut ph = SrtpLeg::new(phone).unwrap();
        let rr = vec![
            0x81, 201, 0, 7, 0, 0, 0, 0xC, 0, 0, 0xCA, 0x11, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
            7, 7, 7, 7, 7, 7, 7,
        ];
        let wire = ph.protect_rtcp(&rr).unwrap();
        assert_eq!(wire.len(), rr.len() + SRTCP_TRAILER);
        assert_eq!(&us.unprotect_rtcp(&wire).unwrap()[..], &rr[..]);
        assert_eq!(us.unprotect_rtcp(&wire), Err(Refused::Replay));
        // The E flag cleared: the crate would take it without its tag.
        let mut forged = rr.clone();
        forged.extend_from_slice(&[0, 0, 0, 9]);
        forged.extend_from_slice(&[0; 10]);
        assert_eq!(us.unprotect_rtcp(&forged), Err(Refused::Auth));
        for short in [&[][..], &[0x80, 201, 0, 1][..], &wire[..20]] {
            assert_eq!(us.unprotect_rtcp(short), Err(Refused::Auth));
        }
        let out = us.protect_rtcp(&rr).unwrap();
        assert_eq!(&ph.unprotect_rtcp(&out).unwrap()[..], &rr[..]);
    }

    #[test]
    fn a_new_peer_key_keeps_our_sending_stream() {
        let (ours, phone) = keys();
        let mut us = SrtpLeg::new(ours.clone()).unwrap();
        let mut ph = SrtpLeg::new(phone).unwrap();
        let sent = us
            .protect_rtp(&rtp(0, 1, 0, 0xA6E, false, &[1; 160]))
            .unwrap();
        assert!(ph.unprotect_rtp(&sent).is_ok());
        // The phone re-keys its own stream (a re-INVITE's a=crypto).
        let new_remote = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
        let mut ph2 = SrtpLeg::new(SrtpKeys {
            local: new_remote.clone(),
            remote: ours.local.clone(),
        })
        .unwrap();
        us.update(SrtpKeys {
            local: ours.local.clone(),
            remote: new_remote,
        })
        .unwrap();
        let theirs = ph2
            .protect_rtp(&rtp(0, 50, 0, 0xAAA, false, &[2; 160]))
            .unwrap();
        assert!(us.unprotect_rtp(&theirs).is_ok());
        // Our stream goes on where it was for the phone's unchanged receiver.
        let next = us
            .protect_rtp(&rtp(0, 2, 160, 0xA6E, false, &[1; 160]))
            .unwrap();
        assert!(ph.unprotect_rtp(&next).is_ok());
    }

    #[test]
    fn random_ssrcs_do_not_grow_the_receive_state() {
        let (ours, _) = keys();
        let mut us = SrtpLeg::new(ours).unwrap();
        for ssrc in 0..1000u32 {
            let _ = us.unprotect_rtp(&rtp(0, 1, 0, ssrc, false, &[0; 40]));
        }
        assert_eq!(us.ssrcs.len(), MAX_SSRCS);
        assert_eq!(us.stats().auth_failed, 1000);
    }

    proptest::proptest! {
        #[test]
        fn any_datagram_is_refused_never_a_panic(pkt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let (ours, _) = keys();
            let mut us = SrtpLeg::new(ours).unwrap();
            proptest::prop_assert!(us.unprotect_rtp(&pkt).is_err());
            proptest::prop_assert!(us.unprotect_rtcp(&pkt).is_err());
        }
    }
}
