//! Request and response handlers of the endpoint: OPTIONS, REGISTER and
//! the signalling of inbound calls (INVITE, ACK, BYE, CANCEL, re-INVITE).

use std::sync::atomic::Ordering;
use std::time::Duration;

use rsip::{Header, Method};
use tracing::{debug, info, warn};

use super::media::{media_of, MediaCommand};
use super::{CallHandle, Endpoint, Now, ALLOW};
use crate::call::{Call, CallAction, CallState};
use crate::config::{Config, Credential, DigestAlgorithm};
use crate::config::{MediaEncryption, Target};
use crate::media::crypto_attr::answer_keys;
use crate::media::sdp::{self, Origin, SdpOffer};
use crate::registrar::{Algorithm, Credentials, Registrar, RegistrarConfig};
use crate::sip::dialog::{Dialog, LocalVia};
use crate::sip::headers;
use crate::sip::message::reason_phrase;
use crate::sip::transaction::{ClientEvent, ServerEvent, TxEvent, TxKey};
use crate::sip::Peer;

/// Seconds a 503 asks the sender to wait (over `max_calls` or draining).
const RETRY_AFTER_S: u32 = 5;

/// File in `data_dir` that keeps registrations across restarts.
pub const BINDINGS_FILE: &str = "registrations.json";

pub(super) fn build_registrar(cfg: &Config, now: Now) -> Registrar {
    // Nonces are signed with a per-process secret: after a restart a phone's
    // old nonce simply earns a fresh challenge.
    let mut reg = Registrar::new(registrar_config(cfg), credentials(cfg), rand::random());
    let loaded = reg.load_from(cfg.server.data_dir.join(BINDINGS_FILE), now.wall);
    info!(bindings = loaded, "registrations restored");
    reg
}

pub(super) fn update_registrar(reg: &mut Registrar, cfg: &Config) {
    reg.update_config(registrar_config(cfg));
    for (user, contact) in reg.update_users(credentials(cfg)) {
        info!(%user, %contact, "binding dropped: agent removed from the configuration");
    }
}

fn registrar_config(cfg: &Config) -> RegistrarConfig {
    let mut rc = RegistrarConfig::new(cfg.server.domain.clone());
    rc.algorithms = cfg
        .server
        .digest_algorithms
        .iter()
        .map(|a| match a {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
        })
        .collect();
    rc.guard = cfg.server.auth_guard.clone();
    rc
}

fn credentials(cfg: &Config) -> Vec<Credentials> {
    cfg.agents
        .values()
        .filter_map(|a| {
            let (password, ha1_md5) = match a.credential.as_ref()? {
                Credential::Password(p) => (Some(p.clone()), None),
                Credential::Ha1(h) => (None, Some(h.clone())),
            };
            Some(Credentials {
                user: a.id.clone(),
                password,
                ha1_md5,
            })
        })
        .collect()
}

impl Endpoint {
    /// A request parsed from `raw` (kept by the transaction layer to spot
    /// its retransmissions).
    pub(super) fn on_request(&mut self, mut req: rsip::Request, raw: &[u8], from: Peer, now: Now) {
        headers::stamp_via_received(&mut req, from.addr);
        if let Some(ev) = self.txn.on_request_raw(req, raw, from, now.mono) {
            self.on_server_event(ev, now);
        }
    }

    pub(super) fn on_response(&mut self, resp: rsip::Response, from: Peer, now: Now) {
        // RFC 3261 §18.1.2: a response whose top Via is not ours was not
        // meant for us; drop it before it can match anything.
        let ours = headers::top_via(&resp)
            .and_then(|v| headers::via_sent_by(&v))
            .is_some_and(|(host, port)| {
                host == self.cfg.server.advertise.to_string()
                    && self
                        .cfg
                        .server
                        .sip
                        .iter()
                        .any(|l| Some(l.addr.port()) == port)
            });
        if !ours {
            *self.tally.dropped.entry("foreign_via").or_default() += 1;
            return debug!(%from, "response with a foreign top Via dropped");
        }
        if let Some(ev) = self.txn.on_response(resp, from, now.mono) {
            self.on_client_event(ev, now);
        }
    }

    pub(super) fn drain_txn_events(&mut self, now: Now) {
        while let Some(ev) = self.txn.poll_event() {
            match ev {
                TxEvent::Server(ev) => self.on_server_event(ev, now),
                TxEvent::Client(ev) => self.on_client_event(ev, now),
            }
        }
    }

    fn on_server_event(&mut self, ev: ServerEvent, now: Now) {
        match ev {
            ServerEvent::NewRequest { key, req, from } => self.on_new_request(key, req, from, now),
            ServerEvent::Ack { req, .. } => self.on_ack(&req, now),
            ServerEvent::Cancel {
                invite_key,
                cancel_key,
                cancel_req,
                ..
            } => self.on_cancel(invite_key, cancel_key, cancel_req, now),
            // Our final non-2xx was never ACKed: nothing is left to undo.
            ServerEvent::Timeout { .. } => {}
            // The dialog our unacknowledged 2xx confirmed, found by its
            // (Call-ID, our tag): never a pass over the shard's calls.
            ServerEvent::AckTimeout { call_id, tag, .. } => {
                let Some(ck) = tag.and_then(|tag| self.calls.find(&(call_id, tag))) else {
                    return;
                };
                info!(call = %self.calls.call_id(ck), "no ACK for our 200: hanging up");
                self.hang_up(ck, now);
            }
        }
    }

    fn on_client_event(&mut self, ev: ClientEvent, now: Now) {
        let ping = match &ev {
            ClientEvent::Response { key, resp } if resp.status_code.code() >= 200 => {
                Some((key, true))
            }
            ClientEvent::Timeout { key } => Some((key, false)),
            _ => None,
        };
        if let Some((key, answered)) = ping {
            if self.on_qualify_result(&key.clone(), answered, now) {
                return;
            }
        }
        if let ClientEvent::Response { key, resp } = &ev {
            if self.on_trunk_response(key, resp, now) {
                return;
            }
            if self.on_monitor_response(key, resp, now) {
                return;
            }
            if self.on_agent_response(key, resp, now) {
                return;
            }
        }
        if let ClientEvent::Timeout { key } = &ev {
            if self.on_trunk_timeout(key, now) || self.on_monitor_timeout(key, now) {
                return;
            }
        }
        if let ClientEvent::Stray2xx { resp, .. } = &ev {
            if self.on_trunk_2xx_again(resp) {
                return;
            }
        }
        let refresh = match &ev {
            ClientEvent::Response { key, resp } if resp.status_code.code() >= 200 => {
                Some((key, Some(resp.status_code.code())))
            }
            ClientEvent::Timeout { key } => Some((key, None)),
            _ => None,
        };
        if let Some((key, code)) = refresh {
            if self.on_refresh_result(&key.clone(), code, now) {
                return;
            }
        }
        if let ClientEvent::Timeout { key } = &ev {
            if let Some(ck) = self.agent_invites.remove(key) {
                // The agent's phone never answered at all: like no answer.
                if let Some(leg) = self.calls.get_mut(ck).and_then(|c| c.agent.as_mut()) {
                    leg.ring_deadline = now.mono;
                }
                self.agent_ring_timeout(ck, now);
                return;
            }
        }
        match ev {
            // The only requests we send so far are BYEs: their final answer
            // (or a timeout) ends the call.
            ClientEvent::Response { key, resp } if resp.status_code.code() >= 200 => {
                if let Some(ck) = self.byes.remove(&key) {
                    self.end_call(ck, now);
                }
            }
            ClientEvent::Timeout { key } => {
                if let Some(ck) = self.byes.remove(&key) {
                    self.end_call(ck, now);
                }
            }
            ClientEvent::Response { .. } | ClientEvent::Stray2xx { .. } => {}
        }
    }

    fn on_new_request(&mut self, key: TxKey, req: rsip::Request, from: Peer, now: Now) {
        if let Some(refusal) = crate::sip::extensions::screen(&req) {
            debug!(method = %req.method, status = refusal.status(), "request refused: {refusal:?}");
            let code = refusal.status();
            let mut resp = headers::response_to(&req, code, reason_phrase(code), Some(&new_tag()));
            resp.headers.extend(refusal.headers());
            if req.method == Method::Invite && headers::to_tag(&req).is_none() {
                self.emit_rejected(&req, code, now);
            }
            return self.respond(&key, resp, now);
        }
        match req.method {
            Method::Options => {
                let mut resp = headers::response_to(&req, 200, "OK", None);
                resp.headers.push(Header::Allow(ALLOW.into()));
                resp.headers.push(Header::Accept("application/sdp".into()));
                self.respond(&key, resp, now);
            }
            Method::Register => {
                let (resp, auth) = {
                    let mut reg = self.registrar();
                    let resp = reg.handle_register(&req, from, now.wall);
                    (resp, reg.take_auth_tally())
                };
                self.tally.auth.add(auth);
                let ok = resp.status_code.code() == 200;
                self.respond(&key, resp, now);
                if let (true, Some(user)) = (ok, headers::to_user(&req)) {
                    let registered = self.has_usable_binding(&user, now);
                    self.agent_reachable(&user, registered, now);
                }
            }
            Method::Invite => self.on_invite(key, req, from, now),
            Method::Bye => {
                if !self.on_monitor_bye(&key, &req, now)
                    && !self.on_agent_bye(&key, &req, now)
                    && !self.on_trunk_bye(&key, &req, now)
                {
                    self.on_bye(key, req, now)
                }
            }
            Method::Info => {
                let Some(ck) = self.find_call(&req) else {
                    return self.reply(&key, &req, 481, now);
                };
                self.reply(&key, &req, 200, now);
                // DTMF by SIP INFO (application/dtmf-relay or dtmf).
                let ctype = headers::content_type(&req).unwrap_or_default();
                if let Some(ev) = crate::media::dtmf::parse_info(&ctype, &req.body) {
                    info!(call = %self.calls.call_id(ck), digit = %ev.digit, "digit (SIP INFO)");
                    self.ivr_event(ck, crate::ivr::IvrEvent::Digit(ev.digit), now);
                }
            }
            Method::Update => self.on_session_request(key, req, now),
            Method::Refer => self.on_refer(key, req, now),
            // A CANCEL that matched no INVITE (matched ones come as events).
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
            return self.on_session_request(key, req, now);
        }
        let max = self.cfg.server.max_calls;
        if self.draining || self.shared.calls.load(Ordering::Relaxed) >= max {
            return self.reject_busy(&key, &req, now);
        }
        let Some(number) = headers::request_user(&req) else {
            return self.reject_invite(&key, &req, 404, now);
        };
        let mut ring_agent = None;
        let (target, ring, encryption) = match self.cfg.features.action(&number) {
            // A feature code: answered, then hung up after the ACK.
            Some(action) => match self.feature_code(&key, &req, from, action, now) {
                Some(policy) => (Target::Hangup, Duration::ZERO, policy),
                None => return,
            },
            None => {
                let route = self
                    .numbers
                    .get(&number)
                    .and_then(|&i| self.cfg.numbers.get(i));
                match route {
                    Some(route) => {
                        let ring = Duration::from_secs(route.ring_s);
                        (route.to.clone(), ring, route.media_encryption)
                    }
                    // An agent id: an agent consulting a colleague.
                    None if self.cfg.agents.contains_key(&number) => {
                        let Some((queue, policy)) =
                            self.consult_route(&key, &req, from, &number, now)
                        else {
                            return;
                        };
                        ring_agent = Some(number.clone());
                        (Target::Queue(queue), Duration::ZERO, policy)
                    }
                    None => return self.reject_invite(&key, &req, 404, now),
                }
            }
        };
        // Not a caller: no record, no events of a call.
        let feature = target == Target::Hangup;
        let offer = match req.body.is_empty() {
            true => None,
            false => match SdpOffer::parse(&req.body) {
                Ok(o) if o.chosen_codec().is_some() => Some(o),
                Ok(_) | Err(_) => return self.reject_invite(&key, &req, 488, now),
            },
        };
        if !super::srtp::offer_acceptable(encryption, offer.as_ref()) {
            debug!(%from, "offer refused with 488: media_encryption of the number");
            return self.reject_invite(&key, &req, 488, now);
        }
        let session = match crate::sip::session_timer::negotiate_uas(&req, now.mono) {
            crate::sip::session_timer::UasTimer::TooSmall => {
                self.emit_rejected(&req, 422, now);
                let mut resp =
                    headers::response_to(&req, 422, "Session Interval Too Small", Some(&new_tag()));
                resp.headers.push(Header::Other(
                    "Min-SE".into(),
                    crate::sip::session_timer::MIN_SE.to_string(),
                ));
                return self.respond(&key, resp, now);
            }
            crate::sip::session_timer::UasTimer::Agreed(t) => Some(t),
            crate::sip::session_timer::UasTimer::None => None,
        };
        let Some(ports) = self.ports.allocate() else {
            return self.reject_invite(&key, &req, 503, now);
        };
        let Some(call_id) = headers::call_id(&req) else {
            debug!(%from, "INVITE without a Call-ID: 400");
            return self.reply(&key, &req, 400, now);
        };
        let local_tag = new_tag();
        let dialog = match Dialog::from_uas(&req, local_tag.clone()) {
            Ok(d) => d,
            Err(e) => {
                warn!(call = %call_id, %from, error = %e, "INVITE refused with 400: no usable dialog");
                return self.reply(&key, &req, 400, now);
            }
        };
        let (mut call, action) =
            Call::new(dialog, from, number, target, offer, ports, ring, now.mono);
        call.session = session;
        call.ring_agent = ring_agent;
        info!(call = %call_id, number = %call.number, "new call");
        // max_calls counts every shard's calls: take a place atomically
        // (the check above is only the cheap early answer).
        let placed = self
            .shared
            .calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        if placed.is_err() {
            return self.reject_busy(&key, &req, now);
        }
        if !self.take_setup_place(&mut call) {
            self.shared.calls.fetch_sub(1, Ordering::AcqRel);
            return self.reject_busy(&key, &req, now);
        }
        let ck = self.calls.insert((call_id, local_tag.clone()), call);
        let req = std::sync::Arc::new(req);
        self.invites.insert(ck, key.clone(), req.clone());
        match self.calls.get_mut(ck) {
            Some(c) if feature => c.reported = true,
            _ => self.emit_arrived(ck, &req, now),
        }
        if action.is_none() {
            let resp = headers::response_to(&req, 180, "Ringing", Some(&local_tag));
            self.respond(&key, resp, now);
        }
        self.run_action(ck, action, now);
    }

    fn on_ack(&mut self, req: &rsip::Request, now: Now) {
        let dialog = headers::call_id(req).zip(headers::to_tag(req));
        self.on_dialog_ack(dialog, now);
    }

    /// An ACK for a 2xx, by its dialog's (Call-ID, To tag): all an ACK's
    /// handling reads of it.
    pub(super) fn on_dialog_ack(&mut self, dialog: Option<super::CallKey>, now: Now) {
        let Some(ck) = dialog.and_then(|d| self.calls.find(&d)) else {
            return debug!("ACK for no call");
        };
        if !self.calls.get_mut(ck).is_some_and(Call::on_ack) {
            return; // a retransmitted ACK, or one for a re-INVITE
        }
        if let Some(c) = self.calls.get_mut(ck) {
            release_setup_place(&self.shared.setup, c);
        }
        if self
            .calls
            .get(ck)
            .is_some_and(|c| c.target == Target::Hangup)
        {
            // A feature code's answer: done once the phone confirmed it.
            return self.hang_up(ck, now);
        }
        self.start_ivr(ck, now);
        let direct_queue = self
            .calls
            .get(ck)
            .filter(|c| c.state == CallState::Confirmed && c.queued_at.is_none())
            .and_then(|c| c.queue().map(str::to_owned));
        if let Some(queue) = direct_queue {
            match self.calls.get_mut(ck).and_then(|c| c.ring_agent.take()) {
                Some(agent) => self.ring_consulted(ck, &queue, &agent, now),
                None => self.enter_queue(ck, &queue, 0, now),
            }
        }
    }

    fn on_bye(&mut self, key: TxKey, req: rsip::Request, now: Now) {
        match self.find_call(&req) {
            Some(ck) => {
                let in_order = self
                    .calls
                    .get_mut(ck)
                    .map(|c| c.dialog.on_remote_request(&req));
                if let Some(Err(_)) = in_order {
                    return self.reply(&key, &req, 500, now);
                }
                self.reply(&key, &req, 200, now);
                info!(call = %self.calls.call_id(ck), "caller hung up");
                self.note_hangup_by(ck, crate::events::HangupBy::Caller);
                self.end_call(ck, now);
            }
            None => self.reply(&key, &req, 481, now),
        }
    }

    fn on_cancel(&mut self, invite_key: TxKey, cancel_key: TxKey, cancel: rsip::Request, now: Now) {
        // 200 for the CANCEL itself, whatever happens to the INVITE.
        self.reply(&cancel_key, &cancel, 200, now);
        let Some(ck) = self.invites.call_of(&invite_key) else {
            return;
        };
        if !self.calls.get(ck).is_some_and(Call::is_cancellable) {
            return; // already answered: the caller will BYE
        }
        if let Some((k, inv)) = self.invites.get(ck).cloned() {
            let tag = self.calls.key(ck).map(|(_, tag)| tag.as_str());
            let resp = headers::response_to(&inv, 487, "Request Terminated", tag);
            self.respond(&k, resp, now);
        }
        info!(call = %self.calls.call_id(ck), "caller cancelled");
        self.note_hangup_by(ck, crate::events::HangupBy::Caller);
        self.end_call(ck, now);
    }

    pub(super) fn call_timeout(&mut self, ck: CallHandle, now: Now) {
        let action = self.calls.get_mut(ck).and_then(|c| c.on_timeout(now.mono));
        self.run_action(ck, action, now);
        self.agent_ring_timeout(ck, now);
        self.monitor_ring_timeout(ck, now);
        self.ivr_timeout(ck, now);
        self.announce_position(ck, now);
        self.callback_timeout(ck, now);
        self.session_timeouts(ck, now);
    }

    pub(super) fn hang_up(&mut self, ck: CallHandle, now: Now) {
        if self.is_placed_call(ck) {
            // No caller leg to BYE: its agent's and customer's legs end.
            return self.end_call(ck, now);
        }
        let action = self.calls.get_mut(ck).and_then(Call::hang_up);
        match action {
            Some(a) => self.run_action(ck, Some(a), now),
            None => self.end_call(ck, now),
        }
    }

    fn run_action(&mut self, ck: CallHandle, action: Option<CallAction>, now: Now) {
        match action {
            Some(CallAction::SendAnswer) => self.send_answer(ck, now),
            Some(CallAction::SendBye) => self.send_bye(ck, now),
            None => {}
        }
    }

    pub(super) fn send_answer(&mut self, ck: CallHandle, now: Now) {
        let Some((key, inv)) = self.invites.get(ck).cloned() else {
            return;
        };
        let Some(body) = self.caller_sdp(ck) else {
            return self.reply(&key, &inv, 488, now);
        };
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let tag = self.calls.key(ck).map(|(_, tag)| tag.as_str());
        let mut resp = headers::response_to(&inv, 200, "OK", tag);
        resp.headers.push(Header::Contact(
            self.contact_for(call.remote, &call.number).into(),
        ));
        resp.headers.push(Header::Allow(ALLOW.into()));
        resp.headers.push(Header::Supported(
            crate::sip::extensions::SUPPORTED_HEADER.into(),
        ));
        resp.headers
            .extend(super::mid_call::timer_headers(call.session.as_ref()));
        resp.headers
            .push(Header::ContentType("application/sdp".into()));
        resp.body = body.into_bytes(); // serialize() writes the Content-Length
        self.respond(&key, resp, now);
    }

    /// Our SDP for the caller's leg (the answer to its offer, or our offer
    /// when it made none), after telling the media engine where the
    /// caller's RTP goes. None when no codec fits (488).
    pub(super) fn caller_sdp(&mut self, ck: CallHandle) -> Option<String> {
        let call = self.calls.get(ck)?;
        let origin = Origin {
            session_id: call.sdp_session_id(),
            version: call.sdp_version,
        };
        let addr = self.cfg.server.advertise;
        let port = call.ports.pair().rtp;
        let policy = self.number_encryption(&call.number);
        let (body, keys) = match &call.offer {
            Some(offer) => {
                let ours = call.srtp.as_ref().map(|k| &k.local);
                let keys = answer_keys(policy, offer.secure, &offer.crypto, ours).ok()?;
                let local = keys.as_ref().map(|k| &k.local);
                (
                    sdp::answer_with(offer, addr, port, origin, local).ok()?,
                    keys,
                )
            }
            // A re-INVITE without SDP: our offer keeps the leg's keys.
            None => {
                let local = call.srtp.as_ref().map(|k| std::slice::from_ref(&k.local));
                let savp = policy == MediaEncryption::Srtp && local.is_some();
                let body = sdp::offer_with(addr, port, origin, savp, local.unwrap_or(&[]));
                (body, call.srtp.clone())
            }
        };
        let old_keys = call.srtp.clone();
        let (remote, codec, telephone_event) = media_of(call.offer.as_ref());
        // A phone that holds (sendonly/inactive) stops sending RTP: that
        // silence must not count against rtp_timeout_s.
        let sending = super::mid_call::sends(call.offer.as_ref());
        match call.leg {
            Some(leg) => {
                self.secure_leg(leg, old_keys.as_ref(), keys.as_ref());
                self.media(MediaCommand::Update {
                    leg,
                    remote,
                    codec,
                    telephone_event,
                    sending,
                })
            }
            None => {
                let leg = self.new_leg();
                self.legs.insert(leg, ck);
                if let Some(c) = self.calls.get_mut(ck) {
                    c.leg = Some(leg);
                }
                self.secure_leg(leg, None, keys.as_ref());
                self.media(MediaCommand::Open {
                    leg,
                    port,
                    remote,
                    codec,
                    telephone_event,
                });
            }
        }
        if let Some(c) = self.calls.get_mut(ck) {
            c.srtp = keys;
        }
        Some(body)
    }

    fn send_bye(&mut self, ck: CallHandle, now: Now) {
        let local = self.local_via(ck);
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let mut bye = call.dialog.new_request(Method::Bye, &local);
        if let Some(reason) = call.bye_reason {
            // RFC 3326: tell the phone why we hung up.
            bye.headers
                .push(Header::Other("Reason".into(), reason.into()));
        }
        // In-dialog requests go where the caller's packets come from, never
        // to an address a Contact or Via names (NAT, and loopback in tests).
        match self.txn.send_request(bye, call.remote, now.mono) {
            Ok(key) => {
                self.byes.insert(key, ck);
            }
            Err(e) => {
                debug!(error = %e, "could not send BYE");
                self.end_call(ck, now);
            }
        }
    }

    pub(super) fn local_via(&self, ck: CallHandle) -> LocalVia {
        let transport = self
            .calls
            .get(ck)
            .map(|c| c.remote.transport)
            .unwrap_or(crate::sip::Transport::Udp);
        LocalVia {
            transport,
            host: self.cfg.server.advertise.to_string(),
            port: self.listen_port(transport),
        }
    }

    /// Forgets a call and releases its resources (ports go back on drop).
    pub(super) fn end_call(&mut self, ck: CallHandle, now: Now) {
        self.note_handle_time(ck, now);
        self.drop_trunk_transfer(ck, now);
        self.end_attempt(ck, now);
        self.release_monitor(ck, "call_ended", now);
        self.emit_ended(ck, now);
        // The caller is gone: CANCEL or BYE the agent's leg, free the agent.
        if let Some((agent, _)) = self.release_agent_leg(ck, now) {
            self.touch_agent(&agent);
        }
        self.acd_caller_gone(ck, now);
        if let Some(leg) = self.calls.get(ck).and_then(|c| c.leg) {
            self.legs.remove(&leg);
            self.media(MediaCommand::Close { leg });
        }
        if let Some(((call_id, _), mut c)) = self.calls.remove(ck) {
            release_setup_place(&self.shared.setup, &mut c);
            self.shared.calls.fetch_sub(1, Ordering::AcqRel);
            self.txn.stop_2xx_retransmissions(&call_id);
        }
        self.invites.remove(ck);
    }

    /// Takes a place in setup for the call's source unless it is at
    /// `max_calls_in_setup_per_source` (allow-listed networks have no cap).
    fn take_setup_place(&self, call: &mut Call) -> bool {
        let ip = call.remote.addr.ip();
        let srv = &self.cfg.server;
        if srv.allow_networks.iter().any(|n| n.contains(ip)) {
            return true;
        }
        call.in_setup = self
            .shared
            .setup
            .try_take(ip, srv.max_calls_in_setup_per_source);
        call.in_setup
    }

    /// 503 with Retry-After: over `max_calls`, or draining.
    fn reject_busy(&mut self, key: &TxKey, req: &rsip::Request, now: Now) {
        let mut resp = headers::response_to(req, 503, "Service Unavailable", None);
        resp.headers
            .push(Header::RetryAfter(RETRY_AFTER_S.to_string().into()));
        self.emit_rejected(req, 503, now);
        self.reject(key, resp, now);
    }

    fn find_call(&self, req: &rsip::Request) -> Option<CallHandle> {
        self.calls
            .find(&(headers::call_id(req)?, headers::to_tag(req)?))
    }

    pub(super) fn reply(&mut self, key: &TxKey, req: &rsip::Request, code: u16, now: Now) {
        let resp = headers::response_to(req, code, reason_phrase(code), Some(&new_tag()));
        self.respond(key, resp, now);
    }

    /// A final answer to a new INVITE that is not taken (unknown number,
    /// overload), sent without retransmissions (see `send_rejection`).
    pub(super) fn reject(&mut self, key: &TxKey, resp: rsip::Response, now: Now) {
        if let Err(e) = self.txn.send_rejection(key, resp, now.mono) {
            debug!(error = %e, "response for a finished transaction");
        }
    }

    pub(super) fn respond(&mut self, key: &TxKey, resp: rsip::Response, now: Now) {
        if let Err(e) = self.txn.send_response(key, resp, now.mono) {
            debug!(error = %e, "response for a finished transaction");
        }
    }

    pub(super) fn listen_port(&self, transport: crate::sip::Transport) -> u16 {
        self.cfg
            .server
            .sip
            .iter()
            .find(|l| l.transport == transport)
            .map(|l| l.addr.port())
            .unwrap_or(5060)
    }

    pub(super) fn contact_for(&self, remote: Peer, user: &str) -> String {
        let port = self.listen_port(remote.transport);
        let transport = remote.transport.uri_param();
        format!(
            "<sip:{user}@{}:{port}{transport}>",
            self.cfg.server.advertise
        )
    }
}

pub(super) fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Gives a call's place in setup back (once: at its ACK or its end).
fn release_setup_place(setup: &crate::flood::SetupCounts, call: &mut Call) {
    if std::mem::take(&mut call.in_setup) {
        setup.release(call.remote.addr.ip());
    }
}
