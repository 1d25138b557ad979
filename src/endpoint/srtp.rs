//! SRTP on the engine's side: which legs are SRTP under their number's or
//! agent's `media_encryption`, and telling the media engine a leg's keys
//! (before it opens the leg, so no packet is taken as plain RTP).

use super::media::{LegId, MediaCommand};
use super::Endpoint;
use crate::config::MediaEncryption;
use crate::media::crypto_attr::{answer_keys, SrtpKeys};
use crate::media::sdp::SdpOffer;

impl Endpoint {
    /// `media_encryption` of the number a caller dialled.
    pub(super) fn number_encryption(&self, number: &str) -> MediaEncryption {
        self.numbers
            .get(number)
            .and_then(|&i| self.cfg.numbers.get(i))
            .map(|r| r.media_encryption)
            .unwrap_or_default()
    }

    /// `media_encryption` of an agent.
    pub(super) fn agent_encryption(&self, agent: &str) -> MediaEncryption {
        self.cfg
            .agents
            .get(agent)
            .map(|a| a.media_encryption)
            .unwrap_or_default()
    }

    /// Queues the keys of `leg` when they differ from `old`; sent before
    /// the leg's Open or Update.
    pub(super) fn secure_leg(
        &mut self,
        leg: LegId,
        old: Option<&SrtpKeys>,
        new: Option<&SrtpKeys>,
    ) {
        if old != new {
            self.media(MediaCommand::Srtp {
                leg,
                keys: new.cloned(),
            });
        }
    }
}

/// Whether a new call's offer can be taken under `policy` (else 488): an
/// INVITE without SDP cannot be SRTP (our offer's answer would come in the
/// ACK, too late to refuse), so "srtp" refuses it.
pub(super) fn offer_acceptable(policy: MediaEncryption, offer: Option<&SdpOffer>) -> bool {
    match offer {
        None => policy != MediaEncryption::Srtp,
        Some(o) => answer_keys(policy, o.secure, &o.crypto, None).is_ok(),
    }
}
