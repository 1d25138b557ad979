//! Where a queue is written in the config file, for `sipacd check`
//! warnings (`PATH:LINE:COL`), and the warnings themselves.

use super::coverage::{coverage, CoverageOptions, Status};
use crate::config::Config;
use chrono::{DateTime, Utc};

/// Weeks `sipacd check` looks ahead for gaps: the DST changes of Europe and
/// the Americas fall up to three weeks apart, so a month sees most of them.
pub const CHECK_WEEKS: u32 = 5;

/// 1-based line and column of the `[queues.NAME]` header (or of a
/// `NAME = {...}` line inside `[queues]`); (1, 1) if neither is found.
pub fn queue_position(text: &str, name: &str) -> (usize, usize) {
    let mut in_queues = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let col = line.len() - trimmed.len() + 1;
        if let Some(rest) = trimmed.strip_prefix('[') {
            let header = rest.split(']').next().unwrap_or("");
            let parts: Vec<String> = header
                .split('.')
                .map(|p| p.trim().trim_matches('"').trim_matches('\'').to_owned())
                .collect();
            in_queues = parts.len() == 1 && parts[0] == "queues";
            if parts.len() == 2 && parts[0] == "queues" && parts[1] == name {
                return (i + 1, col);
            }
        } else if in_queues {
            let key = trimmed.split('=').next().unwrap_or("").trim();
            if key.trim_matches('"').trim_matches('\'') == name {
                return (i + 1, col);
            }
        }
    }
    (1, 1)
}

/// One `warning:` line per queue that is open with no eligible agent on
/// shift (not even after its relax steps) in the next [`CHECK_WEEKS`]:
/// `PATH:LINE:COL: warning: ...`, the first gaps named in the queue's zone.
pub fn gap_warnings(cfg: &Config, text: &str, now: DateTime<Utc>) -> Vec<String> {
    let opts = CoverageOptions {
        weeks: CHECK_WEEKS,
        interval_min: 15,
        now,
        ..CoverageOptions::default()
    };
    let Ok(cov) = coverage(cfg, &opts) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for q in &cov {
        let gaps: Vec<_> = q.ranges_of(Status::Gap).collect();
        if gaps.is_empty() {
            continue;
        }
        let (line, col) = queue_position(text, &q.queue);
        let first: Vec<String> = gaps
            .iter()
            .take(3)
            .map(|r| format!("{} to {}", r.start_local, r.end_local))
            .collect();
        let hours: f64 = gaps
            .iter()
            .map(|r| (r.end - r.start).num_minutes() as f64 / 60.0)
            .sum();
        out.push(format!(
            "{}:{line}:{col}: warning: queue `{}` is open with no eligible agent on shift for {hours:.1} h in the next {CHECK_WEEKS} weeks ({} stretch(es)), first {} ({}); `sipacd plan --queue {}` shows them all",
            cfg.source_path.display(),
            q.queue,
            gaps.len(),
            first.join(", "),
            q.timezone,
            q.queue
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_queue_headers() {
        let text = "[server]\n\n[queues.billing]\nx = 1\n  [queues.\"sup port\"]\n[queues]\ngeneral = { }\n";
        assert_eq!(queue_position(text, "billing"), (3, 1));
        assert_eq!(queue_position(text, "sup port"), (5, 3));
        assert_eq!(queue_position(text, "general"), (7, 1));
        assert_eq!(queue_position(text, "nope"), (1, 1));
    }
}
