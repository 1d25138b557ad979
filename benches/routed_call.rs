//! One whole routed call through the sans-IO endpoint, no sockets: the
//! caller's INVITE is answered and queued, the router offers it to an
//! agent, the agent's phone answers (200, our ACK), the caller hangs up
//! (BYE, 200, our BYE to the agent, its 200). With 100, 10,000 and 100,000
//! registered agents (registered through the endpoint, REGISTER with
//! digest, at setup); the cost of a call should not depend on how many
//! agents there are (aim: 100,000 within 1.25x of 100).
//!
//! A virtual clock moves 1 ms per call (1,000 calls/s) and the endpoint's
//! timers run as they fall due, so finished transactions are swept and the
//! once-a-second housekeeping is paid for as a daemon pays for it.
//!
//! A counting global allocator counts what the endpoint allocates (only
//! inside its own calls, not the bench's message building): at the end it
//! prints allocations and bytes per call next to the time per call.
//! `ROUTED_CALL_AGENTS="100 1000"` picks other agent counts.

use std::alloc::System;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use md5::{Digest, Md5};
use sipacd::endpoint::{Endpoint, Now};
use sipacd::sip::Peer;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const DOMAIN: &str = "bench.local";
const CALLER: &str = "127.0.0.1:5070";
const PHONES: &str = "127.0.0.1:5080";

/// The configuration text: one queue served by `agents` agents.
fn config(agents: usize, data: &str) -> String {
    let mut text = format!(
        "[server]\n\
         sip = [\"udp:127.0.0.1:5060\"]\n\
         advertise = \"127.0.0.1\"\n\
         domain = \"{DOMAIN}\"\n\
         rtp_ports = \"20000-59999\"\n\
         max_calls = 100000\n\
         data_dir = \"{data}\"\n\n\
         [queues.support]\n\
         skills = {{ support = 1 }}\n\
         strategy = \"longest_idle\"\n\
         wrapup_s = 0\n\n\
         [[numbers]]\n\
         number = \"1500\"\n\
         to = \"queue:support\"\n"
    );
    for i in 0..agents {
        text.push_str(&format!(
            "\n[agents.a{i:06}]\npassword = \"pw{i}\"\nskills = {{ support = 5 }}\n"
        ));
    }
    text
}

/// Allocations the endpoint made, summed over the measured calls.
#[derive(Default, Clone, Copy)]
struct Allocs {
    count: u64,
    bytes: u64,
}

/// The endpoint, its clock, and the allocations counted inside it.
struct Bench {
    ep: Endpoint,
    now: Now,
    allocs: Allocs,
    caller: Peer,
    phones: Peer,
    calls: u64,
}

impl Bench {
    /// Runs `f` on the endpoint and counts what it allocates.
    fn counted<T>(&mut self, f: impl FnOnce(&mut Endpoint, Now) -> T) -> T {
        let region = Region::new(GLOBAL);
        let out = f(&mut self.ep, self.now);
        let s = region.change();
        self.allocs.count += (s.allocations + s.reallocations) as u64;
        self.allocs.bytes += s.bytes_allocated as u64;
        out
    }

    /// Feeds `msg` from `from` and returns what the endpoint sent.
    fn send(&mut self, msg: &str, from: Peer) -> Vec<(Peer, String)> {
        self.counted(|ep, now| ep.handle_inbound(msg.as_bytes(), from, now));
        self.drain()
    }

    fn drain(&mut self) -> Vec<(Peer, String)> {
        let mut out = Vec::new();
        while let Some((to, bytes)) = self.counted(|ep, _| ep.poll_transmit()) {
            out.push((to, String::from_utf8_lossy(&bytes).into_owned()));
        }
        out
    }

    /// Everything else the endpoint hands its driver, consumed.
    fn drain_side(&mut self) {
        self.counted(|ep, now| {
            while ep.poll_media().is_some() {}
            while ep.poll_event(now).is_some() {}
            while ep.poll_foreign().is_some() {}
            ep.drain_tally(|_| {});
        });
    }

    /// Moves the clock on and runs the timers that fell due.
    fn tick(&mut self, d: Duration) {
        self.now.mono += d;
        self.now.wall += d;
        let due = self.ep.poll_timeout().is_some_and(|t| t <= self.now.mono);
        if due {
            self.counted(|ep, now| ep.handle_timeout(now));
            // Retransmissions of nothing we wait for: none are expected,
            // but whatever the timers sent is consumed.
            self.drain();
        }
    }

    /// One whole routed call. Panics if any step goes another way.
    fn call(&mut self) {
        self.calls += 1;
        let i = self.calls;
        self.tick(Duration::from_millis(1));
        let out = self.send(&invite(i), self.caller);
        let ok = find(&out, self.caller, "SIP/2.0 200").expect("caller answered");
        let tag = param(header(ok, "To").expect("To"), "tag").expect("our tag");
        let out = self.send(&in_dialog("ACK", i, tag, 1), self.caller);
        let offer = find(&out, self.phones, "INVITE ").expect("offered to an agent");
        let answer = agent_answer(offer, 200, &format!("ag{i}"), AGENT_SDP);
        let out = self.send(&answer, self.phones);
        find(&out, self.phones, "ACK ").expect("our ACK to the agent");
        let out = self.send(&in_dialog("BYE", i, tag, 2), self.caller);
        find(&out, self.caller, "SIP/2.0 200").expect("200 to the caller's BYE");
        let bye = find(&out, self.phones, "BYE ").expect("BYE to the agent");
        let ok = agent_answer(bye, 200, "", "");
        self.send(&ok, self.phones);
        self.drain_side();
    }
}

/// Registers every agent (REGISTER, 401, REGISTER with the digest, 200).
fn register_all(b: &mut Bench, agents: usize) {
    for i in 0..agents {
        let user = format!("a{i:06}");
        let out = b.send(&register(&user, 1, None), b.phones);
        let challenge = find(&out, b.phones, "SIP/2.0 401").expect("challenged");
        let www = header(challenge, "WWW-Authenticate").expect("challenge");
        let auth = authorization(&user, &format!("pw{i}"), www);
        let out = b.send(&register(&user, 2, Some(&auth)), b.phones);
        find(&out, b.phones, "SIP/2.0 200").expect("registered");
        b.drain_side();
    }
}

fn register(user: &str, cseq: u32, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PHONES};branch=z9hG4bK-reg-{user}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{DOMAIN}>;tag=r{user}\r\n\
         To: <sip:{user}@{DOMAIN}>\r\n\
         Call-ID: reg-{user}@127.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{PHONES}>\r\n\
         Expires: 3600\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
}

/// RFC 2617 digest answer (MD5, qop=auth) to `www`.
fn authorization(user: &str, password: &str, www: &str) -> String {
    let www = www.trim_start_matches("Digest").trim_start();
    let get = |name: &str| param(www, name).map(|v| v.trim_matches('"').to_string());
    let realm = get("realm").expect("realm");
    let nonce = get("nonce").expect("nonce");
    let opaque = get("opaque");
    let md5 = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let uri = format!("sip:{DOMAIN}");
    let ha1 = md5(format!("{user}:{realm}:{password}"));
    let ha2 = md5(format!("REGISTER:{uri}"));
    let (nc, cnonce) = ("00000001", "bench");
    let response = md5(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let opaque = opaque
        .map(|o| format!(", opaque=\"{o}\""))
        .unwrap_or_default();
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\"{opaque}"
    )
}

fn invite(i: u64) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    format!(
        "INVITE sip:1500@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-inv-{i};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:+6221555{i}@127.0.0.1>;tag=from{i}\r\n\
         To: <sip:1500@127.0.0.1>\r\n\
         Call-ID: routed-{i}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{CALLER}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn in_dialog(method: &str, i: u64, tag: &str, cseq: u32) -> String {
    format!(
        "{method} sip:1500@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{method}-{i};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:+6221555{i}@127.0.0.1>;tag=from{i}\r\n\
         To: <sip:1500@127.0.0.1>;tag={tag}\r\n\
         Call-ID: routed-{i}@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

const AGENT_SDP: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// The agent phone's `code` answer to `req` (our INVITE or BYE).
fn agent_answer(req: &str, code: u16, tag: &str, body: &str) -> String {
    let line = |name: &str| header(req, name).unwrap_or_default();
    let to = line("To");
    let to = if to.contains("tag=") || tag.is_empty() {
        to.to_string()
    } else {
        format!("{to};tag={tag}")
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "SIP/2.0 {code} OK\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Contact: <sip:agent@{PHONES}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        line("Via"),
        line("From"),
        line("Call-ID"),
        line("CSeq"),
        body.len()
    )
}

/// The first message sent to `to` that starts with `start`.
fn find<'a>(out: &'a [(Peer, String)], to: Peer, start: &str) -> Option<&'a str> {
    out.iter()
        .find(|(p, m)| *p == to && m.starts_with(start))
        .map(|(_, m)| m.as_str())
}

/// The value of header `name` (first occurrence, headers only).
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

/// `name=value` in a header value (`;tag=x`, `nonce="y"`).
fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value
        .split([';', ','])
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn setup(agents: usize, dir: &std::path::Path) -> Bench {
    let data = dir.join(format!("data-{agents}"));
    let text = config(agents, data.to_str().unwrap_or("/tmp"));
    let cfg = sipacd::config::parse_str(&text, &dir.join("bench.toml")).expect("bench config");
    let now = Now {
        mono: Instant::now(),
        wall: SystemTime::now(),
    };
    let peer = |a: &str| Peer::udp(a.parse::<SocketAddr>().expect("addr"));
    let mut b = Bench {
        ep: Endpoint::new(Arc::new(cfg), now),
        now,
        allocs: Allocs::default(),
        caller: peer(CALLER),
        phones: peer(PHONES),
        calls: 0,
    };
    let t = Instant::now();
    register_all(&mut b, agents);
    println!(
        "routed_call: {agents} agents registered in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    b
}

/// Per agent count: (ns per call, allocations per call, bytes per call).
type Figures = Mutex<BTreeMap<usize, (f64, f64, f64)>>;

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sipacd-routed-bench-{}", std::process::id()));
    let counts: Vec<usize> = std::env::var("ROUTED_CALL_AGENTS")
        .ok()
        .map(|s| {
            s.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![100, 10_000, 100_000]);
    let figs: Figures = Mutex::new(BTreeMap::new());
    let mut g = c.benchmark_group("routed_call");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    for &n in &counts {
        let mut b = setup(n, &dir);
        // Warm up the tables (transactions, ports) to their steady size.
        for _ in 0..2000 {
            b.call();
        }
        let mut best = f64::MAX;
        let (mut calls, mut allocs) = (0u64, Allocs::default());
        g.bench_function(BenchmarkId::from_parameter(n), |bn| {
            bn.iter_custom(|iters| {
                let before = b.allocs;
                let start = Instant::now();
                for _ in 0..iters {
                    b.call();
                }
                let took = start.elapsed();
                calls += iters;
                allocs.count += b.allocs.count - before.count;
                allocs.bytes += b.allocs.bytes - before.bytes;
                if iters >= 100 {
                    best = best.min(took.as_nanos() as f64 / iters as f64);
                }
                took
            })
        });
        if let Ok(mut f) = figs.lock() {
            let per = |x: u64| x as f64 / calls.max(1) as f64;
            f.insert(n, (best, per(allocs.count), per(allocs.bytes)));
        }
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
    let Ok(f) = figs.lock() else { return };
    println!("\nrouted_call: one whole routed call, best run; allocations inside the endpoint");
    for (n, (ns, a, bytes)) in f.iter() {
        println!(
            "  {n:>7} agents: {:>7.1} µs per call, {a:>6.1} allocations ({bytes:>7.0} bytes) per call",
            ns / 1e3
        );
    }
    if let (Some((lo_n, lo)), Some((hi_n, hi))) = (f.iter().next(), f.iter().next_back()) {
        println!(
            "  {hi_n}/{lo_n} agents: time {:.2}x, allocations {:.2}x (aim: time <= 1.25x)",
            hi.0 / lo.0,
            hi.1 / lo.1.max(f64::MIN_POSITIVE)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
