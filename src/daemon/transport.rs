//! Sockets. UDP listeners and TCP/TLS listeners/connections feed every
//! inbound message into one channel; outbound messages go back out of the
//! socket (UDP) or connection (TCP, TLS) the peer is reached on. No SIP
//! logic here. TLS connections are TCP connections with a handshake first
//! (`super::tls`): same framing, limits and timeouts, one table.
//!
//! Nothing here makes a signalling shard wait: a TCP connect runs on its
//! own task with a timeout while what is sent meanwhile waits in the
//! connection's bounded queue. TCP connections live under [`TcpPolicy`]
//! (limits per source and in all, message and idle timeouts).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::tcp_policy::{ConnClock, Expiry, TcpPolicy};
use super::tls::TlsAcceptors;
use crate::config::Listener;
use crate::sip::framing::{self, Frame};
use crate::sip::{Peer, Transport};

/// One message as it arrived.
#[derive(Debug)]
pub struct Inbound {
    pub bytes: Bytes,
    pub from: Peer,
}

/// Counters the admin API and tests read.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub udp_in: AtomicU64,
    /// The last datagram a UDP reader read had waited [`BEHIND_AFTER`] or
    /// more in the kernel's buffer (the shards, or the reader itself, are
    /// short of CPU). The shards turn new calls away meanwhile.
    pub udp_behind: AtomicBool,
    pub tcp_in: AtomicU64,
    pub send_errors: AtomicU64,
    pub framing_errors: AtomicU64,
    /// Connections closed at once: over `max_connections` in all.
    pub tcp_refused: AtomicU64,
    /// Connections closed at once: over `max_per_source` from one address.
    pub tcp_refused_per_source: AtomicU64,
    /// Connections closed by the message or idle timeouts.
    pub tcp_timed_out: AtomicU64,
    /// Outbound connects under way (a gauge).
    pub tcp_connecting: AtomicU64,
    /// Outbound connects that failed or timed out.
    pub tcp_connect_failures: AtomicU64,
    /// Messages dropped: queued for a connect that failed, or for a peer
    /// whose queue was full.
    pub tcp_dropped: AtomicU64,
    /// Open SIP TCP connections, both directions, TLS ones included (a
    /// gauge).
    pub tcp_open: AtomicU64,
    /// Messages received over TLS (counted apart from `tcp_in`).
    pub tls_in: AtomicU64,
    /// Accepted connections closed because their TLS handshake failed or
    /// did not end within the message timeout.
    pub tls_handshake_failures: AtomicU64,
    /// Messages dropped: for a TLS peer whose connection is gone (a TLS
    /// flow is never opened by us; the agent registers again).
    pub tls_no_flow: AtomicU64,
}

/// Whether a registration is reached over the TCP or TLS connection from
/// this peer (such a connection is kept however idle it is).
pub type KeepAlive = Arc<dyn Fn(Peer) -> bool + Send + Sync>;

/// Bound sockets plus the table of live TCP connections.
#[derive(Clone)]
pub struct Transports {
    udp: Arc<Vec<Arc<UdpSocket>>>,
    /// Which UDP socket a peer last reached us on, so replies leave from the
    /// same address (NAT bindings, RFC 3581).
    udp_route: Arc<DashMap<SocketAddr, usize>>,
    /// Open (or opening) connections by peer (TCP or TLS, and its
    /// address): their id and outbound queue. An agent's binding keeps the
    /// peer it registered from, so what is sent to it goes down this
    /// connection: the RFC 5626 flow.
    tcp_conns: Arc<DashMap<Peer, (u64, mpsc::Sender<Bytes>)>>,
    /// Accepted connections per source address.
    per_source: Arc<DashMap<IpAddr, usize>>,
    policy: Arc<TcpPolicy>,
    keep: Option<KeepAlive>,
    /// Told the peer of each closed connection a registration came over
    /// (its RFC 5626 flow is gone: the engine logs the agent out at once).
    closed: Option<mpsc::UnboundedSender<Peer>>,
    /// Per-source flood limits, asked before a message is parsed.
    gate: Option<Arc<crate::flood::FloodGate>>,
    /// The TLS server configuration new connections are accepted with
    /// (swapped by reload).
    tls: TlsAcceptors,
    /// One queue per signalling shard; a message goes to the shard that
    /// owns its Call-ID.
    inbound: Arc<Vec<mpsc::Sender<Inbound>>>,
    pub stats: Arc<TransportStats>,
}

/// Largest UDP datagram we read; SIP over UDP stays well under it.
const UDP_BUF: usize = 65_535;
/// Per-connection outbound queue (also what waits for a connect); a peer
/// that does not read loses what does not fit.
const TCP_QUEUE: usize = 256;

type Queue = (u64, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>);

fn new_queue() -> Queue {
    static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
    let (tx, rx) = mpsc::channel::<Bytes>(TCP_QUEUE);
    (NEXT_CONN.fetch_add(1, Ordering::Relaxed), tx, rx)
}

/// Counts an open connection (and, for accepted ones, its source's share)
/// until dropped.
pub(super) struct Slot {
    t: Transports,
    source: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.t.stats.tcp_open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.source {
            self.t.per_source.remove_if_mut(&ip, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
    }
}

impl Transports {
    /// Binds every listener; fails if any address cannot be bound. Inbound
    /// messages of every socket will be sent to `inbound[shard]`, by Call-ID.
    /// The stream listeners come back with their transport, for `start`.
    pub async fn bind(
        listeners: &[Listener],
        inbound: Vec<mpsc::Sender<Inbound>>,
    ) -> std::io::Result<(Transports, Vec<(Transport, TcpListener)>)> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for l in listeners {
            match l.transport {
                Transport::Udp => udp.push(Arc::new(super::udp_socket::bind(l.addr)?)),
                t => tcp.push((t, TcpListener::bind(l.addr).await?)),
            }
        }
        let t = Transports {
            udp: Arc::new(udp),
            udp_route: Arc::new(DashMap::new()),
            tcp_conns: Arc::new(DashMap::new()),
            per_source: Arc::new(DashMap::new()),
            policy: Arc::new(TcpPolicy::default()),
            keep: None,
            closed: None,
            gate: None,
            tls: TlsAcceptors::default(),
            inbound: Arc::new(inbound),
            stats: Arc::new(TransportStats::default()),
        };
        Ok((t, tcp))
    }

    /// Sets the TCP limits and the registrations check (before `start`).
    pub fn with_policy(mut self, policy: TcpPolicy, keep: Option<KeepAlive>) -> Transports {
        self.policy = Arc::new(policy);
        self.keep = keep;
        self
    }

    /// Where the peers of closed connections that carried a registration
    /// are sent (before `start`).
    pub fn with_close_notices(mut self, tx: mpsc::UnboundedSender<Peer>) -> Transports {
        self.closed = Some(tx);
        self
    }

    /// A connection to `peer` is gone: if a registration is reached over
    /// it, the engine is told.
    fn flow_closed(&self, peer: Peer) {
        let (Some(tx), Some(keep)) = (&self.closed, &self.keep) else {
            return;
        };
        if keep(peer) {
            let _ = tx.send(peer);
        }
    }

    /// Sets the flood limits (before `start`).
    pub fn with_flood_gate(mut self, gate: Arc<crate::flood::FloodGate>) -> Transports {
        self.gate = Some(gate);
        self
    }

    /// Whether a message from `ip` may be read (a blocked source's is
    /// dropped unparsed, counted by the gate).
    fn admit_message(&self, ip: IpAddr) -> bool {
        self.gate
            .as_ref()
            .is_none_or(|g| g.admit(ip, Instant::now()))
    }

    pub fn policy(&self) -> &TcpPolicy {
        &self.policy
    }

    /// Whether a connection to `peer` is open (TCP or TLS).
    pub fn connected(&self, peer: Peer) -> bool {
        self.tcp_conns.get(&peer).is_some_and(|c| !c.1.is_closed())
    }

    /// The TLS configuration holder (set at start, swapped by reload).
    pub fn tls(&self) -> &TlsAcceptors {
        &self.tls
    }

    /// Starts one reader task per socket; everything lands in `tx`.
    pub fn start(&self, tcp: Vec<(Transport, TcpListener)>) {
        for (idx, sock) in self.udp.iter().enumerate() {
            tokio::spawn(udp_reader(self.clone(), idx, sock.clone()));
        }
        for (transport, listener) in tcp {
            tokio::spawn(tcp_acceptor(self.clone(), listener, transport));
        }
    }

    /// Sends `bytes` to `to`. Errors are counted and logged, never fatal:
    /// SIP retransmission (UDP) or the peer's reconnect (TCP) recovers.
    /// Never waits for a TCP connect: that runs on its own task, and what
    /// is sent meanwhile waits in the connection's queue.
    pub async fn send(&self, to: Peer, bytes: Bytes) {
        match to.transport {
            Transport::Udp => {
                let idx = self.udp_route.get(&to.addr).map(|r| *r).unwrap_or(0);
                let Some(sock) = self.udp.get(idx).or_else(|| self.udp.first()) else {
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                if let Err(e) = sock.send_to(&bytes, to.addr).await {
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    debug!(%to, error = %e, "udp send failed");
                }
            }
            Transport::Tcp => self.send_tcp(to.addr, bytes),
            Transport::Tls => self.send_flow(to, bytes),
        }
    }

    /// Queues `bytes` on the live TLS connection of `to`. None open: the
    /// message is dropped (counted). We never open a TLS connection: a
    /// phone's flow is the connection it registered on (RFC 5626 §5.3), and
    /// a new one to its source port would reach nothing behind its NAT; it
    /// is reachable again when it registers again.
    fn send_flow(&self, to: Peer, bytes: Bytes) {
        let sent = match self.tcp_conns.get(&to) {
            Some(c) => c.1.try_send(bytes).is_ok(),
            None => false,
        };
        if !sent {
            self.stats.tls_no_flow.fetch_add(1, Ordering::Relaxed);
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            debug!(peer = %to, "no live TLS connection: message dropped");
        }
    }

    /// Queues `bytes` on the connection to `addr`, opening one (on its own
    /// task, as a UAC would, RFC 3261 §18.1.1) if there is none.
    fn send_tcp(&self, addr: SocketAddr, bytes: Bytes) {
        use dashmap::mapref::entry::Entry;
        use mpsc::error::TrySendError;
        // The usual case, under the map's read lock: a connection is there.
        let peer = Peer::tcp(addr);
        let sender = self.tcp_conns.get(&peer).map(|c| c.1.clone());
        let bytes = match sender {
            None => bytes,
            Some(tx) => match tx.try_send(bytes) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {
                    self.stats.tcp_dropped.fetch_add(1, Ordering::Relaxed);
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    debug!(peer = %addr, "tcp queue full: message dropped");
                    return;
                }
                Err(TrySendError::Closed(bytes)) => bytes,
            },
        };
        // None there, or it just ended: under the write lock, so two shards
        // sending at once open one connection, not two.
        let (bytes, id, tx, rx) = match self.tcp_conns.entry(peer) {
            Entry::Occupied(mut e) => match e.get().1.try_send(bytes) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {
                    self.stats.tcp_dropped.fetch_add(1, Ordering::Relaxed);
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    debug!(peer = %addr, "tcp queue full: message dropped");
                    return;
                }
                // That connection just ended: a new one takes its place.
                Err(TrySendError::Closed(bytes)) => {
                    let (id, tx, rx) = new_queue();
                    e.insert((id, tx.clone()));
                    (bytes, id, tx, rx)
                }
            },
            Entry::Vacant(v) => {
                let (id, tx, rx) = new_queue();
                v.insert((id, tx.clone()));
                (bytes, id, tx, rx)
            }
        };
        // The queue is new and empty: this cannot be full.
        let _ = tx.try_send(bytes);
        self.stats.tcp_connecting.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(self.clone().connect(addr, id, tx, rx));
    }

    /// Connects to `addr` within the policy's timeout (counted in
    /// `tcp_connecting` by the caller until it ends), then serves the
    /// connection; on failure drops what was queued for it (counted, one
    /// log line).
    async fn connect(
        self,
        addr: SocketAddr,
        id: u64,
        tx: mpsc::Sender<Bytes>,
        mut rx: mpsc::Receiver<Bytes>,
    ) {
        let res = tokio::time::timeout(self.policy.connect_timeout, TcpStream::connect(addr)).await;
        self.stats.tcp_connecting.fetch_sub(1, Ordering::Relaxed);
        let why = match res {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                self.stats.tcp_open.fetch_add(1, Ordering::Relaxed);
                let slot = Slot {
                    t: self.clone(),
                    source: None,
                };
                let clock = ConnClock::connected(Instant::now());
                let (rd, wr) = stream.into_split();
                let conn = Conn {
                    peer: Peer::tcp(addr),
                    id,
                    pong: tx,
                    clock,
                    slot,
                };
                return self.serve(rd, wr, rx, conn);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.policy.connect_timeout),
        };
        self.tcp_conns
            .remove_if(&Peer::tcp(addr), |_, (cid, _)| *cid == id);
        rx.close();
        let mut dropped = 0u64;
        while rx.try_recv().is_ok() {
            dropped += 1;
        }
        self.stats
            .tcp_connect_failures
            .fetch_add(1, Ordering::Relaxed);
        self.stats.tcp_dropped.fetch_add(dropped, Ordering::Relaxed);
        self.stats.send_errors.fetch_add(dropped, Ordering::Relaxed);
        warn!(peer = %addr, error = %why, dropped, "tcp connect failed: queued messages dropped");
    }

    /// Registers an accepted connection (its halves: a TCP stream's, or a
    /// TLS stream's once its handshake is done) and serves it. `clock`
    /// started at accept: a handshake's time counts against the first
    /// message's timeout.
    pub(super) fn accepted<R, W>(&self, rd: R, wr: W, peer: Peer, clock: ConnClock, slot: Slot)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (id, tx, rx) = new_queue();
        self.tcp_conns.insert(peer, (id, tx.clone()));
        let conn = Conn {
            peer,
            id,
            pong: tx,
            clock,
            slot,
        };
        self.serve(rd, wr, rx, conn);
    }

    /// Starts the writer and the reader of one connection; the reader
    /// enforces the policy's timeouts and forgets the connection at close.
    fn serve<R, W>(&self, mut rd: R, mut wr: W, mut out_rx: mpsc::Receiver<Bytes>, conn: Conn)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            peer,
            id,
            pong,
            mut clock,
            slot,
        } = conn;
        // The writer ends when every sender is gone: the table's entry (removed
        // by the reader on close) and the reader's own handle for pongs.
        tokio::spawn(async move {
            while let Some(b) = out_rx.recv().await {
                // flush: a TLS writer holds records until flushed.
                if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let me = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut buf = BytesMut::with_capacity(4096);
            'read: loop {
                let (at, why) = clock.deadline(&me.policy);
                let read = tokio::time::timeout_at(at.into(), rd.read_buf(&mut buf)).await;
                match read {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(_)) => {}
                    Err(_) => {
                        let now = Instant::now();
                        if why == Expiry::Idle && me.keep.as_ref().is_some_and(|k| k(peer)) {
                            clock.keep(now);
                            continue;
                        }
                        me.stats.tcp_timed_out.fetch_add(1, Ordering::Relaxed);
                        debug!(%peer, why = why.as_str(), "closing connection");
                        break;
                    }
                }
                let mut messages = 0;
                loop {
                    match framing::next_frame(&mut buf) {
                        Ok(Some(Frame::Message(bytes))) => {
                            messages += 1;
                            if !me.admit_message(peer.addr.ip()) {
                                continue;
                            }
                            let n = match peer.transport {
                                Transport::Tls => &me.stats.tls_in,
                                _ => &me.stats.tcp_in,
                            };
                            n.fetch_add(1, Ordering::Relaxed);
                            let msg = Inbound { bytes, from: peer };
                            if me.deliver(msg).await.is_err() {
                                break 'read;
                            }
                        }
                        Ok(Some(Frame::Ping)) => {
                            let _ = pong.try_send(Bytes::from_static(b"\r\n"));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            me.stats.framing_errors.fetch_add(1, Ordering::Relaxed);
                            warn!(%peer, error = %e, "closing connection");
                            break 'read;
                        }
                    }
                }
                let partial = buf.iter().any(|b| !matches!(b, b'\r' | b'\n'));
                clock.on_read(Instant::now(), messages, partial);
            }
            // Forget the connection only if the entry is still this one.
            if me
                .tcp_conns
                .remove_if(&peer, |_, (cid, _)| *cid == id)
                .is_some()
            {
                me.flow_closed(peer);
            }
        });
    }

    /// Hands `msg` to the shard owning its Call-ID (shard 0 if it has
    /// none: it is malformed and gets its 400 there). Err: that shard is
    /// gone (the daemon is stopping).
    async fn deliver(&self, msg: Inbound) -> Result<(), ()> {
        let n = self.inbound.len();
        let shard = crate::endpoint::raw_call_id(&msg.bytes)
            .map_or(0, |cid| crate::endpoint::shard_of_call_id(cid, n));
        match self.inbound.get(shard) {
            Some(tx) => tx.send(msg).await.map_err(drop),
            None => Err(()),
        }
    }

    /// Local address of the first UDP listener (tests and logs).
    pub fn udp_local_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// A slot for a connection accepted from `addr`, or why not.
    pub(super) fn admit(&self, addr: SocketAddr) -> Result<Slot, &'static str> {
        if let Some(g) = &self.gate {
            if g.is_blocked(addr.ip(), Instant::now()) {
                g.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return Err("source blocked for flooding");
            }
        }
        let open = self.stats.tcp_open.load(Ordering::Relaxed);
        if open >= self.policy.max_connections as u64 {
            self.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
            return Err("too many TCP connections");
        }
        {
            let mut n = self.per_source.entry(addr.ip()).or_insert(0);
            if *n >= self.policy.max_per_source {
                self.stats
                    .tcp_refused_per_source
                    .fetch_add(1, Ordering::Relaxed);
                return Err("too many TCP connections from one address");
            }
            *n += 1;
        }
        self.stats.tcp_open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            t: self.clone(),
            source: Some(addr.ip()),
        })
    }
}

/// How long a datagram may have waited in a SIP socket's buffer (the
/// kernel's receive stamp against the time it is read) before the daemon
/// counts as behind. A healthy daemon reads within a millisecond or so;
/// a busy one has stalls of tens of milliseconds that pass by themselves.
/// 100 ms is well under SIP's first retransmission (T1, 500 ms): the calls
/// let in are set up before their INVITEs are sent again, and those
/// repeats are what turn an overload into a collapse (the routed bench:
/// 250 ms let 3,200 calls/s reach retransmissions and the steps after it
/// fail; 100 ms held).
pub const BEHIND_AFTER: Duration = Duration::from_millis(100);

async fn udp_reader(t: Transports, idx: usize, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; UDP_BUF];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    loop {
        let read = || super::udp_socket::recv_stamped(&sock, &mut buf, &mut cmsg);
        let got = match sock.async_io(tokio::io::Interest::READABLE, read).await {
            Ok((n, from, waited)) => {
                let behind = waited.is_some_and(|w| w >= BEHIND_AFTER);
                if behind != t.stats.udp_behind.load(Ordering::Relaxed) {
                    t.stats.udp_behind.store(behind, Ordering::Relaxed);
                }
                Ok((n, from))
            }
            Err(e) => Err(e),
        };
        match got {
            Ok((n, from)) => {
                t.stats.udp_in.fetch_add(1, Ordering::Relaxed);
                if !t.admit_message(from.ip()) {
                    continue;
                }
                if t.udp.len() > 1 {
                    t.udp_route.insert(from, idx);
                }
                let bytes = Bytes::copy_from_slice(&buf[..n]);
                let msg = Inbound {
                    bytes,
                    from: Peer::udp(from),
                };
                // A stopped shard loses its messages; the socket keeps
                // serving the others until the daemon exits.
                let _ = t.deliver(msg).await;
            }
            // ICMP port unreachable surfaces here on some systems: not fatal.
            Err(e) => debug!(error = %e, "udp recv error"),
        }
    }
}

/// What one served connection is: its peer and table id, the handle its
/// reader answers pings with, its timeouts and its slot.
struct Conn {
    peer: Peer,
    id: u64,
    pong: mpsc::Sender<Bytes>,
    clock: ConnClock,
    slot: Slot,
}

async fn tcp_acceptor(t: Transports, listener: TcpListener, transport: Transport) {
    // Refusals are logged when they start and when they stop, not each.
    let mut refusing = false;
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => match t.admit(addr) {
                Ok(slot) => {
                    if refusing {
                        info!("accepting TCP connections again");
                        refusing = false;
                    }
                    let _ = stream.set_nodelay(true);
                    let clock = ConnClock::accepted(Instant::now());
                    if transport == Transport::Tls {
                        super::tls::accept(&t, stream, addr, clock, slot);
                    } else {
                        let (rd, wr) = stream.into_split();
                        t.accepted(rd, wr, Peer::tcp(addr), clock, slot);
                    }
                }
                Err(why) => {
                    if !refusing {
                        warn!(peer = %addr, limit = why, "TCP connection closed at once (logged once until one is accepted again)");
                        refusing = true;
                    }
                }
            },
            Err(e) => {
                if crate::media::out_of_fds(&e) {
                    warn!(error = %e, "tcp accept failed: out of file descriptors");
                } else {
                    warn!(error = %e, "tcp accept failed");
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A TCP listener that never accepts and whose accept queue is full:
    /// further connects to it get no answer (their SYNs are dropped), on
    /// loopback too. Returns it, its address and the sockets filling it.
    fn blackhole() -> (socket2::Socket, SocketAddr, Vec<std::net::TcpStream>) {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        s.listen(0).expect("listen");
        let addr = s
            .local_addr()
            .expect("addr")
            .as_socket()
            .expect("inet address");
        // Fill the accept queue: connects complete until it is full.
        let mut fill = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(c) => fill.push(c),
                Err(_) => break,
            }
        }
        (s, addr, fill)
    }

    async fn transports(policy: TcpPolicy) -> (Transports, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(16);
        let (t, _) = Transports::bind(&[], vec![tx]).await.expect("bind");
        (t.with_policy(policy, None), rx)
    }

    #[tokio::test]
    async fn a_send_to_a_peer_that_never_accepts_returns_at_once_and_is_dropped_later() {
        let (_hole, addr, _fill) = blackhole();
        let policy = TcpPolicy {
            connect_timeout: Duration::from_millis(300),
            ..TcpPolicy::default()
        };
        let (t, _rx) = transports(policy).await;
        // Three messages while the connect is pending: none waits for it.
        for _ in 0..3 {
            tokio::time::timeout(
                Duration::from_secs(5),
                t.send(Peer::tcp(addr), Bytes::from_static(b"OPTIONS\r\n\r\n")),
            )
            .await
            .expect("send must not wait for the connect");
        }
        assert_eq!(
            t.stats.tcp_connecting.load(Ordering::Relaxed),
            1,
            "one connect for all three"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while t.stats.tcp_connect_failures.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the connect never timed out");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(t.stats.tcp_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(t.stats.tcp_connecting.load(Ordering::Relaxed), 0);
        assert!(t.tcp_conns.is_empty(), "the failed connection is forgotten");
    }

    #[tokio::test]
    async fn messages_queued_while_connecting_go_out_once_connected() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (t, _rx) = transports(TcpPolicy::default()).await;
        t.send(Peer::tcp(addr), Bytes::from_static(b"one ")).await;
        t.send(Peer::tcp(addr), Bytes::from_static(b"two")).await;
        let (mut s, _) = l.accept().await.expect("accept");
        let mut got = vec![0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(&got, b"one two");
        assert_eq!(t.stats.tcp_dropped.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_message_for_a_tls_peer_without_its_connection_is_dropped_never_connected() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (t, _rx) = transports(TcpPolicy::default()).await;
        t.send(Peer::tls(addr), Bytes::from_static(b"OPTIONS\r\n\r\n"))
            .await;
        assert_eq!(t.stats.tls_no_flow.load(Ordering::Relaxed), 1);
        assert_eq!(t.stats.tcp_connecting.load(Ordering::Relaxed), 0);
        let accepted = tokio::time::timeout(Duration::from_millis(300), l.accept()).await;
        assert!(accepted.is_err(), "a connection was opened to the peer");
        assert!(t.tcp_conns.is_empty());
    }
}
