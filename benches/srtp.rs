//! What SRTP costs per packet on this machine, next to the plain relay it
//! is added to: one 20 ms PCMU packet (160 bytes of payload) protected and
//! unprotected (AES_CM_128_HMAC_SHA1_80 and _32), and the relay between
//! an SRTP leg and a plain one in both directions (decrypt then relay;
//! relay then encrypt). Criterion prints time and throughput (elements =
//! packets) for each; the plain relay is `plain_relay`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sipacd::media::crypto_attr::{CryptoAttr, SrtpKeys, Suite};
use sipacd::media::srtp::SrtpLeg;
use sipacd::media::{Codec, Leg, LegParams, PacerConfig, Source};

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    v.extend_from_slice(&0xABCDu32.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn leg(now: Instant) -> Leg {
    let params = LegParams {
        codec: Codec::Pcmu,
        te_pt: Some(101),
    };
    let ids = PacerConfig {
        ssrc: 1,
        seq: 1,
        ts: 1,
        codec: Codec::Pcmu,
    };
    let mut l = Leg::with_ids(params, None, ids, now);
    l.set_inband_dtmf(false);
    l.play(Source::Relay, now);
    l
}

/// Our side of an SRTP leg and the phone's.
fn pair(suite: Suite) -> (SrtpLeg, SrtpLeg) {
    let a = CryptoAttr::generate(1, suite);
    let b = CryptoAttr::generate(1, suite);
    let ours = SrtpKeys {
        local: a.clone(),
        remote: b.clone(),
    };
    let phone = SrtpKeys {
        local: b,
        remote: a,
    };
    (
        SrtpLeg::new(ours).expect("keys"),
        SrtpLeg::new(phone).expect("keys"),
    )
}

fn srtp(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Elements(1));
    let from: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let payload: Vec<u8> = (0..160).map(|i| i as u8).collect();
    let now = Instant::now();

    let (mut a, mut b) = (leg(now), leg(now));
    let mut out = Vec::with_capacity(1500);
    let mut seq = 0u16;
    let mut pkt = rtp(0, &payload);
    g.bench_function("plain_relay", |bch| {
        bch.iter(|| {
            seq = seq.wrapping_add(1);
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            black_box(a.relay_to(&mut b, from, &pkt, now, &mut out))
        })
    });

    for (name, suite) in [
        ("protect_unprotect_sha1_80", Suite::AesCm128HmacSha1_80),
        ("protect_unprotect_sha1_32", Suite::AesCm128HmacSha1_32),
    ] {
        let (mut us, mut phone) = pair(suite);
        let mut seq = 0u16;
        let mut pkt = rtp(0, &payload);
        g.bench_function(name, |bch| {
            bch.iter(|| {
                seq = seq.wrapping_add(1);
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                let wire = phone.protect_rtp(&pkt).expect("protect");
                black_box(us.unprotect_rtp(&wire).is_ok())
            })
        });
    }

    // SRTP agent -> plain caller: authenticate, decrypt, relay.
    let (mut us, mut phone) = pair(Suite::AesCm128HmacSha1_80);
    let (mut a, mut b) = (leg(now), leg(now));
    let mut seq = 0u16;
    g.bench_function("relay_from_srtp_leg", |bch| {
        bch.iter_batched(
            || {
                seq = seq.wrapping_add(1);
                phone.protect_rtp(&rtp(seq, &payload)).expect("protect")
            },
            |wire| {
                let plain = us.unprotect_rtp(&wire).expect("authentic");
                black_box(a.relay_to(&mut b, from, &plain, now, &mut out))
            },
            BatchSize::SmallInput,
        )
    });

    // Plain caller -> SRTP agent: relay, encrypt, authenticate.
    let (mut us, _) = pair(Suite::AesCm128HmacSha1_80);
    let (mut a, mut b) = (leg(now), leg(now));
    let mut seq = 0u16;
    let mut pkt = rtp(0, &payload);
    g.bench_function("relay_to_srtp_leg", |bch| {
        bch.iter(|| {
            seq = seq.wrapping_add(1);
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            a.relay_to(&mut b, from, &pkt, now, &mut out);
            black_box(us.protect_rtp(&out))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = srtp
}
criterion_main!(benches);
