//! Limits per source against request floods: a density limiter in the
//! spirit of Kamailio's pike (`pike`), the gate the socket readers ask
//! before parsing (`gate`), and the cap on calls in setup per source
//! (`setup`). See "Floods" in `docs/sip-behaviour.md`.

mod gate;
mod pike;
mod setup;

pub use gate::{FloodGate, FloodStats};
pub use pike::{Pike, PikeConfig, Verdict, MAX_BLOCK_DOUBLINGS, MAX_SOURCES};
pub use setup::SetupCounts;
