//! Building the few messages the transaction layer creates itself.

use rsip::headers::{CSeq, ContentLength, MaxForwards};
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Request, Response};

use super::{TxError, MAGIC_COOKIE};

/// A fresh RFC 3261 branch (magic cookie + 64 random bits).
pub fn new_branch() -> String {
    format!("{MAGIC_COOKIE}{:016x}", rand::random::<u64>())
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch,
/// Request-URI, Call-ID, From and CSeq number as the INVITE, To from the
/// response, the INVITE's Route headers.
pub fn build_ack(invite: &Request, resp: &Response) -> Result<Request, TxError> {
    same_transaction(invite, Method::Ack, resp.to_header()?.clone().into())
}

/// A CANCEL for a pending INVITE we sent (RFC 3261 §9.1): same branch,
/// Request-URI, Call-ID, To, From, CSeq number and Route headers.
pub fn build_cancel(invite: &Request) -> Result<Request, TxError> {
    same_transaction(invite, Method::Cancel, invite.to_header()?.clone().into())
}

/// A `method` request matching `invite`'s transaction, with the given To.
fn same_transaction(invite: &Request, method: Method, to: Header) -> Result<Request, TxError> {
    let mut headers = Headers::default();
    headers.push(invite.via_header()?.clone().into());
    headers.push(MaxForwards::new("70").into());
    headers.push(invite.from_header()?.clone().into());
    headers.push(to);
    headers.push(invite.call_id_header()?.clone().into());
    let seq = invite.cseq_header()?.typed()?.seq;
    headers.push(CSeq::new(format!("{seq} {method}")).into());
    for h in invite.headers.iter() {
        if let Header::Route(_) = h {
            headers.push(h.clone());
        }
    }
    headers.push(ContentLength::new("0").into());
    Ok(Request {
        method,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    })
}
