//! A leg's two UDP sockets (RTP and the RTCP port above it) with their
//! reader tasks, and the pairs kept open after their call for the next
//! leg on the same port.
//!
//! Binding a pair for every call costs four syscalls per socket (socket,
//! bind, the epoll registration, close) plus two reader tasks: about a
//! sixth of the daemon's CPU on short IVR calls. A pair whose leg closed
//! is parked instead, its readers kept and told there is no leg; the port
//! pool hands recycled pairs out again first (`media::ports`), so the next
//! leg on that port skips all of it. The pool's probe asks [`IdlePorts`]:
//! a parked pair is ours, not "in use by another process".

use ahash::{AHashMap as HashMap, AHashSet as HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::endpoint::LegId;
use crate::metrics::{Metrics, ReasonLabel};

/// Parked pairs kept at most (two descriptors and two idle reader tasks
/// each, ~6 KiB). The daemon lowers it so that parked and open pairs
/// together stay within the descriptors it set aside for RTP
/// (`tcp_policy::tcp_budget`).
pub const MAX_PARKED: usize = 8192;

/// No leg: what a parked pair's readers see (leg ids start above 0).
const NO_LEG: LegId = 0;

/// A received datagram and where it came from.
pub struct Packet {
    pub leg: LegId,
    pub bytes: Bytes,
    pub from: SocketAddr,
    /// Received on the leg's RTCP port (else its RTP port).
    pub rtcp_port: bool,
}

/// RTP ports whose pair is parked here: the port pool's probe takes them
/// as free to use.
#[derive(Clone, Default)]
pub struct IdlePorts(Arc<Mutex<HashSet<u16>>>);

impl IdlePorts {
    pub fn contains(&self, port: u16) -> bool {
        self.lock().contains(&port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u16>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A leg's sockets and readers.
pub struct SocketPair {
    pub sock: Arc<UdpSocket>,
    /// None if the RTCP port could not be bound: RTCP then goes from the
    /// RTP port, the call does not suffer.
    pub rtcp_sock: Option<Arc<UdpSocket>>,
    readers: Vec<JoinHandle<()>>,
    /// The leg the readers deliver to.
    leg: Arc<AtomicU64>,
}

impl Drop for SocketPair {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

/// Where new pairs are bound and where their readers deliver.
pub struct Binder {
    pub ip: IpAddr,
    pub packets: mpsc::Sender<Packet>,
    pub metrics: Arc<Metrics>,
}

impl Binder {
    /// Binds `port` and the RTCP port above it for `leg`. Err: the RTP
    /// port cannot be bound (a failed RTCP bind only loses the RTCP port).
    pub async fn bind(&self, port: u16, leg: LegId) -> std::io::Result<SocketPair> {
        let sock = Arc::new(UdpSocket::bind(SocketAddr::new(self.ip, port)).await?);
        let cell = Arc::new(AtomicU64::new(leg));
        let mut readers = vec![self.reader(&sock, &cell, false)];
        let rtcp_addr = SocketAddr::new(self.ip, port.saturating_add(1));
        let rtcp_sock = match UdpSocket::bind(rtcp_addr).await {
            Ok(s) => {
                let s = Arc::new(s);
                readers.push(self.reader(&s, &cell, true));
                Some(s)
            }
            Err(e) => {
                tracing::warn!(leg, port = port.saturating_add(1), error = %e, "cannot bind RTCP port");
                None
            }
        };
        Ok(SocketPair {
            sock,
            rtcp_sock,
            readers,
            leg: cell,
        })
    }

    fn reader(&self, sock: &Arc<UdpSocket>, leg: &Arc<AtomicU64>, rtcp: bool) -> JoinHandle<()> {
        tokio::spawn(read_loop(
            leg.clone(),
            sock.clone(),
            rtcp,
            self.packets.clone(),
            self.metrics.clone(),
        ))
    }
}

/// Pairs whose legs have closed, by RTP port.
pub struct Parked {
    /// Each with the order it was parked in.
    pairs: HashMap<u16, (u64, SocketPair)>,
    /// Ports by parking order: the newest is let go first.
    order: std::collections::BTreeMap<u64, u16>,
    next: u64,
    idle: IdlePorts,
    max: usize,
}

impl Parked {
    pub fn new(idle: IdlePorts, max: usize) -> Parked {
        Parked {
            pairs: HashMap::new(),
            order: std::collections::BTreeMap::new(),
            next: 0,
            idle,
            max,
        }
    }

    /// The parked pair of `port`, now delivering to `leg`. What reached
    /// it while parked (late packets of the last call) is thrown away
    /// first, so the new leg cannot latch onto the old peer.
    pub fn take(&mut self, port: u16, leg: LegId) -> Option<SocketPair> {
        let (seq, pair) = self.pairs.remove(&port)?;
        self.order.remove(&seq);
        self.idle.lock().remove(&port);
        drain(&pair.sock);
        if let Some(s) = &pair.rtcp_sock {
            drain(s);
        }
        pair.leg.store(leg, Ordering::Release);
        Some(pair)
    }

    /// Keeps `pair` for the next leg on `port`. At the limit the pair is
    /// closed instead: the pool hands out the longest-released pairs first,
    /// so the ones already parked are those wanted next.
    pub fn park(&mut self, port: u16, pair: SocketPair) {
        pair.leg.store(NO_LEG, Ordering::Release);
        if self.pairs.len() >= self.max {
            return;
        }
        let seq = self.next;
        self.next += 1;
        if let Some((old, _)) = self.pairs.insert(port, (seq, pair)) {
            self.order.remove(&old);
        }
        self.order.insert(seq, port);
        self.idle.lock().insert(port);
    }

    /// Closes the pair parked last, making room for a new one: the pool
    /// hands out the longest-released pairs first, so it is the one wanted
    /// last. False when none is parked.
    pub fn evict_newest(&mut self) -> bool {
        let Some((_, port)) = self.order.pop_last() else {
            return false;
        };
        self.idle.lock().remove(&port);
        // Dropping it aborts its readers and closes its sockets.
        self.pairs.remove(&port).is_some()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Reads what is waiting on `sock` and drops it.
fn drain(sock: &UdpSocket) {
    let mut buf = [0u8; 64];
    let mut n = 0u32;
    // Bounded: a peer still blasting the port cannot keep us here.
    while n < 4096 && sock.try_recv_from(&mut buf).is_ok() {
        n += 1;
    }
}

async fn read_loop(
    leg: Arc<AtomicU64>,
    sock: Arc<UdpSocket>,
    rtcp_port: bool,
    tx: mpsc::Sender<Packet>,
    metrics: Arc<Metrics>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let leg = leg.load(Ordering::Acquire);
                if leg == NO_LEG {
                    drop_rtp(&metrics, "no_leg");
                    continue;
                }
                let p = Packet {
                    leg,
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    from,
                    rtcp_port,
                };
                if tx.try_send(p).is_err() {
                    drop_rtp(&metrics, "overload");
                    debug!(leg, "media task busy: packet dropped");
                }
            }
            Err(e) => debug!(error = %e, "rtp recv error"),
        }
    }
}

fn drop_rtp(m: &Metrics, reason: &'static str) {
    m.rtp_dropped
        .get_or_create(&ReasonLabel { reason })
        .inc_by(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binder() -> (Binder, mpsc::Receiver<Packet>) {
        let (tx, rx) = mpsc::channel(64);
        let b = Binder {
            ip: "127.0.0.1".parse().expect("ip"),
            packets: tx,
            metrics: Metrics::new(),
        };
        (b, rx)
    }

    fn free_port() -> u16 {
        // An even port whose pair is free now (bound and let go).
        loop {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let p = s.local_addr().expect("addr").port();
            drop(s);
            if p % 2 == 0 && p < u16::MAX && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            {
                return p;
            }
        }
    }

    async fn recv(rx: &mut mpsc::Receiver<Packet>) -> Option<Packet> {
        tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn a_parked_pair_serves_the_next_leg_and_drops_what_came_between() {
        let (b, mut rx) = binder();
        let port = free_port();
        let pair = b.bind(port, 7).await.expect("bind");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        peer.send_to(b"first", ("127.0.0.1", port)).expect("send");
        let p = recv(&mut rx).await.expect("delivered");
        assert_eq!((p.leg, &p.bytes[..]), (7, &b"first"[..]));

        let idle = IdlePorts::default();
        let mut parked = Parked::new(idle.clone(), 8);
        parked.park(port, pair);
        assert!(idle.contains(port), "the probe sees the parked port");
        // Sent while parked: dropped by the reader (no leg) or by `take`.
        peer.send_to(b"late", ("127.0.0.1", port)).expect("send");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;

        let pair = parked.take(port, 9).expect("parked");
        assert!(!idle.contains(port), "in use again");
        assert!(parked.is_empty());
        peer.send_to(b"second", ("127.0.0.1", port)).expect("send");
        let p = recv(&mut rx).await.expect("delivered");
        assert_eq!(
            (p.leg, &p.bytes[..]),
            (9, &b"second"[..]),
            "nothing of the old call"
        );
        drop(pair);
    }

    /// Three pairs on distinct free ports, parked in order (at most `max`
    /// kept), and their ports.
    async fn three_parked(idle: &IdlePorts, max: usize) -> (Parked, Vec<u16>) {
        let (b, _rx) = binder();
        let mut parked = Parked::new(idle.clone(), max);
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 3 {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        for (i, &p) in ports.iter().enumerate() {
            let pair = b.bind(p, i as u64 + 1).await.expect("bind");
            parked.park(p, pair);
        }
        (parked, ports)
    }

    #[tokio::test]
    async fn at_the_limit_a_pair_is_closed_instead_of_parked() {
        let idle = IdlePorts::default();
        let (mut parked, ports) = three_parked(&idle, 2).await;
        assert_eq!(parked.len(), 2);
        assert!(
            idle.contains(ports[0]) && idle.contains(ports[1]),
            "the first two kept"
        );
        assert!(!idle.contains(ports[2]), "the third closed");
        // Closed means the port is free for anyone again (once the
        // runtime has dropped the aborted readers, which hold the socket).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(std::net::UdpSocket::bind(("127.0.0.1", ports[2])).is_ok());
        assert!(parked.take(ports[2], 5).is_none());
        assert!(parked.take(ports[0], 5).is_some());
    }

    #[tokio::test]
    async fn room_is_made_by_closing_the_pair_parked_last() {
        let idle = IdlePorts::default();
        let (mut parked, ports) = three_parked(&idle, 8).await;
        // The middle one is taken and parked again: now it is the newest.
        let again = parked.take(ports[1], 7).expect("parked");
        parked.park(ports[1], again);
        assert!(parked.evict_newest());
        assert_eq!(parked.len(), 2);
        assert!(!idle.contains(ports[1]), "the pair parked last is closed");
        assert!(idle.contains(ports[0]) && idle.contains(ports[2]));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(std::net::UdpSocket::bind(("127.0.0.1", ports[1])).is_ok());
        assert!(parked.evict_newest() && parked.evict_newest());
        assert!(!parked.evict_newest(), "none left");
        assert!(parked.is_empty());
    }
}
