//! Media: SDP offer/answer and RTP port allocation. The RTP engine itself
//! (prompts, music, DTMF, bridging) builds on these.

pub mod ports;
pub mod sdp;

pub use ports::{PortPair, PortPool};
pub use sdp::{answer, Direction, SdpError, SdpOffer};
