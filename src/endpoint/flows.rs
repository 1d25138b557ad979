//! RFC 5626 flows: an agent registered over TLS, or over TCP with
//! outbound, is reached only down the connection it registered on. The
//! transport says when such a connection closes; from then on the binding
//! is unusable (routing, the admin API) until the phone registers again,
//! and requests within a call already up are not sent over a new
//! connection (§5.3: a flow is never re-created by the far end). A plain
//! TCP binding has no flow: it is connected anew, in a call to the
//! dialog's Contact, as Asterisk and Kamailio do.

use tracing::info;

use super::{Endpoint, Now};
use crate::call::agent::AgentLeg;
use crate::registrar::Binding;
use crate::sip::{Peer, Transport};

/// Whether a binding is reached only down its connection: TLS always
/// (a new TLS connection to a phone's source port reaches nothing behind
/// its NAT), TCP when outbound was taken up.
pub(super) fn flow_only(b: &Binding) -> bool {
    match b.source.transport {
        Transport::Tls => true,
        Transport::Tcp => b.outbound,
        Transport::Udp => false,
    }
}

impl Endpoint {
    /// Whether the connection to `peer` is open (the transport's answer;
    /// assumed so without one, as in unit tests).
    pub(super) fn flow_up(&self, peer: Peer) -> bool {
        self.flows.as_ref().is_none_or(|up| up(peer))
    }

    /// Whether a binding can be reached now: a flow-only one only while
    /// its connection is up, and never one restored at start (its flow
    /// died with the previous process; the phone registers again when it
    /// notices); other TCP bindings are connected anew, UDP ones always are.
    pub(super) fn binding_usable(&self, b: &Binding) -> bool {
        !flow_only(b) || (!b.restored && self.flow_up(b.source))
    }

    /// Whether agent `user` has a registration it can be called on now.
    pub(super) fn has_usable_binding(&self, user: &str, now: Now) -> bool {
        self.registrar()
            .bindings(user, now.wall)
            .iter()
            .any(|b| self.binding_usable(b))
    }

    /// The transport saw the connection from `peer` close, and a
    /// registration came over it: every agent left with no usable binding
    /// is logged out at once (not at its next offer), until it registers
    /// again.
    pub fn flow_closed(&mut self, peer: Peer, now: Now) {
        let users = self.registrar().users_with_binding_from(peer, now.wall);
        for user in users {
            if self
                .cfg
                .agents
                .get(&user)
                .is_none_or(|a| a.contact.is_some())
            {
                continue; // not an agent, or reached at its static contact
            }
            if self.has_usable_binding(&user, now) {
                continue; // another flow, or a binding without one, is left
            }
            let bound = self.registrar().bindings(&user, now.wall);
            if !bound.iter().any(flow_only) {
                continue; // plain TCP: connected anew when needed
            }
            info!(agent = %user, %peer, "the {} connection the agent registered on closed: logged out until it registers again", peer.transport);
            self.agent_reachable(&user, false, now);
        }
    }

    /// Where a request within the agent leg's dialog goes (BYE, re-INVITE,
    /// UPDATE, NOTIFY): down the connection it was offered on while that
    /// is up (and always over UDP). That connection gone: `None` for a
    /// flow (never re-created, RFC 5626 §5.3), else a new TCP connection
    /// to the dialog's remote target (the phone's Contact) when it names
    /// an IP address (no DNS on the call path), else to the source again.
    pub(super) fn agent_leg_target(&self, leg: &AgentLeg) -> Option<Peer> {
        let peer = leg.peer;
        if peer.transport == Transport::Udp || self.flow_up(peer) {
            return Some(peer);
        }
        if leg.flow_only {
            return None;
        }
        let contact = leg
            .dialog
            .as_ref()
            .and_then(|d| d.remote_target.host_with_port.clone().try_into().ok())
            .map(Peer::tcp);
        Some(contact.unwrap_or(peer))
    }
}
