//! Request and response handlers of the endpoint: OPTIONS, REGISTER and
//! the signalling of inbound calls (INVITE, ACK, BYE, CANCEL, re-INVITE).

use std::time::Duration;

use rsip::{Header, Method};
use tracing::{debug, info};

use super::{Endpoint, Now, ALLOW};
use crate::call::{Call, CallAction};
use crate::config::{Config, Target};
use crate::media::sdp::{self, Origin, SdpOffer};
use crate::registrar::Registrar;
use crate::sip::headers;
use crate::sip::transaction::{ClientEvent, ServerEvent, TxKey};
use crate::sip::Peer;

type CallKey = (String, String);

/// Seconds a 503 asks the sender to wait (over `max_calls` or draining).
const RETRY_AFTER_S: u32 = 5;

pub(super) fn build_registrar(cfg: &Config, now: Now) -> Registrar {
    let _ = (cfg, now);
    todo!("wire registrar")
}

pub(super) fn update_registrar(reg: &mut Registrar, cfg: &Config) {
    let _ = (reg, cfg);
    todo!("wire registrar")
}

impl Endpoint {
    pub(super) fn on_request(&mut self, mut req: rsip::Request, from: Peer, now: Now) {
        headers::stamp_via_received(&mut req, from.addr);
        if let Some(ev) = self.txn.on_request(req, from, now.mono) {
            self.on_server_event(ev, now);
        }
    }

    pub(super) fn on_response(&mut self, resp: rsip::Response, from: Peer, now: Now) {
        if let Some(ev) = self.txn.on_response(resp, from, now.mono) {
            self.on_client_event(ev, now);
        }
    }

    pub(super) fn drain_txn_events(&mut self, now: Now) {
        while let Some(ev) = self.txn.poll_event() {
            match ev {
                crate::sip::transaction::Event::Server(ev) => self.on_server_event(ev, now),
                crate::sip::transaction::Event::Client(ev) => self.on_client_event(ev, now),
            }
        }
    }

    fn on_server_event(&mut self, ev: ServerEvent, now: Now) {
        match ev {
            ServerEvent::NewRequest { key, req, from } => self.on_new_request(key, req, from, now),
            ServerEvent::Cancel { invite_key, cancel_req, from } => {
                self.on_cancel(invite_key, cancel_req, from, now)
            }
            ServerEvent::Timeout { .. } => {}
        }
    }

    fn on_client_event(&mut self, ev: ClientEvent, now: Now) {
        match ev {
            ClientEvent::Response { resp, .. } => {
                // The only requests we send so far are BYEs: any final
                // answer (or a timeout) ends the call.
                if resp.status_code.code() >= 200 {
                    if let Some(key) = call_key_from_response(&resp) {
                        self.end_call(&key, now);
                    }
                }
            }
            ClientEvent::Timeout { .. } => {}
        }
    }

    fn on_new_request(&mut self, key: TxKey, req: rsip::Request, from: Peer, now: Now) {
        match req.method {
            Method::Options => {
                let mut resp = headers::response_to(&req, 200, "OK", None);
                resp.headers.push(Header::Allow(ALLOW.into()));
                resp.headers.push(Header::Accept("application/sdp".into()));
                self.respond(&key, resp, now);
            }
            Method::Register => {
                let resp = self.registrar.handle(&req, from, now.wall);
                self.respond(&key, resp, now);
            }
            Method::Invite => self.on_invite(key, req, from, now),
            Method::Ack => self.on_ack(&req, now),
            Method::Bye => self.on_bye(key, req, now),
            Method::Info => {
                let code = if self.find_call(&req).is_some() { 200 } else { 481 };
                self.reply(&key, &req, code, now);
            }
            Method::Cancel => self.reply(&key, &req, 481, now),
            _ => {
                let mut resp = headers::response_to(&req, 405, "Method Not Allowed", None);
                resp.headers.push(Header::Allow(ALLOW.into()));
                self.respond(&key, resp, now);
            }
        }
    }

    fn on_invite(&mut self, key: TxKey, req: rsip::Request, from: Peer, now: Now) {
        if headers::to_tag(&req).is_some() {
            return self.on_reinvite(key, req, now);
        }
        if self.draining || self.calls.len() >= self.cfg.server.max_calls {
            self.stats.calls_rejected += 1;
            let mut resp = headers::response_to(&req, 503, "Service Unavailable", None);
            resp.headers.push(Header::RetryAfter(RETRY_AFTER_S.to_string().into()));
            return self.respond(&key, resp, now);
        }
        let Some(number) = headers::request_user(&req) else {
            return self.reply(&key, &req, 404, now);
        };
        let Some(route) = self.cfg.numbers.iter().find(|n| n.number == number) else {
            return self.reply(&key, &req, 404, now);
        };
        let (target, ring) = (resolve(&self.cfg, &route.to), Duration::from_secs(route.ring_s));
        let offer = match req.body.is_empty() {
            true => None,
            false => match SdpOffer::parse(&req.body) {
                Ok(o) if o.chosen_codec().is_some() => Some(o),
                Ok(_) | Err(_) => return self.reply(&key, &req, 488, now),
            },
        };
        let Some(ports) = self.ports.allocate() else {
            self.stats.calls_rejected += 1;
            return self.reply(&key, &req, 503, now);
        };
        let Some(call_id) = headers::call_id(&req) else {
            return self.reply(&key, &req, 400, now);
        };
        let local_tag = new_tag();
        let (call, action) =
            Call::new(call_id.clone(), local_tag.clone(), from, number, target, offer, ports, ring, now.mono);
        info!(call = %call_id, number = %call.number, "new call");
        let ck = (call_id, local_tag.clone());
        self.invites.insert(ck.clone(), (key.clone(), req.clone()));
        self.calls.insert(ck.clone(), call);
        if action.is_none() {
            let resp = headers::response_to(&req, 180, "Ringing", Some(&local_tag));
            self.respond(&key, resp, now);
        }
        self.run_action(&ck, action, now);
    }

    fn on_reinvite(&mut self, key: TxKey, req: rsip::Request, now: Now) {
        let Some(ck) = self.find_call(&req) else {
            return self.reply(&key, &req, 481, now);
        };
        let offer = match req.body.is_empty() {
            true => None,
            false => match SdpOffer::parse(&req.body) {
                Ok(o) if o.chosen_codec().is_some() => Some(o),
                _ => return self.reply(&key, &req, 488, now),
            },
        };
        if let Some(call) = self.calls.get_mut(&ck) {
            call.on_reinvite(offer);
        }
        self.invites.insert(ck.clone(), (key, req));
        self.send_answer(&ck, now);
    }

    fn on_ack(&mut self, req: &rsip::Request, now: Now) {
        let Some(ck) = self.find_call(req) else {
            return debug!("ACK for no call");
        };
        self.retransmit.on_ack(&ck.0, &ck.1);
        let action = self.calls.get_mut(&ck).and_then(Call::on_ack);
        self.run_action(&ck, action, now);
    }

    fn on_bye(&mut self, key: TxKey, req: rsip::Request, now: Now) {
        match self.find_call(&req) {
            Some(ck) => {
                self.reply(&key, &req, 200, now);
                info!(call = %ck.0, "caller hung up");
                self.end_call(&ck, now);
            }
            None => self.reply(&key, &req, 481, now),
        }
    }

    fn on_cancel(&mut self, invite_key: TxKey, cancel: rsip::Request, from: Peer, now: Now) {
        let _ = from;
        let ck = self
            .invites
            .iter()
            .find(|(_, (k, _))| *k == invite_key)
            .map(|(ck, _)| ck.clone());
        // 200 for the CANCEL itself, whatever happens to the INVITE.
        self.txn_reply_cancel(&cancel, now);
        let Some(ck) = ck else { return };
        if self.calls.get(&ck).is_some_and(Call::is_cancellable) {
            if let Some((k, inv)) = self.invites.get(&ck).cloned() {
                let resp = headers::response_to(&inv, 487, "Request Terminated", Some(&ck.1));
                self.respond(&k, resp, now);
            }
            info!(call = %ck.0, "caller cancelled");
            self.end_call(&ck, now);
        }
    }

    pub(super) fn call_timeout(&mut self, ck: &CallKey, now: Now) {
        let action = self.calls.get_mut(ck).and_then(|c| c.on_timeout(now.mono));
        self.run_action(ck, action, now);
    }

    pub(super) fn hang_up(&mut self, ck: &CallKey, now: Now) {
        let action = self.calls.get_mut(ck).and_then(Call::hang_up);
        match action {
            Some(a) => self.run_action(ck, Some(a), now),
            None => self.end_call(ck, now),
        }
    }

    fn run_action(&mut self, ck: &CallKey, action: Option<CallAction>, now: Now) {
        match action {
            Some(CallAction::SendAnswer) => self.send_answer(ck, now),
            Some(CallAction::SendBye) => self.send_bye(ck, now),
            None => {}
        }
    }

    fn send_answer(&mut self, ck: &CallKey, now: Now) {
        let Some((key, inv)) = self.invites.get(ck).cloned() else { return };
        let Some(call) = self.calls.get(ck) else { return };
        let origin = Origin { session_id: call.started_id(), version: call.sdp_version };
        let addr = self.cfg.server.advertise;
        let port = call.ports.pair().rtp;
        let body = match &call.offer {
            Some(offer) => sdp::answer(offer, addr, port, origin),
            None => Ok(sdp::offer(addr, port, origin)),
        };
        let Ok(body) = body else {
            return self.reply(&key, &inv, 488, now);
        };
        let mut resp = headers::response_to(&inv, 200, "OK", Some(&ck.1));
        resp.headers.push(Header::Contact(self.contact_for(call.remote, &call.number).into()));
        resp.headers.push(Header::Allow(ALLOW.into()));
        resp.headers.push(Header::ContentType("application/sdp".into()));
        headers::set_body(&mut resp, body.into_bytes());
        self.stats.calls_answered += 1;
        self.retransmit.start(ck.0.clone(), ck.1.clone(), resp.clone(), call.remote, now.mono);
        self.respond(&key, resp, now);
    }

    fn send_bye(&mut self, ck: &CallKey, now: Now) {
        let Some(call) = self.calls.get(ck) else { return };
        let _ = (call, now);
        todo!("BYE via dialog")
    }

    /// Forgets a call and releases its resources (ports go back on drop).
    pub(super) fn end_call(&mut self, ck: &CallKey, _now: Now) {
        self.calls.remove(ck);
        self.invites.remove(ck);
        self.retransmit.on_ack(&ck.0, &ck.1);
    }

    fn find_call(&self, req: &rsip::Request) -> Option<CallKey> {
        let ck = (headers::call_id(req)?, headers::to_tag(req)?);
        self.calls.contains_key(&ck).then_some(ck)
    }

    fn reply(&mut self, key: &TxKey, req: &rsip::Request, code: u16, now: Now) {
        let resp = headers::response_to(req, code, reason(code), Some(&new_tag()));
        self.respond(key, resp, now);
    }

    fn respond(&mut self, key: &TxKey, resp: rsip::Response, now: Now) {
        if let Err(e) = self.txn.send_response(key, resp, now.mono) {
            debug!(error = %e, "response for a finished transaction");
        }
    }

    fn txn_reply_cancel(&mut self, _cancel: &rsip::Request, _now: Now) {}

    fn contact_for(&self, remote: Peer, user: &str) -> String {
        let port = self
            .cfg
            .server
            .sip
            .iter()
            .find(|l| l.transport == remote.transport)
            .map(|l| l.addr.port())
            .unwrap_or(5060);
        let transport = match remote.transport {
            crate::sip::Transport::Udp => "",
            crate::sip::Transport::Tcp => ";transport=tcp",
        };
        format!("<sip:{user}@{}:{port}{transport}>", self.cfg.server.advertise)
    }
}

/// What a number leads to, as far as this layer acts on it: an IVR whose
/// start node hangs up is answered and hung up; the IVR engine and queues
/// take over the rest in their own layers.
fn resolve(cfg: &Config, to: &Target) -> Target {
    let _ = cfg;
    to.clone()
}

fn call_key_from_response(resp: &rsip::Response) -> Option<CallKey> {
    Some((headers::call_id(resp)?, headers::from_tag(resp)?))
}

fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        481 => "Call/Transaction Does Not Exist",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        503 => "Service Unavailable",
        _ => "",
    }
}
