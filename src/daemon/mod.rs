//! The tokio side: binds sockets, feeds the sans-IO [`Endpoint`] with
//! messages and timeouts, sends what it produces, and handles signals
//! (SIGHUP reload, SIGTERM/SIGINT drain). No SIP logic lives here.

pub mod control;
pub mod media;
pub mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::admin::AdminConfig;
use crate::cdr::{CdrError, CdrHandle, CdrStore, CdrWriter, QueueLogHandle, QueueLogWriter};
use crate::config::{self, Config, ConfigErrors};
use crate::endpoint::{Endpoint, Now};
use control::{Control, ControlBackend};
use transport::{Inbound, Transports};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("configuration rejected:\n{0}")]
    Config(ConfigErrors),
    #[error("cannot bind SIP listeners: {0}")]
    Bind(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot prepare data_dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("call records: {0}")]
    Cdr(#[from] CdrError),
    #[error("cannot open queue_log {path}: {source}")]
    QueueLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind the admin API on {addr}: {source}")]
    AdminBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Outcome of a reload, for logs and (later) the admin API.
#[derive(Debug)]
pub enum ReloadOutcome {
    Applied { changed: Vec<String> },
    Rejected { errors: Vec<String> },
}

/// Runs the daemon until SIGTERM/SIGINT and the drain that follows.
pub async fn run(config_path: PathBuf) -> Result<(), DaemonError> {
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

    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(4096);
    let (transports, tcp) = Transports::bind(&cfg.server.sip, in_tx)
        .await
        .map_err(DaemonError::Bind)?;
    transports.start(tcp);
    let metrics = crate::metrics::Metrics::new();
    metrics.attach_transport(transports.stats.clone());
    metrics.attach_cdr(cdr.handle().stats_source());
    for l in &cfg.server.sip {
        info!(transport = %l.transport, addr = %l.addr, "listening");
    }
    // After the SIP listeners: `/health` answering means SIP is up too.
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<Control>(64);
    let hub = crate::admin::EventHub::default();
    let (admin_stop, admin_task) = start_admin(&cfg, ctl_tx, metrics.clone(), &hub).await?;

    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;

    let bind_ip = cfg
        .server
        .sip
        .first()
        .map_or(cfg.server.advertise, |l| l.addr.ip());
    let rtp_timeout = Duration::from_secs(cfg.server.rtp_timeout_s);
    let mut media = media::spawn(bind_ip, rtp_timeout, metrics.clone());
    let mut ep = Endpoint::new(cfg.clone(), now());
    ep.set_metrics(metrics);
    if qlog_tx.is_some() {
        ep.enable_queue_log(now());
    }
    let records = cdr.handle();
    let mut current = cfg;
    let mut drain_deadline: Option<Instant> = None;

    loop {
        let wake = ep.poll_timeout();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(msg) = in_rx.recv() => {
                ep.handle_inbound(&msg.bytes, msg.from, now());
                // Drain whatever else already arrived before sending, so a
                // burst is handled in one go.
                while let Ok(msg) = in_rx.try_recv() {
                    ep.handle_inbound(&msg.bytes, msg.from, now());
                }
            }
            _ = sleep => ep.handle_timeout(now()),
            Some(ev) = media.events.recv() => ep.handle_media_event(ev, now()),
            _ = hup.recv() => {
                let outcome = reload(&config_path, &current, &mut ep).await;
                if let ReloadOutcome::Applied { .. } = outcome {
                    current = ep.config();
                }
            }
            Some(req) = ctl_rx.recv() => {
                if let Some(cfg) = on_control(req, &config_path, &current, &mut ep).await {
                    current = cfg;
                }
            }
            _ = term.recv() => drain_deadline = Some(start_drain(&mut ep, &current)),
            _ = int.recv() => drain_deadline = Some(start_drain(&mut ep, &current)),
        }
        while let Some((to, bytes)) = ep.poll_transmit() {
            transports.send(to, bytes).await;
        }
        while let Some(cmd) = ep.poll_media() {
            let _ = media.commands.send(cmd);
        }
        write_records(&mut ep, &records);
        write_queue_log(&mut ep, qlog_tx.as_ref());
        publish_events(&mut ep, &hub);
        if let Some(deadline) = drain_deadline {
            if ep.active_calls() == 0 {
                info!("drained: no calls left, exiting");
                break;
            }
            if Instant::now() >= deadline {
                warn!(
                    calls = ep.active_calls(),
                    "drain_s elapsed, exiting with calls up"
                );
                break;
            }
        }
    }
    ep.shutdown(now());
    while let Some((to, bytes)) = ep.poll_transmit() {
        transports.send(to, bytes).await;
    }
    ep.finish_records(now());
    write_records(&mut ep, &records);
    write_queue_log(&mut ep, qlog_tx.as_ref());
    drop(qlog_tx);
    if let Some(q) = qlog {
        let _ = tokio::task::spawn_blocking(move || q.shutdown()).await;
    }
    publish_events(&mut ep, &hub);
    drop(hub); // ends the live event streams
    let _ = admin_stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), admin_task).await;
    // Joining the writer blocks until the last batch is committed.
    match tokio::task::spawn_blocking(move || cdr.shutdown()).await {
        Ok(st) => info!(
            written = st.written,
            failed = st.failed,
            "call records flushed"
        ),
        Err(e) => error!(error = %e, "call record writer did not stop cleanly"),
    }
    Ok(())
}

/// Hands the endpoint's queued call records to the writer thread.
fn write_records(ep: &mut Endpoint, cdr: &CdrHandle) {
    while let Some(r) = ep.poll_record() {
        if let Err(e) = cdr.record(r) {
            error!(error = %e, "call record lost");
        }
    }
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

/// Hands the endpoint's queue_log lines to their writer thread.
fn write_queue_log(ep: &mut Endpoint, qlog: Option<&QueueLogHandle>) {
    let Some(q) = qlog else { return };
    while let Some(line) = ep.poll_queue_log() {
        if !q.write(line.format()) {
            error!("queue_log writer gone: line lost");
        }
    }
}

/// Hands the endpoint's live events to the admin API's streams.
fn publish_events(ep: &mut Endpoint, hub: &crate::admin::EventHub) {
    let t = now();
    while let Some(ev) = ep.poll_event(t) {
        hub.publish(&ev);
    }
}

/// Binds `server.admin` and serves the API until the returned sender fires.
async fn start_admin(
    cfg: &Config,
    ctl: mpsc::Sender<Control>,
    metrics: Arc<crate::metrics::Metrics>,
    hub: &crate::admin::EventHub,
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
    let app = crate::admin::router_with_metrics(
        Arc::new(ControlBackend::new(ctl)),
        AdminConfig {
            token: cfg.server.admin_token.clone(),
            cdr_dir: Some(cfg.server.data_dir.clone()),
            timezone: cfg.server.timezone,
        },
        metrics,
    );
    let app = crate::admin::with_live_routes(app, hub, cfg.server.admin_token.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        if let Err(e) = crate::admin::serve(listener, app, stop).await {
            error!(error = %e, "admin API stopped");
        }
    });
    Ok((stop_tx, task))
}

/// Answers one admin request; returns the new configuration if it reloaded.
async fn on_control(
    req: Control,
    path: &std::path::Path,
    current: &Config,
    ep: &mut Endpoint,
) -> Option<Arc<Config>> {
    let t = now();
    match req {
        Control::Queues(reply) => drop(reply.send(ep.queue_views(t))),
        Control::Agents(reply) => drop(reply.send(ep.agent_views(t))),
        Control::Calls(reply) => drop(reply.send(ep.call_views(t))),
        Control::SetAgentState { id, req, reply } => {
            let res = ep.set_agent_state(&id, req, t);
            if res.is_ok() {
                info!(agent = %id, "agent state set over the admin API");
            }
            drop(reply.send(res));
        }
        Control::Reload(reply) => {
            let (res, cfg) = match reload(path, current, ep).await {
                ReloadOutcome::Applied { changed } => (Ok(changed), Some(ep.config())),
                ReloadOutcome::Rejected { errors } => (Err(errors), None),
            };
            drop(reply.send(res));
            return cfg;
        }
    }
    None
}

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall: SystemTime::now(),
    }
}

fn start_drain(ep: &mut Endpoint, cfg: &Config) -> Instant {
    info!(
        calls = ep.active_calls(),
        drain_s = cfg.server.drain_s,
        "draining: new calls get 503"
    );
    ep.start_drain();
    // Poll at least once a second while draining so the deadline is noticed.
    ep.set_tick(Duration::from_secs(1), Instant::now());
    Instant::now() + Duration::from_secs(cfg.server.drain_s)
}

/// Re-reads the file. A valid file replaces the configuration in place
/// (calls and registrations untouched); an invalid one changes nothing.
pub async fn reload(path: &std::path::Path, old: &Config, ep: &mut Endpoint) -> ReloadOutcome {
    let path = path.to_path_buf();
    // Reading prompts is file I/O: keep it off the signalling task's thread.
    let loaded = tokio::task::spawn_blocking(move || config::load(&path)).await;
    match loaded {
        Ok(Ok(new)) => {
            if new.server.sip != old.server.sip {
                warn!("reload: server.sip changes take effect at the next restart");
            }
            if new.server.queue_log != old.server.queue_log {
                warn!("reload: server.queue_log changes take effect at the next restart");
            }
            let changed = config::diff(old, &new);
            info!(changed = ?changed, "reload applied");
            ep.metrics().reload(true);
            ep.apply_config(Arc::new(new), now());
            ReloadOutcome::Applied { changed }
        }
        Ok(Err(errs)) => {
            let errors: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
            error!(
                "reload rejected, old configuration stays in force:\n{}",
                errors.join("\n")
            );
            ep.metrics().reload(false);
            ReloadOutcome::Rejected { errors }
        }
        Err(join) => {
            error!(error = %join, "reload rejected: loader task failed");
            ep.metrics().reload(false);
            ReloadOutcome::Rejected {
                errors: vec![join.to_string()],
            }
        }
    }
}
