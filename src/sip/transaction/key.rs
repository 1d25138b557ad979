//! Transaction keys (RFC 3261 §17.1.3 and §17.2.3).

use std::hash::{Hash, Hasher};

use rsip::message::HasHeaders;
use rsip::{Method, Request, Response};

use super::TxError;
use crate::sip::headers;
use crate::sip::message::RequestIds;

/// The RFC 3261 branch prefix; branches without it come from RFC 2543
/// elements and are matched on other header fields.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Which half of the layer a transaction lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Server,
    Client,
}

/// Identifies one transaction.
///
/// Server: top-Via branch + sent-by + method (ACK keyed as INVITE, CANCEL
/// separately). Client: top-Via branch + CSeq method. For RFC 2543 requests
/// (no magic cookie) `branch` holds a synthetic id made of Request-URI,
/// From tag, Call-ID, CSeq number and the whole top Via.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxKey {
    side: Side,
    branch: String,
    sent_by: String,
    method: Method,
}

// rsip::Method does not implement Hash; it is a field-less enum.
impl Hash for TxKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.side.hash(state);
        self.branch.hash(state);
        self.sent_by.hash(state);
        std::mem::discriminant(&self.method).hash(state);
    }
}

impl TxKey {
    pub fn side(&self) -> Side {
        self.side
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The method of the transaction (INVITE for an INVITE's ACK).
    pub fn method(&self) -> Method {
        self.method
    }

    pub(crate) fn with_method(&self, method: Method) -> TxKey {
        TxKey {
            method,
            ..self.clone()
        }
    }

    /// The server transaction a received request belongs to. The Via is
    /// read by our own accessors: rsip's typed Via refuses quoted parameters.
    pub(crate) fn server(req: &Request) -> Result<TxKey, TxError> {
        let via = headers::top_via_ref(req).ok_or(TxError::MissingHeader("Via"))?;
        let method = match req.method {
            Method::Ack => Method::Invite,
            m => m,
        };
        match headers::header_param(&via, "branch").filter(|b| !b.is_empty()) {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => Ok(TxKey {
                side: Side::Server,
                branch,
                sent_by: sent_by(&via).ok_or(TxError::MissingHeader("Via"))?,
                method,
            }),
            _ => {
                // RFC 2543 fallback (§17.2.3). The To tag is left out so that
                // an ACK (which carries our tag) finds its INVITE.
                let from_tag = headers::from_tag(req).unwrap_or_default();
                let call_id = headers::call_id(req).ok_or(TxError::MissingHeader("Call-ID"))?;
                let (seq, _) = headers::cseq(req).ok_or(TxError::MissingHeader("CSeq"))?;
                let branch = format!("rfc2543|{}|{from_tag}|{call_id}|{seq}|{via}", req.uri);
                Ok(TxKey {
                    side: Side::Server,
                    branch,
                    sent_by: String::new(),
                    method,
                })
            }
        }
    }

    /// The server transaction of a request known by its raw identifiers
    /// (always an RFC 3261 branch): what [`TxKey::server`] gives once the
    /// request is parsed.
    pub fn server_for_ids(ids: &RequestIds<'_>) -> TxKey {
        TxKey {
            side: Side::Server,
            branch: ids.branch.to_string(),
            sent_by: ids.sent_by.to_ascii_lowercase(),
            method: match ids.method {
                Method::Ack => Method::Invite,
                m => m,
            },
        }
    }

    /// The client transaction a request we send creates.
    pub(crate) fn client_for_request(req: &Request) -> Result<TxKey, TxError> {
        Ok(TxKey {
            side: Side::Client,
            branch: branch_of(req)?,
            sent_by: String::new(),
            method: req.method,
        })
    }

    /// The client transaction a received response belongs to.
    pub(crate) fn client_for_response(resp: &Response) -> Result<TxKey, TxError> {
        let (_, method) = headers::cseq(resp).ok_or(TxError::MissingHeader("CSeq"))?;
        Ok(TxKey {
            side: Side::Client,
            branch: branch_of(resp)?,
            sent_by: String::new(),
            method,
        })
    }
}

/// The top Via's branch (an error when the Via or its branch is missing).
fn branch_of<M: HasHeaders>(msg: &M) -> Result<String, TxError> {
    let via = headers::top_via_ref(msg).ok_or(TxError::MissingHeader("Via"))?;
    headers::header_param(&via, "branch")
        .filter(|b| !b.is_empty())
        .ok_or(TxError::NoBranch)
}

/// The Via's sent-by ("host[:port]"), lower-cased, as written.
fn sent_by(via: &str) -> Option<String> {
    let head = via.split(';').next()?;
    let sent_by = head.split_ascii_whitespace().nth(1)?;
    Some(sent_by.to_ascii_lowercase())
}
