//! SDES key exchange for SRTP (RFC 4568): the `a=crypto` attribute, and
//! the offer/answer rules that decide whether a leg is SRTP under a
//! number's or an agent's `media_encryption`. Sans-IO: SDP text in, keys
//! and decisions out; the media engine does the encrypting.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use thiserror::Error;

/// Master key (16 bytes) followed by master salt (14 bytes), as the
/// `inline:` key parameter carries them for both AES_CM_128 suites.
pub const MASTER_LEN: usize = 30;

/// The crypto suites we speak (those of RFC 4568 §6.2 that the SRTP
/// crate implements with a 128-bit key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn parse(s: &str) -> Option<Suite> {
        [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
            .into_iter()
            .find(|x| x.name().eq_ignore_ascii_case(s))
    }
}

/// `media_encryption` of a number or an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaEncryption {
    /// Plain RTP as always; `a=crypto` in an offer is ignored.
    #[default]
    None,
    /// SRTP when the other side offers or accepts it, else plain RTP. Our
    /// offers are `RTP/AVP` with `a=crypto` (best effort, as Asterisk's
    /// `media_encryption_optimistic`).
    Optional,
    /// SRTP or no call: an offer without a usable `a=crypto` gets 488;
    /// our offers are `RTP/SAVP` with `a=crypto`.
    Srtp,
}

impl MediaEncryption {
    pub const NAMES: [&'static str; 3] = ["srtp", "optional", "none"];

    pub fn parse(s: &str) -> Option<MediaEncryption> {
        match s {
            "srtp" => Some(MediaEncryption::Srtp),
            "optional" => Some(MediaEncryption::Optional),
            "none" => Some(MediaEncryption::None),
            _ => None,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("malformed a=crypto attribute")]
    Malformed,
    #[error("unsupported crypto suite")]
    UnsupportedSuite,
    #[error("key parameter is not a single inline key of 30 bytes")]
    BadKey,
    #[error("MKI and session parameters are not supported")]
    Unsupported,
}

/// One `a=crypto` line: tag, suite and the inline master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    pub tag: u32,
    pub suite: Suite,
    pub key: [u8; MASTER_LEN],
}

/// Keys are never printed (logs, debug dumps of calls).
impl fmt::Debug for CryptoAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CryptoAttr({} {} inline:…)", self.tag, self.suite.name())
    }
}

impl CryptoAttr {
    /// A fresh random key for `suite` under `tag`.
    pub fn generate(tag: u32, suite: Suite) -> CryptoAttr {
        let mut key = [0u8; MASTER_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        CryptoAttr { tag, suite, key }
    }

    /// Parses the value after `a=crypto:` (`1 AES_CM_128_HMAC_SHA1_80
    /// inline:KEY[|lifetime]`). A lifetime is accepted and left to the
    /// peer (calls are short); MKIs, several keys and session parameters
    /// are refused, so the line is not chosen.
    pub fn parse(value: &str) -> Result<CryptoAttr, CryptoError> {
        let mut parts = value.split_whitespace();
        let tag = parts
            .next()
            .filter(|t| t.len() <= 9)
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or(CryptoError::Malformed)?;
        let suite = parts.next().ok_or(CryptoError::Malformed)?;
        let suite = Suite::parse(suite).ok_or(CryptoError::UnsupportedSuite)?;
        let key_params = parts.next().ok_or(CryptoError::Malformed)?;
        if parts.next().is_some() || key_params.contains(';') {
            return Err(CryptoError::Unsupported);
        }
        let inline = key_params
            .strip_prefix("inline:")
            .ok_or(CryptoError::BadKey)?;
        let mut fields = inline.split('|');
        let b64 = fields.next().unwrap_or("");
        // `|lifetime` may follow; `|MKI:length` is a second field with ':'.
        for f in fields {
            if f.contains(':') {
                return Err(CryptoError::Unsupported);
            }
        }
        let raw = STANDARD
            .decode(b64)
            .or_else(|_| STANDARD_NO_PAD.decode(b64))
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; MASTER_LEN] = raw.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(CryptoAttr { tag, suite, key })
    }

    /// The attribute's value, as `parse` reads it.
    pub fn value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            STANDARD.encode(self.key)
        )
    }
}

/// The two keys of an SRTP leg: ours (what we send with, in our SDP) and
/// the peer's (what it sends with, in its SDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    pub local: CryptoAttr,
    pub remote: CryptoAttr,
}

/// Why a leg cannot be set up under its `media_encryption` (SIP 488).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("SRTP is required here and the other side offers no usable a=crypto")]
    SrtpRequired,
    #[error("the offer is RTP/SAVP with no a=crypto we can use")]
    NoUsableCrypto,
    #[error("SRTP is required here and the SDP has no audio offer")]
    NoOffer,
}

/// Deciding on a peer's offer: the keys of an SRTP leg, None for plain
/// RTP, or a refusal. `ours` is the key we already answered with (a
/// re-INVITE keeps it while the suite stays the same).
pub fn answer_keys(
    policy: MediaEncryption,
    secure_profile: bool,
    offered: &[CryptoAttr],
    ours: Option<&CryptoAttr>,
) -> Result<Option<SrtpKeys>, Refusal> {
    if policy == MediaEncryption::None {
        return Ok(None);
    }
    match offered.first() {
        Some(remote) => {
            let local = match ours {
                Some(o) if o.suite == remote.suite => CryptoAttr {
                    tag: remote.tag,
                    ..o.clone()
                },
                _ => CryptoAttr::generate(remote.tag, remote.suite),
            };
            Ok(Some(SrtpKeys {
                local,
                remote: remote.clone(),
            }))
        }
        None if policy == MediaEncryption::Srtp => Err(Refusal::SrtpRequired),
        None if secure_profile => Err(Refusal::NoUsableCrypto),
        None => Ok(None),
    }
}

/// The `a=crypto` lines of our own offer: one per suite, strongest first.
pub fn offer_keys(policy: MediaEncryption) -> Vec<CryptoAttr> {
    match policy {
        MediaEncryption::None => Vec::new(),
        _ => vec![
            CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80),
            CryptoAttr::generate(2, Suite::AesCm128HmacSha1_32),
        ],
    }
}

/// Deciding on the answer to our offer (`offered`): the answer must pick
/// one of our lines by tag and suite.
pub fn accept_answer(
    policy: MediaEncryption,
    offered: &[CryptoAttr],
    answered: &[CryptoAttr],
) -> Result<Option<SrtpKeys>, Refusal> {
    let picked = answered.iter().find_map(|a| {
        offered
            .iter()
            .find(|o| o.tag == a.tag && o.suite == a.suite)
            .map(|o| SrtpKeys {
                local: o.clone(),
                remote: a.clone(),
            })
    });
    match (picked, policy) {
        (Some(k), MediaEncryption::Srtp | MediaEncryption::Optional) => Ok(Some(k)),
        (None, MediaEncryption::Srtp) => Err(Refusal::SrtpRequired),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4568 §4's example line.
    const RFC: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";
    const BARESIP: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    #[test]
    fn parses_and_formats_a_line() {
        let c = CryptoAttr::parse(BARESIP).unwrap();
        assert_eq!((c.tag, c.suite), (1, Suite::AesCm128HmacSha1_80));
        assert_eq!(&c.key[..3], b"=-n");
        assert_eq!(c.value(), BARESIP);
        assert_eq!(CryptoAttr::parse(&c.value()).unwrap(), c);
        let lifetime = format!("{BARESIP}|2^31");
        assert_eq!(CryptoAttr::parse(&lifetime).unwrap(), c);
        let c32 = CryptoAttr::parse(&BARESIP.replace("_80", "_32")).unwrap();
        assert_eq!(c32.suite, Suite::AesCm128HmacSha1_32);
        assert!(!format!("{c:?}").contains("PS1u"), "keys stay out of logs");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert_eq!(CryptoAttr::parse(RFC), Err(CryptoError::Unsupported));
        assert_eq!(
            CryptoAttr::parse(&BARESIP.replace("AES_CM_128", "AES_256_CM")),
            Err(CryptoError::UnsupportedSuite)
        );
        assert_eq!(
            CryptoAttr::parse("1 AES_CM_128_HMAC_SHA1_80 inline:QUJD"),
            Err(CryptoError::BadKey)
        );
        assert_eq!(
            CryptoAttr::parse(&format!("{BARESIP} UNENCRYPTED_SRTP")),
            Err(CryptoError::Unsupported)
        );
        for junk in ["", "x", "1", "1 AES_CM_128_HMAC_SHA1_80", "99999999999 X y"] {
            assert!(CryptoAttr::parse(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn choosing_on_an_offer() {
        use MediaEncryption::*;
        let c = CryptoAttr::parse(BARESIP).unwrap();
        let one = std::slice::from_ref(&c);
        assert_eq!(answer_keys(None, true, one, Option::None), Ok(Option::None));
        let k = answer_keys(Srtp, true, one, Option::None).unwrap().unwrap();
        assert_eq!((k.local.tag, k.local.suite), (1, c.suite));
        assert_ne!(k.local.key, c.key, "our own key, not the peer's");
        assert_eq!(k.remote, c);
        // A re-INVITE keeps our key.
        let again = answer_keys(Optional, false, one, Some(&k.local)).unwrap();
        assert_eq!(again.unwrap().local, k.local);
        // SRTP required and not offered: 488.
        assert_eq!(
            answer_keys(Srtp, false, &[], Option::None),
            Err(Refusal::SrtpRequired)
        );
        assert_eq!(
            answer_keys(Optional, true, &[], Option::None),
            Err(Refusal::NoUsableCrypto)
        );
        assert_eq!(
            answer_keys(Optional, false, &[], Option::None),
            Ok(Option::None)
        );
    }

    #[test]
    fn choosing_on_an_answer() {
        use MediaEncryption::*;
        let ours = offer_keys(Srtp);
        assert_eq!(ours.len(), 2);
        assert!(offer_keys(None).is_empty());
        let mut theirs = CryptoAttr::generate(2, Suite::AesCm128HmacSha1_32);
        let k = accept_answer(Srtp, &ours, std::slice::from_ref(&theirs))
            .unwrap()
            .unwrap();
        assert_eq!(k.local, ours[1]);
        // A tag we never offered (or another suite under ours) is no answer.
        theirs.tag = 7;
        let wrong = std::slice::from_ref(&theirs);
        assert_eq!(
            accept_answer(Srtp, &ours, wrong),
            Err(Refusal::SrtpRequired)
        );
        assert_eq!(accept_answer(Optional, &ours, wrong), Ok(Option::None));
        assert_eq!(accept_answer(Optional, &ours, &[]), Ok(Option::None));
    }
}
