//! SIP: message parsing around rsip, transport framing, transactions, dialogs.

pub mod dialog;
pub mod extensions;
pub mod framing;
pub mod headers;
pub mod message;
pub mod name_addr;
pub mod peer;
pub mod session_timer;
pub mod transaction;

pub use peer::{Peer, Transport};
