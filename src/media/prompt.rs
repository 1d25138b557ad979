//! Prompts: WAV files decoded once into 20 ms G.711 frames in both laws,
//! shared (`Arc`) by every call that plays them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;

use crate::config::wav::{self, WavError, WavFormat};
use crate::media::g711::{self, Codec, FRAME_SAMPLES};

/// One 20 ms frame of G.711 bytes.
pub type Frame = [u8; FRAME_SAMPLES];

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PromptError {
    #[error("cannot read prompt {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("bad prompt {path}: {source}")]
    Wav { path: PathBuf, source: WavError },
}

#[derive(Debug)]
struct Frames {
    ulaw: Vec<Frame>,
    alaw: Vec<Frame>,
}

/// A decoded prompt. Cloning is an `Arc` clone.
#[derive(Debug, Clone)]
pub struct Prompt(Arc<Frames>);

impl Prompt {
    /// Builds a prompt from linear samples; the last frame is padded with
    /// silence.
    pub fn from_linear(samples: &[i16]) -> Prompt {
        let ulaw: Vec<u8> = samples.iter().map(|&s| g711::linear_to_ulaw(s)).collect();
        let alaw: Vec<u8> = samples.iter().map(|&s| g711::linear_to_alaw(s)).collect();
        Prompt::from_laws(&ulaw, &alaw)
    }

    /// Builds a prompt from G.711 bytes in `codec`; the other law is
    /// derived by the transcoding table.
    pub fn from_g711(codec: Codec, bytes: &[u8]) -> Prompt {
        let mut other = Vec::with_capacity(bytes.len());
        match codec {
            Codec::Pcmu => {
                g711::transcode_into(Codec::Pcmu, Codec::Pcma, bytes, &mut other);
                Prompt::from_laws(bytes, &other)
            }
            Codec::Pcma => {
                g711::transcode_into(Codec::Pcma, Codec::Pcmu, bytes, &mut other);
                Prompt::from_laws(&other, bytes)
            }
        }
    }

    fn from_laws(ulaw: &[u8], alaw: &[u8]) -> Prompt {
        Prompt(Arc::new(Frames {
            ulaw: frames(ulaw, Codec::Pcmu.silence()),
            alaw: frames(alaw, Codec::Pcma.silence()),
        }))
    }

    /// Parses a whole WAV file's bytes (8 kHz mono PCM16, A-law or mu-law).
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Prompt, WavError> {
        let info = wav::parse(bytes)?;
        // Streaming writers leave data_len at 0xFFFFFFFF: trust the file.
        let end = info
            .data_offset
            .saturating_add(info.data_len as usize)
            .min(bytes.len());
        let data = bytes.get(info.data_offset..end).unwrap_or(&[]);
        Ok(match info.format {
            WavFormat::Pcm16 => {
                let samples: Vec<i16> = data
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                Prompt::from_linear(&samples)
            }
            WavFormat::Ulaw => Prompt::from_g711(Codec::Pcmu, data),
            WavFormat::Alaw => Prompt::from_g711(Codec::Pcma, data),
        })
    }

    /// Reads and decodes a WAV file.
    pub fn load(path: &Path) -> Result<Prompt, PromptError> {
        // Checked again at play time: the file may have changed since the
        // configuration was loaded (into a FIFO, or grown huge).
        let limit = crate::config::file::PROMPT_LIMIT;
        let bytes =
            crate::config::file::read_regular(path, limit).map_err(|e| PromptError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Prompt::from_wav_bytes(&bytes).map_err(|source| PromptError::Wav {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Plays `parts` one after the other ("you are number" "3" "in the
    /// queue"); each part keeps its own silence padding.
    pub fn concat(parts: &[Prompt]) -> Prompt {
        let mut ulaw = Vec::new();
        let mut alaw = Vec::new();
        for p in parts {
            ulaw.extend_from_slice(&p.0.ulaw);
            alaw.extend_from_slice(&p.0.alaw);
        }
        Prompt(Arc::new(Frames { ulaw, alaw }))
    }

    /// Number of 20 ms frames.
    pub fn len(&self) -> usize {
        self.0.ulaw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.ulaw.is_empty()
    }

    pub fn duration(&self) -> Duration {
        Duration::from_millis(20 * self.len() as u64)
    }

    /// Frame `i` in `codec`, None past the end.
    pub fn frame(&self, i: usize, codec: Codec) -> Option<&Frame> {
        match codec {
            Codec::Pcmu => self.0.ulaw.get(i),
            Codec::Pcma => self.0.alaw.get(i),
        }
    }

    /// Whether two handles share the same decoded frames.
    pub fn ptr_eq(a: &Prompt, b: &Prompt) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

fn frames(bytes: &[u8], silence: u8) -> Vec<Frame> {
    bytes
        .chunks(FRAME_SAMPLES)
        .map(|c| {
            let mut f = [silence; FRAME_SAMPLES];
            f[..c.len()].copy_from_slice(c);
            f
        })
        .collect()
}

/// Prompts by path, each file loaded once and shared. Cloning shares the
/// cache.
#[derive(Debug, Clone, Default)]
pub struct PromptCache {
    map: Arc<Mutex<HashMap<PathBuf, Prompt>>>,
}

impl PromptCache {
    pub fn new() -> PromptCache {
        PromptCache::default()
    }

    /// The prompt for `path`, loading it on first use. Failures are not
    /// cached, so a fixed file is picked up on the next call.
    pub fn get(&self, path: &Path) -> Result<Prompt, PromptError> {
        if let Some(p) = self.lock().get(path) {
            return Ok(p.clone());
        }
        // Loaded outside the lock: a slow disk must not stall other calls.
        let loaded = Prompt::load(path)?;
        Ok(self
            .lock()
            .entry(path.to_path_buf())
            .or_insert(loaded)
            .clone())
    }

    /// Number of distinct files loaded.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Prompt>> {
        // A panic elsewhere while holding the lock leaves a valid map.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::wav::tests::wav_bytes;

    fn wav_with(tag: u16, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut v = wav_bytes(tag, 1, 8000, bits, 0);
        let len = data.len() as u32;
        v[40..44].copy_from_slice(&len.to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn pcm16_is_framed_in_both_laws_and_padded() {
        // 170 samples: one full frame plus 10 samples.
        let samples: Vec<i16> = (0..170).map(|i| (i * 100) as i16).collect();
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let p = Prompt::from_wav_bytes(&wav_with(1, 16, &data)).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.duration(), Duration::from_millis(40));
        let u = p.frame(1, Codec::Pcmu).unwrap();
        let a = p.frame(1, Codec::Pcma).unwrap();
        assert_eq!(u[0], g711::linear_to_ulaw(16000));
        assert_eq!(a[9], g711::linear_to_alaw(16900));
        assert!(u[10..].iter().all(|&b| b == 0xFF));
        assert!(a[10..].iter().all(|&b| b == 0xD5));
        assert!(p.frame(2, Codec::Pcmu).is_none());
    }

    #[test]
    fn g711_files_keep_their_bytes() {
        let data: Vec<u8> = (0..=255u8).collect();
        let u = Prompt::from_wav_bytes(&wav_with(7, 8, &data)).unwrap();
        assert_eq!(&u.frame(0, Codec::Pcmu).unwrap()[..], &data[..160]);
        assert_eq!(u.frame(0, Codec::Pcma).unwrap()[3], g711::ULAW_TO_ALAW[3]);
        let a = Prompt::from_wav_bytes(&wav_with(6, 8, &data)).unwrap();
        assert_eq!(&a.frame(1, Codec::Pcma).unwrap()[..96], &data[160..]);
    }

    #[test]
    fn oversized_data_len_is_clipped_to_the_file() {
        let mut v = wav_with(7, 8, &[0x10; 200]);
        v[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Prompt::from_wav_bytes(&v).unwrap().len(), 2);
        assert!(Prompt::from_wav_bytes(b"junk").is_err());
    }

    #[test]
    fn concat_and_cache_share_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        std::fs::write(&path, wav_with(7, 8, &[0x20; 320])).unwrap();
        let cache = PromptCache::new();
        let a = cache.get(&path).unwrap();
        let b = cache.clone().get(&path).unwrap();
        assert!(Prompt::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
        assert!(matches!(
            cache.get(&dir.path().join("missing.wav")),
            Err(PromptError::Io { .. })
        ));
        assert_eq!(cache.len(), 1);
        assert_eq!(Prompt::concat(&[a.clone(), a]).len(), 4);
    }

    #[test]
    fn a_prompt_that_became_a_fifo_or_huge_is_refused_at_play_time() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.wav");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        // No writer: a blocking open would hang the media task here.
        let e = Prompt::load(&fifo).unwrap_err().to_string();
        assert!(e.contains("named pipe (FIFO), not a regular file"), "{e}");
        let big = dir.path().join("big.wav");
        std::fs::write(&big, wav_with(7, 8, &[0x20; 320])).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
        f.set_len(crate::config::file::PROMPT_LIMIT + 1).unwrap();
        let e = Prompt::load(&big).unwrap_err().to_string();
        assert!(e.contains("more than the limit"), "{e}");
    }

    #[test]
    fn demo_prompts_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let p = Prompt::load(&dir.join("moh.wav")).unwrap();
        assert!(p.len() > 10);
    }
}
