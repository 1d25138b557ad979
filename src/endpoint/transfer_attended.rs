//! Attended transfer (REFER with Replaces, RFC 3891 and RFC 5589 §7): an
//! agent talking with its caller (call 1) puts it on hold, consults a
//! second agent through sipacd (call 2: the agent is that call's caller),
//! then REFERs call 1 with `Refer-To: <…?Replaces=CALL-2-DIALOG>`. sipacd
//! joins the caller with the consulted agent and hangs up both of the
//! transferor's legs.
//!
//! The consultation usually lives on another shard (its Call-ID is the
//! transferor's). The shard of call 1 asks the shard of call 2 for its
//! agent leg ([`Relay`]); that shard takes the leg off call 2 (which ends:
//! BYE to the transferor) and hands it over whole (dialog, RTP ports and
//! media leg, router call), and it becomes call 1's agent leg. The leg's
//! Call-ID still hashes to its old shard, so that shard forwards what
//! arrives for it (SIP messages by Call-ID, media events by leg id) until
//! the leg has ended; the media task, shared by all shards, relays RTP
//! between any two legs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rsip::Method;
use tracing::info;

use super::media::{LegId, MediaCommand, MediaEvent};
use super::{CallHandle, Endpoint, Now};
use crate::call::agent::{AgentLeg, AgentLegState};
use crate::events::{EventKind, HangupBy};
use crate::sip::Peer;

/// The dialog a `Replaces` names, as the transferor sees it: `from_tag` is
/// its own tag, `to_tag` sipacd's (RFC 3891 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
}

/// The last NOTIFY's sipfrag when the named dialog cannot be joined: none
/// such, or no agent has answered it yet (RFC 3891 §3).
pub const NO_DIALOG: &str = "481 Call/Transaction Does Not Exist";

/// The last NOTIFY's sipfrag when the consulted agent's leg arrived but
/// could not be joined.
const GONE: &str = "503 Service Unavailable";

/// How long a shard still forwards a moved leg's messages after the leg
/// ended (its BYE's answer, retransmissions): 64·T1, a transaction's life.
const FORWARD_GRACE: Duration = Duration::from_secs(32);

/// The `Replaces` of a `Refer-To` value (`<sip:…?Replaces=cid%3Bto-tag%3Dx%3Bfrom-tag%3Dy>`),
/// if it has one with both tags.
pub fn replaces_of(refer_to: &str) -> Option<Replaces> {
    let uri = match refer_to.split_once('<') {
        Some((_, rest)) => rest.split('>').next()?,
        None => refer_to,
    };
    let (_, headers) = uri.split_once('?')?;
    let value = headers.split('&').find_map(|h| {
        let (name, value) = h.split_once('=')?;
        name.eq_ignore_ascii_case("replaces").then_some(value)
    })?;
    let value = percent_decode(value)?;
    let mut parts = value.split(';');
    let call_id = parts.next()?.trim().to_owned();
    let (mut to_tag, mut from_tag) = (None, None);
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to_tag = Some(v.trim().to_owned()),
            "from-tag" => from_tag = Some(v.trim().to_owned()),
            _ => {} // early-only and extensions: nothing to honour here
        }
    }
    if call_id.is_empty() {
        return None;
    }
    Some(Replaces {
        call_id,
        to_tag: to_tag?,
        from_tag: from_tag?,
    })
}

/// `%XX` escapes decoded (RFC 3261 §19.1.1 URI headers); None if malformed.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Work one shard hands another for an attended transfer. Opaque to the
/// daemon, which only carries it ([`Endpoint::poll_relay`],
/// [`Endpoint::handle_relay`]).
pub struct Relay(pub(super) RelayKind);

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.0 {
            RelayKind::Sip { .. } => "sip",
            RelayKind::Media(_) => "media",
            RelayKind::TakeConsult { .. } => "take_consult",
            RelayKind::Consulted { .. } => "consulted",
            RelayKind::Forget { .. } => "forget",
        };
        f.write_str(what)
    }
}

pub(super) enum RelayKind {
    /// A message for a leg that moved to this shard.
    Sip { bytes: Bytes, from: Peer },
    /// A media event of such a leg.
    Media(MediaEvent),
    /// To the consultation's shard: hand over the agent leg of the dialog
    /// `replaces` names, for call `back` (Call-ID `for_call`) on `shard`.
    TakeConsult {
        replaces: Replaces,
        shard: usize,
        back: CallHandle,
        for_call: String,
    },
    /// The answer: the leg, or the sipfrag status of the failure.
    Consulted {
        back: CallHandle,
        outcome: Result<Box<Handover>, &'static str>,
    },
    /// A moved leg ended: stop forwarding for it after a grace.
    Forget { call_id: String, leg: Option<LegId> },
}

/// An answered agent leg on its way to the caller it is joined with.
pub(super) struct Handover {
    leg: AgentLeg,
    acd: Option<crate::acd::CallId>,
    queue: Option<String>,
    from_call: String,
}

/// Where a moved leg's messages go now.
#[derive(Debug, Clone, Copy)]
pub(super) struct Moved {
    shard: usize,
    /// Set once the leg ended: forwarding stops then.
    until: Option<Instant>,
}

impl Endpoint {
    /// Next piece of work for another shard: `(shard, relay)`.
    pub fn poll_relay(&mut self) -> Option<(usize, Relay)> {
        self.relay_out.pop_front()
    }

    /// Work another shard handed us.
    pub fn handle_relay(&mut self, relay: Relay, now: Now) {
        match relay.0 {
            RelayKind::Sip { bytes, from } => self.handle_inbound(&bytes, from, now),
            RelayKind::Media(ev) => self.handle_media_event(ev, now),
            RelayKind::TakeConsult {
                replaces,
                shard,
                back,
                for_call,
            } => {
                let outcome = self.take_consult(&replaces, shard, back, &for_call, now);
                self.relay(shard, RelayKind::Consulted { back, outcome }, now);
            }
            RelayKind::Consulted { back, outcome } => match outcome {
                Ok(h) => self.join_consulted(back, *h, now),
                Err(status) => {
                    info!(call = %self.calls.call_id(back), %status, "attended transfer failed: the caller stays with the transferor");
                    self.notify_transferor(back, status, true, now);
                }
            },
            RelayKind::Forget { call_id, leg } => {
                if let Some(m) = self.moved.get_mut(&call_id) {
                    m.until = Some(now.mono + FORWARD_GRACE);
                }
                if let Some(leg) = leg {
                    self.moved_legs.remove(&leg);
                }
            }
        }
    }

    /// Sends `kind` to `shard`, or does it at once when that is us.
    fn relay(&mut self, shard: usize, kind: RelayKind, now: Now) {
        if shard == self.shard.index {
            self.handle_relay(Relay(kind), now);
        } else {
            self.relay_out.push_back((shard, Relay(kind)));
        }
    }

    /// A message for a leg that moved to another shard goes there
    /// (`false`: it is ours).
    pub(super) fn forward_moved(&mut self, bytes: &[u8], from: Peer) -> bool {
        if self.moved.is_empty() {
            return false;
        }
        let Some(m) = super::raw_call_id(bytes).and_then(|c| self.moved.get(c)) else {
            return false;
        };
        let bytes = Bytes::copy_from_slice(bytes);
        self.relay_out
            .push_back((m.shard, Relay(RelayKind::Sip { bytes, from })));
        true
    }

    /// A media event of a leg that moved goes to its shard now.
    pub(super) fn forward_media(&mut self, ev: MediaEvent) -> Result<(), MediaEvent> {
        match self.moved_legs.get(&ev.leg()) {
            Some(&shard) => {
                self.relay_out
                    .push_back((shard, Relay(RelayKind::Media(ev))));
                Ok(())
            }
            None => Err(ev),
        }
    }

    /// Forwarding that has outlived its grace ends (housekeeping).
    pub(super) fn sweep_moved(&mut self, now: Now) {
        self.moved
            .retain(|_, m| m.until.is_none_or(|until| until > now.mono));
    }

    /// An agent leg left its call: if it moved here from another shard,
    /// that shard may stop forwarding for it.
    pub(super) fn agent_leg_left(&mut self, leg: &AgentLeg, now: Now) {
        let Some(d) = leg.dialog.as_ref() else {
            return;
        };
        let home = super::shard_of_call_id(&d.call_id, self.shard.count);
        if home != self.shard.index {
            let kind = RelayKind::Forget {
                call_id: d.call_id.clone(),
                leg: leg.leg,
            };
            self.relay(home, kind, now);
        }
    }

    /// The REFER with Replaces of call `ck`'s agent was accepted (202,
    /// NOTIFY 100 sent): asks the consultation's shard for its agent leg.
    pub(super) fn attended_transfer(&mut self, ck: CallHandle, replaces: Replaces, now: Now) {
        let home = super::shard_of_call_id(&replaces.call_id, self.shard.count);
        let kind = RelayKind::TakeConsult {
            replaces,
            shard: self.shard.index,
            back: ck,
            for_call: self.calls.call_id(ck).to_owned(),
        };
        self.relay(home, kind, now);
    }

    /// The consultation call `replaces` names, if it is one of ours with an
    /// answered agent leg.
    fn consult_call(&self, r: &Replaces) -> Result<CallHandle, &'static str> {
        // The tags as RFC 3891 has them, or swapped (a phone that names
        // the dialog from our side): either pair names one dialog.
        let found = [(&r.to_tag, &r.from_tag), (&r.from_tag, &r.to_tag)]
            .into_iter()
            .find_map(|(ours, theirs)| {
                let ck = self.calls.find(&(r.call_id.clone(), ours.clone()))?;
                let c = self.calls.get(ck)?;
                (c.dialog.remote_tag == *theirs).then_some(ck)
            })
            .ok_or(NO_DIALOG)?;
        let answered = self
            .calls
            .get(found)
            .and_then(|c| c.agent.as_ref())
            .is_some_and(|l| l.state == AgentLegState::Connected && l.leg.is_some());
        if answered {
            Ok(found)
        } else {
            Err(NO_DIALOG)
        }
    }

    /// On the consultation's shard: takes the agent leg off the call
    /// `replaces` names for call `back` of `shard` (Call-ID `for_call`).
    /// The consultation call ends (its record says where its agent went);
    /// the transferor's leg of it gets a BYE.
    fn take_consult(
        &mut self,
        replaces: &Replaces,
        shard: usize,
        back: CallHandle,
        for_call: &str,
        now: Now,
    ) -> Result<Box<Handover>, &'static str> {
        let ck = self.consult_call(replaces)?;
        if shard == self.shard.index && ck == back {
            return Err(NO_DIALOG); // a call cannot replace itself
        }
        self.release_monitor(ck, "transferred", now);
        let from_call = self.calls.call_id(ck).to_owned();
        let call = self.calls.get_mut(ck).ok_or(NO_DIALOG)?;
        let leg = call.agent.take().ok_or(NO_DIALOG)?;
        let acd = call.acd.take();
        let queue = call.queue().map(str::to_owned);
        let cref = call.cref.clone();
        // The transferor's media on this call stops now, before the
        // consulted agent's leg is bridged elsewhere.
        let own_leg = call.leg.take();
        if let Some(a) = acd {
            self.acd_calls.remove(&a);
        }
        if let Some(l) = own_leg {
            self.legs.remove(&l);
            self.media(MediaCommand::Close { leg: l });
        }
        if let Some(d) = leg.dialog.as_ref() {
            self.agent_dialogs
                .remove(&(d.call_id.clone(), d.local_tag.clone()));
            if shard != self.shard.index {
                let m = Moved { shard, until: None };
                self.moved.insert(d.call_id.clone(), m);
            }
        }
        if let Some(l) = leg.leg {
            self.legs.remove(&l);
            if shard != self.shard.index {
                self.moved_legs.insert(l, shard);
            }
        }
        self.emit(
            EventKind::Transferred {
                call: cref,
                queue: queue.clone(),
                agent: leg.agent_id.clone(),
                to: format!("attended:{for_call}"),
            },
            now,
        );
        info!(call = %from_call, agent = %leg.agent_id, to = %for_call, "consultation handed over");
        // The transferor asked for it with its REFER.
        self.note_hangup_by(ck, HangupBy::Caller);
        self.hang_up(ck, now);
        Ok(Box::new(Handover {
            leg,
            acd,
            queue,
            from_call,
        }))
    }

    /// On the caller's shard: the consulted agent's leg arrived. It
    /// replaces the transferor's (NOTIFY 200, BYE, wrap-up) and is
    /// bridged with the caller.
    fn join_consulted(&mut self, ck: CallHandle, h: Handover, now: Now) {
        let transferor_on = self
            .calls
            .get(ck)
            .and_then(|c| c.agent.as_ref())
            .is_some_and(|l| l.state == AgentLegState::Connected);
        if !transferor_on {
            return self.drop_handover(h, now);
        }
        let Some(caller_leg) = self.calls.get(ck).and_then(|c| c.leg) else {
            // A caller without media cannot be joined: the transferor
            // keeps it and hears why.
            self.notify_transferor(ck, GONE, true, now);
            return self.drop_handover(h, now);
        };
        let agent = h.leg.agent_id.clone();
        let Some(transferor) = self.detach_transferor(ck, format!("attended:agent:{agent}"), now)
        else {
            return self.drop_handover(h, now);
        };
        let Handover {
            leg,
            acd,
            queue,
            from_call,
        } = h;
        let agent_call_id = leg
            .dialog
            .as_ref()
            .map(|d| d.call_id.clone())
            .unwrap_or_default();
        if let Some(d) = leg.dialog.as_ref() {
            self.agent_dialogs
                .insert((d.call_id.clone(), d.local_tag.clone()), ck);
        }
        let media_leg = leg.leg;
        if let Some(l) = media_leg {
            self.legs.insert(l, ck);
        }
        if let Some(a) = acd {
            self.acd_calls.insert(a, ck);
        }
        let cref = match self.calls.get_mut(ck) {
            Some(call) => {
                call.agent = Some(leg);
                call.acd = acd;
                call.agent_id = Some(agent.clone());
                call.cref.clone()
            }
            None => return,
        };
        if let Some(b) = media_leg {
            self.media(MediaCommand::Bridge { a: caller_leg, b });
        }
        info!(call = %self.calls.call_id(ck), transferor = %transferor.agent_id, %agent, consultation = %from_call, "attended transfer");
        self.emit(
            EventKind::Joined {
                call: cref,
                queue,
                agent: agent.clone(),
                agent_call_id,
                from_call,
            },
            now,
        );
        self.touch_agent(&agent);
        self.finish_transferor(transferor, "200 OK", now);
    }

    /// A handed-over leg with no call left to join (the caller hung up
    /// meanwhile): it is hung up and its agent freed.
    fn drop_handover(&mut self, mut h: Handover, now: Now) {
        info!(agent = %h.leg.agent_id, "attended transfer: the caller left first; consulted agent hung up");
        if let Some(a) = h.acd {
            let r = self.timed(|r| r.call_ended(h.leg.agent_ref(), a, now.mono));
            self.acd_result(r, now);
        }
        self.touch_agent(&h.leg.agent_id);
        if let Some(l) = h.leg.leg {
            self.media(MediaCommand::Close { leg: l });
        }
        if let Some(to) = self.agent_leg_target(&h.leg) {
            let local = self.agent_via(to);
            if let Some(d) = h.leg.dialog.as_mut() {
                let bye = d.new_request(Method::Bye, &local);
                let _ = self.txn.send_request(bye, to, now.mono);
            }
        }
        self.agent_leg_left(&h.leg, now);
    }
}
