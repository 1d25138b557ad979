//! RTP engine costs on this machine: relayed packets per second through
//! `Leg::relay_to` (same codec, and PCMU -> PCMA transcoding), the cost of
//! pacing one music packet across N simultaneous held callers, in-band
//! DTMF detection per 20 ms frame, G.711 encoding by the segment
//! algorithm versus a 64 k lookup table, and the media task's timer turn
//! with 1,000 legs of which 10 play music (the rest bridged): sweeping
//! every leg (the old 5 ms tick) versus waking only the legs that are due.
//! Criterion prints time and throughput (elements = packets or samples)
//! for each.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sipacd::media::dtmf::InbandDetector;
use sipacd::media::g711;
use sipacd::media::{Codec, Deadlines, Leg, LegParams, PacerConfig, Prompt, Source};

fn rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&0xABCDu32.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn leg(codec: Codec, now: Instant) -> Leg {
    let params = LegParams {
        codec,
        te_pt: Some(101),
    };
    let mut l = Leg::with_ids(
        params,
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

fn relay(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));
    for (name, to_codec) in [("pcmu_to_pcmu", Codec::Pcmu), ("pcmu_to_pcma", Codec::Pcma)] {
        let now = Instant::now();
        let mut a = leg(Codec::Pcmu, now);
        let mut b = leg(to_codec, now);
        let from: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let payload: Vec<u8> = (0..160).map(|i| i as u8).collect();
        let mut pkt = rtp(0, 0, &payload);
        let mut out = Vec::with_capacity(1500);
        let mut seq = 0u16;
        g.bench_function(name, |bch| {
            bch.iter(|| {
                seq = seq.wrapping_add(1);
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                let ts = u32::from(seq) * 160;
                pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                black_box(a.relay_to(&mut b, from, &pkt, now, &mut out))
            })
        });
    }
    g.finish();
}

fn pacing(c: &mut Criterion) {
    let mut g = c.benchmark_group("pacing_music");
    let music = Prompt::from_linear(
        &(0..8000)
            .map(|i| ((i * 37) % 2000) as i16)
            .collect::<Vec<_>>(),
    );
    for n in [100usize, 2000] {
        let t0 = Instant::now();
        let mut legs: Vec<Leg> = (0..n)
            .map(|i| {
                let codec = if i % 2 == 0 { Codec::Pcmu } else { Codec::Pcma };
                let mut l = Leg::with_ids(
                    LegParams { codec, te_pt: None },
                    None,
                    PacerConfig::random(codec),
                    t0,
                );
                l.play(Source::prompt(music.clone(), true), t0);
                l
            })
            .collect();
        let mut out = Vec::with_capacity(1500);
        let mut now = t0;
        // One iteration = one 20 ms tick: every held caller gets a packet.
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |bch, _| {
            bch.iter(|| {
                let mut sent = 0;
                for l in legs.iter_mut() {
                    while l.poll_rtp(now, &mut out) {
                        sent += 1;
                        black_box(&out);
                    }
                }
                now += Duration::from_millis(20);
                sent
            })
        });
    }
    g.finish();
}

/// 1,000 legs: `music` of them playing a looped prompt, started 2 ms apart
/// (their frames fall due at different moments), the others bridged.
fn thousand_legs(music: usize, t0: Instant) -> Vec<Leg> {
    let tune = Prompt::from_linear(&(0..8000).map(|i| (i % 400) as i16).collect::<Vec<_>>());
    (0..1000)
        .map(|i| {
            let start = t0 + Duration::from_millis(2 * i as u64 % 20);
            let mut l = Leg::with_ids(
                LegParams {
                    codec: Codec::Pcmu,
                    te_pt: Some(101),
                },
                None,
                PacerConfig::random(Codec::Pcmu),
                start,
            );
            l.set_inband_dtmf(false);
            if i < music {
                l.play(Source::prompt(tune.clone(), true), start);
            } else {
                l.play(Source::Relay, start);
            }
            l
        })
        .collect()
}

/// What the media task does for one leg on its turn: timers, packets out,
/// the RTP timeout check, events. Returns packets written.
fn turn(l: &mut Leg, now: Instant, wall: SystemTime, timeout: Duration, out: &mut Vec<u8>) -> u32 {
    let mut n = 0;
    l.run_timers(now, wall, out, |_, p| {
        n += 1;
        black_box(p);
    });
    black_box(l.is_timed_out(now, timeout));
    while l.poll_event().is_some() {}
    n
}

fn tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("media_tick_1000_legs_10_due");
    // Far beyond any run's virtual time: the bridged legs keep their one
    // (timeout) entry in the heap throughout, as in a real call.
    let timeout = Duration::from_secs(1_000_000_000);
    let wall = SystemTime::now();
    let t0 = Instant::now();
    // Before: every 5 ms, every leg is looked at.
    let mut legs = thousand_legs(10, t0);
    let mut now = t0;
    g.bench_function("sweep_every_leg_per_5ms_tick", |b| {
        let mut out = Vec::with_capacity(1500);
        b.iter(|| {
            now += Duration::from_millis(5);
            legs.iter_mut()
                .map(|l| turn(l, now, wall, timeout, &mut out))
                .sum::<u32>()
        })
    });
    // After: the task sleeps until the earliest deadline and touches only
    // the legs due then (here one music leg per wake-up).
    let mut legs = thousand_legs(10, t0);
    let mut due: Deadlines<usize> = Deadlines::new();
    for (i, l) in legs.iter().enumerate() {
        due.set(i, l.next_deadline(Some(timeout)));
    }
    g.bench_function("due_legs_only_per_wakeup", |b| {
        let mut out = Vec::with_capacity(1500);
        b.iter(|| {
            let Some(now) = due.earliest() else {
                return 0;
            };
            let mut sent = 0;
            while let Some(i) = due.pop_due(now) {
                let l = &mut legs[i];
                sent += turn(l, now, wall, timeout, &mut out);
                let next = l.next_deadline(Some(timeout));
                due.set(i, next.filter(|&n| n > now));
            }
            sent
        })
    });
    g.finish();
}

fn inband(c: &mut Criterion) {
    let mut g = c.benchmark_group("inband_dtmf");
    g.throughput(Throughput::Elements(160));
    let frame: Vec<u8> = (0..160).map(|i| (i * 7) as u8).collect();
    let mut det = InbandDetector::new();
    g.bench_function("frame_20ms", |bch| {
        bch.iter(|| det.push_g711(Codec::Pcmu, black_box(&frame)))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("g711_encode");
    let samples: Vec<i16> = (0..8000)
        .map(|i| ((i * 7919) % 65536 - 32768) as i16)
        .collect();
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("ulaw_segment", |bch| {
        bch.iter(|| {
            samples
                .iter()
                .map(|&s| g711::linear_to_ulaw(s) as u32)
                .sum::<u32>()
        })
    });
    let table: Vec<u8> = (0..=u16::MAX)
        .map(|i| g711::linear_to_ulaw(i as i16))
        .collect();
    g.bench_function("ulaw_table_64k", |bch| {
        bch.iter(|| {
            samples
                .iter()
                .map(|&s| table[s as u16 as usize] as u32)
                .sum::<u32>()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = relay, pacing, inband, encode, tick
}
criterion_main!(benches);
