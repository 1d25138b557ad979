//! An agent dialling a colleague's agent id from its phone, to consult it
//! before an attended transfer (as an Asterisk agent dials an extension).
//! The dialling phone proves it is that agent (a digest challenge, as for
//! feature codes) and must be on a call: the consultation rings the
//! colleague alone in the queue of that call, like a blind transfer to an
//! agent id. A colleague who cannot ring now refuses the INVITE (`486`
//! busy, `480` not there); a ring-out leaves the consultation waiting in
//! that queue, as the transferred caller of a blind transfer would.

use tracing::info;

use super::{CallHandle, Endpoint, Now};
use crate::acd::{AgentState, CallId};
use crate::config::{MediaEncryption, Target};
use crate::sip::transaction::TxKey;
use crate::sip::Peer;

/// The 403 reason phrase when the dialling agent is on no call.
pub const NOT_ON_A_CALL: &str = "Forbidden (an agent dials another agent to consult during a call)";

impl Endpoint {
    /// For an INVITE to agent id `target`: the dialling agent proven, the
    /// queue of its call and its phone's media policy. `None` once the
    /// INVITE has been answered (challenged, refused).
    pub(super) fn consult_route(
        &mut self,
        key: &TxKey,
        req: &rsip::Request,
        from: Peer,
        target: &str,
        now: Now,
    ) -> Option<(String, MediaEncryption)> {
        let authorized = self.registrar().authorize_request(req, from, now.wall);
        let agent = match authorized {
            Ok(agent) => agent,
            Err(resp) => {
                self.respond(key, resp, now);
                return None;
            }
        };
        let queue = self
            .router
            .agent(&agent)
            .filter(|s| s.state == AgentState::OnCall)
            .and_then(|s| s.call)
            .and_then(|c| self.router.queue_of(c))
            .filter(|_| agent != target);
        let Some(queue) = queue else {
            info!(%agent, %target, "consultation refused: {NOT_ON_A_CALL}");
            self.forbid(key, req, NOT_ON_A_CALL, now);
            return None;
        };
        let code = match self.router.agent(target) {
            Some(s) if s.registered && s.state == AgentState::Available => None,
            Some(s)
                if s.registered
                    && matches!(
                        s.state,
                        AgentState::Ringing | AgentState::OnCall | AgentState::Wrapup
                    ) =>
            {
                Some(486)
            }
            _ => Some(480),
        };
        if let Some(code) = code {
            info!(%agent, %target, code, "consultation refused: the agent cannot ring");
            self.reject_invite(key, req, code, now);
            return None;
        }
        info!(%agent, %target, %queue, "consultation call");
        Some((queue.to_string(), self.agent_encryption(&agent)))
    }

    /// The consultation `ck` (confirmed) rings agent `agent` alone in
    /// `queue`; if it cannot ring after all, the call is hung up.
    pub(super) fn ring_consulted(&mut self, ck: CallHandle, queue: &str, agent: &str, now: Now) {
        self.next_acd += 1;
        let id = CallId(self.shard.make_id(self.next_acd));
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        call.target = Target::Queue(queue.to_owned());
        call.queues_seen.push(queue.to_owned());
        call.queued_at = Some(now.mono);
        call.acd = Some(id);
        self.acd_calls.insert(id, ck);
        self.play_music(ck);
        let offered = self.timed(|r| r.caller_for_agent(id, queue, 0, agent, now.mono));
        self.emit_queued(ck, queue, None, now);
        match offered {
            Ok(out) => self.apply_acd(out, now),
            Err(e) => {
                info!(call = %self.calls.call_id(ck), %agent, reason = %e, "consulted agent cannot ring: hanging up");
                self.acd_calls.remove(&id);
                if let Some(c) = self.calls.get_mut(ck) {
                    c.acd = None;
                }
                self.hang_up(ck, now);
            }
        }
    }
}
