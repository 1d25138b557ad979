//! The parts of the views that are read off a clock: when a queue's
//! schedule next opens or closes, an agent's local time and shift, and who
//! talks to whom since when. Computed when a view is asked for, never on a
//! call's path.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

use super::{AgentCall, AgentView, CallView, NextOpenChange, ShiftChange};
use crate::config::{Agent, Schedule};

/// `t` as RFC 3339 with `tz`'s offset at that instant, to the second.
pub fn rfc3339_in(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The queue view's `next_change` for schedule `s`.
pub fn next_open_change(s: &Schedule, at: DateTime<Utc>) -> Option<NextOpenChange> {
    s.next_change(at).map(|(open, t)| NextOpenChange {
        open,
        at: rfc3339_in(t, s.timezone),
        timezone: s.timezone.name().to_owned(),
    })
}

/// Fills the agent view's `timezone`, `local_time`, `on_shift` and
/// `shift_next_change` from its configuration.
pub fn fill_agent_clock(view: &mut AgentView, a: &Agent, at: DateTime<Utc>) {
    view.timezone = a.timezone.name().to_owned();
    view.local_time = rfc3339_in(at, a.timezone);
    view.on_shift = a.on_shift(at);
    view.shift_next_change = a.shift_next_change(at).map(|(on_shift, t)| ShiftChange {
        on_shift,
        at: rfc3339_in(t, a.timezone),
    });
}

/// Sets each agent's `call` from the calls it is connected on (calls live
/// on every signalling shard, agents on the first: the daemon joins them).
pub fn attach_calls(agents: &mut [AgentView], calls: &[CallView]) {
    for a in agents.iter_mut() {
        a.call = calls
            .iter()
            .filter(|c| c.state == "connected" && c.agent.as_deref() == Some(a.id.as_str()))
            .filter_map(|c| Some((c, c.answered_ms?)))
            // An agent talks on one call; should two ever show, the newest.
            .max_by_key(|(_, ms)| *ms)
            .map(|(c, ms)| AgentCall {
                id: c.id.clone(),
                caller: c.from.clone(),
                queue: c.queue.clone(),
                since: DateTime::<Utc>::from_timestamp_millis(ms)
                    .unwrap_or_default()
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
                since_ms: ms,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Window;
    use chrono::TimeZone;

    fn utc(h: u32, m: u32) -> DateTime<Utc> {
        // Tuesday 2026-12-01.
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    fn agent(tz: Tz, shift: &[&str]) -> Agent {
        Agent {
            id: "1001".into(),
            name: "Alice".into(),
            credential: None,
            skills: Default::default(),
            timezone: tz,
            shift: shift.iter().map(|w| Window::parse(w).unwrap()).collect(),
            contact: None,
            media_encryption: Default::default(),
        }
    }

    #[test]
    fn agent_clock_in_its_zone() {
        let mut v = AgentView::default();
        let a = agent(chrono_tz::Asia::Jakarta, &["mon-fri 08:00-17:00"]);
        fill_agent_clock(&mut v, &a, utc(9, 30));
        assert_eq!(v.timezone, "Asia/Jakarta");
        assert_eq!(v.local_time, "2026-12-01T16:30:00+07:00");
        assert!(v.on_shift);
        let end = ShiftChange {
            on_shift: false,
            at: "2026-12-01T17:00:00+07:00".into(),
        };
        assert_eq!(v.shift_next_change, Some(end));
        fill_agent_clock(&mut v, &agent(chrono_tz::UTC, &[]), utc(9, 30));
        assert_eq!(v.local_time, "2026-12-01T09:30:00Z");
        assert!(v.on_shift);
        assert_eq!(v.shift_next_change, None);
    }

    #[test]
    fn queue_next_change_in_the_schedules_zone() {
        let s = Schedule {
            timezone: chrono_tz::America::New_York,
            open: vec![Window::parse("mon-fri 09:00-17:00").unwrap()],
            closed_dates: vec![],
        };
        let c = next_open_change(&s, utc(9, 30)).unwrap();
        assert_eq!(
            (c.open, c.at.as_str(), c.timezone.as_str()),
            (true, "2026-12-01T09:00:00-05:00", "America/New_York")
        );
    }

    fn call(id: &str, state: &str, agent: Option<&str>, answered_ms: Option<i64>) -> CallView {
        CallView {
            id: id.into(),
            from: format!("555{id}"),
            state: state.into(),
            queue: Some("support".into()),
            agent: agent.map(Into::into),
            answered_ms,
            ..CallView::default()
        }
    }

    #[test]
    fn agents_get_the_call_they_talk_on() {
        let mut agents = vec![
            AgentView {
                id: "1001".into(),
                ..AgentView::default()
            },
            AgentView {
                id: "1002".into(),
                ..AgentView::default()
            },
        ];
        let calls = [
            call("1", "offered", Some("1002"), None),
            call("2", "connected", Some("1001"), Some(1_764_583_200_000)),
            call("3", "queued", None, None),
        ];
        attach_calls(&mut agents, &calls);
        let on = agents[0].call.as_ref().unwrap();
        assert_eq!(
            (on.id.as_str(), on.caller.as_str(), on.queue.as_deref()),
            ("2", "5552", Some("support"))
        );
        assert_eq!(on.since_ms, 1_764_583_200_000);
        assert_eq!(on.since, "2025-12-01T10:00:00.000Z");
        // Ringing is not talking.
        assert_eq!(agents[1].call, None);
    }
}
