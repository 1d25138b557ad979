//! The admin port's accept loop, bounded: at most `max_connections` open
//! (more are closed at once, so idle clients cannot use up the process's
//! file descriptors), and a header timeout that also closes a keep-alive
//! connection waiting idle for its next request (slowloris); a request body
//! that stops arriving for as long fails the request. A response already
//! streaming (the live events) is not cut by either.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower_http::timeout::RequestBodyTimeout;
use tracing::{debug, info, warn};

/// The admin port's limits (`server.admin_max_connections`,
/// `server.admin_header_timeout_s`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdminLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts, for the metrics.
#[derive(Debug, Default)]
pub struct AdminConnStats {
    pub open: AtomicUsize,
    pub refused: AtomicU64,
}

/// One open connection, counted until dropped.
struct Open(Arc<AdminConnStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves;
/// connections then finish the request they are on.
pub async fn serve_limited(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: AdminLimits,
    stats: Arc<AdminConnStats>,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    let mut refusing = false;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if stats.open.load(Ordering::Relaxed) >= limits.max_connections {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            if !refusing {
                warn!(%peer, max = limits.max_connections, "too many admin connections: closed at once (logged once until one is accepted again)");
                refusing = true;
            }
            continue;
        }
        if refusing {
            info!("accepting admin connections again");
            refusing = false;
        }
        stats.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(stats.clone());
        let app = RequestBodyTimeout::new(app.clone(), limits.header_timeout);
        let svc = TowerToHyperService::new(app);
        let mut stop = stop_rx.clone();
        let timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _open = open;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(timeout);
            let conn = http.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let res = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = res {
                debug!(%peer, error = %e, "admin connection ended");
            }
        });
    }
    let _ = stop_tx.send(true);
    Ok(())
}
