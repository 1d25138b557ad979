//! Stage one: the file as written. Unknown keys are errors (a typo must not
//! silently change routing); `keys` finds them all, using the field lists
//! serde derives here, so no `deny_unknown_fields` (it stops at the first).
//! Values that are checked later are
//! `Spanned` so errors can point at them. Required keys are `Option` here so
//! that the compile step can report all missing ones at once.
//!
//! No `#[serde(flatten)]`, `untagged` or internally tagged enums: serde
//! buffers those, which loses spans. IVR nodes are therefore one flat struct
//! whose `type` decides which keys are allowed.

use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;

pub type S<T> = Spanned<T>;
pub type Skills = BTreeMap<S<String>, S<i64>>;

/// A share written as a fraction (`0.8`) or a whole percentage (`80`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawShare {
    Percent(i64),
    Fraction(f64),
}

/// A queue's `record`: a word (`none`, `all`) or a percentage of calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawRecord {
    Percent(i64),
    Word(String),
}

#[derive(Debug, Deserialize, Default)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub schedules: BTreeMap<S<String>, RawSchedule>,
    #[serde(default)]
    pub agents: BTreeMap<S<String>, RawAgent>,
    #[serde(default)]
    pub queues: BTreeMap<S<String>, RawQueue>,
    #[serde(default)]
    pub numbers: Vec<S<RawNumber>>,
    #[serde(default)]
    pub ivr: BTreeMap<S<String>, RawIvr>,
    #[serde(default)]
    pub features: RawFeatures,
    #[serde(default)]
    pub trunks: BTreeMap<S<String>, RawTrunk>,
}

/// `[features]`: the codes agents dial from their phones.
#[derive(Debug, Deserialize, Default)]
pub struct RawFeatures {
    pub pause: Option<S<String>>,
    pub unpause: Option<S<String>>,
    pub login: Option<S<String>>,
    pub logout: Option<S<String>>,
    /// Digits dialled after the pause code -> the pause reason.
    #[serde(default)]
    pub pause_reasons: BTreeMap<S<String>, S<String>>,
    /// The `[trunks]` entry a REFER to an outside number goes out through.
    pub transfer_trunk: Option<S<String>>,
    /// Prefixes an outside number must start with (none: any number).
    pub transfer_prefixes: Option<S<Vec<S<String>>>>,
    /// How long the outside number may ring before the transfer fails.
    pub transfer_ring_s: Option<S<u64>>,
}

/// `[trunks.NAME]`: a gateway sipacd places outbound calls through.
#[derive(Debug, Deserialize)]
pub struct RawTrunk {
    pub uri: Option<S<String>>,
    pub username: Option<S<String>>,
    pub password: Option<S<String>>,
    pub caller_id: Option<S<String>>,
    pub max_calls: Option<S<u64>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct RawServer {
    pub sip: Option<S<Vec<S<String>>>>,
    pub advertise: Option<S<String>>,
    pub domain: Option<S<String>>,
    pub rtp_ports: Option<S<String>>,
    pub admin: Option<S<String>>,
    pub admin_token: Option<String>,
    pub digest_algorithms: Option<S<Vec<S<String>>>>,
    pub data_dir: Option<String>,
    pub prompts: Option<String>,
    pub timezone: Option<S<String>>,
    pub drain_s: Option<S<u64>>,
    pub max_calls: Option<S<u64>>,
    pub rtp_timeout_s: Option<S<u64>>,
    pub queue_log: Option<S<String>>,
    pub tcp_connect_timeout_s: Option<S<u64>>,
    pub tcp_max_connections: Option<S<u64>>,
    pub tcp_max_per_source: Option<S<u64>>,
    pub tcp_message_timeout_s: Option<S<u64>>,
    pub tcp_idle_s: Option<S<u64>>,
    pub tls_cert: Option<S<String>>,
    pub tls_key: Option<S<String>>,
    pub admin_max_connections: Option<S<u64>>,
    pub admin_header_timeout_s: Option<S<u64>>,
    pub auth_max_failures: Option<S<u64>>,
    pub auth_user_max_failures: Option<S<u64>>,
    pub auth_window_s: Option<S<u64>>,
    pub auth_block_s: Option<S<u64>>,
    pub auth_trusted: Option<Vec<S<String>>>,
    pub pike_window_s: Option<S<u64>>,
    pub pike_max_requests: Option<S<u64>>,
    pub pike_block_s: Option<S<u64>>,
    pub max_calls_in_setup_per_source: Option<S<u64>>,
    pub max_transactions: Option<S<u64>>,
    pub allow_networks: Option<Vec<S<String>>>,
    pub retention_days: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
pub struct RawSchedule {
    pub timezone: Option<S<String>>,
    #[serde(default)]
    pub open: Vec<S<String>>,
    #[serde(default)]
    pub closed_dates: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawAgent {
    pub name: Option<String>,
    pub password: Option<S<String>>,
    pub ha1: Option<S<String>>,
    #[serde(default)]
    pub skills: Skills,
    pub timezone: Option<S<String>>,
    pub shift: Option<Vec<S<String>>>,
    pub contact: Option<S<String>>,
    pub media_encryption: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawRelax {
    pub after_s: S<u64>,
    #[serde(default)]
    pub skills: Skills,
}

#[derive(Debug, Deserialize)]
pub struct RawQueue {
    #[serde(default)]
    pub skills: Skills,
    pub strategy: Option<S<String>>,
    pub schedule: Option<S<String>>,
    pub closed: Option<S<String>>,
    pub ring_timeout_s: Option<S<u64>>,
    pub wrapup_s: Option<S<u64>>,
    pub retry_s: Option<S<u64>>,
    pub max_wait_s: Option<S<u64>>,
    pub max_waiting: Option<S<u64>>,
    pub overflow: Option<S<String>>,
    pub music: Option<S<String>>,
    pub announce_position_s: Option<S<u64>>,
    #[serde(default)]
    pub relax: Vec<S<RawRelax>>,
    pub priority: Option<i32>,
    pub transfer_priority: Option<i32>,
    pub service_level_s: Option<S<u64>>,
    pub service_level_target: Option<S<RawShare>>,
    pub record: Option<S<RawRecord>>,
    pub record_prompt: Option<S<String>>,
    pub rejoin_s: Option<S<u64>>,
    pub survey: Option<S<String>>,
    pub callback: Option<S<RawCallback>>,
}

/// `[queues.NAME.callback]`: offering a waiting caller to be called back.
#[derive(Debug, Deserialize)]
pub struct RawCallback {
    pub trunk: Option<S<String>>,
    pub after_s: Option<S<u64>>,
    pub above_wait_s: Option<S<u64>>,
    pub digit: Option<S<String>>,
    pub prompt: Option<S<String>>,
    pub number_prompt: Option<S<String>>,
    pub accepted_prompt: Option<S<String>>,
    pub agent_prompt: Option<S<String>>,
    pub ring_s: Option<S<u64>>,
    pub retry_s: Option<Vec<S<u64>>>,
}

#[derive(Debug, Deserialize)]
pub struct RawNumber {
    pub number: Option<S<String>>,
    pub to: Option<S<String>>,
    pub ring_s: Option<S<u64>>,
    pub media_encryption: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawIvr {
    pub start: Option<S<String>>,
    #[serde(default)]
    pub nodes: BTreeMap<S<String>, RawNode>,
}

/// Union of the keys of every node type; `compile` rejects keys that do not
/// belong to the node's `type`.
#[derive(Debug, Deserialize)]
pub struct RawNode {
    #[serde(rename = "type")]
    pub kind: Option<S<String>>,
    pub prompt: Option<S<String>>,
    pub next: Option<S<String>>,
    pub timeout_s: Option<S<u64>>,
    pub retries: Option<S<u64>>,
    pub options: Option<S<BTreeMap<S<String>, S<String>>>>,
    pub on_fail: Option<S<String>>,
    pub max_digits: Option<S<u64>>,
    pub variable: Option<S<String>>,
    pub terminator: Option<S<String>>,
    pub schedule: Option<S<String>>,
    pub open: Option<S<String>>,
    pub closed: Option<S<String>>,
    pub queue: Option<S<String>>,
    pub priority: Option<S<i32>>,
    pub max_s: Option<S<u64>>,
    pub end_key: Option<S<String>>,
    pub silence_s: Option<S<u64>>,
    pub min: Option<S<u64>>,
    pub max: Option<S<u64>>,
}

impl RawNode {
    /// Present keys with their spans, for "key not allowed here" errors.
    pub fn present_keys(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut v = Vec::new();
        macro_rules! key {
            ($($f:ident => $n:literal),*) => {$(
                if let Some(x) = &self.$f { v.push(($n, x.span())); }
            )*};
        }
        key!(prompt => "prompt", next => "next", timeout_s => "timeout_s",
            retries => "retries", options => "options", on_fail => "on_fail",
            max_digits => "max_digits", variable => "variable",
            terminator => "terminator", schedule => "schedule", open => "open",
            closed => "closed", queue => "queue", priority => "priority",
            max_s => "max_s", end_key => "end_key", silence_s => "silence_s",
            min => "min", max => "max");
        v
    }
}
