//! OPTIONS pings ("qualify", as Asterisk and Kamailio call it) to agents
//! with a static `contact`: any answer keeps the agent reachable; a ping
//! that times out (timer F, 32 s) marks it unreachable, which is
//! `logged_out` for routing, until a later ping is answered.

use std::time::Duration;

use tracing::info;

use super::{Endpoint, Now};
use crate::sip::dialog::LocalVia;
use crate::sip::transaction::{new_branch, TxKey};

/// Time between two rounds of pings.
pub const QUALIFY_EVERY: Duration = Duration::from_secs(30);

impl Endpoint {
    /// Pings every static contact that has no ping outstanding.
    pub(super) fn qualify_round(&mut self, now: Now) {
        // Agents with a ping outstanding, looked up once: scanning the
        // outstanding pings for each agent made a round O(agents²).
        let pending: std::collections::HashSet<&str> =
            self.qualifies.values().map(String::as_str).collect();
        let agents: Vec<(String, String)> = self
            .cfg
            .agents
            .values()
            .filter(|a| !pending.contains(a.id.as_str()))
            .filter_map(|a| Some((a.id.clone(), a.contact.clone()?)))
            .collect();
        for (id, contact) in agents {
            let Some(binding) = super::agents::static_binding(&contact, now) else {
                continue;
            };
            let peer = binding.source;
            let local = LocalVia {
                transport: peer.transport,
                host: self.cfg.server.advertise.to_string(),
                port: self.listen_port(peer.transport),
            };
            let text = format!(
                "OPTIONS {uri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
                 From: <sip:sipacd@{host}>;tag={tag}\r\nTo: <{uri}>\r\n\
                 Call-ID: {cid}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                uri = contact,
                via = rsip::Header::from(local.via(&new_branch())),
                host = local.host,
                tag = super::calls::new_tag(),
                cid = super::shard::call_id_for(self.shard, &local.host),
            );
            let Ok(req) = rsip::Request::try_from(text.as_str()) else {
                continue;
            };
            if let Ok(key) = self.txn.send_request(req, peer, now.mono) {
                self.qualifies.insert(key, id);
            }
        }
    }

    /// An answer (or timeout) to a ping. Returns false if `key` is not one.
    pub(super) fn on_qualify_result(&mut self, key: &TxKey, answered: bool, now: Now) -> bool {
        let Some(id) = self.qualifies.remove(key) else {
            return false;
        };
        let was = !self.unreachable.contains(&id);
        if was != answered {
            info!(agent = %id, reachable = answered, "static contact qualify changed");
            if answered {
                self.unreachable.remove(&id);
            } else {
                self.unreachable.insert(id.clone());
            }
            self.agent_reachable(&id, answered, now);
        }
        true
    }
}
