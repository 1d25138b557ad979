//! SIP dialogs (RFC 3261 §12): the peer-to-peer state created by an INVITE
//! and its 2xx, used to build in-dialog requests (ACK for 2xx, BYE,
//! re-INVITE) and to check the ones we receive. Pure data, no I/O. No
//! forking: one dialog per INVITE.

use rsip::headers::{CSeq, CallId, Contact, ContentLength, ContentType, From, MaxForwards, Route, To, Via};
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Param, Request, Response, Uri, UriWithParams};

use crate::sip::transaction::new_branch;
use crate::sip::Transport;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    #[error("malformed message: {0}")]
    Malformed(#[from] rsip::Error),
    #[error("{0} tag missing")]
    MissingTag(&'static str),
    /// RFC 3261 §12.2.2: the TU answers 500.
    #[error("CSeq {got} is lower than the last one seen ({last})")]
    CSeqOutOfOrder { got: u32, last: u32 },
    #[error("request does not belong to this dialog")]
    NotThisDialog,
}

/// Call-ID plus both tags, from our point of view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a received request claims (our tag is in To). A missing
    /// From tag (RFC 2543 peer) counts as the empty tag.
    pub fn of_received_request(req: &Request) -> Result<DialogId, DialogError> {
        Ok(DialogId {
            call_id: req.call_id_header()?.value().to_string(),
            local_tag: req.to_header()?.tag()?.ok_or(DialogError::MissingTag("To"))?.to_string(),
            remote_tag: req.from_header()?.tag()?.map(|t| t.to_string()).unwrap_or_default(),
        })
    }
}

/// How we appear in the Via and Contact of requests we originate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVia {
    pub transport: Transport,
    /// The advertised address (host name or IP).
    pub host: String,
    pub port: u16,
}

impl LocalVia {
    /// `SIP/2.0/{transport} {host}:{port};branch={branch};rport`
    pub fn via(&self, branch: &str) -> Via {
        Via::new(format!(
            "SIP/2.0/{} {}:{};branch={};rport",
            self.transport, self.host, self.port, branch
        ))
    }

    pub fn contact(&self) -> Contact {
        match self.transport {
            Transport::Udp => Contact::new(format!("<sip:{}:{}>", self.host, self.port)),
            Transport::Tcp => Contact::new(format!("<sip:{}:{};transport=tcp>", self.host, self.port)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    /// Empty for an RFC 2543 peer that sent no tag.
    pub remote_tag: String,
    /// `None` until we send our first request in the dialog (UAS).
    pub local_seq: Option<u32>,
    /// `None` until the peer sends a request in the dialog (UAC).
    pub remote_seq: Option<u32>,
    pub local_uri: Uri,
    pub remote_uri: Uri,
    pub remote_target: Uri,
    pub route_set: Vec<UriWithParams>,
    pub secure: bool,
}

impl Dialog {
    /// The dialog a UAS creates when it answers `req` (an INVITE) with a
    /// 2xx carrying `local_tag` in To (§12.1.1). Route set: Record-Route in order.
    pub fn from_uas(req: &Request, local_tag: impl Into<String>) -> Result<Dialog, DialogError> {
        Ok(Dialog {
            call_id: req.call_id_header()?.value().to_string(),
            local_tag: local_tag.into(),
            remote_tag: req.from_header()?.tag()?.map(|t| t.to_string()).unwrap_or_default(),
            local_seq: None,
            remote_seq: Some(req.cseq_header()?.typed()?.seq),
            local_uri: req.to_header()?.uri()?,
            remote_uri: req.from_header()?.uri()?,
            remote_target: req.contact_header()?.typed()?.uri,
            route_set: record_routes(&req.headers)?,
            secure: req.uri.is_sips()?,
        })
    }

    /// The dialog a UAC creates from the request it sent and the 2xx it got
    /// (§12.1.2). Route set: the response's Record-Route reversed.
    pub fn from_uac(req_sent: &Request, resp_2xx: &Response) -> Result<Dialog, DialogError> {
        let mut route_set = record_routes(&resp_2xx.headers)?;
        route_set.reverse();
        Ok(Dialog {
            call_id: req_sent.call_id_header()?.value().to_string(),
            local_tag: req_sent
                .from_header()?
                .tag()?
                .ok_or(DialogError::MissingTag("From"))?
                .to_string(),
            remote_tag: resp_2xx.to_header()?.tag()?.map(|t| t.to_string()).unwrap_or_default(),
            local_seq: Some(req_sent.cseq_header()?.typed()?.seq),
            remote_seq: None,
            local_uri: req_sent.from_header()?.uri()?,
            remote_uri: req_sent.to_header()?.uri()?,
            remote_target: resp_2xx.contact_header()?.typed()?.uri,
            route_set,
            secure: req_sent.uri.is_sips()?,
        })
    }

    pub fn id(&self) -> DialogId {
        DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    /// Build an in-dialog request (§12.2.1.1) with a fresh branch. ACK reuses
    /// the CSeq number of the last INVITE; every other method takes the next
    /// one. INVITE and UPDATE carry our Contact. No body: see [`set_body`].
    /// (CANCEL is not in-dialog: use `transaction::build_cancel`.)
    pub fn new_request(&mut self, method: Method, local: &LocalVia) -> Request {
        let seq = match (method, self.local_seq) {
            (Method::Ack, Some(seq)) => seq,
            (_, Some(seq)) => seq.wrapping_add(1),
            (_, None) => 1,
        };
        self.local_seq = Some(seq);

        let (uri, routes) = self.request_target();
        let mut headers = Headers::default();
        headers.push(local.via(&new_branch()).into());
        headers.push(MaxForwards::new("70").into());
        headers.push(From::new(format!("<{}>;tag={}", self.local_uri, self.local_tag)).into());
        let to = if self.remote_tag.is_empty() {
            format!("<{}>", self.remote_uri)
        } else {
            format!("<{}>;tag={}", self.remote_uri, self.remote_tag)
        };
        headers.push(To::new(to).into());
        headers.push(CallId::new(self.call_id.clone()).into());
        headers.push(CSeq::new(format!("{seq} {method}")).into());
        for r in routes {
            headers.push(Route::new(r.to_string()).into());
        }
        if matches!(method, Method::Invite | Method::Update) {
            headers.push(local.contact().into());
        }
        headers.push(ContentLength::new("0").into());
        Request { method, uri, version: rsip::Version::V2, headers, body: Vec::new() }
    }

    /// Request-URI and Route list: loose routing when the first route has
    /// `lr`, else strict routing with the remote target appended (§12.2.1.1).
    fn request_target(&self) -> (Uri, Vec<UriWithParams>) {
        match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if is_loose(first) => (self.remote_target.clone(), self.route_set.clone()),
            Some(first) => {
                let mut uri = first.uri.clone();
                uri.params.clear();
                let mut routes: Vec<UriWithParams> = self.route_set.iter().skip(1).cloned().collect();
                routes.push(UriWithParams { uri: self.remote_target.clone(), params: Vec::new() });
                (uri, routes)
            }
        }
    }

    /// Check and record a request received in this dialog (§12.2.2): CSeq
    /// must not go down; a target refresh updates the remote target.
    pub fn on_remote_request(&mut self, req: &Request) -> Result<(), DialogError> {
        let id = DialogId::of_received_request(req)?;
        if id != self.id() {
            return Err(DialogError::NotThisDialog);
        }
        let got = req.cseq_header()?.typed()?.seq;
        if let Some(last) = self.remote_seq {
            if got < last {
                return Err(DialogError::CSeqOutOfOrder { got, last });
            }
        }
        self.remote_seq = Some(got);
        if matches!(req.method, Method::Invite | Method::Update) {
            if let Ok(contact) = req.contact_header() {
                self.remote_target = contact.typed()?.uri;
            }
        }
        Ok(())
    }
}

/// Attach a body with its Content-Type and a matching Content-Length.
pub fn set_body(req: &mut Request, content_type: &str, body: Vec<u8>) {
    req.headers
        .retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    req.headers.push(ContentType::new(content_type).into());
    req.headers.push(ContentLength::new(body.len().to_string()).into());
    req.body = body;
}

fn is_loose(route: &UriWithParams) -> bool {
    route.uri.params.iter().chain(route.params.iter()).any(|p| matches!(p, Param::Lr))
}

/// Every Record-Route entry in header order (one header may list several).
fn record_routes(headers: &Headers) -> Result<Vec<UriWithParams>, DialogError> {
    let mut out = Vec::new();
    for h in headers.iter() {
        if let Header::RecordRoute(rr) = h {
            out.extend(rr.typed()?.uris().iter().cloned());
        }
    }
    Ok(out)
}
