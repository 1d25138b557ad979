//! The standard `process_*` series, read from `/proc/self` at scrape time
//! (Linux only: elsewhere, and when `/proc` cannot be read, the series are
//! left out rather than reported as zeros).

use std::path::Path;

/// What one scrape read about the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit; `None` when unlimited.
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// `USER_HZ`: the unit of the times in `/proc/PID/stat`. The kernel fixes
/// it at 100 for user space on every architecture Linux supports.
const TICKS_PER_SECOND: f64 = 100.0;

impl ProcessStats {
    /// Reads `/proc/self`; `None` where there is no such thing.
    pub fn read() -> Option<ProcessStats> {
        let proc = Path::new("/proc");
        let stat = std::fs::read_to_string(proc.join("self/stat")).ok()?;
        let status = std::fs::read_to_string(proc.join("self/status")).ok()?;
        let limits = std::fs::read_to_string(proc.join("self/limits")).ok()?;
        let boot = std::fs::read_to_string(proc.join("stat")).ok()?;
        let open_fds = std::fs::read_dir(proc.join("self/fd")).ok()?.count() as u64;
        let (ticks, start_ticks) = parse_stat(&stat)?;
        Some(ProcessStats {
            cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
            resident_bytes: status_kib(&status, "VmRSS:")? * 1024,
            virtual_bytes: status_kib(&status, "VmSize:")? * 1024,
            open_fds,
            max_fds: parse_max_fds(&limits)?,
            start_time_seconds: parse_btime(&boot)? as f64 + start_ticks as f64 / TICKS_PER_SECOND,
        })
    }
}

/// (utime + stime, starttime) in ticks from `/proc/PID/stat`. The command
/// name (field 2) may hold spaces and parentheses: fields are counted from
/// its last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): field N is rest[N - 3].
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(22)?))
}

/// A `Name:   1234 kB` line of `/proc/PID/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft `Max open files` of `/proc/PID/limits`: `Some(None)` when
/// unlimited.
fn parse_max_fds(limits: &str) -> Option<Option<u64>> {
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(None);
    }
    soft.parse().ok().map(Some)
}

/// Boot time (Unix seconds) from `/proc/stat`.
fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis in it.
        let stat = "4242 (sip acd) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 104857600 2048 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((325, 123456)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_limits_and_boot_time() {
        let status = "Name:\tsipacd\nVmSize:\t  102400 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(8192));
        assert_eq!(status_kib(status, "VmSize:"), Some(102400));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(Some(1024)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), Some(None));
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1764547200\nprocesses 9\n"),
            Some(1764547200)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read().unwrap();
        assert!(
            p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes,
            "{p:?}"
        );
        assert!(p.open_fds >= 3, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started within the last day, not in the future (a tick's slack).
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86400.0,
            "{p:?}"
        );
    }
}
