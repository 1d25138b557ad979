//! A small RIFF/WAVE header reader for prompts.
//!
//! Hand-written because `hound` reads only PCM and float WAVs, not the G.711
//! A-law/mu-law files (format tags 6 and 7) telephony prompts usually come in.
//! Parsing is pure over bytes; `read_info` just reads the file's head.

use std::io::Read;
use std::path::Path;

/// Audio encodings accepted for prompts (all 8 kHz mono).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavFormat {
    /// Linear PCM, 16-bit little-endian (format tag 1).
    Pcm16,
    /// G.711 A-law, 8-bit (format tag 6).
    Alaw,
    /// G.711 mu-law, 8-bit (format tag 7).
    Ulaw,
}

/// What a prompt's header says and where its samples are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub format: WavFormat,
    /// Byte offset of the `data` chunk's payload in the file.
    pub data_offset: usize,
    /// Length of the `data` payload in bytes as declared by the header.
    pub data_len: u32,
}

/// Why a file is not a usable prompt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("truncated WAV header")]
    Truncated,
    #[error("WAV has no `fmt ` chunk before its `data` chunk")]
    NoFmt,
    #[error("WAV has no `data` chunk")]
    NoData,
    #[error("unsupported WAV format: {0} (need 8 kHz mono 16-bit PCM, A-law or mu-law)")]
    Unsupported(String),
}

/// How much of a file is read to find its header. Metadata chunks before
/// `data` (LIST, fact) are small; a header beyond this is rejected.
const HEAD_LIMIT: u64 = 64 * 1024;

/// Reads and checks the header of the WAV file at `path`.
pub fn read_info(path: &Path) -> Result<WavInfo, WavError> {
    let (file, size) = super::file::open_regular(path).map_err(|e| WavError::Io(e.to_string()))?;
    let limit = super::file::PROMPT_LIMIT;
    if size > limit {
        let e = super::file::FileError::TooLarge { size, limit };
        return Err(WavError::Io(e.to_string()));
    }
    let mut head = Vec::new();
    file.take(HEAD_LIMIT)
        .read_to_end(&mut head)
        .map_err(|e| WavError::Io(e.to_string()))?;
    parse(&head)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a WAV header from the first bytes of a file (the whole file is not
/// needed: parsing stops at the `data` chunk header).
pub fn parse(b: &[u8]) -> Result<WavInfo, WavError> {
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut pos = 12usize;
    let mut format = None;
    loop {
        let id = b.get(pos..pos + 4).ok_or(if format.is_some() {
            WavError::NoData
        } else {
            WavError::Truncated
        })?;
        let len = u32_at(b, pos + 4).ok_or(WavError::Truncated)?;
        let body = pos + 8;
        match id {
            b"fmt " => format = Some(check_fmt(b, body, len)?),
            b"data" => {
                let format = format.ok_or(WavError::NoFmt)?;
                return Ok(WavInfo {
                    format,
                    data_offset: body,
                    data_len: len,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length (RIFF rule).
        let padded = (len as usize).saturating_add(len as usize & 1);
        pos = body.checked_add(padded).ok_or(WavError::Truncated)?;
    }
}

fn check_fmt(b: &[u8], at: usize, len: u32) -> Result<WavFormat, WavError> {
    if len < 16 {
        return Err(WavError::Truncated);
    }
    let field = |off: usize| u16_at(b, at + off).ok_or(WavError::Truncated);
    let mut tag = field(0)?;
    let channels = field(2)?;
    let rate = u32_at(b, at + 4).ok_or(WavError::Truncated)?;
    let bits = field(14)?;
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
        tag = field(24)?;
    }
    let format = match (tag, bits) {
        (1, 16) => WavFormat::Pcm16,
        (6, 8) => WavFormat::Alaw,
        (7, 8) => WavFormat::Ulaw,
        _ => {
            return Err(WavError::Unsupported(format!(
                "format tag {tag}, {bits} bits"
            )))
        }
    };
    if channels != 1 || rate != 8000 {
        return Err(WavError::Unsupported(format!(
            "{channels} channel(s) at {rate} Hz"
        )));
    }
    Ok(format)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a WAV header (plus `data_len` zero bytes) for tests.
    pub(crate) fn wav_bytes(
        tag: u16,
        channels: u16,
        rate: u32,
        bits: u16,
        data_len: u32,
    ) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        v.extend_from_slice(&(rate * block as u32).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        v.resize(v.len() + data_len as usize, 0);
        v
    }

    #[test]
    fn accepts_pcm16_alaw_ulaw() {
        let p = parse(&wav_bytes(1, 1, 8000, 16, 4)).unwrap();
        assert_eq!(p.format, WavFormat::Pcm16);
        assert_eq!((p.data_offset, p.data_len), (44, 4));
        assert_eq!(
            parse(&wav_bytes(6, 1, 8000, 8, 0)).unwrap().format,
            WavFormat::Alaw
        );
        assert_eq!(
            parse(&wav_bytes(7, 1, 8000, 8, 0)).unwrap().format,
            WavFormat::Ulaw
        );
    }

    #[test]
    fn rejects_wrong_formats() {
        for (tag, ch, rate, bits) in [
            (1, 2, 8000, 16),
            (1, 1, 16000, 16),
            (1, 1, 8000, 8),
            (3, 1, 8000, 32),
            (7, 1, 8000, 16),
        ] {
            assert!(
                matches!(
                    parse(&wav_bytes(tag, ch, rate, bits, 2)),
                    Err(WavError::Unsupported(_))
                ),
                "{tag} {ch} {rate} {bits}"
            );
        }
        assert_eq!(parse(b"RIFX....WAVE"), Err(WavError::NotWave));
        assert_eq!(parse(b"RIFF"), Err(WavError::NotWave));
        let full = wav_bytes(1, 1, 8000, 16, 0);
        assert_eq!(parse(&full[..30]), Err(WavError::Truncated));
        assert_eq!(parse(&full[..36]), Err(WavError::NoData));
    }

    #[test]
    fn skips_other_chunks_and_reads_extensible() {
        let base = wav_bytes(1, 1, 8000, 16, 2);
        // Insert an odd-length LIST chunk (padded) before `fmt `.
        let mut v = base[..12].to_vec();
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&[1, 2, 3, 0]);
        v.extend_from_slice(&base[12..]);
        assert_eq!(parse(&v).unwrap().data_offset, 44 + 12);

        // Extensible header: tag 0xFFFE, cbSize 22, sub-format tag 7.
        let mut e = base[..12].to_vec();
        e.extend_from_slice(b"fmt ");
        e.extend_from_slice(&40u32.to_le_bytes());
        for x in [0xFFFEu16, 1] {
            e.extend_from_slice(&x.to_le_bytes());
        }
        e.extend_from_slice(&8000u32.to_le_bytes());
        e.extend_from_slice(&8000u32.to_le_bytes());
        for x in [1u16, 8, 22, 8, 0, 0, 7] {
            e.extend_from_slice(&x.to_le_bytes());
        }
        e.resize(12 + 8 + 40, 0);
        e.extend_from_slice(b"data");
        e.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse(&e).unwrap().format, WavFormat::Ulaw);
    }

    #[test]
    fn demo_prompts_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        for name in [
            "menu.wav",
            "closed.wav",
            "voicemail.wav",
            "moh.wav",
            "0.wav",
            "9.wav",
            "you-are-number.wav",
            "in-the-queue.wav",
            "callback-offer.wav",
            "callback-number.wav",
            "callback-accepted.wav",
            "callback-agent.wav",
            "rate-us.wav",
            "estimated-wait.wav",
            "minutes.wav",
        ] {
            let info = read_info(&dir.join(name)).unwrap();
            assert_eq!(info.format, WavFormat::Pcm16, "{name}");
            assert!(info.data_len > 0, "{name}");
        }
    }
}
