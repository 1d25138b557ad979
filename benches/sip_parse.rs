//! Parsing cost of a typical INVITE with SDP: our `parse` (normalise +
//! validate + rsip) against rsip alone, and building a 200 with `response_to`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sipacd::sip::{headers, message};

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

fn bench(c: &mut Criterion) {
    let raw = INVITE.as_bytes();
    assert!(message::parse(raw).is_ok(), "bench message must parse");
    println!("INVITE size: {} bytes", raw.len());

    c.bench_function("sipacd parse INVITE+SDP", |b| {
        b.iter(|| message::parse(black_box(raw)))
    });
    c.bench_function("rsip raw parse INVITE+SDP", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(raw)))
    });
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

criterion_group!(benches, bench);
criterion_main!(benches);
