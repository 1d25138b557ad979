//! Media: SDP offer/answer, RTP port allocation and the sans-IO RTP engine
//! (G.711, prompts, pacing, DTMF, relaying between two legs).
//!
//! A driver owns the sockets and, per call, one [`Leg`] per call leg: it
//! feeds datagrams to `Leg::on_rtp`/`relay_to` (RTCP to `relay_rtcp_to`),
//! sends what `poll_rtp` writes to `Leg::remote()` and what `poll_rtcp`
//! writes to `Leg::rtcp_remote()` (both through `Leg::run_timers`), keeps
//! each leg's `next_deadline()` in a [`Deadlines`] heap and sleeps until the
//! earliest, and hands `poll_event()` results (digits, prompt ends) to the
//! call logic.

pub mod crypto_attr;
pub mod deadlines;
pub mod dtmf;
pub mod event;
pub mod g711;
pub mod latch;
pub mod mixer;
pub mod pacer;
pub mod ports;
pub mod prompt;
pub mod record_align;
pub mod relay;
pub mod rtcp;
pub mod sdp;
pub mod session;
pub mod srtp;
pub mod wav_out;

pub use deadlines::Deadlines;
pub use dtmf::{DtmfEvent, DtmfSource};
pub use event::MediaEvent;
pub use g711::Codec;
pub use mixer::{Mixer, MonitorMode, Party};
pub use pacer::{Pacer, PacerConfig, Source};
pub use ports::{out_of_fds, PortPair, PortPool};
pub use prompt::{Prompt, PromptCache, PromptError};
pub use relay::{LegParams, RelayStats};
pub use sdp::{answer, Direction, SdpError, SdpOffer};
pub use session::{Leg, Outgoing};
