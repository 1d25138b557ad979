//! Requests inside an established call, from either leg: re-INVITE and
//! UPDATE (new SDP — hold, resume, a codec change — or only a session
//! refresh), REFER (the agent's is a blind transfer, `transfer.rs`; the
//! caller's is declined), and session timers (RFC 4028) on both legs: the phone's
//! refreshes are answered, ours are sent by UPDATE, and a session whose
//! refresher went quiet is hung up.
//!
//! An agent's hold plays the queue's music to the caller; resuming bridges
//! them again. Hold time from either side is summed for the call record.

use rsip::{Header, Method};
use tracing::{debug, info, warn};

use super::media::{media_of, MediaCommand};
use super::{CallHandle, Endpoint, Now, ALLOW};
use crate::call::agent::AgentLegState;
use crate::config::MediaEncryption;
use crate::media::crypto_attr::answer_keys;
use crate::media::sdp::{self, Direction, Origin, SdpOffer};
use crate::sip::extensions::SUPPORTED_HEADER;
use crate::sip::headers;
use crate::sip::session_timer::{self, Refresher, SessionTimer, UasTimer, MIN_SE};
use crate::sip::transaction::TxKey;

/// The Reason (RFC 3326) of a BYE sent because a session timer ran out.
const SESSION_EXPIRED_REASON: &str = "SIP;cause=408;text=\"Session timer expired\"";

/// Which leg of a call a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Caller,
    Agent,
    /// A supervisor's monitor leg (`monitor.rs`).
    Supervisor,
}

/// A refresh (UPDATE) we sent: which call and leg it keeps alive.
pub(super) type Refresh = (CallHandle, Side);

/// Whether an SDP puts the call on hold (RFC 3264 §8.4, and the older
/// `c=0.0.0.0` form).
fn holds(offer: &SdpOffer) -> bool {
    matches!(offer.direction, Direction::SendOnly | Direction::Inactive) || offer.addr.is_none()
}

/// Whether the peer will send RTP with this SDP (for `rtp_timeout_s`).
pub(super) fn sends(offer: Option<&SdpOffer>) -> bool {
    offer.is_none_or(|o| {
        matches!(o.direction, Direction::SendRecv | Direction::SendOnly) && o.addr.is_some()
    })
}

/// `Session-Expires` (and `Require: timer` when the phone refreshes) for a
/// 2xx we send to a request of the phone's.
/// The 200 to a re-INVITE or UPDATE within a leg's dialog, before its SDP:
/// our Contact (the phone's target stays put), what we allow and support,
/// and the session timer agreed (RFC 4028), if any.
pub(super) fn session_ok(
    req: &rsip::Request,
    contact: String,
    timer: Option<&SessionTimer>,
) -> rsip::Response {
    let mut resp = headers::response_to(req, 200, "OK", None);
    resp.headers.push(Header::Contact(contact.into()));
    resp.headers.push(Header::Allow(ALLOW.into()));
    resp.headers
        .push(Header::Supported(SUPPORTED_HEADER.into()));
    resp.headers.extend(timer_headers(timer));
    resp
}

pub(super) fn timer_headers(timer: Option<&SessionTimer>) -> Vec<Header> {
    let Some(t) = timer else {
        return Vec::new();
    };
    let mut out = vec![Header::Other(
        "Session-Expires".into(),
        t.header_value(false),
    )];
    if t.refresher == Refresher::Peer {
        out.push(Header::Require("timer".into()));
    }
    out
}

impl Endpoint {
    /// Which call and leg an in-dialog request belongs to.
    pub(super) fn dialog_of(&self, req: &rsip::Request) -> Option<(CallHandle, Side)> {
        self.dialog_of_id(&(headers::call_id(req)?, headers::to_tag(req)?))
    }

    /// [`Self::dialog_of`] by (Call-ID, our tag).
    pub(super) fn dialog_of_id(&self, id: &super::CallKey) -> Option<(CallHandle, Side)> {
        if let Some(ck) = self.calls.find(id) {
            return Some((ck, Side::Caller));
        }
        if let Some(&ck) = self.monitor_dialogs.get(id) {
            return Some((ck, Side::Supervisor));
        }
        self.agent_dialogs.get(id).map(|&ck| (ck, Side::Agent))
    }

    /// A re-INVITE or an UPDATE, from the caller's phone or the agent's.
    pub(super) fn on_session_request(&mut self, key: TxKey, req: rsip::Request, now: Now) {
        let Some((ck, side)) = self.dialog_of(&req) else {
            return self.reply(&key, &req, 481, now);
        };
        let offer = match req.body.is_empty() {
            true => None,
            false => match SdpOffer::parse(&req.body) {
                Ok(o) if o.chosen_codec().is_some() => Some(o),
                _ => return self.reply(&key, &req, 488, now),
            },
        };
        let Some(call) = self.calls.get_mut(ck) else {
            return self.reply(&key, &req, 481, now);
        };
        let dialog = match side {
            Side::Caller => Some(&mut call.dialog),
            Side::Agent => call.agent.as_mut().and_then(|a| a.dialog.as_mut()),
            Side::Supervisor => call.monitor.as_mut().and_then(|m| m.dialog.as_mut()),
        };
        let Some(dialog) = dialog else {
            return self.reply(&key, &req, 481, now);
        };
        if let Err(e) = dialog.on_remote_request(&req) {
            debug!(call = %self.calls.call_id(ck), error = %e, "in-dialog request out of order");
            return self.reply(&key, &req, 500, now);
        }
        let timer = match session_timer::negotiate_uas(&req, now.mono) {
            UasTimer::TooSmall => {
                let mut resp = headers::response_to(&req, 422, "Session Interval Too Small", None);
                resp.headers
                    .push(Header::Other("Min-SE".into(), MIN_SE.to_string()));
                return self.respond(&key, resp, now);
            }
            UasTimer::Agreed(t) => Some(t),
            UasTimer::None => None,
        };
        if side == Side::Supervisor {
            // A supervisor's hold is its own: the call's hold time and
            // music are the caller's and the agent's.
            return self.monitor_session_request(ck, key, req, offer, timer, now);
        }
        if let Some(o) = &offer {
            let held = holds(o);
            if call.hold.set(side == Side::Agent, held, now.mono) {
                // The method says how the phone held: re-INVITE or UPDATE.
                info!(call = %self.calls.call_id(ck), ?side, held, method = %req.method, "hold changed");
                if side == Side::Agent {
                    self.agent_hold_changed(ck, held);
                }
            }
        }
        match side {
            Side::Caller => self.caller_session_request(ck, key, req, offer, timer, now),
            Side::Agent => self.agent_session_request(ck, key, req, offer, timer, now),
            Side::Supervisor => {}
        }
    }

    fn caller_session_request(
        &mut self,
        ck: CallHandle,
        key: TxKey,
        req: rsip::Request,
        offer: Option<SdpOffer>,
        timer: Option<SessionTimer>,
        now: Now,
    ) {
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        call.session = timer;
        if req.method == Method::Invite {
            call.on_reinvite(offer);
            self.invites.insert(ck, key, std::sync::Arc::new(req));
            return self.send_answer(ck, now);
        }
        // UPDATE: the answer goes in its own 200 (RFC 3311 §5.2).
        let mut resp = headers::response_to(&req, 200, "OK", None);
        resp.headers.extend(timer_headers(timer.as_ref()));
        if offer.is_some() {
            call.on_reinvite(offer);
            match self.caller_sdp(ck) {
                Some(body) => {
                    resp.headers
                        .push(Header::ContentType("application/sdp".into()));
                    resp.body = body.into_bytes();
                }
                None => return self.reply(&key, &req, 488, now),
            }
        }
        self.respond(&key, resp, now);
    }

    fn agent_session_request(
        &mut self,
        ck: CallHandle,
        key: TxKey,
        req: rsip::Request,
        offer: Option<SdpOffer>,
        timer: Option<SessionTimer>,
        now: Now,
    ) {
        let addr = self.cfg.server.advertise;
        let Some(peer) = self
            .calls
            .get(ck)
            .and_then(|c| c.agent.as_ref())
            .map(|a| a.peer)
        else {
            return;
        };
        // The Contact of our INVITE to the agent: the phone's target stays put.
        let contact = self.contact_for(peer, "sipacd");
        let agent_id = self.calls.get(ck).and_then(|c| c.agent.as_ref());
        let policy = self.agent_encryption(agent_id.map_or("", |a| a.agent_id.as_str()));
        let Some(leg) = self.calls.get_mut(ck).and_then(|c| c.agent.as_mut()) else {
            return;
        };
        leg.session = timer;
        let mut resp = session_ok(&req, contact, timer.as_ref());
        let port = leg.ports.pair().rtp;
        let mut body = None;
        if let Some(o) = offer {
            leg.sdp_version += 1;
            let origin = Origin {
                session_id: u64::from(port),
                version: leg.sdp_version,
            };
            let ours = leg.srtp.as_ref().map(|k| &k.local);
            let Ok(keys) = answer_keys(policy, o.secure, &o.crypto, ours) else {
                return self.reply(&key, &req, 488, now);
            };
            match sdp::answer_with(&o, addr, port, origin, keys.as_ref().map(|k| &k.local)) {
                Ok(b) => body = Some(b),
                Err(_) => return self.reply(&key, &req, 488, now),
            }
            leg.remote_sdp = Some(o);
            let (remote, codec, telephone_event) = media_of(leg.remote_sdp.as_ref());
            let sending = sends(leg.remote_sdp.as_ref());
            let old_keys = std::mem::replace(&mut leg.srtp, keys.clone());
            if let Some(media_leg) = leg.leg {
                self.secure_leg(media_leg, old_keys.as_ref(), keys.as_ref());
                self.media(MediaCommand::Update {
                    leg: media_leg,
                    remote,
                    codec,
                    telephone_event,
                    sending,
                });
            }
        } else if req.method == Method::Invite {
            // A re-INVITE without SDP wants our offer in the 200 (the
            // agent answers in its ACK, which we take as unchanged media).
            let origin = Origin {
                session_id: u64::from(port),
                version: leg.sdp_version,
            };
            let local = leg.srtp.as_ref().map(|k| std::slice::from_ref(&k.local));
            let savp = policy == MediaEncryption::Srtp && local.is_some();
            body = Some(sdp::offer_with(
                addr,
                port,
                origin,
                savp,
                local.unwrap_or(&[]),
            ));
        }
        if let Some(b) = body {
            resp.headers
                .push(Header::ContentType("application/sdp".into()));
            resp.body = b.into_bytes();
        }
        self.respond(&key, resp, now);
    }

    /// The agent held (the caller hears the queue's music, or silence) or
    /// resumed (caller and agent are bridged again).
    fn agent_hold_changed(&mut self, ck: CallHandle, held: bool) {
        let Some(call) = self.calls.get(ck) else {
            return;
        };
        let (Some(caller_leg), Some(agent_leg)) =
            (call.leg, call.agent.as_ref().and_then(|a| a.leg))
        else {
            return;
        };
        let has_music = call
            .queue()
            .and_then(|q| self.cfg.queues.get(q))
            .is_some_and(|q| q.music.is_some());
        match (held, has_music) {
            (true, true) => self.play_music(ck),
            (true, false) => self.media(MediaCommand::Stop { leg: caller_leg }),
            (false, _) => self.media(MediaCommand::Bridge {
                a: caller_leg,
                b: agent_leg,
            }),
        }
    }

    /// REFER from either phone: the agent's is a blind transfer (see
    /// `transfer.rs`); the caller's is declined and the call goes on
    /// (RFC 3515 lets the recipient refuse).
    pub(super) fn on_refer(&mut self, key: TxKey, req: rsip::Request, now: Now) {
        match self.dialog_of(&req) {
            Some((ck, Side::Agent)) => self.agent_refer(ck, key, req, now),
            Some((ck, side @ (Side::Caller | Side::Supervisor))) => {
                info!(call = %self.calls.call_id(ck), ?side, "REFER declined; the call goes on");
                self.reply(&key, &req, 603, now);
            }
            None if headers::to_tag(&req).is_some() => self.reply(&key, &req, 481, now),
            None => {
                let mut resp = headers::response_to(&req, 405, "Method Not Allowed", None);
                resp.headers.push(Header::Allow(ALLOW.into()));
                self.respond(&key, resp, now);
            }
        }
    }

    /// Session timers due at `now`: refresh ours, end sessions whose
    /// phone stopped refreshing.
    pub(super) fn session_timeouts(&mut self, ck: CallHandle, now: Now) {
        for side in [Side::Caller, Side::Agent] {
            let Some(call) = self.calls.get_mut(ck) else {
                return;
            };
            let slot = match side {
                Side::Caller => &mut call.session,
                Side::Agent => match call.agent.as_mut() {
                    Some(a) if a.state == AgentLegState::Connected => &mut a.session,
                    _ => continue,
                },
                // No timer is kept on a monitor leg (`monitor_dialog.rs`).
                Side::Supervisor => continue,
            };
            let Some(t) = *slot else { continue };
            if t.deadline > now.mono {
                continue;
            }
            match t.refresher {
                Refresher::Peer => {
                    warn!(call = %call.dialog.call_id, ?side, "session timer expired: hanging up");
                    call.bye_reason = Some(SESSION_EXPIRED_REASON);
                    *slot = None;
                    return self.hang_up(ck, now);
                }
                Refresher::Us => {
                    *slot = Some(SessionTimer::new(t.interval_s, Refresher::Us, now.mono));
                    self.send_refresh(ck, side, t, now);
                }
            }
        }
    }

    /// An UPDATE without a body keeps the session alive (RFC 4028 §7.4).
    fn send_refresh(&mut self, ck: CallHandle, side: Side, t: SessionTimer, now: Now) {
        let mut local = self.local_via(ck);
        // The agent's flow gone (RFC 5626 §5.3): the refresh cannot reach
        // it, which is a failed refresh (RFC 4028 §10): the call ends.
        let agent_target = match side {
            Side::Caller => None,
            Side::Supervisor => return,
            Side::Agent => match self.calls.get(ck).and_then(|c| c.agent.as_ref()) {
                Some(a) => match self.agent_leg_target(a) {
                    Some(to) => Some(to),
                    None => {
                        info!(call = %self.calls.call_id(ck), "session refresh cannot reach the agent (its connection is gone): hanging up");
                        if let Some(call) = self.calls.get_mut(ck) {
                            call.bye_reason = Some(SESSION_EXPIRED_REASON);
                        }
                        return self.hang_up(ck, now);
                    }
                },
                None => return,
            },
        };
        let Some(call) = self.calls.get_mut(ck) else {
            return;
        };
        let (dialog, peer) = match (side, agent_target) {
            (Side::Caller, _) => (&mut call.dialog, call.remote),
            (Side::Agent, Some(to)) => match call.agent.as_mut().and_then(|a| a.dialog.as_mut()) {
                Some(d) => (d, to),
                None => return,
            },
            (Side::Agent, None) | (Side::Supervisor, _) => return,
        };
        local.transport = peer.transport;
        let mut update = dialog.new_request(Method::Update, &local);
        update.headers.push(Header::Other(
            "Session-Expires".into(),
            t.header_value(true),
        ));
        update
            .headers
            .push(Header::Supported(SUPPORTED_HEADER.into()));
        match self.txn.send_request(update, peer, now.mono) {
            Ok(key) => {
                debug!(call = %self.calls.call_id(ck), ?side, "session refresh sent");
                self.refreshes.insert(key, (ck, side));
            }
            Err(e) => {
                debug!(call = %self.calls.call_id(ck), error = %e, "session refresh not sent")
            }
        }
    }

    /// The answer to one of our refreshes. Returns false if `key` is not one.
    pub(super) fn on_refresh_result(&mut self, key: &TxKey, code: Option<u16>, now: Now) -> bool {
        let Some((ck, side)) = self.refreshes.remove(key) else {
            return false;
        };
        match code {
            Some(200..=299) => debug!(call = %self.calls.call_id(ck), ?side, "session refreshed"),
            // The dialog is gone on the phone's side (RFC 4028 §10).
            Some(408) | Some(481) | None => {
                info!(call = %self.calls.call_id(ck), ?side, ?code, "session refresh failed: hanging up");
                if let Some(call) = self.calls.get_mut(ck) {
                    call.bye_reason = Some(SESSION_EXPIRED_REASON);
                }
                self.hang_up(ck, now);
            }
            // The phone will not take UPDATE (or this one): stop refreshing
            // and leave the call up; its own timer, if any, decides.
            Some(code) => {
                info!(call = %self.calls.call_id(ck), ?side, code, "session refresh refused: timer off for this leg");
                if let Some(call) = self.calls.get_mut(ck) {
                    match side {
                        Side::Caller => call.session = None,
                        Side::Agent => {
                            if let Some(a) = call.agent.as_mut() {
                                a.session = None;
                            }
                        }
                        Side::Supervisor => {}
                    }
                }
            }
        }
        true
    }
}
