//! The tokio side: binds sockets, feeds the sans-IO [`Endpoint`] with
//! messages and timeouts, sends what it produces, and handles signals
//! (SIGHUP reload, SIGTERM/SIGINT drain). No SIP logic lives here.

pub mod media;
pub mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::{self, Config, ConfigErrors};
use crate::endpoint::{Endpoint, Now};
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

    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(4096);
    let (transports, tcp) = Transports::bind(&cfg.server.sip, in_tx)
        .await
        .map_err(DaemonError::Bind)?;
    transports.start(tcp);
    for l in &cfg.server.sip {
        info!(transport = %l.transport, addr = %l.addr, "listening");
    }

    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;

    let bind_ip = cfg
        .server
        .sip
        .first()
        .map_or(cfg.server.advertise, |l| l.addr.ip());
    let mut media = media::spawn(bind_ip, Duration::from_secs(cfg.server.rtp_timeout_s));
    let mut ep = Endpoint::new(cfg.clone(), now());
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
            _ = term.recv() => drain_deadline = Some(start_drain(&mut ep, &current)),
            _ = int.recv() => drain_deadline = Some(start_drain(&mut ep, &current)),
        }
        while let Some((to, bytes)) = ep.poll_transmit() {
            transports.send(to, bytes).await;
        }
        while let Some(cmd) = ep.poll_media() {
            let _ = media.commands.send(cmd);
        }
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
    Ok(())
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
            let changed = config::diff(old, &new);
            info!(changed = ?changed, "reload applied");
            ep.apply_config(Arc::new(new), now());
            ReloadOutcome::Applied { changed }
        }
        Ok(Err(errs)) => {
            let errors: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
            error!(
                "reload rejected, old configuration stays in force:\n{}",
                errors.join("\n")
            );
            ReloadOutcome::Rejected { errors }
        }
        Err(join) => {
            error!(error = %join, "reload rejected: loader task failed");
            ReloadOutcome::Rejected {
                errors: vec![join.to_string()],
            }
        }
    }
}
