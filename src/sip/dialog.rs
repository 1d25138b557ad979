//! SIP dialogs (RFC 3261 §12): the peer-to-peer state created by an INVITE
//! and its 2xx, used to build in-dialog requests (ACK for 2xx, BYE,
//! re-INVITE) and to check the ones we receive. Pure data, no I/O. No
//! forking: one dialog per INVITE.

use rsip::headers::{
    CSeq, CallId, Contact, ContentLength, ContentType, From, MaxForwards, Route, To, Via,
};
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Param, Request, Response, Uri, UriWithParams};

use crate::sip::headers;
use crate::sip::name_addr::{parse_first, parse_list, NameAddr, NameAddrError};
use crate::sip::transaction::new_branch;
use crate::sip::Transport;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    #[error("malformed message: {0}")]
    Malformed(#[from] rsip::Error),
    #[error("{0} header missing or unusable")]
    MissingHeader(&'static str),
    /// A From, To, Contact or Record-Route value that does not parse.
    #[error("{0}: {1}")]
    BadAddress(&'static str, NameAddrError),
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
            call_id: call_id_of(req)?,
            local_tag: address(req, "To")?
                .tag()
                .ok_or(DialogError::MissingTag("To"))?
                .to_string(),
            remote_tag: address(req, "From")?.tag().unwrap_or_default().to_string(),
        })
    }
}

/// The single address of `name` (From, To), by our own parser: rsip's typed
/// headers refuse quoted parameters (`;+sip.instance="<urn:…>"`).
fn address<M: HasHeaders>(msg: &M, name: &'static str) -> Result<NameAddr, DialogError> {
    let value = headers::header_ref(msg, name).ok_or(DialogError::MissingHeader(name))?;
    NameAddr::parse(&value).map_err(|e| DialogError::BadAddress(name, e))
}

/// The URI of `name`'s (first) address, as rsip's type.
fn address_uri<M: HasHeaders>(msg: &M, name: &'static str) -> Result<Uri, DialogError> {
    let first = match name {
        "Contact" => {
            let value = headers::header_ref(msg, name).ok_or(DialogError::MissingHeader(name))?;
            parse_first(&value).map_err(|e| DialogError::BadAddress(name, e))?
        }
        _ => address(msg, name)?,
    };
    first
        .rsip_uri()
        .map_err(|e| DialogError::BadAddress(name, e))
}

fn call_id_of<M: HasHeaders>(msg: &M) -> Result<String, DialogError> {
    headers::call_id(msg).ok_or(DialogError::MissingHeader("Call-ID"))
}

fn cseq_of<M: HasHeaders>(msg: &M) -> Result<u32, DialogError> {
    headers::cseq(msg)
        .map(|(seq, _)| seq)
        .ok_or(DialogError::MissingHeader("CSeq"))
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
        Contact::new(format!(
            "<sip:{}:{}{}>",
            self.host,
            self.port,
            self.transport.uri_param()
        ))
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
            call_id: call_id_of(req)?,
            local_tag: local_tag.into(),
            remote_tag: address(req, "From")?.tag().unwrap_or_default().to_string(),
            local_seq: None,
            remote_seq: Some(cseq_of(req)?),
            local_uri: address_uri(req, "To")?,
            remote_uri: address_uri(req, "From")?,
            remote_target: address_uri(req, "Contact")?,
            route_set: record_routes(req)?,
            secure: req.uri.scheme == Some(rsip::Scheme::Sips),
        })
    }

    /// The dialog a UAC creates from the request it sent and the 2xx it got
    /// (§12.1.2). Route set: the response's Record-Route reversed.
    pub fn from_uac(req_sent: &Request, resp_2xx: &Response) -> Result<Dialog, DialogError> {
        let mut route_set = record_routes(resp_2xx)?;
        route_set.reverse();
        Ok(Dialog {
            call_id: call_id_of(req_sent)?,
            local_tag: address(req_sent, "From")?
                .tag()
                .ok_or(DialogError::MissingTag("From"))?
                .to_string(),
            remote_tag: address(resp_2xx, "To")?
                .tag()
                .unwrap_or_default()
                .to_string(),
            local_seq: Some(cseq_of(req_sent)?),
            remote_seq: None,
            local_uri: address_uri(req_sent, "From")?,
            remote_uri: address_uri(req_sent, "To")?,
            remote_target: address_uri(resp_2xx, "Contact")?,
            route_set,
            secure: req_sent.uri.scheme == Some(rsip::Scheme::Sips),
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
        Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
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
                let mut routes: Vec<UriWithParams> =
                    self.route_set.iter().skip(1).cloned().collect();
                routes.push(UriWithParams {
                    uri: self.remote_target.clone(),
                    params: Vec::new(),
                });
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
        let got = cseq_of(req)?;
        if let Some(last) = self.remote_seq {
            if got < last {
                return Err(DialogError::CSeqOutOfOrder { got, last });
            }
        }
        self.remote_seq = Some(got);
        let refresh = matches!(req.method, Method::Invite | Method::Update);
        if refresh && headers::header_value(req, "Contact").is_some() {
            self.remote_target = address_uri(req, "Contact")?;
        }
        Ok(())
    }
}

/// Attach a body with its Content-Type and a matching Content-Length.
pub fn set_body(req: &mut Request, content_type: &str, body: Vec<u8>) {
    req.headers
        .retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    req.headers.push(ContentType::new(content_type).into());
    req.headers
        .push(ContentLength::new(body.len().to_string()).into());
    req.body = body;
}

fn is_loose(route: &UriWithParams) -> bool {
    route
        .uri
        .params
        .iter()
        .chain(route.params.iter())
        .any(|p| matches!(p, Param::Lr))
}

/// Every Record-Route entry in header order (one header may list several).
fn record_routes<M: HasHeaders>(msg: &M) -> Result<Vec<UriWithParams>, DialogError> {
    let bad = |e| DialogError::BadAddress("Record-Route", e);
    let mut out = Vec::new();
    for value in headers::header_values(msg, "Record-Route") {
        for addr in parse_list(&value).map_err(bad)? {
            let params = addr
                .params
                .iter()
                .map(|(n, v)| {
                    Param::try_from((n.as_str(), v.as_deref())).unwrap_or_else(|_| {
                        let value = v.as_deref().map(rsip::param::OtherParamValue::from);
                        Param::Other(n.as_str().into(), value)
                    })
                })
                .collect();
            out.push(UriWithParams {
                uri: addr.rsip_uri().map_err(bad)?,
                params,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::SipMessage;

    fn parse(s: &str) -> SipMessage {
        SipMessage::try_from(s).unwrap()
    }

    fn incoming_invite(cseq: u32) -> Request {
        let SipMessage::Request(r) = parse(&format!(
            "INVITE sip:queue@acd.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKx\r\n\
             Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
             Record-Route: <sip:p3.example.com;lr>\r\n\
             From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
             To: <sip:queue@acd.example.com>\r\n\
             Call-ID: c1\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:alice@10.0.0.1:5062>\r\n\
             Content-Length: 0\r\n\r\n"
        )) else {
            panic!()
        };
        r
    }

    fn local() -> LocalVia {
        LocalVia {
            transport: Transport::Udp,
            host: "acd.example.com".into(),
            port: 5060,
        }
    }

    fn routes(req: &Request) -> Vec<String> {
        req.headers
            .iter()
            .filter_map(|h| match h {
                Header::Route(r) => Some(r.value().to_string()),
                _ => None,
            })
            .collect()
    }

    fn in_dialog(method: Method, cseq: u32, from_tag: &str, contact: &str) -> Request {
        let SipMessage::Request(r) = parse(&format!(
            "{method} sip:queue@10.0.0.9 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKy{cseq}\r\n\
             From: <sip:alice@example.com>;tag={from_tag}\r\n\
             To: <sip:queue@acd.example.com>;tag=L1\r\n\
             Call-ID: c1\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <{contact}>\r\n\
             Content-Length: 0\r\n\r\n"
        )) else {
            panic!()
        };
        r
    }

    #[test]
    fn uas_dialog_keeps_record_route_order_and_builds_bye() {
        let mut d = Dialog::from_uas(&incoming_invite(7), "L1").unwrap();
        assert_eq!(d.remote_tag, "a1");
        assert_eq!(d.remote_seq, Some(7));
        assert_eq!(d.local_seq, None);
        assert_eq!(d.remote_target.to_string(), "sip:alice@10.0.0.1:5062");
        let rs: Vec<_> = d
            .route_set
            .iter()
            .map(|r| r.uri.host().to_string())
            .collect();
        assert_eq!(
            rs,
            vec!["p1.example.com", "p2.example.com", "p3.example.com"]
        );

        let bye = d.new_request(Method::Bye, &local());
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.uri, d.remote_target, "loose routing keeps the target");
        assert_eq!(
            routes(&bye),
            vec![
                "<sip:p1.example.com;lr>",
                "<sip:p2.example.com;lr>",
                "<sip:p3.example.com;lr>"
            ]
        );
        let cseq = bye.cseq_header().unwrap().typed().unwrap();
        assert_eq!((cseq.seq, cseq.method), (1, Method::Bye));
        assert_eq!(
            bye.from_header()
                .unwrap()
                .tag()
                .unwrap()
                .unwrap()
                .to_string(),
            "L1"
        );
        assert_eq!(
            bye.to_header().unwrap().tag().unwrap().unwrap().to_string(),
            "a1"
        );
        let via = bye.via_header().unwrap().value().to_string();
        assert!(
            via.starts_with("SIP/2.0/UDP acd.example.com:5060;branch=z9hG4bK"),
            "{via}"
        );
        assert!(via.ends_with(";rport"), "{via}");
        // Round-trips through the parser.
        let again = SipMessage::try_from(bye.to_string().as_str()).unwrap();
        assert!(again.is_request());
    }

    #[test]
    fn uac_dialog_reverses_route_set_and_acks_with_invite_cseq() {
        let SipMessage::Request(inv) = parse(
            "INVITE sip:agent@10.0.0.5 SIP/2.0\r\n\
             Via: SIP/2.0/UDP acd.example.com:5060;branch=z9hG4bKi1\r\n\
             From: <sip:acd@acd.example.com>;tag=L9\r\n\
             To: <sip:agent@example.com>\r\n\
             Call-ID: c2\r\n\
             CSeq: 41 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        ) else {
            panic!()
        };
        let SipMessage::Response(ok) = parse(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP acd.example.com:5060;branch=z9hG4bKi1\r\n\
             Record-Route: <sip:p1.example.com;lr>\r\n\
             Record-Route: <sip:p2.example.com;lr>\r\n\
             From: <sip:acd@acd.example.com>;tag=L9\r\n\
             To: <sip:agent@example.com>;tag=R5\r\n\
             Call-ID: c2\r\n\
             CSeq: 41 INVITE\r\n\
             Contact: <sip:agent@10.0.0.5:5070>\r\n\
             Content-Length: 0\r\n\r\n",
        ) else {
            panic!()
        };
        let mut d = Dialog::from_uac(&inv, &ok).unwrap();
        assert_eq!(
            d.id(),
            DialogId {
                call_id: "c2".into(),
                local_tag: "L9".into(),
                remote_tag: "R5".into()
            }
        );
        let rs: Vec<_> = d
            .route_set
            .iter()
            .map(|r| r.uri.host().to_string())
            .collect();
        assert_eq!(rs, vec!["p2.example.com", "p1.example.com"]);

        let ack = d.new_request(Method::Ack, &local());
        let bye = d.new_request(Method::Bye, &local());
        assert_eq!(ack.cseq_header().unwrap().typed().unwrap().seq, 41);
        assert_eq!(bye.cseq_header().unwrap().typed().unwrap().seq, 42);
        assert_ne!(ack.transaction_id().unwrap(), inv.transaction_id().unwrap());
        assert_ne!(ack.transaction_id().unwrap(), bye.transaction_id().unwrap());
        assert_eq!(ack.uri.to_string(), "sip:agent@10.0.0.5:5070");
        assert_eq!(
            routes(&ack),
            vec!["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );
        // A re-INVITE carries our Contact.
        let reinv = d.new_request(Method::Invite, &local());
        assert_eq!(
            reinv.contact_header().unwrap().value(),
            "<sip:acd.example.com:5060>"
        );
    }

    #[test]
    fn remote_cseq_must_not_decrease_and_refresh_updates_target() {
        let mut d = Dialog::from_uas(&incoming_invite(7), "L1").unwrap();
        let low = in_dialog(Method::Bye, 6, "a1", "sip:alice@10.0.0.1:5062");
        assert!(matches!(
            d.on_remote_request(&low),
            Err(DialogError::CSeqOutOfOrder { got: 6, last: 7 })
        ));
        assert_eq!(d.remote_seq, Some(7));
        // The ACK for the INVITE repeats its number: fine.
        d.on_remote_request(&in_dialog(Method::Ack, 7, "a1", "sip:x@1.2.3.4"))
            .unwrap();
        assert_eq!(
            d.remote_target.to_string(),
            "sip:alice@10.0.0.1:5062",
            "ACK is no refresh"
        );
        d.on_remote_request(&in_dialog(
            Method::Invite,
            8,
            "a1",
            "sip:alice@10.0.0.2:5062",
        ))
        .unwrap();
        assert_eq!(d.remote_seq, Some(8));
        assert_eq!(d.remote_target.to_string(), "sip:alice@10.0.0.2:5062");
        let wrong = in_dialog(Method::Bye, 9, "other", "sip:alice@10.0.0.1");
        assert!(matches!(
            d.on_remote_request(&wrong),
            Err(DialogError::NotThisDialog)
        ));
    }

    #[test]
    fn strict_route_becomes_request_uri() {
        let mut d = Dialog::from_uas(&incoming_invite(1), "L1").unwrap();
        d.route_set = vec![
            UriWithParams {
                uri: Uri::try_from("sip:strict.example.com").unwrap(),
                params: vec![],
            },
            UriWithParams {
                uri: Uri::try_from("sip:p2.example.com;lr").unwrap(),
                params: vec![],
            },
        ];
        let bye = d.new_request(Method::Bye, &local());
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        assert_eq!(
            routes(&bye),
            vec!["<sip:p2.example.com;lr>", "<sip:alice@10.0.0.1:5062>"]
        );
    }

    #[test]
    fn set_body_fixes_length_and_type() {
        let mut d = Dialog::from_uas(&incoming_invite(1), "L1").unwrap();
        let mut reinv = d.new_request(Method::Invite, &local());
        set_body(&mut reinv, "application/sdp", b"v=0\r\n".to_vec());
        let again = SipMessage::try_from(reinv.to_string().as_str()).unwrap();
        assert_eq!(again.body(), &b"v=0\r\n".to_vec());
    }

    #[test]
    fn quoted_parameters_everywhere_still_make_a_dialog() {
        let SipMessage::Request(inv) = parse(
            "INVITE sip:1500@acd.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKq;x=\"a;b\"\r\n\
             Record-Route: <sip:p1.example.com;lr>;note=\"x, <y>\"\r\n\
             From: \"Agent \\\"One\\\", <Desk>\" <sip:1003@example.com>;tag=f1;+x=\"q\"\r\n\
             To: sip:1500@acd.example.com\r\n\
             Call-ID: cq\r\n\
             CSeq: 3 INVITE\r\n\
             Contact: <sip:1003@127.0.0.1:5072;transport=udp>;expires=600;+sip.instance=\"<urn:uuid:1>\"\r\n\
             Content-Length: 0\r\n\r\n",
        ) else {
            panic!()
        };
        let d = Dialog::from_uas(&inv, "L1").unwrap();
        assert_eq!(d.remote_tag, "f1");
        assert_eq!(d.remote_seq, Some(3));
        assert_eq!(d.remote_uri.to_string(), "sip:1003@example.com");
        assert_eq!(d.local_uri.to_string(), "sip:1500@acd.example.com");
        assert!(d
            .remote_target
            .to_string()
            .eq_ignore_ascii_case("sip:1003@127.0.0.1:5072;transport=udp"));
        assert_eq!(d.route_set.len(), 1);
        assert_eq!(d.route_set[0].uri.host().to_string(), "p1.example.com");

        // Our side as UAC: the agent's 2xx carries the same kind of Contact.
        let SipMessage::Response(ok) = parse(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP acd.example.com:5060;branch=z9hG4bKi1\r\n\
             From: <sip:acd@acd.example.com>;tag=L9\r\n\
             To: <sip:1003@example.com>;tag=R5;+sip.instance=\"<urn:uuid:1>\"\r\n\
             Call-ID: c2\r\n\
             CSeq: 41 INVITE\r\n\
             Contact: \"1003\" <sip:1003@127.0.0.1:5072>;reg-id=1;+sip.instance=\"<urn:uuid:1>\"\r\n\
             Content-Length: 0\r\n\r\n",
        ) else {
            panic!()
        };
        let SipMessage::Request(sent) = parse(
            "INVITE sip:1003@127.0.0.1:5072 SIP/2.0\r\n\
             Via: SIP/2.0/UDP acd.example.com:5060;branch=z9hG4bKi1\r\n\
             From: <sip:acd@acd.example.com>;tag=L9\r\n\
             To: <sip:1003@example.com>\r\n\
             Call-ID: c2\r\n\
             CSeq: 41 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        ) else {
            panic!()
        };
        let mut d = Dialog::from_uac(&sent, &ok).unwrap();
        assert_eq!(d.remote_tag, "R5");
        let ack = d.new_request(Method::Ack, &local());
        assert_eq!(ack.uri.to_string(), "sip:1003@127.0.0.1:5072");
    }

    #[test]
    fn unusable_addresses_are_named_in_the_error() {
        let mut inv = incoming_invite(1);
        inv.headers.retain(|h| !matches!(h, Header::Contact(_)));
        inv.headers
            .push(Contact::new("<sip:alice@10.0.0.1;x=\"open>").into());
        let err = Dialog::from_uas(&inv, "L1").unwrap_err();
        assert!(
            matches!(err, DialogError::BadAddress("Contact", _)),
            "{err}"
        );
        inv.headers.retain(|h| !matches!(h, Header::Contact(_)));
        let err = Dialog::from_uas(&inv, "L1").unwrap_err();
        assert!(
            matches!(err, DialogError::MissingHeader("Contact")),
            "{err}"
        );
    }
}
