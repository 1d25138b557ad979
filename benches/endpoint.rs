//! Handling a typical INVITE end to end inside the sans-IO endpoint: parse,
//! transaction, number lookup, SDP answer, 100 and 200 serialised, the
//! caller queued (a routing decision); then the ACK and BYE that finish the
//! call (another). Prints criterion's time per call.
//!
//! `sharded/N`: the same calls through N shards sharing one router, one
//! thread each (as the daemon runs one shard per tokio worker), each shard
//! fed calls whose Call-IDs hash to it. `elem/s` = calls per second across
//! the shards: how the signalling side scales with workers.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sipacd::endpoint::{shard_of_call_id, Endpoint, Now, Shared};
use sipacd::sip::Peer;

const CONFIG: &str = r#"
[server]
sip = ["udp:127.0.0.1:5060"]
advertise = "127.0.0.1"
rtp_ports = "20000-29999"
max_calls = 100000
data_dir = "DATA"

[queues.support]

[[numbers]]
number = "1500"
to = "queue:support"
"#;

fn msg(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

/// One call through `ep`, whose Call-ID is `bench-{i}@127.0.0.1`.
fn one_call(ep: &mut Endpoint, i: u64, phone: Peer, now: &impl Fn() -> Now) {
    let mut tag = None;
    ep.handle_inbound(&invite(i), phone, now());
    while let Some((_, bytes)) = ep.poll_transmit() {
        if bytes.starts_with(b"SIP/2.0 200") {
            tag = to_tag(&bytes);
        }
    }
    let tag = tag.expect("answered");
    ep.handle_inbound(&in_dialog("ACK", i, &tag, 1), phone, now());
    ep.handle_inbound(&in_dialog("BYE", i, &tag, 2), phone, now());
    while ep.poll_transmit().is_some() {}
    while ep.poll_media().is_some() {}
    while ep.poll_event(now()).is_some() {}
    while ep.poll_foreign().is_some() {}
}

fn invite(i: u64) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";
    let mut m = msg(&format!(
        "INVITE sip:1500@127.0.0.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-inv-{i};rport\n\
         Max-Forwards: 70\n\
         From: \"Caller\" <sip:+6221555{i}@127.0.0.1>;tag=from{i}\n\
         To: <sip:1500@127.0.0.1>\n\
         Call-ID: bench-{i}@127.0.0.1\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:caller@127.0.0.1:5070>\n\
         User-Agent: bench\n\
         Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\n\
         Content-Type: application/sdp\n\
         Content-Length: {}\n\n",
        sdp.len()
    ));
    m.extend_from_slice(sdp.as_bytes());
    m
}

fn in_dialog(method: &str, i: u64, tag: &str, cseq: u32) -> Vec<u8> {
    msg(&format!(
        "{method} sip:1500@127.0.0.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{method}-{i};rport\n\
         Max-Forwards: 70\n\
         From: \"Caller\" <sip:+6221555{i}@127.0.0.1>;tag=from{i}\n\
         To: <sip:1500@127.0.0.1>;tag={tag}\n\
         Call-ID: bench-{i}@127.0.0.1\n\
         CSeq: {cseq} {method}\n\
         Content-Length: 0\n\n"
    ))
}

fn to_tag(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let to = text.lines().find(|l| l.starts_with("To:"))?;
    Some(to.split("tag=").nth(1)?.trim().to_string())
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sipacd-bench-{}", std::process::id()));
    let text = CONFIG.replace("DATA", dir.to_str().unwrap_or("/tmp"));
    let cfg = sipacd::config::parse_str(&text, &dir.join("b.toml")).expect("bench config");
    let now = || Now {
        mono: Instant::now(),
        wall: SystemTime::now(),
    };
    let mut ep = Endpoint::new(Arc::new(cfg), now());
    let phone = Peer::udp("127.0.0.1:5070".parse().expect("addr"));
    let mut g = c.benchmark_group("endpoint");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("invite_200_ack_bye", |b| {
        b.iter(|| {
            i += 1;
            one_call(&mut ep, i, phone, &now);
        })
    });
    g.finish();

    let cfg = Arc::new(ep.config().as_ref().clone());
    drop(ep);
    let mut g = c.benchmark_group("sharded");
    for n in [1usize, 2] {
        let mut shards = Shared::endpoints(&cfg, n, now());
        // Call numbers per shard, so each shard only gets its own calls.
        let mut next: Vec<u64> = vec![0; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for (k, (ep, seq)) in shards.iter_mut().zip(next.iter_mut()).enumerate() {
                        s.spawn(move || {
                            for _ in 0..iters {
                                *seq += 1;
                                while shard_of_call_id(&format!("bench-{seq}@127.0.0.1"), n) != k {
                                    *seq += 1;
                                }
                                one_call(ep, *seq, phone, &now);
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
