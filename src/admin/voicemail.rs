//! `GET /api/v1/voicemail` (the messages callers left, newest first) and
//! `GET /api/v1/voicemail/ID` (one message's WAV). The call record names
//! the file; the length is read from the file itself, so a message cut
//! short by a crash reports what is really on disk.

use crate::cdr::{CallRecord, CdrFilter, CdrStore};
use serde::Serialize;
use std::path::{Component, Path, PathBuf};

/// How many messages one list answer holds at most.
pub const LIST_LIMIT: usize = 1000;

/// One message in the list.
#[derive(Debug, Serialize)]
pub struct MessageView {
    pub call: String,
    pub caller: String,
    pub number: String,
    /// When the call arrived, RFC 3339 in UTC.
    pub time: String,
    /// Length of the audio on disk; None when the file is gone.
    pub seconds: Option<f64>,
    /// Relative to `server.data_dir`.
    pub path: String,
}

/// Why a message cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no such call")]
    NoCall,
    #[error("this call left no message")]
    NoMessage,
    #[error("message path is not under data_dir")]
    Outside,
    #[error("message file is gone")]
    Gone,
    #[error(transparent)]
    Store(#[from] crate::cdr::CdrError),
    #[error(transparent)]
    Io(std::io::Error),
}

/// The messages of calls arrived in `filter`, newest first.
pub fn list(dir: &Path, filter: &CdrFilter) -> Result<Vec<MessageView>, crate::cdr::CdrError> {
    let records = CdrStore::open_reader(dir)?.voicemails(filter, LIST_LIMIT)?;
    Ok(records.iter().filter_map(|r| view(dir, r)).collect())
}

/// The WAV bytes of call `id`'s message.
pub fn fetch(dir: &Path, id: &str) -> Result<Vec<u8>, FetchError> {
    let rec = CdrStore::open_reader(dir)?
        .get(id)?
        .ok_or(FetchError::NoCall)?;
    let rel = rec.voicemail.ok_or(FetchError::NoMessage)?;
    let path = inside(dir, &rel).ok_or(FetchError::Outside)?;
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FetchError::Gone,
        _ => FetchError::Io(e),
    })
}

fn view(dir: &Path, r: &CallRecord) -> Option<MessageView> {
    let rel = r.voicemail.clone()?;
    let seconds = inside(dir, &rel).and_then(|p| wav_seconds(&p));
    Some(MessageView {
        call: r.id.clone(),
        caller: r.caller.clone(),
        number: r.number.clone(),
        time: crate::cdr::rfc3339(r.arrived_ms),
        seconds,
        path: rel,
    })
}

/// `rel` joined to `dir` when it stays under it (a record never names a
/// file elsewhere; a tampered one must not make us serve it).
fn inside(dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(p))
}

/// Seconds of audio in a PCM WAV of the 44-byte form the recorder writes:
/// data bytes over the header's byte rate.
fn wav_seconds(path: &Path) -> Option<f64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut h = [0u8; 44];
    f.read_exact(&mut h).ok()?;
    let byte_rate = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
    if &h[0..4] != b"RIFF" || byte_rate == 0 {
        return None;
    }
    let data = len.saturating_sub(44) as f64;
    Some((data / f64::from(byte_rate) * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_come_from_the_file_and_paths_stay_inside() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("m.wav");
        let mut bytes = crate::media::wav_out::header(1, 24_000).to_vec();
        bytes.extend(std::iter::repeat_n(0u8, 24_000));
        std::fs::write(&p, bytes).expect("write");
        assert_eq!(wav_seconds(&p), Some(1.5));
        assert_eq!(wav_seconds(&dir.path().join("none.wav")), None);
        assert!(inside(dir.path(), "voicemail/2027-01-15/c.wav").is_some());
        assert!(inside(dir.path(), "../etc/passwd").is_none());
        assert!(inside(dir.path(), "/etc/passwd").is_none());
    }
}
