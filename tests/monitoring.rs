//! The monitoring that ships in `monitoring/`: the Prometheus alert rules
//! pass `promtool check rules` and their own unit tests (`promtool test
//! rules`), and every series the Grafana dashboard's panels and the alert
//! rules name is one the running daemon serves (after a call answered by
//! an agent and one turned away by an IVR's closed branch, so labelled
//! series exist).

mod common;

use common::phone::{AgentPhone, Caller};
use common::{require, ConfigSpec, Daemon};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

fn rules_file() -> PathBuf {
    monitoring_dir().join("prometheus/sipacd-alerts.yml")
}

fn have_promtool() -> bool {
    Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir().join("prometheus"))
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !require(have_promtool(), "promtool (Debian package prometheus)") {
        return;
    }
    let (ok, out) = promtool(&["check", "rules", "sipacd-alerts.yml"]);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(&["test", "rules", "sipacd-alerts.test.yml"]);
    assert!(ok, "promtool test rules:\n{out}");
    // Every alert has a unit test of its own.
    let tests = std::fs::read_to_string(monitoring_dir().join("prometheus/sipacd-alerts.test.yml"))
        .unwrap();
    for alert in alert_names() {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "alert {alert} has no test in sipacd-alerts.test.yml"
        );
    }
}

/// The rules file's `- alert: NAME` lines.
fn alert_names() -> Vec<String> {
    std::fs::read_to_string(rules_file())
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect()
}

/// The rules file's expressions and recorded names, read line by line: an
/// `expr:` is one line, or a folded block (`expr: >`) of the lines
/// indented deeper than the key.
fn rule_exprs() -> (Vec<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(rules_file()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (mut exprs, mut recorded) = (Vec::new(), BTreeSet::new());
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if let Some(name) = t.strip_prefix("- record: ") {
            recorded.insert(name.trim().to_owned());
        }
        let Some(rest) = t.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest != ">" && rest != "|" {
            exprs.push(rest.to_owned());
            continue;
        }
        let block: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|b| b.trim().is_empty() || indent(b) > indent(l))
            .map(|b| b.trim())
            .collect();
        exprs.push(block.join(" "));
    }
    (exprs, recorded)
}

/// Every panel's target expressions, rows' nested panels included.
fn dashboard_exprs(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_owned()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// PromQL words that are not series names.
const KEYWORDS: [&str; 6] = ["and", "or", "unless", "bool", "offset", "inf"];

/// The metric names a PromQL expression selects: what is left once
/// strings, label matchers, ranges, `by (...)`-style label lists, function
/// names and numbers are taken out.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut s = String::new();
    // Strings and the insides of {...} and [...] go.
    let (mut depth_brace, mut depth_bracket, mut quote) = (0, 0, None);
    for c in expr.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{') => depth_brace += 1,
            (None, '}') => depth_brace -= 1,
            (None, '[') => depth_bracket += 1,
            (None, ']') => depth_bracket -= 1,
            (None, c) if depth_brace == 0 && depth_bracket == 0 => s.push(c),
            _ => {}
        }
        if quote.is_some() || depth_brace > 0 || depth_bracket > 0 {
            s.push(' ');
        }
    }
    // Label lists of grouping and matching clauses go.
    let mut cleaned = String::new();
    let mut rest = s.as_str();
    'outer: while !rest.is_empty() {
        for kw in [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ] {
            if let Some(after) = rest.strip_prefix(kw) {
                let boundary_before = cleaned
                    .chars()
                    .last()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
                let after_trim = after.trim_start();
                if boundary_before && after_trim.starts_with('(') {
                    if let Some(end) = after_trim.find(')') {
                        cleaned.push(' ');
                        rest = &after_trim[end + 1..];
                        continue 'outer;
                    }
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        cleaned.push(c);
        rest = &rest[c.len_utf8()..];
    }
    let mut names = BTreeSet::new();
    let chars: Vec<char> = cleaned.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let is_call = next == Some(&'(');
            if !is_call && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                names.insert(word);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number (2^20, 0.99, 1e-3): skip it whole.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Sample names in a Prometheus text exposition.
fn served_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The names in `exprs` that `served` lacks (`known` are exempt: series
/// that Prometheus itself or a recording rule makes).
fn missing(
    exprs: &[(String, String)],
    served: &BTreeSet<String>,
    known: &BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (where_, e) in exprs {
        for name in metric_names(e) {
            if !served.contains(&name) && !known.contains(&name) {
                out.push(format!("{where_}: `{name}` in `{e}`"));
            }
        }
    }
    out
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (queue) (increase(a_total{queue=~"$queue",x="sum(b)"}[1h])) / (sum by (queue) (increase(c_total[1h])) + 2^20)"#
        ),
        ["a_total", "c_total"]
    );
    assert_eq!(
        names("histogram_quantile(0.99, sum by (le) (rate(h_seconds_bucket[$__rate_interval])))"),
        ["h_seconds_bucket"]
    );
    assert_eq!(
        names("max by (queue) (w) > 0 and on (queue) max by (queue) (q{state=\"available\"}) == 0"),
        ["q", "w"]
    );
    assert_eq!(
        names("rec:ord:ratio1h < on (queue) max by (queue) (t) and on(queue) n >= 5"),
        ["n", "rec:ord:ratio1h", "t"]
    );
    assert_eq!(
        names("time() - process_start_time_seconds{job=~\"$job\"}"),
        ["process_start_time_seconds"]
    );
    // The check itself catches a name nothing serves.
    let served = served_names("# TYPE a_total counter\na_total{queue=\"x\"} 1\nc_total 2\n");
    let bad = vec![(
        "p".to_owned(),
        "rate(a_total[5m]) + rate(nope_total[5m])".to_owned(),
    )];
    assert_eq!(
        missing(&bad, &served, &BTreeSet::new()),
        ["p: `nope_total` in `rate(a_total[5m]) + rate(nope_total[5m])`"]
    );
}

#[test]
fn dashboard_has_its_variables_and_one_datasource() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("grafana/sipacd.json")).unwrap(),
    )
    .unwrap();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36, "Grafana 9+");
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "job", "queue"]);
    assert_eq!(dash["templating"]["list"][0]["query"], "prometheus");
    let exprs = dashboard_exprs(&dash);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let mut titles = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        titles.insert(p["title"].as_str().unwrap());
    }
    // The queue panels follow the $queue variable.
    for (title, e) in &exprs {
        if e.contains("sipacd_queue_") {
            assert!(e.contains("queue=~\"$queue\""), "{title}: {e}");
        }
    }
}

/// A schedule that is closed today, yesterday and tomorrow (UTC).
fn closed_schedule() -> String {
    let today = chrono::Utc::now().date_naive();
    let days: Vec<String> = [-1, 0, 1]
        .iter()
        .map(|d| format!("\"{}\"", today + chrono::Duration::days(*d)))
        .collect();
    format!(
        "\n[schedules.never]\ntimezone = \"UTC\"\nopen = [\"mon-sun 00:00-23:59\"]\nclosed_dates = [{}]\n\n\
         [[numbers]]\nnumber = \"1800\"\nto = \"ivr:night\"\n\n\
         [ivr.night]\nstart = \"hours\"\n\n\
         [ivr.night.nodes.hours]\ntype = \"schedule\"\nschedule = \"never\"\nopen = \"queue:support\"\nclosed = \"bye\"\n\n\
         [ivr.night.nodes.bye]\ntype = \"hangup\"\n\n\
         [queues.nightq]\nskills = {{ support = 1 }}\nschedule = \"never\"\nclosed = \"queue:support\"\n\n\
         [[numbers]]\nnumber = \"1801\"\nto = \"queue:nightq\"\n",
        days.join(", ")
    )
}

fn scrape(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::get(url).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.text().await.unwrap()
    })
}

/// The value of the sample written exactly as `series` (name and labels
/// in the daemon's order).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The harness's contact center plus agent 2001 (a static contact) and
/// [`closed_schedule`]'s after-hours numbers.
fn start_after_hours() -> (Daemon, AgentPhone) {
    let agent = AgentPhone::new("2001");
    let mut spec = ConfigSpec::new();
    spec.extra = format!(
        "{}{}",
        agent.toml("skills = { support = 3 }"),
        closed_schedule()
    );
    (Daemon::start_with(spec), agent)
}

/// Dials `number`, which reaches 2001; 2001 answers, they talk for
/// `talk`, the caller hangs up.
fn answered_call(d: &Daemon, agent: &mut AgentPhone, number: &str, talk: Duration) {
    let mut caller = Caller::dial(d.sip_port(), number);
    let inv = agent.expect_invite(WAIT).expect("offer to 2001");
    agent.answer(&inv);
    std::thread::sleep(talk);
    caller.bye();
    assert!(agent.expect_bye(WAIT).is_some(), "agent got no BYE");
}

/// Dials 1800: the closed branch of `night.hours` hangs up.
fn after_hours_call(d: &Daemon) {
    let closed = Caller::dial(d.sip_port(), "1800");
    assert!(closed.expect_bye(WAIT).is_some(), "closed branch: no BYE");
}

#[test]
fn every_dashboard_and_alert_series_is_served_by_the_daemon() {
    let (d, mut agent) = start_after_hours();
    // An answered call, so the per-call families have series; one the
    // closed queue `nightq` redirects to `support`, answered there; one
    // an IVR's closed branch hangs up.
    answered_call(&d, &mut agent, "1500", Duration::from_millis(300));
    answered_call(&d, &mut agent, "1801", Duration::from_millis(300));
    after_hours_call(&d);

    let url = format!("{}/metrics", d.admin_url());
    common::wait_until("both calls counted", WAIT, || {
        let t = scrape(&url);
        value(&t, "sipacd_ivr_closed_total{ivr=\"night\",node=\"hours\"}") == Some(1.0)
            && value(&t, "sipacd_agent_talk_seconds_total{agent=\"2001\"}").is_some_and(|v| v > 0.0)
    });
    let text = scrape(&url);
    let served = served_names(&text);

    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("grafana/sipacd.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = dashboard_exprs(&dash);
    let (rules, recorded) = rule_exprs();
    assert!(rules.len() >= 8, "{rules:?}");
    exprs.extend(rules.into_iter().map(|e| ("alert rules".to_owned(), e)));
    // `up` is Prometheus's own series about each scrape.
    let mut known = recorded;
    known.insert("up".to_owned());
    let gaps = missing(&exprs, &served, &known);
    assert!(
        gaps.is_empty(),
        "series named but not served:\n{}\n\nserved:\n{text}",
        gaps.join("\n")
    );

    // The new series carry what happened.
    for (series, want) in [
        ("sipacd_queue_calls_answered_total{queue=\"support\"}", 2.0),
        (
            "sipacd_queue_calls_answered_in_sl_total{queue=\"support\"}",
            2.0,
        ),
        ("sipacd_queue_calls_closed_total{queue=\"nightq\"}", 1.0),
        ("sipacd_queue_open{queue=\"support\"}", 1.0),
        ("sipacd_queue_open{queue=\"nightq\"}", 0.0),
        (
            "sipacd_queue_service_level_seconds{queue=\"support\"}",
            20.0,
        ),
        (
            "sipacd_queue_service_level_target_ratio{queue=\"support\"}",
            0.8,
        ),
        ("sipacd_agent_calls_answered_total{agent=\"2001\"}", 2.0),
        ("sipacd_agent_calls_answered_total{agent=\"1001\"}", 0.0),
        (
            "sipacd_agent_state{agent=\"1001\",state=\"logged_out\"}",
            1.0,
        ),
        (
            "sipacd_agent_state{agent=\"1001\",state=\"available\"}",
            0.0,
        ),
        ("sipacd_ivr_closed_total{ivr=\"night\",node=\"hours\"}", 1.0),
        (
            "sipacd_ivr_closed_total{ivr=\"bye\",node=\"bye\"}",
            f64::NAN,
        ),
    ] {
        let got = value(&text, series);
        if want.is_nan() {
            assert_eq!(got, None, "{series}: only schedule nodes have series");
        } else {
            assert_eq!(got, Some(want), "{series} in:\n{text}");
        }
    }
    let build = format!(
        "sipacd_build_info{{version=\"{}\",os=\"{}\",arch=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    assert_eq!(value(&text, &build), Some(1.0), "{text}");
    // 2001 is back from wrap-up (wrapup_s = 0) and available.
    let state = |s: &str| {
        value(
            &text,
            &format!("sipacd_agent_state{{agent=\"2001\",state=\"{s}\"}}"),
        )
    };
    assert_eq!(state("available"), Some(1.0));
    assert_eq!(state("on_call"), Some(0.0));
    if cfg!(target_os = "linux") {
        let rss = value(&text, "process_resident_memory_bytes").unwrap_or(0.0);
        assert!(rss > 1e6, "{rss}");
        let start = value(&text, "process_start_time_seconds").unwrap_or(0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start <= now + 1.0 && start > now - 600.0,
            "started at {start}, now {now}"
        );
    }
}

#[test]
fn records_and_the_report_carry_closed_branches_and_logged_in_time() {
    let (d, mut agent) = start_after_hours();
    answered_call(&d, &mut agent, "1801", Duration::from_millis(500));
    after_hours_call(&d);

    let data = d.cfg.root().join("data");
    let ended = |r: &sipacd::cdr::CallRecord| r.disposition != sipacd::cdr::Disposition::InProgress;
    common::wait_until("both records written", WAIT, || {
        let store = sipacd::cdr::CdrStore::open_reader(&data).unwrap();
        let recs = store.query(&Default::default()).unwrap();
        recs.len() == 2 && recs.iter().all(ended)
    });
    let store = sipacd::cdr::CdrStore::open_reader(&data).unwrap();
    let recs = store.query(&Default::default()).unwrap();
    let got: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r.number.as_str(),
                r.disposition.as_str(),
                r.closed_by.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("1801", "answered", Some("queue:nightq")),
            ("1800", "closed", Some("ivr:night.hours")),
        ]
    );
    // 2001 (a static contact) has been logged in since the start; 1001
    // never registered.
    let sessions = store.sessions(&Default::default()).unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(
        (sessions[0].agent.as_str(), sessions[0].logout_ms),
        ("2001", None)
    );

    let out = Command::new(common::sipacd_bin())
        .args(["report", "--config"])
        .arg(d.cfg.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |first: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no `{first}` row in:\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // After hours: each branch turned one call away; the queue's redirect
    // led to an answer.
    assert_eq!(row("ivr:night.hours")[1..], ["1", "0"]);
    assert_eq!(row("queue:nightq")[1..], ["1", "1"]);
    // nightq: not offered, closed once (offered, answered, abandoned,
    // aband%, aband<5s, overflowed, closed).
    assert_eq!(row("nightq")[1..8], ["0", "0", "0", "-", "0", "0", "1"]);
    assert_eq!(row("support")[1..5], ["1", "1", "0", "0.0"]);
    // 2001: one call, logged in for a few seconds, some of them talking.
    let agent_row = row("2001");
    let talk: f64 = agent_row[2].parse().unwrap();
    let logged_in: f64 = agent_row[3].parse().unwrap();
    let occupancy: f64 = agent_row[4].parse().unwrap();
    assert_eq!(agent_row[1], "1");
    assert!(
        talk >= 0.4 && logged_in > talk && logged_in < 120.0,
        "{agent_row:?}"
    );
    // Rounded to 0.1 s in the table: the exact figures are
    // tests/cdr_report.rs's.
    assert!(occupancy > 0.0 && occupancy < 100.0, "{agent_row:?}");
}
