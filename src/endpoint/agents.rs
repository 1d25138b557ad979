//! Offering queued calls to agents' softphones: the INVITE sipacd places to
//! an agent (caller's number in From, the call's context in `X-Sipacd-*`
//! headers), its answer, ring-no-answer, rejection, and tearing the leg
//! down with CANCEL or BYE when either side hangs up.
//!
//! Which agent is offered a call is the ACD router's decision (see
//! `routing.rs`); this file turns its offers into SIP and reports back what
//! the agent's phone did. Nothing here waits: every step is a reaction to a
//! message or a deadline.

use std::time::Duration;

use rsip::Method;
use tracing::{debug, info, warn};

use super::media::{media_of, MediaCommand};
use super::{CallHandle, Endpoint, Now};
use crate::acd::{AgentId, AgentRef};
use crate::call::agent::{AgentLeg, AgentLegState};
use crate::config::MediaEncryption;
use crate::media::crypto_attr::{accept_answer, offer_keys};
use crate::media::sdp::{self, Origin, SdpOffer};
use crate::registrar::Binding;
use crate::sip::dialog::{Dialog, LocalVia};
use crate::sip::headers;
use crate::sip::name_addr::NameAddr;
use crate::sip::transaction::{build_cancel, new_branch, TxKey};

/// The Reason (RFC 3326) of a BYE sent because no RTP ports were left.
const NO_PORTS_REASON: &str = "SIP;cause=503;text=\"No RTP ports left\"";

impl Endpoint {
    /// Sends the INVITE that offers call `ck` to agent `id` named `agent`
    /// (the router's offer from the call's queue, after `waited` in it).
    pub(super) fn offer(
        &mut self,
        ck: CallHandle,
        id: AgentId,
        agent: &str,
        waited: Duration,
        now: Now,
    ) {
        let agent = agent.to_owned();
        let Some(binding) = self.agent_binding(&agent, now) else {
            // Registered a moment ago, gone now: the router re-offers.
            debug!(%agent, "offered agent has no binding: logged out");
            return self.agent_reachable(&agent, false, now);
        };
        if !self.binding_usable(&binding) {
            // Never re-opened (RFC 5626 §5.3): logged out until it
            // registers again (the transport's close notice usually did
            // that already); the router offers the call elsewhere.
            let t = binding.source.transport;
            info!(%agent, peer = %binding.source, "the {t} connection the agent registered on is gone: logged out until it registers again");
            self.agent_reachable(&agent, false, now);
            // The router has it ringing: the offer goes back at once (as a
            // refusal, not a ring-out) and the call to the next agent.
            if let Some(acd) = self.calls.get(ck).and_then(|c| c.acd) {
                let r = self.timed(|r| r.rejected(agent_ref(Some(id), &agent), acd, now.mono));
                self.acd_result(r, now);
            }
            return;
        }
        if self.calls.get(ck).and_then(|c| c.acd).is_none() {
            return; // the caller left the queue meanwhile
        }
        let Some(ports) = self.ports.allocate() else {
            // The call cannot be bridged. Handing the offer back to the
            // router would only re-offer it at once (and again, recursively,
            // while ports stay exhausted), so the caller is told and hung
            // up; the router frees the agent when the call ends.
            warn!(call = %self.calls.call_id(ck), %agent, "no RTP ports left for the agent leg: hanging up");
            if let Some(call) = self.calls.get_mut(ck) {
                call.bye_reason = Some(NO_PORTS_REASON);
            }
            return self.hang_up(ck, now);
        };
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let queue = call.queue().unwrap_or_default().to_owned();
        let ring = self.cfg.queues.get(&queue).map_or(15, |q| q.ring_timeout_s);
        let wait = waited.as_secs();
        let caller = call.caller.clone();
        // Screen pop: one header per IVR variable. Names are config
        // identifiers and values are DTMF digits, both header-safe.
        let vars: String = call
            .ivr
            .as_ref()
            .map(|run| {
                run.variables()
                    .iter()
                    .filter(|(k, _)| {
                        k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    })
                    .map(|(k, v)| format!("X-Sipacd-Var-{k}: {v}\r\n"))
                    .collect()
            })
            .unwrap_or_default();
        // A callback's call: the agent's phone shows whom it calls back.
        let vars = match &call.attempt {
            Some(a) => format!("{vars}X-Sipacd-Callback: {}\r\n", a.number),
            None => vars,
        };
        let peer = binding.source;
        let local = LocalVia {
            transport: peer.transport,
            host: self.cfg.server.advertise.to_string(),
            port: self.listen_port(peer.transport),
        };
        let domain = &self.cfg.server.domain;
        let contact = binding.contact.trim_matches(|c| c == '<' || c == '>');
        // A sips: target asks for a sips: Contact (RFC 3261 §8.1.1.8),
        // which says TLS by itself.
        let (scheme, tp) = match contact.get(..5) {
            Some(s) if s.eq_ignore_ascii_case("sips:") => ("sips", ""),
            _ => ("sip", peer.transport.uri_param()),
        };
        let origin = Origin {
            session_id: u64::from(ports.pair().rtp),
            version: 1,
        };
        let policy = self.agent_encryption(&agent);
        let srtp_offered = offer_keys(policy);
        let offer = sdp::offer_with(
            self.cfg.server.advertise,
            ports.pair().rtp,
            origin,
            policy == MediaEncryption::Srtp,
            &srtp_offered,
        );
        // The text is parsed for the leg's dialog and sent as written: it
        // is not serialised a second time.
        let text = format!(
            "INVITE {contact} SIP/2.0\r\n\
             Via: SIP/2.0/{t} {host}:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"{caller}\" <sip:{caller}@{domain}>;tag={tag}\r\n\
             To: <sip:{agent}@{domain}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <{scheme}:sipacd@{host}:{port}{tp}>\r\n\
             Allow: {allow}\r\n\
             Supported: {supported}\r\n\
             X-Sipacd-Queue: {queue}\r\n\
             X-Sipacd-Wait: {wait}\r\n\
             {vars}Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{offer}",
            len = offer.len(),
            t = peer.transport,
            host = local.host,
            port = local.port,
            branch = new_branch(),
            tag = super::calls::new_tag(),
            cid = super::shard::call_id_for(self.shard, &local.host),
            allow = super::ALLOW,
            supported = crate::sip::extensions::SUPPORTED_HEADER,
        );
        // Our parser, not rsip's: a registered contact may hold a URI rsip
        // refuses (a GRUU's `;gr=urn:uuid:…`).
        let Ok(rsip::SipMessage::Request(invite)) = crate::sip::message::parse(text.as_bytes())
        else {
            // The router has the agent ringing: without an INVITE nothing
            // would ever end that. The contact is unusable: logged out.
            warn!(%agent, contact = %binding.contact, "cannot build an INVITE to this contact: agent logged out");
            return self.agent_reachable(&agent, false, now);
        };
        let invite = std::sync::Arc::new(invite);
        let key = match self
            .txn
            .send_request_as(invite.clone(), text.into(), peer, now.mono)
        {
            Ok(k) => k,
            Err(e) => {
                warn!(%agent, error = %e, "agent INVITE not sent: agent logged out");
                return self.agent_reachable(&agent, false, now);
            }
        };
        info!(call = %self.calls.call_id(ck), %agent, %queue, wait_s = wait, "offering call to agent");
        self.emit_offered(ck, &agent, now);
        self.agent_invites.insert(key.clone(), ck);
        if let Some(call) = self.calls.get_mut(ck) {
            if let Some(old) = call.agent.take() {
                warn!(call = %call.dialog.call_id, agent = %old.agent_id, "second offer while one was out");
            }
            call.agent = Some(AgentLeg {
                agent: Some(id),
                agent_id: agent,
                invite,
                invite_key: key,
                peer,
                flow_only: super::flows::flow_only(&binding),
                state: AgentLegState::Offering,
                ring_deadline: now.mono + Duration::from_secs(ring),
                dialog: None,
                ports,
                offered_at: now.mono,
                leg: None,
                remote_sdp: None,
                sdp_version: 1,
                session: None,
                srtp_offered,
                srtp: None,
            });
        }
    }

    /// A response to an agent INVITE. Returns false if `key` is not one.
    pub(super) fn on_agent_response(
        &mut self,
        key: &TxKey,
        resp: &rsip::Response,
        now: Now,
    ) -> bool {
        let Some(ck) = self.agent_invites.get(key).cloned() else {
            return false;
        };
        let code = resp.status_code.code();
        if code < 200 {
            return true;
        }
        self.agent_invites.remove(key);
        if (200..300).contains(&code) {
            self.agent_answered(ck, resp, now);
        } else if matches!(code, 486 | 600 | 603) {
            // Busy or declined: the transaction layer already sent the
            // ACK; the router offers the call elsewhere.
            self.agent_refused(ck, code, now);
        } else {
            // 404, 408, 480, 5xx...: the phone cannot take calls at all.
            // Like Asterisk's autopause on unavailable: paused as a ring
            // no answer, or it would be offered every call and refuse all.
            info!(call = %self.calls.call_id(ck), code, "agent's phone failed the offer: treated as ring no answer");
            self.withdraw_rona(ck, now);
        }
        true
    }

    /// The agent's phone said no (or never answered at all).
    pub(super) fn agent_refused(&mut self, ck: CallHandle, code: u16, now: Now) {
        if let Some(leg) = self.calls.get_mut(ck).and_then(|c| c.agent.as_mut()) {
            leg.state = AgentLegState::Ending; // nothing to CANCEL any more
        }
        let acd = self.calls.get(ck).and_then(|c| c.acd);
        let offered_at = self.offered_at(ck);
        if let (Some((agent, id)), Some(acd)) = (self.release_agent_leg(ck, now), acd) {
            info!(call = %self.calls.call_id(ck), %agent, code, "agent refused the call");
            // queue_log readers count every offer that was not taken.
            self.emit_ring_no_answer(ck, &agent, offered_at, now);
            self.touch_agent_ref(agent_ref(id, &agent));
            let r = self.timed(|r| r.rejected(agent_ref(id, &agent), acd, now.mono));
            self.acd_result(r, now);
        }
    }

    fn agent_answered(&mut self, ck: CallHandle, resp: &rsip::Response, now: Now) {
        let local = self.local_via(ck);
        let Some(leg) = self.calls.get_mut(ck).and_then(|c| c.agent.as_mut()) else {
            return;
        };
        let mut dialog = match Dialog::from_uac(&leg.invite, resp) {
            Ok(d) => d,
            // Not ACKed: the phone retransmits, then gives up (RONA follows).
            Err(e) => {
                return warn!(call = %self.calls.call_id(ck), error = %e, "agent 2xx without a usable dialog")
            }
        };
        let mut local = local;
        local.transport = leg.peer.transport;
        let ack = dialog.new_request(Method::Ack, &local);
        self.txn.send_stateless(ack, leg.peer);
        let answer = SdpOffer::parse(&resp.body).ok();
        leg.state = AgentLegState::Connected;
        leg.remote_sdp = answer.clone();
        leg.session = crate::sip::session_timer::from_uac_response(resp, now.mono);
        let agent = leg.agent_id.clone();
        let agent_id = leg.agent;
        let port = leg.ports.pair().rtp;
        let dialog_key = (dialog.call_id.clone(), dialog.local_tag.clone());
        let agent_call_id = dialog.call_id.clone();
        leg.dialog = Some(dialog);
        let offered = std::mem::take(&mut leg.srtp_offered);
        self.agent_dialogs.insert(dialog_key, ck);
        let policy = self.agent_encryption(&agent);
        let answered = answer.as_ref().map_or(&[][..], |a| &a.crypto[..]);
        let keys = match accept_answer(policy, &offered, answered) {
            Ok(k) => k,
            Err(e) => {
                // Connected, so the leg's release sends the BYE.
                warn!(call = %self.calls.call_id(ck), %agent, reason = %e, "agent answered without SRTP: treated as ring no answer");
                return self.withdraw_rona(ck, now);
            }
        };
        let agent_leg = self.new_leg();
        if let Some(l) = self.calls.get_mut(ck).and_then(|c| c.agent.as_mut()) {
            l.leg = Some(agent_leg);
        }
        self.legs.insert(agent_leg, ck);
        let (remote, codec, telephone_event) = media_of(answer.as_ref());
        self.secure_leg(agent_leg, None, keys.as_ref());
        if let Some(l) = self.calls.get_mut(ck).and_then(|c| c.agent.as_mut()) {
            l.srtp = keys;
        }
        self.media(MediaCommand::Open {
            leg: agent_leg,
            port,
            remote,
            codec,
            telephone_event,
        });
        self.bridge_answered(ck, now);
        if let Some(q) = self
            .calls
            .get(ck)
            .and_then(|c| c.queue().map(str::to_owned))
        {
            self.note_answered(&q, now);
        }
        if let Some(acd) = self.calls.get_mut(ck).and_then(|c| {
            c.answered_at = Some(now.wall);
            c.agent_id = Some(agent.clone());
            c.acd
        }) {
            self.touch_agent_ref(agent_ref(agent_id, &agent));
            if let Err(e) = self
                .router
                .answered(agent_ref(agent_id, &agent), acd, now.mono)
            {
                debug!(error = %e, "router did not expect this answer");
            }
        }
        self.emit_answered(ck, &agent, &agent_call_id, now);
        info!(call = %self.calls.call_id(ck), %agent, "agent answered: bridged");
    }

    /// When the agent leg of `ck` started ringing.
    fn offered_at(&self, ck: CallHandle) -> Option<std::time::Instant> {
        self.calls
            .get(ck)
            .and_then(|c| c.agent.as_ref())
            .map(|l| l.offered_at)
    }

    /// Ring no answer: withdraw the offer, pause the agent, try the next.
    pub(super) fn agent_ring_timeout(&mut self, ck: CallHandle, now: Now) {
        let due = self
            .calls
            .get(ck)
            .and_then(|c| c.agent.as_ref())
            .is_some_and(|l| l.state == AgentLegState::Offering && l.ring_deadline <= now.mono);
        if due {
            self.withdraw_rona(ck, now);
        }
    }

    /// Withdraws the offer of `ck` and pauses its agent `rona`.
    fn withdraw_rona(&mut self, ck: CallHandle, now: Now) {
        let acd = self.calls.get(ck).and_then(|c| c.acd);
        let offered_at = self.offered_at(ck);
        if let (Some((agent, id)), Some(acd)) = (self.release_agent_leg(ck, now), acd) {
            info!(call = %self.calls.call_id(ck), %agent, "ring no answer: agent paused (rona)");
            self.touch_agent_ref(agent_ref(id, &agent));
            self.emit_ring_no_answer(ck, &agent, offered_at, now);
            let r = self.timed(|r| r.ring_no_answer(agent_ref(id, &agent), acd, now.mono));
            if r.is_ok() {
                // Asterisk's autopause logs the pause too.
                self.emit_paused(&agent, Some(crate::acd::RONA), now);
            }
            self.acd_result(r, now);
        }
    }

    /// A BYE from an agent's phone. Returns false if it is not for an
    /// agent leg.
    pub(super) fn on_agent_bye(&mut self, key: &TxKey, req: &rsip::Request, now: Now) -> bool {
        let id = (
            headers::call_id(req).unwrap_or_default(),
            headers::to_tag(req).unwrap_or_default(),
        );
        let Some(ck) = self.agent_dialogs.remove(&id) else {
            return false;
        };
        self.reply(key, req, 200, now);
        // Gone after its REFER to an outside number: the transfer goes on.
        let transferring = self.trunk_transfer_ringing(ck);
        // A transferor's caller goes on to the transfer, not the survey.
        let survey = (!transferring).then(|| self.survey_target(ck)).flatten();
        let call = self.calls.get_mut(ck);
        let acd = call.as_ref().and_then(|c| c.acd);
        let mut agent = None;
        if let Some(leg) = call.and_then(|c| c.agent.take()) {
            info!(call = %self.calls.call_id(ck), agent = %leg.agent_id, "agent hung up");
            self.agent_leg_left(&leg, now);
            self.release_monitor(ck, "agent_left", now);
            if !transferring {
                self.note_hangup_by(ck, crate::events::HangupBy::Agent);
            }
            if let Some(l) = leg.leg {
                self.legs.remove(&l);
                self.media(MediaCommand::Close { leg: l });
            }
            self.touch_agent_ref(leg.agent_ref());
            if let Some(acd) = acd {
                if survey.is_some() {
                    // The router is done with the call; the caller stays.
                    if let Some(c) = self.calls.get_mut(ck) {
                        c.acd = None;
                    }
                    self.acd_calls.remove(&acd);
                }
                let r = self.timed(|r| r.call_ended(leg.agent_ref(), acd, now.mono));
                self.acd_result(r, now);
            }
            if transferring {
                self.transferor_left(ck, leg.agent_id, now);
                return true;
            }
            agent = Some(leg.agent_id);
        }
        match (survey, agent) {
            (Some(target), Some(agent)) => self.start_survey(ck, agent, target, now),
            _ => self.hang_up(ck, now),
        }
        true
    }

    /// Ends the agent leg of `ck` (CANCEL while offering, BYE once
    /// connected) and frees the agent. Returns the agent's name and the
    /// router's id for it.
    pub(super) fn release_agent_leg(
        &mut self,
        ck: CallHandle,
        now: Now,
    ) -> Option<(String, Option<AgentId>)> {
        // A supervisor hears this agent's call: not the next one's.
        self.release_monitor(ck, "agent_left", now);
        let mut leg = self.calls.get_mut(ck)?.agent.take()?;
        self.agent_invites.remove(&leg.invite_key);
        self.agent_leg_left(&leg, now);
        let target = self.agent_leg_target(&leg);
        match (leg.state, target) {
            (AgentLegState::Offering, Some(to)) => {
                if let Ok(cancel) = build_cancel(&leg.invite) {
                    let _ = self.txn.send_request(cancel, to, now.mono);
                }
            }
            (AgentLegState::Connected, Some(to)) => {
                if let Some(dialog) = leg.dialog.as_mut() {
                    self.agent_dialogs
                        .remove(&(dialog.call_id.clone(), dialog.local_tag.clone()));
                    let mut local = self.local_via(ck);
                    local.transport = to.transport;
                    let bye = dialog.new_request(Method::Bye, &local);
                    let _ = self.txn.send_request(bye, to, now.mono);
                }
            }
            (AgentLegState::Offering | AgentLegState::Connected, None) => {
                if let Some(d) = leg.dialog.as_ref() {
                    self.agent_dialogs
                        .remove(&(d.call_id.clone(), d.local_tag.clone()));
                }
                // RFC 5626 §5.3: the phone's flow is gone and is not
                // re-created; its side of the dialog ends when it finds
                // its connection closed.
                info!(call = %self.calls.call_id(ck), agent = %leg.agent_id, peer = %leg.peer, "the agent's connection is gone: its leg ended without a BYE (never sent over a new connection)");
            }
            (AgentLegState::Ending, _) => {}
        }
        leg.state = AgentLegState::Ending;
        if let Some(l) = leg.leg {
            self.legs.remove(&l);
            self.media(MediaCommand::Close { leg: l });
            // The caller hears the queue's music again while waiting.
            self.play_music(ck);
        }
        Some((leg.agent_id, leg.agent))
    }
}

impl Endpoint {
    /// Where agent `id`'s phone is reached now: its static contact, or its
    /// freshest registration.
    pub(super) fn agent_binding(&self, id: &str, now: Now) -> Option<Binding> {
        let agent = self.cfg.agents.get(id)?;
        match &agent.contact {
            Some(uri) => static_binding(uri, now),
            // The newest usable one; an unusable one only when no other
            // is left (the offer then logs the agent out).
            None => self
                .registrar()
                .bindings(id, now.wall)
                .into_iter()
                .max_by_key(|b| (self.binding_usable(b), b.expires_at)),
        }
    }

    /// Queue music on the caller's leg, if the queue has some.
    pub(super) fn play_music(&mut self, ck: CallHandle) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let (Some(leg), Some(q)) = (call.leg, call.queue()) else {
            return;
        };
        if let Some(music) = self.cfg.queues.get(q).and_then(|q| q.music.clone()) {
            self.media(MediaCommand::Play {
                leg,
                prompts: vec![music],
                looped: true,
            });
        }
    }
}

/// How the router is told which agent: by id when the offer had one.
fn agent_ref(id: Option<AgentId>, name: &str) -> AgentRef<'_> {
    match id {
        Some(id) => AgentRef::Id(id, name),
        None => AgentRef::Name(name),
    }
}

/// A static `contact` (`sip:user@IP:PORT[;transport=tcp]`) as a binding.
/// Only IP addresses: sipacd never resolves names on the call path. (Its
/// OPTIONS qualify pings come with the router's agent states.)
pub(super) fn static_binding(uri: &str, now: Now) -> Option<Binding> {
    let rest = uri.strip_prefix("sip:")?;
    let (hostport, params) = rest.split_once(';').unwrap_or((rest, ""));
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let addr: std::net::SocketAddr = match hostport.parse() {
        Ok(a) => a,
        Err(_) => std::net::SocketAddr::new(hostport.parse().ok()?, 5060),
    };
    let tcp = params.to_ascii_lowercase().contains("transport=tcp");
    Some(Binding {
        contact: uri.to_owned(),
        source: if tcp {
            crate::sip::Peer::tcp(addr)
        } else {
            crate::sip::Peer::udp(addr)
        },
        expires_at: now.wall + Duration::from_secs(3600),
        call_id: String::new(),
        cseq: 0,
        q: None,
        instance: None,
        reg_id: None,
        outbound: false,
        restored: false,
    })
}

/// The caller's number: the user part of the INVITE's From URI.
pub(super) fn caller_number(invite: &rsip::Request) -> String {
    headers::header_value(invite, "From")
        .and_then(|v| NameAddr::parse(&v).ok())
        .and_then(|a| a.user().map(str::to_owned))
        .filter(|u| {
            u.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-_.*#".contains(c))
        })
        .unwrap_or_else(|| "anonymous".into())
}
