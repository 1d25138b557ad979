//! Calls sipacd places through a trunk (`[trunks.NAME]`): the engine-level
//! API a feature that calls out uses ([`Endpoint::place_trunk_call`],
//! [`Endpoint::hang_up_trunk_call`]), and what the gateway's answers do.
//! Each step is an [`EventKind::Trunk`] event; the caller of the API
//! follows the call by its id in the stream.
//!
//! The leg uses the agent legs' machinery: the transaction layer (which
//! ACKs non-2xx answers itself), `Dialog::from_uac`, the SDP offer and the
//! media task's `Open`. A gateway's 401/407 is answered once as a UAC
//! (RFC 3261 §22.2): the same INVITE again with `Authorization` or
//! `Proxy-Authorization`, CSeq + 1, same Call-ID and From tag, a new branch.

use std::sync::Arc;
use std::time::Duration;

use rsip::Method;
use tracing::{info, warn};

use super::media::{media_of, MediaCommand};
use super::{Endpoint, Now};
use crate::call::trunk::{TrunkLeg, TrunkLegState};
use crate::config::Trunk;
use crate::events::{EventKind, TrunkCallRef, TrunkStep};
use crate::media::sdp::{self, Origin, SdpOffer};
use crate::registrar::digest_uac;
use crate::sip::dialog::{set_body, Dialog, LocalVia};
use crate::sip::headers;
use crate::sip::transaction::{build_cancel, new_branch, TxKey};

/// Why a call could not be placed at all (nothing was sent, no event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrunkCallError {
    #[error("no trunk `{0}` in the configuration")]
    UnknownTrunk(String),
    #[error("trunk `{trunk}` has its {max} calls in progress already")]
    Full { trunk: String, max: u32 },
    #[error("`{0}` is not a number to call (digits, + * #, letters)")]
    BadNumber(String),
    #[error("no RTP ports left")]
    NoPorts,
    #[error("draining: no new calls")]
    Draining,
    #[error("INVITE not sent: {0}")]
    Send(String),
}

impl Endpoint {
    /// Calls `to` through trunk `trunk`. Returns the call's reference; its
    /// steps (ringing, answered, failed with the SIP code, ended) follow
    /// as [`EventKind::Trunk`] events. Not answered within `ring_timeout`,
    /// the call is cancelled and fails with 487.
    pub fn place_trunk_call(
        &mut self,
        trunk: &str,
        to: &str,
        ring_timeout: Duration,
        now: Now,
    ) -> Result<TrunkCallRef, TrunkCallError> {
        if self.draining {
            return Err(TrunkCallError::Draining);
        }
        let t = self
            .cfg
            .trunks
            .get(trunk)
            .cloned()
            .ok_or_else(|| TrunkCallError::UnknownTrunk(trunk.to_owned()))?;
        let valid = !to.is_empty()
            && to.len() <= 64
            && to
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+*#-_.".contains(c));
        if !valid {
            return Err(TrunkCallError::BadNumber(to.to_owned()));
        }
        if !self.take_trunk_place(&t) {
            return Err(TrunkCallError::Full {
                trunk: t.name.clone(),
                max: t.max_calls,
            });
        }
        let Some(ports) = self.ports.allocate() else {
            self.release_trunk_place(&t.name);
            return Err(TrunkCallError::NoPorts);
        };
        let local = self.trunk_via(&t);
        let call_id: Arc<str> = super::shard::call_id_for(self.shard, &local.host).into();
        let from_tag = super::calls::new_tag();
        let origin = Origin {
            session_id: u64::from(ports.pair().rtp),
            version: 1,
        };
        let offer = sdp::offer_with(
            self.cfg.server.advertise,
            ports.pair().rtp,
            origin,
            false,
            &[],
        );
        let invite = match self.trunk_invite(&t, to, &call_id, &from_tag, 1, &offer, None) {
            Some(i) => i,
            None => {
                self.release_trunk_place(&t.name);
                return Err(TrunkCallError::BadNumber(to.to_owned()));
            }
        };
        let key = match self.txn.send_request(invite.clone(), t.peer, now.mono) {
            Ok(k) => k,
            Err(e) => {
                self.release_trunk_place(&t.name);
                return Err(TrunkCallError::Send(e.to_string()));
            }
        };
        self.next_trunk += 1;
        let id = self.shard.make_id(self.next_trunk);
        let call = TrunkCallRef {
            id,
            call_id: call_id.clone(),
        };
        info!(call = %call_id, trunk = %t.name, %to, "calling out through the trunk");
        self.trunk_invites.insert(key.clone(), id);
        self.trunk_calls.insert(
            id,
            TrunkLeg {
                id,
                call_id,
                trunk: t.clone(),
                to: to.to_owned(),
                from_tag,
                invite,
                invite_key: key,
                offer,
                cseq: 1,
                state: TrunkLegState::Inviting,
                authenticated: false,
                ringing_seen: false,
                ring_deadline: now.mono + ring_timeout,
                dialog: None,
                ports,
                answered_at: None,
                leg: None,
            },
        );
        self.emit_trunk(id, TrunkStep::Placed, now);
        Ok(call)
    }

    /// Hangs up an outbound call: CANCEL while it rings (it then fails
    /// with 487), BYE once answered (it ends at once).
    pub fn hang_up_trunk_call(&mut self, id: u64, now: Now) {
        let Some(leg) = self.trunk_calls.get(&id) else {
            return;
        };
        let (state, trunk) = (leg.state, leg.trunk.clone());
        match state {
            TrunkLegState::Inviting => {
                if let Ok(cancel) = build_cancel(&leg.invite) {
                    let _ = self.txn.send_request(cancel, trunk.peer, now.mono);
                }
                if let Some(leg) = self.trunk_calls.get_mut(&id) {
                    leg.state = TrunkLegState::Cancelling;
                }
            }
            TrunkLegState::Cancelling => {}
            TrunkLegState::Connected => {
                let local = self.trunk_via(&trunk);
                let bye = self
                    .trunk_calls
                    .get_mut(&id)
                    .and_then(|l| l.dialog.as_mut())
                    .map(|d| d.new_request(Method::Bye, &local));
                if let Some(bye) = bye {
                    let _ = self.txn.send_request(bye, trunk.peer, now.mono);
                }
                self.end_trunk_call(id, false, now);
            }
        }
    }

    /// The media leg of an answered outbound call (to bridge it).
    pub fn trunk_media_leg(&self, id: u64) -> Option<super::LegId> {
        self.trunk_calls.get(&id).and_then(|l| l.leg)
    }

    /// Outbound calls in progress on this shard.
    pub fn trunk_calls_in_progress(&self) -> usize {
        self.trunk_calls.len()
    }

    /// A response to an outbound INVITE. Returns false if `key` is not one.
    pub(super) fn on_trunk_response(
        &mut self,
        key: &TxKey,
        resp: &rsip::Response,
        now: Now,
    ) -> bool {
        let Some(id) = self.trunk_invites.get(key).copied() else {
            return false;
        };
        let code = resp.status_code.code();
        if code < 200 {
            let first = self.trunk_calls.get_mut(&id).is_some_and(|l| {
                (180..=183).contains(&code) && !std::mem::replace(&mut l.ringing_seen, true)
            });
            if first {
                self.emit_trunk(id, TrunkStep::Ringing { code }, now);
            }
            return true;
        }
        self.trunk_invites.remove(key);
        match code {
            200..=299 => self.trunk_answered(id, resp, now),
            401 | 407 if self.retry_with_credentials(id, resp, now) => {}
            _ => {
                let reason = resp.status_code.to_string();
                self.fail_trunk_call(id, code, reason, now);
            }
        }
        true
    }

    /// The outbound INVITE `key` was never answered. Returns false if it
    /// is not one.
    pub(super) fn on_trunk_timeout(&mut self, key: &TxKey, now: Now) -> bool {
        let Some(id) = self.trunk_invites.remove(key) else {
            return false;
        };
        self.fail_trunk_call(id, 408, "no answer from the gateway".into(), now);
        true
    }

    /// A BYE from a trunk's gateway. Returns false if it is not for an
    /// outbound call.
    pub(super) fn on_trunk_bye(&mut self, key: &TxKey, req: &rsip::Request, now: Now) -> bool {
        let dialog = (
            headers::call_id(req).unwrap_or_default(),
            headers::to_tag(req).unwrap_or_default(),
        );
        let Some(id) = self.trunk_dialogs.get(&dialog).copied() else {
            return false;
        };
        self.reply(key, req, 200, now);
        info!(call = %dialog.0, "the trunk's far end hung up");
        self.end_trunk_call(id, true, now);
        true
    }

    /// A gateway's 2xx again (our ACK was lost): ACKed again (RFC 3261
    /// §13.2.2.4). Returns false if it is not for an outbound call.
    pub(super) fn on_trunk_2xx_again(&mut self, resp: &rsip::Response) -> bool {
        let dialog = (
            headers::call_id(resp).unwrap_or_default(),
            headers::from_tag(resp).unwrap_or_default(),
        );
        let Some(id) = self.trunk_dialogs.get(&dialog).copied() else {
            return false;
        };
        let Some(trunk) = self.trunk_calls.get(&id).map(|l| l.trunk.clone()) else {
            return false;
        };
        let local = self.trunk_via(&trunk);
        let ack = self
            .trunk_calls
            .get_mut(&id)
            .and_then(|l| l.dialog.as_mut())
            .map(|d| d.new_request(Method::Ack, &local));
        if let Some(ack) = ack {
            self.txn.send_stateless(ack, trunk.peer);
        }
        true
    }

    /// Outbound calls whose ring timeout passed are cancelled (only those:
    /// the legs' deadline table hands them out).
    pub(super) fn trunk_timeouts(&mut self, now: Now) {
        for id in self.trunk_calls.due(now.mono) {
            let ringing_too_long = self
                .trunk_calls
                .get(&id)
                .and_then(TrunkLeg::poll_timeout)
                .is_some_and(|t| t <= now.mono);
            if ringing_too_long {
                info!(id, "outbound call not answered in time: cancelled");
                self.hang_up_trunk_call(id, now);
            }
        }
    }

    /// Answers a 401/407 once. False when it cannot (no credentials, a
    /// second challenge, an unusable challenge): the call then fails.
    fn retry_with_credentials(&mut self, id: u64, resp: &rsip::Response, now: Now) -> bool {
        let Some(leg) = self.trunk_calls.get(&id) else {
            return false;
        };
        let Some(auth) = leg.trunk.auth.clone() else {
            warn!(call = %leg.call_id, trunk = %leg.trunk.name, "gateway asks for credentials the trunk has none of");
            return false;
        };
        if leg.authenticated || leg.state != TrunkLegState::Inviting {
            warn!(call = %leg.call_id, trunk = %leg.trunk.name, "gateway refused the trunk's credentials");
            return false;
        }
        let proxy = resp.status_code.code() == 407;
        let (ask, answer_as) = if proxy {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let challenge = headers::header_values(resp, ask)
            .iter()
            .find_map(|v| digest_uac::parse_challenge(v).ok());
        let Some(challenge) = challenge else {
            warn!(call = %leg.call_id, trunk = %leg.trunk.name, "gateway's challenge is not a digest sipacd can answer");
            return false;
        };
        let uri = leg.invite.uri.to_string();
        let cnonce = super::calls::new_tag();
        let value = digest_uac::answer(
            &challenge,
            &auth.username,
            &auth.password,
            "INVITE",
            &uri,
            &cnonce,
        );
        let (t, to, call_id, tag, cseq, offer) = (
            leg.trunk.clone(),
            leg.to.clone(),
            leg.call_id.clone(),
            leg.from_tag.clone(),
            leg.cseq + 1,
            leg.offer.clone(),
        );
        let Some(invite) = self.trunk_invite(
            &t,
            &to,
            &call_id,
            &tag,
            cseq,
            &offer,
            Some((answer_as, &value)),
        ) else {
            return false;
        };
        let key = match self.txn.send_request(invite.clone(), t.peer, now.mono) {
            Ok(k) => k,
            Err(e) => {
                warn!(call = %call_id, error = %e, "INVITE with credentials not sent");
                return false;
            }
        };
        self.trunk_invites.insert(key.clone(), id);
        if let Some(leg) = self.trunk_calls.get_mut(&id) {
            leg.invite = invite;
            leg.invite_key = key;
            leg.cseq = cseq;
            leg.authenticated = true;
        }
        info!(call = %call_id, trunk = %t.name, "gateway challenged: INVITE sent again with credentials");
        self.emit_trunk(
            id,
            TrunkStep::Authenticated {
                code: resp.status_code.code(),
            },
            now,
        );
        true
    }

    fn trunk_answered(&mut self, id: u64, resp: &rsip::Response, now: Now) {
        let Some(leg) = self.trunk_calls.get(&id) else {
            return;
        };
        let local = self.trunk_via(&leg.trunk.clone());
        let cancelled = leg.state == TrunkLegState::Cancelling;
        let Some(leg) = self.trunk_calls.get_mut(&id) else {
            return;
        };
        let mut dialog = match Dialog::from_uac(&leg.invite, resp) {
            Ok(d) => d,
            Err(e) => {
                warn!(call = %leg.call_id, error = %e, "gateway 2xx without a usable dialog");
                return self.fail_trunk_call(id, 502, "2xx without a usable dialog".into(), now);
            }
        };
        let ack = dialog.new_request(Method::Ack, &local);
        self.txn.send_stateless(ack, leg.trunk.peer);
        leg.state = TrunkLegState::Connected;
        leg.answered_at = Some(now.mono);
        self.trunk_dialogs
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), id);
        leg.dialog = Some(dialog);
        let answer = SdpOffer::parse(&resp.body).ok();
        let port = leg.ports.pair().rtp;
        let media_leg = self.new_leg();
        if let Some(leg) = self.trunk_calls.get_mut(&id) {
            leg.leg = Some(media_leg);
        }
        let (remote, codec, telephone_event) = media_of(answer.as_ref());
        self.media(MediaCommand::Open {
            leg: media_leg,
            port,
            remote,
            codec,
            telephone_event,
        });
        self.emit_trunk(id, TrunkStep::Answered, now);
        if cancelled {
            // Our CANCEL crossed the 2xx: the call is up, so it gets a BYE.
            self.hang_up_trunk_call(id, now);
        } else {
            self.trunk_transfer_answered(id, now);
            self.callback_trunk_answered(id, now);
        }
    }

    fn fail_trunk_call(&mut self, id: u64, code: u16, reason: String, now: Now) {
        let Some(leg) = self.trunk_calls.get(&id) else {
            return;
        };
        info!(call = %leg.call_id, trunk = %leg.trunk.name, code, %reason, "outbound call failed");
        self.emit_trunk(id, TrunkStep::Failed { code, reason }, now);
        self.forget_trunk_call(id);
    }

    fn end_trunk_call(&mut self, id: u64, by_remote: bool, now: Now) {
        let talk = self
            .trunk_calls
            .get(&id)
            .and_then(|l| l.answered_at)
            .map_or(Duration::ZERO, |t| now.mono.saturating_duration_since(t));
        self.emit_trunk(id, TrunkStep::Ended { by_remote, talk }, now);
        self.forget_trunk_call(id);
    }

    /// Releases the call's media, ports, maps and place on its trunk.
    fn forget_trunk_call(&mut self, id: u64) {
        let Some(leg) = self.trunk_calls.remove(&id) else {
            return;
        };
        self.trunk_invites.remove(&leg.invite_key);
        if let Some(d) = &leg.dialog {
            self.trunk_dialogs
                .remove(&(d.call_id.clone(), d.local_tag.clone()));
        }
        if let Some(l) = leg.leg {
            self.media(MediaCommand::Close { leg: l });
        }
        self.release_trunk_place(&leg.trunk.name);
    }

    fn emit_trunk(&mut self, id: u64, step: TrunkStep, now: Now) {
        let Some(leg) = self.trunk_calls.get(&id) else {
            return;
        };
        let kind = EventKind::Trunk {
            call: TrunkCallRef {
                id,
                call_id: leg.call_id.clone(),
            },
            trunk: leg.trunk.name.clone(),
            to: leg.to.clone(),
            step: step.clone(),
        };
        self.emit(kind, now);
        // A call placed for a transfer or a callback moves its call on.
        self.trunk_transfer_step(id, &step, now);
        self.callback_trunk_step(id, &step, now);
    }

    fn trunk_via(&self, t: &Trunk) -> LocalVia {
        LocalVia {
            transport: t.peer.transport,
            host: self.cfg.server.advertise.to_string(),
            port: self.listen_port(t.peer.transport),
        }
    }

    /// Counts a call on `t` (across shards); false at its `max_calls`.
    fn take_trunk_place(&self, t: &Trunk) -> bool {
        let mut busy = super::shard::lock(&self.shared.trunk_calls);
        let n = busy.entry(t.name.clone()).or_default();
        if t.max_calls > 0 && *n >= t.max_calls {
            return false;
        }
        *n += 1;
        true
    }

    fn release_trunk_place(&self, trunk: &str) {
        let mut busy = super::shard::lock(&self.shared.trunk_calls);
        if let Some(n) = busy.get_mut(trunk) {
            *n = n.saturating_sub(1);
        }
    }

    /// The INVITE to `to` on `t`, with `auth` (header name, value) when
    /// answering a challenge.
    #[allow(clippy::too_many_arguments)]
    fn trunk_invite(
        &self,
        t: &Trunk,
        to: &str,
        call_id: &str,
        from_tag: &str,
        cseq: u32,
        offer: &str,
        auth: Option<(&str, &str)>,
    ) -> Option<rsip::Request> {
        let local = self.trunk_via(t);
        let auth = auth
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "INVITE sip:{to}@{host}{params} SIP/2.0\r\n\
             Via: SIP/2.0/{tp} {me}:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{caller}@{domain}>;tag={from_tag}\r\n\
             To: <sip:{to}@{host}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:sipacd@{me}:{port}{params}>\r\n\
             Allow: {allow}\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            host = t.host,
            params = t.uri_params,
            tp = local.transport,
            me = local.host,
            port = local.port,
            branch = new_branch(),
            caller = t.caller_id,
            domain = self.cfg.server.domain,
            allow = super::ALLOW,
        );
        let Ok(rsip::SipMessage::Request(mut invite)) = crate::sip::message::parse(text.as_bytes())
        else {
            return None;
        };
        set_body(&mut invite, "application/sdp", offer.as_bytes().to_vec());
        Some(invite)
    }
}
