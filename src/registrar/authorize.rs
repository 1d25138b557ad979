//! Digest authentication of requests other than REGISTER (an agent's
//! INVITE to a feature code): the same challenge, checks, failure counting
//! and source blocking as a REGISTER, and the identity must be the one the
//! request claims (its From user), as a REGISTER's must be its AOR.

use std::time::SystemTime;

use rsip::{Request, Response, StatusCode};

use super::{header_value, parse_name_addr, reply, Auth, Registrar};
use crate::sip::Peer;

impl Registrar {
    /// The agent `req` comes from, proved by its digest answer; otherwise
    /// the response to send: 401 with a challenge, 403, or 400.
    pub fn authorize_request(
        &mut self,
        req: &Request,
        source: Peer,
        now: SystemTime,
    ) -> Result<String, Response> {
        let tag = self.to_tag(req);
        let refuse = |status: StatusCode| reply(req, status, &tag, vec![]);
        if self.guard.blocked(source.addr.ip(), now).is_some() {
            self.tally.refused += 1;
            return Err(refuse(StatusCode::Forbidden));
        }
        let claimed = header_value(req, "From")
            .as_deref()
            .and_then(|v| parse_name_addr(v).ok())
            .and_then(|a| a.user().map(str::to_owned));
        let Some(claimed) = claimed else {
            return Err(refuse(StatusCode::BadRequest));
        };
        match self.authenticate(req, now) {
            Auth::Ok(user) if user == claimed => {
                self.guard.success(source.addr.ip(), &user, now);
                Ok(user)
            }
            Auth::Ok(_) => {
                self.failed(source, &claimed, now);
                Err(refuse(StatusCode::Forbidden))
            }
            Auth::Challenge { stale } => {
                let extra = self.challenge(now, stale);
                Err(reply(req, StatusCode::Unauthorized, &tag, extra))
            }
            Auth::Forbidden(name) => {
                self.failed(source, &name, now);
                Err(refuse(StatusCode::Forbidden))
            }
            Auth::BadRequest(_) => Err(refuse(StatusCode::BadRequest)),
        }
    }
}
