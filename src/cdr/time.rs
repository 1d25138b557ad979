//! `--since`/`--until` and `?since=`/`?until=` values, and bucket labels.

use super::record::UnixMs;
use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad time `{0}`: use RFC 3339 (2026-05-01T08:00:00Z), `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`, `today`, `yesterday` or Unix seconds")]
pub struct TimeParseError(pub String);

/// Parses a time given by a person. Dates and times without an offset are in
/// `tz` (the daemon's `server.timezone`); a bare date means its midnight, so
/// `--since yesterday --until today` is exactly yesterday.
pub fn parse_time(s: &str, tz: Tz, now: DateTime<Utc>) -> Result<UnixMs, TimeParseError> {
    let err = || TimeParseError(s.to_owned());
    let s = s.trim();
    let today = now.with_timezone(&tz).date_naive();
    let date = match s {
        "now" => return Ok(now.timestamp_millis()),
        "today" => Some(today),
        "yesterday" => Some(today.checked_sub_days(Days::new(1)).ok_or_else(err)?),
        _ => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
    };
    if let Some(d) = date {
        return local_ms(tz, d.and_hms_opt(0, 0, 0).ok_or_else(err)?).ok_or_else(err);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return local_ms(tz, n).ok_or_else(err);
        }
    }
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1000).ok_or_else(err);
    }
    Err(err())
}

/// A local wall time; in a DST gap it does not exist (None), in an overlap
/// the earlier instant is taken.
fn local_ms(tz: Tz, n: NaiveDateTime) -> Option<UnixMs> {
    match tz.from_local_datetime(&n) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.timestamp_millis()),
        LocalResult::None => None,
    }
}

/// RFC 3339 in UTC with milliseconds, for exports.
pub(crate) fn rfc3339(ms: UnixMs) -> String {
    match Utc.timestamp_millis_opt(ms) {
        LocalResult::Single(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        _ => ms.to_string(),
    }
}

/// The local start of the hour or day that `ms` falls in, as a label.
pub(crate) fn bucket_label(ms: UnixMs, tz: Tz, by_hour: bool) -> String {
    let t = match Utc.timestamp_millis_opt(ms) {
        LocalResult::Single(t) => t.with_timezone(&tz),
        _ => return ms.to_string(),
    };
    if by_hour {
        t.format("%Y-%m-%d %H:00").to_string()
    } else {
        t.format("%Y-%m-%d").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_people_type() {
        let tz: Tz = chrono_tz::Asia::Jakarta; // UTC+7, no DST
        let now = Utc.with_ymd_and_hms(2026, 5, 2, 3, 0, 0).unwrap(); // 10:00 local
        let day = |y, m, d, h| {
            Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
                .unwrap()
                .timestamp_millis()
        };
        // Local midnight of 2026-05-02 is 17:00 UTC the day before.
        assert_eq!(parse_time("today", tz, now), Ok(day(2026, 5, 1, 17)));
        assert_eq!(parse_time("yesterday", tz, now), Ok(day(2026, 4, 30, 17)));
        assert_eq!(parse_time("2026-05-01", tz, now), Ok(day(2026, 4, 30, 17)));
        assert_eq!(
            parse_time("2026-05-01 08:00", tz, now),
            Ok(day(2026, 5, 1, 1))
        );
        assert_eq!(
            parse_time("2026-05-01T08:00:00Z", tz, now),
            Ok(day(2026, 5, 1, 8))
        );
        assert_eq!(parse_time("1777593600", tz, now), Ok(1_777_593_600_000));
        assert!(parse_time("last tuesday", tz, now).is_err());
        assert_eq!(
            bucket_label(day(2026, 5, 1, 1), tz, true),
            "2026-05-01 08:00"
        );
        assert_eq!(bucket_label(day(2026, 4, 30, 17), tz, false), "2026-05-01");
    }
}
