//! When a SIP TCP connection is closed for misbehaving, and how many may be
//! open: the rules only, with `now` passed in; `transport` applies them.
//!
//! * a connection accepted from a peer must deliver a complete message
//!   within `message_timeout` of opening, and every message begun must be
//!   complete within `message_timeout` of its first byte (slowloris);
//! * one with no message for `idle` is closed, unless the registrar holds a
//!   binding reached over it (Kamailio's `tcp_connection_lifetime`); CRLF
//!   keep-alives do not count as messages;
//! * at most `max_per_source` accepted connections per source IP, and
//!   `max_connections` in all, derived from the open-file limit.

use std::time::{Duration, Instant};

/// The limits, from `[server]` (`tcp_*` keys).
#[derive(Debug, Clone, PartialEq)]
pub struct TcpPolicy {
    /// An outbound connect that takes longer fails (its queued messages
    /// are dropped).
    pub connect_timeout: Duration,
    pub max_connections: usize,
    pub max_per_source: usize,
    pub message_timeout: Duration,
    pub idle: Duration,
}

impl Default for TcpPolicy {
    fn default() -> Self {
        TcpPolicy {
            connect_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_per_source: 128,
            message_timeout: Duration::from_secs(10),
            idle: Duration::from_secs(120),
        }
    }
}

/// Why a connection's deadline came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Opened by the peer and no complete message yet.
    NoMessage,
    /// A message begun and not finished in time.
    SlowMessage,
    /// Nothing received for `idle` (closed unless a registration uses it).
    Idle,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::NoMessage => "no complete message after connecting",
            Expiry::SlowMessage => "message not completed in time",
            Expiry::Idle => "idle",
        }
    }
}

/// One connection's timing state.
#[derive(Debug, Clone)]
pub struct ConnClock {
    opened: Instant,
    got_message: bool,
    /// When the bytes of the message being received began to arrive.
    partial_since: Option<Instant>,
    last_message: Instant,
}

impl ConnClock {
    /// A connection the peer opened: it owes us a first message.
    pub fn accepted(now: Instant) -> ConnClock {
        ConnClock {
            opened: now,
            got_message: false,
            partial_since: None,
            last_message: now,
        }
    }

    /// A connection we opened: we spoke first, only idleness applies (and
    /// the slowloris rule to what the peer sends).
    pub fn connected(now: Instant) -> ConnClock {
        ConnClock {
            got_message: true,
            ..ConnClock::accepted(now)
        }
    }

    /// After reading: `messages` complete ones were framed and `partial`
    /// says whether bytes of an unfinished one remain buffered.
    pub fn on_read(&mut self, now: Instant, messages: usize, partial: bool) {
        if messages > 0 {
            self.got_message = true;
            self.last_message = now;
            self.partial_since = None;
        }
        match (partial, self.partial_since) {
            (true, None) => self.partial_since = Some(now),
            (false, _) => self.partial_since = None,
            (true, Some(_)) => {}
        }
    }

    /// A registration uses the connection: idleness starts over.
    pub fn keep(&mut self, now: Instant) {
        self.last_message = now;
    }

    /// The earliest deadline and its reason.
    pub fn deadline(&self, p: &TcpPolicy) -> (Instant, Expiry) {
        let mut best = (self.last_message + p.idle, Expiry::Idle);
        let mut consider = |at: Instant, why| {
            if at < best.0 {
                best = (at, why);
            }
        };
        if !self.got_message {
            consider(self.opened + p.message_timeout, Expiry::NoMessage);
        }
        if let Some(t) = self.partial_since {
            consider(t + p.message_timeout, Expiry::SlowMessage);
        }
        best
    }
}

/// File descriptors kept for what is not a SIP TCP connection: listeners,
/// the call records database and its journal, queue_log, the bindings
/// file, logs, the admin port's connections, and some slack.
pub const FIXED_FDS: u64 = 128;

/// How many SIP TCP connections fit in `open_files` (the soft
/// RLIMIT_NOFILE; None = unlimited) once RTP has its room: two sockets
/// (RTP, RTCP) per port pair, for at most two legs of `max_calls` calls or
/// every pair of the range, whichever is fewer. When that leaves less than
/// a quarter of the descriptors, TCP gets the quarter (calls are then
/// bounded by descriptors first: raise the limit, e.g. `LimitNOFILE`).
pub fn tcp_budget(open_files: Option<u64>, max_calls: usize, rtp_pairs: usize) -> usize {
    let Some(limit) = open_files else {
        return 65_536;
    };
    let rtp = (rtp_pairs as u64).min((max_calls as u64).saturating_mul(2)) * 2;
    let usable = limit.saturating_sub(FIXED_FDS);
    let left = usable.saturating_sub(rtp).max(usable / 4).max(1);
    usize::try_from(left).unwrap_or(usize::MAX).min(65_536)
}

/// How many RTP port pairs (two descriptors each) fit in `open_files`
/// once `tcp_max` connections and [`FIXED_FDS`] have theirs: the most the
/// media task keeps open, parked pairs included (None = unlimited).
pub fn rtp_pairs_left(open_files: Option<u64>, tcp_max: usize) -> usize {
    let Some(limit) = open_files else {
        return usize::MAX;
    };
    let usable = limit.saturating_sub(FIXED_FDS);
    let pairs = usable.saturating_sub(tcp_max as u64) / 2;
    usize::try_from(pairs).unwrap_or(usize::MAX)
}

/// Raises the soft open-file limit to the hard one (as Kamailio's
/// `open_files_limit` and most daemons do) and returns the soft limit now
/// in force; None = unlimited.
pub fn raise_open_files() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let wanted = rustix::process::Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        };
        match setrlimit(Resource::Nofile, wanted) {
            Ok(()) => l = getrlimit(Resource::Nofile),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    l.current
}

/// The policy `[server]` asks for, with `max_connections` derived from
/// `open_files` unless `tcp_max_connections` is set.
pub fn from_config(
    s: &crate::config::ServerConfig,
    open_files: Option<u64>,
    rtp_pairs: usize,
) -> TcpPolicy {
    let secs = Duration::from_secs;
    TcpPolicy {
        connect_timeout: secs(s.tcp_connect_timeout_s),
        max_connections: s
            .tcp_max_connections
            .unwrap_or_else(|| tcp_budget(open_files, s.max_calls, rtp_pairs)),
        max_per_source: s.tcp_max_per_source,
        message_timeout: secs(s.tcp_message_timeout_s),
        idle: secs(s.tcp_idle_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TcpPolicy {
        TcpPolicy {
            message_timeout: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            ..TcpPolicy::default()
        }
    }

    #[test]
    fn an_accepted_connection_owes_a_first_message() {
        let t0 = Instant::now();
        let mut c = ConnClock::accepted(t0);
        assert_eq!(
            c.deadline(&policy()),
            (t0 + Duration::from_secs(10), Expiry::NoMessage)
        );
        // CRLF keep-alives (no message, nothing partial) change nothing.
        c.on_read(t0 + Duration::from_secs(5), 0, false);
        assert_eq!(c.deadline(&policy()).1, Expiry::NoMessage);
        let t1 = t0 + Duration::from_secs(6);
        c.on_read(t1, 1, false);
        assert_eq!(
            c.deadline(&policy()),
            (t1 + Duration::from_secs(120), Expiry::Idle)
        );
    }

    #[test]
    fn a_slow_message_is_timed_from_its_first_byte() {
        let t0 = Instant::now();
        let mut c = ConnClock::connected(t0);
        assert_eq!(c.deadline(&policy()).1, Expiry::Idle);
        let t1 = t0 + Duration::from_secs(30);
        c.on_read(t1, 0, true);
        // More bytes of the same message do not push the deadline.
        c.on_read(t1 + Duration::from_secs(9), 0, true);
        assert_eq!(
            c.deadline(&policy()),
            (t1 + Duration::from_secs(10), Expiry::SlowMessage)
        );
        // Finished, with the next one begun in the same read.
        let t2 = t1 + Duration::from_secs(9);
        c.on_read(t2, 1, true);
        assert_eq!(
            c.deadline(&policy()),
            (t2 + Duration::from_secs(10), Expiry::SlowMessage)
        );
        c.on_read(t2 + Duration::from_secs(1), 1, false);
        assert_eq!(c.deadline(&policy()).1, Expiry::Idle);
    }

    #[test]
    fn a_registration_keeps_an_idle_connection() {
        let t0 = Instant::now();
        let mut c = ConnClock::connected(t0);
        let t1 = t0 + Duration::from_secs(120);
        assert_eq!(c.deadline(&policy()), (t1, Expiry::Idle));
        c.keep(t1);
        assert_eq!(
            c.deadline(&policy()),
            (t1 + Duration::from_secs(120), Expiry::Idle)
        );
    }

    #[test]
    fn the_tcp_budget_leaves_room_for_rtp_and_files() {
        // 65536 descriptors, 5000 calls, 5000 pairs: RTP keeps 10000.
        assert_eq!(tcp_budget(Some(65_536), 5000, 5000), 65_536 - 128 - 10_000);
        // Few calls: RTP needs only 4 per call.
        assert_eq!(tcp_budget(Some(4096), 10, 5000), 4096 - 128 - 40);
        // The shell's 1024 with a large range: TCP still gets a quarter.
        assert_eq!(tcp_budget(Some(1024), 5000, 5000), (1024 - 128) / 4);
        assert_eq!(tcp_budget(Some(10), 1, 1), 1);
        assert_eq!(tcp_budget(None, 1, 1), 65_536);
    }

    #[test]
    fn rtp_gets_what_tcp_and_files_leave() {
        // The bench box: 20,000 descriptors, a range of 10,000 pairs that
        // would need all of them; TCP keeps its quarter.
        let tcp = tcp_budget(Some(20_000), 5000, 10_000);
        assert_eq!(tcp, (20_000 - 128) / 4);
        assert_eq!(rtp_pairs_left(Some(20_000), tcp), (20_000 - 128 - tcp) / 2);
        assert_eq!(rtp_pairs_left(Some(100), 1000), 0);
        assert_eq!(rtp_pairs_left(None, 1000), usize::MAX);
    }
}
