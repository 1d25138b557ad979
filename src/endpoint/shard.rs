//! Sharding: the daemon runs one [`Endpoint`] per tokio worker, each owning
//! the calls whose Call-ID hashes to it, all sharing one lock-free ACD
//! router. Routing decisions therefore run on every worker at once.
//!
//! What makes this work without a lock around the router:
//! * Every SIP message of a dialog carries its Call-ID, so the daemon sends
//!   it to the shard that owns the dialog ([`shard_of_call_id`]). Call-IDs
//!   sipacd makes up itself (agent INVITEs, OPTIONS pings) are drawn until
//!   they hash to the shard that sends them.
//! * Router call handles and media leg ids carry their shard in their low
//!   bits ([`ShardId::owns`]), so a router output about a call decided on
//!   one shard (an agent freed there takes a caller waiting on another) is
//!   handed to the owning shard ([`Endpoint::poll_foreign`]).
//! * What is not per call (registrations, the RTP ports, the service-level
//!   tally) is shared behind small mutexes touched once per registration or
//!   call, never per routing decision. Work that must happen once (expiring
//!   registrations, pinging static contacts, re-reading shifts) is done by
//!   shard 0, the primary.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Endpoint;
use crate::acd::{CallId, Output, Router, Timer};
use crate::media::PortPool;
use crate::registrar::Registrar;

/// This shard's index among `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardId {
    pub index: usize,
    pub count: usize,
}

impl ShardId {
    /// The one and only shard (tests, and a daemon on one worker).
    pub const SOLE: ShardId = ShardId { index: 0, count: 1 };

    pub fn is_primary(self) -> bool {
        self.index == 0
    }

    /// The shard an id made by [`ShardId::make_id`] belongs to.
    pub fn owner_of(self, id: u64) -> usize {
        shard_of_id(id, self.count)
    }

    /// Whether `id` (a router call handle or media leg) is ours.
    pub fn owns(self, id: u64) -> bool {
        self.owner_of(id) == self.index
    }

    /// The `seq`-th id of this shard: unique across shards.
    pub fn make_id(self, seq: u64) -> u64 {
        seq * self.count.max(1) as u64 + self.index as u64
    }
}

/// The shard (of `count`) an id made by [`ShardId::make_id`] belongs to:
/// router call handles and media legs.
pub fn shard_of_id(id: u64, count: usize) -> usize {
    usize::try_from(id % count.max(1) as u64).unwrap_or(0)
}

/// FNV-1a: stable across processes and cheap on short strings.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The shard that owns the dialog with this Call-ID.
pub fn shard_of_call_id(call_id: &str, count: usize) -> usize {
    if count <= 1 {
        return 0;
    }
    usize::try_from(fnv1a(call_id.trim().as_bytes()) % count as u64).unwrap_or(0)
}

/// The Call-ID of a raw SIP message (`Call-ID:` or compact `i:`), read
/// without parsing the message: the daemon picks the shard with it before
/// any shard parses. `None` if there is none (the message is malformed and
/// whichever shard gets it answers 400). Works on bytes, line by line (CRLF
/// or bare LF), so a body or an odd byte elsewhere does not matter.
pub fn raw_call_id(msg: &[u8]) -> Option<&str> {
    for span in crate::sip::message::line_spans(msg).skip(1) {
        let line = &msg[span];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None; // end of the headers
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            return std::str::from_utf8(line[colon + 1..].trim_ascii()).ok();
        }
    }
    None
}

/// A new Call-ID `TAG@host` that hashes to `shard`.
pub(super) fn call_id_for(shard: ShardId, host: &str) -> String {
    loop {
        let cid = format!("{}@{host}", super::calls::new_tag());
        if shard_of_call_id(&cid, shard.count) == shard.index {
            return cid;
        }
    }
}

/// The call a router output is about.
pub(super) fn output_call(out: &Output) -> CallId {
    match out {
        Output::Offer(o) => o.call,
        Output::Divert { call, .. } => *call,
        Output::Arm { timer, .. } => match timer {
            Timer::RingTimeout { call, .. }
            | Timer::WrapupEnd { call, .. }
            | Timer::Relax { call, .. }
            | Timer::MaxWait { call }
            | Timer::RetryRefused { call } => *call,
        },
    }
}

/// The shard (of `count`) owning the call a router output is about.
pub fn owner_of_output(out: &Output, count: usize) -> usize {
    shard_of_id(output_call(out).0, count)
}

/// A router with nothing in it: what a shard holds while the real one is
/// handed over for a reload (never used meanwhile).
pub fn stand_in_router(now: super::Now) -> Router {
    let empty = crate::acd::AcdConfig {
        agents: Default::default(),
        queues: Default::default(),
        schedules: Default::default(),
    };
    Router::new(&empty, now.mono, 0)
}

/// What the shards of one daemon share.
#[derive(Debug, Clone)]
pub struct Shared {
    pub(super) registrar: Arc<Mutex<Registrar>>,
    pub(super) ports: PortPool,
    /// Calls in progress on all shards (`max_calls` counts them all).
    pub(super) calls: Arc<AtomicUsize>,
    /// Agent states last reported in the live events: whichever shard
    /// changed an agent reports it, at the end of the turn that changed it.
    pub(super) agents_seen: Arc<Mutex<super::emit::AgentsSeen>>,
    /// Calls in setup per source, on all shards.
    pub(super) setup: Arc<crate::flood::SetupCounts>,
    /// Recent answers and handle times per queue, for the estimated wait
    /// (fed once per answer and per answered call's end).
    pub(super) estimates: Arc<Mutex<crate::acd::estimate::WaitEstimator>>,
    /// Outbound calls in progress per trunk, on all shards (`max_calls`).
    pub(super) trunk_calls: Arc<Mutex<std::collections::HashMap<String, u32>>>,
    /// Server transactions of all shards (`max_transactions` bounds them).
    pub(super) transactions: Arc<crate::sip::transaction::TxBudget>,
    /// Every shard's waiting callbacks (`callbacks.json`).
    pub(super) callbacks: Arc<Mutex<crate::call::callback::CallbackBook>>,
}

impl Shared {
    pub(super) fn new(cfg: &crate::config::Config, now: super::Now, ports: PortPool) -> Shared {
        Shared {
            registrar: Arc::new(Mutex::new(super::calls::build_registrar(cfg, now))),
            ports,
            calls: Arc::default(),
            agents_seen: Arc::default(),
            setup: Arc::default(),
            trunk_calls: Arc::default(),
            estimates: Arc::default(),
            callbacks: Arc::default(),
            transactions: Arc::new(crate::sip::transaction::TxBudget::new(
                cfg.server.max_transactions,
            )),
        }
    }

    /// Builds the shards of one daemon.
    pub fn endpoints(
        cfg: &Arc<crate::config::Config>,
        count: usize,
        now: super::Now,
    ) -> Vec<Endpoint> {
        let ports = PortPool::new(cfg.server.rtp_ports.clone());
        Shared::endpoints_with_ports(cfg, count, now, ports)
    }

    /// The same, with RTP ports from `ports` (the daemon's probes them).
    pub fn endpoints_with_ports(
        cfg: &Arc<crate::config::Config>,
        count: usize,
        now: super::Now,
        ports: PortPool,
    ) -> Vec<Endpoint> {
        let shared = Shared::new(cfg, now, ports);
        let router = Arc::new(super::routing::new_router(cfg, now.mono));
        let count = count.max(1);
        (0..count)
            .map(|index| {
                let shard = ShardId { index, count };
                Endpoint::with_shared(cfg.clone(), now, shared.clone(), router.clone(), shard)
            })
            .collect()
    }
}

/// Locks `m`, even if a thread panicked holding it (the data is plain
/// bookkeeping that stays consistent between statements).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Endpoint {
    /// The registrar every shard shares.
    pub(super) fn registrar(&self) -> MutexGuard<'_, Registrar> {
        lock(&self.shared.registrar)
    }

    /// The registrar itself, for the daemon's bindings writer thread (which
    /// takes snapshots under its lock and writes them after unlocking).
    pub fn shared_registrar(&self) -> Arc<Mutex<Registrar>> {
        self.shared.registrar.clone()
    }

    /// Calls in setup per source (the daemon's metrics read its count).
    pub fn setup_counts(&self) -> Arc<crate::flood::SetupCounts> {
        self.shared.setup.clone()
    }

    /// The bound on server transactions every shard shares (metrics).
    pub fn transaction_budget(&self) -> Arc<crate::sip::transaction::TxBudget> {
        self.shared.transactions.clone()
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Calls in progress on every shard (the drain waits for zero).
    pub fn calls_everywhere(&self) -> Arc<AtomicUsize> {
        self.shared.calls.clone()
    }

    /// A router output for a call owned by another shard: `(shard, output)`.
    /// The driver hands it to that shard's [`Endpoint::handle_foreign`].
    pub fn poll_foreign(&mut self) -> Option<(usize, Output)> {
        self.foreign.pop_front()
    }

    /// A router output decided on another shard about one of our calls.
    pub fn handle_foreign(&mut self, out: Output, now: super::Now) {
        self.apply_acd(vec![out], now);
    }

    /// Takes the router out for a reload: the driver collects every shard's
    /// handle (the shards wait meanwhile) so that it alone holds the router
    /// and may change it; the stand-in `router` is never used while parked.
    pub fn swap_router(&mut self, router: Arc<Router>) -> Arc<Router> {
        std::mem::replace(&mut self.router, router)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_call_id_reads_full_and_compact_forms() {
        let m = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nCall-ID:  abc@h \r\n\r\nbody";
        assert_eq!(raw_call_id(m), Some("abc@h"));
        let m = b"SIP/2.0 200 OK\r\ni: xyz\r\n\r\n";
        assert_eq!(raw_call_id(m), Some("xyz"));
        let m = b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-body";
        assert_eq!(raw_call_id(m), None);
        assert_eq!(raw_call_id(&[0xff, 0xfe, b'\r', b'\n']), None);
        let m = b"BYE sip:a SIP/2.0\nFrom: \xff\xfe\nCALL-ID\t: lf-only\n\n";
        assert_eq!(raw_call_id(m), Some("lf-only"));
    }

    #[test]
    fn made_up_call_ids_hash_to_their_shard() {
        for count in 1..5 {
            for index in 0..count {
                let s = ShardId { index, count };
                let cid = call_id_for(s, "127.0.0.1");
                assert_eq!(shard_of_call_id(&cid, count), index);
                let raw = format!("SIP/2.0 200 OK\r\nCall-ID: {cid}\r\n\r\n");
                let seen = raw_call_id(raw.as_bytes()).map(|c| shard_of_call_id(c, count));
                assert_eq!(seen, Some(index));
            }
        }
    }

    #[test]
    fn ids_carry_their_shard() {
        let s = ShardId { index: 2, count: 3 };
        let ids: Vec<u64> = (1..50).map(|n| s.make_id(n)).collect();
        assert!(ids.iter().all(|&id| s.owns(id) && s.owner_of(id) == 2));
        let other = ShardId { index: 0, count: 3 };
        assert!(ids.iter().all(|&id| !other.owns(id)));
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "ids are distinct");
        assert!(ShardId::SOLE.owns(7));
    }
}
