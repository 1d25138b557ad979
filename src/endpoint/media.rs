//! The endpoint's side of media: what it asks the media engine to do for a
//! leg (open its RTP port, play prompts or music, bridge two legs, close),
//! and what the engine tells it back (a prompt ended, a digit, silence for
//! `rtp_timeout_s`). Commands are queued here and drained by the daemon,
//! like messages on the wire: the endpoint stays sans-IO.

use std::net::SocketAddr;
use std::path::PathBuf;

use tracing::info;

use super::{Endpoint, Now};
use crate::ivr::IvrEvent;
use crate::media::sdp::{SdpOffer, PT_PCMU};

/// The Reason (RFC 3326) of a BYE sent because a leg went silent.
pub const RTP_TIMEOUT_REASON: &str = "SIP;cause=408;text=\"RTP timeout\"";

/// One RTP leg: the caller's, or an agent's.
pub type LegId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// Bind the leg's RTP port. Packets go to `remote` until the peer's own
    /// packets show where it really is (symmetric RTP).
    Open {
        leg: LegId,
        port: u16,
        remote: Option<SocketAddr>,
        /// G.711 payload type agreed for the leg (0 PCMU, 8 PCMA).
        codec: u8,
        telephone_event: Option<u8>,
    },
    /// The peer's media changed (re-INVITE, hold, resume).
    Update {
        leg: LegId,
        remote: Option<SocketAddr>,
        codec: u8,
        telephone_event: Option<u8>,
        /// Whether the peer will send RTP (false while it holds the call
        /// with `recvonly`/`inactive` or a 0.0.0.0 address).
        sending: bool,
    },
    /// Play prompts one after another, again from the first if `looped`.
    Play {
        leg: LegId,
        prompts: Vec<PathBuf>,
        looped: bool,
    },
    /// Stop what plays on the leg (silence).
    Stop {
        leg: LegId,
    },
    /// Relay audio between two legs (music on `a` stops).
    Bridge {
        a: LegId,
        b: LegId,
    },
    /// Record the bridged legs `caller` (left channel) and `agent` (right)
    /// to a stereo WAV at `path`, until either leg closes.
    Record {
        caller: LegId,
        agent: LegId,
        path: PathBuf,
    },
    /// Mix the bridged legs `caller` and `agent` with `supervisor`'s leg
    /// in `mode` (again with a new mode: the mode changes). Ends when any
    /// of the three closes; caller and agent are then relayed as before.
    Monitor {
        caller: LegId,
        agent: LegId,
        supervisor: LegId,
        mode: crate::media::MonitorMode,
    },
    /// Record what the caller of leg `leg` says (a message) to a mono WAV
    /// at `path`, reporting [`MediaEvent::Voice`] while it hears speech,
    /// until `StopRecording` or the leg closes.
    RecordMessage {
        leg: LegId,
        path: PathBuf,
    },
    /// End the recording leg `leg` is part of.
    StopRecording {
        leg: LegId,
    },
    Close {
        leg: LegId,
    },
    /// The leg's SRTP keys (None: plain RTP again). Sent before the leg's
    /// Open (the engine keeps them until then) or Update.
    Srtp {
        leg: LegId,
        keys: Option<crate::media::crypto_attr::SrtpKeys>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    PromptEnded {
        leg: LegId,
    },
    Digit {
        leg: LegId,
        digit: char,
    },
    /// No RTP from the peer for `server.rtp_timeout_s`.
    Timeout {
        leg: LegId,
    },
    /// The message being recorded on the leg heard speech (at most every
    /// [`VOICE_EVERY`]).
    Voice {
        leg: LegId,
    },
}

/// How often a message recording reports that it hears speech.
pub const VOICE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Where the peer wants our RTP, from its SDP.
pub(super) fn media_of(sdp: Option<&SdpOffer>) -> (Option<SocketAddr>, u8, Option<u8>) {
    match sdp {
        Some(o) => (
            o.addr.map(|a| SocketAddr::new(a, o.port)),
            o.chosen_codec().unwrap_or(PT_PCMU),
            o.telephone_event,
        ),
        None => (None, PT_PCMU, None),
    }
}

impl MediaEvent {
    /// The leg it happened on (its shard is in the id's low bits).
    pub fn leg(&self) -> LegId {
        match self {
            MediaEvent::PromptEnded { leg }
            | MediaEvent::Digit { leg, .. }
            | MediaEvent::Timeout { leg }
            | MediaEvent::Voice { leg } => *leg,
        }
    }
}

impl Endpoint {
    /// Next command for the media engine.
    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.media_out.pop_front()
    }

    pub(super) fn media(&mut self, cmd: MediaCommand) {
        self.media_out.push_back(cmd);
    }

    pub(super) fn new_leg(&mut self) -> LegId {
        self.next_leg += 1;
        self.shard.make_id(self.next_leg)
    }

    /// Something the media engine noticed on one of our legs.
    pub fn handle_media_event(&mut self, ev: MediaEvent, now: Now) {
        let Err(ev) = self.forward_media(ev) else {
            return; // the leg moved to another shard
        };
        let leg = ev.leg();
        let Some(ck) = self.legs.get(&leg).cloned() else {
            return;
        };
        match ev {
            MediaEvent::Timeout { .. } if self.is_monitor_leg(ck, leg) => {
                info!(call = %self.calls.call_id(ck), leg, "no RTP from the supervisor: monitor leg ended");
                self.release_monitor(ck, "rtp_timeout", now);
            }
            MediaEvent::Timeout { .. } => {
                info!(call = %self.calls.call_id(ck), leg, "no RTP for rtp_timeout_s: hanging up");
                if let Some(call) = self.calls.get_mut(ck) {
                    call.bye_reason = Some(RTP_TIMEOUT_REASON);
                }
                self.hang_up(ck, now);
            }
            MediaEvent::Voice { .. } => self.ivr_event(ck, IvrEvent::Voice, now),
            MediaEvent::Digit { digit, .. } => {
                info!(call = %self.calls.call_id(ck), %digit, "digit");
                if !self.callback_digit(ck, digit, now) {
                    self.ivr_event(ck, IvrEvent::Digit(digit), now);
                }
            }
            MediaEvent::PromptEnded { .. } => {
                let playing = self.calls.get_mut(ck).and_then(|c| c.prompt.take());
                match playing {
                    Some(id) => self.ivr_event(ck, IvrEvent::PromptEnded(id), now),
                    // Queue announcements done: back to the music.
                    None => {
                        if self.callback_prompt_ended(ck, now) {
                            return;
                        }
                        if !self.prompt_ended_before_bridge(ck, now) {
                            self.play_music(ck);
                        }
                    }
                }
            }
        }
    }
}
