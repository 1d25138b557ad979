//! The SIP endpoint: every datagram or stream message goes
//! bytes → parse → transaction layer → handler (OPTIONS, REGISTER, calls),
//! and every answer comes back out through [`Endpoint::poll_transmit`].
//! Sans-IO: the daemon supplies `now` and owns sockets and sleeps.

mod agents;
mod announce;
mod call_table;
mod callback;
mod calls;
mod consult;
mod emit;
mod features;
mod flows;
mod in_dialog;
mod ivr;
mod media;
mod mid_call;
mod monitor;
mod monitor_dialog;
mod outbound;
mod qualify;
#[cfg(test)]
mod queue_count;
mod recording;
mod routing;
mod selfserve;
mod shard;
mod srtp;
mod tally;
#[cfg(test)]
mod tests;
mod timed_map;
mod transfer;
mod transfer_attended;
mod transfer_trunk;
mod trunk;
mod views;
mod wait;

use ahash::AHashMap as HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info};

use crate::config::Config;
use crate::media::PortPool;
use crate::sip::transaction::{TransactionLayer, TxKey};
use crate::sip::Peer;

pub use crate::events::Now;
pub use in_dialog::{Builds, Need};
pub use media::{LegId, MediaCommand, MediaEvent, VOICE_EVERY};
pub use recording::{recording_path, RECORDINGS_DIR};
pub use shard::{
    owner_of_output, raw_call_id, shard_of_call_id, shard_of_id, stand_in_router, ShardId, Shared,
};
pub use tally::{method_label, Tally};
pub use transfer_attended::{replaces_of, Relay, Replaces};
pub use trunk::TrunkCallError;

/// How often expired registrations are swept and waiting calls are offered
/// again (an agent's shift may have started).
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// A call by (Call-ID, our tag).
type CallKey = (String, String);
use call_table::CallHandle;

/// Methods we implement; everything else gets 405 with this list.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, REFER";

pub struct Endpoint {
    cfg: Arc<Config>,
    txn: TransactionLayer,
    /// Which shard of the daemon this is (calls are split by Call-ID).
    shard: ShardId,
    /// Registrar, RTP ports and tallies shared with the other shards.
    shared: Shared,
    ports: PortPool,
    /// Inbound calls by (Call-ID, our tag), with their deadlines.
    calls: call_table::CallTable,
    /// The INVITE (transaction and request) each call is being answered on.
    invites: call_table::InviteTable,
    /// BYEs we sent, to end their call when answered.
    byes: HashMap<TxKey, CallHandle>,
    /// The ACD router: agents' states, waiting callers, offers.
    router: Arc<crate::acd::Router>,
    /// Router outputs about calls of other shards, to hand over.
    foreign: std::collections::VecDeque<(usize, crate::acd::Output)>,
    /// Router call handles to our calls.
    acd_calls: HashMap<crate::acd::CallId, CallHandle>,
    next_acd: u64,
    acd_timers: routing::AcdTimers,
    /// Router outputs not carried out yet, and whether a loop is draining
    /// them (see `apply_acd`).
    acd_pending: std::collections::VecDeque<crate::acd::Output>,
    acd_applying: bool,
    shift_check_at: Instant,
    /// INVITEs offering a call to an agent, by client transaction.
    agent_invites: HashMap<TxKey, CallHandle>,
    /// Answered agent legs by (Call-ID, our tag), for the agent's BYE.
    agent_dialogs: HashMap<CallKey, CallHandle>,
    /// INVITEs to supervisors' phones, and their answered dialogs.
    monitor_invites: HashMap<TxKey, CallHandle>,
    monitor_dialogs: HashMap<CallKey, CallHandle>,
    /// Session refreshes (UPDATE) we sent, by client transaction.
    refreshes: HashMap<TxKey, mid_call::Refresh>,
    /// OPTIONS pings to static contacts, by client transaction.
    qualifies: HashMap<TxKey, String>,
    /// Static contacts whose last ping timed out.
    unreachable: std::collections::HashSet<String>,
    qualify_at: Instant,
    /// Media legs to their call, for the media engine's events.
    legs: HashMap<LegId, CallHandle>,
    next_leg: LegId,
    media_out: std::collections::VecDeque<MediaCommand>,
    out: outbound::Queue,
    draining: bool,
    /// When expired registrations are next swept (and the file rewritten).
    housekeeping_at: Instant,
    /// What this shard counted of its work since the daemon last looked.
    tally: Tally,
    /// The event stream on its way to its consumers.
    stream: emit::Stream,
    /// Calls accepted so far (their event-stream numbers).
    next_seq: u64,
    /// `[[numbers]]` by number: index into `cfg.numbers`.
    numbers: HashMap<String, usize>,
    /// Whether the connection a TLS binding was registered on is still up
    /// (the transport's answer; `None`: assumed up, as in tests).
    flows: Option<FlowCheck>,
    /// Calls placed through trunks, by id, with their ring deadlines, and
    /// their INVITE transactions and answered dialogs.
    trunk_calls: timed_map::TimedMap<u64, crate::call::trunk::TrunkLeg>,
    trunk_invites: HashMap<TxKey, u64>,
    trunk_dialogs: HashMap<CallKey, u64>,
    next_trunk: u64,
    /// Trunk calls placed for blind transfers, by trunk call id.
    trunk_transfers: HashMap<u64, transfer_trunk::TrunkTransfer>,
    /// Work for other shards (attended transfer), and the legs that moved
    /// away from here: their SIP messages by Call-ID, media events by leg.
    relay_out: std::collections::VecDeque<(usize, Relay)>,
    moved: HashMap<String, transfer_attended::Moved>,
    moved_legs: HashMap<LegId, usize>,
    /// This shard's callbacks by router id, with their retry deadlines,
    /// and the outbound calls that call their customers.
    callbacks: timed_map::TimedMap<crate::acd::CallId, crate::call::callback::Callback>,
    callback_trunks: HashMap<u64, CallHandle>,
    /// Checked messages by how far they were typed into rsip.
    builds: Builds,
}

/// Whether a connection to this peer is open: asked before an agent
/// registered over TLS is offered a call (a TLS flow is never re-opened).
pub type FlowCheck = Arc<dyn Fn(Peer) -> bool + Send + Sync>;

impl Endpoint {
    /// Sets how to tell whether a TLS flow is still up (the daemon's
    /// transports), before the shard starts.
    pub fn set_flow_check(&mut self, flows: FlowCheck) {
        self.flows = Some(flows);
    }

    /// A stand-alone endpoint: the only shard, owning every call.
    pub fn new(cfg: Arc<Config>, now: Now) -> Endpoint {
        let shared = Shared::new(&cfg, now, PortPool::new(cfg.server.rtp_ports.clone()));
        let router = Arc::new(routing::new_router(&cfg, now.mono));
        Endpoint::with_shared(cfg, now, shared, router, ShardId::SOLE)
    }

    /// Shard `shard` of a daemon (see [`Shared::endpoints`]).
    fn with_shared(
        cfg: Arc<Config>,
        now: Now,
        shared: Shared,
        router: Arc<crate::acd::Router>,
        shard: ShardId,
    ) -> Endpoint {
        let mut ep = Endpoint {
            ports: shared.ports.clone(),
            txn: TransactionLayer::with_budget(Default::default(), shared.transactions.clone()),
            shard,
            shared,
            calls: Default::default(),
            invites: Default::default(),
            byes: HashMap::new(),
            router,
            foreign: Default::default(),
            acd_calls: HashMap::new(),
            next_acd: 0,
            acd_timers: routing::AcdTimers::default(),
            acd_pending: Default::default(),
            acd_applying: false,
            shift_check_at: now.mono + routing::SHIFT_CHECK,
            agent_invites: HashMap::new(),
            agent_dialogs: HashMap::new(),
            monitor_invites: HashMap::new(),
            monitor_dialogs: HashMap::new(),
            qualifies: HashMap::new(),
            refreshes: HashMap::new(),
            unreachable: Default::default(),
            qualify_at: now.mono + Duration::from_secs(1),
            legs: HashMap::new(),
            next_leg: 0,
            media_out: Default::default(),
            out: outbound::Queue::default(),
            draining: false,
            housekeeping_at: now.mono + HOUSEKEEPING,
            tally: Tally::default(),
            stream: Default::default(),
            next_seq: 0,
            numbers: number_index(&cfg),
            flows: None,
            trunk_calls: Default::default(),
            trunk_invites: HashMap::new(),
            trunk_dialogs: HashMap::new(),
            next_trunk: 0,
            trunk_transfers: HashMap::new(),
            relay_out: Default::default(),
            moved: HashMap::new(),
            moved_legs: HashMap::new(),
            callbacks: Default::default(),
            callback_trunks: HashMap::new(),
            builds: Builds::default(),
            cfg,
        };
        if shard.is_primary() {
            ep.announce_agents(now);
        }
        ep
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.cfg.clone()
    }

    /// Swaps in a validated configuration. Calls in progress keep the
    /// target they were routed to; registrations are kept. For a shard of
    /// a daemon the driver reloads the shared router itself (see
    /// [`Endpoint::swap_router`]) and calls [`Endpoint::resume_after_reload`].
    pub fn apply_config(&mut self, cfg: Arc<Config>, now: Now) {
        let out = match Arc::get_mut(&mut self.router) {
            Some(router) => reload_router(router, &cfg, now),
            None => {
                tracing::error!("router shared with other shards: not reloaded here");
                Vec::new()
            }
        };
        let ports = (cfg.server.rtp_ports != self.cfg.server.rtp_ports)
            .then(|| PortPool::new(cfg.server.rtp_ports.clone()));
        let router = self.router.clone();
        self.resume_after_reload(cfg, router, ports, out, now);
    }

    /// This shard's part of a reload, after the driver reloaded the router
    /// (`out` are the router's outputs for this shard's calls; `ports` a new
    /// RTP port pool if the range changed).
    pub fn resume_after_reload(
        &mut self,
        cfg: Arc<Config>,
        router: Arc<crate::acd::Router>,
        ports: Option<PortPool>,
        out: Vec<crate::acd::Output>,
        now: Now,
    ) {
        self.router = router;
        if let Some(ports) = ports {
            // Leases of calls in progress return to the old pool, which
            // simply goes away with them.
            self.ports = ports;
        }
        self.numbers = number_index(&cfg);
        self.shared
            .transactions
            .set_cap(cfg.server.max_transactions);
        self.cfg = cfg;
        self.touch_all_agents();
        if self.shard.is_primary() {
            calls::update_registrar(&mut shard::lock(&self.shared.registrar), &self.cfg);
        }
        self.apply_acd(out, now);
        self.requeue_held_callbacks(now);
        if self.shard.is_primary() {
            self.announce_agents(now);
        }
    }

    /// From now on new calls get 503; calls in progress continue.
    pub fn start_drain(&mut self) {
        self.draining = true;
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len() + self.trunk_calls.len()
    }

    /// Ends every call with a BYE (the drain deadline passed).
    pub fn shutdown(&mut self, now: Now) {
        let keys: Vec<_> = self.calls.handles().collect();
        for key in keys {
            self.hang_up(key, now);
        }
        let outbound: Vec<u64> = self.trunk_calls.keys().copied().collect();
        for id in outbound {
            self.hang_up_trunk_call(id, now);
        }
    }

    /// Whether the daemon is behind on what it is sent (the shard's task
    /// decides): new calls are then turned away with a stateless 503.
    pub fn set_behind(&mut self, behind: bool) {
        self.txn.set_behind(behind);
    }

    /// One message as received from `from`.
    pub fn handle_inbound(&mut self, bytes: &[u8], from: Peer, now: Now) {
        // A leg handed to another shard by an attended transfer.
        if self.forward_moved(bytes, from) {
            return;
        }
        // A retransmission (or a repeated ACK) is recognised from its bytes
        // alone: the transaction layer saw the very same ones before.
        let ids = crate::sip::message::peek_request(bytes);
        if let Some(ids) = &ids {
            if self.txn.absorb_repeat(ids, bytes, now.mono) {
                self.tally.request("in", &ids.method);
                return;
            }
        }
        // Checked once; typed into rsip only as far as its handling needs
        // (`in_dialog`).
        match crate::sip::message::check(bytes) {
            Ok(msg) => self.on_checked(msg, ids.as_ref(), bytes, from, now),
            // A CRLF keep-alive (RFC 5626 §4.4.1) is not an error.
            Err(crate::sip::message::ParseError::Empty) => {}
            Err(err) => {
                self.tally.parse_errors += 1;
                debug!(%from, error = %err, "unparsable message");
                if let Some(resp) = crate::sip::message::error_response(bytes, &err) {
                    // "SIP/2.0 400 ...": the method is unknown, it did not parse.
                    let code = resp.get(8..11).and_then(|c| std::str::from_utf8(c).ok());
                    if let Some(code) = code.and_then(|c| c.parse().ok()) {
                        self.tally.response("out", "other", code);
                    }
                    self.out.push_bytes(from, Bytes::from(resp));
                }
            }
        }
        self.reindex_deadlines();
    }

    /// Timers due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.txn.handle_timeout(now.mono);
        self.drain_txn_events(now);
        // Only the calls that have something due: one deadline table.
        let due = self.calls.due(now.mono);
        for key in due {
            self.call_timeout(key, now);
        }
        self.acd_timeouts(now);
        self.trunk_timeouts(now);
        self.callback_retries(now);
        if now.mono >= self.housekeeping_at {
            // Registrations are shared: the primary sweeps them.
            let expired = if self.shard.is_primary() {
                let mut reg = self.registrar();
                let expired = reg.expire(now.wall);
                let auth = reg.take_auth_tally();
                drop(reg);
                self.tally.auth.add(auth);
                expired
            } else {
                Vec::new()
            };
            for (user, contact) in expired {
                info!(%user, %contact, "registration expired");
                if !self.has_usable_binding(&user, now) {
                    self.agent_reachable(&user, false, now);
                }
            }
            self.sweep_moved(now);
            self.housekeeping_at = now.mono + HOUSEKEEPING;
        }
        if self.shard.is_primary() && now.mono >= self.qualify_at {
            self.qualify_round(now);
            self.qualify_at = now.mono + qualify::QUALIFY_EVERY;
        }
        self.reindex_deadlines();
    }

    /// Re-reads the deadlines of the calls, trunk legs and callbacks the
    /// last handler changed (each table knows which).
    fn reindex_deadlines(&mut self) {
        self.calls.reindex();
        self.trunk_calls.reindex();
        self.callbacks.reindex();
    }

    /// The earliest instant the endpoint wants `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.calls.next_deadline();
        let acd = [self.acd_timers.next(), Some(self.shift_check_at)]
            .into_iter()
            .flatten()
            .min();
        [
            acd,
            self.txn.poll_timeout(),
            calls,
            self.trunk_calls.next_deadline(),
            self.callback_deadline(),
            Some(self.housekeeping_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Next message to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<(Peer, Bytes)> {
        // The handler that ran before changed some deadlines.
        self.reindex_deadlines();
        while let Some(t) = self.txn.poll_transmit() {
            self.tally.wire("out", &t.wire.kind);
            self.out.push_bytes(t.to, t.wire.bytes);
        }
        self.out.pop()
    }
}

/// `[[numbers]]` by number (the first entry of a number wins, as a scan
/// from the top would have found it).
fn number_index(cfg: &Config) -> HashMap<String, usize> {
    let mut m = HashMap::with_capacity(cfg.numbers.len());
    for (i, n) in cfg.numbers.iter().enumerate() {
        m.entry(n.number.clone()).or_insert(i);
    }
    m
}

/// Reloads the router with `cfg`; returns its outputs (callers of removed
/// queues diverted, agents settled, waiting callers re-routed).
pub fn reload_router(
    router: &mut crate::acd::Router,
    cfg: &Config,
    now: Now,
) -> Vec<crate::acd::Output> {
    router.reload(
        &crate::acd::AcdConfig::from(cfg),
        now.mono,
        routing::wall(now),
    )
}
