//! Coverage: for each queue and each interval of the coming weeks, on the
//! queue's own wall clock and real dates, is it open and who could take its
//! calls.
//!
//! Intervals are laid on the local clock of the queue's zone (its
//! schedule's, else `server.timezone`), so a daylight-saving change gives a
//! day of 23 or 25 hours: the hour the clock skips has no cells, the hour it
//! repeats is one cell judged by the worse of its two instants. An interval
//! is judged at its start (schedules and shifts have minute resolution; use
//! `--interval 15` for windows that start on a quarter hour). Each agent's
//! shift is read on the agent's own wall clock; an agent without a shift
//! counts as on shift all the time, as the router treats it.
//!
//! Cost: shifts and schedules are sampled once per distinct (zone, windows)
//! on a 15-minute UTC grid (every zone's offset is a multiple of 15
//! minutes), eligibility once per queue and relax step through a skill
//! index, and a cell sums the eligible agents per shift pattern: 1,000
//! queues and 100,000 agents over 8 weeks stay within seconds
//! (`benches/plan.rs`).

use crate::acd::{eligible, required_skills};
use crate::config::{Config, Queue, Window};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Agents named per cell at most (the count is always exact).
pub const AGENT_LIST_CAP: usize = 12;

const GRID_MIN: i64 = 15;

/// What to compute.
#[derive(Debug, Clone)]
pub struct CoverageOptions {
    /// First local date of every queue; `None`: today in each queue's zone.
    pub from: Option<NaiveDate>,
    pub weeks: u32,
    /// Minutes, one of [`super::INTERVALS`].
    pub interval_min: u32,
    /// Only this queue.
    pub queue: Option<String>,
    /// "Today" when `from` is not given.
    pub now: DateTime<Utc>,
}

impl Default for CoverageOptions {
    fn default() -> Self {
        CoverageOptions {
            from: None,
            weeks: 1,
            interval_min: 30,
            queue: None,
            now: Utc::now(),
        }
    }
}

/// How well an interval is covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Open and nobody could take a call, not even after the last relax step.
    Gap,
    /// Nobody at the queue's own skills; someone once a relax step applies.
    RelaxOnly,
    /// Exactly one agent at the queue's own skills.
    Fragile,
    Covered,
    Closed,
}

impl Status {
    /// Whether the interval needs a person's attention (listed as ranges).
    pub fn is_problem(self) -> bool {
        matches!(self, Status::Gap | Status::RelaxOnly | Status::Fragile)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Gap => "gap",
            Status::RelaxOnly => "relax_only",
            Status::Fragile => "fragile",
            Status::Covered => "covered",
            Status::Closed => "closed",
        }
    }
}

/// One interval of one local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Local start, `HH:MM`.
    pub local: String,
    /// RFC 3339 UTC start (the earlier one where the clock repeats).
    pub start_utc: String,
    #[serde(skip)]
    pub at: DateTime<Utc>,
    pub open: bool,
    /// Agents on shift with the skills asked at each level: index 0 the
    /// queue's own skills, then after each relax step.
    pub eligible: Vec<u32>,
    /// Who they are, when [`AGENT_LIST_CAP`] or fewer (else empty: the
    /// count says how many): at the first level that has anyone, so the
    /// queue's own skills unless only a relax step helps.
    pub agents: Vec<String>,
    pub status: Status,
}

/// One local date; `None` cells are wall times the clock skips that day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayRow {
    #[serde(serialize_with = "date_str")]
    pub date: NaiveDate,
    pub weekday: String,
    pub cells: Vec<Option<Cell>>,
}

fn date_str<S: serde::Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

/// A queue's skills at one relax level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Level {
    /// Seconds of waiting before it applies (0 for the queue's own).
    pub after_s: u64,
    pub skills: BTreeMap<String, u8>,
}

/// Consecutive intervals of one status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Range {
    pub status: Status,
    /// Local `YYYY-MM-DD HH:MM`, start inclusive, end exclusive.
    pub start_local: String,
    pub end_local: String,
    pub start_utc: String,
    pub end_utc: String,
    #[serde(skip)]
    pub start: DateTime<Utc>,
    #[serde(skip)]
    pub end: DateTime<Utc>,
    /// The agents who could take calls then (fragile and relax-only).
    pub agents: Vec<String>,
}

/// One queue's coverage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueCoverage {
    pub queue: String,
    pub timezone: String,
    #[serde(skip)]
    pub tz: Tz,
    pub interval_min: u32,
    pub levels: Vec<Level>,
    pub days: Vec<DayRow>,
    /// Gaps, relax-only and fragile stretches, in time order.
    pub ranges: Vec<Range>,
}

impl QueueCoverage {
    pub fn ranges_of(&self, status: Status) -> impl Iterator<Item = &Range> {
        self.ranges.iter().filter(move |r| r.status == status)
    }

    /// Every cell in time order.
    pub fn cells(&self) -> impl Iterator<Item = &Cell> {
        self.days.iter().flat_map(|d| d.cells.iter().flatten())
    }
}

/// On/off samples of one (zone, windows) pattern on the shared UTC grid.
struct Bits(Vec<u64>);

impl Bits {
    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }
}

/// The 15-minute UTC grid all patterns are sampled on.
struct Grid {
    start: DateTime<Utc>,
    len: usize,
}

impl Grid {
    fn index(&self, t: DateTime<Utc>) -> Option<usize> {
        let m = (t - self.start).num_minutes();
        let exact = (t - self.start).num_seconds() % 60 == 0 && m % GRID_MIN == 0;
        let i = usize::try_from(m / GRID_MIN).ok()?;
        (exact && m >= 0 && i < self.len).then_some(i)
    }

    fn sample(&self, f: impl Fn(DateTime<Utc>) -> bool) -> Bits {
        let mut words = vec![0u64; self.len.div_ceil(64)];
        for i in 0..self.len {
            if f(self.start + Duration::minutes(i as i64 * GRID_MIN)) {
                words[i / 64] |= 1 << (i % 64);
            }
        }
        Bits(words)
    }
}

/// Shift patterns shared by agents with the same zone and windows.
struct Patterns {
    /// Per pattern: its samples (`None` = no shift: always on).
    bits: Vec<Option<Bits>>,
    /// Per pattern: a representative (zone, windows) for off-grid instants.
    shape: Vec<(Tz, Vec<Window>)>,
    /// Per agent (in `Config::agents` order): its pattern.
    of_agent: Vec<u32>,
}

impl Patterns {
    fn build(cfg: &Config, grid: &Grid) -> Patterns {
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut bits = Vec::new();
        let mut shape = Vec::new();
        let mut of_agent = Vec::with_capacity(cfg.agents.len());
        for a in cfg.agents.values() {
            let key = if a.shift.is_empty() {
                String::new()
            } else {
                let w: Vec<String> = a.shift.iter().map(ToString::to_string).collect();
                format!("{}|{}", a.timezone.name(), w.join(";"))
            };
            let id = *ids.entry(key).or_insert_with(|| {
                bits.push((!a.shift.is_empty()).then(|| {
                    grid.sample(|t| crate::config::windows_open(&a.shift, a.timezone, t))
                }));
                shape.push((a.timezone, a.shift.clone()));
                (bits.len() - 1) as u32
            });
            of_agent.push(id);
        }
        Patterns {
            bits,
            shape,
            of_agent,
        }
    }

    fn on(&self, pattern: u32, grid: &Grid, t: DateTime<Utc>) -> bool {
        let p = pattern as usize;
        match (self.bits.get(p), grid.index(t)) {
            (Some(None), _) => true,
            (Some(Some(b)), Some(i)) => b.get(i),
            _ => self
                .shape
                .get(p)
                .is_some_and(|(tz, w)| w.is_empty() || crate::config::windows_open(w, *tz, t)),
        }
    }
}

/// Agents by skill, for eligibility without scanning every agent per queue.
struct SkillIndex<'a> {
    agents: Vec<&'a crate::config::Agent>,
    by_skill: HashMap<&'a str, Vec<u32>>,
}

impl<'a> SkillIndex<'a> {
    fn new(cfg: &'a Config) -> Self {
        let agents: Vec<_> = cfg.agents.values().collect();
        let mut by_skill: HashMap<&str, Vec<u32>> = HashMap::new();
        for (i, a) in agents.iter().enumerate() {
            for s in a.skills.keys() {
                by_skill.entry(s.as_str()).or_default().push(i as u32);
            }
        }
        SkillIndex { agents, by_skill }
    }

    /// Agents with every skill of `req` at its level, in agent order.
    fn eligible(&self, req: &BTreeMap<String, u8>) -> Vec<u32> {
        let rarest = req
            .keys()
            .map(|s| self.by_skill.get(s.as_str()).map_or(&[][..], Vec::as_slice))
            .min_by_key(|l| l.len());
        let check = |i: &u32| {
            self.agents
                .get(*i as usize)
                .is_some_and(|a| eligible(a, req))
        };
        match rarest {
            None => (0..self.agents.len() as u32).collect(),
            Some(list) => list.iter().copied().filter(check).collect(),
        }
    }
}

/// A queue level's eligible agents, grouped by shift pattern.
struct LevelAgents {
    groups: Vec<(u32, Vec<u32>)>,
}

impl LevelAgents {
    fn new(members: &[u32], patterns: &Patterns) -> Self {
        let mut by: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &a in members {
            if let Some(p) = patterns.of_agent.get(a as usize) {
                by.entry(*p).or_default().push(a);
            }
        }
        LevelAgents {
            groups: by.into_iter().collect(),
        }
    }

    fn count(&self, patterns: &Patterns, grid: &Grid, t: DateTime<Utc>) -> u32 {
        self.groups
            .iter()
            .filter(|(p, _)| patterns.on(*p, grid, t))
            .map(|(_, a)| a.len() as u32)
            .sum()
    }

    fn names(
        &self,
        patterns: &Patterns,
        grid: &Grid,
        t: DateTime<Utc>,
        ids: &[&str],
    ) -> Vec<String> {
        let mut out: Vec<u32> = self
            .groups
            .iter()
            .filter(|(p, _)| patterns.on(*p, grid, t))
            .flat_map(|(_, a)| a.iter().copied())
            .take(AGENT_LIST_CAP)
            .collect();
        out.sort_unstable();
        out.iter()
            .filter_map(|i| ids.get(*i as usize).map(|s| (*s).to_owned()))
            .collect()
    }
}

/// The zone a queue's hours are read in.
pub fn queue_zone(cfg: &Config, q: &Queue) -> Tz {
    q.schedule
        .as_ref()
        .and_then(|s| cfg.schedules.get(s))
        .map_or(cfg.server.timezone, |s| s.timezone)
}

/// Coverage of every queue (or `opts.queue`), by queue name.
pub fn coverage(
    cfg: &Config,
    opts: &CoverageOptions,
) -> Result<Vec<QueueCoverage>, super::PlanError> {
    if !super::INTERVALS.contains(&opts.interval_min) {
        return Err(super::PlanError::Interval(opts.interval_min));
    }
    if !(1..=52).contains(&opts.weeks) {
        return Err(super::PlanError::Weeks(opts.weeks));
    }
    let queues: Vec<&Queue> = match &opts.queue {
        Some(name) => vec![cfg
            .queues
            .get(name)
            .ok_or_else(|| super::PlanError::UnknownQueue(name.clone()))?],
        None => cfg.queues.values().collect(),
    };
    let days = i64::from(opts.weeks) * 7;
    let first_day = |q: &Queue| {
        opts.from
            .unwrap_or_else(|| opts.now.with_timezone(&queue_zone(cfg, q)).date_naive())
    };
    // The grid spans every queue's days, with a day to spare either side
    // for the zones' offsets.
    let (lo, hi) = queues
        .iter()
        .map(|q| first_day(q))
        .fold((NaiveDate::MAX, NaiveDate::MIN), |(lo, hi), d| {
            (lo.min(d), hi.max(d))
        });
    let Some(grid_start) = lo
        .pred_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
    else {
        return Ok(Vec::new());
    };
    let span = (hi - lo).num_days() + days + 2;
    let grid = Grid {
        start: grid_start,
        len: usize::try_from(span * 24 * 60 / GRID_MIN).unwrap_or(0),
    };
    let patterns = Patterns::build(cfg, &grid);
    let skills = SkillIndex::new(cfg);
    let ids: Vec<&str> = cfg.agents.keys().map(String::as_str).collect();
    let mut schedule_bits: HashMap<&str, Bits> = HashMap::new();
    let mut clocks = Clocks::default();
    let mut out = Vec::with_capacity(queues.len());
    for q in queues {
        let sched = q.schedule.as_ref().and_then(|s| cfg.schedules.get(s));
        if let (Some(name), Some(s)) = (&q.schedule, sched) {
            schedule_bits
                .entry(name.as_str())
                .or_insert_with(|| grid.sample(|t| s.is_open(t)));
        }
        let open_at = |t: DateTime<Utc>| match (sched, q.schedule.as_deref()) {
            (None, _) | (_, None) => true,
            (Some(s), Some(name)) => match (schedule_bits.get(name), grid.index(t)) {
                (Some(b), Some(i)) => b.get(i),
                _ => s.is_open(t),
            },
        };
        let levels: Vec<LevelAgents> = (0..=q.relax.len())
            .map(|l| LevelAgents::new(&skills.eligible(&required_skills(q, l)), &patterns))
            .collect();
        let judge = |t: DateTime<Utc>| -> (bool, Vec<u32>) {
            let counts = levels
                .iter()
                .map(|l| l.count(&patterns, &grid, t))
                .collect();
            (open_at(t), counts)
        };
        let tz = queue_zone(cfg, q);
        let mut rows = Vec::with_capacity(days as usize);
        let start = first_day(q);
        for d in 0..days {
            let Some(date) = start.checked_add_signed(Duration::days(d)) else {
                break;
            };
            let day = clocks.day(tz, date, opts.interval_min);
            let cells = day_cells(&day, &judge, |t, level| {
                levels
                    .get(level)
                    .map(|l| l.names(&patterns, &grid, t, &ids))
                    .unwrap_or_default()
            });
            rows.push(DayRow {
                date,
                weekday: date.format("%a").to_string(),
                cells,
            });
        }
        let ranges = ranges(&rows, tz, opts.interval_min);
        out.push(QueueCoverage {
            queue: q.name.clone(),
            timezone: tz.name().to_owned(),
            tz,
            interval_min: opts.interval_min,
            levels: (0..=q.relax.len())
                .map(|l| Level {
                    after_s: l
                        .checked_sub(1)
                        .and_then(|i| q.relax.get(i))
                        .map_or(0, |r| r.after_s),
                    skills: required_skills(q, l),
                })
                .collect(),
            days: rows,
            ranges,
        });
    }
    Ok(out)
}

fn status(open: bool, counts: &[u32]) -> Status {
    let first = counts.first().copied().unwrap_or(0);
    let widest = counts.iter().copied().max().unwrap_or(0);
    match () {
        _ if !open => Status::Closed,
        _ if widest == 0 => Status::Gap,
        _ if first == 0 => Status::RelaxOnly,
        _ if first == 1 => Status::Fragile,
        _ => Status::Covered,
    }
}

/// One wall-clock interval start of a local date: its instants (two where
/// the clock repeats) and its UTC label.
#[derive(Debug, Clone)]
struct SlotClock {
    local: String,
    instants: Vec<DateTime<Utc>>,
    start_utc: String,
}

/// The interval starts of every (zone, date), computed once for all the
/// queues in that zone (zone conversions are the costly part).
#[derive(Default)]
struct Clocks(HashMap<(Tz, NaiveDate), std::rc::Rc<Vec<Option<SlotClock>>>>);

impl Clocks {
    fn day(
        &mut self,
        tz: Tz,
        date: NaiveDate,
        interval: u32,
    ) -> std::rc::Rc<Vec<Option<SlotClock>>> {
        self.0
            .entry((tz, date))
            .or_insert_with(|| {
                let Some(midnight) = date.and_hms_opt(0, 0, 0) else {
                    return std::rc::Rc::new(Vec::new());
                };
                let slots = (0..1440 / interval)
                    .map(|i| {
                        let local: NaiveDateTime =
                            midnight + Duration::minutes(i64::from(i * interval));
                        let mapped = tz.from_local_datetime(&local);
                        let instants: Vec<DateTime<Utc>> = [mapped.earliest(), mapped.latest()]
                            .into_iter()
                            .flatten()
                            .map(|t| t.with_timezone(&Utc))
                            .collect::<std::collections::BTreeSet<_>>()
                            .into_iter()
                            .collect();
                        let first = *instants.first()?;
                        Some(SlotClock {
                            local: local.format("%H:%M").to_string(),
                            start_utc: first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            instants,
                        })
                    })
                    .collect();
                std::rc::Rc::new(slots)
            })
            .clone()
    }
}

/// The cells of one local date.
fn day_cells(
    clocks: &[Option<SlotClock>],
    judge: &impl Fn(DateTime<Utc>) -> (bool, Vec<u32>),
    names: impl Fn(DateTime<Utc>, usize) -> Vec<String>,
) -> Vec<Option<Cell>> {
    clocks
        .iter()
        .map(|slot| {
            let slot = slot.as_ref()?;
            let first = *slot.instants.first()?;
            // Where the clock repeats, the worse of the two instants.
            let (at, open, counts, st) = slot
                .instants
                .iter()
                .map(|t| {
                    let (open, counts) = judge(*t);
                    let st = status(open, &counts);
                    (*t, open, counts, st)
                })
                .min_by_key(|(_, _, _, st)| *st)?;
            // Those at the queue's own skills; if none, those a relax
            // step lets in; named only when few enough to list.
            let level = match counts.iter().position(|n| *n > 0) {
                Some(l) if open && counts[l] as usize <= AGENT_LIST_CAP => l,
                _ => usize::MAX,
            };
            let agents = names(at, level);
            Some(Cell {
                local: slot.local.clone(),
                start_utc: slot.start_utc.clone(),
                at: first,
                open,
                eligible: counts,
                agents,
                status: st,
            })
        })
        .collect()
}

fn fmt_local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// Problem stretches (gap, relax-only, fragile) in time order; one range
/// per run of consecutive cells with the same status and agents.
fn ranges(rows: &[DayRow], tz: Tz, interval: u32) -> Vec<Range> {
    let step = Duration::minutes(i64::from(interval));
    let mut out: Vec<Range> = Vec::new();
    for c in rows.iter().flat_map(|d| d.cells.iter().flatten()) {
        if !c.status.is_problem() {
            continue;
        }
        let agents = if c.status == Status::Gap {
            Vec::new()
        } else {
            c.agents.clone()
        };
        if let Some(last) = out.last_mut() {
            if last.status == c.status && last.end == c.at && last.agents == agents {
                last.end = c.at + step;
                continue;
            }
        }
        out.push(Range {
            status: c.status,
            start_local: String::new(),
            end_local: String::new(),
            start_utc: String::new(),
            end_utc: String::new(),
            start: c.at,
            end: c.at + step,
            agents,
        });
    }
    for r in &mut out {
        r.start_local = fmt_local(r.start, tz);
        r.end_local = fmt_local(r.end, tz);
        r.start_utc = r.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        r.end_utc = r.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    }
    out
}
