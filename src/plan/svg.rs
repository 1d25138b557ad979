//! The `/plan` page: per queue, a week heat map of coverage against need as
//! inline SVG (no scripts, nothing fetched), gaps marked with an X, and the
//! gap list in words. Same data as `GET /api/v1/plan`.
//!
//! A cell's class, first that applies: `closed`; `gap` (open, nobody on
//! shift could take a call); `short` (fewer agents on shift than the
//! history says the service level needs); `relax` (only after a relax
//! step); `fragile` (one agent); `covered`.

use super::coverage::{Cell, Status};
use super::staffing::{Plan, QueuePlan, SlotNeed};
use std::fmt::Write as _;

const LABEL_W: usize = 130;
const ROW_H: usize = 22;
const DAY_W: usize = 960;
const TOP: usize = 20;

/// Fill colour per class (also the legend's).
pub const CLASSES: [(&str, &str, &str); 6] = [
    ("closed", "#e5e7eb", "closed"),
    ("gap", "#dc2626", "gap: open, nobody on shift"),
    ("short", "#f97316", "fewer on shift than needed"),
    ("relax", "#fbbf24", "only after a relax step"),
    ("fragile", "#fde68a", "one agent"),
    ("covered", "#16a34a", "covered"),
];

fn class_of(cell: &Cell, need: Option<&SlotNeed>) -> &'static str {
    match cell.status {
        Status::Closed => "closed",
        Status::Gap => "gap",
        _ if need.is_some_and(|n| n.balance < 0) => "short",
        Status::RelaxOnly => "relax",
        Status::Fragile => "fragile",
        _ => "covered",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn queue_svg(out: &mut String, qp: &QueuePlan) {
    let cov = &qp.coverage;
    let per_day = (1440 / cov.interval_min.max(1)) as usize;
    let cw = DAY_W / per_day.max(1);
    let w = LABEL_W + cw * per_day + 10;
    let h = TOP + ROW_H * cov.days.len() + 4;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="coverage of {q}">"#,
        q = esc(&cov.queue)
    );
    for hr in 0..24 {
        let x = LABEL_W + hr * cw * per_day / 24;
        let _ = writeln!(out, r#"<text x="{x}" y="14" class="hour">{hr:02}</text>"#);
    }
    for (d, day) in cov.days.iter().enumerate() {
        let y = TOP + d * ROW_H;
        let _ = writeln!(
            out,
            r#"<text x="4" y="{}" class="day">{} {}</text>"#,
            y + 15,
            day.weekday,
            day.date
        );
        for (c, cell) in day.cells.iter().enumerate() {
            let Some(cell) = cell else { continue };
            let need = qp
                .needs
                .get(d)
                .and_then(|r| r.get(c))
                .and_then(Option::as_ref);
            let class = class_of(cell, need);
            let x = LABEL_W + c * cw;
            let need_text = need.map_or(String::new(), |n| {
                format!(", {:.1} calls, need {} scheduled", n.calls, n.scheduled)
            });
            let _ = writeln!(
                out,
                r#"<rect class="cell {class}" x="{x}" y="{y}" width="{}" height="{}" data-date="{}" data-local="{}" data-eligible="{}"><title>{} {} {} {}: {}, {} on shift{}</title></rect>"#,
                cw.saturating_sub(1),
                ROW_H - 2,
                day.date,
                cell.local,
                cell.eligible.first().copied().unwrap_or(0),
                day.weekday,
                day.date,
                cell.local,
                esc(&cov.timezone),
                cell.status.as_str(),
                cell.eligible.first().copied().unwrap_or(0),
                need_text
            );
            if class == "gap" {
                let _ = writeln!(
                    out,
                    r#"<text class="mark" x="{}" y="{}">X</text>"#,
                    x + cw / 2,
                    y + 15
                );
            }
        }
    }
    out.push_str("</svg>\n");
}

/// The whole page.
pub fn page(plan: &Plan) -> String {
    let mut out = String::from(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sipacd plan</title>
<style>
body { font-family: sans-serif; margin: 16px; color: #111827; }
h2 { margin: 18px 0 4px; font-size: 18px; }
.meta { color: #4b5563; font-size: 13px; margin: 0 0 6px; }
svg text.hour, svg text.day { font-size: 12px; fill: #374151; }
svg text.mark { font-size: 13px; font-weight: bold; fill: #ffffff; text-anchor: middle; }
.legend span { display: inline-block; margin-right: 14px; font-size: 13px; }
.legend i { display: inline-block; width: 14px; height: 14px; vertical-align: middle; margin-right: 4px; }
ul.gaps { font-size: 13px; margin: 4px 0; }
"#,
    );
    for (class, colour, _) in CLASSES {
        let _ = writeln!(
            out,
            "rect.{class}, i.{class} {{ fill: {colour}; background: {colour}; }}"
        );
    }
    out.push_str("</style></head><body>\n<h1>Coverage and staffing</h1>\n<div class=\"legend\">");
    for (class, _, label) in CLASSES {
        let _ = write!(out, r#"<span><i class="{class}"></i>{label}</span>"#);
    }
    let _ = writeln!(
        out,
        "</div>\n<p class=\"meta\">{} week(s), {}-minute intervals, shrinkage {:.0}%; each queue on its own wall clock</p>",
        plan.weeks,
        plan.interval_min,
        plan.shrinkage * 100.0
    );
    for qp in &plan.queues {
        let cov = &qp.coverage;
        let _ = writeln!(
            out,
            r#"<section class="queue" data-queue="{q}"><h2>{q}</h2>"#,
            q = esc(&cov.queue)
        );
        let hist = match &qp.history {
            Some(h) => format!(
                "history: {:.0} week(s), {} calls offered; target {:.0}% in {} s ({})",
                h.weeks,
                h.offered,
                qp.service_level_target * 100.0,
                qp.service_level_s,
                if h.model == "erlang_a" {
                    "Erlang A"
                } else {
                    "Erlang C"
                }
            ),
            None => "no call records: coverage only".to_owned(),
        };
        let _ = writeln!(
            out,
            r#"<p class="meta">{}; {}</p>"#,
            esc(&cov.timezone),
            esc(&hist)
        );
        queue_svg(&mut out, qp);
        let gaps: Vec<_> = cov.ranges_of(Status::Gap).collect();
        if gaps.is_empty() {
            out.push_str("<p class=\"meta nogaps\">no gaps</p>\n");
        } else {
            out.push_str("<ul class=\"gaps\">\n");
            for r in gaps {
                let _ = writeln!(
                    out,
                    "<li class=\"gap\">gap {} to {} {}</li>",
                    r.start_local,
                    r.end_local,
                    esc(&cov.timezone)
                );
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}
