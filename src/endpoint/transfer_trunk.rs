//! Blind transfer to an outside number (`[features] transfer_trunk`): an
//! agent's REFER naming a number sipacd does not serve is answered 202 and
//! `100 Trying`, and the number is called through the trunk
//! ([`Endpoint::place_trunk_call`]). While it rings the caller stays
//! bridged to the transferor, so a failure can hand it back (RFC 3515
//! §2.4.5): busy, no answer within `transfer_ring_s`, any final error or a
//! full trunk end the subscription with that status line and nothing else
//! changes. When the far end answers, the transferor's leg is detached
//! (wrap-up, `200 OK`, BYE) and the caller is relayed to the trunk leg.
//! From then on a BYE from either side ends the other.
//!
//! The trunk call's steps arrive as its own events (`trunk.rs`); this file
//! turns the ones of a transfer into the call's next steps.

use tracing::info;

use super::{CallHandle, Endpoint, Now};
use crate::events::{EventKind, HangupBy, TrunkCallRef, TrunkStep};
use crate::sip::message::reason_phrase;
use crate::sip::name_addr::NameAddr;
use crate::sip::transaction::TxKey;

/// The 403 reason phrase when `transfer_prefixes` rule the number out.
pub const NOT_ALLOWED: &str = "Forbidden (number not allowed for transfers)";

/// An outside call placed for a transfer, by the trunk call's id.
#[derive(Debug)]
pub(super) struct TrunkTransfer {
    /// The caller's call.
    pub ck: CallHandle,
    pub trunk: String,
    pub number: String,
    /// Answered and relayed to the caller.
    pub bridged: bool,
}

/// The number a `Refer-To` names (its user part).
fn number_of(refer_to: Option<&str>) -> Option<String> {
    let addr = NameAddr::parse(refer_to?).ok()?;
    addr.user().map(str::to_owned)
}

/// The sipfrag status line of a failed outside call. A 487 is our own
/// CANCEL at `transfer_ring_s`: the transferor hears that nobody answered.
fn failure_status(code: u16) -> String {
    let code = if code == 487 { 408 } else { code };
    format!("{code} {}", reason_phrase(code))
}

impl Endpoint {
    /// A REFER whose target sipacd does not serve: out through the
    /// transfer trunk, or refused (403) as before when none is set or the
    /// number is not allowed; 491 while another one of this call rings.
    pub(super) fn refer_outside(
        &mut self,
        ck: CallHandle,
        key: TxKey,
        req: rsip::Request,
        refer_to: Option<&str>,
        now: Now,
    ) {
        let refuse = |phrase: &str| crate::sip::headers::response_to(&req, 403, phrase, None);
        let Some(rule) = self.cfg.features.transfer.clone() else {
            info!(call = %self.calls.call_id(ck), ?refer_to, "transfer refused: {}", super::transfer::NO_TRUNK);
            return self.respond(&key, refuse(super::transfer::NO_TRUNK), now);
        };
        let Some(number) = number_of(refer_to).filter(|n| rule.allows(n)) else {
            info!(call = %self.calls.call_id(ck), ?refer_to, "transfer refused: {NOT_ALLOWED}");
            return self.respond(&key, refuse(NOT_ALLOWED), now);
        };
        if self.trunk_transfer_of(ck).is_some() {
            return self.reply(&key, &req, 491, now);
        }
        self.accept_refer(ck, &key, &req, now);
        let ring = std::time::Duration::from_secs(u64::from(rule.ring_s));
        match self.place_trunk_call(&rule.trunk, &number, ring, now) {
            Ok(call) => {
                info!(call = %self.calls.call_id(ck), trunk = %rule.trunk, %number, outbound = %call.call_id, "transfer to an outside number: calling it");
                self.trunk_transfers.insert(
                    call.id,
                    TrunkTransfer {
                        ck,
                        trunk: rule.trunk,
                        number,
                        bridged: false,
                    },
                );
            }
            Err(e) => {
                let status = match e {
                    super::trunk::TrunkCallError::BadNumber(_) => failure_status(484),
                    _ => failure_status(503),
                };
                info!(call = %self.calls.call_id(ck), %number, reason = %e, "transfer to an outside number failed: {status}; the caller stays with the transferor");
                self.notify_transferor(ck, &status, true, now);
            }
        }
    }

    /// The trunk call of `ck`'s transfer in progress, if any.
    fn trunk_transfer_of(&self, ck: CallHandle) -> Option<u64> {
        self.trunk_transfers
            .iter()
            .find(|(_, t)| t.ck == ck)
            .map(|(id, _)| *id)
    }

    /// Whether `ck` has an outside number ringing for its transfer.
    pub(super) fn trunk_transfer_ringing(&self, ck: CallHandle) -> bool {
        self.trunk_transfers
            .values()
            .any(|t| t.ck == ck && !t.bridged)
    }

    /// The transferor hung up while the outside number rings (as a phone
    /// that drops the call once its REFER is accepted): it was released
    /// (wrap-up) by its BYE; the transfer goes on with the caller hearing
    /// the queue's music, and a failure now hangs the caller up.
    pub(super) fn transferor_left(&mut self, ck: CallHandle, agent: String, now: Now) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        // The router was told the agent's call ended (its BYE).
        let acd = call.acd.take();
        call.hold.set(true, false, now.mono);
        let (cref, queue) = (call.cref.clone(), call.queue().map(str::to_owned));
        if let Some(acd) = acd {
            self.acd_calls.remove(&acd);
        }
        let Some(number) = self
            .trunk_transfers
            .values()
            .find(|t| t.ck == ck)
            .map(|t| t.number.clone())
        else {
            return;
        };
        info!(call = %self.calls.call_id(ck), %agent, %number, "the transferor left while the outside number rings: the transfer goes on");
        self.emit(
            EventKind::Transferred {
                call: cref,
                queue,
                agent,
                to: format!("number:{number}"),
            },
            now,
        );
        self.play_music(ck);
    }

    /// The outside number answered: the transferor leaves (wrap-up, last
    /// NOTIFY `200 OK`, BYE) and the caller is relayed to the trunk leg.
    pub(super) fn trunk_transfer_answered(&mut self, id: u64, now: Now) {
        let Some(t) = self.trunk_transfers.get(&id) else {
            return;
        };
        let (ck, trunk, number) = (t.ck, t.trunk.clone(), t.number.clone());
        let caller_leg = self.calls.get(ck).and_then(|c| c.leg);
        let (Some(caller_leg), Some(trunk_leg)) = (caller_leg, self.trunk_media_leg(id)) else {
            // The caller is gone: nobody to pass on.
            self.trunk_transfers.remove(&id);
            return self.hang_up_trunk_call(id, now);
        };
        let leg = self.detach_transferor(ck, format!("number:{number}"), now);
        if let Some(t) = self.trunk_transfers.get_mut(&id) {
            t.bridged = true;
        }
        if let Some(c) = self.calls.get_mut(ck) {
            c.outside = Some(number.clone());
        }
        self.media(super::media::MediaCommand::Bridge {
            a: caller_leg,
            b: trunk_leg,
        });
        let call_id = self
            .trunk_calls
            .get(&id)
            .map(|l| l.call_id.clone())
            .unwrap_or_default();
        if let Some(cref) = self.calls.get(ck).map(|c| c.cref.clone()) {
            self.emit(
                EventKind::TrunkBridged {
                    call: cref,
                    trunk,
                    to: number.clone(),
                    trunk_call: TrunkCallRef { id, call_id },
                },
                now,
            );
        }
        info!(call = %self.calls.call_id(ck), %number, "outside number answered: bridged to the trunk");
        if let Some(leg) = leg {
            self.finish_transferor(leg, "200 OK", now);
        }
    }

    /// A trunk call's end or failure, if it was placed for a transfer:
    /// before the answer the transferor hears why and keeps the caller;
    /// after it, the caller is hung up.
    pub(super) fn trunk_transfer_step(&mut self, id: u64, step: &TrunkStep, now: Now) {
        let code = match step {
            TrunkStep::Failed { code, .. } => *code,
            // Up only for the BYE that followed our CANCEL crossing its 2xx.
            TrunkStep::Ended { .. } => 487,
            _ => return,
        };
        let Some(t) = self.trunk_transfers.remove(&id) else {
            return;
        };
        if t.bridged {
            info!(call = %self.calls.call_id(t.ck), number = %t.number, "the outside number hung up");
            self.note_hangup_by(t.ck, HangupBy::Agent);
            return self.hang_up(t.ck, now);
        }
        let status = failure_status(code);
        info!(call = %self.calls.call_id(t.ck), number = %t.number, "transfer to an outside number failed: {status}; the caller stays with the transferor");
        let has_agent = self.calls.get(t.ck).is_some_and(|c| c.agent.is_some());
        if has_agent {
            self.notify_transferor(t.ck, &status, true, now);
        } else {
            self.hang_up(t.ck, now);
        }
    }

    /// The caller's call ends: its outside call too (CANCEL while it
    /// rings, BYE once up).
    pub(super) fn drop_trunk_transfer(&mut self, ck: CallHandle, now: Now) {
        if let Some(id) = self.trunk_transfer_of(ck) {
            self.trunk_transfers.remove(&id);
            self.hang_up_trunk_call(id, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refer_to_names_its_number_and_failures_read_as_status_lines() {
        assert_eq!(
            number_of(Some("<sip:0049301234567@127.0.0.1:5060>")).as_deref(),
            Some("0049301234567")
        );
        assert_eq!(number_of(Some("not a uri")), None);
        assert_eq!(number_of(None), None);
        assert_eq!(failure_status(486), "486 Busy Here");
        assert_eq!(failure_status(487), "408 Request Timeout");
        assert_eq!(failure_status(503), "503 Service Unavailable");
    }
}
