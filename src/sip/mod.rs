//! SIP: message parsing around rsip, transport framing, transactions, dialogs.

pub mod dialog;
pub mod framing;
pub mod headers;
pub mod message;
pub mod name_addr;
pub mod peer;
pub mod transaction;

pub use peer::{Peer, Transport};
