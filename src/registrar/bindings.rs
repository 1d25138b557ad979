//! The location table: bindings per address-of-record and the update rules
//! of RFC 3261 §10.3 steps 6–8.

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
}

impl Binding {
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
            if let Some(b) = list.iter().find(|b| b.contact == addr.uri) {
                if b.call_id == up.call_id && up.cseq <= b.cseq {
                    return Err(UpdateError::OutOfOrder);
                }
            }
            plan.push((addr, expires));
        }

        for (addr, expires) in plan {
            list.retain(|b| b.contact != addr.uri);
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
