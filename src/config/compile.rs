//! Stage two: raw file -> validated `Config`, collecting every error.
//!
//! Each section is compiled independently; a broken value becomes an error
//! plus a placeholder so that later checks still run and report their own
//! problems in the same pass.

use super::raw::{RawAgent, RawConfig, RawIvr, RawNode, RawQueue, RawServer, Skills, S};
use super::schedule::{Schedule, Window};
use super::types::*;
use super::{wav, ConfigError, ConfigErrors, POSITION_PROMPTS};
use crate::sip::Transport;
use chrono::NaiveDate;
use chrono_tz::Tz;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};

#[path = "features.rs"]
mod features;

/// A day: the longest any duration in the file may be.
const DAY: u64 = 86_400;
/// The most calls, waiting callers, menu retries a file may ask for.
const MAX_CALLS: u64 = 1_000_000;
/// How long a number may ring before it answers, in seconds.
const MAX_RING_S: u64 = 600;
/// Longest agent ring or menu/collect wait, in seconds.
const MAX_WAIT_FOR_INPUT_S: u64 = 3_600;
const MAX_RETRIES: u64 = 100;
/// Largest `auth_max_failures` / `auth_user_max_failures`.
const MAX_AUTH_FAILURES: u64 = 100_000;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The optional prompts that let a position announcement add the wait.
pub const WAIT_PROMPTS: [&str; 2] = ["estimated-wait.wav", "minutes.wav"];

#[path = "compile_trunks.rs"]
mod trunks;

struct Ctx<'a> {
    lines: super::LineIndex<'a>,
    path: &'a Path,
    errors: Vec<(usize, ConfigError)>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        let e = self.lines.error(self.path, span.start, msg);
        self.errors.push((span.start, e));
    }

    fn tz(&mut self, s: &S<String>) -> Option<Tz> {
        match s.get_ref().parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.err(
                    s.span(),
                    format!(
                        "unknown time zone `{}` (use an IANA name such as Europe/Berlin)",
                        s.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn windows(&mut self, list: &[S<String>]) -> Vec<Window> {
        let mut out = Vec::new();
        for w in list {
            match Window::parse(w.get_ref()) {
                Ok(w) => out.push(w),
                Err(e) => self.err(w.span(), e),
            }
        }
        out
    }

    /// A count or duration within `range`, `default` when absent. Bounds
    /// keep every timer the daemon derives from the file representable
    /// (`Instant + Duration` panics on overflow), so a value `check`
    /// accepts can never crash a call at run time.
    fn int(
        &mut self,
        v: Option<&S<u64>>,
        key: &str,
        range: RangeInclusive<u64>,
        default: u64,
    ) -> u64 {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if range.contains(&n) {
            return n;
        }
        let unit = if key.ends_with("_s") { " seconds" } else { "" };
        self.err(
            v.span(),
            format!(
                "{key} = {n} is out of range: {}..={}{unit}",
                range.start(),
                range.end()
            ),
        );
        default
    }

    fn skills(&mut self, raw: &Skills) -> BTreeMap<String, u8> {
        let mut out = BTreeMap::new();
        for (name, level) in raw {
            match u8::try_from(*level.get_ref()) {
                Ok(l @ 1..=10) => {
                    out.insert(name.get_ref().clone(), l);
                }
                _ => self.err(
                    level.span(),
                    format!(
                        "skill `{}` level {} is out of range 1..10",
                        name.get_ref(),
                        level.get_ref()
                    ),
                ),
            }
        }
        out
    }
}

/// Names every target may refer to, gathered before anything is compiled so
/// cross references do not depend on section order.
struct Names<'r> {
    queues: BTreeSet<&'r str>,
    trunks: BTreeSet<&'r str>,
    schedules: BTreeSet<&'r str>,
    /// IVR name -> (start node as written, node names).
    ivrs: BTreeMap<&'r str, (Option<&'r str>, BTreeSet<&'r str>)>,
}

impl<'r> Names<'r> {
    fn new(raw: &'r RawConfig) -> Self {
        Names {
            queues: raw.queues.keys().map(|k| k.get_ref().as_str()).collect(),
            trunks: raw.trunks.keys().map(|k| k.get_ref().as_str()).collect(),
            schedules: raw.schedules.keys().map(|k| k.get_ref().as_str()).collect(),
            ivrs: raw
                .ivr
                .iter()
                .map(|(k, ivr)| {
                    let start = ivr.start.as_ref().map(|s| s.get_ref().as_str());
                    let nodes = ivr.nodes.keys().map(|n| n.get_ref().as_str()).collect();
                    (k.get_ref().as_str(), (start, nodes))
                })
                .collect(),
        }
    }
}

/// Where a target string is written and what it may mean there.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Inside `[ivr.NAME]`: bare words are node names of this IVR.
    Ivr(&'a str),
    /// Queue `closed`/`overflow`: `queue:`, `ivr:` or `hangup`.
    Anywhere,
    /// `[[numbers]] to`: `queue:` or `ivr:` only.
    Entry,
}

fn target(ctx: &mut Ctx, names: &Names, s: &S<String>, scope: Scope) -> Option<Target> {
    let text = s.get_ref().as_str();
    let result = if let Some(q) = text.strip_prefix("queue:") {
        if names.queues.contains(q) {
            Ok(Target::Queue(q.to_string()))
        } else {
            Err(format!("unknown queue `{q}`"))
        }
    } else if let Some(rest) = text.strip_prefix("ivr:") {
        let (ivr, node) = match rest.split_once('.') {
            Some((i, n)) => (i, Some(n)),
            None => (rest, None),
        };
        match names.ivrs.get(ivr) {
            None => Err(format!("unknown ivr `{ivr}`")),
            Some((start, nodes)) => match node.or(*start) {
                // A missing start is reported on the IVR itself.
                None => return None,
                Some(n) if nodes.contains(n) || node.is_none() => Ok(Target::Ivr {
                    ivr: ivr.to_string(),
                    node: n.to_string(),
                }),
                Some(n) => Err(format!("ivr `{ivr}` has no node `{n}`")),
            },
        }
    } else {
        match scope {
            Scope::Ivr(ivr) => {
                let has = names.ivrs.get(ivr).is_some_and(|(_, n)| n.contains(text));
                if has {
                    Ok(Target::Ivr {
                        ivr: ivr.to_string(),
                        node: text.to_string(),
                    })
                } else if text == "hangup" {
                    Ok(Target::Hangup)
                } else {
                    Err(format!(
                        "ivr `{ivr}` has no node `{text}` (or use queue:NAME, ivr:NAME, ivr:NAME.NODE, hangup)"
                    ))
                }
            }
            Scope::Anywhere if text == "hangup" => Ok(Target::Hangup),
            Scope::Anywhere => Err(format!(
                "target `{text}` must be queue:NAME, ivr:NAME, ivr:NAME.NODE or hangup"
            )),
            Scope::Entry => Err(format!(
                "target `{text}` must be ivr:NAME, ivr:NAME.NODE or queue:NAME"
            )),
        }
    };
    match result {
        Ok(t) => Some(t),
        Err(m) => {
            ctx.err(s.span(), m);
            None
        }
    }
}

pub(super) fn compile(raw: RawConfig, text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx {
        lines: super::LineIndex::new(text),
        path,
        errors: Vec::new(),
    };
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let names = Names::new(&raw);
    let server = server(&mut ctx, &raw.server, &base);
    let prompts = Prompts {
        dir: server.prompts.clone(),
    };

    let mut schedules = BTreeMap::new();
    for (name, s) in &raw.schedules {
        let timezone = match &s.timezone {
            Some(tz) => ctx.tz(tz).unwrap_or(server.timezone),
            None => server.timezone,
        };
        if s.open.is_empty() {
            ctx.err(
                name.span(),
                format!("schedule `{}` has no `open` windows", name.get_ref()),
            );
        }
        let open = ctx.windows(&s.open);
        let mut closed_dates = Vec::new();
        for d in &s.closed_dates {
            match NaiveDate::parse_from_str(d.get_ref(), "%Y-%m-%d") {
                Ok(date) if d.get_ref().len() == 10 => closed_dates.push(date),
                _ => ctx.err(
                    d.span(),
                    format!("date `{}` must be YYYY-MM-DD", d.get_ref()),
                ),
            }
        }
        let sched = Schedule {
            timezone,
            open,
            closed_dates,
        };
        schedules.insert(name.get_ref().clone(), sched);
    }

    let mut agents = BTreeMap::new();
    for (id, a) in &raw.agents {
        let agent = agent(&mut ctx, id, a, server.timezone);
        agents.insert(id.get_ref().clone(), agent);
    }

    let mut queues = BTreeMap::new();
    for (name, q) in &raw.queues {
        let queue = queue(&mut ctx, &names, &prompts, name, q);
        queues.insert(name.get_ref().clone(), queue);
    }

    let mut numbers = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &raw.numbers {
        let (Some(number), Some(to)) = (&n.get_ref().number, &n.get_ref().to) else {
            ctx.err(n.span(), "a [[numbers]] entry needs `number` and `to`");
            continue;
        };
        let num = number.get_ref().as_str();
        if num.is_empty() || num.chars().any(|c| c.is_whitespace() || c == '@') {
            ctx.err(
                number.span(),
                format!("number `{num}` must be a non-empty user part"),
            );
        } else if let Some(first) = seen.insert(num, number.span().start) {
            let (line, _) = ctx.lines.line_col(first);
            ctx.err(
                number.span(),
                format!("number `{num}` is already routed at line {line}"),
            );
        }
        if let Some(to) = target(&mut ctx, &names, to, Scope::Entry) {
            numbers.push(NumberRoute {
                number: num.to_string(),
                to,
                ring_s: ctx.int(n.get_ref().ring_s.as_ref(), "ring_s", 0..=MAX_RING_S, 0),
                media_encryption: media_encryption(&mut ctx, n.get_ref().media_encryption.as_ref()),
            });
        }
    }

    let mut ivrs = BTreeMap::new();
    for (name, ivr) in &raw.ivr {
        let compiled = compile_ivr(&mut ctx, &names, &prompts, name, ivr);
        ivrs.insert(name.get_ref().clone(), compiled);
    }

    check_loops(&mut ctx, &raw, &queues, &ivrs);
    let features = features::compile(&mut ctx, &raw.features, &numbers, &raw.trunks);

    let mut trunk_map = BTreeMap::new();
    for (name, t) in &raw.trunks {
        if let Some(t) = trunks::trunk(&mut ctx, name, t) {
            trunk_map.insert(name.get_ref().clone(), std::sync::Arc::new(t));
        }
    }

    if ctx.errors.is_empty() {
        Ok(Config {
            server,
            schedules,
            agents,
            queues,
            numbers,
            ivrs,
            features,
            trunks: trunk_map,
            wait_prompts: WAIT_PROMPTS
                .iter()
                .all(|p| wav::read_info(&prompts.dir.join(p)).is_ok()),
            source_path: path.to_path_buf(),
        })
    } else {
        ctx.errors.sort_by_key(|(at, _)| *at);
        Err(ConfigErrors(
            ctx.errors.into_iter().map(|(_, e)| e).collect(),
        ))
    }
}

/// `tls_cert` and `tls_key`: both or neither, both when a `tls:` listener
/// is listed; the pair is read and checked here, so `sipacd check` and a
/// reload refuse what the daemon could not serve.
fn tls_files(
    ctx: &mut Ctx,
    s: &RawServer,
    base: &Path,
    sip: &[Listener],
) -> Option<super::tls::TlsFiles> {
    use super::tls::{server_config, TlsFile, TlsFiles};
    let wants_tls = sip.iter().any(|l| l.transport == Transport::Tls);
    let (cert, key) = match (&s.tls_cert, &s.tls_key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => {
            if wants_tls {
                let at = s.sip.as_ref().map_or(0..0, |l| l.span());
                ctx.err(at, "a tls: listener needs tls_cert and tls_key");
            }
            return None;
        }
        (Some(one), None) => {
            ctx.err(one.span(), "tls_cert needs tls_key beside it");
            return None;
        }
        (None, Some(one)) => {
            ctx.err(one.span(), "tls_key needs tls_cert beside it");
            return None;
        }
    };
    let files = TlsFiles {
        cert: base.join(cert.get_ref()),
        key: base.join(key.get_ref()),
    };
    match server_config(&files) {
        Ok(_) => Some(files),
        Err((which, e)) => {
            let at = match which {
                TlsFile::Cert => cert.span(),
                TlsFile::Key => key.span(),
            };
            ctx.err(at, e.to_string());
            None
        }
    }
}

fn server(ctx: &mut Ctx, s: &RawServer, base: &Path) -> ServerConfig {
    let mut sip = Vec::new();
    match &s.sip {
        None => {
            let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5060);
            sip.push(Listener {
                transport: Transport::Udp,
                addr: any,
            });
            sip.push(Listener {
                transport: Transport::Tcp,
                addr: any,
            });
        }
        Some(list) => {
            if list.get_ref().is_empty() {
                ctx.err(list.span(), "server.sip must list at least one listener");
            }
            for l in list.get_ref() {
                let parsed = l.get_ref().split_once(':').and_then(|(t, a)| {
                    let transport = match t {
                        "udp" => Transport::Udp,
                        "tcp" => Transport::Tcp,
                        "tls" => Transport::Tls,
                        _ => return None,
                    };
                    Some(Listener {
                        transport,
                        addr: a.parse().ok()?,
                    })
                });
                match parsed {
                    Some(p) if sip.contains(&p) => {
                        ctx.err(l.span(), format!("listener `{p}` is listed twice"))
                    }
                    Some(p) => sip.push(p),
                    None => ctx.err(
                        l.span(),
                        format!(
                            "listener `{}` must be udp:IP:PORT, tcp:IP:PORT or tls:IP:PORT",
                            l.get_ref()
                        ),
                    ),
                }
            }
        }
    }
    let advertise = match &s.advertise {
        Some(a) => a.get_ref().parse().unwrap_or_else(|_| {
            ctx.err(
                a.span(),
                format!("advertise `{}` must be an IP address", a.get_ref()),
            );
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }),
        None => sip
            .first()
            .map(|l| l.addr.ip())
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    let domain = match &s.domain {
        Some(d) if d.get_ref().trim().is_empty() || d.get_ref().contains(char::is_whitespace) => {
            ctx.err(d.span(), "domain must be a host name without spaces");
            advertise.to_string()
        }
        Some(d) => d.get_ref().clone(),
        None => advertise.to_string(),
    };
    let rtp_ports = match &s.rtp_ports {
        None => 10000..=20000,
        Some(r) => {
            let parsed = r.get_ref().split_once('-').and_then(|(a, b)| {
                Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
            });
            match parsed {
                Some((lo, hi)) if lo < hi && lo >= 1024 => lo..=hi,
                Some((lo, _)) if lo < 1024 => {
                    ctx.err(r.span(), "rtp_ports must start at 1024 or above");
                    10000..=20000
                }
                Some(_) => {
                    ctx.err(
                        r.span(),
                        "rtp_ports must be LOW-HIGH with LOW < HIGH (RTP needs at least 2 ports)",
                    );
                    10000..=20000
                }
                None => {
                    ctx.err(
                        r.span(),
                        format!("rtp_ports `{}` must look like 20000-29999", r.get_ref()),
                    );
                    10000..=20000
                }
            }
        }
    };
    let admin = match &s.admin {
        None => SocketAddr::from((Ipv4Addr::LOCALHOST, 8088)),
        Some(a) => a.get_ref().parse().unwrap_or_else(|_| {
            ctx.err(a.span(), format!("admin `{}` must be IP:PORT", a.get_ref()));
            SocketAddr::from((Ipv4Addr::LOCALHOST, 8088))
        }),
    };
    let mut digest_algorithms = Vec::new();
    match &s.digest_algorithms {
        None => digest_algorithms.push(DigestAlgorithm::Md5),
        Some(list) => {
            for a in list.get_ref() {
                let alg = match a.get_ref().to_ascii_uppercase().as_str() {
                    "MD5" => DigestAlgorithm::Md5,
                    "SHA-256" => DigestAlgorithm::Sha256,
                    _ => {
                        ctx.err(
                            a.span(),
                            format!("digest algorithm `{}` must be MD5 or SHA-256", a.get_ref()),
                        );
                        continue;
                    }
                };
                if !digest_algorithms.contains(&alg) {
                    digest_algorithms.push(alg);
                }
            }
            if list.get_ref().is_empty() {
                ctx.err(list.span(), "server.digest_algorithms must not be empty");
            }
        }
    }
    let timezone = match &s.timezone {
        Some(tz) => ctx.tz(tz).unwrap_or(Tz::UTC),
        None => Tz::UTC,
    };
    let max_calls = ctx.int(s.max_calls.as_ref(), "max_calls", 1..=MAX_CALLS, 5000);
    let max_calls = usize::try_from(max_calls).unwrap_or(usize::MAX);
    let drain_s = ctx.int(s.drain_s.as_ref(), "drain_s", 0..=DAY, 30);
    let rtp_timeout_s = ctx.int(s.rtp_timeout_s.as_ref(), "rtp_timeout_s", 1..=DAY, 60);
    let data_dir = base.join(s.data_dir.as_deref().unwrap_or("data"));
    let queue_log = s.queue_log.as_ref().and_then(|q| {
        let p = q.get_ref();
        if p.trim().is_empty() || p.ends_with('/') {
            ctx.err(
                q.span(),
                "queue_log must name a file (leave the key out to write none)",
            );
            return None;
        }
        Some(data_dir.join(p))
    });
    let auth_guard = auth_guard(ctx, s);
    let (pike, max_calls_in_setup_per_source, allow_networks) = flood(ctx, s);
    let tls = tls_files(ctx, s, base, &sip);
    let max_transactions = ctx.int(
        s.max_transactions.as_ref(),
        "max_transactions",
        100..=MAX_TRANSACTIONS,
        DEFAULT_MAX_TRANSACTIONS,
    );
    ServerConfig {
        sip,
        advertise,
        domain,
        rtp_ports,
        admin,
        admin_token: s.admin_token.clone().filter(|t| !t.is_empty()),
        digest_algorithms,
        data_dir,
        prompts: base.join(s.prompts.as_deref().unwrap_or("prompts")),
        timezone,
        drain_s,
        max_calls,
        rtp_timeout_s,
        retention_days: ctx.int(s.retention_days.as_ref(), "retention_days", 0..=36_500, 0),
        queue_log,
        tcp_connect_timeout_s: at_least_1(ctx, &s.tcp_connect_timeout_s, 10),
        tcp_max_connections: s
            .tcp_max_connections
            .as_ref()
            .map(|_| to_usize(at_least_1(ctx, &s.tcp_max_connections, 1))),
        tcp_max_per_source: to_usize(at_least_1(ctx, &s.tcp_max_per_source, 128)),
        tcp_message_timeout_s: at_least_1(ctx, &s.tcp_message_timeout_s, 10),
        tcp_idle_s: at_least_1(ctx, &s.tcp_idle_s, 120),
        tls,
        admin_max_connections: to_usize(at_least_1(ctx, &s.admin_max_connections, 64)),
        admin_header_timeout_s: at_least_1(ctx, &s.admin_header_timeout_s, 10),
        auth_guard,
        pike,
        max_calls_in_setup_per_source,
        allow_networks,
        max_transactions: to_usize(max_transactions),
    }
}

/// `max_transactions` by default: about 70 MB of transactions at most.
const DEFAULT_MAX_TRANSACTIONS: u64 = 100_000;
/// Its upper bound: about 7 GB of transactions.
const MAX_TRANSACTIONS: u64 = 10_000_000;

/// The `pike_*` keys, the setup cap and `allow_networks` of `[server]`.
fn flood(
    ctx: &mut Ctx,
    s: &RawServer,
) -> (
    crate::flood::PikeConfig,
    usize,
    Vec<crate::registrar::Network>,
) {
    use crate::registrar::Network;
    let d = crate::flood::PikeConfig::default();
    let window = ctx.int(
        s.pike_window_s.as_ref(),
        "pike_window_s",
        1..=3600,
        d.window.as_secs(),
    );
    let max_requests = ctx.int(
        s.pike_max_requests.as_ref(),
        "pike_max_requests",
        0..=1_000_000,
        u64::from(d.max_requests),
    );
    let block = ctx.int(
        s.pike_block_s.as_ref(),
        "pike_block_s",
        1..=DAY,
        d.block.as_secs(),
    );
    let pike = crate::flood::PikeConfig {
        window: Duration::from_secs(window),
        max_requests: u32::try_from(max_requests).unwrap_or(d.max_requests),
        block: Duration::from_secs(block),
    };
    let cap = ctx.int(
        s.max_calls_in_setup_per_source.as_ref(),
        "max_calls_in_setup_per_source",
        0..=MAX_CALLS,
        50,
    );
    let allow = match &s.allow_networks {
        None => ["127.0.0.0/8", "::1"]
            .iter()
            .filter_map(|n| Network::parse(n))
            .collect(),
        Some(list) => {
            let mut out = Vec::new();
            for n in list {
                match Network::parse(n.get_ref()) {
                    Some(net) => out.push(net),
                    None => ctx.err(
                        n.span(),
                        format!(
                            "allow_networks `{}` must be an address or a network such as 10.0.0.0/8",
                            n.get_ref()
                        ),
                    ),
                }
            }
            out
        }
    };
    (pike, to_usize(cap), allow)
}

/// The `auth_*` keys of `[server]`.
fn auth_guard(ctx: &mut Ctx, s: &RawServer) -> crate::registrar::GuardConfig {
    use crate::registrar::{GuardConfig, Network};
    let d = GuardConfig::default();
    let count = |ctx: &mut Ctx, v: &Option<S<u64>>, key: &str, default: u32| {
        let n = ctx.int(v.as_ref(), key, 0..=MAX_AUTH_FAILURES, u64::from(default));
        u32::try_from(n).unwrap_or(default)
    };
    let max_failures = count(
        ctx,
        &s.auth_max_failures,
        "auth_max_failures",
        d.max_failures,
    );
    let user_max_failures = count(
        ctx,
        &s.auth_user_max_failures,
        "auth_user_max_failures",
        d.user_max_failures,
    );
    let secs = |ctx: &mut Ctx, v: &Option<S<u64>>, key: &str, default: Duration| {
        Duration::from_secs(ctx.int(v.as_ref(), key, 1..=DAY, default.as_secs()))
    };
    let window = secs(ctx, &s.auth_window_s, "auth_window_s", d.window);
    let block = secs(ctx, &s.auth_block_s, "auth_block_s", d.block);
    let mut trusted = Vec::new();
    for n in s.auth_trusted.iter().flatten() {
        match Network::parse(n.get_ref()) {
            Some(net) => trusted.push(net),
            None => ctx.err(
                n.span(),
                format!(
                    "auth_trusted `{}` must be an address or a network such as 10.0.0.0/8",
                    n.get_ref()
                ),
            ),
        }
    }
    GuardConfig {
        max_failures,
        user_max_failures,
        window,
        block,
        trusted,
    }
}

/// The value of an optional key that must be at least 1, or `default`.
fn at_least_1(ctx: &mut Ctx, v: &Option<S<u64>>, default: u64) -> u64 {
    match v {
        None => default,
        Some(v) if *v.get_ref() == 0 => {
            ctx.err(v.span(), "must be at least 1");
            default
        }
        Some(v) => *v.get_ref(),
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// `media_encryption = "srtp" | "optional" | "none"` (default none).
fn media_encryption(ctx: &mut Ctx, v: Option<&S<String>>) -> MediaEncryption {
    let Some(v) = v else {
        return MediaEncryption::None;
    };
    MediaEncryption::parse(v.get_ref()).unwrap_or_else(|| {
        ctx.err(
            v.span(),
            format!(
                "media_encryption `{}` must be one of {}",
                v.get_ref(),
                MediaEncryption::NAMES.join(", ")
            ),
        );
        MediaEncryption::None
    })
}

fn agent(ctx: &mut Ctx, id: &S<String>, a: &RawAgent, default_tz: Tz) -> Agent {
    let name = id.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
    {
        ctx.err(
            id.span(),
            format!("agent id `{name}` must be a SIP user (letters, digits, - _ . +)"),
        );
    }
    let credential = match (&a.password, &a.ha1) {
        (Some(_), Some(h)) => {
            ctx.err(h.span(), "set either `password` or `ha1`, not both");
            None
        }
        (Some(p), None) if p.get_ref().is_empty() => {
            ctx.err(p.span(), "password must not be empty");
            None
        }
        (Some(p), None) => Some(Credential::Password(p.get_ref().clone())),
        (None, Some(h)) => {
            let v = h.get_ref();
            if v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit()) {
                Some(Credential::Ha1(v.to_ascii_lowercase()))
            } else {
                ctx.err(
                    h.span(),
                    "ha1 must be 32 hex digits: MD5(user:domain:password)",
                );
                None
            }
        }
        (None, None) => {
            if a.contact.is_none() {
                ctx.err(
                    id.span(),
                    format!("agent `{name}` needs `password` or `ha1` (or a static `contact`)"),
                );
            }
            None
        }
    };
    let contact = a.contact.as_ref().and_then(|c| {
        let v = c.get_ref();
        let ok = v.starts_with("sip:") && rsip::Uri::try_from(v.as_str()).is_ok();
        if !ok {
            ctx.err(
                c.span(),
                format!("contact `{v}` must be a sip: URI such as sip:1001@10.0.0.5:5062"),
            );
        }
        // sipacd reaches a static contact over UDP or TCP only: it never
        // opens TLS connections to phones (an agent on TLS registers, and
        // is called down its own connection).
        let transport = static_contact_transport(v);
        let usable = matches!(transport.as_deref(), None | Some("udp" | "tcp"));
        if ok && !usable {
            ctx.err(
                c.span(),
                format!(
                    "contact `{v}`: a static contact is reached over udp or tcp, not `{}` \
                     (an agent on TLS registers and is called down its own connection)",
                    transport.unwrap_or_default()
                ),
            );
        }
        (ok && usable).then(|| v.clone())
    });
    let timezone = match &a.timezone {
        Some(tz) => ctx.tz(tz).unwrap_or(default_tz),
        None => default_tz,
    };
    let shift = match &a.shift {
        Some(list) if list.is_empty() => {
            ctx.err(
                id.span(),
                format!("agent `{name}` has an empty `shift` (omit it for always)"),
            );
            Vec::new()
        }
        Some(list) => ctx.windows(list),
        None => Vec::new(),
    };
    Agent {
        id: name.clone(),
        name: a.name.clone().unwrap_or_else(|| name.clone()),
        credential,
        skills: ctx.skills(&a.skills),
        timezone,
        shift,
        contact,
        media_encryption: media_encryption(ctx, a.media_encryption.as_ref()),
    }
}

struct Prompts {
    dir: PathBuf,
}

impl Prompts {
    /// Resolves a prompt name and checks the file; errors point at `s`.
    fn check(&self, ctx: &mut Ctx, s: &S<String>) -> PathBuf {
        let path = self.dir.join(s.get_ref());
        if let Err(e) = wav::read_info(&path) {
            let msg = if path.exists() {
                format!("prompt `{}` ({}): {e}", s.get_ref(), path.display())
            } else {
                format!(
                    "prompt `{}` not found (looked for {})",
                    s.get_ref(),
                    path.display()
                )
            };
            ctx.err(s.span(), msg);
        }
        path
    }
}

fn queue(ctx: &mut Ctx, names: &Names, prompts: &Prompts, name: &S<String>, q: &RawQueue) -> Queue {
    let strategy = match &q.strategy {
        None => Strategy::LongestIdle,
        Some(s) => Strategy::parse(s.get_ref()).unwrap_or_else(|| {
            ctx.err(
                s.span(),
                format!(
                    "strategy `{}` must be one of {}",
                    s.get_ref(),
                    Strategy::NAMES.join(", ")
                ),
            );
            Strategy::LongestIdle
        }),
    };
    let schedule = q.schedule.as_ref().and_then(|s| {
        if names.schedules.contains(s.get_ref().as_str()) {
            Some(s.get_ref().clone())
        } else {
            ctx.err(s.span(), format!("unknown schedule `{}`", s.get_ref()));
            None
        }
    });
    let closed = q
        .closed
        .as_ref()
        .and_then(|t| target(ctx, names, t, Scope::Anywhere));
    let overflow = q
        .overflow
        .as_ref()
        .and_then(|t| target(ctx, names, t, Scope::Anywhere));
    let ring_timeout_s = ctx.int(
        q.ring_timeout_s.as_ref(),
        "ring_timeout_s",
        1..=MAX_WAIT_FOR_INPUT_S,
        15,
    );
    let skills = ctx.skills(&q.skills);
    let mut relax = Vec::new();
    for r in &q.relax {
        let levels = ctx.skills(&r.get_ref().skills);
        for (skill, raw_level) in &r.get_ref().skills {
            match (skills.get(skill.get_ref()), levels.get(skill.get_ref())) {
                (None, _) => ctx.err(
                    skill.span(),
                    format!(
                        "relax can only lower skills the queue requires; `{}` is not one",
                        skill.get_ref()
                    ),
                ),
                (Some(base), Some(l)) if l > base => ctx.err(
                    raw_level.span(),
                    format!(
                        "relax raises `{}` from {base} to {l}; it may only lower it",
                        skill.get_ref()
                    ),
                ),
                _ => {}
            }
        }
        relax.push(Relax {
            after_s: ctx.int(Some(&r.get_ref().after_s), "after_s", 0..=DAY, 0),
            skills: levels,
        });
    }
    relax.sort_by_key(|r| r.after_s);
    let service_level_target = match &q.service_level_target {
        None => DEFAULT_SERVICE_LEVEL_TARGET,
        Some(t) => {
            // A fraction (0.8, as the planning docs write it) or a whole
            // percentage (80); kept as a percentage, to the whole percent.
            let pct = match *t.get_ref() {
                super::raw::RawShare::Percent(p) => u8::try_from(p).ok(),
                super::raw::RawShare::Fraction(f) if f > 0.0 && f <= 1.0 => {
                    Some((f * 100.0).round().max(1.0) as u8)
                }
                super::raw::RawShare::Fraction(f) if f > 1.0 && f <= 100.0 => Some(f.round() as u8),
                super::raw::RawShare::Fraction(_) => None,
            };
            match pct {
                Some(pct @ 1..=100) => pct,
                _ => {
                    let got = match *t.get_ref() {
                        super::raw::RawShare::Percent(p) => p.to_string(),
                        super::raw::RawShare::Fraction(f) => f.to_string(),
                    };
                    ctx.err(
                        t.span(),
                        format!(
                            "service_level_target is a fraction above 0 up to 1 (0.8) \
                             or a percentage, 1 to 100 (got {got})"
                        ),
                    );
                    DEFAULT_SERVICE_LEVEL_TARGET
                }
            }
        }
    };
    let announce_position_s = ctx.int(
        q.announce_position_s.as_ref(),
        "announce_position_s",
        0..=DAY,
        0,
    );
    if announce_position_s > 0 {
        for p in POSITION_PROMPTS {
            let path = prompts.dir.join(p);
            if let Err(e) = wav::read_info(&path) {
                ctx.err(
                    name.span(),
                    format!(
                        "queue `{}` announces positions but prompt {} is unusable: {e}",
                        name.get_ref(),
                        path.display()
                    ),
                );
            }
        }
    }
    Queue {
        name: name.get_ref().clone(),
        skills,
        strategy,
        schedule,
        closed,
        ring_timeout_s,
        wrapup_s: ctx.int(q.wrapup_s.as_ref(), "wrapup_s", 0..=DAY, 0),
        retry_s: ctx.int(q.retry_s.as_ref(), "retry_s", 0..=DAY, 5),
        max_wait_s: ctx.int(q.max_wait_s.as_ref(), "max_wait_s", 0..=DAY, 0),
        max_waiting: usize::try_from(ctx.int(
            q.max_waiting.as_ref(),
            "max_waiting",
            0..=MAX_CALLS,
            0,
        ))
        .unwrap_or(usize::MAX),
        overflow,
        music: q.music.as_ref().map(|m| prompts.check(ctx, m)),
        announce_position_s,
        relax,
        priority: q.priority.unwrap_or(0),
        transfer_priority: q.transfer_priority.unwrap_or(0),
        service_level_s: ctx.int(q.service_level_s.as_ref(), "service_level_s", 0..=DAY, 20),
        service_level_target,
        record: record_policy(ctx, q),
        record_prompt: q.record_prompt.as_ref().map(|m| prompts.check(ctx, m)),
        rejoin_s: ctx.int(q.rejoin_s.as_ref(), "rejoin_s", 0..=DAY, 0),
        survey: survey_target(ctx, names, q),
        callback: q
            .callback
            .as_ref()
            .and_then(|c| callback_offer(ctx, names, prompts, c)),
    }
}

/// Default prompts of a queue's callback offer.
pub const CALLBACK_PROMPTS: [&str; 4] = [
    "callback-offer.wav",
    "callback-number.wav",
    "callback-accepted.wav",
    "callback-agent.wav",
];

/// A queue's `[queues.NAME.callback]`.
fn callback_offer(
    ctx: &mut Ctx,
    names: &Names,
    prompts: &Prompts,
    c: &S<super::raw::RawCallback>,
) -> Option<CallbackOffer> {
    let raw = c.get_ref();
    let trunk = match &raw.trunk {
        None => {
            ctx.err(
                c.span(),
                "a queue's callback needs `trunk` (a [trunks] entry)",
            );
            return None;
        }
        Some(t) if !names.trunks.contains(t.get_ref().as_str()) => {
            ctx.err(
                t.span(),
                format!("callback trunk `{}` is no [trunks] entry", t.get_ref()),
            );
            return None;
        }
        Some(t) => t.get_ref().clone(),
    };
    let after_s = raw
        .after_s
        .as_ref()
        .map(|v| ctx.int(Some(v), "after_s", 0..=DAY, 0));
    let above_wait_s = raw
        .above_wait_s
        .as_ref()
        .map(|v| ctx.int(Some(v), "above_wait_s", 0..=DAY, 0));
    if after_s.is_none() && above_wait_s.is_none() {
        ctx.err(
            c.span(),
            "a queue's callback needs `after_s` or `above_wait_s` (when to offer it)",
        );
    }
    let digit = match &raw.digit {
        None => '1',
        Some(d) => {
            let mut chars = d.get_ref().chars();
            match (chars.next(), chars.next()) {
                (Some(k), None) if k.is_ascii_digit() || k == '*' => k,
                _ => {
                    ctx.err(d.span(), "callback digit is one key: 0-9 or *");
                    '1'
                }
            }
        }
    };
    let mut prompt = |given: &Option<S<String>>, default: &str| -> PathBuf {
        match given {
            Some(p) => prompts.check(ctx, p),
            None => {
                let path = prompts.dir.join(default);
                if let Err(e) = wav::read_info(&path) {
                    ctx.err(
                        c.span(),
                        format!(
                            "this queue offers callbacks but prompt {} is unusable: {e}",
                            path.display()
                        ),
                    );
                }
                path
            }
        }
    };
    let [offer, number, accepted, agent] = CALLBACK_PROMPTS;
    let prompt_path = prompt(&raw.prompt, offer);
    let number_prompt = prompt(&raw.number_prompt, number);
    let accepted_prompt = prompt(&raw.accepted_prompt, accepted);
    let agent_prompt = prompt(&raw.agent_prompt, agent);
    let retry_s = match &raw.retry_s {
        None => vec![120, 600],
        Some(list) => {
            if list.len() > 10 {
                ctx.err(c.span(), "callback retry_s holds at most 10 waits");
            }
            list.iter()
                .take(10)
                .map(|v| ctx.int(Some(v), "retry_s", 1..=DAY, 120))
                .collect()
        }
    };
    Some(CallbackOffer {
        trunk,
        after_s,
        above_wait_s,
        digit,
        prompt: prompt_path,
        number_prompt,
        accepted_prompt,
        agent_prompt,
        ring_s: ctx.int(raw.ring_s.as_ref(), "ring_s", 5..=MAX_RING_CALLBACK_S, 30),
        retry_s,
    })
}

/// Longest a callback lets the customer's phone ring.
const MAX_RING_CALLBACK_S: u64 = 300;

/// A queue's `survey`: an `ivr:` target (a survey needs prompts and digits).
fn survey_target(ctx: &mut Ctx, names: &Names, q: &RawQueue) -> Option<Target> {
    let s = q.survey.as_ref()?;
    match target(ctx, names, s, Scope::Anywhere)? {
        t @ Target::Ivr { .. } => Some(t),
        _ => {
            ctx.err(
                s.span(),
                "survey must be an IVR: `ivr:NAME` or `ivr:NAME.NODE`",
            );
            None
        }
    }
}

/// A queue's `record`: `none`, `all` or a whole percentage 0..=100.
fn record_policy(ctx: &mut Ctx, q: &RawQueue) -> RecordPolicy {
    use super::raw::RawRecord;
    let Some(r) = &q.record else {
        return RecordPolicy::None;
    };
    match r.get_ref() {
        RawRecord::Word(w) if w == "none" => RecordPolicy::None,
        RawRecord::Word(w) if w == "all" => RecordPolicy::All,
        RawRecord::Percent(p @ 0..=100) => RecordPolicy::Percent(*p as u8),
        other => {
            let got = match other {
                RawRecord::Word(w) => format!("`{w}`"),
                RawRecord::Percent(p) => p.to_string(),
            };
            ctx.err(
                r.span(),
                format!(
                    "record is \"none\", \"all\" or a percentage of calls, 0 to 100 (got {got})"
                ),
            );
            RecordPolicy::None
        }
    }
}

/// Keys each node type accepts besides `type`.
fn allowed_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "play" => &["prompt", "next"],
        "menu" => &["prompt", "timeout_s", "retries", "options", "on_fail"],
        "collect" => &[
            "prompt",
            "max_digits",
            "variable",
            "timeout_s",
            "terminator",
            "next",
        ],
        "schedule" => &["schedule", "open", "closed"],
        "queue" => &["queue", "priority"],
        "hangup" => &[],
        "voicemail" => &["prompt", "max_s", "end_key", "silence_s", "next"],
        "survey" => &["prompt", "min", "max", "timeout_s", "retries", "next"],
        _ => return None,
    })
}

fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

fn compile_ivr(
    ctx: &mut Ctx,
    names: &Names,
    prompts: &Prompts,
    name: &S<String>,
    ivr: &RawIvr,
) -> Ivr {
    let ivr_name = name.get_ref().as_str();
    if ivr_name.contains('.') || ivr_name.contains(':') {
        ctx.err(
            name.span(),
            format!("ivr name `{ivr_name}` must not contain `.` or `:`"),
        );
    }
    let start = match &ivr.start {
        None => {
            ctx.err(name.span(), format!("ivr `{ivr_name}` needs `start`"));
            String::new()
        }
        Some(s) => {
            if !ivr.nodes.keys().any(|k| k.get_ref() == s.get_ref()) {
                ctx.err(
                    s.span(),
                    format!("ivr `{ivr_name}` has no node `{}`", s.get_ref()),
                );
            }
            s.get_ref().clone()
        }
    };
    let mut nodes = BTreeMap::new();
    for (key, n) in &ivr.nodes {
        if let Some(node) = compile_node(ctx, names, prompts, ivr_name, key, n) {
            nodes.insert(key.get_ref().clone(), node);
        }
    }
    Ivr {
        name: ivr_name.to_string(),
        start,
        nodes,
    }
}

fn compile_node(
    ctx: &mut Ctx,
    names: &Names,
    prompts: &Prompts,
    ivr: &str,
    key: &S<String>,
    n: &RawNode,
) -> Option<Node> {
    let node_name = key.get_ref();
    let Some(kind) = &n.kind else {
        ctx.err(key.span(), format!("node `{node_name}` needs `type`"));
        return None;
    };
    let Some(allowed) = allowed_keys(kind.get_ref()) else {
        ctx.err(
            kind.span(),
            format!(
                "node type `{}` must be play, menu, collect, schedule, queue, hangup, voicemail or survey",
                kind.get_ref()
            ),
        );
        return None;
    };
    let mut ok = true;
    for (k, span) in n.present_keys() {
        if !allowed.contains(&k) {
            ctx.err(
                span,
                format!("`{k}` is not a key of a `{}` node", kind.get_ref()),
            );
            ok = false;
        }
    }
    let scope = Scope::Ivr(ivr);
    // A missing key makes the node `None` through `?` below.
    let need = |ctx: &mut Ctx, v: &Option<S<String>>, what: &str| -> Option<S<String>> {
        if v.is_none() {
            ctx.err(
                key.span(),
                format!("{} node `{node_name}` needs `{what}`", kind.get_ref()),
            );
        }
        v.clone()
    };
    let tgt = |ctx: &mut Ctx, v: &Option<S<String>>| -> Option<Target> {
        match v {
            None => Some(Target::Hangup),
            Some(s) => target(ctx, names, s, scope),
        }
    };
    let node = match kind.get_ref().as_str() {
        "play" => {
            let prompt = need(ctx, &n.prompt, "prompt").map(|p| prompts.check(ctx, &p));
            let next = tgt(ctx, &n.next);
            Node::Play {
                prompt: prompt?,
                next: next?,
            }
        }
        "menu" => {
            let prompt = need(ctx, &n.prompt, "prompt").map(|p| prompts.check(ctx, &p));
            let mut options = BTreeMap::new();
            match &n.options {
                None => ctx.err(
                    key.span(),
                    format!("menu node `{node_name}` needs `options`"),
                ),
                Some(o) if o.get_ref().is_empty() => {
                    ctx.err(o.span(), "menu `options` must not be empty")
                }
                Some(o) => {
                    for (digit, t) in o.get_ref() {
                        let mut chars = digit.get_ref().chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) if is_dtmf(c) => {
                                if let Some(t) = target(ctx, names, t, scope) {
                                    options.insert(c, t);
                                }
                            }
                            _ => ctx.err(
                                digit.span(),
                                format!(
                                    "menu option `{}` must be one DTMF key: 0-9, * or #",
                                    digit.get_ref()
                                ),
                            ),
                        }
                    }
                }
            }
            let on_fail = tgt(ctx, &n.on_fail);
            Node::Menu {
                prompt: prompt?,
                timeout_s: timeout(ctx, n, 5),
                retries: u32::try_from(ctx.int(n.retries.as_ref(), "retries", 0..=MAX_RETRIES, 2))
                    .unwrap_or(2),
                options,
                on_fail: on_fail?,
            }
        }
        "collect" => {
            let prompt = n.prompt.as_ref().map(|p| prompts.check(ctx, p));
            let variable = need(ctx, &n.variable, "variable");
            if let Some(v) = &variable {
                let s = v.get_ref();
                if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    ctx.err(
                        v.span(),
                        format!("variable `{s}` must be letters, digits and _"),
                    );
                }
            }
            let max_digits = match &n.max_digits {
                None => 10,
                Some(m) => match u32::try_from(*m.get_ref()) {
                    Ok(d @ 1..=64) => d,
                    _ => {
                        ctx.err(m.span(), "max_digits must be 1..64");
                        10
                    }
                },
            };
            let terminator = match &n.terminator {
                None => Some('#'),
                Some(t) => {
                    let mut c = t.get_ref().chars();
                    match (c.next(), c.next()) {
                        (None, _) => None,
                        (Some(c), None) if is_dtmf(c) => Some(c),
                        _ => {
                            ctx.err(
                                t.span(),
                                "terminator must be one DTMF key (0-9, *, #) or \"\"",
                            );
                            None
                        }
                    }
                }
            };
            let next = tgt(ctx, &n.next);
            Node::Collect {
                prompt,
                max_digits,
                variable: variable?.into_inner(),
                timeout_s: timeout(ctx, n, 5),
                terminator,
                next: next?,
            }
        }
        "schedule" => {
            let schedule = need(ctx, &n.schedule, "schedule");
            if let Some(s) = &schedule {
                if !names.schedules.contains(s.get_ref().as_str()) {
                    ctx.err(s.span(), format!("unknown schedule `{}`", s.get_ref()));
                    ok = false;
                }
            }
            let open = need(ctx, &n.open, "open").and_then(|t| target(ctx, names, &t, scope));
            let closed = need(ctx, &n.closed, "closed").and_then(|t| target(ctx, names, &t, scope));
            Node::Schedule {
                schedule: schedule?.into_inner(),
                open: open?,
                closed: closed?,
            }
        }
        "queue" => {
            let queue = need(ctx, &n.queue, "queue");
            if let Some(q) = &queue {
                if !names.queues.contains(q.get_ref().as_str()) {
                    ctx.err(q.span(), format!("unknown queue `{}`", q.get_ref()));
                    ok = false;
                }
            }
            Node::Queue {
                queue: queue?.into_inner(),
                priority: n.priority.as_ref().map_or(0, |p| *p.get_ref()),
            }
        }
        "voicemail" => {
            let prompt = n.prompt.as_ref().map(|p| prompts.check(ctx, p));
            let end_key = match &n.end_key {
                None => Some('#'),
                Some(t) => one_key_or_none(ctx, t, "end_key"),
            };
            let next = tgt(ctx, &n.next);
            Node::Voicemail {
                prompt,
                max_s: ctx.int(n.max_s.as_ref(), "max_s", 1..=MAX_MESSAGE_S, 120),
                end_key,
                silence_s: ctx.int(
                    n.silence_s.as_ref(),
                    "silence_s",
                    0..=MAX_WAIT_FOR_INPUT_S,
                    5,
                ),
                next: next?,
            }
        }
        "survey" => {
            let prompt = need(ctx, &n.prompt, "prompt").map(|p| prompts.check(ctx, &p));
            let min = ctx.int(n.min.as_ref(), "min", 0..=9, 1);
            let max = ctx.int(n.max.as_ref(), "max", 0..=9, 5);
            if min > max {
                ctx.err(
                    key.span(),
                    format!("survey node `{node_name}`: min ({min}) is above max ({max})"),
                );
            }
            let next = tgt(ctx, &n.next);
            Node::Survey {
                prompt: prompt?,
                min: u8::try_from(min).unwrap_or(1),
                max: u8::try_from(max).unwrap_or(5),
                timeout_s: timeout(ctx, n, 5),
                retries: u32::try_from(ctx.int(n.retries.as_ref(), "retries", 0..=MAX_RETRIES, 1))
                    .unwrap_or(1),
                next: next?,
            }
        }
        _ => Node::Hangup,
    };
    ok.then_some(node)
}

/// The longest message a `voicemail` node may record: an hour.
const MAX_MESSAGE_S: u64 = 3600;

/// One DTMF key, or `""` for none.
fn one_key_or_none(ctx: &mut Ctx, t: &S<String>, what: &str) -> Option<char> {
    let mut c = t.get_ref().chars();
    match (c.next(), c.next()) {
        (None, _) => None,
        (Some(c), None) if is_dtmf(c) => Some(c),
        _ => {
            ctx.err(
                t.span(),
                format!("{what} must be one DTMF key (0-9, *, #) or \"\""),
            );
            None
        }
    }
}

fn timeout(ctx: &mut Ctx, n: &RawNode, default: u64) -> u64 {
    // 0 would let a menu or collect run on without waiting.
    ctx.int(
        n.timeout_s.as_ref(),
        "timeout_s",
        1..=MAX_WAIT_FOR_INPUT_S,
        default,
    )
}

/// Rejects routes a call can follow forever without the caller hearing a
/// prompt or waiting: schedule nodes, queue nodes that find their queue
/// closed, and queues that overflow at once because they are full.
fn check_loops(
    ctx: &mut Ctx,
    raw: &RawConfig,
    queues: &BTreeMap<String, Queue>,
    ivrs: &BTreeMap<String, Ivr>,
) {
    let mut edges: BTreeMap<Target, Vec<Target>> = BTreeMap::new();
    let mut spans: BTreeMap<Target, Range<usize>> = BTreeMap::new();
    for (name, ivr) in &raw.ivr {
        for key in ivr.nodes.keys() {
            let t = Target::Ivr {
                ivr: name.get_ref().clone(),
                node: key.get_ref().clone(),
            };
            spans.insert(t, key.span());
        }
    }
    for name in raw.queues.keys() {
        spans.insert(Target::Queue(name.get_ref().clone()), name.span());
    }
    for (ivr_name, ivr) in ivrs {
        for (node_name, node) in &ivr.nodes {
            let from = Target::Ivr {
                ivr: ivr_name.clone(),
                node: node_name.clone(),
            };
            let to = match node {
                Node::Schedule { open, closed, .. } => vec![open.clone(), closed.clone()],
                Node::Queue { queue, .. } => vec![Target::Queue(queue.clone())],
                _ => continue,
            };
            edges.insert(from, to);
        }
    }
    for (name, q) in queues {
        let mut to = Vec::new();
        if let (Some(_), Some(c)) = (&q.schedule, &q.closed) {
            to.push(c.clone());
        }
        if let (true, Some(o)) = (q.max_waiting > 0, &q.overflow) {
            to.push(o.clone());
        }
        edges.insert(Target::Queue(name.clone()), to);
    }

    // Depth-first search; a back edge closes a cycle. Each cycle is reported
    // once, at its smallest member.
    let mut done = BTreeSet::new();
    let mut reported = BTreeSet::new();
    for start in edges.keys() {
        let mut path = Vec::new();
        visit(
            start,
            &edges,
            &mut path,
            &mut done,
            &mut |cycle: &[Target]| {
                let mut members: Vec<Target> = cycle.to_vec();
                members.sort();
                if let (Some(first), true) = (members.first(), reported.insert(members.clone())) {
                    let route: Vec<String> = cycle
                        .iter()
                        .chain(cycle.first())
                        .map(|t| t.to_string())
                        .collect();
                    let span = spans.get(first).cloned().unwrap_or(0..0);
                    ctx.err(
                        span,
                        format!(
                            "calls can loop forever without waiting for the caller: {}",
                            route.join(" -> ")
                        ),
                    );
                }
            },
        );
    }
}

fn visit<'g>(
    node: &'g Target,
    edges: &'g BTreeMap<Target, Vec<Target>>,
    path: &mut Vec<&'g Target>,
    done: &mut BTreeSet<&'g Target>,
    report: &mut dyn FnMut(&[Target]),
) {
    if done.contains(node) {
        return;
    }
    if let Some(pos) = path.iter().position(|p| *p == node) {
        let cycle: Vec<Target> = path
            .get(pos..)
            .unwrap_or_default()
            .iter()
            .map(|t| (*t).clone())
            .collect();
        report(&cycle);
        return;
    }
    path.push(node);
    for next in edges.get(node).map(Vec::as_slice).unwrap_or_default() {
        visit(next, edges, path, done, report);
    }
    path.pop();
    done.insert(node);
}

/// The `transport` parameter of a static contact URI, lower-cased.
fn static_contact_transport(uri: &str) -> Option<String> {
    let lower = uri.to_ascii_lowercase();
    let at = lower.find(";transport=")? + ";transport=".len();
    let value: String = lower[at..]
        .chars()
        .take_while(|c| !matches!(c, ';' | '?' | '>'))
        .collect();
    Some(value)
}

#[cfg(test)]
mod loop_tests {
    //! `check_loops` across IVRs and through nodes that wait.

    use crate::config::wav::tests::wav_bytes;
    use crate::config::{parse_str, Config, ConfigErrors};

    const HEAD: &str =
        "[server]\nprompts = \"p\"\n\n[schedules.office]\nopen = [\"mon-fri 08:00-20:00\"]\n\n\
        [queues.q]\nschedule = \"office\"\nclosed = \"hangup\"\n\n";

    fn parse(extra: &str) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("menu.wav"), wav_bytes(1, 1, 8000, 16, 8)).unwrap();
        parse_str(&format!("{HEAD}{extra}"), &dir.path().join("sipacd.toml"))
    }

    fn loop_errors(extra: &str) -> Vec<String> {
        match parse(extra) {
            Ok(_) => panic!("expected a loop error for:\n{extra}"),
            Err(e) => e.0.into_iter().map(|e| e.message).collect(),
        }
    }

    /// Two IVRs whose schedule nodes jump to each other: `a.s` -> `b.t`
    /// (by the start-node form `ivr:b`) and back by `ivr:a.s`.
    const CROSS: &str =
        "[ivr.a]\nstart = \"s\"\n\n[ivr.a.nodes.s]\ntype = \"schedule\"\nschedule = \"office\"\n\
        open = \"ivr:b\"\nclosed = \"hangup\"\n\n\
        [ivr.b]\nstart = \"t\"\n\n[ivr.b.nodes.t]\ntype = \"schedule\"\nschedule = \"office\"\n\
        open = \"hangup\"\nclosed = \"ivr:a.s\"\n";

    #[test]
    fn loop_across_ivrs_is_an_error() {
        assert_one_cycle(CROSS, &["ivr:a.s", "ivr:b.t"]);
    }

    #[test]
    fn menu_whose_options_all_lead_back_breaks_the_loop() {
        // b.t now goes to a menu whose every option and on_fail return to
        // a.s: the caller hears the menu each time round, so it is allowed.
        let text = CROSS.replace("closed = \"ivr:a.s\"", "closed = \"m\"")
            + "\n[ivr.b.nodes.m]\ntype = \"menu\"\nprompt = \"menu.wav\"\n\
               options = { \"1\" = \"ivr:a\", \"2\" = \"ivr:a.s\" }\non_fail = \"ivr:a\"\n";
        parse(&text).unwrap();
    }

    #[test]
    fn collect_without_prompt_breaks_the_loop() {
        // It waits `timeout_s` (at least 1 s) for digits.
        let text = CROSS.replace("closed = \"ivr:a.s\"", "closed = \"c\"")
            + "\n[ivr.b.nodes.c]\ntype = \"collect\"\nvariable = \"x\"\nnext = \"ivr:a\"\n";
        parse(&text).unwrap();
    }

    /// One error naming exactly `members` as the cycle (in any rotation).
    fn assert_one_cycle(extra: &str, members: &[&str]) {
        let e = loop_errors(extra);
        assert_eq!(e.len(), 1, "{e:?}");
        let route = e[0]
            .strip_prefix("calls can loop forever without waiting for the caller: ")
            .unwrap_or_else(|| panic!("{e:?}"));
        let mut hops: Vec<&str> = route.split(" -> ").collect();
        assert_eq!(hops.first(), hops.last(), "{route}");
        hops.pop();
        hops.sort_unstable();
        let mut want = members.to_vec();
        want.sort_unstable();
        assert_eq!(hops, want, "{route}");
    }

    #[test]
    fn loop_through_a_closed_queue_into_another_ivr_is_an_error() {
        let text = "[queues.r]\nschedule = \"office\"\nclosed = \"ivr:b\"\n\n\
            [ivr.a]\nstart = \"s\"\n\n[ivr.a.nodes.s]\ntype = \"schedule\"\nschedule = \"office\"\n\
            open = \"qn\"\nclosed = \"hangup\"\n\n[ivr.a.nodes.qn]\ntype = \"queue\"\nqueue = \"r\"\n\n\
            [ivr.b]\nstart = \"t\"\n\n[ivr.b.nodes.t]\ntype = \"schedule\"\nschedule = \"office\"\n\
            open = \"hangup\"\nclosed = \"ivr:a.s\"\n";
        assert_one_cycle(text, &["ivr:a.s", "ivr:a.qn", "queue:r", "ivr:b.t"]);
    }

    #[test]
    fn loop_through_a_full_queue_into_another_ivr_is_an_error() {
        let text = "[queues.full]\nmax_waiting = 3\noverflow = \"ivr:x\"\n\n\
            [ivr.x]\nstart = \"s\"\n\n[ivr.x.nodes.s]\ntype = \"schedule\"\nschedule = \"office\"\n\
            open = \"ivr:y.enq\"\nclosed = \"ivr:y.enq\"\n\n\
            [ivr.y]\nstart = \"enq\"\n\n[ivr.y.nodes.enq]\ntype = \"queue\"\nqueue = \"full\"\n";
        assert_one_cycle(text, &["ivr:x.s", "ivr:y.enq", "queue:full"]);
    }
}
