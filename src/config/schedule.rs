//! Opening hours: weekly windows in a named time zone plus closed dates.
//!
//! Windows compare the *local wall clock* of the zone, so a DST change moves
//! the UTC instants of "08:00" but never the meaning of the window. A window
//! whose end is not after its start crosses midnight and belongs to the day it
//! starts: `fri 22:00-06:00` is Friday 22:00 to Saturday 06:00, and a closed
//! date closes the windows that *start* on it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Offset, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use std::fmt;

/// Day names in the order of `Weekday::num_days_from_monday`.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One weekly window such as `mon-fri 08:00-20:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit `n` set = the window starts on day `n` (0 = Monday).
    pub days: u8,
    /// Minutes after local midnight, 0..1440.
    pub start_min: u16,
    /// Minutes after local midnight, 1..=1440; `<= start_min` crosses midnight.
    pub end_min: u16,
}

impl Window {
    /// Whether the window starts on `day`.
    pub fn starts_on(&self, day: Weekday) -> bool {
        self.days & (1 << day.num_days_from_monday()) != 0
    }

    /// True when the window runs past midnight into the next day.
    pub fn crosses_midnight(&self) -> bool {
        self.end_min <= self.start_min
    }

    /// Parses `DAYS HH:MM-HH:MM` where DAYS is a comma list of days or
    /// ranges (`mon-fri`, `sat`, `sun-tue` wraps, `mon,wed-thu`). Without
    /// DAYS the window applies every day. `24:00` is allowed as an end.
    pub fn parse(s: &str) -> Result<Window, String> {
        let mut parts = s.split_whitespace();
        let (days_s, times_s) = match (parts.next(), parts.next(), parts.next()) {
            (Some(t), None, None) => (None, t),
            (Some(d), Some(t), None) => (Some(d), t),
            _ => return Err(format!("window `{s}` must look like `mon-fri 08:00-20:00`")),
        };
        let days = match days_s {
            None => 0x7f,
            Some(d) => parse_days(d)?,
        };
        let (a, b) = times_s
            .split_once('-')
            .ok_or_else(|| format!("time range `{times_s}` must look like `08:00-20:00`"))?;
        let start_min = parse_hhmm(a, false)?;
        let end_min = parse_hhmm(b, true)?;
        if start_min == end_min {
            return Err(format!("window `{s}` is empty (start equals end)"));
        }
        Ok(Window {
            days,
            start_min,
            end_min,
        })
    }

    /// Whether local weekday `day` at minute `minute` falls in the window,
    /// where `date_closed(offset)` says whether the window's start day
    /// (today = 0, yesterday = 1) is a closed date.
    fn contains(&self, day: Weekday, minute: u16, date_closed: impl Fn(u8) -> bool) -> bool {
        if self.crosses_midnight() {
            (self.starts_on(day) && minute >= self.start_min && !date_closed(0))
                || (self.starts_on(day.pred()) && minute < self.end_min && !date_closed(1))
        } else {
            self.starts_on(day)
                && minute >= self.start_min
                && minute < self.end_min
                && !date_closed(0)
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = DAYS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.days & (1 << i) != 0)
            .map(|(_, d)| *d)
            .collect();
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02}",
            names.join(","),
            self.start_min / 60,
            self.start_min % 60,
            self.end_min / 60,
            self.end_min % 60
        )
    }
}

fn parse_day(s: &str) -> Result<usize, String> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| *d == lower)
        .ok_or_else(|| format!("unknown day `{s}` (use mon, tue, wed, thu, fri, sat, sun)"))
}

fn parse_days(s: &str) -> Result<u8, String> {
    let mut mask = 0u8;
    for item in s.split(',') {
        match item.split_once('-') {
            None => mask |= 1 << parse_day(item)?,
            Some((a, b)) => {
                let (mut i, end) = (parse_day(a)?, parse_day(b)?);
                // Walk forward so `sun-tue` wraps over the week's end.
                loop {
                    mask |= 1 << i;
                    if i == end {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
        }
    }
    Ok(mask)
}

/// Parses `HH:MM` into minutes after midnight; `24:00` only if `allow_24`.
pub fn parse_hhmm(s: &str, allow_24: bool) -> Result<u16, String> {
    let bad = || format!("time `{s}` must be HH:MM (00:00 to 23:59)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if allow_24 && h == 24 && m == 0 {
        return Ok(1440);
    }
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Whether any of `windows` is open at `at`, read on the wall clock of `tz`.
/// Used for agents' shifts (no closed dates).
pub fn windows_open(windows: &[Window], tz: Tz, at: DateTime<Utc>) -> bool {
    open_at(windows, &[], tz, at)
}

fn open_at(windows: &[Window], closed: &[NaiveDate], tz: Tz, at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&tz);
    let today = local.date_naive();
    let minute = (local.hour() * 60 + local.minute()) as u16;
    let date_closed = |back: u8| {
        let day = if back == 0 {
            Some(today)
        } else {
            today.pred_opt()
        };
        day.is_some_and(|d| closed.contains(&d))
    };
    windows
        .iter()
        .any(|w| w.contains(local.weekday(), minute, date_closed))
}

/// Days looked ahead for the next change past the last closed date: a
/// weekly schedule that has not changed in this long never will.
const LOOKAHEAD_DAYS: i64 = 8;
/// No answer past this (a year of closed dates, or a zone gone wrong).
const MAX_LOOKAHEAD_DAYS: i64 = 400;

/// When `windows` (less `closed` dates) next turn from open to closed or
/// back, strictly after `at`: the state they turn to and the instant.
/// `None` when they never change (always open, never open).
///
/// The state only depends on the local date and minute, so it can only
/// change where the local clock reaches a window's start or end, or where
/// the zone's offset jumps (a window starting in the hour skipped in spring
/// opens at the jump). Those instants are the candidates; the first one
/// whose state differs from now is the change. Computed when asked (a view),
/// never on a call's path.
pub fn next_change(
    windows: &[Window],
    closed: &[NaiveDate],
    tz: Tz,
    at: DateTime<Utc>,
) -> Option<(bool, DateTime<Utc>)> {
    if windows.is_empty() {
        return None;
    }
    let now_open = open_at(windows, closed, tz, at);
    let today = at.with_timezone(&tz).date_naive();
    let last_closed = closed
        .iter()
        .map(|d| (*d - today).num_days())
        .max()
        .unwrap_or(0)
        .max(0);
    let horizon = (last_closed + LOOKAHEAD_DAYS).min(MAX_LOOKAHEAD_DAYS);
    // A week first: the usual answer is in it, and it costs a few dozen
    // candidates; only closed dates ahead make the rest worth looking at.
    let first = LOOKAHEAD_DAYS.min(horizon);
    let mut candidates = Vec::new();
    for (from, to) in [(-1, first), (first, horizon)] {
        for offset in from..to {
            if let Some(day) = today.checked_add_signed(Duration::days(offset)) {
                day_candidates(windows, tz, day, &mut candidates);
            }
        }
        // Candidates of later days all come after this (no zone is more
        // than 14 hours ahead of UTC): those before it are complete.
        let bound = today
            .checked_add_signed(Duration::days(to))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|m| m.and_utc() - Duration::hours(14))
            .filter(|_| to < horizon);
        candidates.retain(|t| *t > at);
        candidates.sort_unstable();
        candidates.dedup();
        let settled = candidates
            .iter()
            .take_while(|t| bound.is_none_or(|b| **t < b));
        if let Some(t) = settled
            .copied()
            .find(|t| open_at(windows, closed, tz, *t) != now_open)
        {
            return Some((!now_open, t));
        }
        if let Some(b) = bound {
            candidates.retain(|t| *t >= b);
        }
    }
    None
}

/// The instants on local `day` where `windows` may change: the starts and
/// ends of the windows starting that day, and the zone's offset change.
fn day_candidates(windows: &[Window], tz: Tz, day: NaiveDate, out: &mut Vec<DateTime<Utc>>) {
    let Some(midnight) = day.and_hms_opt(0, 0, 0) else {
        return;
    };
    for w in windows.iter().filter(|w| w.starts_on(day.weekday())) {
        let start = midnight + Duration::minutes(i64::from(w.start_min));
        let end_day = if w.crosses_midnight() { 1 } else { 0 };
        let end = midnight + Duration::days(end_day) + Duration::minutes(i64::from(w.end_min));
        for local in [start, end] {
            // A time the clock repeats is both instants; one it skips is
            // none (the offset change below stands for it).
            let mapped = tz.from_local_datetime(&local);
            out.extend(mapped.earliest().map(|t| t.with_timezone(&Utc)));
            out.extend(mapped.latest().map(|t| t.with_timezone(&Utc)));
        }
    }
    out.extend(offset_change(tz, midnight.and_utc() - Duration::hours(14)));
}

/// The instant within the 24 hours from `from` where `tz`'s offset
/// changes, to the second; `None` if it does not.
fn offset_change(tz: Tz, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let (mut lo, mut hi) = (from, from + Duration::days(1));
    let before = offset(lo);
    if offset(hi) == before {
        return None;
    }
    // Invariant: offset(lo) == before != offset(hi).
    while hi - lo > Duration::seconds(1) {
        let mid = lo + (hi - lo) / 2;
        if offset(mid) == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// Business hours, reusable by name from queues and IVR `schedule` nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub timezone: Tz,
    pub open: Vec<Window>,
    /// Holidays: no window that starts on these local dates opens.
    pub closed_dates: Vec<NaiveDate>,
}

impl Schedule {
    /// Whether the schedule is open at the UTC instant `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        open_at(&self.open, &self.closed_dates, self.timezone, at)
    }

    /// When the schedule next opens or closes after `at` (see
    /// [`next_change`]).
    pub fn next_change(&self, at: DateTime<Utc>) -> Option<(bool, DateTime<Utc>)> {
        next_change(&self.open, &self.closed_dates, self.timezone, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn sched(tz: Tz, open: &[&str]) -> Schedule {
        Schedule {
            timezone: tz,
            open: open.iter().map(|s| Window::parse(s).unwrap()).collect(),
            closed_dates: vec![],
        }
    }

    #[test]
    fn parses_days_and_times() {
        let w = Window::parse("mon-fri 08:00-20:00").unwrap();
        assert_eq!(w.days, 0b0011111);
        assert_eq!((w.start_min, w.end_min), (480, 1200));
        assert_eq!(Window::parse("sat 09:00-13:00").unwrap().days, 0b0100000);
        // sun-tue wraps: sun, mon, tue
        assert_eq!(
            Window::parse("sun-tue 09:00-13:00").unwrap().days,
            0b1000011
        );
        assert_eq!(
            Window::parse("mon,wed-thu 09:00-10:00").unwrap().days,
            0b0001101
        );
        assert_eq!(Window::parse("00:00-24:00").unwrap().days, 0x7f);
        assert_eq!(Window::parse("00:00-24:00").unwrap().end_min, 1440);
        assert_eq!(
            Window::parse("mon-fri 08:00-20:00").unwrap().to_string(),
            "mon,tue,wed,thu,fri 08:00-20:00"
        );
    }

    #[test]
    fn rejects_bad_windows() {
        for bad in [
            "mon-fry 08:00-20:00",
            "mon 8:00-20:00",
            "mon 08:00-24:01",
            "mon 24:00-01:00",
            "mon 08:60-09:00",
            "mon 08:00",
            "mon 08:00-08:00",
            "mon tue 08:00-09:00",
            "",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn plain_window_in_zone() {
        let s = sched(chrono_tz::Asia::Jakarta, &["mon-fri 08:00-20:00"]);
        // Jakarta is UTC+7. Mon 2026-03-02 00:59 UTC = 07:59 local: closed.
        assert!(!s.is_open(utc(2026, 3, 2, 0, 59)));
        assert!(s.is_open(utc(2026, 3, 2, 1, 0)));
        assert!(s.is_open(utc(2026, 3, 2, 12, 59)));
        assert!(!s.is_open(utc(2026, 3, 2, 13, 0)));
        // Sat 2026-03-07 10:00 local
        assert!(!s.is_open(utc(2026, 3, 7, 3, 0)));
    }

    #[test]
    fn midnight_crossing_belongs_to_start_day() {
        let s = sched(chrono_tz::UTC, &["fri 22:00-06:00"]);
        // 2026-03-06 is a Friday.
        assert!(!s.is_open(utc(2026, 3, 6, 21, 59)));
        assert!(s.is_open(utc(2026, 3, 6, 22, 0)));
        assert!(s.is_open(utc(2026, 3, 7, 5, 59))); // Saturday morning
        assert!(!s.is_open(utc(2026, 3, 7, 6, 0)));
        assert!(!s.is_open(utc(2026, 3, 7, 22, 30))); // Saturday night: no
        assert!(!s.is_open(utc(2026, 3, 6, 3, 0))); // Friday early morning: no (Thu not listed)
    }

    #[test]
    fn closed_dates_close_windows_starting_that_day() {
        let mut s = sched(
            chrono_tz::UTC,
            &["mon-sun 22:00-06:00", "mon-sun 09:00-17:00"],
        );
        s.closed_dates = vec![NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()];
        assert!(!s.is_open(utc(2026, 12, 25, 10, 0)));
        assert!(!s.is_open(utc(2026, 12, 25, 23, 0)));
        // The night shift that started on the 24th still runs into the 25th.
        assert!(s.is_open(utc(2026, 12, 25, 2, 0)));
        // ...and the one starting on the 25th is closed on the 26th.
        assert!(!s.is_open(utc(2026, 12, 26, 2, 0)));
        assert!(s.is_open(utc(2026, 12, 26, 10, 0)));
    }

    #[test]
    fn berlin_dst_keeps_wall_clock() {
        let s = sched(chrono_tz::Europe::Berlin, &["mon-sun 08:00-17:00"]);
        // Sun 2026-03-29 02:00 CET -> 03:00 CEST. Before: UTC+1, after: UTC+2.
        assert!(s.is_open(utc(2026, 3, 28, 7, 0))); // 08:00 CET
        assert!(!s.is_open(utc(2026, 3, 28, 6, 59)));
        assert!(s.is_open(utc(2026, 3, 29, 6, 0))); // 08:00 CEST
        assert!(!s.is_open(utc(2026, 3, 29, 5, 59)));
        assert!(!s.is_open(utc(2026, 3, 29, 15, 0))); // 17:00 CEST
                                                      // Autumn: 2026-10-25 03:00 CEST -> 02:00 CET.
        assert!(s.is_open(utc(2026, 10, 25, 7, 0))); // 08:00 CET
        assert!(!s.is_open(utc(2026, 10, 25, 6, 30))); // 07:30 CET
    }

    #[test]
    fn berlin_window_inside_the_skipped_hour() {
        // 02:00-03:00 does not exist on the spring-forward day: closed all along.
        let s = sched(chrono_tz::Europe::Berlin, &["sun 02:00-03:00"]);
        assert!(!s.is_open(utc(2026, 3, 29, 0, 59))); // 01:59 CET
        assert!(!s.is_open(utc(2026, 3, 29, 1, 0))); // 03:00 CEST
                                                     // A week later it is an ordinary hour.
        assert!(s.is_open(utc(2026, 4, 5, 0, 30))); // 02:30 CEST
    }

    #[test]
    fn new_york_dst_and_overnight_shift() {
        // US DST starts Sun 2026-03-08 02:00 EST -> 03:00 EDT.
        let shift = [Window::parse("sat 22:00-06:00").unwrap()];
        let ny = chrono_tz::America::New_York;
        // Sat 2026-03-07 22:00 EST = 03:00 UTC Sunday.
        assert!(windows_open(&shift, ny, utc(2026, 3, 8, 3, 0)));
        assert!(!windows_open(&shift, ny, utc(2026, 3, 8, 2, 59)));
        // Sun 05:59 EDT = 09:59 UTC, 06:00 EDT = 10:00 UTC.
        assert!(windows_open(&shift, ny, utc(2026, 3, 8, 9, 59)));
        assert!(!windows_open(&shift, ny, utc(2026, 3, 8, 10, 0)));
        // In winter 06:00 EST is 11:00 UTC.
        assert!(windows_open(&shift, ny, utc(2026, 1, 4, 10, 30)));
        assert!(!windows_open(&shift, ny, utc(2026, 1, 4, 11, 0)));
    }

    fn change(s: &Schedule, at: DateTime<Utc>) -> Option<(bool, DateTime<Utc>)> {
        s.next_change(at)
    }

    #[test]
    fn next_change_opens_and_closes_in_zone() {
        let s = sched(chrono_tz::Asia::Jakarta, &["mon-fri 08:00-20:00"]);
        // Mon 2026-03-02 07:00 local: opens at 08:00 local = 01:00 UTC.
        assert_eq!(
            change(&s, utc(2026, 3, 2, 0, 0)),
            Some((true, utc(2026, 3, 2, 1, 0)))
        );
        assert_eq!(
            change(&s, utc(2026, 3, 2, 1, 0)),
            Some((false, utc(2026, 3, 2, 13, 0)))
        );
        // Friday evening: next Monday morning.
        assert_eq!(
            change(&s, utc(2026, 3, 6, 13, 30)),
            Some((true, utc(2026, 3, 9, 1, 0)))
        );
        let night = sched(chrono_tz::UTC, &["fri 22:00-06:00"]);
        assert_eq!(
            change(&night, utc(2026, 3, 7, 3, 0)),
            Some((false, utc(2026, 3, 7, 6, 0)))
        );
    }

    #[test]
    fn next_change_skips_closed_dates_and_never_changing_schedules() {
        let mut s = sched(chrono_tz::UTC, &["mon-sun 09:00-17:00"]);
        s.closed_dates = vec![NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()];
        assert_eq!(
            change(&s, utc(2026, 12, 24, 18, 0)),
            Some((true, utc(2026, 12, 26, 9, 0)))
        );
        // Three closed weeks: past the first week looked at.
        s.closed_dates = (1..=21)
            .map(|d| NaiveDate::from_ymd_opt(2026, 8, d).unwrap())
            .collect();
        assert_eq!(
            change(&s, utc(2026, 7, 31, 18, 0)),
            Some((true, utc(2026, 8, 22, 9, 0)))
        );
        assert_eq!(
            change(
                &sched(chrono_tz::UTC, &["00:00-24:00"]),
                utc(2026, 1, 1, 0, 0)
            ),
            None
        );
        assert_eq!(
            change(&sched(chrono_tz::UTC, &[]), utc(2026, 1, 1, 0, 0)),
            None
        );
        assert_eq!(
            next_change(&[], &[], chrono_tz::UTC, utc(2026, 1, 1, 0, 0)),
            None
        );
    }

    #[test]
    fn next_change_across_berlin_dst() {
        // Spring: 02:30 does not exist on 2026-03-29; the window opens
        // when the clock jumps to 03:00 CEST (01:00 UTC).
        let s = sched(chrono_tz::Europe::Berlin, &["sun 02:30-04:00"]);
        assert_eq!(
            change(&s, utc(2026, 3, 29, 0, 0)),
            Some((true, utc(2026, 3, 29, 1, 0)))
        );
        // Autumn: 01:00-02:30 runs twice around 02:00 CEST -> 02:00 CET.
        let s = sched(chrono_tz::Europe::Berlin, &["sun 01:00-02:30"]);
        assert_eq!(
            change(&s, utc(2026, 10, 25, 0, 31)),
            Some((true, utc(2026, 10, 25, 1, 0)))
        );
        assert_eq!(
            change(&s, utc(2026, 10, 25, 1, 0)),
            Some((false, utc(2026, 10, 25, 1, 30)))
        );
    }

    /// The candidates against a walk minute by minute.
    #[test]
    fn next_change_matches_a_minute_walk() {
        let cases = [
            sched(
                chrono_tz::Europe::Berlin,
                &["mon-fri 08:00-17:00", "sat 22:00-02:30", "sun 02:15-03:10"],
            ),
            sched(
                chrono_tz::America::New_York,
                &["sat 22:00-06:00", "tue 00:00-24:00"],
            ),
            sched(chrono_tz::Asia::Kolkata, &["mon,wed,fri 09:30-18:45"]),
        ];
        let starts = [
            utc(2026, 3, 27, 10, 0),
            utc(2026, 3, 7, 20, 0),
            utc(2026, 10, 24, 23, 7),
            utc(2026, 11, 1, 3, 0),
        ];
        for s in &cases {
            for at in starts {
                let open = s.is_open(at);
                let walked = (1..=60 * 24 * 9)
                    .map(|m| at + Duration::minutes(m))
                    .find(|t| s.is_open(*t) != open)
                    .map(|t| (!open, t));
                assert_eq!(change(s, at), walked, "{:?} at {at}", s.open);
            }
        }
    }
}
