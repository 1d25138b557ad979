//! What the engine counts of its own work, as plain numbers: SIP messages
//! in and out by method and status, unparsable and dropped messages,
//! routing decisions and their time, handovers between shards. The engine
//! knows nothing of Prometheus: the daemon takes the tally each turn
//! ([`Endpoint::drain_tally`]) and adds it to its counters
//! ([`crate::metrics::fold::MetricsFold::absorb`]).

use ahash::AHashMap as HashMap;

use super::Endpoint;

/// Counts since the last [`Endpoint::drain_tally`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// (direction `in`/`out`, method) → requests.
    pub requests: HashMap<(&'static str, &'static str), u64>,
    /// (direction, method of the CSeq, status) → responses.
    pub responses: HashMap<(&'static str, &'static str, u16), u64>,
    pub parse_errors: u64,
    /// Reason → messages dropped unanswered.
    pub dropped: HashMap<&'static str, u64>,
    /// Router outputs handed to the shard owning their call.
    pub handovers: u64,
    /// Seconds each routing decision took.
    pub decisions: Vec<f64>,
    /// The registrar's guessing limits (shared by the shards: whichever
    /// takes it counts for all).
    pub auth: crate::registrar::AuthTally,
}

impl Tally {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
            && self.responses.is_empty()
            && self.parse_errors == 0
            && self.dropped.is_empty()
            && self.handovers == 0
            && self.decisions.is_empty()
            && self.auth == crate::registrar::AuthTally::default()
    }

    /// Counts one SIP message; `direction` is `in` or `out`.
    pub fn sip(&mut self, direction: &'static str, msg: &rsip::SipMessage) {
        match msg {
            rsip::SipMessage::Request(r) => self.request(direction, &r.method),
            rsip::SipMessage::Response(r) => {
                let method =
                    crate::sip::headers::cseq(r).map_or("other", |(_, m)| method_label(&m));
                self.response(direction, method, r.status_code.code());
            }
        }
    }

    /// Counts one message we send, from what its wire form says.
    pub fn wire(&mut self, direction: &'static str, kind: &crate::sip::transaction::WireKind) {
        use crate::sip::transaction::WireKind;
        match kind {
            WireKind::Request(m) => self.request(direction, m),
            WireKind::Response { code, method } => {
                let method = method.as_ref().map_or("other", method_label);
                self.response(direction, method, *code);
            }
        }
    }

    /// Counts one request (one that was never parsed, too).
    pub fn request(&mut self, direction: &'static str, method: &rsip::Method) {
        *self
            .requests
            .entry((direction, method_label(method)))
            .or_default() += 1;
    }

    pub fn response(&mut self, direction: &'static str, method: &'static str, code: u16) {
        *self.responses.entry((direction, method, code)).or_default() += 1;
    }
}

/// The `method` label of a SIP method: rsip knows only these, so a peer
/// cannot create series at will.
pub fn method_label(m: &rsip::Method) -> &'static str {
    use rsip::Method::*;
    match m {
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Info => "INFO",
        Invite => "INVITE",
        Message => "MESSAGE",
        Notify => "NOTIFY",
        Options => "OPTIONS",
        PRack => "PRACK",
        Publish => "PUBLISH",
        Refer => "REFER",
        Register => "REGISTER",
        Subscribe => "SUBSCRIBE",
        Update => "UPDATE",
    }
}

impl Tally {
    /// Forgets the counts, keeping the maps' room for the next turn.
    fn clear(&mut self) {
        self.requests.clear();
        self.responses.clear();
        self.parse_errors = 0;
        self.dropped.clear();
        self.handovers = 0;
        self.decisions.clear();
        self.auth = Default::default();
    }
}

impl Endpoint {
    /// Hands what was counted since the last call to `f`, then starts
    /// counting afresh (called every turn: no allocation once warm).
    pub fn drain_tally(&mut self, f: impl FnOnce(&Tally)) {
        if !self.tally.is_empty() {
            f(&self.tally);
            self.tally.clear();
        }
    }
}
