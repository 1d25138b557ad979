//! The tokio side: binds sockets, feeds the sans-IO [`Endpoint`] with
//! messages and timeouts, sends what it produces, and handles signals
//! (SIGHUP reload, SIGTERM/SIGINT drain). No SIP logic lives here.

pub mod control;
pub mod media;
pub mod observers;
pub mod recorder;
pub mod retention;
pub mod rtp_sockets;
pub mod shards;
pub mod status;
pub mod tcp_policy;
pub mod tls;
pub mod transport;
pub mod trim;
pub mod udp_socket;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::admin::AdminConfig;
use crate::cdr::{CdrError, CdrStore, CdrWriter, QueueLogWriter};
use crate::config::{self, Config, ConfigErrors};
use crate::endpoint::{Endpoint, Now};
use control::{Control, ControlBackend};
use shards::Shards;
use transport::Transports;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("configuration rejected:\n{0}")]
    Config(ConfigErrors),
    #[error("cannot bind SIP listeners: {0}")]
    Bind(std::io::Error),
    #[error("cannot load the TLS certificate: {0}")]
    Tls(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot prepare data_dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Each of its messages names the call records or their file; shown
    /// as is, so the chain `{:#}` prints does not repeat it.
    #[error(transparent)]
    Cdr(#[from] CdrError),
    #[error("cannot open queue_log {path}: {source}")]
    QueueLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signalling shard {0} stopped unexpectedly")]
    ShardStopped(String),
    #[error("cannot bind the admin API on {addr}: {source}")]
    AdminBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Outcome of a reload, for logs and (later) the admin API.
#[derive(Debug)]
pub enum ReloadOutcome {
    Applied {
        changed: Vec<String>,
        cfg: Arc<Config>,
    },
    Rejected {
        errors: Vec<String>,
    },
}

/// Runs the daemon until SIGTERM/SIGINT and the drain that follows.
pub async fn run(config_path: PathBuf) -> Result<(), DaemonError> {
    restrict_umask();
    let cfg = Arc::new(config::load(&config_path).map_err(DaemonError::Config)?);
    std::fs::create_dir_all(&cfg.server.data_dir).map_err(|source| DaemonError::DataDir {
        path: cfg.server.data_dir.clone(),
        source,
    })?;
    let (store, interrupted) = CdrStore::open(&cfg.server.data_dir)?;
    info!(
        interrupted,
        "call records opened; calls cut off by the last exit marked interrupted"
    );
    let cdr = CdrWriter::spawn(store)?;
    let qlog = open_queue_log(&cfg)?;
    let qlog_tx = qlog.as_ref().and_then(QueueLogWriter::handle);

    // One signalling shard per tokio worker (TOKIO_WORKER_THREADS sets
    // how many): each owns the calls whose Call-ID hashes to it, and all
    // share the lock-free router.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let bind_ip = rtp_ip(&cfg);
    let idle_rtp = rtp_sockets::IdlePorts::default();
    let ports = shards::rtp_pool(cfg.server.rtp_ports.clone(), bind_ip, idle_rtp.clone());
    let open_files = tcp_policy::raise_open_files();
    let rtp_pairs = ports.available();
    let policy = tcp_policy::from_config(&cfg.server, open_files, rtp_pairs);
    // What the media task may hold open, parked pairs included: the
    // descriptors TCP and the files leave, not only the range.
    let rtp_fd_pairs = tcp_policy::rtp_pairs_left(open_files, policy.max_connections);
    info!(
        // 0: no limit.
        open_files = open_files.unwrap_or(0),
        tcp_max_connections = policy.max_connections,
        tcp_max_per_source = policy.max_per_source,
        "descriptor budget"
    );
    let mut endpoints = crate::endpoint::Shared::endpoints_with_ports(&cfg, workers, now(), ports);
    let bindings = start_bindings_writer(&endpoints)?;
    let callbacks = start_callbacks_writer(&mut endpoints)?;
    let metrics = crate::metrics::Metrics::new();
    metrics.set_config(&cfg);
    // The shards' SIP queues exist before the sockets, which feed them.
    let (sip_tx, sip_rx) = shards::sip_queues(endpoints.len());
    let (transports, tcp) = Transports::bind(&cfg.server.sip, sip_tx)
        .await
        .map_err(DaemonError::Bind)?;
    let gate = Arc::new(crate::flood::FloodGate::new(
        cfg.server.pike,
        cfg.server.allow_networks.clone(),
    ));
    // Closed connections that carried a registration, for the engine.
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    let transports = transports
        .with_policy(policy, keep_alive(&endpoints))
        .with_close_notices(closed_tx)
        .with_flood_gate(gate.clone());
    // Before the listeners accept; the config check has read these files.
    let tls = transports.tls().clone();
    tls.load(cfg.server.tls.as_ref())
        .map_err(DaemonError::Tls)?;
    if let Some(f) = &cfg.server.tls {
        info!(cert = %f.cert.display(), "TLS certificate loaded");
    }
    transports.start(tcp);
    metrics.attach_transport(transports.stats.clone());
    if let Some(e) = endpoints.first() {
        metrics.attach_flood(gate.clone(), e.setup_counts());
        metrics.attach_transactions(e.transaction_budget());
        spawn_memory_trim(e.transaction_budget(), metrics.clone());
    }
    if let Some(b) = &bindings {
        metrics.attach_bindings(b.stats());
    }
    let status = Arc::new(status::Status {
        gate: gate.clone(),
        registrar: endpoints.first().map(Endpoint::shared_registrar),
        records: cdr.handle().stats_source(),
        registrations: bindings
            .as_ref()
            .map(crate::registrar::BindingsWriter::stats),
    });
    metrics.attach_cdr(cdr.handle().stats_source());
    for l in &cfg.server.sip {
        info!(transport = %l.transport, addr = %l.addr, "listening");
    }
    info!(shards = endpoints.len(), "signalling shards");
    // After the SIP listeners: `/health` answering means SIP is up too.
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<Control>(64);
    let hub = crate::admin::EventHub::default();
    let (admin_stop, admin_task) = start_admin(&cfg, ctl_tx, metrics.clone(), &hub, status).await?;

    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;

    let rtp_timeout = Duration::from_secs(cfg.server.rtp_timeout_s);
    // RTP descriptors as the budget counts them (two legs a call at most),
    // within the descriptors left to RTP.
    let rtp_pairs = rtp_pairs
        .min(cfg.server.max_calls.saturating_mul(2))
        .min(rtp_fd_pairs);
    let mut media = media::spawn(
        bind_ip,
        rtp_timeout,
        metrics.clone(),
        idle_rtp.clone(),
        rtp_pairs,
    );
    let today = crate::admin::today::TodayBoard::default();
    let board = crate::admin::board::LiveBoard::default();
    let outlets = shards::Outlets {
        transports,
        media: media.commands.clone(),
        sinks: observers::Sinks {
            records: cdr.handle(),
            qlog: qlog_tx,
            hub: hub.clone(),
            metrics: metrics.clone(),
            today: today.clone(),
            board: board.clone(),
            waiting: Default::default(),
        },
        metrics: metrics.clone(),
        idle_rtp,
    };
    let mut endpoints = endpoints;
    for ep in &mut endpoints {
        let t = outlets.transports.clone();
        ep.set_flow_check(Arc::new(move |peer| t.connected(peer)));
    }
    let (shards, mut tasks) = shards::spawn(endpoints, sip_rx, &outlets);
    drop(outlets);
    let retention = Arc::new(std::sync::atomic::AtomicU64::new(cfg.server.retention_days));
    let sweeper = retention::spawn(cfg.server.data_dir.clone(), retention.clone());
    let mut current = cfg;
    let mut drain_deadline: Option<Instant> = None;
    let mut failed: Option<String> = None;
    let mut drain_check = tokio::time::interval(Duration::from_millis(200));

    loop {
        tokio::select! {
            Some(ev) = media.events.recv() => {
                let owner = crate::endpoint::shard_of_id(ev.leg(), shards.len());
                shards.send(owner, shards::ShardMsg::Media(ev));
            }
            // Registrations are shared: the primary shard handles it.
            Some(peer) = closed_rx.recv() => {
                let job: shards::Job = Box::new(move |ep, now| ep.flow_closed(peer, now));
                shards.send(0, shards::ShardMsg::Run(job));
            }
            _ = hup.recv() => {
                if let ReloadOutcome::Applied { cfg, .. } = reload(&config_path, &current, &shards).await {
                    apply_to_transports(&cfg, &tls, &gate);
                    retention.store(cfg.server.retention_days, std::sync::atomic::Ordering::Relaxed);
                    current = cfg;
                }
            }
            Some(req) = ctl_rx.recv() => {
                if let Some(cfg) = on_control(req, &config_path, &current, &shards, (&today, &board)).await {
                    apply_to_transports(&cfg, &tls, &gate);
                    retention.store(cfg.server.retention_days, std::sync::atomic::Ordering::Relaxed);
                    current = cfg;
                }
            }
            _ = term.recv() => drain_deadline = Some(start_drain(&shards, &current).await),
            _ = int.recv() => drain_deadline = Some(start_drain(&shards, &current).await),
            _ = drain_check.tick(), if drain_deadline.is_some() => {}
            // A shard contains its handlers' panics; if its task ends
            // anyway, half a daemon would keep answering: stop it all and
            // exit with an error, for the service manager to restart.
            Some(ended) = tasks.join_next() => {
                let shard = ended.as_ref().map_or_else(|e| e.to_string(), |i| i.to_string());
                error!(%shard, "a signalling shard stopped: exiting");
                failed = Some(shard);
                break;
            }
        }
        if let Some(deadline) = drain_deadline {
            let calls = shards.active_calls();
            if calls == 0 {
                info!("drained: no calls left, exiting");
                break;
            }
            if Instant::now() >= deadline {
                warn!(calls, "drain_s elapsed, exiting with calls up");
                break;
            }
        }
    }
    sweeper.abort();
    // Every shard hangs its calls up and hands over its last records.
    shards.stop_all().await;
    while tasks.join_next().await.is_some() {}
    drop(shards);
    // Every shard has stopped: the registrations' last state goes to disk.
    if let Some(w) = bindings {
        let _ = tokio::task::spawn_blocking(move || w.shutdown()).await;
    }
    // And the callbacks still waiting.
    if let Some(w) = callbacks {
        let _ = tokio::task::spawn_blocking(move || w.shutdown()).await;
    }
    drop(hub); // ends the live event streams
    let _ = admin_stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), admin_task).await;
    // The queue_log handles went with the shards: its writer drains and stops.
    if let Some(q) = qlog {
        let _ = tokio::task::spawn_blocking(move || q.shutdown()).await;
    }
    // Joining the writer blocks until the last batch is committed.
    match tokio::task::spawn_blocking(move || cdr.shutdown()).await {
        Ok(st) => info!(
            written = st.written,
            failed = st.failed,
            "call records flushed"
        ),
        Err(e) => error!(error = %e, "call record writer did not stop cleanly"),
    }
    match failed {
        Some(shard) => Err(DaemonError::ShardStopped(shard)),
        None => Ok(()),
    }
}

/// Watches the transaction tables each [`trim::TICK`] and, once they
/// have shrunk by a lot after a flood, hands the freed memory back to the
/// system on a blocking thread (see `trim`). Ends with the runtime.
fn spawn_memory_trim(
    budget: Arc<crate::sip::transaction::TxBudget>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    tokio::spawn(async move {
        let mut policy = trim::TrimPolicy::default();
        let mut tick = tokio::time::interval(trim::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let live = budget.live();
            if !policy.tick(live) {
                continue;
            }
            let released = tokio::task::spawn_blocking(trim::release_freed_memory).await;
            metrics.memory_trims.inc();
            info!(
                transactions = live,
                released = released.unwrap_or(false),
                "transaction tables shrank: freed memory handed back"
            );
        }
    });
}

/// What a reload changes outside the shards: the TLS certificate for new
/// connections, the flood limits and their allow list for the next message.
fn apply_to_transports(cfg: &Config, tls: &tls::TlsAcceptors, gate: &crate::flood::FloodGate) {
    tls.reload(cfg.server.tls.as_ref());
    gate.reconfigure(cfg.server.pike, cfg.server.allow_networks.clone());
}

fn lock_registrar(
    r: &std::sync::Mutex<crate::registrar::Registrar>,
) -> std::sync::MutexGuard<'_, crate::registrar::Registrar> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the thread that writes `registrations.json` for every shard's
/// shared registrar (None: the registrar keeps no file).
fn start_bindings_writer(
    endpoints: &[Endpoint],
) -> Result<Option<crate::registrar::BindingsWriter>, DaemonError> {
    let Some(reg) = endpoints.first().map(Endpoint::shared_registrar) else {
        return Ok(None);
    };
    let Some(path) = lock_registrar(&reg)
        .store_path()
        .map(std::path::Path::to_path_buf)
    else {
        return Ok(None);
    };
    let take_from = reg.clone();
    let writer = crate::registrar::BindingsWriter::spawn(
        path.clone(),
        crate::registrar::DEFAULT_WINDOW,
        move || lock_registrar(&take_from).take_snapshot(),
    )
    .map_err(|source| DaemonError::DataDir { path, source })?;
    lock_registrar(&reg).set_nudge(writer.nudge());
    Ok(Some(writer))
}

/// Reads back the callbacks the last run left waiting (the primary shard
/// queues them again) and starts the thread that saves them from now on.
/// A file that cannot be read is logged and left as it is (renamed aside
/// by nobody): the daemon starts without those callbacks.
fn start_callbacks_writer(
    endpoints: &mut [Endpoint],
) -> Result<Option<crate::registrar::BindingsWriter>, DaemonError> {
    let Some(primary) = endpoints.first_mut() else {
        return Ok(None);
    };
    if let Err(e) = primary.restore_callbacks(now()) {
        error!(error = %e, "saved callbacks not read: they are not called back");
    }
    let book = primary.callback_book();
    let path = primary.callbacks_path();
    let take_from = book.clone();
    let writer = crate::registrar::BindingsWriter::spawn_for(
        "sipacd-callbacks",
        "callbacks",
        path.clone(),
        crate::registrar::DEFAULT_WINDOW,
        move || {
            take_from
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take_snapshot()
        },
    )
    .map_err(|source| DaemonError::DataDir { path, source })?;
    book.lock()
        .unwrap_or_else(|e| e.into_inner())
        .set_nudge(writer.nudge());
    Ok(Some(writer))
}

/// Keeps an idle TCP connection open while a registration came over it.
fn keep_alive(endpoints: &[Endpoint]) -> Option<transport::KeepAlive> {
    let reg = endpoints.first()?.shared_registrar();
    Some(Arc::new(move |peer| {
        lock_registrar(&reg).has_binding_from(peer, SystemTime::now())
    }))
}

/// Opens `server.queue_log`, when it is set.
fn open_queue_log(cfg: &Config) -> Result<Option<QueueLogWriter>, DaemonError> {
    let Some(path) = &cfg.server.queue_log else {
        return Ok(None);
    };
    QueueLogWriter::open(path, SystemTime::now())
        .map(Some)
        .map_err(|source| DaemonError::QueueLog {
            path: path.clone(),
            source,
        })
}

/// Binds `server.admin` and serves the API until the returned sender fires.
async fn start_admin(
    cfg: &Config,
    ctl: mpsc::Sender<Control>,
    metrics: Arc<crate::metrics::Metrics>,
    hub: &crate::admin::EventHub,
    status: Arc<status::Status>,
) -> Result<
    (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    DaemonError,
> {
    let addr = cfg.server.admin;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::AdminBind { addr, source })?;
    info!(%addr, "admin API listening");
    let app = crate::admin::router_with_status(
        Arc::new(ControlBackend::new(ctl)),
        AdminConfig {
            token: cfg.server.admin_token.clone(),
            cdr_dir: Some(cfg.server.data_dir.clone()),
            timezone: cfg.server.timezone,
        },
        metrics,
        Some(status),
    );
    let app = crate::admin::with_live_routes(app, hub, cfg.server.admin_token.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = crate::admin::AdminLimits {
        max_connections: cfg.server.admin_max_connections,
        header_timeout: Duration::from_secs(cfg.server.admin_header_timeout_s),
    };
    let conn_stats = Arc::default();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        if let Err(e) = crate::admin::serve_limited(listener, app, stop, limits, conn_stats).await {
            error!(error = %e, "admin API stopped");
        }
    });
    Ok((stop_tx, task))
}

/// Answers one admin request; returns the new configuration if it reloaded.
async fn on_control(
    req: Control,
    path: &std::path::Path,
    current: &Arc<Config>,
    shards: &Shards,
    (today, board): (
        &crate::admin::today::TodayBoard,
        &crate::admin::board::LiveBoard,
    ),
) -> Option<Arc<Config>> {
    match req {
        // Folded from the event stream: no shard is asked.
        Control::Queues(reply) => {
            let t = now();
            let mut views = board.queue_views(current, t);
            today.fill(&mut views, current, t);
            drop(reply.send(views));
        }
        Control::AgentStates(reply) => drop(reply.send(board.agent_states(current))),
        // Agents are shared: the primary knows them all. Their calls are on
        // every shard.
        Control::Agents(reply) => {
            let mut views = shards
                .ask(0, |ep, t| ep.agent_views(t))
                .await
                .unwrap_or_default();
            let calls: Vec<_> = shards
                .ask_all(|ep, t| ep.call_views(t))
                .await
                .into_iter()
                .flatten()
                .collect();
            crate::admin::attach_calls(&mut views, &calls);
            today.fill_agents(&mut views, current, now());
            drop(reply.send(views));
        }
        Control::Calls(reply) => {
            let mut calls: Vec<_> = shards
                .ask_all(|ep, t| ep.call_views(t))
                .await
                .into_iter()
                .flatten()
                .collect();
            // Longest waiting first, as each shard sorts its own.
            calls.sort_by(|a, b| b.wait_s.total_cmp(&a.wait_s).then_with(|| a.id.cmp(&b.id)));
            drop(reply.send(calls));
        }
        Control::SetAgentState { id, req, reply } => {
            let res = shards
                .ask(0, move |ep, t| {
                    let res = ep.set_agent_state(&id, req, t);
                    if res.is_ok() {
                        info!(agent = %id, "agent state set over the admin API");
                    }
                    res
                })
                .await;
            if let Some(res) = res {
                drop(reply.send(res));
            }
        }
        Control::Config(reply) => drop(reply.send(current.clone())),
        Control::Callbacks(reply) => {
            let mut views: Vec<_> = shards
                .ask_all(|ep, t| ep.callback_views(t))
                .await
                .into_iter()
                .flatten()
                .collect();
            // Next to be called first: by queue, then place.
            views.sort_by(|a, b| {
                (&a.queue, a.position.unwrap_or(usize::MAX), &a.id).cmp(&(
                    &b.queue,
                    b.position.unwrap_or(usize::MAX),
                    &b.id,
                ))
            });
            drop(reply.send(views));
        }
        Control::CancelCallback { id, reply } => {
            let found = shards
                .ask_all(move |ep, t| ep.cancel_callback(&id, t))
                .await
                .into_iter()
                .any(|f| f);
            let _ = reply.send(found);
        }
        Control::PlaceTrunkCall {
            trunk,
            to,
            ring_s,
            reply,
        } => {
            // Any shard can place it: the Call-ID is drawn for that shard.
            let res = shards
                .ask(0, move |ep, t| {
                    use crate::endpoint::TrunkCallError as T;
                    use crate::views::PlaceCallError as E;
                    let ring = Duration::from_secs(ring_s);
                    match ep.place_trunk_call(&trunk, &to, ring, t) {
                        Ok(call) => Ok(crate::views::TrunkCallPlaced {
                            id: call.id,
                            call: call.call_id.to_string(),
                            trunk,
                            to,
                        }),
                        Err(e @ T::UnknownTrunk(_)) => Err(E::UnknownTrunk(e.to_string())),
                        Err(e @ T::BadNumber(_)) => Err(E::BadRequest(e.to_string())),
                        Err(e) => Err(E::Refused(e.to_string())),
                    }
                })
                .await;
            if let Some(res) = res {
                drop(reply.send(res));
            }
        }
        Control::Monitor { call, req, reply } => {
            // The call lives on the shard its Call-ID hashes to.
            let shard = crate::endpoint::shard_of_call_id(&call, shards.len());
            let id = call.clone();
            let res = shards
                .ask(shard, move |ep, t| {
                    use crate::views::MonitorRequest as R;
                    match req {
                        R::Start { supervisor, mode } => {
                            ep.start_monitor(&id, &supervisor, mode, t)
                        }
                        R::Mode(mode) => ep.set_monitor_mode(&id, mode, t),
                        R::Stop => ep.stop_monitor(&id, t),
                    }
                })
                .await
                .unwrap_or(Err(crate::views::MonitorError::UnknownCall(call)));
            drop(reply.send(res));
        }
        Control::Reload(reply) => {
            let (res, cfg) = match reload(path, current, shards).await {
                ReloadOutcome::Applied { changed, cfg } => (Ok(changed), Some(cfg)),
                ReloadOutcome::Rejected { errors } => (Err(errors), None),
            };
            drop(reply.send(res));
            return cfg;
        }
    }
    None
}

/// The address RTP legs bind on: the first SIP listener's.
fn rtp_ip(cfg: &Config) -> std::net::IpAddr {
    cfg.server
        .sip
        .first()
        .map_or(cfg.server.advertise, |l| l.addr.ip())
}

/// Call records, registrations and the queue_log hold callers' numbers and
/// agents' addresses: whatever the umask inherited from a shell (often
/// 022), files the daemon creates are not readable by other users (0640,
/// directories 0750). A stricter umask is kept as it is.
fn restrict_umask() {
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_bits_truncate(0o027));
    let _ = rustix::process::umask(old | Mode::from_bits_truncate(0o027));
}

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall: SystemTime::now(),
    }
}

async fn start_drain(shards: &Shards, cfg: &Config) -> Instant {
    info!(
        calls = shards.active_calls(),
        drain_s = cfg.server.drain_s,
        "draining: new calls get 503"
    );
    shards.ask_all(|ep, _| ep.start_drain()).await;
    let now = Instant::now();
    // `drain_s` is bounded by the configuration; an overflow must not
    // panic on SIGTERM whatever it holds.
    now.checked_add(Duration::from_secs(cfg.server.drain_s))
        .unwrap_or(now)
}

/// Re-reads the file. A valid file replaces the configuration in place
/// (calls and registrations untouched); an invalid one changes nothing.
pub async fn reload(path: &std::path::Path, old: &Arc<Config>, shards: &Shards) -> ReloadOutcome {
    let path = path.to_path_buf();
    // Reading prompts is file I/O: keep it off the signalling task's thread.
    let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await;
    match loaded {
        Ok(Ok(new)) => {
            let changed = config::diff(old, &new);
            for line in changed.iter().filter(|l| l.ends_with(config::AT_RESTART)) {
                warn!("reload: {line}");
            }
            let new = Arc::new(new);
            if let Err(e) = shards::reload_all(shards, new.clone(), old, rtp_ip(&new)).await {
                error!(
                    error = e,
                    "reload rejected, old configuration stays in force"
                );
                shards.metrics.reload(false);
                return ReloadOutcome::Rejected {
                    errors: vec![e.to_string()],
                };
            }
            info!(changed = ?changed, "reload applied");
            shards.metrics.reload(true);
            shards.metrics.set_config(&new);
            ReloadOutcome::Applied { changed, cfg: new }
        }
        Ok(Err(errs)) => {
            let errors: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
            error!(
                "reload rejected, old configuration stays in force:\n{}",
                errors.join("\n")
            );
            shards.metrics.reload(false);
            ReloadOutcome::Rejected { errors }
        }
        Err(join) => {
            error!(error = %join, "reload rejected: loader task failed");
            shards.metrics.reload(false);
            ReloadOutcome::Rejected {
                errors: vec![join.to_string()],
            }
        }
    }
}
