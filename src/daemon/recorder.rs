//! The recorder: one thread that turns copies of relayed RTP payloads into
//! WAV files, off the media task: stereo for a bridged call (caller left,
//! agent right), mono for a message left in a `voicemail` node. The media task hands it a packet
//! with [`Recorder::frame`], which never blocks: past [`MAX_QUEUED`]
//! packets waiting, the packet is left out of the recording (and counted)
//! while the relay goes on untouched. Starts and stops always pass, so a
//! file is always finished.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{info, warn};

use crate::media::g711::{self, Codec};
use crate::media::record_align::{Channel, StereoAligner};
use crate::media::wav_out::WavWriter;

/// Packets waiting for the writer, across all recordings, beyond which new
/// ones are dropped from their recording: about 80 s of one call, or 1.6 s
/// of 50 recorded calls.
pub const MAX_QUEUED: usize = 8192;

/// The header of a recording in progress is brought up to date every this
/// many frames (10 s): a process killed mid-call leaves a file that plays
/// to within 10 s of its end.
const CHECKPOINT_FRAMES: u64 = 10 * 8000;

/// One recording, as the media task numbers it.
pub type RecordingId = u64;

/// One RTP packet's audio for a recording.
pub struct Frame {
    pub id: RecordingId,
    pub channel: Channel,
    pub arrival: Instant,
    pub ssrc: u32,
    pub ts: u32,
    pub codec: Codec,
    /// The G.711 payload (a slice of the received datagram, not a copy).
    pub payload: Bytes,
}

enum Msg {
    Start {
        id: RecordingId,
        path: PathBuf,
        at: Instant,
        /// 2: both sides of a call; 1: the caller's left channel alone.
        channels: u16,
    },
    Frame(Frame),
    Stop {
        id: RecordingId,
        /// Packets the media task could not hand over.
        lost: u64,
    },
}

/// The media task's handle on the writer thread.
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    queued: Arc<AtomicUsize>,
}

impl Recorder {
    /// Starts the writer thread; it ends when the handle is dropped, after
    /// finishing every file still open.
    pub fn spawn() -> std::io::Result<Recorder> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new()
            .name("sipacd-recorder".into())
            .spawn(move || run(rx, q))?;
        Ok(Recorder { tx, queued })
    }

    pub fn start(&self, id: RecordingId, path: PathBuf, at: Instant) {
        let _ = self.tx.send(Msg::Start {
            id,
            path,
            at,
            channels: 2,
        });
    }

    /// Starts a mono recording of the frames sent on [`Channel::Left`].
    pub fn start_mono(&self, id: RecordingId, path: PathBuf, at: Instant) {
        let _ = self.tx.send(Msg::Start {
            id,
            path,
            at,
            channels: 1,
        });
    }

    /// Hands a packet over; false if the writer lags (the packet is not
    /// recorded) or has gone.
    pub fn frame(&self, f: Frame) -> bool {
        if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
            return false;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Frame(f)).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn stop(&self, id: RecordingId, lost: u64) {
        let _ = self.tx.send(Msg::Stop { id, lost });
    }
}

struct Open {
    path: PathBuf,
    channels: u16,
    align: StereoAligner,
    wav: WavWriter<BufWriter<File>>,
}

fn run(rx: mpsc::Receiver<Msg>, queued: Arc<AtomicUsize>) {
    let mut open: HashMap<RecordingId, Open> = HashMap::new();
    let mut pcm = Vec::with_capacity(320);
    let mut out = Vec::with_capacity(8192);
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Start {
                id,
                path,
                at,
                channels,
            } => match create(&path, channels) {
                Ok(wav) => {
                    open.insert(
                        id,
                        Open {
                            path,
                            channels,
                            align: StereoAligner::new(at),
                            wav,
                        },
                    );
                }
                Err(e) => warn!(path = %path.display(), error = %e, "cannot create recording"),
            },
            Msg::Frame(f) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                let Some(o) = open.get_mut(&f.id) else {
                    continue;
                };
                pcm.clear();
                g711::decode_into(f.codec, &f.payload, &mut pcm);
                o.align.push(f.channel, f.arrival, f.ssrc, f.ts, &pcm);
                out.clear();
                if o.align.drain_ready(&mut out) > 0 {
                    mono_if(o.channels, &mut out);
                    let before = o.wav.frames() / CHECKPOINT_FRAMES;
                    let written = o.wav.write(&out).and_then(|()| {
                        if o.wav.frames() / CHECKPOINT_FRAMES > before {
                            o.wav.checkpoint()?;
                        }
                        Ok(())
                    });
                    if let Err(e) = written {
                        warn!(path = %o.path.display(), error = %e, "recording stopped: write failed");
                        open.remove(&f.id);
                    }
                }
            }
            Msg::Stop { id, lost } => {
                if let Some(o) = open.remove(&id) {
                    finish(o, lost, &mut out);
                }
            }
        }
    }
    for (_, o) in open.drain() {
        finish(o, 0, &mut out);
    }
}

fn create(path: &std::path::Path, channels: u16) -> std::io::Result<WavWriter<BufWriter<File>>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    WavWriter::new(BufWriter::new(File::create(path)?), channels)
}

/// The aligner hands out stereo pairs; a mono file keeps the left sample.
fn mono_if(channels: u16, out: &mut Vec<i16>) {
    if channels == 1 {
        let mut i = 0;
        out.retain(|_| {
            i += 1;
            i % 2 == 1
        });
    }
}

fn finish(mut o: Open, lost: u64, out: &mut Vec<i16>) {
    out.clear();
    o.align.finish(out);
    mono_if(o.channels, out);
    let stats = o.align.stats();
    let done = o.wav.write(out).and_then(|()| {
        let frames = o.wav.frames();
        o.wav.finish().map(|_| frames)
    });
    match done {
        Ok(frames) => info!(
            path = %o.path.display(),
            seconds = frames as f64 / 8000.0,
            lost,
            late = stats.late,
            "recording written"
        ),
        Err(e) => warn!(path = %o.path.display(), error = %e, "recording not finished"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The file at `path` once the recorder thread has finished it (its
    /// data size patched into the header), within 5 s.
    fn finished_wav(path: &std::path::Path, what: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let b = std::fs::read(path).unwrap_or_default();
            if b.len() >= 44 && b[40..44] != [0; 4] {
                return b;
            }
            assert!(Instant::now() < deadline, "{what} never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_recording_is_written_and_finished_by_the_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("recordings/2027-01-15/c1.wav");
        let rec = Recorder::spawn().expect("thread");
        let t0 = Instant::now();
        rec.start(1, path.clone(), t0);
        for i in 0..10u32 {
            for (channel, byte) in [(Channel::Left, 0x00), (Channel::Right, 0x80)] {
                assert!(rec.frame(Frame {
                    id: 1,
                    channel,
                    arrival: t0 + Duration::from_millis(u64::from(i) * 20),
                    ssrc: 5,
                    ts: i * 160,
                    codec: Codec::Pcmu,
                    payload: Bytes::from(vec![byte; 160]),
                }));
            }
        }
        rec.stop(1, 0);
        drop(rec);
        // The thread ends once it has finished the file.
        let bytes = finished_wav(&path, "recording");
        assert_eq!(bytes[22], 2, "stereo");
        let data_len = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]);
        assert_eq!(data_len, 10 * 160 * 4);
        assert_eq!(bytes.len(), 44 + 10 * 160 * 4);
        let first = i16::from_le_bytes([bytes[44], bytes[45]]);
        let second = i16::from_le_bytes([bytes[46], bytes[47]]);
        assert_eq!(first, g711::ULAW_DECODE[0x00]);
        assert_eq!(second, g711::ULAW_DECODE[0x80]);
    }

    #[test]
    fn a_message_is_a_mono_file_of_the_left_channel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("voicemail/2027-01-15/m1.wav");
        let rec = Recorder::spawn().expect("thread");
        let t0 = Instant::now();
        rec.start_mono(7, path.clone(), t0);
        for i in 0..10u32 {
            assert!(rec.frame(Frame {
                id: 7,
                channel: Channel::Left,
                arrival: t0 + Duration::from_millis(u64::from(i) * 20),
                ssrc: 9,
                ts: i * 160,
                codec: Codec::Pcmu,
                payload: Bytes::from(vec![0x10; 160]),
            }));
        }
        rec.stop(7, 0);
        drop(rec);
        let bytes = finished_wav(&path, "message");
        assert_eq!(bytes[22], 1, "mono");
        let data_len = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]);
        assert_eq!(data_len, 10 * 160 * 2);
        let s = i16::from_le_bytes([bytes[44], bytes[45]]);
        assert_eq!(s, g711::ULAW_DECODE[0x10]);
        let last = bytes.len() - 2;
        assert_eq!(
            i16::from_le_bytes([bytes[last], bytes[last + 1]]),
            g711::ULAW_DECODE[0x10]
        );
    }
}
