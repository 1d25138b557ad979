//! The daemon's answers to `/health` and the block list: the writers'
//! failures and both limits' blocked sources, read where they live.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::admin::{BlockedSource, DaemonStatus};
use crate::flood::FloodGate;
use crate::registrar::Registrar;

pub struct Status {
    pub gate: Arc<FloodGate>,
    pub registrar: Option<Arc<Mutex<Registrar>>>,
    pub records: crate::cdr::WriterStatsSource,
    pub registrations: Option<Arc<crate::registrar::WriterStats>>,
}

impl Status {
    fn registrar(&self) -> Option<std::sync::MutexGuard<'_, Registrar>> {
        let r = self.registrar.as_ref()?;
        Some(r.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn secs_up(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl DaemonStatus for Status {
    fn degraded(&self) -> Vec<String> {
        let mut out = Vec::new();
        let w = self.records.read();
        if w.failing {
            let why = self.records.last_error().unwrap_or_default();
            out.push(format!(
                "records: cannot be written ({why}); {} waiting",
                w.pending
            ));
        }
        if let Some(why) = self
            .registrations
            .as_ref()
            .and_then(|r| r.failing_because())
        {
            out.push(format!("registrations: cannot be saved ({why})"));
        }
        out
    }

    fn blocked(&self) -> Vec<BlockedSource> {
        let mut out: Vec<BlockedSource> = self
            .gate
            .blocked(Instant::now())
            .into_iter()
            .map(|(ip, left)| BlockedSource {
                source: ip.to_string(),
                reason: "flood",
                seconds_left: secs_up(left),
            })
            .collect();
        if let Some(r) = self.registrar() {
            out.extend(
                r.blocked_sources(SystemTime::now())
                    .into_iter()
                    .map(|(ip, left)| BlockedSource {
                        source: ip.to_string(),
                        reason: "auth",
                        seconds_left: secs_up(left),
                    }),
            );
        }
        out
    }

    fn unblock(&self, ip: IpAddr) -> bool {
        let flood = self.gate.unblock(ip, Instant::now());
        let auth = self
            .registrar()
            .is_some_and(|mut r| r.unblock_source(ip, SystemTime::now()));
        flood || auth
    }
}
