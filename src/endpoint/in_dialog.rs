//! Requests routed from their peeked identifiers, built into rsip only as
//! far as their handling reads them: an ACK needs nothing built (its
//! transaction and its call are found by Call-ID, CSeq and To tag), a BYE
//! or a request for a dialog this shard does not know (answered 481)
//! needs only the headers its answer copies (a lean request); the rest
//! are built whole. The ids are trusted only for bytes that passed
//! `message::check`: then they are the parsed message's (the
//! `peek_reads_what_parse_reads` property).

use super::{CallKey, Endpoint, Now};
use crate::sip::message::{Checked, RequestIds};
use crate::sip::Peer;

/// How much of a checked request its handling needs typed into rsip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The peeked identifiers alone.
    Ids,
    /// The headers a response copies, and what screening reads
    /// (`Checked::build_lean`).
    Lean,
    /// The whole message.
    Full,
}

/// Checked messages by how far they were typed into rsip.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Builds {
    pub ids_only: u64,
    pub lean: u64,
    pub full: u64,
}

impl Endpoint {
    /// Messages handled so far by how far they were built (for tests and
    /// benches: what a turn cost in parsing).
    pub fn builds(&self) -> Builds {
        self.builds
    }

    /// What handling the request named by `ids` needs built. Only
    /// handlers known to read nothing beyond the lean headers get less
    /// than `Full`: the four BYE handlers (monitor, agent, trunk and
    /// caller dialogs) read the dialog's ids and CSeq and answer with
    /// copied headers; INFO, UPDATE, and a re-INVITE or REFER (To tag
    /// present) of a dialog the handler would not find are answered 481.
    pub fn need_of(&self, ids: &RequestIds<'_>) -> Need {
        use rsip::Method::*;
        let Some(tag) = ids.to_tag else {
            // No dialog: INFO and UPDATE get 481, an INVITE is a new call.
            return match ids.method {
                Ack => Need::Ids,
                Bye | Info | Update => Need::Lean,
                _ => Need::Full,
            };
        };
        let dialog: CallKey = (ids.call_id.to_string(), tag.to_string());
        match ids.method {
            Ack => Need::Ids,
            Bye => Need::Lean,
            // The INFO handler looks among the callers' dialogs only.
            Info if self.calls.find(&dialog).is_none() => Need::Lean,
            Update | Invite | Refer if self.dialog_of_id(&dialog).is_none() => Need::Lean,
            _ => Need::Full,
        }
    }

    /// A message `message::check` accepted (`ids` peeked from `raw`).
    pub(super) fn on_checked(
        &mut self,
        msg: Checked<'_>,
        ids: Option<&RequestIds<'_>>,
        raw: &[u8],
        from: Peer,
        now: Now,
    ) {
        let need = match (ids, msg.method()) {
            (Some(ids), Some(_)) => self.need_of(ids),
            _ => Need::Full,
        };
        let msg = match (need, ids) {
            (Need::Ids, Some(ids)) => {
                self.builds.ids_only += 1;
                self.tally.request("in", &ids.method);
                return self.on_ack_ids(ids, raw, from, now);
            }
            (Need::Lean, _) => {
                self.builds.lean += 1;
                msg.build_lean()
            }
            _ => {
                self.builds.full += 1;
                msg.build()
            }
        };
        self.tally.sip("in", &msg);
        match msg {
            rsip::SipMessage::Request(req) => self.on_request(req, raw, from, now),
            rsip::SipMessage::Response(resp) => self.on_response(resp, from, now),
        }
    }

    /// An ACK by its identifiers: its transaction, then its call.
    fn on_ack_ids(&mut self, ids: &RequestIds<'_>, raw: &[u8], from: Peer, now: Now) {
        if self.txn.on_ack_ids(ids, raw, from, now.mono) {
            let dialog = ids
                .to_tag
                .map(|tag| (ids.call_id.to_string(), tag.to_string()));
            self.on_dialog_ack(dialog, now);
        }
    }
}
