//! The location table: bindings per address-of-record and the update rules
//! of RFC 3261 §10.3 steps 6–8, with RFC 5626 §6's: a Contact carrying
//! `+sip.instance` (and `reg-id`) is the same binding as the one of the
//! same instance (and reg-id), whatever its URI, so a phone that comes back
//! from another address or on a new connection replaces its old binding
//! instead of leaving a stale second one that would be offered calls.

use super::contact::{ContactValue, NameAddr};
use crate::sip::Peer;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The contact URI as the phone sent it (the table key).
    pub contact: String,
    /// Where the REGISTER came from; requests to the agent go here (NAT,
    /// RFC 3581), not to the host in `contact`.
    pub source: Peer,
    pub expires_at: SystemTime,
    pub call_id: String,
    pub cseq: u32,
    pub q: Option<f32>,
    /// `+sip.instance` of the Contact (RFC 5626 §4.1), as sent.
    pub instance: Option<String>,
    /// `reg-id` of the Contact (RFC 5626 §4.2), with an instance only.
    pub reg_id: Option<String>,
    /// Registered as an outbound flow (RFC 5626, over TCP or TLS): when its
    /// connection is gone the binding is unusable until the phone registers
    /// again (§5.3: an edge never re-creates a flow).
    pub outbound: bool,
    /// Loaded from the registrations file at start: any connection it came
    /// over belonged to the previous process, so a flow-only binding is
    /// unusable until the phone registers again (not kept in the file).
    pub restored: bool,
}

impl Binding {
    /// Whether `self` and `other` are the same RFC 5626 binding: the same
    /// instance and the same reg-id (or both without).
    fn same_instance(&self, instance: Option<&str>, reg_id: Option<&str>) -> bool {
        instance.is_some()
            && self.instance.as_deref() == instance
            && self.reg_id.as_deref() == reg_id
    }

    /// Whole seconds left, rounded up (0 once expired).
    pub fn remaining_secs(&self, now: SystemTime) -> u64 {
        match self.expires_at.duration_since(now) {
            Ok(d) if !d.is_zero() => d.as_secs() + u64::from(d.subsec_nanos() > 0),
            _ => 0,
        }
    }

    fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at > now
    }
}

/// Expiry policy, from the registrar configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
}

/// A REGISTER's binding-related content, already parsed.
#[derive(Debug)]
pub struct Update<'a> {
    pub contacts: &'a [ContactValue],
    /// The Expires header: `None` when absent or not a number.
    pub expires_header: Option<u64>,
    pub call_id: &'a str,
    pub cseq: u32,
    pub source: Peer,
    pub now: SystemTime,
    /// The REGISTER took outbound up (`outbound::applies`).
    pub outbound: bool,
}

/// Why an update was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 423 Interval Too Brief; carry Min-Expires.
    #[error("interval too brief")]
    IntervalTooBrief,
    /// Same Call-ID with a CSeq not above the stored one (§10.3 step 6/7).
    #[error("request out of order")]
    OutOfOrder,
}

/// Bindings of every user.
#[derive(Debug, Default, Clone)]
pub struct BindingTable {
    by_user: BTreeMap<String, Vec<Binding>>,
    /// (expires_at, user, contact) of every binding in `by_user`, so the
    /// once-a-second sweep looks at the expired ones only instead of
    /// walking every binding (100,000 agents: milliseconds a second).
    by_expiry: BTreeSet<(SystemTime, String, String)>,
}

impl BindingTable {
    /// Unexpired bindings of `user`, in registration order.
    pub fn current(&self, user: &str, now: SystemTime) -> Vec<Binding> {
        self.by_user
            .get(user)
            .map(|v| v.iter().filter(|b| b.is_live(now)).cloned().collect())
            .unwrap_or_default()
    }

    /// Every binding (expired ones included) for persistence.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Binding)> {
        self.by_user
            .iter()
            .flat_map(|(u, v)| v.iter().map(move |b| (u.as_str(), b)))
    }

    /// Inserts a binding as loaded from disk (replacing one with the same contact).
    pub fn insert(&mut self, user: &str, b: Binding) {
        let list = self.by_user.entry(user.to_string()).or_default();
        for old in list.iter().filter(|x| x.contact == b.contact) {
            self.by_expiry
                .remove(&(old.expires_at, user.to_string(), old.contact.clone()));
        }
        list.retain(|x| x.contact != b.contact);
        self.by_expiry
            .insert((b.expires_at, user.to_string(), b.contact.clone()));
        list.push(b);
    }

    /// Replaces `user`'s bindings with `list` (none: the user goes).
    fn set(&mut self, user: &str, list: Vec<Binding>) {
        if let Some(old) = self.by_user.remove(user) {
            for b in old {
                self.by_expiry
                    .remove(&(b.expires_at, user.to_string(), b.contact));
            }
        }
        if list.is_empty() {
            return;
        }
        for b in &list {
            self.by_expiry
                .insert((b.expires_at, user.to_string(), b.contact.clone()));
        }
        self.by_user.insert(user.to_string(), list);
    }

    /// Removes expired bindings; returns (user, contact) of each.
    pub fn expire(&mut self, now: SystemTime) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        // Expired = not live: expires_at <= now.
        while self.by_expiry.first().is_some_and(|(at, _, _)| *at <= now) {
            let Some((_, user, contact)) = self.by_expiry.pop_first() else {
                break;
            };
            if let Some(list) = self.by_user.get_mut(&user) {
                list.retain(|b| b.contact != contact);
                if list.is_empty() {
                    self.by_user.remove(&user);
                }
            }
            gone.push((user, contact));
        }
        gone
    }

    /// Drops every binding of users for which `keep` is false.
    pub fn retain_users(&mut self, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        self.by_user.retain(|user, list| {
            let k = keep(user);
            if !k {
                gone.extend(list.iter().map(|b| (user.clone(), b.contact.clone())));
            }
            k
        });
        self.by_expiry.retain(|(_, user, _)| keep(user));
        gone
    }

    /// Applies a REGISTER to `user`'s bindings. All checks run before any
    /// change, so a refused request leaves the table as it was. Returns
    /// whether anything changed.
    pub fn apply(&mut self, user: &str, up: &Update<'_>, lim: Limits) -> Result<bool, UpdateError> {
        let now = up.now;
        let mut list: Vec<Binding> = self.current(user, now);
        let before_len = self.by_user.get(user).map_or(0, Vec::len);

        if up.contacts.iter().any(|c| matches!(c, ContactValue::Star)) {
            if up.contacts.len() != 1 {
                return Err(UpdateError::BadRequest("'*' mixed with other contacts"));
            }
            if up.expires_header != Some(0) {
                return Err(UpdateError::BadRequest("'*' needs Expires: 0"));
            }
            if list
                .iter()
                .any(|b| b.call_id == up.call_id && up.cseq <= b.cseq)
            {
                return Err(UpdateError::OutOfOrder);
            }
            let changed = before_len > 0;
            self.set(user, Vec::new());
            return Ok(changed);
        }

        // Validate every contact first (§10.3 step 7 is all-or-nothing).
        let mut plan: Vec<(&NameAddr, u32)> = Vec::new();
        for c in up.contacts {
            let ContactValue::Addr(addr) = c else {
                continue;
            };
            let expires = contact_expires(addr, up.expires_header, lim.default_expires);
            let expires = if expires == 0 {
                0
            } else if expires < u64::from(lim.min_expires) {
                return Err(UpdateError::IntervalTooBrief);
            } else {
                u32::try_from(expires.min(u64::from(lim.max_expires))).unwrap_or(lim.max_expires)
            };
            let (instance, reg_id) = flow_ids(addr);
            let same = |b: &&Binding| b.contact == addr.uri || b.same_instance(instance, reg_id);
            if let Some(b) = list.iter().find(same) {
                if b.call_id == up.call_id && up.cseq <= b.cseq {
                    return Err(UpdateError::OutOfOrder);
                }
            }
            plan.push((addr, expires));
        }

        for (addr, expires) in plan {
            let (instance, reg_id) = flow_ids(addr);
            list.retain(|b| b.contact != addr.uri && !b.same_instance(instance, reg_id));
            if expires > 0 {
                list.push(Binding {
                    contact: addr.uri.clone(),
                    source: up.source,
                    expires_at: now + Duration::from_secs(u64::from(expires)),
                    call_id: up.call_id.to_string(),
                    cseq: up.cseq,
                    q: addr
                        .param("q")
                        .flatten()
                        .and_then(|q| q.parse::<f32>().ok())
                        .filter(|q| (0.0..=1.0).contains(q)),
                    instance: instance.map(str::to_owned),
                    reg_id: reg_id.map(str::to_owned),
                    outbound: up.source.transport.is_reliable()
                        && ((up.outbound && reg_id.is_some()) || uri_has_ob(&addr.uri)),
                    restored: false,
                });
            }
        }
        // Any contact at all means a write; a query (no Contact) changes
        // nothing unless it swept expired bindings.
        let changed = !up.contacts.is_empty() || list.len() != before_len;
        self.set(user, list);
        Ok(changed)
    }
}

/// A Contact's `+sip.instance` and, with it, its `reg-id` (RFC 5626 §6:
/// a reg-id without an instance is ignored).
fn flow_ids(addr: &NameAddr) -> (Option<&str>, Option<&str>) {
    let instance = addr
        .param("+sip.instance")
        .flatten()
        .filter(|i| !i.is_empty());
    let reg_id = instance.and(addr.param("reg-id").flatten());
    (instance, reg_id)
}

/// Whether a Contact URI carries the `ob` parameter (RFC 5626 §5.4).
fn uri_has_ob(uri: &str) -> bool {
    let params = uri.split_once('>').map_or(uri, |(u, _)| u);
    let params = params.split_once('?').map_or(params, |(u, _)| u);
    params
        .split(';')
        .skip(1)
        .any(|p| p.trim().eq_ignore_ascii_case("ob"))
}

/// The contact's `expires` parameter, else the Expires header, else the
/// default (RFC 3261 §10.3 step 7). Values beyond u32 saturate.
fn contact_expires(addr: &NameAddr, header: Option<u64>, default: u32) -> u64 {
    addr.param("expires")
        .flatten()
        .and_then(parse_delta)
        .or(header)
        .unwrap_or(u64::from(default))
}

/// delta-seconds; overlong values saturate (RFC 3261 §20.19).
pub fn parse_delta(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u64>().unwrap_or(u64::MAX))
}
