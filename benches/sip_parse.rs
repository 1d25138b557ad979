//! Parsing cost per message on the hot path, in ns per message:
//! `parse/*`: our `parse` (normalise + validate + build) of an INVITE with
//! SDP, its ACK and a BYE, against rsip alone on the INVITE;
//! `inbound/*`: the whole `Endpoint::handle_inbound` for what arrives again
//! in a call: a retransmitted INVITE (absorbed), a retransmitted ACK for
//! our 2xx, a retransmitted BYE (answered again from its transaction);
//! `in-dialog ACK/*`: what a first ACK of a known call costs, routed from
//! its peeked ids (`peek+check`: the bytes checked, nothing built) against
//! the whole parse it had before, alone and through `handle_inbound`
//! (`peek+route` against `full parse+route`: the same ACK in a layout
//! `peek_request` declines, which takes the whole parse);
//! `in-dialog BYE/*`: a BYE's lean build against its whole one;
//! `response_to 200`: building an answer from a parsed request.
//! Before the timings it prints the allocations (and bytes) of one `parse`
//! of each message and of one `serialize`, counted by a counting global
//! allocator: they do not depend on the load of the machine.

use std::alloc::System;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sipacd::endpoint::{Endpoint, Now};
use sipacd::sip::{headers, message, Peer};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations and bytes of one run of `f` (its result dropped inside).
fn allocs<T>(f: impl FnOnce() -> T) -> (usize, usize) {
    let region = Region::new(GLOBAL);
    drop(black_box(f()));
    let s = region.change();
    (s.allocations + s.reallocations, s.bytes_allocated)
}

const INVITE: &str = "INVITE sip:5000@acd.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKproxy1;received=198.51.100.1\r\n\
Max-Forwards: 69\r\n\
To: <sip:5000@acd.example.com>\r\n\
From: \"Alice Caller\" <sip:+15551234567@carrier.example.net>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.carrier.example.net\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:+15551234567@192.0.2.10:5060>\r\n\
Record-Route: <sip:198.51.100.1;lr>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: timer, replaces\r\n\
User-Agent: ExampleSBC/4.2\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 282\r\n\
\r\n\
v=0\r\n\
o=carrier 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=label:main-audio-stream-1\r\n\
a=x-extra:pad\r\n";

/// An in-dialog request of the INVITE's call (ACK or BYE), To tag `tag`.
fn in_dialog(method: &str, cseq: u32, tag: &str) -> Vec<u8> {
    format!(
        "{method} sip:+15551234567@192.0.2.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-{method}-77\r\n\
         Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKproxy-{method};received=198.51.100.1\r\n\
         Max-Forwards: 69\r\n\
         To: <sip:5000@acd.example.com>;tag={tag}\r\n\
         From: \"Alice Caller\" <sip:+15551234567@carrier.example.net>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.carrier.example.net\r\n\
         CSeq: {cseq} {method}\r\n\
         User-Agent: ExampleSBC/4.2\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

const CONFIG: &str = r#"
[server]
sip = ["udp:127.0.0.1:5060"]
advertise = "127.0.0.1"
rtp_ports = "20000-29999"
data_dir = "DATA"

[queues.support]

[[numbers]]
number = "5000"
to = "queue:support"
"#;

/// Drains what the endpoint wants to send; returns our To tag from a 200.
fn drain(ep: &mut Endpoint) -> Option<String> {
    let mut tag = None;
    while let Some((_, bytes)) = ep.poll_transmit() {
        if bytes.starts_with(b"SIP/2.0 200") {
            let text = String::from_utf8_lossy(&bytes);
            let to = text.lines().find(|l| l.starts_with("To:"))?;
            tag = to.split("tag=").nth(1).map(|t| t.trim().to_string());
        }
    }
    tag
}

fn bench(c: &mut Criterion) {
    let raw = INVITE.as_bytes();
    let ack = in_dialog("ACK", 314159, "bench");
    let bye = in_dialog("BYE", 314160, "bench");
    for m in [raw, &ack[..], &bye[..]] {
        assert!(message::parse(m).is_ok(), "bench message must parse");
    }
    println!("INVITE size: {} bytes", raw.len());
    for (name, m) in [("INVITE+SDP", raw), ("ACK", &ack[..]), ("BYE", &bye[..])] {
        let (n, bytes) = allocs(|| message::parse(m));
        println!("allocations per parse {name}: {n} ({bytes} bytes)");
    }
    let (n, bytes) = allocs(|| message::check(&bye).map(message::Checked::build_lean));
    println!("allocations per lean build BYE: {n} ({bytes} bytes)");
    let (n, bytes) = allocs(|| message::check(&ack).map(|_| ()));
    println!("allocations per check ACK (nothing built): {n} ({bytes} bytes)");
    if let Ok(msg) = message::parse(raw) {
        let (n, bytes) = allocs(|| message::serialize(&msg));
        println!("allocations per serialize INVITE+SDP: {n} ({bytes} bytes)");
    }

    let mut g = c.benchmark_group("parse");
    g.bench_function("INVITE+SDP", |b| b.iter(|| message::parse(black_box(raw))));
    g.bench_function("ACK", |b| b.iter(|| message::parse(black_box(&ack))));
    g.bench_function("BYE", |b| b.iter(|| message::parse(black_box(&bye))));
    g.bench_function("rsip alone INVITE+SDP", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(raw)))
    });
    g.finish();

    let mut g = c.benchmark_group("in-dialog ACK");
    g.bench_function("peek+check", |b| {
        b.iter(|| {
            let ids = message::peek_request(black_box(&ack));
            (ids.is_some(), message::check(black_box(&ack)).is_ok())
        })
    });
    g.bench_function("full parse", |b| b.iter(|| message::parse(black_box(&ack))));
    g.finish();
    let mut g = c.benchmark_group("in-dialog BYE");
    g.bench_function("lean build", |b| {
        b.iter(|| message::check(black_box(&bye)).map(message::Checked::build_lean))
    });
    g.bench_function("full parse", |b| b.iter(|| message::parse(black_box(&bye))));
    g.finish();

    inbound(c);

    let Ok(rsip::SipMessage::Request(req)) = message::parse(raw) else {
        return;
    };
    c.bench_function("response_to 200", |b| {
        b.iter(|| headers::response_to(black_box(&req), 200, "OK", Some("acdtag")))
    });
    c.bench_function("response_to 200 + serialize", |b| {
        b.iter(|| {
            let resp = headers::response_to(black_box(&req), 200, "OK", Some("acdtag"));
            message::serialize(&resp.into())
        })
    });
}

/// Retransmissions through a real endpoint. The clock stands still, so
/// the transactions they hit stay alive for the whole run.
fn inbound(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sipacd-parse-bench-{}", std::process::id()));
    let text = CONFIG.replace("DATA", dir.to_str().unwrap_or("/tmp"));
    let Ok(cfg) = sipacd::config::parse_str(&text, &dir.join("b.toml")) else {
        panic!("bench config must load");
    };
    let now = Now {
        mono: Instant::now(),
        wall: SystemTime::now(),
    };
    let mut ep = Endpoint::new(Arc::new(cfg), now);
    let phone = Peer::udp("192.0.2.10:5060".parse().expect("addr"));
    ep.handle_inbound(INVITE.as_bytes(), phone, now);
    let tag = drain(&mut ep).expect("the INVITE is answered with 200");
    let ack = in_dialog("ACK", 314159, &tag);
    ep.handle_inbound(&ack, phone, now);
    drain(&mut ep);

    let mut g = c.benchmark_group("inbound");
    g.bench_function("INVITE retransmission", |b| {
        b.iter(|| {
            ep.handle_inbound(black_box(INVITE.as_bytes()), phone, now);
            while ep.poll_transmit().is_some() {}
        })
    });
    g.bench_function("ACK retransmission", |b| {
        b.iter(|| {
            ep.handle_inbound(black_box(&ack), phone, now);
            while ep.poll_transmit().is_some() {}
        })
    });
    // An ACK of the confirmed call that is not a repeat (a branch of its
    // own): routed every time, by its ids or, in a layout peek declines
    // (LWS before a Via parameter), by its whole parse.
    let late_ack = String::from_utf8_lossy(&ack).replace("-ACK-77", "-ACK-78");
    let peekable = late_ack.into_bytes();
    let declined = String::from_utf8_lossy(&peekable)
        .replacen(":5060;rport;", ":5060 ;rport;", 1)
        .into_bytes();
    assert!(message::peek_request(&peekable).is_some());
    assert!(message::peek_request(&declined).is_none() && message::parse(&declined).is_ok());
    for (name, bytes) in [("peek+route", &peekable), ("full parse+route", &declined)] {
        let before = ep.builds();
        let (n, size) = allocs(|| ep.handle_inbound(bytes, phone, now));
        let after = ep.builds();
        println!(
            "in-dialog ACK {name}: built {} whole, {} from ids; {n} allocations ({size} bytes)",
            after.full - before.full,
            after.ids_only - before.ids_only
        );
        g.bench_function(format!("in-dialog ACK: {name}"), |b| {
            b.iter(|| {
                ep.handle_inbound(black_box(bytes), phone, now);
                while ep.poll_transmit().is_some() {}
            })
        });
    }
    let bye = in_dialog("BYE", 314160, &tag);
    ep.handle_inbound(&bye, phone, now);
    while ep.poll_transmit().is_some() {}
    g.bench_function("BYE retransmission", |b| {
        b.iter(|| {
            ep.handle_inbound(black_box(&bye), phone, now);
            while ep.poll_transmit().is_some() {}
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
