//! The operator commands that talk to a running daemon (`status`,
//! `reload`, over the admin API) or read its call records (`report`).
//! `main.rs` parses the command line and calls these; each returns the text
//! to print.

use std::fmt::Write as _;
use std::path::Path;

use crate::admin::{AgentView, QueueView};
use crate::cdr::{parse_time, render_text, Bucket, CdrError, CdrStore, ReportOptions};
use crate::config::{self, Config};

/// Environment variable holding the admin API's bearer token.
pub const TOKEN_ENV: &str = "SIPACD_ADMIN_TOKEN";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error("cannot read {path} (pass --admin URL to skip it):\n{errors}")]
    Config { path: String, errors: String },
    #[error("admin API at {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("admin API at {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{0}")]
    Time(#[from] crate::cdr::TimeParseError),
    #[error(transparent)]
    Cdr(#[from] CdrError),
    #[error("{0}")]
    Plan(String),
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(std::io::Error),
}

/// What `sipacd reload` learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadResult {
    Applied(Vec<String>),
    Rejected(Vec<String>),
}

fn load(path: &Path) -> Result<Config, CliError> {
    config::load(path).map_err(|errs| CliError::Config {
        path: path.display().to_string(),
        errors: errs
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// `--admin URL` if given, else `http://` + the config's `server.admin`.
pub fn admin_url(given: Option<&str>, config: &Path) -> Result<String, CliError> {
    let url = match given {
        Some(u) if u.contains("://") => u.to_owned(),
        Some(hostport) => format!("http://{hostport}"),
        None => format!("http://{}", load(config)?.server.admin),
    };
    Ok(url.trim_end_matches('/').to_owned())
}

/// A client for one admin API.
pub struct Admin {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Admin {
    pub fn new(base: String, token: Option<String>) -> Admin {
        Admin {
            base,
            token: token.filter(|t| !t.is_empty()),
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<(u16, serde_json::Value), CliError> {
        let url = format!("{}{path}", self.base);
        let http = |source| CliError::Http {
            url: url.clone(),
            source,
        };
        let mut req = self
            .http
            .request(method, &url)
            .timeout(std::time::Duration::from_secs(30));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(http)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(http)?;
        match serde_json::from_str(&text) {
            Ok(v) if status == 200 || status == 400 => Ok((status, v)),
            _ => Err(CliError::Status {
                url,
                status,
                body: text,
            }),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let url = format!("{}{path}", self.base);
        let (status, v) = self.send(reqwest::Method::GET, path).await?;
        if status != 200 {
            return Err(CliError::Status {
                url,
                status,
                body: v.to_string(),
            });
        }
        serde_json::from_value(v).map_err(|e| CliError::Status {
            url,
            status,
            body: format!("unexpected JSON: {e}"),
        })
    }

    pub async fn status(&self) -> Result<String, CliError> {
        let queues: Vec<QueueView> = self.get("/api/v1/queues").await?;
        let agents: Vec<AgentView> = self.get("/api/v1/agents").await?;
        Ok(render_status(&queues, &agents))
    }

    pub async fn reload(&self) -> Result<ReloadResult, CliError> {
        let (status, v) = self.send(reqwest::Method::POST, "/api/v1/reload").await?;
        let list = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(|l| l.as_array())
                .map(|l| {
                    l.iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(match status {
            200 => ReloadResult::Applied(list("changed")),
            _ => ReloadResult::Rejected(list("errors")),
        })
    }
}

/// Runs `f` on a small current-thread runtime (the CLI does one request
/// at a time).
pub fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(f)
}

/// The text `sipacd reload` prints.
pub fn render_reload(r: &ReloadResult) -> String {
    match r {
        ReloadResult::Applied(changed) if changed.is_empty() => {
            "reload applied: nothing changed\n".to_owned()
        }
        ReloadResult::Applied(changed) => {
            let mut out = String::from("reload applied:\n");
            for c in changed {
                let _ = writeln!(out, "  {c}");
            }
            out
        }
        ReloadResult::Rejected(errors) => {
            let mut out = String::from("reload rejected, the old configuration stays in force:\n");
            for e in errors {
                let _ = writeln!(out, "  {e}");
            }
            out
        }
    }
}

/// Queues then agents, as aligned tables.
pub fn render_status(queues: &[QueueView], agents: &[AgentView]) -> String {
    let mut rows = vec![vec![
        "queue".to_owned(),
        "open".to_owned(),
        "waiting".to_owned(),
        "longest wait s".to_owned(),
        "available".to_owned(),
        "busy".to_owned(),
    ]];
    for q in queues {
        rows.push(vec![
            q.name.clone(),
            if q.open { "yes" } else { "no" }.to_owned(),
            q.waiting.to_string(),
            format!("{:.0}", q.longest_wait_s),
            q.agents_available.to_string(),
            q.agents_busy.to_string(),
        ]);
    }
    let mut out = table(&rows);
    out.push('\n');
    let mut rows = vec![vec![
        "agent".to_owned(),
        "name".to_owned(),
        "state".to_owned(),
        "registered".to_owned(),
        "calls".to_owned(),
    ]];
    for a in agents {
        let state = match &a.pause_reason {
            Some(r) => format!("{} ({r})", a.state),
            None => a.state.clone(),
        };
        rows.push(vec![
            a.id.clone(),
            a.name.clone(),
            state,
            if a.registered { "yes" } else { "no" }.to_owned(),
            a.calls_taken.to_string(),
        ]);
    }
    out.push_str(&table(&rows));
    out
}

fn table(rows: &[Vec<String>]) -> String {
    crate::cdr::text_table(rows, false)
}

/// `sipacd report` options as typed on the command line.
#[derive(Debug, Clone, Default)]
pub struct ReportArgs {
    pub since: Option<String>,
    pub until: Option<String>,
    pub queue: Option<String>,
    pub by: Option<Bucket>,
    /// First-contact resolution window in hours (default 24).
    pub fcr_window_h: Option<u32>,
    /// JSON instead of text tables.
    pub json: bool,
}

/// Reads the call records under the config's `data_dir` and renders the
/// report. Times without an offset are in `server.timezone`.
pub fn report(config: &Path, args: &ReportArgs) -> Result<String, CliError> {
    let cfg = load(config)?;
    let tz = cfg.server.timezone;
    let now = chrono::Utc::now();
    let parse = |v: &Option<String>| v.as_deref().map(|s| parse_time(s, tz, now)).transpose();
    let opts = ReportOptions {
        since_ms: parse(&args.since)?,
        until_ms: parse(&args.until)?,
        queue: args.queue.clone(),
        by: args.by,
        tz,
        service_level_s: cfg
            .queues
            .values()
            .map(|q| (q.name.clone(), q.service_level_s))
            .collect(),
        wrapup_s: cfg
            .queues
            .values()
            .map(|q| (q.name.clone(), q.wrapup_s))
            .collect(),
        fcr_window_ms: args
            .fcr_window_h
            .map_or(crate::cdr::DEFAULT_FCR_WINDOW_H, i64::from)
            * 3_600_000,
        ..ReportOptions::default()
    };
    let store = CdrStore::open_reader(&cfg.server.data_dir)?;
    let report = store.report(&opts)?;
    Ok(if args.json {
        crate::cdr::report_json(&report)
    } else {
        render_text(&report)
    })
}

/// `sipacd plan` options as typed on the command line.
#[derive(Debug, Clone)]
pub struct PlanArgs {
    pub weeks: u32,
    pub interval: u32,
    pub queue: Option<String>,
    /// First local date (`YYYY-MM-DD`); default today in each queue's zone.
    pub from: Option<String>,
    pub format: crate::plan::render::Format,
    /// Weeks of call records the demand is read from (0 = none).
    pub history_weeks: u32,
    pub shrinkage: f64,
}

/// Coverage and staffing from the config and the call records in its
/// `data_dir` (read only; a missing database means no history).
pub fn plan(config: &Path, args: &PlanArgs) -> Result<String, CliError> {
    let cfg = load(config)?;
    let now = chrono::Utc::now();
    let from = args
        .from
        .as_deref()
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| CliError::Plan(format!("--from `{d}` must be a date (YYYY-MM-DD)")))
        })
        .transpose()?;
    if !(0.0..0.95).contains(&args.shrinkage) {
        return Err(CliError::Plan(format!(
            "--shrinkage {} must be a fraction from 0 to 0.95",
            args.shrinkage
        )));
    }
    let opts = crate::plan::PlanOptions {
        coverage: crate::plan::CoverageOptions {
            from,
            weeks: args.weeks,
            interval_min: args.interval,
            queue: args.queue.clone(),
            now,
        },
        shrinkage: args.shrinkage,
    };
    let demand = if args.history_weeks == 0 {
        None
    } else {
        let until_ms = now.timestamp_millis();
        let since_ms = until_ms - i64::from(args.history_weeks) * 7 * 86_400_000;
        history(&cfg, since_ms, until_ms, args.interval)?
    };
    let plan = crate::plan::plan(&cfg, &opts, demand.as_ref())
        .map_err(|e| CliError::Plan(e.to_string()))?;
    Ok(crate::plan::render::render(&plan, args.format))
}

/// The demand in `[since, until)` from `data_dir`'s records.
pub fn history(
    cfg: &Config,
    since_ms: i64,
    until_ms: i64,
    interval: u32,
) -> Result<Option<crate::plan::Demand>, CliError> {
    Ok(crate::plan::demand::from_store(
        cfg,
        &cfg.server.data_dir,
        since_ms,
        until_ms,
        interval,
    )?)
}

/// `sipacd check`'s warnings for a file that loads: queues open with no
/// eligible agent on shift.
pub fn check_warnings(cfg: &Config) -> Vec<String> {
    let text = std::fs::read_to_string(&cfg.source_path).unwrap_or_default();
    crate::plan::locate::gap_warnings(cfg, &text, chrono::Utc::now())
}

/// `sipacd replay` options as typed on the command line.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    pub since: String,
    pub until: String,
    /// A data_dir holding the records; default the config's own.
    pub records: Option<std::path::PathBuf>,
    pub seed: u64,
    pub answer_s: u64,
    pub json: bool,
}

/// Replays the records of `[since, until)` through the router with the
/// configuration at `config` and compares with the records.
pub fn replay(config: &Path, args: &ReplayArgs) -> Result<String, CliError> {
    let cfg = load(config)?;
    let tz = cfg.server.timezone;
    let now = chrono::Utc::now();
    let since_ms = parse_time(&args.since, tz, now)?;
    let until_ms = parse_time(&args.until, tz, now)?;
    let dir = args
        .records
        .clone()
        .unwrap_or_else(|| cfg.server.data_dir.clone());
    if !dir.join(crate::cdr::DB_FILE).exists() {
        return Err(CliError::Plan(format!(
            "no call records in {} ({} is missing)",
            dir.display(),
            crate::cdr::DB_FILE
        )));
    }
    let store = CdrStore::open_reader(&dir)?;
    let filter = crate::cdr::CdrFilter {
        since_ms: Some(since_ms),
        until_ms: Some(until_ms),
    };
    let records = store.query(&filter)?;
    let sessions = store.sessions(&filter)?;
    let opts = crate::plan::replay::ReplayOptions {
        since_ms,
        until_ms,
        seed: args.seed,
        answer_s: args.answer_s,
    };
    let calls = crate::plan::replay::calls_from_records(&cfg, &records, &opts);
    let report = crate::plan::replay::replay(&cfg, &calls, &records, &sessions, &opts);
    Ok(if args.json {
        let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
        s.push('\n');
        s
    } else {
        crate::plan::replay::render_text(&report)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn status_tables_list_queues_then_agents() {
        let q = QueueView {
            name: "support".into(),
            waiting: 2,
            longest_wait_s: 31.6,
            agents_available: 1,
            agents_busy: 3,
            open: true,
            agents_wrapup: 1,
            agents_paused: 0,
            service_level_today: None,
            ..QueueView::default()
        };
        let a = AgentView {
            id: "1001".into(),
            name: "Alice".into(),
            state: "paused".into(),
            pause_reason: Some("lunch".into()),
            registered: true,
            skills: BTreeMap::new(),
            calls_taken: 7,
            state_since_ms: None,
            ..AgentView::default()
        };
        let out = render_status(&[q], &[a]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("queue"), "{out}");
        let words: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(words, ["support", "yes", "2", "32", "1", "3"]);
        assert_eq!(lines[2], "");
        assert!(lines[3].starts_with("agent"));
        let words: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(words, ["1001", "Alice", "paused", "(lunch)", "yes", "7"]);
    }

    #[test]
    fn reload_text_lists_changes_or_errors() {
        let ok = render_reload(&ReloadResult::Applied(vec!["queue a: added".into()]));
        assert_eq!(ok, "reload applied:\n  queue a: added\n");
        let bad = render_reload(&ReloadResult::Rejected(vec!["f:1:2: bad".into()]));
        assert!(bad.starts_with("reload rejected"));
        assert!(bad.contains("  f:1:2: bad\n"));
    }

    #[test]
    fn admin_url_takes_host_port_or_url() {
        let none = Path::new("/nonexistent/sipacd.toml");
        assert_eq!(
            admin_url(Some("127.0.0.1:9"), none).unwrap(),
            "http://127.0.0.1:9"
        );
        assert_eq!(admin_url(Some("http://h:1/"), none).unwrap(), "http://h:1");
        assert!(admin_url(None, none).is_err());
    }
}
