//! What recording a call costs next to only relaying it, printed per
//! second of call (50 packets each way): the media task's share (relaying
//! a packet, and for a recorded call also handing a slice of it to the
//! recorder), and the recorder thread's share (decoding G.711, aligning
//! both sides in time, writing the stereo WAV to a file in a temporary
//! directory). The relay never waits for the recorder: its figure is the
//! one that bounds how many calls a media task carries.
//!
//! Next to them, a monitored call (listen, whisper, barge): three phones'
//! packets, each decoded into the mixer (`media::mixer`), the phones that
//! hear one party relayed as before, and every 20 ms one frame mixed and
//! encoded for each phone that hears more than one, as the media task does
//! (`daemon::media`).
//!
//! `cargo bench --bench recording`

use std::hint::black_box;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sipacd::daemon::recorder::{Frame, Recorder};
use sipacd::media::g711;
use sipacd::media::g711::FRAME_SAMPLES;
use sipacd::media::mixer::encode_frame;
use sipacd::media::record_align::{Channel, StereoAligner};
use sipacd::media::wav_out::WavWriter;
use sipacd::media::{Codec, Leg, LegParams, Mixer, MonitorMode, PacerConfig, Party, Source};

/// Seconds of call simulated per figure.
const CALL_SECONDS: u32 = 600;
const PACKETS_PER_SIDE: u32 = 50;

fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn leg(now: Instant) -> Leg {
    let codec = Codec::Pcmu;
    let mut l = Leg::with_ids(
        LegParams {
            codec,
            te_pt: Some(101),
        },
        None,
        PacerConfig {
            ssrc: 1,
            seq: 1,
            ts: 1,
            codec,
        },
        now,
    );
    l.set_inband_dtmf(false);
    l.play(Source::Relay, now);
    l
}

/// Both directions of a call of `CALL_SECONDS`, relayed; with `recorder`,
/// each relayed packet also handed over as the media task does. Returns
/// the time the media task spent.
fn media_task(recorder: Option<(&Recorder, &std::path::Path)>) -> Duration {
    let t0 = Instant::now();
    let mut legs = [leg(t0), leg(t0)];
    let from_a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let from_b: SocketAddr = "10.0.0.2:4000".parse().unwrap();
    let payload: Vec<u8> = (0..160).map(|i| i as u8).collect();
    let mut out = Vec::with_capacity(1500);
    if let Some((r, dir)) = recorder {
        r.start(1, dir.join("tapped.wav"), t0);
    }
    let start = Instant::now();
    for i in 0..CALL_SECONDS * PACKETS_PER_SIDE {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        for (dir, from, ch, ssrc) in [
            (0, from_a, Channel::Left, 7),
            (1, from_b, Channel::Right, 9),
        ] {
            let (first, second) = legs.split_at_mut(1);
            let (me, other) = if dir == 0 {
                (&mut first[0], &mut second[0])
            } else {
                (&mut second[0], &mut first[0])
            };
            let pkt = Bytes::from(rtp(i as u16, i * 160, ssrc, &payload));
            let relayed = me.relay_to(other, from, &pkt, now, &mut out);
            if let (true, Some((r, _))) = (relayed, recorder) {
                let Ok(p) = sipacd::media::relay::parse(&pkt) else {
                    continue;
                };
                black_box(r.frame(Frame {
                    id: 1,
                    channel: ch,
                    arrival: now,
                    ssrc: p.header.ssrc,
                    ts: p.header.ts,
                    codec: Codec::Pcmu,
                    payload: pkt.slice_ref(p.payload),
                }));
            }
            black_box(&out);
        }
    }
    let took = start.elapsed();
    if let Some((r, _)) = recorder {
        r.stop(1, 0);
    }
    took
}

/// A call of `CALL_SECONDS` monitored in `mode`: each of the three phones
/// sends 50 packets a second; returns the media task's time.
fn mixed_call(mode: MonitorMode) -> Duration {
    let t0 = Instant::now();
    let mut legs = [leg(t0), leg(t0), leg(t0)];
    // Caller and agent are bridged (each one's packets relayed to the
    // other while that one is not mixed); mixed legs play the mix.
    for (l, party) in legs.iter_mut().zip(Party::ALL) {
        if party == Party::Supervisor || mode.mixes_for(party) {
            l.play(Source::Mixed, t0);
        }
    }
    let from: [SocketAddr; 3] = [
        "10.0.0.1:4000".parse().unwrap(),
        "10.0.0.2:4000".parse().unwrap(),
        "10.0.0.3:4000".parse().unwrap(),
    ];
    let mut mixer = Mixer::new(mode);
    let payload: Vec<u8> = (0..160).map(|i| i as u8).collect();
    let mut out = Vec::with_capacity(1500);
    let mut frames = [[0i16; FRAME_SAMPLES]; 3];
    let mut encoded = Vec::with_capacity(FRAME_SAMPLES);
    let start = Instant::now();
    for i in 0..CALL_SECONDS * PACKETS_PER_SIDE {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        for (p, party) in Party::ALL.into_iter().enumerate() {
            let pkt = rtp(i as u16, i * 160, 7 + p as u32, &payload);
            let (head, tail) = legs.split_at_mut(1);
            let (me, other) = match party {
                Party::Caller => (&mut head[0], Some(&mut tail[0])),
                Party::Agent => (&mut tail[0], Some(&mut head[0])),
                Party::Supervisor => (&mut tail[1], None),
            };
            let Some(r) = me.on_rtp(from[p], &pkt, now) else {
                continue;
            };
            mixer.push(party, Codec::Pcmu, r.payload);
            if let Some(other) = other {
                if me.forward_to(&r, other, now, &mut out) {
                    black_box(&out);
                }
            }
        }
        mixer.mix_frame(&mut frames);
        for (l, frame) in legs.iter_mut().zip(&frames) {
            if l.is_mixed() {
                encoded.clear();
                encode_frame(frame, Codec::Pcmu, &mut encoded);
                if l.send_mixed(&encoded, now, &mut out) {
                    black_box(&out);
                }
            }
        }
    }
    start.elapsed()
}

/// The recorder thread's work for the same call, run inline.
fn writer_work(dir: &std::path::Path) -> Duration {
    let t0 = Instant::now();
    let file = std::fs::File::create(dir.join("call.wav")).expect("file");
    let mut wav = WavWriter::new(BufWriter::new(file), 2).expect("wav");
    let mut align = StereoAligner::new(t0);
    let payload: Vec<u8> = (0..160).map(|i| i as u8).collect();
    let (mut pcm, mut out) = (Vec::with_capacity(160), Vec::with_capacity(8192));
    let start = Instant::now();
    for i in 0..CALL_SECONDS * PACKETS_PER_SIDE {
        let arrival = t0 + Duration::from_millis(u64::from(i) * 20);
        for (ch, ssrc) in [(Channel::Left, 7), (Channel::Right, 9)] {
            pcm.clear();
            g711::decode_into(Codec::Pcmu, &payload, &mut pcm);
            align.push(ch, arrival, ssrc, i * 160, &pcm);
            out.clear();
            if align.drain_ready(&mut out) > 0 {
                wav.write(&out).expect("write");
            }
        }
    }
    out.clear();
    align.finish(&mut out);
    wav.write(&out).expect("write");
    wav.finish().expect("finish");
    start.elapsed()
}

fn per_call_second(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / f64::from(CALL_SECONDS)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::spawn().expect("recorder thread");
    // Warm up, then take the best of three of each.
    let best = |f: &mut dyn FnMut() -> Duration| (0..4).map(|_| f()).skip(1).min().unwrap();
    let relayed = best(&mut || media_task(None));
    let recorded = best(&mut || {
        let took = media_task(Some((&recorder, dir.path())));
        // Let the writer catch up so each run starts with an empty queue.
        std::thread::sleep(Duration::from_millis(200));
        took
    });
    let writer = best(&mut || writer_work(dir.path()));
    let mixed = [
        MonitorMode::Listen,
        MonitorMode::Whisper,
        MonitorMode::Barge,
    ]
    .map(|m| (m, best(&mut || mixed_call(m))));
    println!("media CPU per second of call ({CALL_SECONDS} s calls, 50 packets/s each way):");
    println!(
        "  relayed call:   {:8.1} us (media task)",
        per_call_second(relayed)
    );
    println!(
        "  recorded call:  {:8.1} us (media task) + {:.1} us (recorder thread)",
        per_call_second(recorded),
        per_call_second(writer)
    );
    println!(
        "  recording adds {:.1} us to the media task per call-second ({:+.0} %)",
        per_call_second(recorded) - per_call_second(relayed),
        (recorded.as_secs_f64() / relayed.as_secs_f64() - 1.0) * 100.0
    );
    for (mode, took) in mixed {
        println!(
            "  monitored ({:7}): {:8.1} us (media task; three phones, x{:.1} a relayed call)",
            mode.as_str(),
            per_call_second(took),
            took.as_secs_f64() / relayed.as_secs_f64()
        );
    }
}
