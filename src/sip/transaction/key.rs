//! Transaction keys (RFC 3261 §17.1.3 and §17.2.3).

use std::hash::{Hash, Hasher};

use rsip::prelude::*;
use rsip::{Method, Request, Response};

use super::TxError;

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

    /// The server transaction a received request belongs to.
    pub(crate) fn server(req: &Request) -> Result<TxKey, TxError> {
        let via_raw = req.via_header()?;
        let via = via_raw.typed()?;
        let method = match req.method {
            Method::Ack => Method::Invite,
            m => m,
        };
        match via.branch().map(|b| b.to_string()) {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => Ok(TxKey {
                side: Side::Server,
                branch,
                sent_by: via.uri.host_with_port.to_string().to_ascii_lowercase(),
                method,
            }),
            _ => {
                // RFC 2543 fallback (§17.2.3). The To tag is left out so that
                // an ACK (which carries our tag) finds its INVITE.
                let from_tag = req
                    .from_header()?
                    .tag()?
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                let branch = format!(
                    "rfc2543|{}|{}|{}|{}|{}",
                    req.uri,
                    from_tag,
                    req.call_id_header()?.value(),
                    req.cseq_header()?.typed()?.seq,
                    via_raw.value()
                );
                Ok(TxKey {
                    side: Side::Server,
                    branch,
                    sent_by: String::new(),
                    method,
                })
            }
        }
    }

    /// The client transaction a request we send creates.
    pub(crate) fn client_for_request(req: &Request) -> Result<TxKey, TxError> {
        let via = req.via_header()?.typed()?;
        let branch = via.branch().ok_or(TxError::NoBranch)?.to_string();
        Ok(TxKey {
            side: Side::Client,
            branch,
            sent_by: String::new(),
            method: req.method,
        })
    }

    /// The client transaction a received response belongs to.
    pub(crate) fn client_for_response(resp: &Response) -> Result<TxKey, TxError> {
        let via = resp.via_header()?.typed()?;
        let branch = via.branch().ok_or(TxError::NoBranch)?.to_string();
        let method = resp.cseq_header()?.typed()?.method;
        Ok(TxKey {
            side: Side::Client,
            branch,
            sent_by: String::new(),
            method,
        })
    }
}
