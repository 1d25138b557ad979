//! What changed between two configurations, in words for `sipacd reload`.

use super::types::Config;
use std::collections::BTreeMap;

/// One line per change, e.g. `queue billing changed`, `agent 1002 added`.
/// Empty when nothing changed. Order: server, schedules, agents, queues,
/// numbers, IVRs.
pub fn diff(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    server(old, new, &mut out);
    section("schedule", &old.schedules, &new.schedules, &mut out);
    section("agent", &old.agents, &new.agents, &mut out);
    section("queue", &old.queues, &new.queues, &mut out);
    let routes = |c: &Config| -> BTreeMap<String, String> {
        c.numbers
            .iter()
            .map(|n| (n.number.clone(), n.to.to_string()))
            .collect()
    };
    section("number", &routes(old), &routes(new), &mut out);
    section("ivr", &old.ivrs, &new.ivrs, &mut out);
    out
}

fn section<T: PartialEq>(
    what: &str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    out: &mut Vec<String>,
) {
    for (k, v) in old {
        match new.get(k) {
            None => out.push(format!("{what} {k} removed")),
            Some(n) if n != v => out.push(format!("{what} {k} changed")),
            Some(_) => {}
        }
    }
    for k in new.keys().filter(|k| !old.contains_key(*k)) {
        out.push(format!("{what} {k} added"));
    }
}

fn server(old: &Config, new: &Config, out: &mut Vec<String>) {
    let (o, n) = (&old.server, &new.server);
    macro_rules! field {
        ($($f:ident),*) => {$(
            if o.$f != n.$f {
                out.push(format!("server.{} changed", stringify!($f)));
            }
        )*};
    }
    field!(
        sip,
        advertise,
        domain,
        rtp_ports,
        admin,
        admin_token,
        digest_algorithms,
        data_dir,
        prompts,
        timezone,
        drain_s,
        max_calls,
        rtp_timeout_s,
        queue_log
    );
}
