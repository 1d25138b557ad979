//! sipacd: an automatic call distribution engine for SIP contact centers.
//!
//! Protocol logic lives in sans-IO state machines (`sip::transaction`,
//! `registrar`, `endpoint`, `ivr`, `acd`) that take events plus an explicit
//! `now` and return actions; `daemon` owns the sockets, timers and signals
//! that drive them. A call flows socket → `sip` → `endpoint` → `ivr` →
//! `acd` (queue, agent) → agent leg → `media` bridge → `cdr` record.

pub mod acd;
pub mod admin;
pub mod call;
pub mod cdr;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod endpoint;
pub mod events;
pub mod flood;
pub mod ivr;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod plan;
pub mod registrar;
pub mod sip;
pub mod views;
