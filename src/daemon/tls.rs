//! SIP over TLS: the handshake of an accepted connection and the server
//! configuration it is made with. After the handshake a TLS connection is
//! served exactly as a TCP one (`transport::Transports::accepted`): same
//! framing, CRLF keep-alives, limits and timeouts, same connection table.
//!
//! Agents are never connected to over TLS by us: what is sent to an agent
//! registered over TLS goes down the connection it registered on, or is
//! dropped when that is gone (RFC 5626 flows; see `Transports::send`). So
//! there is no client side, and no question of verifying agents'
//! certificates. Agents verify ours (or are told not to).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::tcp_policy::ConnClock;
use super::transport::{Slot, Transports};
use crate::config::tls::{server_config, TlsFiles};
use crate::sip::Peer;

/// The acceptor new TLS connections use. Shared by every listener; a
/// reload swaps it, connections already up keep the one they began with.
#[derive(Clone, Default)]
pub struct TlsAcceptors {
    current: Arc<RwLock<Option<TlsAcceptor>>>,
}

impl TlsAcceptors {
    /// Loads `files` (or forgets the acceptor for `None`). On error the
    /// acceptor in force stays, and the error is returned for the log. The
    /// config check has read the same files moments before, so an error
    /// here is a file changed in between.
    pub fn load(&self, files: Option<&TlsFiles>) -> Result<(), String> {
        let next = match files {
            None => None,
            Some(f) => {
                let cfg = server_config(f).map_err(|(_, e)| e.to_string())?;
                Some(TlsAcceptor::from(cfg))
            }
        };
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        *cur = next;
        Ok(())
    }

    /// `load`, logged: at start and on each reload.
    pub fn reload(&self, files: Option<&TlsFiles>) {
        match (self.load(files), files) {
            (Ok(()), Some(f)) => {
                info!(cert = %f.cert.display(), "TLS certificate loaded; new TLS connections use it")
            }
            (Ok(()), None) => {}
            (Err(e), _) => {
                warn!(error = %e, "TLS certificate not reloaded; the previous one stays in use")
            }
        }
    }

    fn get(&self) -> Option<TlsAcceptor> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Runs the handshake of a connection accepted on a `tls:` listener on its
/// own task, bounded by the first message's timeout (a peer that opens and
/// says nothing holds its slot no longer than over TCP), then serves it.
pub(super) fn accept(
    t: &Transports,
    stream: TcpStream,
    addr: SocketAddr,
    clock: ConnClock,
    slot: Slot,
) {
    let Some(acceptor) = t.tls().get() else {
        // A tls: listener always has its files (config check); not loaded
        // means they failed at start, which was logged.
        t.stats
            .tls_handshake_failures
            .fetch_add(1, Ordering::Relaxed);
        return;
    };
    let t = t.clone();
    tokio::spawn(async move {
        let (at, _) = clock.deadline(t.policy());
        let res = tokio::time::timeout_at(at.into(), acceptor.accept(stream)).await;
        match res {
            Ok(Ok(tls)) => {
                let (rd, wr) = tokio::io::split(tls);
                t.accepted(rd, wr, Peer::tls(addr), clock, slot);
            }
            Ok(Err(e)) => {
                t.stats
                    .tls_handshake_failures
                    .fetch_add(1, Ordering::Relaxed);
                debug!(peer = %addr, error = %e, "TLS handshake failed");
            }
            Err(_) => {
                t.stats
                    .tls_handshake_failures
                    .fetch_add(1, Ordering::Relaxed);
                debug!(peer = %addr, "TLS handshake not done in time");
            }
        }
    });
}
