//! Transaction layer tests: no sockets, no sleeps, a virtual clock.

use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Method, Request, Response, SipMessage, StatusCode};

use super::*;
use crate::sip::headers::response_with_status;
use crate::sip::Peer;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn udp() -> Peer {
    Peer::udp("10.0.0.1:5060".parse().unwrap())
}

fn tcp() -> Peer {
    Peer::tcp("10.0.0.1:5060".parse().unwrap())
}

fn parse_req(s: &str) -> Request {
    match SipMessage::try_from(s).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("not a request"),
    }
}

/// A request as a peer would send it. `branch` is used verbatim.
fn request(method: Method, branch: &str, cseq: u32, to_tag: Option<&str>) -> Request {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    parse_req(&format!(
        "{method} sip:queue@acd.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:queue@acd.example.com>{to_tag}\r\n\
         Call-ID: call-1@10.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@10.0.0.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn invite(branch: &str) -> Request {
    request(Method::Invite, branch, 1, None)
}

fn answer(req: &Request, code: u16, to_tag: &str) -> Response {
    let mut resp = response_with_status(req, StatusCode::from(code), None);
    resp.to_header_mut()
        .unwrap()
        .mut_tag(rsip::param::Tag::new(to_tag))
        .unwrap();
    resp
}

fn drain(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn events(l: &mut TransactionLayer) -> Vec<TxEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn status(t: &Transmit) -> Option<u16> {
    match &t.wire.msg() {
        SipMessage::Response(r) => Some(r.status_code.code()),
        SipMessage::Request(_) => None,
    }
}

fn method(t: &Transmit) -> Option<Method> {
    match &t.wire.msg() {
        SipMessage::Request(r) => Some(r.method),
        SipMessage::Response(_) => None,
    }
}

/// Run every timer up to `until`; returns each transmit with its offset
/// from `start`.
fn run_until(
    l: &mut TransactionLayer,
    start: Instant,
    until: Instant,
) -> Vec<(Duration, Transmit)> {
    let mut out = Vec::new();
    while let Some(at) = l.poll_timeout().filter(|&at| at <= until) {
        l.handle_timeout(at);
        out.extend(drain(l).into_iter().map(|t| (at - start, t)));
    }
    out
}

fn new_request_key(ev: Option<ServerEvent>) -> TxKey {
    match ev {
        Some(ServerEvent::NewRequest { key, .. }) => key,
        other => panic!("expected NewRequest, got {other:?}"),
    }
}

#[test]
fn server_invite_sends_100_at_once_and_reanswers_retransmissions() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let key = new_request_key(l.on_request(invite("z9hG4bKa"), udp(), t0));
    let sent = drain(&mut l);
    assert_eq!(sent.len(), 1);
    assert_eq!(status(&sent[0]), Some(100));
    assert_eq!(sent[0].to, udp());

    assert_eq!(l.on_request(invite("z9hG4bKa"), udp(), t0 + ms(100)), None);
    assert_eq!(
        drain(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![Some(100)]
    );

    l.send_response(&key, answer(&invite("z9hG4bKa"), 180, "b1"), t0 + ms(200))
        .unwrap();
    drain(&mut l);
    assert_eq!(l.on_request(invite("z9hG4bKa"), udp(), t0 + ms(300)), None);
    assert_eq!(
        drain(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![Some(180)]
    );
    assert_eq!(l.len(), 1);
}

#[test]
fn server_invite_486_retransmitted_on_g_until_ack_then_i_cleans_up() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("z9hG4bKb");
    let key = new_request_key(l.on_request(inv.clone(), udp(), t0));
    drain(&mut l);
    l.send_response(&key, answer(&inv, 486, "b1"), t0).unwrap();
    assert_eq!(status(&drain(&mut l)[0]), Some(486));

    let sent = run_until(&mut l, t0, t0 + ms(12_000));
    let times: Vec<_> = sent.iter().map(|(d, _)| d.as_millis()).collect();
    // G: T1, doubling, capped at T2.
    assert_eq!(times, vec![500, 1500, 3500, 7500, 11_500]);
    assert!(sent.iter().all(|(_, t)| status(t) == Some(486)));

    let ack = request(Method::Ack, "z9hG4bKb", 1, Some("b1"));
    assert_eq!(l.on_request(ack.clone(), udp(), t0 + ms(12_000)), None);
    // Retransmitted ACK absorbed; INVITE retransmission no longer answered.
    assert_eq!(l.on_request(ack, udp(), t0 + ms(12_100)), None);
    assert_eq!(l.on_request(inv, udp(), t0 + ms(12_200)), None);
    assert!(drain(&mut l).is_empty());
    assert!(run_until(&mut l, t0, t0 + ms(16_999)).is_empty());
    assert_eq!(l.len(), 1);
    // Timer I = T4 after the ACK.
    assert_eq!(l.poll_timeout(), Some(t0 + ms(17_000)));
    run_until(&mut l, t0, t0 + ms(17_000));
    assert_eq!(l.len(), 0);
    assert_eq!(l.poll_timeout(), None);
    assert!(events(&mut l).is_empty());
}

#[test]
fn a_rejection_is_sent_once_and_again_only_per_retransmitted_invite() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("z9hG4bKrej");
    let key = new_request_key(l.on_request(inv.clone(), udp(), t0));
    drain(&mut l);
    l.send_rejection(&key, answer(&inv, 404, "r1"), t0).unwrap();
    assert_eq!(status(&drain(&mut l)[0]), Some(404));
    // No timer G: nothing more unless the INVITE comes again.
    assert!(run_until(&mut l, t0, t0 + ms(10_000)).is_empty());
    assert_eq!(l.on_request(inv.clone(), udp(), t0 + ms(10_000)), None);
    let again = drain(&mut l);
    assert_eq!(again.len(), 1);
    assert_eq!(status(&again[0]), Some(404));
    // The ACK is absorbed; H still ends an unacknowledged one.
    let ack = request(Method::Ack, "z9hG4bKrej", 1, Some("r1"));
    assert_eq!(l.on_request(ack, udp(), t0 + ms(10_100)), None);
    let inv2 = invite("z9hG4bKrej2");
    let key2 = new_request_key(l.on_request(inv2.clone(), udp(), t0));
    drain(&mut l);
    l.send_rejection(&key2, answer(&inv2, 503, "r2"), t0)
        .unwrap();
    drain(&mut l);
    assert!(run_until(&mut l, t0, t0 + ms(31_999)).is_empty());
    run_until(&mut l, t0, t0 + ms(32_000));
    assert!(events(&mut l).contains(&TxEvent::Server(ServerEvent::Timeout { key: key2 })));
}

#[test]
fn server_invite_h_fires_when_ack_never_comes() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("z9hG4bKc");
    let key = new_request_key(l.on_request(inv.clone(), udp(), t0));
    l.send_response(&key, answer(&inv, 603, "b1"), t0).unwrap();
    run_until(&mut l, t0, t0 + ms(31_999));
    assert!(events(&mut l).is_empty());
    run_until(&mut l, t0, t0 + ms(32_000));
    assert_eq!(
        events(&mut l),
        vec![TxEvent::Server(ServerEvent::Timeout { key })]
    );
    assert_eq!(l.len(), 0);
}

#[test]
fn server_non_invite_retransmission_gets_same_final_and_j_cleans_up() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let opt = request(Method::Options, "z9hG4bKd", 5, None);
    let key = new_request_key(l.on_request(opt.clone(), udp(), t0));
    assert!(
        drain(&mut l).is_empty(),
        "no automatic response for non-INVITE"
    );
    // Retransmission in Trying: absorbed, nothing to re-send yet.
    assert_eq!(l.on_request(opt.clone(), udp(), t0 + ms(500)), None);
    assert!(drain(&mut l).is_empty());

    l.send_response(&key, answer(&opt, 200, "b1"), t0 + ms(600))
        .unwrap();
    assert_eq!(status(&drain(&mut l)[0]), Some(200));
    assert_eq!(l.on_request(opt.clone(), udp(), t0 + ms(1500)), None);
    assert_eq!(
        drain(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![Some(200)]
    );
    assert!(matches!(
        l.send_response(&key, answer(&opt, 500, "b1"), t0 + ms(1600)),
        Err(TxError::InvalidState(_))
    ));
    // J = 64*T1 after the final response.
    assert_eq!(l.poll_timeout(), Some(t0 + ms(600) + ms(32_000)));
    run_until(&mut l, t0, t0 + ms(40_000));
    assert_eq!(l.len(), 0);
    assert!(events(&mut l).is_empty());
}

#[test]
fn client_invite_a_doubles_and_b_times_out() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let key = l.send_request(invite("z9hG4bKe"), udp(), t0).unwrap();
    assert_eq!(method(&drain(&mut l)[0]), Some(Method::Invite));
    let sent = run_until(&mut l, t0, t0 + ms(40_000));
    let times: Vec<_> = sent.iter().map(|(d, _)| d.as_millis()).collect();
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15_500, 31_500]);
    assert!(sent.iter().all(|(_, t)| method(t) == Some(Method::Invite)));
    assert_eq!(
        events(&mut l),
        vec![TxEvent::Client(ClientEvent::Timeout { key })]
    );
    assert_eq!(l.len(), 0);
}

#[test]
fn client_invite_acks_486_with_same_branch_and_absorbs_retransmission() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("z9hG4bKf");
    let key = l.send_request(inv.clone(), udp(), t0).unwrap();
    drain(&mut l);

    let ringing = answer(&inv, 180, "b1");
    assert!(matches!(
        l.on_response(ringing, udp(), t0 + ms(100)),
        Some(ClientEvent::Response { .. })
    ));
    // A stopped by the 1xx.
    assert!(run_until(&mut l, t0, t0 + ms(5_000)).is_empty());

    let busy = answer(&inv, 486, "b1");
    let ev = l.on_response(busy.clone(), udp(), t0 + ms(5_000));
    assert_eq!(
        ev,
        Some(ClientEvent::Response {
            key: key.clone(),
            resp: busy.clone()
        })
    );
    let sent = drain(&mut l);
    assert_eq!(sent.len(), 1);
    let SipMessage::Request(ack) = &sent[0].wire.msg() else {
        panic!("ACK expected")
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        ack.transaction_id().unwrap().unwrap().to_string(),
        "z9hG4bKf"
    );
    assert_eq!(ack.cseq_header().unwrap().typed().unwrap().seq, 1);
    assert_eq!(
        ack.to_header().unwrap().tag().unwrap().unwrap().to_string(),
        "b1"
    );
    assert_eq!(ack.uri, inv.uri);

    assert_eq!(l.on_response(busy, udp(), t0 + ms(5_100)), None);
    assert_eq!(
        drain(&mut l).iter().map(method).collect::<Vec<_>>(),
        vec![Some(Method::Ack)]
    );
    run_until(&mut l, t0, t0 + ms(5_000) + TIMER_D);
    assert_eq!(l.len(), 0);
    assert!(events(&mut l).is_empty());
}

#[test]
fn client_invite_2xx_passes_up_and_retransmissions_are_stray() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("z9hG4bKg");
    let key = l.send_request(inv.clone(), udp(), t0).unwrap();
    drain(&mut l);
    let ok = answer(&inv, 200, "b1");
    assert_eq!(
        l.on_response(ok.clone(), udp(), t0 + ms(50)),
        Some(ClientEvent::Response {
            key,
            resp: ok.clone()
        })
    );
    assert!(
        drain(&mut l).is_empty(),
        "the TU ACKs a 2xx, not the transaction"
    );
    assert_eq!(l.len(), 0);
    assert_eq!(
        l.on_response(ok.clone(), udp(), t0 + ms(550)),
        Some(ClientEvent::Stray2xx {
            resp: ok,
            from: udp()
        })
    );
    // A stray non-2xx is dropped.
    assert_eq!(
        l.on_response(answer(&inv, 486, "b1"), udp(), t0 + ms(600)),
        None
    );
}

#[test]
fn client_non_invite_e_capped_at_t2_and_f_times_out() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let bye = request(Method::Bye, "z9hG4bKh", 2, Some("b1"));
    let key = l.send_request(bye, udp(), t0).unwrap();
    drain(&mut l);
    let sent = run_until(&mut l, t0, t0 + ms(40_000));
    let times: Vec<_> = sent.iter().map(|(d, _)| d.as_millis()).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(
        events(&mut l),
        vec![TxEvent::Client(ClientEvent::Timeout { key })]
    );
    assert_eq!(l.len(), 0);
}

#[test]
fn client_non_invite_final_absorbs_retransmissions_and_k_cleans_up() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let bye = request(Method::Bye, "z9hG4bKi", 2, Some("b1"));
    l.send_request(bye.clone(), udp(), t0).unwrap();
    let ok = answer(&bye, 200, "b1");
    assert!(l.on_response(ok.clone(), udp(), t0 + ms(10)).is_some());
    assert_eq!(l.on_response(ok, udp(), t0 + ms(20)), None);
    assert_eq!(l.poll_timeout(), Some(t0 + ms(10) + T4));
    run_until(&mut l, t0, t0 + ms(10) + T4);
    assert_eq!(l.len(), 0);
}

#[test]
fn tcp_has_no_retransmissions_and_zero_wait_timers() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    // Server INVITE: 486, no G; ACK ends it at once (I = 0).
    let inv = invite("z9hG4bKj");
    let key = new_request_key(l.on_request(inv.clone(), tcp(), t0));
    l.send_response(&key, answer(&inv, 486, "b1"), t0).unwrap();
    drain(&mut l);
    assert_eq!(l.poll_timeout(), Some(t0 + ms(32_000)), "only H is armed");
    l.on_request(
        request(Method::Ack, "z9hG4bKj", 1, Some("b1")),
        tcp(),
        t0 + ms(10),
    );
    assert_eq!(l.len(), 0);

    // Server non-INVITE: J = 0.
    let opt = request(Method::Options, "z9hG4bKk", 1, None);
    let key = new_request_key(l.on_request(opt.clone(), tcp(), t0));
    l.send_response(&key, answer(&opt, 200, "b1"), t0).unwrap();
    assert_eq!(l.len(), 0);

    // Client INVITE and non-INVITE: no A/E, only B/F.
    let ckey = l.send_request(invite("z9hG4bKl"), tcp(), t0).unwrap();
    l.send_request(request(Method::Options, "z9hG4bKm", 1, None), tcp(), t0)
        .unwrap();
    drain(&mut l);
    assert!(run_until(&mut l, t0, t0 + ms(31_999)).is_empty());
    run_until(&mut l, t0, t0 + ms(32_000));
    assert_eq!(events(&mut l).len(), 2);
    assert_eq!(l.len(), 0);

    // Client INVITE 486 over TCP: ACK sent, D = 0.
    let inv = invite("z9hG4bKn");
    l.send_request(inv.clone(), tcp(), t0).unwrap();
    drain(&mut l);
    l.on_response(answer(&inv, 486, "b1"), tcp(), t0);
    assert_eq!(
        drain(&mut l).iter().map(method).collect::<Vec<_>>(),
        vec![Some(Method::Ack)]
    );
    assert_eq!(l.len(), 0);
    let _ = ckey;
}

#[test]
fn cancel_matches_pending_invite() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("z9hG4bKo");
    let invite_key = new_request_key(l.on_request(inv.clone(), udp(), t0));
    drain(&mut l);
    let cancel = request(Method::Cancel, "z9hG4bKo", 1, None);
    let Some(ServerEvent::Cancel {
        invite_key: ik,
        cancel_key,
        invite_answered,
        ..
    }) = l.on_request(cancel.clone(), udp(), t0 + ms(100))
    else {
        panic!("expected Cancel")
    };
    assert_eq!(ik, invite_key);
    assert!(!invite_answered);
    assert_eq!(cancel_key.method(), Method::Cancel);
    l.send_response(&cancel_key, answer(&cancel, 200, "b1"), t0 + ms(100))
        .unwrap();
    l.send_response(&invite_key, answer(&inv, 487, "b1"), t0 + ms(100))
        .unwrap();
    assert_eq!(
        drain(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![Some(200), Some(487)]
    );
    // CANCEL retransmission re-answered with 200, not passed up.
    assert_eq!(l.on_request(cancel, udp(), t0 + ms(200)), None);
    assert_eq!(
        drain(&mut l).iter().map(status).collect::<Vec<_>>(),
        vec![Some(200)]
    );
    l.on_request(
        request(Method::Ack, "z9hG4bKo", 1, Some("b1")),
        udp(),
        t0 + ms(300),
    );
    run_until(&mut l, t0, t0 + ms(60_000));
    assert_eq!(l.len(), 0);

    // A CANCEL matching nothing is a plain new request (TU answers 481).
    let stray = request(Method::Cancel, "z9hG4bKzz", 1, None);
    let key = new_request_key(l.on_request(stray.clone(), udp(), t0));
    l.send_response(&key, answer(&stray, 481, "b1"), t0)
        .unwrap();
    assert_eq!(status(&drain(&mut l)[0]), Some(481));
}

#[test]
fn ack_for_2xx_passes_through_and_stops_2xx_retransmission() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("z9hG4bKp");
    let key = new_request_key(l.on_request(inv.clone(), udp(), t0));
    l.send_response(&key, answer(&inv, 200, "b1"), t0 + ms(10))
        .unwrap();
    drain(&mut l);
    assert_eq!(l.pending_2xx(), 1);
    // Retransmitted INVITE after the 2xx is absorbed, not a second call.
    assert_eq!(l.on_request(inv.clone(), udp(), t0 + ms(20)), None);
    let resent = run_until(&mut l, t0, t0 + ms(600));
    assert_eq!(
        resent.iter().map(|(_, t)| status(t)).collect::<Vec<_>>(),
        vec![Some(200)]
    );

    let ack = request(Method::Ack, "z9hG4bKq", 1, Some("b1"));
    let Some(ServerEvent::Ack { req, from }) = l.on_request(ack.clone(), udp(), t0 + ms(700))
    else {
        panic!("ACK for 2xx must pass up")
    };
    assert_eq!(req, ack);
    assert_eq!(from, udp());
    assert_eq!(l.pending_2xx(), 0);
    let later = run_until(&mut l, t0, t0 + ms(60_000));
    assert!(later.is_empty(), "no 2xx after the ACK");
    assert_eq!(l.len(), 0);
    assert!(events(&mut l).is_empty());
}

#[test]
fn unacked_2xx_doubles_to_t2_then_reports_ack_timeout() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("z9hG4bKr");
    let key = new_request_key(l.on_request(inv.clone(), udp(), t0));
    l.send_response(&key, answer(&inv, 200, "b1"), t0).unwrap();
    drain(&mut l);
    let sent = run_until(&mut l, t0, t0 + ms(40_000));
    let times: Vec<_> = sent.iter().map(|(d, _)| d.as_millis()).collect();
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(
        events(&mut l),
        vec![TxEvent::Server(ServerEvent::AckTimeout {
            call_id: "call-1@10.0.0.1".into(),
            cseq: 1,
            tag: Some("b1".into()),
        })]
    );
    assert_eq!(l.len(), 0);
    assert_eq!(l.pending_2xx(), 0);
}

#[test]
fn rfc2543_requests_match_without_magic_cookie() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let inv = invite("old1");
    let key = new_request_key(l.on_request(inv.clone(), udp(), t0));
    drain(&mut l);
    assert_eq!(l.on_request(inv.clone(), udp(), t0 + ms(100)), None);
    l.send_response(&key, answer(&inv, 486, "b1"), t0 + ms(200))
        .unwrap();
    drain(&mut l);
    // The ACK has the same Via and our To tag; it must hit the transaction.
    assert_eq!(
        l.on_request(
            request(Method::Ack, "old1", 1, Some("b1")),
            udp(),
            t0 + ms(300)
        ),
        None
    );
    assert!(
        run_until(&mut l, t0, t0 + ms(1000)).is_empty(),
        "G stopped by the ACK"
    );
    // A different CSeq is a different transaction.
    let next = request(Method::Invite, "old1", 2, None);
    assert!(matches!(
        l.on_request(next, udp(), t0),
        Some(ServerEvent::NewRequest { .. })
    ));
}

#[test]
fn malformed_and_invalid_inputs_are_errors_not_panics() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let mut no_via = invite("z9hG4bKs");
    no_via
        .headers
        .retain(|h| !matches!(h, rsip::Header::Via(_)));
    assert_eq!(l.on_request(no_via.clone(), udp(), t0), None);
    assert!(matches!(
        l.send_request(no_via, udp(), t0),
        Err(TxError::MissingHeader("Via"))
    ));
    let ack = request(Method::Ack, "z9hG4bKt", 1, None);
    assert!(matches!(
        l.send_request(ack, udp(), t0),
        Err(TxError::AckNotTransactional)
    ));
    let k = l.send_request(invite("z9hG4bKu"), udp(), t0).unwrap();
    assert!(matches!(
        l.send_request(invite("z9hG4bKu"), udp(), t0),
        Err(TxError::Duplicate)
    ));
    assert!(matches!(
        l.send_response(&k, answer(&invite("z9hG4bKu"), 200, "x"), t0),
        Err(TxError::UnknownTransaction)
    ));
}

#[test]
fn build_cancel_copies_invite_identity() {
    let inv = invite("z9hG4bKv");
    let c = build_cancel(&inv).unwrap();
    assert_eq!(c.method, Method::Cancel);
    assert_eq!(c.transaction_id().unwrap(), inv.transaction_id().unwrap());
    assert_eq!(c.cseq_header().unwrap().typed().unwrap().seq, 1);
    assert_eq!(
        c.cseq_header().unwrap().typed().unwrap().method,
        Method::Cancel
    );
    assert!(new_branch().starts_with(MAGIC_COOKIE));
    assert_ne!(new_branch(), new_branch());
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        /// The peer (re)sends request i.
        Send(usize),
        /// The TU answers request i with this status.
        Answer(usize, u16),
        /// The peer ACKs request i's final response.
        Ack(usize),
        Advance(u64),
    }

    const N: usize = 4;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..N).prop_map(Op::Send),
            2 => (0..N, proptest::sample::select(vec![180u16, 200, 486])).prop_map(|(i, c)| Op::Answer(i, c)),
            1 => (0..N).prop_map(Op::Ack),
            2 => (0u64..5_000).prop_map(Op::Advance),
        ]
    }

    fn req_for(i: usize) -> Request {
        // Two INVITEs, two non-INVITEs, each its own branch.
        let m = if i % 2 == 0 {
            Method::Invite
        } else {
            Method::Options
        };
        request(m, &format!("z9hG4bKp{i}"), 1, None)
    }

    proptest! {
        #[test]
        fn one_new_request_per_transaction_and_table_empties(
            ops in proptest::collection::vec(op(), 0..60),
            reliable in any::<bool>(),
        ) {
            let peer = if reliable { tcp() } else { udp() };
            let t0 = Instant::now();
            let mut now = t0;
            let mut l = TransactionLayer::new(TimerConfig::default());
            let mut first_sent: HashMap<usize, Instant> = HashMap::new();
            let mut keys: HashMap<usize, TxKey> = HashMap::new();
            let mut new_requests: HashMap<usize, usize> = HashMap::new();
            let mut finals: HashMap<usize, u16> = HashMap::new();
            let mut acked: HashMap<usize, bool> = HashMap::new();

            let feed = |l: &mut TransactionLayer, i: usize, req: Request, now: Instant,
                            keys: &mut HashMap<usize, TxKey>, new_requests: &mut HashMap<usize, usize>| {
                if let Some(ServerEvent::NewRequest { key, .. }) = l.on_request(req, peer, now) {
                    *new_requests.entry(i).or_default() += 1;
                    keys.insert(i, key);
                }
            };

            for op in ops {
                match op {
                    Op::Send(i) => {
                        let is_retransmission = first_sent.contains_key(&i);
                        let first = *first_sent.entry(i).or_insert(now);
                        // A real client stops retransmitting after 64*T1
                        // (timer B/F) or once it has ACKed, and never
                        // retransmits over a reliable transport.
                        let client_would_send = now < first + ms(32_000)
                            && !acked.get(&i).copied().unwrap_or(false)
                            && !(reliable && is_retransmission);
                        if client_would_send {
                            feed(&mut l, i, req_for(i), now, &mut keys, &mut new_requests);
                        }
                    }
                    Op::Answer(i, code) => {
                        if let Some(key) = keys.get(&i) {
                            if l.send_response(key, answer(&req_for(i), code, "b1"), now).is_ok()
                                && code >= 200
                            {
                                finals.insert(i, code);
                            }
                        }
                    }
                    Op::Ack(i) => {
                        if i % 2 == 0 && finals.contains_key(&i) {
                            let branch = if finals.get(&i) == Some(&200) {
                                format!("z9hG4bKack{i}")
                            } else {
                                format!("z9hG4bKp{i}")
                            };
                            let ev = l.on_request(request(Method::Ack, &branch, 1, Some("b1")), peer, now);
                            let is_new = matches!(ev, Some(ServerEvent::NewRequest { .. }));
                            prop_assert!(!is_new);
                            acked.insert(i, true);
                        }
                    }
                    Op::Advance(d) => {
                        now += ms(d);
                        while let Some(at) = l.poll_timeout().filter(|&at| at <= now) {
                            l.handle_timeout(at);
                        }
                    }
                }
                while l.poll_transmit().is_some() {}
                while l.poll_event().is_some() {}
            }

            for (i, n) in &new_requests {
                prop_assert_eq!(*n, 1, "request {} surfaced {} times", i, n);
            }
            // The TU finally answers everything still open; then time passes.
            for (i, key) in &keys {
                let _ = l.send_response(key, answer(&req_for(*i), 486, "b1"), now);
            }
            let mut steps = 0;
            while let Some(at) = l.poll_timeout() {
                l.handle_timeout(at);
                steps += 1;
                prop_assert!(steps < 1_000, "timers never settle");
            }
            prop_assert_eq!(l.len(), 0);
            prop_assert_eq!(l.pending_2xx(), 0);
        }
    }
}

#[test]
fn quoted_via_and_from_params_are_keyed_and_retransmissions_absorbed() {
    let t0 = Instant::now();
    let mut l = TransactionLayer::new(TimerConfig::default());
    let quoted = |branch: &str| {
        let mut r = invite(branch);
        r.headers
            .retain(|h| !matches!(h, rsip::Header::Via(_) | rsip::Header::From(_)));
        r.headers.push(
            rsip::headers::Via::new(format!(
                "SIP/2.0/UDP 10.0.0.1:5060;branch={branch};x=\"a;b=c\";rport"
            ))
            .into(),
        );
        r.headers.push(
            rsip::headers::From::new("\"A; \\\"B\\\"\" <sip:alice@example.com>;tag=a1;y=\"<z>\"")
                .into(),
        );
        r
    };
    assert!(matches!(
        l.on_request(quoted("z9hG4bKqv"), udp(), t0),
        Some(ServerEvent::NewRequest { .. })
    ));
    assert_eq!(l.on_request(quoted("z9hG4bKqv"), udp(), t0), None);
    // RFC 2543 peer (no magic cookie): keyed on the From tag behind the quotes.
    assert!(matches!(
        l.on_request(quoted("old1"), udp(), t0),
        Some(ServerEvent::NewRequest { .. })
    ));
    assert_eq!(l.on_request(quoted("old1"), udp(), t0), None);
}

#[test]
fn over_the_shared_bound_a_request_gets_a_stateless_503_and_keeps_nothing() {
    let t0 = Instant::now();
    let budget = std::sync::Arc::new(TxBudget::new(2));
    // Two shards' layers share one bound.
    let mut a = TransactionLayer::with_budget(TimerConfig::default(), budget.clone());
    let mut b = TransactionLayer::with_budget(TimerConfig::default(), budget.clone());
    new_request_key(a.on_request(invite("z9hG4bKcap1"), udp(), t0));
    let opts = request(Method::Options, "z9hG4bKcap2", 1, None);
    let okey = new_request_key(b.on_request(opts, udp(), t0));
    drain(&mut a);
    drain(&mut b);
    assert_eq!(budget.live(), 2);

    // The third, on either shard: 503 with Retry-After and a To tag, sent
    // once per (re)transmission, no transaction and no timer.
    let third = || invite("z9hG4bKcap3");
    for round in 0..2 {
        assert_eq!(a.on_request(third(), udp(), t0 + ms(round)), None);
        let sent = drain(&mut a);
        assert_eq!(sent.len(), 1, "round {round}");
        assert_eq!(status(&sent[0]), Some(503));
        let text = String::from_utf8_lossy(&sent[0].wire.bytes).into_owned();
        assert!(text.contains("Retry-After: 10\r\n"), "{text}");
        assert!(
            text.contains("To: <sip:queue@acd.example.com>;tag=sl"),
            "{text}"
        );
    }
    assert_eq!(a.servers(), 1);
    assert_eq!(budget.refused.load(std::sync::atomic::Ordering::Relaxed), 2);

    // A transaction that ends gives its place back.
    b.send_response(
        &okey,
        answer(&request(Method::Options, "z9hG4bKcap2", 1, None), 200, "o"),
        t0 + ms(5),
    )
    .unwrap();
    run_until(&mut b, t0, t0 + Duration::from_secs(40));
    assert_eq!(budget.live(), 1);
    new_request_key(a.on_request(third(), udp(), t0 + Duration::from_secs(40)));
    assert_eq!(budget.live(), 2);
    drop(a);
    assert_eq!(budget.live(), 0, "a dropped layer gives every place back");
}

#[test]
fn while_behind_a_new_invite_gets_a_stateless_503_and_requests_in_dialog_go_on() {
    let t0 = Instant::now();
    let budget = std::sync::Arc::new(TxBudget::default());
    let mut l = TransactionLayer::with_budget(TimerConfig::default(), budget.clone());
    l.set_behind(true);
    assert_eq!(l.on_request(invite("z9hG4bKshed1"), udp(), t0), None);
    let sent = drain(&mut l);
    assert_eq!(sent.len(), 1);
    assert_eq!(status(&sent[0]), Some(503));
    let text = String::from_utf8_lossy(&sent[0].wire.bytes).into_owned();
    assert!(text.contains("Retry-After: 10\r\n"), "{text}");
    assert_eq!(l.servers(), 0, "nothing kept");
    let shed = || budget.shed.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(shed(), 1);

    // A re-INVITE and a BYE belong to calls already up: handled.
    let reinvite = request(Method::Invite, "z9hG4bKshed2", 2, Some("up"));
    assert!(matches!(
        l.on_request(reinvite, udp(), t0),
        Some(ServerEvent::NewRequest { .. })
    ));
    let bye = request(Method::Bye, "z9hG4bKshed3", 3, Some("up"));
    assert!(matches!(
        l.on_request(bye, udp(), t0),
        Some(ServerEvent::NewRequest { .. })
    ));
    assert_eq!(shed(), 1);

    // Caught up: new calls are let in again.
    l.set_behind(false);
    assert!(matches!(
        l.on_request(invite("z9hG4bKshed4"), udp(), t0),
        Some(ServerEvent::NewRequest { .. })
    ));
    assert_eq!(shed(), 1);
}
