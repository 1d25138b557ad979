//! Agents' feature codes (`[features]`): an INVITE from an agent's own
//! phone to the pause code (optionally followed by a reason code), the
//! unpause code, or the login/logout codes. The caller must prove it is that agent (a digest
//! challenge, as for REGISTER); the state changes as the admin API's pause
//! does (the same router call, the same `AgentPaused` event); logout keeps
//! the agent `logged_out` while its phone stays registered, login makes it
//! available again (`AgentLogin` events); the phone is
//! answered and hung up at once (200, then BYE after its ACK), or refused
//! with 403 when the change cannot be made. No call record is written.

use tracing::info;

use super::{Endpoint, Now};
use crate::config::{FeatureAction, MediaEncryption};
use crate::sip::headers;
use crate::sip::transaction::TxKey;
use crate::sip::Peer;
use crate::views::AgentStateRequest;

/// The 403 reason phrases of a refused feature code.
pub const UNKNOWN_REASON: &str = "Forbidden (no such pause reason code)";
pub const LOGGED_OUT: &str = "Forbidden (the agent is logged out)";

impl Endpoint {
    /// Authenticates and carries out a feature code. Returns the media
    /// policy to answer the agent's phone with, or `None` once the INVITE
    /// has been answered (challenged, refused).
    pub(super) fn feature_code(
        &mut self,
        key: &TxKey,
        req: &rsip::Request,
        from: Peer,
        action: FeatureAction,
        now: Now,
    ) -> Option<MediaEncryption> {
        let authorized = self.registrar().authorize_request(req, from, now.wall);
        let agent = match authorized {
            Ok(agent) => agent,
            Err(resp) => {
                self.respond(key, resp, now);
                return None;
            }
        };
        let change = match action {
            FeatureAction::Pause(reason) => AgentStateRequest::Paused { reason },
            FeatureAction::Unpause => AgentStateRequest::Available,
            FeatureAction::Login | FeatureAction::Logout => {
                let logged_in = action == FeatureAction::Login;
                self.touch_agent(&agent);
                let r = self.timed(|r| r.set_logged_in(&agent, logged_in, now.mono));
                if r.is_ok() {
                    self.emit_login(&agent, logged_in, now);
                }
                self.acd_result(r, now);
                info!(%agent, number = ?headers::request_user(req), logged_in, "feature code");
                return Some(self.agent_encryption(&agent));
            }
            FeatureAction::UnknownReason(code) => {
                info!(%agent, %code, "feature code refused: no such pause reason");
                self.forbid(key, req, UNKNOWN_REASON, now);
                return None;
            }
        };
        let what = format!("{change:?}");
        if let Err(e) = self.set_agent_state(&agent, change, now) {
            info!(%agent, error = %e, "feature code refused");
            self.forbid(key, req, LOGGED_OUT, now);
            return None;
        }
        info!(%agent, number = ?headers::request_user(req), change = %what, "feature code");
        Some(self.agent_encryption(&agent))
    }

    pub(super) fn forbid(&mut self, key: &TxKey, req: &rsip::Request, phrase: &str, now: Now) {
        let resp = headers::response_to(req, 403, phrase, Some(&super::calls::new_tag()));
        self.respond(key, resp, now);
    }
}
