//! A phone's audio in a test: a thread that streams a PCMU sine from the
//! phone's RTP socket to sipacd's leg every 20 ms, as a softphone does, and
//! keeps what it receives (decoded) with its arrival time, so a test can
//! ask which tones the phone heard over a stretch of time.
//!
//! The stream stops when the [`ToneStream`] is dropped.

use super::baresip::{rms, tone_share};
use sipacd::media::g711::{linear_to_ulaw, Codec};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// 20 ms of 8 kHz audio.
const FRAME: usize = 160;
/// Level of each phone's tone: three of them summed stay below full scale.
const LEVEL: f64 = 8000.0;

/// What one phone received: (arrival, samples) per packet.
type Heard = Arc<Mutex<Vec<(Instant, Vec<i16>)>>>;

pub struct ToneStream {
    pub hz: f64,
    heard: Heard,
    /// sipacd's RTP port the phone sends to (0: send nothing).
    to: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ToneStream {
    /// Streams a sine of `hz` from `sock` to 127.0.0.1:`to` (PCMU, payload
    /// type 0, SSRC = the socket's port) and records what `sock` receives.
    pub fn start(sock: &UdpSocket, hz: f64, to: u16) -> ToneStream {
        let sock = sock.try_clone().expect("clone the RTP socket");
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let heard: Heard = Arc::default();
        let target = Arc::new(AtomicU16::new(to));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (heard, target, stop) = (heard.clone(), target.clone(), stop.clone());
            std::thread::spawn(move || run(sock, hz, target, heard, stop))
        };
        ToneStream {
            hz,
            heard,
            to: target,
            stop,
            thread: Some(thread),
        }
    }

    /// Sends to another of sipacd's ports from now on (a new leg).
    pub fn send_to(&self, port: u16) {
        self.to.store(port, Ordering::Relaxed);
    }

    /// The samples received since `since`, in arrival order.
    pub fn heard_since(&self, since: Instant) -> Vec<i16> {
        let heard = self.heard.lock().unwrap();
        heard
            .iter()
            .filter(|(at, _)| *at >= since)
            .flat_map(|(_, s)| s.iter().copied())
            .collect()
    }

    /// For each of `tones`, whether it is in what the phone received since
    /// `since`: a share of the energy above 0.1 in most half-second windows
    /// of real level means heard; below 0.02 in every window means not
    /// heard. Panics (with the table) on silence or anything in between.
    pub fn hears(&self, who: &str, since: Instant, tones: &[f64]) -> Vec<bool> {
        let samples = self.heard_since(since);
        let windows: Vec<Vec<f64>> = samples
            .chunks_exact(4000)
            .map(|w| {
                let mut row = vec![rms(w)];
                row.extend(tones.iter().map(|&hz| tone_share(w, hz)));
                row
            })
            .collect();
        let detail = format!(
            "{who}: {} samples since the mark; per 0.5 s (rms, share of {tones:?} Hz): {windows:.3?}",
            samples.len()
        );
        assert!(windows.len() >= 2, "{who} received too little\n{detail}");
        let loud: Vec<&Vec<f64>> = windows.iter().filter(|w| w[0] > 1000.0).collect();
        assert!(
            loud.len() * 2 > windows.len(),
            "{who} heard mostly silence\n{detail}"
        );
        let verdict = (0..tones.len())
            .map(|i| {
                let present = loud.iter().filter(|w| w[i + 1] > 0.1).count();
                if present * 2 > loud.len() {
                    true
                } else if windows.iter().all(|w| w[i + 1] < 0.02) {
                    false
                } else {
                    panic!(
                        "{who}: {} Hz neither clearly heard nor absent\n{detail}",
                        tones[i]
                    )
                }
            })
            .collect();
        eprintln!("{detail}");
        verdict
    }
}

impl Drop for ToneStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(sock: UdpSocket, hz: f64, to: Arc<AtomicU16>, heard: Heard, stop: Arc<AtomicBool>) {
    let ssrc = u32::from(sock.local_addr().map_or(0, |a| a.port()));
    let (mut seq, mut ts, mut n) = (0u16, 0u32, 0usize);
    let mut next = Instant::now();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let port = to.load(Ordering::Relaxed);
        if port != 0 {
            let mut pkt = vec![0x80, 0];
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&ts.to_be_bytes());
            pkt.extend_from_slice(&ssrc.to_be_bytes());
            pkt.extend((n..n + FRAME).map(|i| {
                let t = i as f64 / 8000.0;
                linear_to_ulaw((LEVEL * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16)
            }));
            let _ = sock.send_to(&pkt, ("127.0.0.1", port));
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(FRAME as u32);
            n += FRAME;
        }
        next += Duration::from_millis(20);
        // Receive until the next frame is due.
        while Instant::now() < next {
            let Ok((len, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            // RTP, PCMU only (telephone-events and RTCP are not audio).
            if len > 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 0 {
                let cc = usize::from(buf[0] & 0x0f);
                let start = 12 + 4 * cc;
                if start < len {
                    let samples = buf[start..len]
                        .iter()
                        .map(|&b| Codec::Pcmu.decode(b))
                        .collect();
                    heard.lock().unwrap().push((Instant::now(), samples));
                }
            }
        }
    }
}
