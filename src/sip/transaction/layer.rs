//! The transaction layer: routes each message to its transaction by key,
//! owns every transaction's timers, and queues what must be sent.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use rsip::{Method, Request, Response, StatusCode, StatusCodeKind};
use tracing::debug;

use super::ack_ids;
use super::budget::TxBudget;
use super::client_invite::{ClientInvite, RespOutcome};
use super::client_non_invite::ClientNonInvite;
use super::key::{Side, TxKey};
use super::server_invite::{AckOutcome, ServerInvite, State};
use super::server_non_invite::{SendOutcome, ServerNonInvite};
use super::timers::{TimerConfig, TimerKind, TimerTable};
use super::uas2xx::{Uas2xxEvent, Uas2xxRetransmitter};
use super::{Fired, Transmit, TxError, Wire};
use crate::sip::headers::response_with_status;
use crate::sip::message::RequestIds;
use crate::sip::Peer;

/// Something the server side tells the TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A new request; answer it with `send_response(&key, ..)`. An INVITE
    /// has already been answered with 100 Trying.
    NewRequest {
        key: TxKey,
        req: Request,
        from: Peer,
    },
    /// An ACK for a 2xx (its own transaction, nothing to answer).
    Ack { req: Request, from: Peer },
    /// A CANCEL matching a pending INVITE. Answer 200 on `cancel_key` and,
    /// unless `invite_answered`, 487 on `invite_key`.
    Cancel {
        invite_key: TxKey,
        cancel_key: TxKey,
        cancel_req: Request,
        from: Peer,
        invite_answered: bool,
    },
    /// Timer H: the ACK for our 300-699 never came.
    Timeout { key: TxKey },
    /// Our 2xx to an INVITE was never ACKed within 64*T1: send BYE. `tag`
    /// is the 2xx's To tag (ours): with the Call-ID it names the dialog.
    AckTimeout {
        call_id: String,
        cseq: u32,
        tag: Option<String>,
    },
}

/// Something the client side tells the TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response for one of our transactions (1xx, the first 2xx, the
    /// first 300-699; the ACK for 300-699 is already sent).
    Response { key: TxKey, resp: Response },
    /// A 2xx to INVITE with no transaction left: a retransmission the TU
    /// must ACK again (RFC 3261 §13.2.2.4).
    Stray2xx { resp: Response, from: Peer },
    /// Timer B or F: no final response.
    Timeout { key: TxKey },
}

/// Events queued by `handle_timeout`.
// Events are moved out at once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    Server(ServerEvent),
    Client(ClientEvent),
}

#[derive(Debug)]
enum ServerTx {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

impl ServerTx {
    fn timers(&self) -> &TimerTable {
        match self {
            ServerTx::Invite(t) => &t.timers,
            ServerTx::NonInvite(t) => &t.timers,
        }
    }

    fn peer(&self) -> Peer {
        match self {
            ServerTx::Invite(t) => t.peer,
            ServerTx::NonInvite(t) => t.peer,
        }
    }

    fn on_retransmit(&self) -> Option<&Wire> {
        match self {
            ServerTx::Invite(t) => t.on_retransmit(),
            ServerTx::NonInvite(t) => t.on_retransmit(),
        }
    }
}

// Every variant holds a whole request; the size gap is not worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum ClientTx {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

impl ClientTx {
    /// The request as sent.
    fn wire(&self) -> &Wire {
        match self {
            ClientTx::Invite(t) => t.wire(),
            ClientTx::NonInvite(t) => t.wire(),
        }
    }

    fn timers(&self) -> &TimerTable {
        match self {
            ClientTx::Invite(t) => &t.timers,
            ClientTx::NonInvite(t) => &t.timers,
        }
    }

    fn peer(&self) -> Peer {
        match self {
            ClientTx::Invite(t) => t.peer,
            ClientTx::NonInvite(t) => t.peer,
        }
    }
}

/// The maps keyed by transaction: every message in or out looks a few
/// keys up, and SipHash was ~5% of a routed call's instructions; aHash is
/// randomly seeded too (keys are peers' branches).
type TxMap<V> = HashMap<TxKey, V, ahash::RandomState>;

/// All transactions of the daemon. See the module docs for the I/O style.
#[derive(Debug)]
pub struct TransactionLayer {
    cfg: TimerConfig,
    servers: TxMap<ServerTx>,
    clients: TxMap<ClientTx>,
    retransmitter: Uas2xxRetransmitter,
    transmits: VecDeque<Transmit>,
    /// INVITE transactions whose automatic 100 Trying waits for the end
    /// of the turn: a final answer sent by the TU in the same turn makes
    /// it needless (RFC 3261 §17.2.1: a UAS that answers within 200 ms
    /// need not send it), so an IVR or queue answering at once sends one
    /// message fewer.
    trying_due: Vec<(TxKey, Transmit)>,
    events: VecDeque<TxEvent>,
    /// Each transaction's next deadline, earliest first, so that waking up
    /// costs O(log n) instead of a scan of every transaction. Entries go
    /// stale when a timer moves; `indexed` says which entry is current.
    deadlines: BinaryHeap<Reverse<Deadline>>,
    indexed: TxMap<Instant>,
    /// The bytes of what server transactions were fed, so that a
    /// byte-identical repeat is recognised before anyone parses it.
    seen: TxMap<Seen>,
    /// ACKs that matched a 2xx (keyed like their own transaction), kept
    /// for 64*T1 with their expiry in arrival order.
    acks: TxMap<Box<[u8]>>,
    acks_expire: VecDeque<(Instant, TxKey)>,
    /// The bound on server transactions, shared with the other shards.
    budget: Arc<TxBudget>,
    /// The daemon is behind on what it is sent: new calls are turned away
    /// (see [`TransactionLayer::set_behind`]).
    behind: bool,
}

impl Drop for TransactionLayer {
    fn drop(&mut self) {
        self.budget.release(self.servers.len());
    }
}

/// A server transaction's request and, once a 300-699 was ACKed, its ACK.
#[derive(Debug)]
struct Seen {
    request: Box<[u8]>,
    ack: Option<Box<[u8]>>,
}

/// A heap entry: ordered by time only.
#[derive(Debug)]
struct Deadline {
    at: Instant,
    key: TxKey,
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Deadline {}
impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

impl TransactionLayer {
    pub fn new(cfg: TimerConfig) -> Self {
        TransactionLayer {
            cfg,
            servers: TxMap::default(),
            clients: TxMap::default(),
            retransmitter: Uas2xxRetransmitter::new(cfg),
            transmits: VecDeque::new(),
            trying_due: Vec::new(),
            events: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            indexed: TxMap::default(),
            seen: TxMap::default(),
            acks: TxMap::default(),
            acks_expire: VecDeque::new(),
            budget: Arc::default(),
            behind: false,
        }
    }

    /// Whether the daemon is behind on what it is sent (its driver says:
    /// the daemon's measure is how long datagrams waited before being
    /// read). While it is, an INVITE that would start a new call
    /// is answered statelessly, 503 with Retry-After, and counted
    /// (`TxBudget::shed`): the calls already up keep the CPU, so an
    /// overload ends when the burst does instead of feeding on the
    /// retransmissions of calls that are set up too late.
    pub fn set_behind(&mut self, behind: bool) {
        self.behind = behind;
    }

    /// The same, counting its server transactions against `budget`.
    pub fn with_budget(cfg: TimerConfig, budget: Arc<TxBudget>) -> Self {
        let mut l = TransactionLayer::new(cfg);
        l.budget = budget;
        l
    }

    /// The bound its server transactions count against.
    pub fn budget(&self) -> &Arc<TxBudget> {
        &self.budget
    }

    /// Server transactions of this layer.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    /// Re-reads `key`'s next deadline into the heap after any change, and
    /// drops stale entries from the top so `poll_timeout` is exact.
    fn index(&mut self, key: &TxKey) {
        let next = match key.side() {
            Side::Server => self
                .servers
                .get(key)
                .and_then(|t| t.timers().next_timeout()),
            Side::Client => self
                .clients
                .get(key)
                .and_then(|t| t.timers().next_timeout()),
        };
        match next {
            None => {
                self.indexed.remove(key);
            }
            Some(at) if self.indexed.get(key) != Some(&at) => {
                self.indexed.insert(key.clone(), at);
                self.deadlines.push(Reverse(Deadline {
                    at,
                    key: key.clone(),
                }));
            }
            Some(_) => {}
        }
        while let Some(Reverse(top)) = self.deadlines.peek() {
            if self.indexed.get(&top.key) == Some(&top.at) {
                break;
            }
            self.deadlines.pop();
        }
    }

    pub fn config(&self) -> &TimerConfig {
        &self.cfg
    }

    /// Live transactions (server + client). 2xx retransmissions pending an
    /// ACK are counted separately by [`Self::pending_2xx`].
    pub fn len(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// 2xx responses still being retransmitted while waiting for an ACK.
    pub fn pending_2xx(&self) -> usize {
        self.retransmitter.len()
    }

    // ----- server side -----

    /// Feed a received request. Retransmissions are absorbed (the last
    /// response is queued again) and yield `None`; so do malformed requests.
    pub fn on_request(&mut self, req: Request, from: Peer, now: Instant) -> Option<ServerEvent> {
        self.on_request_raw(req, &[], from, now)
    }

    /// [`Self::on_request`] for a request parsed from `raw`: over an
    /// unreliable transport the bytes are kept, so that a byte-identical
    /// repeat can be handled by [`Self::absorb_repeat`] without parsing.
    pub fn on_request_raw(
        &mut self,
        req: Request,
        raw: &[u8],
        from: Peer,
        now: Instant,
    ) -> Option<ServerEvent> {
        let key = match TxKey::server(&req) {
            Ok(k) => k,
            Err(e) => {
                debug!(%from, error = %e, "dropping request that cannot be keyed");
                return None;
            }
        };
        // Reliable transports carry no retransmissions.
        let raw = match from.transport.is_reliable() {
            true => &[][..],
            false => raw,
        };
        let ev = match req.method {
            Method::Ack => {
                let up = self.on_ack(&key, ack_ids(&req), raw, now);
                up.then_some(ServerEvent::Ack { req, from })
            }
            Method::Cancel => self.on_cancel(key.clone(), req, from, now),
            _ => self.on_other(key.clone(), req, from, now),
        };
        if req_is_new(&ev) && !raw.is_empty() && self.servers.contains_key(&key) {
            let request = raw.into();
            self.seen.insert(key.clone(), Seen { request, ack: None });
        }
        self.index(&key);
        ev
    }

    /// Handles a request byte-identical to one this layer was fed before
    /// (`ids` read from `raw` by `message::peek_request`), exactly as
    /// `on_request` would once it was parsed: a retransmitted request gets
    /// its transaction's last response again, a repeated ACK is dropped.
    /// Returns false when `raw` is not such a repeat: parse it then.
    pub fn absorb_repeat(&mut self, ids: &RequestIds<'_>, raw: &[u8], now: Instant) -> bool {
        let key = TxKey::server_for_ids(ids);
        let seen = self.seen.get(&key);
        if ids.method == Method::Ack {
            // The ACK of a 300-699: absorbed in Confirmed (state unchanged).
            let confirmed = seen.and_then(|s| s.ack.as_deref()) == Some(raw)
                && matches!(self.servers.get(&key), Some(ServerTx::Invite(t)) if t.state == State::Confirmed);
            if confirmed {
                return true;
            }
            // The ACK of a 2xx: it matched the retransmission once, and an
            // identical one confirms nothing more.
            self.expire_acks(now);
            return self.acks.get(&key).is_some_and(|a| **a == *raw);
        }
        if seen.is_none_or(|s| *s.request != *raw) {
            return false;
        }
        let Some(tx) = self.servers.get(&key) else {
            return false;
        };
        if let Some(wire) = tx.on_retransmit() {
            self.transmits.push_back(Transmit {
                to: tx.peer(),
                wire: wire.clone(),
            });
        }
        true
    }

    fn expire_acks(&mut self, now: Instant) {
        while let Some((at, key)) = self.acks_expire.front() {
            if *at > now {
                break;
            }
            self.acks.remove(key);
            self.acks_expire.pop_front();
        }
    }

    /// Forgets a server transaction (and the bytes it was fed).
    fn remove_server(&mut self, key: &TxKey) -> bool {
        self.seen.remove(key);
        let removed = self.servers.remove(key).is_some();
        if removed {
            self.budget.release(1);
        }
        removed
    }

    fn on_other(
        &mut self,
        key: TxKey,
        req: Request,
        from: Peer,
        now: Instant,
    ) -> Option<ServerEvent> {
        if let Some(tx) = self.servers.get(&key) {
            if let Some(wire) = tx.on_retransmit() {
                self.transmits.push_back(Transmit {
                    to: tx.peer(),
                    wire: wire.clone(),
                });
            }
            return None;
        }
        let shed = self.behind && req.method == Method::Invite && to_tag_absent(&req);
        if shed {
            self.budget
                .shed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if shed || !self.budget.try_take() {
            // Over the bound, or behind: answered as a stateless server
            // would, once per (retransmitted) request, with nothing kept.
            let tag = stateless_tag(&key);
            let mut busy = response_with_status(&req, StatusCode::ServiceUnavailable, Some(&tag));
            let mut headers: Vec<rsip::Header> = busy.headers.into_iter().collect();
            let content_length = headers.pop();
            headers.push(rsip::Header::RetryAfter(
                OVER_BUDGET_RETRY_AFTER_S.to_string().into(),
            ));
            headers.extend(content_length);
            busy.headers = headers.into();
            self.transmits.push_back(Transmit {
                to: from,
                wire: busy.into(),
            });
            return None;
        }
        let tx = if req.method == Method::Invite {
            let trying = Wire::from(response_with_status(&req, StatusCode::Trying, None));
            self.trying_due.push((
                key.clone(),
                Transmit {
                    to: from,
                    wire: trying.clone(),
                },
            ));
            ServerTx::Invite(ServerInvite::new(from, trying))
        } else {
            ServerTx::NonInvite(ServerNonInvite::new(from, now, &self.cfg))
        };
        self.servers.insert(key.clone(), tx);
        Some(ServerEvent::NewRequest { key, req, from })
    }

    /// An ACK known by its identifiers (bytes `raw` that
    /// `message::check` accepted, `ids` read from them by
    /// `message::peek_request`), handled as [`Self::on_request_raw`]
    /// handles it once parsed. Returns true when it is an ACK for a 2xx
    /// the TU must hear of (what `on_request` reports as
    /// [`ServerEvent::Ack`]).
    pub fn on_ack_ids(
        &mut self,
        ids: &RequestIds<'_>,
        raw: &[u8],
        from: Peer,
        now: Instant,
    ) -> bool {
        let key = TxKey::server_for_ids(ids);
        let raw = match from.transport.is_reliable() {
            true => &[][..],
            false => raw,
        };
        let up = self.on_ack(&key, Some((ids.call_id, ids.cseq)), raw, now);
        self.index(&key);
        up
    }

    /// The ACK of transaction `key` (Call-ID and CSeq number in `ids`):
    /// absorbed by its INVITE transaction, or true for an ACK to pass up.
    fn on_ack(&mut self, key: &TxKey, ids: Option<(&str, u32)>, raw: &[u8], now: Instant) -> bool {
        if let Some(ServerTx::Invite(tx)) = self.servers.get_mut(key) {
            match tx.on_ack(now, &self.cfg) {
                AckOutcome::Absorbed => {
                    let confirmed = tx.state == State::Confirmed;
                    if let Some(seen) = self.seen.get_mut(key).filter(|_| confirmed) {
                        if seen.ack.is_none() && !raw.is_empty() {
                            seen.ack = Some(raw.into());
                        }
                    }
                    return false;
                }
                AckOutcome::Terminated => {
                    self.remove_server(key);
                    return false;
                }
                AckOutcome::PassUp => {}
            }
        }
        let matched =
            ids.is_some_and(|(call_id, cseq)| self.retransmitter.on_ack_ids(call_id, cseq));
        if matched && !raw.is_empty() {
            self.expire_acks(now);
            if self.acks.insert(key.clone(), raw.into()).is_none() {
                self.acks_expire
                    .push_back((now + self.cfg.t1x64(), key.clone()));
            }
        }
        true
    }

    fn on_cancel(
        &mut self,
        key: TxKey,
        req: Request,
        from: Peer,
        now: Instant,
    ) -> Option<ServerEvent> {
        let invite_key = key.with_method(Method::Invite);
        let invite_answered = match self.servers.get(&invite_key) {
            Some(ServerTx::Invite(inv)) => Some(inv.final_sent()),
            _ => None,
        };
        let event = self.on_other(key, req, from, now)?;
        match (event, invite_answered) {
            (ServerEvent::NewRequest { key, req, from }, Some(invite_answered)) => {
                Some(ServerEvent::Cancel {
                    invite_key,
                    cancel_key: key,
                    cancel_req: req,
                    from,
                    invite_answered,
                })
            }
            (event, _) => Some(event),
        }
    }

    /// Send a response within server transaction `key`. A 2xx to INVITE is
    /// then retransmitted automatically until its ACK arrives.
    pub fn send_response(
        &mut self,
        key: &TxKey,
        resp: Response,
        now: Instant,
    ) -> Result<(), TxError> {
        let tx = self
            .servers
            .get_mut(key)
            .ok_or(TxError::UnknownTransaction)?;
        let to = tx.peer();
        let kind = resp.status_code.kind();
        let invite_2xx = matches!(tx, ServerTx::Invite(_)) && kind == StatusCodeKind::Successful;
        // Serialised once: the wire bytes serve the send, the transaction's
        // retransmissions and the 2xx retransmitter alike.
        let (wire, retransmit) = if invite_2xx {
            (Wire::of_response(&resp), Some(resp))
        } else {
            (Wire::from(resp), None)
        };
        let terminated = match tx {
            ServerTx::Invite(t) => {
                t.send(kind, &wire, now, &self.cfg)?;
                false
            }
            ServerTx::NonInvite(t) => {
                t.send(kind, &wire, now, &self.cfg)? == SendOutcome::Terminated
            }
        };
        if terminated {
            self.remove_server(key);
        }
        self.index(key);
        self.transmits.push_back(Transmit {
            to,
            wire: wire.clone(),
        });
        // The response is out either way; a 2xx without Call-ID/CSeq
        // cannot be matched to its ACK, so it is sent once only.
        match retransmit {
            Some(r) => self.retransmitter.start(&r, wire, to, now),
            None => Ok(()),
        }
    }

    /// Send a final non-2xx answer to an INVITE that never became a call
    /// (unknown number, overload) without timer G: the answer goes out
    /// once, and again only for each retransmitted INVITE, as a stateless
    /// server would. Retransmitting it up to ten times on UDP unasked would
    /// make sipacd a reflector (a spoofed INVITE buys ten answers); a lost
    /// answer costs the caller one INVITE retransmission. Timer H still
    /// ends the transaction, which absorbs the ACK.
    pub fn send_rejection(
        &mut self,
        key: &TxKey,
        resp: Response,
        now: Instant,
    ) -> Result<(), TxError> {
        self.send_response(key, resp, now)?;
        if let Some(ServerTx::Invite(t)) = self.servers.get_mut(key) {
            // The stale heap entry of G is skipped when it comes due.
            t.timers.stop(TimerKind::G);
        }
        Ok(())
    }

    /// Queue a message outside any transaction: an ACK for a 2xx, a
    /// stateless error answer to a request that cannot be keyed.
    pub fn send_stateless(&mut self, msg: impl Into<rsip::SipMessage>, to: Peer) {
        self.transmits.push_back(Transmit {
            to,
            wire: Wire::of(&msg.into()),
        });
    }

    /// Stop retransmitting 2xx responses of a call that is gone.
    pub fn stop_2xx_retransmissions(&mut self, call_id: &str) {
        self.retransmitter.stop(call_id);
    }

    // ----- client side -----

    /// Start a client transaction for `req` (its top Via must carry a fresh
    /// branch, see [`super::new_branch`]) and queue it for sending.
    pub fn send_request(&mut self, req: Request, to: Peer, now: Instant) -> Result<TxKey, TxError> {
        let key = self.new_client_key(&req)?;
        let wire = Wire::of_request(&req);
        let tx = if req.method == Method::Invite {
            ClientTx::Invite(ClientInvite::new(Arc::new(req), wire, to, now, &self.cfg))
        } else {
            ClientTx::NonInvite(ClientNonInvite::new(wire, to, now, &self.cfg))
        };
        Ok(self.start_client(key, tx))
    }

    /// [`send_request`](Self::send_request) for a request parsed from
    /// `bytes`: they are sent as they are, with no second serialisation,
    /// and the request is shared with the caller (an INVITE kept for its
    /// dialog and CANCEL is not copied).
    pub fn send_request_as(
        &mut self,
        req: Arc<Request>,
        bytes: bytes::Bytes,
        to: Peer,
        now: Instant,
    ) -> Result<TxKey, TxError> {
        let key = self.new_client_key(&req)?;
        let wire = Wire::of_request_bytes(req.method, bytes);
        let tx = if req.method == Method::Invite {
            ClientTx::Invite(ClientInvite::new(req, wire, to, now, &self.cfg))
        } else {
            ClientTx::NonInvite(ClientNonInvite::new(wire, to, now, &self.cfg))
        };
        Ok(self.start_client(key, tx))
    }

    /// The key of a new client transaction for `req`.
    fn new_client_key(&self, req: &Request) -> Result<TxKey, TxError> {
        if req.method == Method::Ack {
            return Err(TxError::AckNotTransactional);
        }
        let key = TxKey::client_for_request(req)?;
        if self.clients.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        Ok(key)
    }

    /// Sends `tx`'s first transmission and keeps it under `key`.
    fn start_client(&mut self, key: TxKey, tx: ClientTx) -> TxKey {
        self.transmits.push_back(Transmit {
            to: tx.peer(),
            wire: tx.wire().clone(),
        });
        self.clients.insert(key.clone(), tx);
        self.index(&key);
        key
    }

    /// Feed a received response. Retransmitted final responses are absorbed.
    pub fn on_response(&mut self, resp: Response, from: Peer, now: Instant) -> Option<ClientEvent> {
        let key = match TxKey::client_for_response(&resp) {
            Ok(k) => k,
            Err(e) => {
                debug!(%from, error = %e, "dropping response that cannot be keyed");
                return None;
            }
        };
        let Some(tx) = self.clients.get_mut(&key) else {
            let is_invite_2xx = key.method() == Method::Invite
                && resp.status_code.kind() == StatusCodeKind::Successful;
            return is_invite_2xx.then_some(ClientEvent::Stray2xx { resp, from });
        };
        let to = tx.peer();
        let out: RespOutcome = match tx {
            ClientTx::Invite(t) => match t.on_response(&resp, now) {
                Ok(out) => out,
                Err(e) => {
                    debug!(%from, error = %e, "cannot ACK response");
                    return None;
                }
            },
            ClientTx::NonInvite(t) => t.on_response(&resp, now, &self.cfg),
        };
        if let Some(wire) = out.send {
            self.transmits.push_back(Transmit { to, wire });
        }
        if out.terminated {
            self.clients.remove(&key);
        }
        self.index(&key);
        out.pass_up.then_some(ClientEvent::Response { key, resp })
    }

    /// Drop a client transaction the TU no longer cares about (e.g. an
    /// INVITE in Proceeding whose CANCEL got no 487 within 64*T1, §9.1).
    pub fn abandon(&mut self, key: &TxKey) -> bool {
        let removed = match key.side() {
            Side::Client => self.clients.remove(key).is_some(),
            Side::Server => self.remove_server(key),
        };
        self.index(key);
        removed
    }

    // ----- driving -----

    /// The earliest deadline of any timer; sleep until then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let txs = self.deadlines.peek().map(|Reverse(d)| d.at);
        txs.into_iter()
            .chain(self.retransmitter.poll_timeout())
            .min()
    }

    /// Fire every timer due at `now`. Events go to `poll_event`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.deadlines.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Some(Reverse(d)) = self.deadlines.pop() else {
                break;
            };
            if self.indexed.get(&d.key) != Some(&d.at) {
                continue; // stale: the transaction moved on or is gone
            }
            self.indexed.remove(&d.key);
            let timers = match d.key.side() {
                Side::Server => self.servers.get(&d.key).map(ServerTx::timers),
                Side::Client => self.clients.get(&d.key).map(ClientTx::timers),
            };
            let mut due: Vec<(Instant, TimerKind)> =
                timers.map(|t| t.expired(now).collect()).unwrap_or_default();
            due.sort();
            for (at, kind) in due {
                self.fire(d.key.clone(), kind, at, now);
            }
            self.index(&d.key);
        }
        self.retransmitter.handle_timeout(now);
        while let Some(t) = self.retransmitter.poll_transmit() {
            self.transmits.push_back(t);
        }
        while let Some(Uas2xxEvent::AckTimeout { call_id, cseq, tag }) =
            self.retransmitter.poll_event()
        {
            self.events
                .push_back(TxEvent::Server(ServerEvent::AckTimeout {
                    call_id,
                    cseq,
                    tag,
                }));
        }
        self.give_back_room();
    }

    /// After a flood has drained, gives the tables' room back: a map keeps
    /// its largest capacity otherwise, and the daemon its peak memory.
    fn give_back_room(&mut self) {
        const FLOOR: usize = 4096;
        fn shrink<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(m: &mut HashMap<K, V, S>) {
            if m.capacity() > FLOOR && m.capacity() > 4 * m.len() {
                m.shrink_to_fit();
            }
        }
        shrink(&mut self.servers);
        shrink(&mut self.clients);
        shrink(&mut self.indexed);
        shrink(&mut self.seen);
        shrink(&mut self.acks);
        if self.deadlines.capacity() > FLOOR && self.deadlines.capacity() > 4 * self.deadlines.len()
        {
            self.deadlines.shrink_to_fit();
        }
        if self.acks_expire.capacity() > FLOOR
            && self.acks_expire.capacity() > 4 * self.acks_expire.len()
        {
            self.acks_expire.shrink_to_fit();
        }
    }

    fn fire(&mut self, key: TxKey, kind: TimerKind, at: Instant, now: Instant) {
        let cfg = self.cfg;
        let (fired, peer) = match key.side() {
            Side::Server => {
                let Some(tx) = self.servers.get_mut(&key) else {
                    return;
                };
                // An earlier timer of the same batch may have stopped this one.
                if tx.timers().get(kind) != Some(at) {
                    return;
                }
                let fired = match tx {
                    ServerTx::Invite(t) => t.on_timer(kind, now, &cfg),
                    ServerTx::NonInvite(t) => t.on_timer(kind),
                };
                (fired, tx.peer())
            }
            Side::Client => {
                let Some(tx) = self.clients.get_mut(&key) else {
                    return;
                };
                if tx.timers().get(kind) != Some(at) {
                    return;
                }
                let fired = match tx {
                    ClientTx::Invite(t) => t.on_timer(kind, now),
                    ClientTx::NonInvite(t) => t.on_timer(kind, now, &cfg),
                };
                (fired, tx.peer())
            }
        };
        match fired {
            Fired::Nothing => {}
            Fired::Resend(wire) => self.transmits.push_back(Transmit { to: peer, wire }),
            Fired::Terminated => {
                self.abandon(&key);
            }
            Fired::TimedOut => {
                self.abandon(&key);
                let ev = match key.side() {
                    Side::Server => TxEvent::Server(ServerEvent::Timeout { key }),
                    Side::Client => TxEvent::Client(ClientEvent::Timeout { key }),
                };
                self.events.push_back(ev);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.trying_due.is_empty() {
            self.send_due_tryings();
        }
        self.transmits.pop_front()
    }

    /// The turn is over: the 100 Trying of each new INVITE the TU has not
    /// answered finally goes out, ahead of what else is queued.
    fn send_due_tryings(&mut self) {
        for (key, t) in std::mem::take(&mut self.trying_due).into_iter().rev() {
            let answered = match self.servers.get(&key) {
                Some(ServerTx::Invite(tx)) => tx.final_sent(),
                _ => true,
            };
            if !answered {
                self.transmits.push_front(t);
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }
}

/// Retry-After of the 503 sent over [`TxBudget`]'s bound: a flood that
/// fills the tables has them for 32 s at most.
const OVER_BUDGET_RETRY_AFTER_S: &str = "10";

/// The To tag of a stateless answer: the same for every retransmission of
/// the request (a fixed-key hash of its transaction key), nothing kept.
fn stateless_tag(key: &TxKey) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!("sl{:016x}", h.finish())
}

/// A request outside any dialog (its To has no tag).
fn to_tag_absent(req: &Request) -> bool {
    crate::sip::headers::to_tag(req).is_none()
}

/// Whether `on_request` just created a server transaction.
fn req_is_new(ev: &Option<ServerEvent>) -> bool {
    matches!(
        ev,
        Some(ServerEvent::NewRequest { .. } | ServerEvent::Cancel { .. })
    )
}
