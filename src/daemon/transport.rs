//! Sockets. UDP listeners and TCP listeners/connections feed every inbound
//! message into one channel; outbound messages go back out of the socket
//! (UDP) or connection (TCP) the peer is reached on. No SIP logic here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

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
    pub tcp_in: AtomicU64,
    pub send_errors: AtomicU64,
    pub framing_errors: AtomicU64,
    /// Connections closed at once because of `MAX_TCP_CONNECTIONS`.
    pub tcp_refused: AtomicU64,
}

/// Bound sockets plus the table of live TCP connections.
#[derive(Clone)]
pub struct Transports {
    udp: Arc<Vec<Arc<UdpSocket>>>,
    /// Which UDP socket a peer last reached us on, so replies leave from the
    /// same address (NAT bindings, RFC 3581).
    udp_route: Arc<DashMap<SocketAddr, usize>>,
    tcp_conns: Arc<DashMap<SocketAddr, (u64, mpsc::Sender<Bytes>)>>,
    /// One queue per signalling shard; a message goes to the shard that
    /// owns its Call-ID.
    inbound: Arc<Vec<mpsc::Sender<Inbound>>>,
    pub stats: Arc<TransportStats>,
}

/// Largest UDP datagram we read; SIP over UDP stays well under it.
const UDP_BUF: usize = 65_535;
/// Per-connection outbound queue; a peer that does not read is dropped.
const TCP_QUEUE: usize = 256;
/// Open TCP connections we accept at most; more are closed at once, so a
/// flood of idle connections cannot exhaust file descriptors.
pub const MAX_TCP_CONNECTIONS: usize = 8192;

impl Transports {
    /// Binds every listener; fails if any address cannot be bound. Inbound
    /// messages of every socket will be sent to `inbound[shard]`, by Call-ID.
    pub async fn bind(
        listeners: &[Listener],
        inbound: Vec<mpsc::Sender<Inbound>>,
    ) -> std::io::Result<(Transports, Vec<TcpListener>)> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for l in listeners {
            match l.transport {
                Transport::Udp => udp.push(Arc::new(UdpSocket::bind(l.addr).await?)),
                Transport::Tcp => tcp.push(TcpListener::bind(l.addr).await?),
            }
        }
        let t = Transports {
            udp: Arc::new(udp),
            udp_route: Arc::new(DashMap::new()),
            tcp_conns: Arc::new(DashMap::new()),
            inbound: Arc::new(inbound),
            stats: Arc::new(TransportStats::default()),
        };
        Ok((t, tcp))
    }

    /// Starts one reader task per socket; everything lands in `tx`.
    pub fn start(&self, tcp: Vec<TcpListener>) {
        for (idx, sock) in self.udp.iter().enumerate() {
            tokio::spawn(udp_reader(self.clone(), idx, sock.clone()));
        }
        for listener in tcp {
            tokio::spawn(tcp_acceptor(self.clone(), listener));
        }
    }

    /// Sends `bytes` to `to`. Errors are counted and logged, never fatal:
    /// SIP retransmission (UDP) or the peer's reconnect (TCP) recovers.
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
            Transport::Tcp => {
                let sender = self.tcp_conns.get(&to.addr).map(|s| s.1.clone());
                match sender {
                    Some(s) if s.try_send(bytes.clone()).is_ok() => {}
                    _ => {
                        // No live connection (or it is stuck): open one, as a
                        // UAC would (RFC 3261 §18.1.1).
                        if let Err(e) = self.connect_and_send(to.addr, bytes).await {
                            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                            debug!(%to, error = %e, "tcp send failed");
                        }
                    }
                }
            }
        }
    }

    async fn connect_and_send(&self, addr: SocketAddr, bytes: Bytes) -> std::io::Result<()> {
        let stream = TcpStream::connect(addr).await?;
        let tx = self.spawn_connection(stream, addr);
        tx.send(bytes)
            .await
            .map_err(|_| std::io::Error::other("connection closed"))
    }

    /// Registers a TCP connection and starts its reader and writer.
    fn spawn_connection(&self, stream: TcpStream, addr: SocketAddr) -> mpsc::Sender<Bytes> {
        static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(TCP_QUEUE);
        self.tcp_conns.insert(addr, (id, out_tx.clone()));
        let (mut rd, mut wr) = stream.into_split();
        // The writer ends when every sender is gone: the table's entry (removed
        // by the reader on close) and the reader's own handle for pongs.
        tokio::spawn(async move {
            while let Some(b) = out_rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let me = self.clone();
        let pong = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(4096);
            'read: loop {
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                loop {
                    match framing::next_frame(&mut buf) {
                        Ok(Some(Frame::Message(bytes))) => {
                            me.stats.tcp_in.fetch_add(1, Ordering::Relaxed);
                            let msg = Inbound {
                                bytes,
                                from: Peer::tcp(addr),
                            };
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
                            warn!(peer = %addr, error = %e, "closing TCP connection");
                            break 'read;
                        }
                    }
                }
            }
            // Forget the connection only if the entry is still this one.
            me.tcp_conns.remove_if(&addr, |_, (cid, _)| *cid == id);
        });
        out_tx
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
}

async fn udp_reader(t: Transports, idx: usize, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; UDP_BUF];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                t.stats.udp_in.fetch_add(1, Ordering::Relaxed);
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

async fn tcp_acceptor(t: Transports, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if t.tcp_conns.len() >= MAX_TCP_CONNECTIONS {
                    t.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
                    warn!(peer = %addr, "too many TCP connections: closed");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                t.spawn_connection(stream, addr);
            }
            Err(e) => {
                warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
