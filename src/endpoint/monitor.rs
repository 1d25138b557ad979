//! Listen, whisper and barge: the admin API asks for a supervisor on a
//! bridged call; sipacd calls the supervisor's phone (a registered agent's
//! binding, or a SIP URI with an IP address) as it calls agents, and once
//! it answers tells the media engine to mix it into the call. The mode
//! changes on the same leg; the leg ends on DELETE, when the supervisor
//! hangs up, or with the call (or its agent leg).

use std::time::Duration;

use rsip::Method;
use tracing::{info, warn};

use super::agents::static_binding;
use super::media::{media_of, MediaCommand};
use super::{CallHandle, Endpoint, Now};
use crate::call::agent::AgentLegState;
use crate::call::monitor::{MonitorLeg, MonitorLegState};
use crate::events::{EventKind, MonitorStep};
use crate::media::sdp::{self, Origin, SdpOffer};
use crate::media::MonitorMode;
use crate::sip::dialog::{set_body, Dialog, LocalVia};
use crate::sip::headers;
use crate::sip::transaction::{build_cancel, new_branch, TxKey};
use crate::views::{MonitorError, MonitorView};

/// How long a supervisor's phone may ring before the leg is cancelled.
const MONITOR_RING: Duration = Duration::from_secs(30);

impl Endpoint {
    /// The call with Call-ID `call_id`, if this shard has it.
    fn call_by_id(&self, call_id: &str) -> Option<CallHandle> {
        let key = self
            .calls
            .iter()
            .find(|(k, _)| k.0 == call_id)
            .map(|(k, _)| k.clone())?;
        self.calls.find(&key)
    }

    /// Whether this shard has the call `call_id`.
    pub fn has_call(&self, call_id: &str) -> bool {
        self.call_by_id(call_id).is_some()
    }

    /// The call an API request names (404 when it is not in progress).
    fn api_call(&self, call_id: &str) -> Result<CallHandle, MonitorError> {
        self.call_by_id(call_id)
            .filter(|&ck| self.calls.get(ck).is_some())
            .ok_or_else(|| MonitorError::UnknownCall(call_id.to_owned()))
    }

    /// The call an API request names and its monitor leg (404 when
    /// either is missing).
    fn api_monitor(
        &mut self,
        call_id: &str,
    ) -> Result<(CallHandle, &mut MonitorLeg), MonitorError> {
        let ck = self.api_call(call_id)?;
        self.calls
            .get_mut(ck)
            .and_then(|c| c.monitor.as_mut())
            .map(|m| (ck, m))
            .ok_or_else(|| MonitorError::NotMonitored(call_id.to_owned()))
    }

    /// `POST /api/v1/calls/{id}/monitor`: calls `supervisor` (an agent id
    /// or a `sip:` URI with an IP address) to monitor the call in `mode`.
    pub fn start_monitor(
        &mut self,
        call_id: &str,
        supervisor: &str,
        mode: MonitorMode,
        now: Now,
    ) -> Result<MonitorView, MonitorError> {
        let ck = self.api_call(call_id)?;
        let call = self
            .calls
            .get(ck)
            .ok_or_else(|| MonitorError::UnknownCall(call_id.to_owned()))?;
        let bridged = call.leg.is_some()
            && call
                .agent
                .as_ref()
                .is_some_and(|a| a.state == AgentLegState::Connected && a.leg.is_some());
        if !bridged {
            return Err(MonitorError::Conflict(format!(
                "call `{call_id}` is not bridged to an agent"
            )));
        }
        if call.monitor.is_some() {
            return Err(MonitorError::Conflict(format!(
                "call `{call_id}` is already monitored: PATCH its monitor to change the mode"
            )));
        }
        let binding = if supervisor.starts_with("sip:") {
            static_binding(supervisor, now).ok_or_else(|| {
                MonitorError::BadRequest(
                    "a supervisor URI must be sip:USER@IP[:PORT][;transport=tcp]".into(),
                )
            })?
        } else {
            if !self.cfg.agents.contains_key(supervisor) {
                return Err(MonitorError::BadRequest(format!(
                    "no agent `{supervisor}` (give an agent id or a sip: URI)"
                )));
            }
            self.agent_binding(supervisor, now)
                .filter(|b| self.binding_usable(b))
                .ok_or_else(|| {
                    MonitorError::Conflict(format!("agent `{supervisor}` is not registered"))
                })?
        };
        let ports = self
            .ports
            .allocate()
            .ok_or_else(|| MonitorError::Conflict("no RTP ports left".into()))?;
        let peer = binding.source;
        let local = LocalVia {
            transport: peer.transport,
            host: self.cfg.server.advertise.to_string(),
            port: self.listen_port(peer.transport),
        };
        let contact = binding.contact.trim_matches(|c| c == '<' || c == '>');
        let user = if supervisor.starts_with("sip:") {
            "supervisor"
        } else {
            supervisor
        };
        let text = format!(
            "INVITE {contact} SIP/2.0\r\n\
             Via: SIP/2.0/{t} {host}:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Monitor {caller}\" <sip:monitor@{domain}>;tag={tag}\r\n\
             To: <sip:{user}@{domain}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:sipacd@{host}:{port}{tp}>\r\n\
             Allow: {allow}\r\n\
             X-Sipacd-Monitor: {call_id};mode={mode}\r\n\
             Content-Length: 0\r\n\r\n",
            t = peer.transport,
            host = local.host,
            port = local.port,
            branch = new_branch(),
            caller = call.caller,
            domain = self.cfg.server.domain,
            tag = super::calls::new_tag(),
            cid = super::shard::call_id_for(self.shard, &local.host),
            tp = peer.transport.uri_param(),
            allow = super::ALLOW,
            mode = mode.as_str(),
        );
        let Ok(rsip::SipMessage::Request(mut invite)) = crate::sip::message::parse(text.as_bytes())
        else {
            return Err(MonitorError::BadRequest(format!(
                "cannot build an INVITE to `{contact}`"
            )));
        };
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
        set_body(&mut invite, "application/sdp", offer.into_bytes());
        let key = self
            .txn
            .send_request(invite.clone(), peer, now.mono)
            .map_err(|e| MonitorError::Conflict(format!("INVITE not sent: {e}")))?;
        info!(call = %call_id, %supervisor, mode = mode.as_str(), "calling a supervisor to monitor the call");
        self.monitor_invites.insert(key.clone(), ck);
        if let Some(call) = self.calls.get_mut(ck) {
            call.monitor = Some(MonitorLeg {
                supervisor: supervisor.to_owned(),
                mode,
                invite,
                invite_key: key,
                peer,
                state: MonitorLegState::Offering,
                ring_deadline: now.mono + MONITOR_RING,
                dialog: None,
                ports,
                leg: None,
                sdp_version: 1,
            });
        }
        Ok(self.monitor_view(ck, "calling"))
    }

    /// `PATCH /api/v1/calls/{id}/monitor`: the monitor leg's new mode.
    pub fn set_monitor_mode(
        &mut self,
        call_id: &str,
        mode: MonitorMode,
        now: Now,
    ) -> Result<MonitorView, MonitorError> {
        let (ck, m) = self.api_monitor(call_id)?;
        let changed = m.mode != mode;
        m.mode = mode;
        let connected = m.state == MonitorLegState::Connected;
        if connected && changed {
            info!(call = %call_id, mode = mode.as_str(), "monitor mode changed");
            self.mix(ck);
            self.emit_monitor(ck, MonitorStep::ModeChanged, now);
        }
        Ok(self.monitor_view(ck, if connected { "connected" } else { "calling" }))
    }

    /// `DELETE /api/v1/calls/{id}/monitor`: ends the monitor leg.
    pub fn stop_monitor(&mut self, call_id: &str, now: Now) -> Result<MonitorView, MonitorError> {
        let (ck, _) = self.api_monitor(call_id)?;
        let view = self.monitor_view(ck, "ended");
        self.release_monitor(ck, "api", now);
        Ok(view)
    }

    fn monitor_view(&self, ck: CallHandle, state: &str) -> MonitorView {
        let call = self.calls.get(ck);
        let m = call.and_then(|c| c.monitor.as_ref());
        MonitorView {
            call: self.calls.call_id(ck).to_owned(),
            supervisor: m.map(|m| m.supervisor.clone()).unwrap_or_default(),
            mode: m.map_or("", |m| m.mode.as_str()).to_owned(),
            state: state.to_owned(),
        }
    }

    /// Tells the media engine to mix the call's legs in the leg's mode.
    fn mix(&mut self, ck: CallHandle) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let agent = call.agent.as_ref().and_then(|a| a.leg);
        let sup = call
            .monitor
            .as_ref()
            .and_then(|m| m.leg.map(|l| (l, m.mode)));
        if let (Some(caller), Some(agent), Some((supervisor, mode))) = (call.leg, agent, sup) {
            self.media(MediaCommand::Monitor {
                caller,
                agent,
                supervisor,
                mode,
            });
        }
    }

    fn emit_monitor(&mut self, ck: CallHandle, step: MonitorStep, now: Now) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let Some(m) = call.monitor.as_ref() else {
            return;
        };
        let kind = EventKind::Monitor {
            call: call.cref.clone(),
            supervisor: m.supervisor.clone(),
            mode: m.mode,
            step,
        };
        self.emit(kind, now);
    }

    /// A response to a supervisor INVITE. Returns false if `key` is not one.
    pub(super) fn on_monitor_response(
        &mut self,
        key: &TxKey,
        resp: &rsip::Response,
        now: Now,
    ) -> bool {
        let Some(&ck) = self.monitor_invites.get(key) else {
            return false;
        };
        let code = resp.status_code.code();
        if code < 200 {
            return true;
        }
        self.monitor_invites.remove(key);
        if !(200..300).contains(&code) {
            info!(call = %self.calls.call_id(ck), code, "supervisor's phone refused the monitor call");
            if let Some(m) = self.calls.get_mut(ck).and_then(|c| c.monitor.as_mut()) {
                m.state = MonitorLegState::Ending;
            }
            self.release_monitor(ck, "refused", now);
            return true;
        }
        let local = self.local_via(ck);
        let leg = self.new_leg();
        let Some(m) = self.calls.get_mut(ck).and_then(|c| c.monitor.as_mut()) else {
            return true;
        };
        let mut dialog = match Dialog::from_uac(&m.invite, resp) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "supervisor 2xx without a usable dialog");
                return true;
            }
        };
        let mut local = local;
        local.transport = m.peer.transport;
        let ack = dialog.new_request(Method::Ack, &local);
        self.txn.send_stateless(ack, m.peer);
        let answer = SdpOffer::parse(&resp.body).ok();
        m.state = MonitorLegState::Connected;
        let port = m.ports.pair().rtp;
        self.monitor_dialogs
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), ck);
        m.dialog = Some(dialog);
        m.leg = Some(leg);
        self.legs.insert(leg, ck);
        let (remote, codec, telephone_event) = media_of(answer.as_ref());
        self.media(MediaCommand::Open {
            leg,
            port,
            remote,
            codec,
            telephone_event,
        });
        self.mix(ck);
        info!(call = %self.calls.call_id(ck), "supervisor answered: monitoring");
        self.emit_monitor(ck, MonitorStep::Started, now);
        true
    }

    /// The supervisor INVITE got no answer at all.
    pub(super) fn on_monitor_timeout(&mut self, key: &TxKey, now: Now) -> bool {
        let Some(ck) = self.monitor_invites.remove(key) else {
            return false;
        };
        if let Some(m) = self.calls.get_mut(ck).and_then(|c| c.monitor.as_mut()) {
            m.state = MonitorLegState::Ending;
        }
        self.release_monitor(ck, "no_answer", now);
        true
    }

    /// Ring no answer on the supervisor's phone: cancelled.
    pub(super) fn monitor_ring_timeout(&mut self, ck: CallHandle, now: Now) {
        let due = self
            .calls
            .get(ck)
            .and_then(|c| c.monitor.as_ref())
            .is_some_and(|m| m.state == MonitorLegState::Offering && m.ring_deadline <= now.mono);
        if due {
            self.release_monitor(ck, "no_answer", now);
        }
    }

    /// A BYE from a supervisor's phone: only its leg ends.
    pub(super) fn on_monitor_bye(&mut self, key: &TxKey, req: &rsip::Request, now: Now) -> bool {
        let id = (
            headers::call_id(req).unwrap_or_default(),
            headers::to_tag(req).unwrap_or_default(),
        );
        let Some(ck) = self.monitor_dialogs.remove(&id) else {
            return false;
        };
        self.reply(key, req, 200, now);
        if let Some(m) = self.calls.get_mut(ck).and_then(|c| c.monitor.as_mut()) {
            m.state = MonitorLegState::Ending;
        }
        info!(call = %self.calls.call_id(ck), "supervisor hung up");
        self.release_monitor(ck, "supervisor", now);
        true
    }

    /// Whether `leg` is the supervisor's media leg of its call.
    pub(super) fn is_monitor_leg(&self, ck: CallHandle, leg: u64) -> bool {
        self.calls
            .get(ck)
            .and_then(|c| c.monitor.as_ref())
            .is_some_and(|m| m.leg == Some(leg))
    }

    /// Ends the monitor leg of `ck` (CANCEL while ringing, BYE once
    /// answered), closes its media and says why. False if there was none.
    pub(super) fn release_monitor(
        &mut self,
        ck: CallHandle,
        reason: &'static str,
        now: Now,
    ) -> bool {
        let started = self
            .calls
            .get(ck)
            .and_then(|c| c.monitor.as_ref())
            .is_some_and(|m| m.leg.is_some());
        // The API user learns the end either way (a refused or
        // unanswered phone is `failed`, not just a log line).
        if started {
            self.emit_monitor(ck, MonitorStep::Ended { reason }, now);
        } else if self.calls.get(ck).is_some_and(|c| c.monitor.is_some()) {
            info!(call = %self.calls.call_id(ck), reason, "monitor leg never answered");
            self.emit_monitor(ck, MonitorStep::Failed { reason }, now);
        }
        let local = self.local_via(ck);
        let Some(mut m) = self.calls.get_mut(ck).and_then(|c| c.monitor.take()) else {
            return false;
        };
        self.monitor_invites.remove(&m.invite_key);
        match m.state {
            MonitorLegState::Offering => {
                if let Ok(cancel) = build_cancel(&m.invite) {
                    let _ = self.txn.send_request(cancel, m.peer, now.mono);
                }
            }
            MonitorLegState::Connected => {
                if let Some(dialog) = m.dialog.as_mut() {
                    self.monitor_dialogs
                        .remove(&(dialog.call_id.clone(), dialog.local_tag.clone()));
                    let mut local = local;
                    local.transport = m.peer.transport;
                    let bye = dialog.new_request(Method::Bye, &local);
                    let _ = self.txn.send_request(bye, m.peer, now.mono);
                }
            }
            MonitorLegState::Ending => {}
        }
        if let Some(l) = m.leg {
            self.legs.remove(&l);
            self.media(MediaCommand::Close { leg: l });
        }
        true
    }
}
