//! Blind transfer (RFC 3515): an agent's REFER passes its caller on to a
//! number sipacd serves (a queue or an IVR). The REFER is answered 202,
//! the implicit subscription gets its NOTIFYs (`100 Trying`, then the
//! outcome, RFC 3515 §2.4.4–5), and the agent's leg is hung up; the agent
//! goes to wrap-up while the caller enters the target with its IVR
//! variables, at the target queue's `transfer_priority`.
//!
//! Where a transfer may go is decided by [`refer_target`] alone (a pure
//! function of the configuration), so it is tested without a call.

use rsip::{Header, Method};
use tracing::{debug, info};

use super::media::MediaCommand;
use super::{CallHandle, Endpoint, Now};
use crate::acd::{AgentState, CallId};
use crate::call::agent::{AgentLeg, AgentLegState};
use crate::config::{Config, Target};
use crate::events::EventKind;
use crate::sip::dialog::{set_body, LocalVia};
use crate::sip::headers;
use crate::sip::name_addr::NameAddr;
use crate::sip::transaction::TxKey;

/// Where a REFER's `Refer-To` leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferTarget {
    /// A `[[numbers]]` entry: its queue or IVR.
    Known(Target),
    /// A configured agent's id: the caller rings that agent alone.
    Agent(String),
    /// A `Refer-To` with `Replaces` (RFC 3891): an attended transfer.
    Attended(super::Replaces),
    /// Anything else: an outside number, through `[features]
    /// transfer_trunk` (refused with 403 without one).
    Outside,
    /// No usable `Refer-To` (missing, unparsable, not a SIP URI).
    Unreadable,
}

/// The 403 reason phrases a refused transfer carries.
pub const NO_TRUNK: &str = "Forbidden (no trunk is configured for outside numbers)";

/// The last NOTIFY's sipfrag when the agent a transfer names cannot ring:
/// on a call (ringing, talking, wrap-up), or not there (paused, logged
/// out, unregistered), as Asterisk reports a busy or unavailable extension.
pub const BUSY: &str = "486 Busy Here";
pub const UNAVAILABLE: &str = "480 Temporarily Unavailable";

/// Where `refer_to` (a `Refer-To` value) leads under `cfg`. `numbers`
/// indexes `cfg.numbers` by number.
pub fn refer_target(
    cfg: &Config,
    numbers: &ahash::AHashMap<String, usize>,
    refer_to: Option<&str>,
) -> ReferTarget {
    let Some(addr) = refer_to.and_then(|v| NameAddr::parse(v).ok()) else {
        return ReferTarget::Unreadable;
    };
    let Some(user) = addr.user() else {
        return ReferTarget::Unreadable;
    };
    let attended = refer_to.is_some_and(|v| v.to_ascii_lowercase().contains("replaces="));
    if attended {
        return refer_to
            .and_then(super::replaces_of)
            .map_or(ReferTarget::Unreadable, ReferTarget::Attended);
    }
    if let Some(n) = numbers.get(user).and_then(|&i| cfg.numbers.get(i)) {
        return ReferTarget::Known(n.to.clone());
    }
    if cfg.agents.contains_key(user) {
        return ReferTarget::Agent(user.to_owned());
    }
    ReferTarget::Outside
}

/// How a target is written in events and records.
fn target_name(t: &Target) -> String {
    match t {
        Target::Queue(q) => format!("queue:{q}"),
        Target::Ivr { ivr, node } => format!("ivr:{ivr}.{node}"),
        Target::Hangup => "hangup".into(),
    }
}

impl Endpoint {
    /// A REFER from the agent's phone on a bridged call.
    pub(super) fn agent_refer(&mut self, ck: CallHandle, key: TxKey, req: rsip::Request, now: Now) {
        let connected = self
            .calls
            .get_mut(ck)
            .and_then(|c| c.agent.as_mut())
            .filter(|l| l.state == AgentLegState::Connected)
            .and_then(|l| l.dialog.as_mut())
            .map(|d| d.on_remote_request(&req));
        match connected {
            None => return self.reply(&key, &req, 481, now),
            Some(Err(e)) => {
                debug!(call = %self.calls.call_id(ck), error = %e, "REFER out of order");
                return self.reply(&key, &req, 500, now);
            }
            Some(Ok(())) => {}
        }
        let refer_to = headers::header_value(&req, "Refer-To");
        let target = match refer_target(&self.cfg, &self.numbers, refer_to.as_deref()) {
            ReferTarget::Unreadable => {
                let resp = headers::response_to(&req, 400, "Bad Refer-To", None);
                return self.respond(&key, resp, now);
            }
            // Through `[features] transfer_trunk`, if set (transfer_trunk.rs).
            ReferTarget::Outside => {
                return self.refer_outside(ck, key, req, refer_to.as_deref(), now)
            }
            target => target,
        };
        self.accept_refer(ck, &key, &req, now);
        match target {
            ReferTarget::Known(t) => self.blind_transfer(ck, t, now),
            ReferTarget::Agent(agent) => self.transfer_to_agent(ck, &agent, now),
            ReferTarget::Attended(r) => self.attended_transfer(ck, r, now),
            ReferTarget::Outside | ReferTarget::Unreadable => {}
        }
    }

    /// `202 Accepted` for the REFER, then the first NOTIFY (`100 Trying`).
    pub(super) fn accept_refer(
        &mut self,
        ck: CallHandle,
        key: &TxKey,
        req: &rsip::Request,
        now: Now,
    ) {
        let mut accepted = headers::response_to(req, 202, "Accepted", None);
        if let Some(peer) = self
            .calls
            .get(ck)
            .and_then(|c| c.agent.as_ref())
            .map(|a| a.peer)
        {
            let contact = self.contact_for(peer, "sipacd");
            accepted.headers.push(Header::Contact(contact.into()));
        }
        self.respond(key, accepted, now);
        self.notify_transferor(ck, "100 Trying", false, now);
    }

    /// Passes the caller of `ck` on to the configured agent `agent` alone
    /// (as Asterisk's blind transfer to an agent's extension): it rings
    /// there in the caller's queue, and a ring-out or refusal leaves the
    /// caller waiting in that queue. An agent that cannot ring now (busy,
    /// paused, logged out, unregistered) fails the transfer before anything
    /// changed: the transferor hears `486`/`480` in the last NOTIFY and
    /// keeps the caller (RFC 3515 §2.4.5).
    fn transfer_to_agent(&mut self, ck: CallHandle, agent: &str, now: Now) {
        let Some(queue) = self
            .calls
            .get(ck)
            .and_then(|c| c.queue())
            .map(str::to_owned)
        else {
            return self.notify_transferor(ck, UNAVAILABLE, true, now);
        };
        let prio = self
            .cfg
            .queues
            .get(&queue)
            .map_or(0, |c| c.transfer_priority);
        // A fresh router id: the transferor's call stays the router's
        // until the new agent is claimed.
        self.next_acd += 1;
        let id = CallId(self.shard.make_id(self.next_acd));
        let offered = self.timed(|r| r.caller_for_agent(id, &queue, prio, agent, now.mono));
        let out = match offered {
            Ok(out) => out,
            Err(e) => {
                let status = self.agent_unavailable_status(agent);
                info!(call = %self.calls.call_id(ck), %agent, reason = %e, "transfer to agent failed: {status}; the caller stays with the transferor");
                return self.notify_transferor(ck, status, true, now);
            }
        };
        let Some(leg) = self.detach_transferor(ck, format!("agent:{agent}"), now) else {
            // Nobody to take it from: the claimed agent is let go at once.
            let r = self.timed(|r| r.caller_hangup(id, now.mono));
            return self.apply_acd(r, now);
        };
        if let Some(call) = self.calls.get_mut(ck) {
            call.acd = Some(id);
            call.priority = prio;
            call.queued_at = Some(now.mono);
        }
        self.acd_calls.insert(id, ck);
        self.play_music(ck);
        self.apply_acd(out, now);
        self.finish_transferor(leg, "200 OK", now);
    }

    /// The sipfrag status of a transfer to `agent` that could not ring:
    /// busy on a call (ringing, talking, wrapping up) or not there at all.
    fn agent_unavailable_status(&self, agent: &str) -> &'static str {
        match self.router.agent(agent) {
            Some(s)
                if s.registered
                    && matches!(
                        s.state,
                        AgentState::Ringing | AgentState::OnCall | AgentState::Wrapup
                    ) =>
            {
                BUSY
            }
            _ => UNAVAILABLE,
        }
    }

    /// Passes the caller of `ck` on to `target`: the agent's leg is taken
    /// off the call (wrap-up), the caller enters the target, and the agent
    /// hears how it went before its leg is hung up.
    fn blind_transfer(&mut self, ck: CallHandle, target: Target, now: Now) {
        let Some(leg) = self.detach_transferor(ck, target_name(&target), now) else {
            return;
        };
        match target {
            Target::Queue(q) => {
                let prio = self.cfg.queues.get(&q).map_or(0, |c| c.transfer_priority);
                self.enter_queue(ck, &q, prio, now);
            }
            t @ Target::Ivr { .. } => self.resume_ivr(ck, t, now),
            Target::Hangup => self.hang_up(ck, now),
        }
        let outcome = match self.calls.get(ck) {
            Some(c) if !c.reported => "200 OK",
            _ => "503 Service Unavailable",
        };
        self.finish_transferor(leg, outcome, now);
    }

    /// Takes the transferring agent's leg off `ck` (its media closed, the
    /// router told its call ended: wrap-up) and records the transfer to
    /// `to`; the leg is returned for its last NOTIFY and BYE.
    pub(super) fn detach_transferor(
        &mut self,
        ck: CallHandle,
        to: String,
        now: Now,
    ) -> Option<AgentLeg> {
        // The supervisor monitored this agent's conversation, not the
        // caller's next one: its leg ends (BYE) with the agent's.
        self.release_monitor(ck, "transferred", now);
        let call = self.calls.get_mut(ck)?;
        let mut leg = call.agent.take()?;
        // The agent's hold ends with its leg; a caller's own hold goes on.
        call.hold.set(true, false, now.mono);
        let acd = call.acd.take();
        let cref = call.cref.clone();
        let from_queue = call.queue().map(str::to_owned);
        if let Some(d) = leg.dialog.as_ref() {
            self.agent_dialogs
                .remove(&(d.call_id.clone(), d.local_tag.clone()));
        }
        self.agent_leg_left(&leg, now);
        if let Some(l) = leg.leg.take() {
            self.legs.remove(&l);
            self.media(MediaCommand::Close { leg: l });
        }
        info!(call = %self.calls.call_id(ck), agent = %leg.agent_id, %to, "blind transfer");
        self.emit(
            EventKind::Transferred {
                call: cref,
                queue: from_queue,
                agent: leg.agent_id.clone(),
                to,
            },
            now,
        );
        self.touch_agent(&leg.agent_id);
        if let Some(acd) = acd {
            self.acd_calls.remove(&acd);
            let r = self.timed(|r| r.call_ended(leg.agent_ref(), acd, now.mono));
            self.acd_result(r, now);
        }
        Some(leg)
    }

    /// The last NOTIFY to the transferor, then the BYE that ends its leg.
    pub(super) fn finish_transferor(&mut self, mut leg: AgentLeg, status: &str, now: Now) {
        // Its connection gone (RFC 5626 §5.3): nothing can reach it.
        let Some(to) = self.agent_leg_target(&leg) else {
            return;
        };
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let local = self.agent_via(to);
        let contact = self.contact_for(to, "sipacd");
        let notify = notify_request(
            dialog.new_request(Method::Notify, &local),
            &contact,
            status,
            true,
        );
        let _ = self.txn.send_request(notify, to, now.mono);
        let bye = dialog.new_request(Method::Bye, &local);
        let _ = self.txn.send_request(bye, to, now.mono);
        leg.state = AgentLegState::Ending;
    }

    /// Our Via for a request to the agent's phone at `peer`.
    pub(super) fn agent_via(&self, peer: crate::sip::Peer) -> LocalVia {
        LocalVia {
            transport: peer.transport,
            host: self.cfg.server.advertise.to_string(),
            port: self.listen_port(peer.transport),
        }
    }

    /// A NOTIFY on the agent leg's dialog while the agent is still on it.
    pub(super) fn notify_transferor(&mut self, ck: CallHandle, status: &str, last: bool, now: Now) {
        let Some(peer) = self
            .calls
            .get(ck)
            .and_then(|c| c.agent.as_ref())
            .and_then(|l| self.agent_leg_target(l))
        else {
            return;
        };
        let local = self.agent_via(peer);
        let contact = self.contact_for(peer, "sipacd");
        let Some(dialog) = self
            .calls
            .get_mut(ck)
            .and_then(|c| c.agent.as_mut())
            .and_then(|l| l.dialog.as_mut())
        else {
            return;
        };
        let notify = notify_request(
            dialog.new_request(Method::Notify, &local),
            &contact,
            status,
            last,
        );
        let _ = self.txn.send_request(notify, peer, now.mono);
    }
}

/// `req` (a fresh in-dialog NOTIFY) with the refer event package's
/// headers and a `message/sipfrag` body holding `status`.
fn notify_request(
    mut req: rsip::Request,
    contact: &str,
    status: &str,
    last: bool,
) -> rsip::Request {
    let state = if last {
        "terminated;reason=noresource"
    } else {
        "active;expires=60"
    };
    req.headers.push(Header::Contact(contact.into()));
    req.headers
        .push(Header::Other("Event".into(), "refer".into()));
    req.headers
        .push(Header::Other("Subscription-State".into(), state.into()));
    set_body(
        &mut req,
        "message/sipfrag;version=2.0",
        format!("SIP/2.0 {status}\r\n").into_bytes(),
    );
    req
}
