//! `sipacd plan` output: a text heat map per queue, CSV and JSON.
//!
//! The heat map has one row per local date and one column per interval,
//! grouped by hour (the header names the hour):
//!
//! * `.` closed
//! * `X` gap: open, nobody on shift could take a call
//! * `r` nobody at the queue's skills; someone once a relax step applies
//! * `1` fragile: a single agent; `2`..`9` agents; `+` ten or more
//! * blank: a wall time the clock skips that day (daylight saving)
//!
//! With history, a second map shows staffing against the agents on shift
//! ([`short_symbol`]): `=` enough (or one over), `-` short by one, `2`..`9`
//! short by that many, `#` by ten or more, `^` two or more over, `.` closed
//! or no calls expected.

use super::coverage::{Cell, QueueCoverage, Status};
use super::staffing::{Plan, QueuePlan, SlotNeed};
use std::fmt::Write as _;

/// Output format of `sipacd plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Json,
}

/// Ranges listed per status and queue in the text output at most.
const LIST_CAP: usize = 40;

pub fn coverage_symbol(c: &Cell) -> char {
    match c.status {
        Status::Closed => '.',
        Status::Gap => 'X',
        Status::RelaxOnly => 'r',
        _ => match c.eligible.first().copied().unwrap_or(0) {
            n @ 1..=9 => char::from_digit(n, 10).unwrap_or('+'),
            _ => '+',
        },
    }
}

/// Staffing symbol: `=` met, `^` over by 2+, short by n: `-` for 1, else
/// the digit n (`#` for 10 or more).
pub fn short_symbol(open: bool, n: Option<&SlotNeed>) -> char {
    let Some(n) = n.filter(|n| open && (n.calls > 0.0 || n.balance < 0)) else {
        return '.';
    };
    match n.balance {
        b if b >= 2 => '^',
        0 | 1 => '=',
        -1 => '-',
        b if b >= -9 => char::from_digit((-b) as u32, 10).unwrap_or('#'),
        _ => '#',
    }
}

fn grid(out: &mut String, cov: &QueueCoverage, cell: impl Fn(usize, usize, Option<&Cell>) -> char) {
    let per_hour = (60 / cov.interval_min.max(1)) as usize;
    let width = per_hour.max(2);
    let _ = write!(out, "{:16}", "");
    for h in 0..24 {
        let _ = write!(out, "{h:<width$} ");
    }
    out.push('\n');
    for (d, day) in cov.days.iter().enumerate() {
        let _ = write!(out, "{} {}  ", day.weekday, day.date);
        for h in 0..24 {
            let mut group = String::new();
            for i in 0..per_hour {
                let ci = h * per_hour + i;
                group.push(cell(d, ci, day.cells.get(ci).and_then(Option::as_ref)));
            }
            let _ = write!(out, "{group:<width$} ");
        }
        out.push('\n');
    }
}

fn agents_text(a: &[String]) -> String {
    if a.is_empty() {
        String::new()
    } else {
        format!(" ({})", a.join(", "))
    }
}

/// The text a person reads: per queue, the coverage map, its problem
/// stretches, and the staffing map where there is history.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    for qp in &plan.queues {
        queue_text(&mut out, qp, plan);
    }
    out
}

fn queue_text(out: &mut String, qp: &QueuePlan, plan: &Plan) {
    let cov = &qp.coverage;
    let skills = |l: &super::coverage::Level| {
        if l.skills.is_empty() {
            "any agent".to_owned()
        } else {
            l.skills
                .iter()
                .map(|(s, v)| format!("{s}>={v}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let _ = writeln!(
        out,
        "queue {} ({}, {}-minute intervals): skills {}",
        cov.queue,
        cov.timezone,
        cov.interval_min,
        cov.levels.first().map(skills).unwrap_or_default()
    );
    for l in cov.levels.iter().skip(1) {
        let _ = writeln!(out, "  after {} s: {}", l.after_s, skills(l));
    }
    let _ = writeln!(
        out,
        "coverage (agents on shift with the skills; . closed, X gap, r only after relax, 1 fragile, + 10 or more):"
    );
    grid(out, cov, |_, _, c| c.map_or(' ', coverage_symbol));
    let count = |s| cov.ranges_of(s).count();
    let (gaps, relax, fragile) = (
        count(Status::Gap),
        count(Status::RelaxOnly),
        count(Status::Fragile),
    );
    if gaps + relax + fragile == 0 {
        let _ = writeln!(out, "every open interval has two or more agents on shift");
    }
    for (status, title) in [
        (
            Status::Gap,
            "gaps: open, no agent on shift could take a call",
        ),
        (
            Status::RelaxOnly,
            "covered only after a relax step (callers wait for it)",
        ),
        (Status::Fragile, "fragile: a single agent on shift"),
    ] {
        let n = count(status);
        if n == 0 {
            continue;
        }
        let _ = writeln!(out, "{title} ({}):", cov.timezone);
        for r in cov.ranges_of(status).take(LIST_CAP) {
            let _ = writeln!(
                out,
                "  {} {} - {}{}",
                weekday(&r.start_local),
                r.start_local,
                end_text(&r.start_local, &r.end_local),
                agents_text(&r.agents)
            );
        }
        if n > LIST_CAP {
            let _ = writeln!(out, "  ... and {} more (see --format csv)", n - LIST_CAP);
        }
    }
    match &qp.history {
        None => {
            let _ = writeln!(
                out,
                "staffing: no call records for this queue in the history"
            );
        }
        Some(h) => {
            let _ = writeln!(
                out,
                "staffing for {:.0}% in {} s ({}; history {:.0} week(s): {} offered, {} abandoned, handle {}, patience {}; shrinkage {:.0}%):",
                qp.service_level_target * 100.0,
                qp.service_level_s,
                if h.model == "erlang_a" { "Erlang A" } else { "Erlang C" },
                h.weeks,
                h.offered,
                h.abandoned,
                h.handle_s.map_or("-".to_owned(), |s| format!("{s:.0} s")),
                h.patience_s.map_or("-".to_owned(), |s| format!("{s:.0} s")),
                plan.shrinkage * 100.0
            );
            let _ = writeln!(
                out,
                "  (= enough, - short by 1, 2-9 short by that many, # by 10+, ^ over by 2+, . closed or no calls)"
            );
            grid(out, cov, |d, c, cell| {
                let need = qp
                    .needs
                    .get(d)
                    .and_then(|r| r.get(c))
                    .and_then(Option::as_ref);
                cell.map_or(' ', |cell| short_symbol(cell.open, need))
            });
            under_list(out, qp);
        }
    }
    out.push('\n');
}

fn under_list(out: &mut String, qp: &QueuePlan) {
    let cov = &qp.coverage;
    let mut rows = Vec::new();
    for (d, day) in cov.days.iter().enumerate() {
        for (c, cell) in day.cells.iter().enumerate() {
            let (Some(cell), Some(Some(n))) = (cell, qp.needs.get(d).and_then(|r| r.get(c))) else {
                continue;
            };
            if cell.open && n.balance < 0 {
                rows.push((day, cell, n));
            }
        }
    }
    if rows.is_empty() {
        let _ = writeln!(out, "no understaffed interval");
        return;
    }
    let _ = writeln!(out, "understaffed intervals ({}):", cov.timezone);
    for (day, cell, n) in rows.iter().take(LIST_CAP) {
        let _ = writeln!(
            out,
            "  {} {} {}  {:.1} calls, need {} on the phones ({} scheduled), {} on shift: service level {:.0}%, occupancy {:.0}%",
            day.weekday,
            day.date,
            cell.local,
            n.calls,
            n.needed,
            n.scheduled,
            n.on_shift,
            n.service_level * 100.0,
            n.occupancy * 100.0
        );
    }
    if rows.len() > LIST_CAP {
        let _ = writeln!(
            out,
            "  ... and {} more (see --format csv)",
            rows.len() - LIST_CAP
        );
    }
}

fn weekday(local: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M")
        .map(|t| t.format("%a").to_string())
        .unwrap_or_default()
}

/// The end of a range: just the time when it is on the start's date.
fn end_text(start: &str, end: &str) -> String {
    match (start.split_once(' '), end.split_once(' ')) {
        (Some((sd, _)), Some((ed, et))) if sd == ed => et.to_owned(),
        _ => format!("{} {end}", weekday(end)),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One row per queue and interval.
pub fn csv(plan: &Plan) -> String {
    let mut out = String::from(
        "queue,timezone,date,weekday,local_start,utc_start,open,status,eligible,eligible_after_relax,agents,calls,needed,scheduled,balance,service_level,occupancy\n",
    );
    for qp in &plan.queues {
        let cov = &qp.coverage;
        for (d, day) in cov.days.iter().enumerate() {
            for (c, cell) in day.cells.iter().enumerate() {
                let Some(cell) = cell else { continue };
                let need = qp
                    .needs
                    .get(d)
                    .and_then(|r| r.get(c))
                    .and_then(Option::as_ref);
                let n = |f: &dyn Fn(&SlotNeed) -> String| need.map(f).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    csv_field(&cov.queue),
                    cov.timezone,
                    day.date,
                    day.weekday,
                    cell.local,
                    cell.start_utc,
                    cell.open,
                    cell.status.as_str(),
                    cell.eligible.first().copied().unwrap_or(0),
                    cell.eligible.last().copied().unwrap_or(0),
                    csv_field(&cell.agents.join(" ")),
                    n(&|n| format!("{:.2}", n.calls)),
                    n(&|n| n.needed.to_string()),
                    n(&|n| n.scheduled.to_string()),
                    n(&|n| n.balance.to_string()),
                    n(&|n| format!("{:.3}", n.service_level)),
                    n(&|n| format!("{:.3}", n.occupancy)),
                );
            }
        }
    }
    out
}

pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub fn render(plan: &Plan, format: Format) -> String {
    match format {
        Format::Text => text(plan),
        Format::Csv => csv(plan),
        Format::Json => {
            let mut s = json(plan);
            s.push('\n');
            s
        }
    }
}
