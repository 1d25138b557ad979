//! A caller offered to one named agent (a blind transfer to an agent id):
//! the agent is claimed only if it is available now; the caller is then
//! `Offered` to it as if the queue had chosen it, so an answer, a refusal,
//! a ring no answer or a hang-up take the usual paths (a refused or
//! unanswered caller waits in `queue` for whoever is free next).

use super::super::agent::{Busy, Tag, Word};
use super::super::lane::Caller;
use super::{secs, Loc, Router};
use crate::acd::{AcdError, CallId, Offer, Output, Timer};
use dashmap::mapref::entry::Entry as MapEntry;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

impl Router {
    /// Offers `call` (of `queue`, with `priority` should it wait there
    /// later) to `agent` alone. `WrongState` when the agent is not
    /// available this instant: nothing changed, the caller stays where it is.
    pub fn caller_for_agent(
        &self,
        call: CallId,
        queue: &str,
        priority: i32,
        agent: &str,
        now: Instant,
    ) -> Result<Vec<Output>, AcdError> {
        let (qi, q) = self
            .topo
            .queue(queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.to_string()))?;
        let slot = self.slot(agent)?;
        let unavailable = || AcdError::WrongState {
            agent: agent.to_string(),
            call,
            expected: "available",
        };
        let mut meta = slot.meta();
        let w = slot.word();
        if w.tag != Tag::Available || meta.resting() != Tag::Available {
            return Err(unavailable());
        }
        // Claimed like a pool claims it: a router thread racing us for
        // this agent either won (we refuse) or sees it `Deciding`.
        if !slot.try_claim(w.epoch) {
            return Err(unavailable());
        }
        let caller = Caller::arriving(call, qi, priority, now, self.seq.fetch_add(1, SeqCst));
        match self.calls.entry(call) {
            MapEntry::Vacant(v) => {
                v.insert(Loc::Offered {
                    agent: slot.idx,
                    caller,
                });
            }
            MapEntry::Occupied(_) => {
                slot.set(w);
                return Err(AcdError::DuplicateCall(call));
            }
        }
        let until = now + secs(q.cfg.ring_timeout_s);
        meta.busy = Some(Busy {
            call,
            queue: qi,
            until,
        });
        slot.set(Word {
            epoch: w.epoch,
            tag: Tag::Ringing,
        });
        self.unpool(slot, &mut meta);
        Ok(vec![
            Output::Offer(Offer {
                agent: slot.idx,
                agent_name: slot.id.clone(),
                call,
                queue: qi,
                waited: std::time::Duration::ZERO,
            }),
            Output::Arm {
                at: until,
                timer: Timer::RingTimeout {
                    agent: slot.idx,
                    call,
                },
            },
        ])
    }
}
