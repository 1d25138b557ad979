//! SIP transactions (RFC 3261 §17) as sans-IO state machines.
//!
//! [`TransactionLayer`] is fed received messages and the current time; it
//! never touches a socket or a clock. Output style, used throughout:
//!
//! * an input method returns the one event it caused directly
//!   (`on_request` -> `Option<ServerEvent>`, `on_response` -> `Option<ClientEvent>`);
//! * messages to put on the wire are queued and drained with `poll_transmit`;
//! * timer expiries (`handle_timeout`) may cause several events, which are
//!   queued and drained with `poll_event`;
//! * the driver sleeps until `poll_timeout`.
//!
//! 2xx responses to INVITE are retransmitted by the layer itself (a
//! [`Uas2xxRetransmitter`] inside it) until the ACK arrives; that is the UAS
//! core's job in RFC 3261 but we are only ever a UA, so it lives here.

mod budget;
mod client_invite;
mod client_non_invite;
mod key;
mod layer;
mod messages;
mod server_invite;
mod server_non_invite;
mod timers;
mod uas2xx;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_repeat;

pub use budget::TxBudget;
pub use key::{Side, TxKey, MAGIC_COOKIE};
pub use layer::{ClientEvent, ServerEvent, TransactionLayer, TxEvent};
pub use messages::{build_ack, build_cancel, new_branch};
pub use timers::{TimerConfig, TimerKind, T1, T2, T4, TIMER_D};
pub(crate) use uas2xx::ack_ids;
pub use uas2xx::{Uas2xxEvent, Uas2xxRetransmitter};

use crate::sip::Peer;

/// A message the driver must send to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub wire: Wire,
}

/// A message serialised once for the wire: what a transaction keeps to
/// send again (a retransmission is a reference count, not a clone of the
/// parsed message and a new serialisation), with what the counters need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub bytes: bytes::Bytes,
    pub kind: WireKind,
}

/// What a [`Wire`] message is, for the traffic counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireKind {
    Request(rsip::Method),
    /// A response's code and its CSeq method (`None` without a usable CSeq).
    Response {
        code: u16,
        method: Option<rsip::Method>,
    },
}

impl Wire {
    pub fn of(msg: &rsip::SipMessage) -> Wire {
        match msg {
            rsip::SipMessage::Request(r) => Wire::of_request(r),
            rsip::SipMessage::Response(r) => Wire::of_response(r),
        }
    }

    /// A request's bytes, from a borrow: what is kept for retransmissions
    /// beside the request itself costs no clone of it.
    pub fn of_request(r: &rsip::Request) -> Wire {
        Wire {
            bytes: crate::sip::message::serialize_request(r).into(),
            kind: WireKind::Request(r.method),
        }
    }

    /// The bytes a request of `method` was parsed from, sent as they are.
    pub fn of_request_bytes(method: rsip::Method, bytes: bytes::Bytes) -> Wire {
        Wire {
            bytes,
            kind: WireKind::Request(method),
        }
    }

    /// A response's bytes, from a borrow.
    pub fn of_response(r: &rsip::Response) -> Wire {
        Wire {
            bytes: crate::sip::message::serialize_response(r).into(),
            kind: WireKind::Response {
                code: r.status_code.code(),
                method: crate::sip::headers::cseq(r).map(|(_, m)| m),
            },
        }
    }

    /// The message parsed back (tests look into what was sent).
    #[cfg(test)]
    pub fn msg(&self) -> rsip::SipMessage {
        rsip::SipMessage::try_from(self.bytes.to_vec()).expect("we send what rsip parses")
    }
}

impl From<rsip::Response> for Wire {
    fn from(r: rsip::Response) -> Wire {
        Wire::of(&r.into())
    }
}

impl From<rsip::Request> for Wire {
    fn from(r: rsip::Request) -> Wire {
        Wire::of(&r.into())
    }
}

/// Errors of the transaction layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    #[error("malformed message: {0}")]
    Malformed(#[from] rsip::Error),
    #[error("{0} header missing or unusable")]
    MissingHeader(&'static str),
    #[error("top Via has no branch parameter")]
    NoBranch,
    #[error("no such transaction")]
    UnknownTransaction,
    #[error("a transaction with this key already exists")]
    Duplicate,
    #[error("ACK is not sent through a client transaction; use send_stateless")]
    AckNotTransactional,
    #[error("cannot send this response in state {0}")]
    InvalidState(&'static str),
}

/// What a transaction asks the layer to do when one of its timers fires.
// Returned and consumed at once; no need to box the message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Fired {
    Nothing,
    Resend(Wire),
    /// Quietly finished (D, I, J, K, L).
    Terminated,
    /// Gave up (B, F, H): the TU is told.
    TimedOut,
}
