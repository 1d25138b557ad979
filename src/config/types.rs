//! Stage two: the validated configuration the daemon runs on. Every name in
//! here resolves (targets, schedules, queues) and every file it names exists.

use super::schedule::{Schedule, Window};
use crate::sip::Transport;
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

pub use crate::media::crypto_attr::MediaEncryption;

/// The whole contact center, as loaded from one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub schedules: BTreeMap<String, Schedule>,
    /// Keyed by agent id (= SIP user).
    pub agents: BTreeMap<String, Agent>,
    pub queues: BTreeMap<String, Queue>,
    pub numbers: Vec<NumberRoute>,
    /// The `[ivr.NAME]` tables.
    pub ivrs: BTreeMap<String, Ivr>,
    /// `[features]`: agents' feature codes.
    pub features: Features,
    /// The `[trunks.NAME]` tables. Shared so that a call placed on a trunk
    /// keeps the settings it started with across a reload.
    pub trunks: BTreeMap<String, std::sync::Arc<Trunk>>,
    /// Whether the prompts directory holds `estimated-wait.wav` and
    /// `minutes.wav`: then position announcements add the estimated wait.
    pub wait_prompts: bool,
    /// The file this was loaded from.
    pub source_path: PathBuf,
}

/// One SIP listener (`udp:IP:PORT`, `tcp:IP:PORT` or `tls:IP:PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        };
        write!(f, "{t}:{}", self.addr)
    }
}

/// Digest algorithms offered when challenging REGISTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `MD5` (RFC 2617), what every phone supports.
    Md5,
    /// `SHA-256` (RFC 8760).
    Sha256,
}

impl DigestAlgorithm {
    /// The token used in `algorithm=` and in the config file.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
}

/// `[server]`. Every key is optional; the defaults are listed per field.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Default `["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]`.
    pub sip: Vec<Listener>,
    /// Address written into Via, Contact and SDP. Default: the first
    /// listener's IP when it is not a wildcard, else `127.0.0.1`.
    pub advertise: IpAddr,
    /// SIP domain agents register in (digest realm). Default: `advertise`.
    pub domain: String,
    /// UDP ports for media. Default `10000-20000` (Asterisk's rtp.conf).
    pub rtp_ports: RangeInclusive<u16>,
    /// Admin HTTP API. Default `127.0.0.1:8088`.
    pub admin: SocketAddr,
    /// Bearer token for the admin API; `None` (default, or `""`) = open.
    pub admin_token: Option<String>,
    /// Default `["MD5"]`.
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// Call records and registrations. Default `data`, relative to the
    /// config file's directory.
    pub data_dir: PathBuf,
    /// Prompts directory. Default `prompts`, relative to the config file's
    /// directory. Prompt names in the file are relative to this directory.
    pub prompts: PathBuf,
    /// Default zone for schedules and agents. Default `UTC`.
    pub timezone: Tz,
    /// Grace period for calls in progress on SIGTERM. Default 30.
    pub drain_s: u64,
    /// Concurrent calls before new INVITEs get 503. Default 5000.
    pub max_calls: usize,
    /// A leg without RTP this long is hung up. Default 60.
    pub rtp_timeout_s: u64,
    /// Recordings older than this many days are deleted; 0 (default) =
    /// kept until an operator removes them.
    pub retention_days: u64,
    /// Asterisk-format queue_log file, relative to `data_dir`; `None`
    /// (default) = not written.
    pub queue_log: Option<PathBuf>,
    /// An outbound TCP connect taking longer fails. Default 10.
    pub tcp_connect_timeout_s: u64,
    /// Open SIP TCP connections at most; `None` (default) = derived from
    /// the open-file limit, keeping room for RTP and data files.
    pub tcp_max_connections: Option<usize>,
    /// Accepted SIP TCP connections per source IP. Default 128.
    pub tcp_max_per_source: usize,
    /// A TCP peer's first message, and any message once begun, must be
    /// complete within this. Default 10.
    pub tcp_message_timeout_s: u64,
    /// A TCP connection with no message this long is closed unless a
    /// registration uses it. Default 120.
    pub tcp_idle_s: u64,
    /// The certificate chain and key of `tls:` listeners (`tls_cert`,
    /// `tls_key`, PEM, relative to the config file's directory); `None`
    /// unless both are set. Required when a `tls:` listener is listed.
    pub tls: Option<super::tls::TlsFiles>,
    /// Open admin HTTP connections at most. Default 64.
    pub admin_max_connections: usize,
    /// An admin request's headers (and an idle keep-alive connection's next
    /// request) must arrive within this. Default 10.
    pub admin_header_timeout_s: u64,
    /// Limits on failed REGISTER answers (`auth_*` keys): after
    /// `auth_max_failures` in `auth_window_s` a source is refused for
    /// `auth_block_s`, doubling on each repeat.
    pub auth_guard: crate::registrar::GuardConfig,
    /// Request density per source (`pike_*` keys): over
    /// `pike_max_requests` messages in `pike_window_s` blocks the source
    /// for `pike_block_s`. Defaults 100 per 2 s, 60 s.
    pub pike: crate::flood::PikeConfig,
    /// INVITEs from one source taken as calls and not yet ACKed; more get
    /// 503. 0 = no cap. Default 50.
    pub max_calls_in_setup_per_source: usize,
    /// Server transactions alive at once on all shards; a request that
    /// would start one more gets a stateless 503. Default 100,000.
    pub max_transactions: usize,
    /// Networks the flood limits (`pike_*`, the setup cap) never apply
    /// to. Default loopback (`127.0.0.0/8`, `::1`).
    pub allow_networks: Vec<crate::registrar::Network>,
}

/// How an agent authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Password(String),
    /// Hex MD5(user:domain:password), lower-cased.
    Ha1(String),
}

impl fmt::Debug for Credential {
    // Secrets stay out of logs and debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(***)"),
            Credential::Ha1(_) => f.write_str("Ha1(***)"),
        }
    }
}

/// `[agents.ID]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// The table key: agent id and SIP user.
    pub id: String,
    /// Display name; defaults to the id.
    pub name: String,
    /// `None` only for agents with a static `contact` and no password.
    pub credential: Option<Credential>,
    /// Skill name -> level 1..=10.
    pub skills: BTreeMap<String, u8>,
    /// Default: `server.timezone`.
    pub timezone: Tz,
    /// Empty = always on shift.
    pub shift: Vec<Window>,
    /// Static contact (`sip:` URI) instead of REGISTER.
    pub contact: Option<String>,
    /// SRTP on the agent's leg (`media_encryption`, default none).
    pub media_encryption: MediaEncryption,
}

impl Agent {
    /// Whether the agent is on shift at `at`.
    pub fn on_shift(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.shift.is_empty() || super::schedule::windows_open(&self.shift, self.timezone, at)
    }

    /// When the agent's shift next starts (`true`) or ends (`false`) after
    /// `at`; `None` without shifts (always on).
    pub fn shift_next_change(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<(bool, chrono::DateTime<chrono::Utc>)> {
        super::schedule::next_change(&self.shift, &[], self.timezone, at)
    }
}

/// How a queue picks among eligible agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    LongestIdle,
    MostSkilled,
    RoundRobin,
    FewestCalls,
    Random,
}

impl Strategy {
    pub const NAMES: [&'static str; 5] = [
        "longest_idle",
        "most_skilled",
        "round_robin",
        "fewest_calls",
        "random",
    ];

    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "longest_idle" => Strategy::LongestIdle,
            "most_skilled" => Strategy::MostSkilled,
            "round_robin" => Strategy::RoundRobin,
            "fewest_calls" => Strategy::FewestCalls,
            "random" => Strategy::Random,
            _ => return None,
        })
    }
}

/// Where a call goes next. Resolved: names exist, and an `ivr:NAME` without
/// a node is stored with the IVR's start node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Queue(String),
    Ivr { ivr: String, node: String },
    Hangup,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Queue(q) => write!(f, "queue:{q}"),
            Target::Ivr { ivr, node } => write!(f, "ivr:{ivr}.{node}"),
            Target::Hangup => f.write_str("hangup"),
        }
    }
}

/// After waiting `after_s`, these (lower) skill minimums apply instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relax {
    pub after_s: u64,
    pub skills: BTreeMap<String, u8>,
}

/// `[queues.NAME]`. Defaults follow Asterisk's queues.conf where it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub name: String,
    /// Minimum level per skill; empty = any agent.
    pub skills: BTreeMap<String, u8>,
    /// Default `longest_idle`.
    pub strategy: Strategy,
    /// Outside this schedule the queue is closed. Default: always open.
    pub schedule: Option<String>,
    /// Where callers go while closed; `None` = hang up.
    pub closed: Option<Target>,
    /// Default 15 (Asterisk `timeout`).
    pub ring_timeout_s: u64,
    /// Default 0 (Asterisk `wrapuptime`).
    pub wrapup_s: u64,
    /// Default 5 (Asterisk `retry`): an agent who refused a call (486, 603)
    /// is not offered that same call again for this long; others come first.
    pub retry_s: u64,
    /// 0 (default) = no limit.
    pub max_wait_s: u64,
    /// 0 (default) = no limit (Asterisk `maxlen`).
    pub max_waiting: usize,
    /// On max_wait_s / max_waiting; `None` = hang up.
    pub overflow: Option<Target>,
    /// Music on hold, resolved against the prompts dir.
    pub music: Option<PathBuf>,
    /// 0 (default) = never announce the position.
    pub announce_position_s: u64,
    /// Sorted by `after_s`.
    pub relax: Vec<Relax>,
    /// Default 0; higher is served first.
    pub priority: i32,
    /// The priority of a caller an agent transfers into this queue (blind
    /// REFER); default 0, as a new caller. Higher is served first.
    pub transfer_priority: i32,
    /// Default 20.
    pub service_level_s: u64,
    /// Percent of calls to answer within `service_level_s`, 1..=100;
    /// default 80 (the wallboard colours the service level against it).
    pub service_level_target: u8,
    /// Which calls are recorded once bridged. Default none.
    pub record: RecordPolicy,
    /// Played to the caller before the agent is bridged on a call that is
    /// recorded; resolved against the prompts dir.
    pub record_prompt: Option<PathBuf>,
    /// A caller who hung up while waiting and calls again from the same
    /// number within this many seconds takes its old place back (as
    /// mod_callcenter's abandoned resume); 0 (default) = never.
    pub rejoin_s: u64,
    /// Where the caller goes once the agent hangs up (`ivr:NAME[.NODE]`),
    /// for a post-call survey; `None` (default): the call ends with the
    /// agent's hang-up.
    pub survey: Option<Target>,
    /// Offering waiting callers to be called back in turn instead.
    pub callback: Option<CallbackOffer>,
}

/// A queue's `[queues.NAME.callback]`: when a waiting caller is offered a
/// callback, the prompts of the exchange, the trunk it is placed on and
/// the retries when the customer does not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackOffer {
    /// The `[trunks]` entry the customer is called through.
    pub trunk: String,
    /// Offered once the caller has waited this long.
    pub after_s: Option<u64>,
    /// Offered as soon as the estimated wait is above this.
    pub above_wait_s: Option<u64>,
    /// The key that accepts (default `1`).
    pub digit: char,
    /// "Press 1 to be called back" (default `callback-offer.wav`).
    pub prompt: PathBuf,
    /// "Press # for the number you call from, or key another then #"
    /// (default `callback-number.wav`).
    pub number_prompt: PathBuf,
    /// "We will call you back" before sipacd hangs up (default
    /// `callback-accepted.wav`).
    pub accepted_prompt: PathBuf,
    /// What the agent hears before the customer is dialled, followed by
    /// the number digit by digit (default `callback-agent.wav`).
    pub agent_prompt: PathBuf,
    /// How long the customer's phone rings (default 30).
    pub ring_s: u64,
    /// Waits before each new try when the customer did not answer or was
    /// busy (default `[120, 600]`: three tries in all).
    pub retry_s: Vec<u64>,
}

/// A queue's `record` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordPolicy {
    #[default]
    None,
    All,
    /// This share of calls, 0..=100, chosen per call.
    Percent(u8),
}

impl RecordPolicy {
    /// Whether the call with this Call-ID is recorded. A percentage picks
    /// calls by a hash of the Call-ID: each call is one draw, and the same
    /// call gives the same answer wherever it is asked (shards, retries).
    pub fn records(self, call_id: &str) -> bool {
        match self {
            RecordPolicy::None => false,
            RecordPolicy::All => true,
            RecordPolicy::Percent(p) => {
                // FNV-1a: stable across builds and platforms, unlike the
                // std hasher.
                let h = call_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                h % 100 < u64::from(p)
            }
        }
    }
}

/// `service_level_target` when the queue does not set it: the common 80/20
/// goal (80 % of calls answered within `service_level_s`).
pub const DEFAULT_SERVICE_LEVEL_TARGET: u8 = 80;

/// `[features]`: codes an agent dials from its own registered phone.
/// `None`: that feature has no code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// Pause; followed by a code of `pause_reasons`, pause with that reason.
    pub pause: Option<String>,
    pub unpause: Option<String>,
    /// Log in (back to available) and log out (no offers while the phone
    /// stays registered), as app_queue's AgentLogin users dial them.
    pub login: Option<String>,
    pub logout: Option<String>,
    /// Reason code (digits) -> pause reason.
    pub pause_reasons: BTreeMap<String, String>,
    /// Blind transfers to outside numbers (`transfer_trunk`); `None`: such
    /// a REFER is refused with 403.
    pub transfer: Option<OutsideTransfer>,
}

/// How an agent's REFER to a number sipacd does not serve goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideTransfer {
    /// A `[trunks]` name.
    pub trunk: String,
    /// A number must start with one of these (empty: any dialable number),
    /// as a dialplan pattern restricts where a transfer may go.
    pub prefixes: Vec<String>,
    /// Ring time before the transfer fails (and the caller stays).
    pub ring_s: u32,
}

/// `transfer_ring_s` when unset: what Asterisk's Dial is usually given.
pub const DEFAULT_TRANSFER_RING_S: u32 = 30;

impl OutsideTransfer {
    /// Whether `number` may be called by a transfer.
    pub fn allows(&self, number: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| number.starts_with(p.as_str()))
    }
}

/// What a dialled feature code asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureAction {
    Pause(Option<String>),
    Unpause,
    Login,
    Logout,
    /// The pause code followed by digits that are no configured reason.
    UnknownReason(String),
}

impl Features {
    /// What dialling `number` asks for, if it is a feature code.
    pub fn action(&self, number: &str) -> Option<FeatureAction> {
        if self.unpause.as_deref() == Some(number) {
            return Some(FeatureAction::Unpause);
        }
        if self.login.as_deref() == Some(number) {
            return Some(FeatureAction::Login);
        }
        if self.logout.as_deref() == Some(number) {
            return Some(FeatureAction::Logout);
        }
        let rest = number.strip_prefix(self.pause.as_deref()?)?;
        if rest.is_empty() {
            return Some(FeatureAction::Pause(None));
        }
        Some(match self.pause_reasons.get(rest) {
            Some(r) => FeatureAction::Pause(Some(r.clone())),
            None => FeatureAction::UnknownReason(rest.to_owned()),
        })
    }
}

/// `[[numbers]]`: what callers dial and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRoute {
    pub number: String,
    /// Never `Hangup`.
    pub to: Target,
    /// Seconds the caller hears ringing (180) before sipacd answers; 0
    /// (the default) answers at once. Like Asterisk's `Ringing()` before
    /// `Answer()`: it gives callers a ring back and lets them CANCEL.
    pub ring_s: u64,
    /// SRTP on the caller's leg (`media_encryption`, default none).
    pub media_encryption: MediaEncryption,
}

/// `[ivr.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ivr {
    pub name: String,
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
}

/// One IVR step. Prompts are resolved against the prompts dir.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Play `prompt`, then go to `next` (default: hang up).
    Play {
        prompt: PathBuf,
        next: Target,
    },
    /// Play `prompt`, wait `timeout_s` (default 5) for one digit; invalid or
    /// missing digit replays up to `retries` (default 2) times, then `on_fail`
    /// (default: hang up).
    Menu {
        prompt: PathBuf,
        timeout_s: u64,
        retries: u32,
        options: BTreeMap<char, Target>,
        on_fail: Target,
    },
    /// Gather up to `max_digits` (default 10) into `variable`; ends early on
    /// `terminator` (default `#`, `""` = none) or after `timeout_s`
    /// (default 5) without a digit.
    Collect {
        prompt: Option<PathBuf>,
        max_digits: u32,
        variable: String,
        timeout_s: u64,
        terminator: Option<char>,
        next: Target,
    },
    /// Branch on a named schedule.
    Schedule {
        schedule: String,
        open: Target,
        closed: Target,
    },
    /// Enter a queue with an extra priority (default 0).
    Queue {
        queue: String,
        priority: i32,
    },
    Hangup,
    /// Leave a message: play `prompt` (if any), then record the caller
    /// (mono WAV under `data_dir/voicemail/`) until `end_key` (default
    /// `#`), `silence_s` seconds without voice (default 5, 0 = never) or
    /// `max_s` seconds (default 120); then go to `next` (default: hang up).
    Voicemail {
        prompt: Option<PathBuf>,
        max_s: u64,
        end_key: Option<char>,
        silence_s: u64,
        next: Target,
    },
    /// Post-call survey: play `prompt`, take one digit `min..=max`
    /// (default 1..=5) as the caller's satisfaction score (CSAT) for the
    /// call record; a wrong digit or `timeout_s` (default 5) without one
    /// replays up to `retries` (default 1) times. Then `next` (default:
    /// hang up), with or without a score.
    Survey {
        prompt: PathBuf,
        min: u8,
        max: u8,
        timeout_s: u64,
        retries: u32,
        next: Target,
    },
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Play { .. } => "play",
            Node::Menu { .. } => "menu",
            Node::Collect { .. } => "collect",
            Node::Schedule { .. } => "schedule",
            Node::Queue { .. } => "queue",
            Node::Hangup => "hangup",
            Node::Voicemail { .. } => "voicemail",
            Node::Survey { .. } => "survey",
        }
    }
}

/// A gateway outbound calls go through (`[trunks.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    /// The gateway as written (`sip:[user@]IP[:PORT][;transport=tcp]`).
    pub uri: String,
    /// Where the gateway is reached: an IP literal, UDP or TCP.
    pub peer: crate::sip::Peer,
    /// The Request-URI's host part (`IP:PORT`) and its `;transport=` param.
    pub host: String,
    pub uri_params: String,
    /// Digest credentials for the gateway's 401/407, if it asks.
    pub auth: Option<TrunkAuth>,
    /// The number presented in From.
    pub caller_id: String,
    /// Calls in progress on this trunk at most (0 = no limit).
    pub max_calls: u32,
}

#[derive(Clone, PartialEq, Eq)]
pub struct TrunkAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for TrunkAuth {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
