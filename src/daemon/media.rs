//! The tokio side of media: one UDP socket per leg on its RTP port, a reader
//! task per socket, and one task that owns every leg and carries out the
//! endpoint's media commands: latch the peer's address (symmetric RTP),
//! relay packets between bridged legs, and report a leg that has gone
//! silent for `server.rtp_timeout_s`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::endpoint::{LegId, MediaCommand, MediaEvent};

/// A received RTP packet and where it came from.
struct Packet {
    leg: LegId,
    bytes: Bytes,
    from: SocketAddr,
}

struct Leg {
    sock: Arc<UdpSocket>,
    reader: JoinHandle<()>,
    /// Where we send: the SDP's address until the peer's own packets latch it.
    remote: Option<SocketAddr>,
    latched: bool,
    last_rx: Instant,
    timed_out: bool,
    bridge: Option<LegId>,
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Handles to the media task.
pub struct Media {
    pub commands: mpsc::UnboundedSender<MediaCommand>,
    pub events: mpsc::UnboundedReceiver<MediaEvent>,
}

/// Starts the media task; legs bind on `bind_ip`.
pub fn spawn(bind_ip: IpAddr, rtp_timeout: Duration) -> Media {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(bind_ip, rtp_timeout, cmd_rx, ev_tx));
    Media {
        commands: cmd_tx,
        events: ev_rx,
    }
}

async fn run(
    bind_ip: IpAddr,
    rtp_timeout: Duration,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let (pkt_tx, mut packets) = mpsc::channel::<Packet>(8192);
    let mut legs: HashMap<LegId, Leg> = HashMap::new();
    let mut check = tokio::time::interval(Duration::from_millis(500));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => apply(cmd, bind_ip, &mut legs, &pkt_tx).await,
                None => return,
            },
            Some(p) = packets.recv() => relay(p, &mut legs),
            _ = check.tick() => {
                let now = Instant::now();
                for (id, leg) in legs.iter_mut() {
                    if !leg.timed_out && now.duration_since(leg.last_rx) >= rtp_timeout {
                        leg.timed_out = true;
                        let _ = events.send(MediaEvent::Timeout { leg: *id });
                    }
                }
            }
        }
    }
}

async fn apply(
    cmd: MediaCommand,
    bind_ip: IpAddr,
    legs: &mut HashMap<LegId, Leg>,
    pkt_tx: &mpsc::Sender<Packet>,
) {
    match cmd {
        MediaCommand::Open {
            leg, port, remote, ..
        } => {
            let sock = match UdpSocket::bind(SocketAddr::new(bind_ip, port)).await {
                Ok(s) => Arc::new(s),
                Err(e) => return warn!(leg, port, error = %e, "cannot bind RTP port"),
            };
            let reader = tokio::spawn(read_loop(leg, sock.clone(), pkt_tx.clone()));
            legs.insert(
                leg,
                Leg {
                    sock,
                    reader,
                    remote,
                    latched: false,
                    last_rx: Instant::now(),
                    timed_out: false,
                    bridge: None,
                },
            );
        }
        MediaCommand::Update { leg, remote, .. } => {
            if let Some(l) = legs.get_mut(&leg) {
                if !l.latched {
                    l.remote = remote;
                }
            }
        }
        MediaCommand::Bridge { a, b } => {
            if let Some(l) = legs.get_mut(&a) {
                l.bridge = Some(b);
            }
            if let Some(l) = legs.get_mut(&b) {
                l.bridge = Some(a);
            }
        }
        MediaCommand::Close { leg } => {
            if let Some(l) = legs.remove(&leg) {
                if let Some(other) = l.bridge.and_then(|b| legs.get_mut(&b)) {
                    other.bridge = None;
                }
            }
        }
        // Prompt and music playback come with the RTP pacer.
        MediaCommand::Play { .. } | MediaCommand::Stop { .. } => {}
    }
}

/// Symmetric RTP: the peer's packets say where it is; then the payload goes
/// to the bridged leg's peer.
fn relay(p: Packet, legs: &mut HashMap<LegId, Leg>) {
    let Some(leg) = legs.get_mut(&p.leg) else {
        return;
    };
    leg.last_rx = Instant::now();
    leg.timed_out = false;
    if !leg.latched || leg.remote != Some(p.from) {
        leg.remote = Some(p.from);
        leg.latched = true;
    }
    let Some(other) = leg.bridge.and_then(|b| legs.get(&b)) else {
        return;
    };
    if let Some(to) = other.remote {
        if let Err(e) = other.sock.try_send_to(&p.bytes, to) {
            debug!(error = %e, "rtp relay send failed");
        }
    }
}

async fn read_loop(leg: LegId, sock: Arc<UdpSocket>, tx: mpsc::Sender<Packet>) {
    let mut buf = vec![0u8; 2048];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                // Not RTP version 2, or shorter than its fixed header: drop.
                if n < 12 || buf[0] >> 6 != 2 {
                    continue;
                }
                let p = Packet {
                    leg,
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    from,
                };
                if tx.try_send(p).is_err() {
                    debug!(leg, "media task busy: packet dropped");
                }
            }
            Err(e) => debug!(leg, error = %e, "rtp recv error"),
        }
    }
}
