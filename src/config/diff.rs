//! What changed between two configurations, in words for `sipacd reload`.

use super::schedule::Schedule;
use super::types::{Agent, Config, Ivr, Queue, Trunk};
use std::collections::BTreeMap;

/// `server` keys read once at start: a reload reports them but they take
/// effect at the next restart (sockets, files and writer threads).
pub const RESTART_ONLY: &[&str] = &[
    "sip",
    "admin",
    "data_dir",
    "queue_log",
    "tcp_connect_timeout_s",
    "tcp_max_connections",
    "tcp_max_per_source",
    "tcp_message_timeout_s",
    "tcp_idle_s",
    "admin_max_connections",
    "admin_header_timeout_s",
];

/// Suffix of a change that waits for a restart.
pub const AT_RESTART: &str = " (takes effect at the next restart)";

/// One line per change, naming what changed, e.g. `queue billing changed:
/// ring_timeout_s, music`, `agent 1002 added`, `server.sip changed (takes
/// effect at the next restart)`. Empty when nothing changed. Order: server,
/// schedules, agents, queues, numbers, IVRs, trunks.
pub fn diff(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    server(old, new, &mut out);
    section(
        "schedule",
        &old.schedules,
        &new.schedules,
        schedule_fields,
        &mut out,
    );
    section("agent", &old.agents, &new.agents, agent_fields, &mut out);
    section("queue", &old.queues, &new.queues, queue_fields, &mut out);
    type Route = (String, u64, super::types::MediaEncryption);
    let routes = |c: &Config| -> BTreeMap<String, Route> {
        c.numbers
            .iter()
            .map(|n| {
                let r = (n.to.to_string(), n.ring_s, n.media_encryption);
                (n.number.clone(), r)
            })
            .collect()
    };
    let number_fields = |o: &Route, n: &Route| {
        let mut f = Vec::new();
        if o.0 != n.0 {
            f.push(format!("to {} -> {}", o.0, n.0));
        }
        if o.1 != n.1 {
            f.push(format!("ring_s {} -> {}", o.1, n.1));
        }
        if o.2 != n.2 {
            f.push("media_encryption".to_string());
        }
        f
    };
    section(
        "number",
        &routes(old),
        &routes(new),
        number_fields,
        &mut out,
    );
    section("ivr", &old.ivrs, &new.ivrs, ivr_fields, &mut out);
    let f = feature_fields(&old.features, &new.features);
    if !f.is_empty() {
        out.push(format!("features changed: {}", f.join(", ")));
    }
    section("trunk", &old.trunks, &new.trunks, trunk_fields, &mut out);
    out
}

/// Names of the fields that differ between `$o` and `$n`.
macro_rules! changed {
    ($o:expr, $n:expr; $($f:ident),*) => {{
        let mut v: Vec<String> = Vec::new();
        $( if $o.$f != $n.$f { v.push(stringify!($f).to_string()); } )*
        v
    }};
}

fn feature_fields(o: &super::Features, n: &super::Features) -> Vec<String> {
    changed!(o, n; pause, unpause, login, logout, pause_reasons, transfer)
}

fn schedule_fields(o: &Schedule, n: &Schedule) -> Vec<String> {
    changed!(o, n; timezone, open, closed_dates)
}

fn agent_fields(o: &Agent, n: &Agent) -> Vec<String> {
    let mut v = changed!(o, n; name, skills, timezone, shift, contact, media_encryption);
    // Never print a secret, only that it changed.
    if o.credential != n.credential {
        v.push("password".into());
    }
    v
}

fn queue_fields(o: &Queue, n: &Queue) -> Vec<String> {
    changed!(o, n; skills, strategy, schedule, closed, ring_timeout_s, wrapup_s,
        retry_s, max_wait_s, max_waiting, overflow, music, announce_position_s,
        relax, priority, transfer_priority, service_level_s, record, record_prompt, rejoin_s, survey, callback)
}

fn trunk_fields(o: &std::sync::Arc<Trunk>, n: &std::sync::Arc<Trunk>) -> Vec<String> {
    let mut v = changed!(o, n; uri, caller_id, max_calls);
    // Never print a secret, only that it changed.
    if o.auth != n.auth {
        v.push("credentials".into());
    }
    v
}

fn ivr_fields(o: &Ivr, n: &Ivr) -> Vec<String> {
    let mut v = changed!(o, n; start);
    for (name, node) in &o.nodes {
        match n.nodes.get(name) {
            None => v.push(format!("node {name} removed")),
            Some(m) if m != node => v.push(format!("node {name}")),
            Some(_) => {}
        }
    }
    for name in n.nodes.keys().filter(|k| !o.nodes.contains_key(*k)) {
        v.push(format!("node {name} added"));
    }
    v
}

fn section<T: PartialEq>(
    what: &str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    fields: impl Fn(&T, &T) -> Vec<String>,
    out: &mut Vec<String>,
) {
    for (k, v) in old {
        match new.get(k) {
            None => out.push(format!("{what} {k} removed")),
            Some(n) if n != v => {
                let f = fields(v, n);
                match f.is_empty() {
                    true => out.push(format!("{what} {k} changed")),
                    false => out.push(format!("{what} {k} changed: {}", f.join(", "))),
                }
            }
            Some(_) => {}
        }
    }
    for k in new.keys().filter(|k| !old.contains_key(*k)) {
        out.push(format!("{what} {k} added"));
    }
}

fn server(old: &Config, new: &Config, out: &mut Vec<String>) {
    let (o, n) = (&old.server, &new.server);
    let fields = changed!(o, n; sip, advertise, domain, rtp_ports, admin,
        admin_token, digest_algorithms, data_dir, prompts, timezone, drain_s,
        max_calls, rtp_timeout_s, queue_log, tcp_connect_timeout_s,
        tcp_max_connections, tcp_max_per_source, tcp_message_timeout_s, tcp_idle_s,
        tls, admin_max_connections, admin_header_timeout_s, auth_guard,
        max_calls_in_setup_per_source, allow_networks, max_transactions, retention_days);
    // One `[server]` key each, as the file names them.
    let (po, pn) = (o.pike, n.pike);
    let pike = [
        ("pike_window_s", po.window != pn.window),
        ("pike_max_requests", po.max_requests != pn.max_requests),
        ("pike_block_s", po.block != pn.block),
    ];
    let fields = fields
        .into_iter()
        .chain(pike.iter().filter(|(_, c)| *c).map(|(k, _)| k.to_string()));
    for f in fields {
        let later = if RESTART_ONLY.contains(&f.as_str()) {
            AT_RESTART
        } else {
            ""
        };
        out.push(format!("server.{f} changed{later}"));
    }
}
