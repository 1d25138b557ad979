//! RFC 5626 (SIP outbound) as far as a registrar on the far end of a
//! phone's connection needs it. The flow itself needs nothing here: a
//! binding keeps the peer it was registered from (transport and source
//! address), and what is sent to the agent goes down that connection.
//!
//! What this adds: a REGISTER that asks for outbound (`Supported:
//! outbound`, a Contact with `reg-id` and `+sip.instance`) over TCP or TLS
//! is answered `Require: outbound` with a `Flow-Timer`, telling the phone
//! its flow is in use and how often to send its CRLF keep-alives (which
//! the transport answers with a CRLF pong, §3.5.1). Over UDP outbound is
//! not taken up: its keep-alives are STUN, which we do not answer.

use super::contact::ContactValue;
use crate::sip::headers::header_values;
use crate::sip::Peer;
use rsip::{Header, Request};

/// Seconds between a phone's keep-alives that we ask for: RFC 5626
/// §4.4.1's upper end for connection-oriented flows, well inside the
/// NAT timeouts it cites; a registered connection is never closed idle.
pub const FLOW_TIMER_S: u32 = 120;

/// Whether `req`, received from `source` with `contacts`, asks for
/// outbound on a transport we take it up on.
pub fn applies(req: &Request, contacts: &[ContactValue], source: Peer) -> bool {
    let supported = header_values(req, "Supported")
        .iter()
        .chain(header_values(req, "k").iter())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .any(|t| t == "outbound");
    let flow_contact = contacts.iter().any(|c| match c {
        ContactValue::Addr(a) => a.param("reg-id").is_some() && a.param("+sip.instance").is_some(),
        ContactValue::Star => false,
    });
    supported && flow_contact && source.transport.is_reliable()
}

/// The headers of a 200 OK that takes outbound up.
pub fn response_headers() -> Vec<Header> {
    vec![
        Header::Other("Require".into(), "outbound".into()),
        Header::Other("Flow-Timer".into(), FLOW_TIMER_S.to_string()),
    ]
}
