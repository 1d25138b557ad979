//! The signalling shards: one tokio task per worker, each driving one
//! sans-IO [`Endpoint`] that owns the calls whose Call-ID hashes to it. All
//! of them share the lock-free ACD router, so routing decisions run on every
//! worker at once. A router output about another shard's call is handed to
//! that shard through its control queue; the driver (`daemon::run`) talks to
//! the shards the same way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::now;
use super::observers::Observers;
use super::transport::{Inbound, Transports};
use crate::acd::{Output, Router};
use crate::config::Config;
use crate::endpoint::{Endpoint, MediaCommand, MediaEvent, Now};
use crate::media::PortPool;

/// A piece of work run on a shard's endpoint.
pub type Job = Box<dyn FnOnce(&mut Endpoint, Now) + Send>;

/// Work for one shard that is not a SIP message.
pub enum ShardMsg {
    Media(MediaEvent),
    /// A router output decided on another shard about one of our calls.
    Acd(Output),
    /// Work another shard handed over (attended transfer: a leg moving,
    /// messages for a leg that moved).
    Relay(crate::endpoint::Relay),
    /// Run this on the shard's endpoint (admin views, drain).
    Run(Job),
    /// Hand the router over for a reload and wait for it to come back.
    Park(Park),
    /// Hang every call up, flush, and stop.
    Stop(oneshot::Sender<()>),
}

pub struct Park {
    /// Held while parked, so the endpoint always has a router.
    pub stand_in: Arc<Router>,
    pub give: oneshot::Sender<Arc<Router>>,
    pub resume: oneshot::Receiver<Resume>,
}

/// What a parked shard resumes with.
pub struct Resume {
    pub cfg: Arc<Config>,
    pub router: Arc<Router>,
    /// A new RTP port pool, when the range changed.
    pub ports: Option<PortPool>,
    /// The reload's router outputs about this shard's calls.
    pub out: Vec<Output>,
}

/// The driver's and the shards' way to reach every shard.
#[derive(Clone)]
pub struct Shards {
    ctl: Arc<Vec<mpsc::UnboundedSender<ShardMsg>>>,
    /// Calls in progress on all shards (the endpoints' shared count).
    calls: Arc<AtomicUsize>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// RTP ports whose sockets the media task keeps parked (a new pool
    /// after a reload asks it too).
    pub idle_rtp: super::rtp_sockets::IdlePorts,
}

impl Shards {
    pub fn len(&self) -> usize {
        self.ctl.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ctl.is_empty()
    }

    /// Queues `msg` for shard `i`; false if that shard has stopped.
    pub fn send(&self, i: usize, msg: ShardMsg) -> bool {
        self.ctl.get(i).is_some_and(|tx| tx.send(msg).is_ok())
    }

    /// Calls in progress on all shards.
    pub fn active_calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Runs `f` on shard `i` and returns its answer (None: shard gone).
    pub async fn ask<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce(&mut Endpoint, Now) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let run = Box::new(move |ep: &mut Endpoint, now: Now| drop(tx.send(f(ep, now))));
        if !self.send(i, ShardMsg::Run(run)) {
            return None;
        }
        rx.await.ok()
    }

    /// Runs `f` on every shard; answers in shard order.
    pub async fn ask_all<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Endpoint, Now) -> T + Send + Sync + Clone + 'static,
    ) -> Vec<T> {
        let mut answers = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            if let Some(a) = self.ask(i, f.clone()).await {
                answers.push(a);
            }
        }
        answers
    }

    /// Stops every shard; returns when each has flushed its last records.
    pub async fn stop_all(&self) {
        for i in 0..self.len() {
            let (tx, rx) = oneshot::channel();
            if self.send(i, ShardMsg::Stop(tx)) {
                let _ = rx.await;
            }
        }
    }
}

/// Where a shard's results go.
#[derive(Clone)]
pub struct Outlets {
    pub transports: Transports,
    pub media: mpsc::UnboundedSender<MediaCommand>,
    pub sinks: super::observers::Sinks,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub idle_rtp: super::rtp_sockets::IdlePorts,
}

/// The shards' SIP queues: senders for the transports, receivers for
/// [`spawn`]. Bounded: a SIP flood waits in the socket buffers, not in
/// memory.
pub fn sip_queues(n: usize) -> (Vec<mpsc::Sender<Inbound>>, Vec<mpsc::Receiver<Inbound>>) {
    (0..n.max(1)).map(|_| mpsc::channel(4096)).unzip()
}

/// Starts one task per endpoint, each fed by its SIP queue.
pub fn spawn(
    mut endpoints: Vec<Endpoint>,
    sip: Vec<mpsc::Receiver<Inbound>>,
    outlets: &Outlets,
) -> (Shards, tokio::task::JoinSet<usize>) {
    let n = endpoints.len();
    let (ctl_tx, ctl_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
    let shards = Shards {
        ctl: Arc::new(ctl_tx),
        calls: endpoints
            .first()
            .map_or_else(Arc::default, Endpoint::calls_everywhere),
        metrics: outlets.metrics.clone(),
        idle_rtp: outlets.idle_rtp.clone(),
    };
    // What the endpoints said while being built (agents logged in at
    // start) goes out first, before any shard handles a call: the shards
    // flush independently, so otherwise a call's queue_log lines could come
    // before the AGENTLOGIN that preceded it.
    let mut observers: Vec<Observers> = Vec::with_capacity(n);
    for ep in &mut endpoints {
        let mut obs = Observers::new(&outlets.sinks);
        obs.drain(ep, now());
        observers.push(obs);
    }
    let mut tasks = tokio::task::JoinSet::new();
    let parts = endpoints.into_iter().zip(observers);
    for ((ep, obs), (ctl, sip)) in parts.zip(ctl_rx.into_iter().zip(sip)) {
        let index = ep.shard().index;
        let task = ShardTask {
            ep,
            obs,
            peers: shards.clone(),
            out: outlets.clone(),
        };
        tasks.spawn(async move {
            task.run(sip, ctl).await;
            index
        });
    }
    (shards, tasks)
}

struct ShardTask {
    ep: Endpoint,
    /// The consumers of this shard's event stream.
    obs: Observers,
    peers: Shards,
    out: Outlets,
}

impl ShardTask {
    async fn run(
        mut self,
        mut sip: mpsc::Receiver<Inbound>,
        mut ctl: mpsc::UnboundedReceiver<ShardMsg>,
    ) {
        loop {
            let wake = self.ep.poll_timeout();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Control first: handovers from other shards keep callers
                // moving even while this shard is flooded with SIP.
                biased;
                msg = ctl.recv() => {
                    let Some(msg) = msg else { break };
                    match self.on_ctl(msg).await {
                        None => {}
                        Some(Some(done)) => return self.stop(done).await,
                        Some(None) => return,
                    }
                }
                Some(msg) = sip.recv() => {
                    self.ep.set_behind(self.behind());
                    self.guarded("SIP message", |ep| ep.handle_inbound(&msg.bytes, msg.from, now()));
                    // Handle a burst in one go before sending.
                    while let Ok(msg) = sip.try_recv() {
                        self.ep.set_behind(self.behind());
                        self.guarded("SIP message", |ep| ep.handle_inbound(&msg.bytes, msg.from, now()));
                    }
                }
                _ = sleep => self.guarded("timer", |ep| ep.handle_timeout(now())),
            }
            self.flush().await;
        }
    }

    /// Whether the daemon is behind on what it is sent: datagrams wait in
    /// a UDP socket's buffer (the reader waits for a full shard queue, or
    /// for the CPU itself).
    fn behind(&self) -> bool {
        self.out
            .transports
            .stats
            .udp_behind
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one event's handler. A handler that panics (a bug a peer's
    /// message or a timer reached) loses that event, not the shard: the
    /// shard's other calls go on. The panic is logged and counted.
    fn guarded(&mut self, what: &'static str, f: impl FnOnce(&mut Endpoint)) {
        guard(&mut self.ep, &self.out.metrics, what, f);
    }

    /// `Some`: the shard stops (with the reply channel of a `Stop`, or
    /// `None` when it cannot go on).
    async fn on_ctl(&mut self, msg: ShardMsg) -> Option<Option<oneshot::Sender<()>>> {
        match msg {
            ShardMsg::Media(ev) => {
                self.guarded("media event", |ep| ep.handle_media_event(ev, now()))
            }
            ShardMsg::Acd(out) => self.guarded("handover", |ep| ep.handle_foreign(out, now())),
            ShardMsg::Relay(r) => self.guarded("relay", |ep| ep.handle_relay(r, now())),
            ShardMsg::Run(f) => self.guarded("admin request", |ep| f(ep, now())),
            ShardMsg::Park(p) => {
                let mine = self.ep.swap_router(p.stand_in);
                let _ = p.give.send(mine);
                match p.resume.await {
                    Ok(r) => self
                        .ep
                        .resume_after_reload(r.cfg, r.router, r.ports, r.out, now()),
                    Err(_) => {
                        // The driver always resumes; without it this shard
                        // has no router left to work with.
                        error!(
                            shard = self.ep.shard().index,
                            "reload never resumed: shard stops"
                        );
                        return None;
                    }
                }
            }
            ShardMsg::Stop(done) => return Some(Some(done)),
        }
        None
    }

    /// Sends what the last event produced to where it goes.
    async fn flush(&mut self) {
        while let Some((to, bytes)) = self.ep.poll_transmit() {
            self.out.transports.send(to, bytes).await;
        }
        while let Some(cmd) = self.ep.poll_media() {
            let _ = self.out.media.send(cmd);
        }
        // Before the handover: agent states this turn changed are reported
        // before the shard that rings the agent can see it answer.
        self.obs.drain(&mut self.ep, now());
        while let Some((shard, out)) = self.ep.poll_foreign() {
            self.peers.send(shard, ShardMsg::Acd(out));
        }
        // After this turn's media commands: a leg handed over is closed
        // from its old call before its new one bridges it.
        while let Some((shard, r)) = self.ep.poll_relay() {
            self.peers.send(shard, ShardMsg::Relay(r));
        }
    }

    /// The daemon is exiting: every call gets its BYE and its record.
    async fn stop(mut self, done: oneshot::Sender<()>) {
        self.ep.shutdown(now());
        self.ep.finish_records(now());
        self.flush().await;
        let _ = done.send(());
    }
}

/// The RTP port pool of `range`, skipping pairs another process holds on
/// `ip` (tried with a bind that is let go at once; the error says whether
/// the port is taken or the process out of file descriptors). A pair the
/// media task keeps parked (`idle`) is ours and free without a try.
pub fn rtp_pool(
    range: std::ops::RangeInclusive<u16>,
    ip: std::net::IpAddr,
    idle: super::rtp_sockets::IdlePorts,
) -> PortPool {
    let probe = move |p: crate::media::PortPair| {
        if idle.contains(p.rtp) {
            return Ok(());
        }
        let rtp = std::net::UdpSocket::bind((ip, p.rtp))?;
        let rtcp = std::net::UdpSocket::bind((ip, p.rtcp()))?;
        drop((rtp, rtcp));
        Ok(())
    };
    PortPool::with_probe(range, Arc::new(probe))
}

/// Runs `f` on `ep`; false if it panicked: the panic is caught, counted in
/// `sipacd_handler_panics_total` and logged, and `ep` stays usable.
fn guard(
    ep: &mut Endpoint,
    metrics: &crate::metrics::Metrics,
    what: &'static str,
    f: impl FnOnce(&mut Endpoint),
) -> bool {
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *ep))).is_ok();
    if !ok {
        metrics.handler_panics.inc();
        error!(
            shard = ep.shard().index,
            what, "handler panicked: event dropped, shard goes on"
        );
    }
    ok
}

/// Partitions a reload's router outputs by the shard owning their call.
pub fn outputs_by_shard(out: Vec<Output>, n: usize) -> Vec<Vec<Output>> {
    let mut by = vec![Vec::new(); n.max(1)];
    for o in out {
        let i = crate::endpoint::owner_of_output(&o, n);
        if let Some(v) = by.get_mut(i) {
            v.push(o);
        }
    }
    by
}

/// Reloads the router every shard shares: parks them all (each hands its
/// router handle over), reloads it with `cfg` alone, and resumes them with
/// their share of its outputs. Err: the router could not be had alone (it
/// is unchanged and every shard resumes as it was).
pub async fn reload_all(
    shards: &Shards,
    cfg: Arc<Config>,
    old: &Arc<Config>,
    rtp_ip: std::net::IpAddr,
) -> Result<(), &'static str> {
    let t = now();
    let stand_in = Arc::new(crate::endpoint::stand_in_router(t));
    let mut resumes = Vec::with_capacity(shards.len());
    let mut handles = Vec::with_capacity(shards.len());
    for i in 0..shards.len() {
        let (give, got) = oneshot::channel();
        let (resume_tx, resume) = oneshot::channel();
        let park = Park {
            stand_in: stand_in.clone(),
            give,
            resume,
        };
        if !shards.send(i, ShardMsg::Park(park)) {
            continue;
        }
        resumes.push((i, resume_tx));
        if let Ok(r) = got.await {
            handles.push(r);
        }
    }
    let mut router = handles.pop();
    drop(handles);
    let t = now();
    let reloaded = router
        .as_mut()
        .and_then(Arc::get_mut)
        .map(|r| crate::endpoint::reload_router(r, &cfg, t));
    let (cfg, out, ok) = match reloaded {
        Some(out) => (cfg, out, true),
        None => (old.clone(), Vec::new(), false),
    };
    let ports = (cfg.server.rtp_ports != old.server.rtp_ports).then(|| {
        rtp_pool(
            cfg.server.rtp_ports.clone(),
            rtp_ip,
            shards.idle_rtp.clone(),
        )
    });
    let router = router.unwrap_or(stand_in);
    let mut by_shard = outputs_by_shard(out, shards.len());
    for (i, tx) in resumes {
        let r = Resume {
            cfg: cfg.clone(),
            router: router.clone(),
            ports: ports.clone(),
            out: by_shard.get_mut(i).map(std::mem::take).unwrap_or_default(),
        };
        let _ = tx.send(r);
    }
    if ok {
        Ok(())
    } else {
        Err("the router is held elsewhere: reload not applied")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::{CallId, DivertReason, Timer};

    #[test]
    fn a_panicking_handler_is_contained_counted_and_the_endpoint_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "[server]\nsip = [\"udp:127.0.0.1:5060\"]\nadvertise = \"127.0.0.1\"\n\
             domain = \"t\"\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        );
        let cfg = crate::config::parse_str(&text, &dir.path().join("t.toml")).expect("config");
        let now = crate::endpoint::Now {
            mono: std::time::Instant::now(),
            wall: std::time::SystemTime::now(),
        };
        let mut ep = Endpoint::new(Arc::new(cfg), now);
        let metrics = crate::metrics::Metrics::new();
        assert!(!guard(&mut ep, &metrics, "test", |_| panic!(
            "a bug reached by a peer"
        )));
        assert_eq!(metrics.handler_panics.get(), 1);
        // The same endpoint answers the next message.
        let options =
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp1\r\n\
            Max-Forwards: 70\r\nFrom: <sip:m@x>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: p1\r\n\
            CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let from = crate::sip::Peer::udp("127.0.0.1:5070".parse().expect("addr"));
        assert!(guard(&mut ep, &metrics, "test", |ep| ep.handle_inbound(
            options.as_bytes(),
            from,
            now
        )));
        let (_, reply) = ep.poll_transmit().expect("a reply");
        assert!(reply.starts_with(b"SIP/2.0 200 "), "{reply:?}");
        assert_eq!(metrics.handler_panics.get(), 1);
    }

    #[test]
    fn reload_outputs_go_to_the_shard_owning_their_call() {
        let divert = |n| Output::Divert {
            call: CallId(n),
            queue: Arc::from("q"),
            reason: DivertReason::QueueRemoved,
            target: None,
        };
        let at = std::time::Instant::now();
        let arm = |n| Output::Arm {
            at,
            timer: Timer::MaxWait { call: CallId(n) },
        };
        // A call id's low bits name its shard: even ids on 0, odd on 1.
        let by = outputs_by_shard(vec![divert(4), arm(5), divert(7), arm(9)], 2);
        assert_eq!(by, vec![vec![divert(4)], vec![arm(5), divert(7), arm(9)]]);
        let by = outputs_by_shard(vec![divert(8), arm(3), divert(4)], 3);
        assert_eq!(by, vec![vec![arm(3)], vec![divert(4)], vec![divert(8)]]);
    }
}
