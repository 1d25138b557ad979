//! SIP registrar with digest authentication (RFC 3261 §10.3, RFC 7616,
//! RFC 8760), sans-IO: a REGISTER, its source and `now` go in, the response
//! to send comes out. No I/O: changes to the bindings are written by
//! [`BindingsWriter`] on its own thread, from snapshots.
//!
//! Failure responses, chosen so that nothing tells a prober which user
//! names exist:
//! * no usable credentials (none, malformed, not for an algorithm we offer,
//!   no qop=auth/cnonce/nc, a nonce we did not issue, wrong opaque, a
//!   replayed nc) → 401 with a fresh challenge;
//! * a well-formed answer to our nonce that does not verify → 403, identical
//!   for a wrong password, an unknown user, a realm mismatch, a SHA-256
//!   answer for a user known only by an MD5 HA1, and a To user other than
//!   the authenticated one. Unknown users are hashed against a dummy HA1 so
//!   the work done matches;
//! * a correct answer to an expired nonce → 401 with `stale=true`.
//!
//! Against guessing (`guard`): a nonce is spent by a wrong answer (the next
//! try needs a new challenge: one guess per round trip, not thousands per
//! nonce), a spent or replayed nonce is challenged again *before* its answer
//! is checked (a 401-versus-403 difference would tell a right guess), and a
//! source that fails too often is refused with 403 for a while, whatever it
//! sends. Blocks and failures count the same for made-up and real users.

mod auth_log;
mod authorize;
mod bindings;
mod contact;
mod digest;
pub mod digest_uac;
mod guard;
mod nonce;
mod outbound;
mod store;
mod writer;

pub use bindings::Binding;
pub use digest::{parse_authorization, Algorithm, AuthParseError, DigestCredentials};
pub use guard::{source_key, GuardConfig, Network, MAX_BLOCK_DOUBLINGS};
pub use store::{write_atomic, Snapshot, StoreError};
pub use writer::{BindingsWriter, FileState, Nudge, WriterStats, DEFAULT_WINDOW, DURABLE_WITHIN};

use auth_log::FailureLog;
use bindings::{BindingTable, Limits, Update, UpdateError};
use contact::{parse_contacts, parse_name_addr, ContactValue};
use digest::{challenge_value, constant_time_eq, hmac_sha256};
use guard::{Guard, Verdict};
use nonce::{NonceStatus, Nonces};
use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response, StatusCode};

use crate::sip::headers::{header_value, header_values, response_with_status};
use crate::sip::Peer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A user allowed to register, as configured (`[agents.ID]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    /// hex MD5(user:realm:password); used for MD5 when no password is set.
    pub ha1_md5: Option<String>,
    /// Needed for SHA-256; preferred over `ha1_md5` when both are set.
    pub password: Option<String>,
}

impl Credentials {
    fn ha1(&self, alg: Algorithm, realm: &str) -> Option<String> {
        if let Some(p) = &self.password {
            return Some(alg.ha1(&self.user, realm, p));
        }
        match (alg, &self.ha1_md5) {
            (Algorithm::Md5, Some(h)) => Some(h.trim().to_ascii_lowercase()),
            _ => None,
        }
    }
}

/// Registrar settings (from `[server]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrarConfig {
    /// The digest realm: `server.domain`.
    pub realm: String,
    /// Challenged in this order (`server.digest_algorithms`).
    pub algorithms: Vec<Algorithm>,
    pub nonce_ttl: Duration,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Limits on failed answers.
    pub guard: GuardConfig,
}

impl RegistrarConfig {
    /// Defaults for `realm`: MD5 only, 300 s nonces, expiry 60..3600 s.
    pub fn new(realm: impl Into<String>) -> Self {
        RegistrarConfig {
            realm: realm.into(),
            algorithms: vec![Algorithm::Md5],
            nonce_ttl: Duration::from_secs(300),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            guard: GuardConfig::default(),
        }
    }

    /// Algorithms to challenge with: configured order, duplicates dropped,
    /// MD5 when the list is empty.
    fn offered(&self) -> Vec<Algorithm> {
        let mut out: Vec<Algorithm> = Vec::new();
        for a in &self.algorithms {
            if !out.contains(a) {
                out.push(*a);
            }
        }
        if out.is_empty() {
            out.push(Algorithm::Md5);
        }
        out
    }
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig::new("localhost")
    }
}

/// Result of checking a REGISTER's credentials.
enum Auth {
    Ok(String),
    Challenge {
        stale: bool,
    },
    /// A well-formed answer that does not verify, for this user name.
    Forbidden(String),
    BadRequest(&'static str),
}

/// What the guessing limits counted since the last
/// [`Registrar::take_auth_tally`], as plain numbers (the daemon adds them
/// to its Prometheus counters, like the endpoint's tally).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthTally {
    /// Digest answers that did not verify.
    pub failures: u64,
    /// REGISTERs refused because their source was blocked.
    pub refused: u64,
    /// Times a source was blocked.
    pub blocks: u64,
    /// Sources blocked at the last sweep ([`Registrar::expire`]), if one
    /// ran since.
    pub blocked_sources: Option<u64>,
}

impl AuthTally {
    /// Adds `later` to this one (the newer gauge value wins).
    pub fn add(&mut self, later: AuthTally) {
        self.failures += later.failures;
        self.refused += later.refused;
        self.blocks += later.blocks;
        if later.blocked_sources.is_some() {
            self.blocked_sources = later.blocked_sources;
        }
    }
}

/// The registrar: users, nonces and the location table.
#[derive(Debug)]
pub struct Registrar {
    cfg: RegistrarConfig,
    users: HashMap<String, Credentials>,
    secret: [u8; 32],
    nonces: Nonces,
    table: BindingTable,
    store: Option<PathBuf>,
    /// Bindings changed since the last [`Registrar::take_snapshot`].
    dirty: bool,
    /// Wakes the writer thread on a change.
    nudge: Option<Nudge>,
    guard: Guard,
    auth_log: FailureLog,
    tally: AuthTally,
}

impl Registrar {
    /// `secret` keys nonces, opaque and To tags; keep it across restarts for
    /// outstanding challenges to stay valid (random per start is fine too).
    pub fn new(
        cfg: RegistrarConfig,
        users: impl IntoIterator<Item = Credentials>,
        secret: [u8; 32],
    ) -> Self {
        Registrar {
            nonces: Nonces::new(secret, cfg.nonce_ttl),
            guard: Guard::new(cfg.guard.clone()),
            auth_log: FailureLog::default(),
            tally: AuthTally::default(),
            cfg,
            users: users.into_iter().map(|c| (c.user.clone(), c)).collect(),
            secret,
            table: BindingTable::default(),
            store: None,
            dirty: false,
            nudge: None,
        }
    }

    /// Keeps bindings for `path` (does not load): changes are marked for
    /// the writer ([`Registrar::take_snapshot`]).
    pub fn with_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(path.into());
        self
    }

    /// Loads bindings saved at `path` (dropping expired ones and users not
    /// configured) and keeps them for `path` from now on. A missing file is empty; a
    /// corrupt one is ignored with a warning. Returns how many were loaded.
    pub fn load_from(&mut self, path: impl AsRef<Path>, now: SystemTime) -> usize {
        let path = path.as_ref();
        self.store = Some(path.to_path_buf());
        let loaded = match store::load(path, now) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring registrations file");
                return 0;
            }
        };
        let mut n = 0;
        for (user, b) in loaded {
            if self.users.contains_key(&user) {
                self.table.insert(&user, b);
                n += 1;
            }
        }
        n
    }

    /// Replaces the user list (reload). Bindings of users still present are
    /// kept; those of removed users are dropped and returned.
    pub fn update_users(
        &mut self,
        users: impl IntoIterator<Item = Credentials>,
    ) -> Vec<(String, String)> {
        self.users = users.into_iter().map(|c| (c.user.clone(), c)).collect();
        let users = &self.users;
        let gone = self.table.retain_users(|u| users.contains_key(u));
        if !gone.is_empty() {
            self.persist();
        }
        gone
    }

    /// Replaces the settings (reload); bindings are kept. Nonces issued
    /// under another realm stop verifying.
    pub fn update_config(&mut self, cfg: RegistrarConfig) {
        self.nonces.set_ttl(cfg.nonce_ttl);
        self.guard.set_config(cfg.guard.clone());
        self.cfg = cfg;
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.cfg
    }

    /// What the guessing limits counted since the last call.
    pub fn take_auth_tally(&mut self) -> AuthTally {
        std::mem::take(&mut self.tally)
    }

    /// Sources refused at `now` for failing too often, with the time left.
    pub fn blocked_sources(&self, now: SystemTime) -> Vec<(std::net::IpAddr, Duration)> {
        self.guard.blocked_sources(now)
    }

    /// Lifts the block on `ip` (the admin API); false if it had none.
    pub fn unblock_source(&mut self, ip: std::net::IpAddr, now: SystemTime) -> bool {
        self.guard.unblock(ip, now)
    }

    /// Unexpired bindings of `user`.
    pub fn bindings(&self, user: &str, now: SystemTime) -> Vec<Binding> {
        self.table.current(user, now)
    }

    /// Whether an unexpired binding was registered from `source` (a TCP
    /// connection reaching it is kept open however idle).
    pub fn has_binding_from(&self, source: Peer, now: SystemTime) -> bool {
        self.table
            .all()
            .any(|(_, b)| b.source == source && b.expires_at > now)
    }

    /// Users with an unexpired binding registered from `source` (a
    /// connection that just closed: whose flow it was).
    pub fn users_with_binding_from(&self, source: Peer, now: SystemTime) -> Vec<String> {
        let mut users: Vec<String> = self
            .table
            .all()
            .filter(|(_, b)| b.source == source && b.expires_at > now)
            .map(|(u, _)| u.to_owned())
            .collect();
        users.dedup();
        users
    }

    pub fn is_registered(&self, user: &str, now: SystemTime) -> bool {
        !self.table.current(user, now).is_empty()
    }

    /// Removes bindings expired at `now`, returning (user, contact) of each.
    /// Call it from a timer (every second): it also forgets old nonce
    /// counts and marks the bindings changed for the writer.
    pub fn expire(&mut self, now: SystemTime) -> Vec<(String, String)> {
        self.nonces.prune(now);
        self.guard.prune(now);
        let blocked = self.guard.blocked_count(now);
        self.tally.blocked_sources = Some(u64::try_from(blocked).unwrap_or(u64::MAX));
        if let Some(s) = self.auth_log.flush(now) {
            log_suppressed(s);
        }
        let gone = self.table.expire(now);
        if !gone.is_empty() {
            self.persist();
        }
        gone
    }

    /// Handles one REGISTER received from `source` at `now` and returns the
    /// response to send back to `source`.
    pub fn handle_register(&mut self, req: &Request, source: Peer, now: SystemTime) -> Response {
        let tag = self.to_tag(req);
        let reply = |status: StatusCode, extra: Vec<Header>| reply(req, status, &tag, extra);

        if req.method != Method::Register {
            return reply(
                StatusCode::MethodNotAllowed,
                vec![Header::Allow(rsip::headers::Allow::new("REGISTER"))],
            );
        }
        let Some(call_id) = header_value(req, "Call-ID") else {
            tracing::debug!(%source, "bad REGISTER: no Call-ID");
            return reply(StatusCode::BadRequest, vec![]);
        };
        let Some(cseq) = header_value(req, "CSeq").as_deref().and_then(parse_cseq) else {
            tracing::debug!(%source, "bad REGISTER: CSeq");
            return reply(StatusCode::BadRequest, vec![]);
        };
        let to = match header_value(req, "To").as_deref().map(parse_name_addr) {
            Some(Ok(to)) => to,
            Some(Err(e)) => {
                tracing::debug!(%source, error = %e, "bad REGISTER: To");
                return reply(StatusCode::BadRequest, vec![]);
            }
            None => {
                tracing::debug!(%source, "bad REGISTER: no To");
                return reply(StatusCode::BadRequest, vec![]);
            }
        };
        if header_value(req, "From").is_none() || header_value(req, "Via").is_none() {
            tracing::debug!(%source, "bad REGISTER: no From or Via");
            return reply(StatusCode::BadRequest, vec![]);
        }
        let mut contacts: Vec<ContactValue> = Vec::new();
        for v in header_values(req, "Contact") {
            match parse_contacts(&v) {
                Ok(c) => contacts.extend(c),
                Err(e) => {
                    tracing::debug!(%source, error = %e, "bad REGISTER: Contact");
                    return reply(StatusCode::BadRequest, vec![]);
                }
            }
        }

        // A blocked source learns nothing, right guess or not.
        if let Some(left) = self.guard.blocked(source.addr.ip(), now) {
            self.tally.refused += 1;
            let (line, summary) = self.auth_log.note(auth_log::Event::Blocked, now);
            summary.into_iter().for_each(log_suppressed);
            if line {
                tracing::info!(%source, left_s = left.as_secs(), "REGISTER refused: source blocked");
            }
            return reply(StatusCode::Forbidden, vec![]);
        }
        let user = match self.authenticate(req, now) {
            Auth::Ok(user) => user,
            Auth::Challenge { stale } => {
                let extra = self.challenge(now, stale);
                tracing::debug!(%source, stale, "REGISTER challenged");
                return reply(StatusCode::Unauthorized, extra);
            }
            Auth::Forbidden(name) => {
                self.failed(source, &name, now);
                return reply(StatusCode::Forbidden, vec![]);
            }
            Auth::BadRequest(why) => {
                tracing::debug!(%source, why, "bad REGISTER");
                return reply(StatusCode::BadRequest, vec![]);
            }
        };
        // The AOR must be the authenticated user's own (§10.3 step 3).
        if to.user() != Some(user.as_str()) {
            // Counted (and logged, rate-limited) against the AOR asked for:
            // one valid account must not be a free base for guessing others.
            self.failed(source, to.user().unwrap_or_default(), now);
            return reply(StatusCode::Forbidden, vec![]);
        }
        self.guard.success(source.addr.ip(), &user, now);

        let update = Update {
            contacts: &contacts,
            expires_header: header_value(req, "Expires")
                .as_deref()
                .and_then(bindings::parse_delta),
            call_id: &call_id,
            cseq,
            source,
            now,
            outbound: outbound::applies(req, &contacts, source),
        };
        let limits = Limits {
            min_expires: self.cfg.min_expires,
            max_expires: self.cfg.max_expires,
            default_expires: self.cfg.default_expires,
        };
        match self.table.apply(&user, &update, limits) {
            Ok(changed) => {
                if changed {
                    tracing::info!(user = %user, %source, "registration updated");
                    self.persist();
                }
            }
            Err(UpdateError::BadRequest(why)) => {
                tracing::debug!(%source, why, "bad REGISTER");
                return reply(StatusCode::BadRequest, vec![]);
            }
            Err(UpdateError::IntervalTooBrief) => {
                return reply(
                    StatusCode::IntervalTooBrief,
                    vec![Header::MinExpires(rsip::headers::MinExpires::new(
                        self.cfg.min_expires.to_string(),
                    ))],
                );
            }
            Err(UpdateError::OutOfOrder) => {
                return reply(StatusCode::ServerInternalError, vec![]);
            }
        }

        let mut extra: Vec<Header> = self
            .table
            .current(&user, now)
            .iter()
            .map(|b| {
                let mut v = format!("<{}>;expires={}", b.contact, b.remaining_secs(now));
                if let Some(q) = b.q {
                    v.push_str(&format!(";q={q}"));
                }
                Header::Contact(rsip::headers::Contact::new(v))
            })
            .collect();
        if outbound::applies(req, &contacts, source) {
            extra.extend(outbound::response_headers());
        }
        extra.push(Header::Date(rsip::headers::Date::new(http_date(now))));
        reply(StatusCode::OK, extra)
    }

    fn authenticate(&mut self, req: &Request, now: SystemTime) -> Auth {
        let parsed: Vec<DigestCredentials> = header_values(req, "Authorization")
            .iter()
            .filter_map(|v| parse_authorization(v).ok())
            .collect();
        // Prefer credentials for our realm; otherwise the first (which will
        // fail as a realm mismatch, like a wrong password).
        let Some(c) = parsed
            .iter()
            .find(|c| c.realm == self.cfg.realm)
            .or(parsed.first())
        else {
            return Auth::Challenge { stale: false };
        };
        let alg = match c.algorithm.as_deref() {
            None => Some(Algorithm::Md5),
            Some(t) => Algorithm::from_token(t.trim()),
        };
        let Some(alg) = alg.filter(|a| self.cfg.offered().contains(a)) else {
            return Auth::Challenge { stale: false };
        };
        let (Some(qop), Some(cnonce), Some(nc_str)) = (&c.qop, &c.cnonce, &c.nc) else {
            return Auth::Challenge { stale: false };
        };
        if !qop.trim().eq_ignore_ascii_case("auth") || cnonce.is_empty() || nc_str.len() != 8 {
            return Auth::Challenge { stale: false };
        }
        let Ok(nc) = u32::from_str_radix(nc_str, 16) else {
            return Auth::Challenge { stale: false };
        };
        let status = self.nonces.check(&c.nonce, now);
        if status == NonceStatus::Invalid {
            return Auth::Challenge { stale: false };
        }
        // Spent by a wrong answer, or an nc already used: a new challenge,
        // decided before the answer is checked so the code says nothing
        // about whether the guess was right.
        if !self.nonces.count_usable(&c.nonce, nc) {
            return Auth::Challenge { stale: false };
        }
        if c.opaque.as_deref().is_some_and(|o| o != self.opaque()) {
            return Auth::Challenge { stale: false };
        }
        if !uri_acceptable(&c.uri, &req.uri) {
            return Auth::BadRequest("digest uri is not a SIP URI");
        }

        let realm = self.cfg.realm.as_str();
        let real_ha1 = if c.realm == realm {
            self.users.get(&c.username).and_then(|u| u.ha1(alg, realm))
        } else {
            None
        };
        let genuine = real_ha1.is_some();
        // Unknown user: hash against a dummy so the work (and time) matches.
        let ha1 = real_ha1.unwrap_or_else(|| alg.ha1(&c.username, realm, &self.dummy_password()));
        let expected = alg.response(
            &ha1,
            &c.nonce,
            nc_str,
            cnonce,
            req.method.to_string().as_str(),
            &c.uri,
        );
        let answer = c.response.trim().to_ascii_lowercase();
        let digest_ok = constant_time_eq(expected.as_bytes(), answer.as_bytes());
        if !(digest_ok && genuine) {
            self.nonces.spend(&c.nonce, now);
            return Auth::Forbidden(c.username.clone());
        }
        if status == NonceStatus::Stale {
            return Auth::Challenge { stale: true };
        }
        if !self.nonces.accept_count(&c.nonce, nc, now) {
            return Auth::Challenge { stale: false };
        }
        Auth::Ok(c.username.clone())
    }

    /// One WWW-Authenticate per offered algorithm, sharing one nonce.
    fn challenge(&mut self, now: SystemTime, stale: bool) -> Vec<Header> {
        let nonce = self.nonces.issue(now);
        let opaque = self.opaque();
        self.cfg
            .offered()
            .into_iter()
            .map(|alg| {
                Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(challenge_value(
                    &self.cfg.realm,
                    &nonce,
                    &opaque,
                    alg,
                    stale,
                )))
            })
            .collect()
    }

    /// Counts and logs a failed answer from `source` for `user`; blocks
    /// the source when it has failed too often.
    fn failed(&mut self, source: Peer, user: &str, now: SystemTime) {
        self.tally.failures += 1;
        let verdict = self.guard.failure(source.addr.ip(), user, now);
        let (line, summary) = self.auth_log.note(auth_log::Event::Failure, now);
        summary.into_iter().for_each(log_suppressed);
        match verdict {
            Verdict::Blocked(time) => {
                self.tally.blocks += 1;
                // Not rate-limited: one line per source per block at most,
                // and what a fail2ban jail acts on.
                tracing::warn!(%source, block_s = time.as_secs(), "source blocked after repeated failed REGISTERs");
            }
            Verdict::Counted if line => {
                tracing::info!(%source, "REGISTER with failing credentials");
            }
            Verdict::Counted => {}
        }
    }

    fn opaque(&self) -> String {
        let m = hmac_sha256(&self.secret, &[b"opaque", self.cfg.realm.as_bytes()]);
        hex::encode(m.get(..8).unwrap_or(&m))
    }

    fn dummy_password(&self) -> String {
        hex::encode(hmac_sha256(&self.secret, &[b"dummy-password"]))
    }

    /// Deterministic per request so a retransmission gets the same tag.
    fn to_tag(&self, req: &Request) -> String {
        let part = |name| header_value(req, name).unwrap_or_default();
        let (call_id, cseq, from) = (part("Call-ID"), part("CSeq"), part("From"));
        let m = hmac_sha256(
            &self.secret,
            &[
                b"to-tag",
                call_id.as_bytes(),
                b"\0",
                cseq.as_bytes(),
                b"\0",
                from.as_bytes(),
            ],
        );
        hex::encode(m.get(..6).unwrap_or(&m))
    }

    /// Marks the bindings changed and wakes the writer: no file I/O here,
    /// this runs under the lock every signalling shard shares.
    fn persist(&mut self) {
        if self.store.is_some() {
            self.dirty = true;
            if let Some(n) = &self.nudge {
                n.changed();
            }
        }
    }

    /// Where the bindings are kept (`with_store`, `load_from`).
    pub fn store_path(&self) -> Option<&Path> {
        self.store.as_deref()
    }

    /// Wakes `nudge` on every change from now on (and at once if changes
    /// are already waiting).
    pub fn set_nudge(&mut self, nudge: Nudge) {
        if self.dirty {
            nudge.changed();
        }
        self.nudge = Some(nudge);
    }

    /// The bindings, if they changed since the last call: the writer calls
    /// it under the lock, copies memory only, and writes after unlocking.
    pub fn take_snapshot(&mut self) -> Option<Snapshot> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(Snapshot::of(&self.table))
    }

    /// Writes pending changes at once, on the caller's thread (tools and
    /// tests; the daemon uses [`BindingsWriter`]). Ok(false): nothing to do.
    pub fn save_now(&mut self) -> Result<bool, StoreError> {
        let Some(path) = self.store.clone() else {
            return Ok(false);
        };
        match self.take_snapshot() {
            Some(s) => s.save(&path).map(|()| true),
            None => Ok(false),
        }
    }
}

fn log_suppressed(s: auth_log::Suppressed) {
    tracing::warn!(
        failures = s.failures,
        refused_blocked = s.blocked,
        interval_s = auth_log::INTERVAL.as_secs(),
        "more failed REGISTERs than logged one by one in the last interval"
    );
}

/// The response to `req` with `extra` headers before Content-Length.
fn reply(req: &Request, status: StatusCode, to_tag: &str, extra: Vec<Header>) -> Response {
    let mut resp = response_with_status(req, status, Some(to_tag));
    let mut headers: Vec<Header> = resp.headers.into_iter().collect();
    let content_length = headers.pop();
    headers.extend(extra);
    headers.extend(content_length);
    resp.headers = headers.into();
    resp
}

/// `CSeq: 12 REGISTER` → 12; the method must be REGISTER.
fn parse_cseq(v: &str) -> Option<u32> {
    let mut it = v.split_whitespace();
    let n = it.next()?.parse::<u32>().ok()?;
    let m = it.next()?;
    (m.eq_ignore_ascii_case("REGISTER") && it.next().is_none()).then_some(n)
}

/// RFC 2617 says the digest `uri` SHOULD equal the Request-URI, but SIPp
/// and several phones put the registrar's address there instead. The
/// response hash covers the `uri` the client states, and nonce counts stop
/// replays, so like Asterisk and Kamailio we accept any SIP URI there.
fn uri_acceptable(digest_uri: &str, req_uri: &rsip::Uri) -> bool {
    let d = digest_uri.trim();
    if d.eq_ignore_ascii_case(req_uri.to_string().trim()) {
        return true;
    }
    let lower = d.to_ascii_lowercase();
    (lower.starts_with("sip:") || lower.starts_with("sips:")) && rsip::Uri::try_from(d).is_ok()
}

/// RFC 1123 date for the Date header (RFC 3261 §20.17).
fn http_date(now: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(now)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests;
