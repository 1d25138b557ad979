//! Requests from a supervisor's phone inside its monitor leg's dialog: a
//! re-INVITE or UPDATE (a new SDP, a hold, a refresh) is answered as an
//! agent leg's is, on the same RTP port, and the media leg follows the new
//! SDP while the mix goes on. The supervisor's hold is its own: it is not
//! the call's hold (no music, no hold time in the record).

use rsip::{Header, Method};

use super::media::{media_of, MediaCommand};
use super::mid_call::{sends, session_ok};
use super::{CallHandle, Endpoint, Now};
use crate::media::sdp::{self, Origin, SdpOffer};
use crate::sip::session_timer::{Refresher, SessionTimer};
use crate::sip::transaction::TxKey;

impl Endpoint {
    /// A re-INVITE or UPDATE on the monitor leg of `ck` (its CSeq already
    /// checked by the dialog).
    pub(super) fn monitor_session_request(
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
            .and_then(|c| c.monitor.as_ref())
            .map(|m| m.peer)
        else {
            return self.reply(&key, &req, 481, now);
        };
        let contact = self.contact_for(peer, "sipacd");
        let Some(m) = self.calls.get_mut(ck).and_then(|c| c.monitor.as_mut()) else {
            return self.reply(&key, &req, 481, now);
        };
        // We send no refreshes on a monitor leg: a timer is agreed only
        // when the phone refreshes (its expiry is the phone's own; a dead
        // phone ends the leg by RTP timeout).
        let peer_refreshes = timer.filter(|t| t.refresher == Refresher::Peer);
        let mut resp = session_ok(&req, contact, peer_refreshes.as_ref());
        let port = m.ports.pair().rtp;
        let body = match offer {
            // Monitor legs are plain RTP (we offered no keys).
            Some(o) if o.secure => return self.reply(&key, &req, 488, now),
            Some(o) => {
                m.sdp_version += 1;
                let origin = Origin {
                    session_id: u64::from(port),
                    version: m.sdp_version,
                };
                let Ok(answer) = sdp::answer_with(&o, addr, port, origin, None) else {
                    return self.reply(&key, &req, 488, now);
                };
                if let Some(leg) = m.leg {
                    let (remote, codec, telephone_event) = media_of(Some(&o));
                    self.media(MediaCommand::Update {
                        leg,
                        remote,
                        codec,
                        telephone_event,
                        sending: sends(Some(&o)),
                    });
                }
                Some(answer)
            }
            // A re-INVITE without SDP wants our offer (the answer in the
            // ACK is taken as unchanged media).
            None if req.method == Method::Invite => {
                let origin = Origin {
                    session_id: u64::from(port),
                    version: m.sdp_version,
                };
                Some(sdp::offer_with(addr, port, origin, false, &[]))
            }
            None => None,
        };
        if let Some(b) = body {
            resp.headers
                .push(Header::ContentType("application/sdp".into()));
            resp.body = b.into_bytes();
        }
        self.respond(&key, resp, now);
    }
}
