//! Media: SDP offer/answer, RTP port allocation and the sans-IO RTP engine
//! (G.711, prompts, pacing, DTMF, relaying between two legs).

pub mod dtmf;
pub mod event;
pub mod g711;
pub mod pacer;
pub mod ports;
pub mod prompt;
pub mod relay;
pub mod sdp;
pub mod session;

pub use g711::Codec;
pub use ports::{PortPair, PortPool};
pub use sdp::{answer, Direction, SdpError, SdpOffer};
