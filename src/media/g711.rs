//! G.711 PCMU (mu-law) and PCMA (A-law): the only codecs sipacd speaks.
//!
//! Decoding and law-to-law transcoding are 256-entry tables built at compile
//! time, so the relay's hot path is one lookup per byte. Encoding only runs
//! when a prompt is loaded and uses the standard segment algorithm: a 64 k
//! table is ~4x faster in a hot loop (`benches/media.rs`: 0.8 vs 3 ns per
//! sample) but at load time 3 ns/sample is nothing, and the table would
//! cost 64 KiB of cache per law.

use crate::media::sdp::{PT_PCMA, PT_PCMU};

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// One G.711 law, as negotiated for a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551).
    pub fn pt(self) -> u8 {
        match self {
            Codec::Pcmu => PT_PCMU,
            Codec::Pcma => PT_PCMA,
        }
    }

    pub fn from_pt(pt: u8) -> Option<Codec> {
        match pt {
            PT_PCMU => Some(Codec::Pcmu),
            PT_PCMA => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The byte that encodes linear 0.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ULAW_DECODE[byte as usize],
            Codec::Pcma => ALAW_DECODE[byte as usize],
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => linear_to_ulaw(sample),
            Codec::Pcma => linear_to_alaw(sample),
        }
    }
}

const ULAW_BIAS: i32 = 0x84;

/// Linear 16-bit to mu-law (ITU-T G.711, the classic Sun implementation
/// with the segment found by a bit count instead of a search).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let (mag, mask) = if sample < 0 {
        (ULAW_BIAS - sample as i32, 0x7Fi32)
    } else {
        (sample as i32 + ULAW_BIAS, 0xFF)
    };
    if mag > 0x7FFF {
        return (0x7F ^ mask) as u8;
    }
    // Segment = position of the top bit above bit 7 (mag >= 0x84 always).
    let seg = (31 - (mag as u32).leading_zeros()).saturating_sub(7);
    let val = (seg << 4) as i32 | ((mag >> (seg + 3)) & 0xF);
    (val ^ mask) as u8
}

/// Linear 16-bit to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let v = (sample as i32) >> 3;
    let (mag, mask) = if v >= 0 { (v, 0xD5) } else { (-v - 1, 0x55) };
    if mag > 0xFFF {
        return (0x7F ^ mask) as u8;
    }
    let seg = if mag < 0x20 {
        0
    } else {
        (31 - (mag as u32).leading_zeros()) - 4
    };
    let quant = if seg < 2 { mag >> 1 } else { mag >> seg } & 0xF;
    (((seg << 4) as i32 | quant) ^ mask) as u8
}

const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

const fn alaw_to_linear(a: u8) -> i16 {
    let a = (a ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn decode_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

/// mu-law byte -> linear sample.
pub static ULAW_DECODE: [i16; 256] = decode_table(false);
/// A-law byte -> linear sample.
pub static ALAW_DECODE: [i16; 256] = decode_table(true);

// Const re-implementations of the encoders for the transcoding tables (the
// runtime ones use `leading_zeros`, which is const too, but keeping these
// loops simple keeps the const evaluation obviously bounded).
const fn ulaw_encode_const(sample: i16) -> u8 {
    let (mag, mask) = if sample < 0 {
        (ULAW_BIAS - sample as i32, 0x7F)
    } else {
        (sample as i32 + ULAW_BIAS, 0xFF)
    };
    if mag > 0x7FFF {
        return (0x7F ^ mask) as u8;
    }
    let mut seg = 0;
    while seg < 7 && mag > (0x100 << seg) - 1 {
        seg += 1;
    }
    (((seg << 4) | ((mag >> (seg + 3)) & 0xF)) ^ mask) as u8
}

const fn alaw_encode_const(sample: i16) -> u8 {
    let v = (sample as i32) >> 3;
    let (mag, mask) = if v >= 0 { (v, 0xD5) } else { (-v - 1, 0x55) };
    if mag > 0xFFF {
        return (0x7F ^ mask) as u8;
    }
    let mut seg = 0;
    while seg < 7 && mag > (0x20 << seg) - 1 {
        seg += 1;
    }
    let quant = if seg < 2 { mag >> 1 } else { mag >> seg } & 0xF;
    (((seg << 4) | quant) ^ mask) as u8
}

const fn transcode_table(from_alaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if from_alaw {
            ulaw_encode_const(alaw_to_linear(i as u8))
        } else {
            alaw_encode_const(ulaw_to_linear(i as u8))
        };
        i += 1;
    }
    t
}

/// mu-law byte -> A-law byte (through linear).
pub static ULAW_TO_ALAW: [u8; 256] = transcode_table(false);
/// A-law byte -> mu-law byte.
pub static ALAW_TO_ULAW: [u8; 256] = transcode_table(true);

/// Rewrites mu-law bytes as A-law in place.
pub fn transcode_ulaw_to_alaw(buf: &mut [u8]) {
    for b in buf {
        *b = ULAW_TO_ALAW[*b as usize];
    }
}

/// Rewrites A-law bytes as mu-law in place.
pub fn transcode_alaw_to_ulaw(buf: &mut [u8]) {
    for b in buf {
        *b = ALAW_TO_ULAW[*b as usize];
    }
}

/// Appends `payload` re-encoded from `from` to `to` (a copy when equal).
pub fn transcode_into(from: Codec, to: Codec, payload: &[u8], out: &mut Vec<u8>) {
    let table = match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => &ULAW_TO_ALAW,
        (Codec::Pcma, Codec::Pcmu) => &ALAW_TO_ULAW,
        _ => return out.extend_from_slice(payload),
    };
    out.extend(payload.iter().map(|&b| table[b as usize]));
}

/// Decodes G.711 bytes into linear samples, appending to `out`.
/// Mean absolute amplitude of a G.711 payload above which a message
/// recording takes it for speech: about -40 dBFS, above line noise and
/// comfort noise, below any voice.
pub const VOICE_LEVEL: u32 = 330;

/// Whether a G.711 payload holds speech (its mean absolute amplitude is
/// at least [`VOICE_LEVEL`]).
pub fn is_voiced(codec: Codec, payload: &[u8]) -> bool {
    if payload.is_empty() {
        return false;
    }
    let sum: u64 = payload
        .iter()
        .map(|&b| u64::from(codec.decode(b).unsigned_abs()))
        .sum();
    sum / payload.len() as u64 >= u64::from(VOICE_LEVEL)
}

pub fn decode_into(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    let table = match codec {
        Codec::Pcmu => &ULAW_DECODE,
        Codec::Pcma => &ALAW_DECODE,
    };
    out.extend(payload.iter().map(|&b| table[b as usize]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_and_const_encoders_agree_everywhere() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(linear_to_ulaw(s), ulaw_encode_const(s), "ulaw {s}");
            assert_eq!(linear_to_alaw(s), alaw_encode_const(s), "alaw {s}");
        }
    }

    #[test]
    fn decode_then_encode_is_identity() {
        for b in 0..=255u8 {
            assert_eq!(linear_to_alaw(ALAW_DECODE[b as usize]), b, "alaw {b:#x}");
            let back = linear_to_ulaw(ULAW_DECODE[b as usize]);
            // 0x7F and 0xFF both decode to 0 (negative and positive zero).
            if b != 0x7F {
                assert_eq!(back, b, "ulaw {b:#x}");
            }
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ULAW_DECODE[0x00], -32124);
        assert_eq!(ULAW_DECODE[0x80], 32124);
        assert_eq!(ALAW_DECODE[0xAA], 32256);
        assert_eq!(ALAW_DECODE[0x2A], -32256);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn quantisation_error_is_within_g711_bounds() {
        // Relative error of a log-PCM code is at most ~1/32 above the
        // linear segment; allow the absolute floor of the first segment.
        for s in (-32000i16..32000).step_by(7) {
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let d = codec.decode(codec.encode(s)) as i32;
                let err = (d - s as i32).abs();
                assert!(err <= (s as i32).abs() / 16 + 16, "{codec:?} {s} -> {d}");
            }
        }
    }

    #[test]
    fn transcoding_round_trip_is_close() {
        for b in 0..=255u8 {
            let lin = ULAW_DECODE[b as usize] as i32;
            let a = ULAW_TO_ALAW[b as usize];
            let via_a = ALAW_DECODE[a as usize] as i32;
            assert!((via_a - lin).abs() <= lin.abs() / 16 + 16, "{b:#x}");
            let back = ULAW_DECODE[ALAW_TO_ULAW[a as usize] as usize] as i32;
            assert!((back - lin).abs() <= lin.abs() / 8 + 16, "{b:#x}");
        }
        let mut buf: Vec<u8> = (0..=255).collect();
        transcode_ulaw_to_alaw(&mut buf);
        assert_eq!(buf[0x42], ULAW_TO_ALAW[0x42]);
        transcode_alaw_to_ulaw(&mut buf);
        for (b, &back) in buf.iter().enumerate() {
            let d = (ULAW_DECODE[back as usize] as i32 - ULAW_DECODE[b] as i32).abs();
            assert!(d <= (ULAW_DECODE[b] as i32).abs() / 8 + 16, "{b:#x}");
        }
        let mut out = Vec::new();
        transcode_into(Codec::Pcmu, Codec::Pcmu, &[1, 2, 3], &mut out);
        assert_eq!(out, [1, 2, 3]);
        // A-law -> mu-law stays close for every A-law code.
        for a in 0..=255u8 {
            let u = ALAW_TO_ULAW[a as usize];
            let lin = ALAW_DECODE[a as usize] as i32;
            assert!((ULAW_DECODE[u as usize] as i32 - lin).abs() <= lin.abs() / 16 + 8);
        }
    }

    #[test]
    fn silence_is_not_voice_and_a_tone_is() {
        assert!(!is_voiced(Codec::Pcmu, &[0xFF; 160]));
        assert!(!is_voiced(Codec::Pcma, &[0xD5; 160]));
        assert!(!is_voiced(Codec::Pcmu, &[]));
        // A 400 Hz tone at about -20 dBFS.
        let tone: Vec<u8> = (0..160)
            .map(|i| {
                let x = (f64::from(i) * 2.0 * std::f64::consts::PI * 400.0 / 8000.0).sin();
                linear_to_ulaw((x * 3300.0) as i16)
            })
            .collect();
        assert!(is_voiced(Codec::Pcmu, &tone));
    }
}
