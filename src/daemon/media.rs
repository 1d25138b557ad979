//! The tokio side of media: two UDP sockets per leg, its RTP port and the
//! RTCP port above it (RTCP is also accepted muxed on the RTP port), a
//! reader task per socket, and one task that owns every leg's sans-IO
//! [`Leg`] and carries out the endpoint's media commands: play prompts and
//! music (each leg woken at its own frame deadline), relay between bridged
//! legs
//! (transcoding PCMU/PCMA; RTCP with its SSRCs translated), send our RTCP
//! Sender Reports while not bridged, detect digits, and report a leg that
//! has gone silent for `server.rtp_timeout_s`.
//!
//! The task sleeps until the earliest deadline of any leg ([`Deadlines`]):
//! a wake-up touches only the legs that are due, so bridged legs, which
//! only relay, cost nothing between their packets.

use ahash::AHashMap as HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::rtp_sockets::{Binder, IdlePorts, Packet, Parked, SocketPair, MAX_PARKED};
use crate::endpoint::{LegId, MediaCommand, MediaEvent, VOICE_EVERY};
use crate::media::g711::FRAME_SAMPLES;
use crate::media::mixer::encode_frame;
use crate::media::pacer::{FRAME, MAX_CATCH_UP};
use crate::media::record_align::Channel;
use crate::media::relay::is_rtcp;
use crate::media::srtp::{Refused, SrtpLeg};
use crate::media::{
    Codec, Deadlines, Leg, LegParams, Mixer, MonitorMode, Outgoing, Party, Prompt, PromptCache,
    RelayStats, Source,
};
use crate::metrics::{Metrics, ReasonLabel};

use super::recorder::{Frame, Recorder, RecordingId};

/// A leg whose timer still claims to be due right after its turn waits
/// this long, so it cannot spin the task.
const MIN_RESCHEDULE: Duration = Duration::from_millis(1);

/// What the sleep waits for when no leg has a deadline.
const IDLE_SLEEP: Duration = Duration::from_secs(3600);

struct Slot {
    /// The leg's RTP port (its pair is parked under it when the leg closes).
    port: u16,
    pair: SocketPair,
    leg: Leg,
    bridge: Option<LegId>,
    timed_out: bool,
    /// SRTP keys of the leg (None: plain RTP, the fast path).
    srtp: Option<SrtpLeg>,
    /// The recording this leg's received audio goes to, and its channel.
    rec: Option<(RecordingId, Channel)>,
    /// The monitored call this leg is part of (keyed by the supervisor's
    /// leg) and as whom. None: the plain relay, the fast path.
    mix: Option<(LegId, Party)>,
}

impl Slot {
    /// Where our RTCP for this leg leaves from: the RTP port for a peer that
    /// muxes (RFC 5761), else the RTCP port.
    fn rtcp_sock(&self) -> &UdpSocket {
        match &self.pair.rtcp_sock {
            Some(s) if !self.leg.rtcp_muxed() => s,
            _ => &self.pair.sock,
        }
    }
}

/// Handles to the media task.
pub struct Media {
    pub commands: mpsc::UnboundedSender<MediaCommand>,
    pub events: mpsc::UnboundedReceiver<MediaEvent>,
}

/// Starts the media task; legs bind on `bind_ip`; RTP is counted in
/// `metrics`.
/// Pairs of closed legs stay open for the next leg on their port
/// (`super::rtp_sockets`); `idle` tells the port pool which those are.
/// `rtp_pairs`: how many pairs may be open at once, parked ones included.
pub fn spawn(
    bind_ip: IpAddr,
    rtp_timeout: Duration,
    metrics: Arc<Metrics>,
    idle: IdlePorts,
    rtp_pairs: usize,
) -> Media {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let parked = Parked::new(idle, MAX_PARKED.min(rtp_pairs));
    tokio::spawn(run(
        bind_ip,
        rtp_timeout,
        cmd_rx,
        ev_tx,
        metrics,
        parked,
        rtp_pairs,
    ));
    Media {
        commands: cmd_tx,
        events: ev_rx,
    }
}

struct Engine {
    /// Binds new socket pairs; their readers feed the packet channel.
    binder: Binder,
    /// Pairs of closed legs, kept for the next leg on their port.
    parked: Parked,
    /// Pairs the descriptor budget counts as open at most.
    rtp_pairs: usize,
    rtp_timeout: Duration,
    slots: HashMap<LegId, Slot>,
    /// When each leg next needs a look (frames, reports, DTMF, timeout).
    deadlines: Deadlines<LegId>,
    prompts: PromptCache,
    events: mpsc::UnboundedSender<MediaEvent>,
    out: Vec<u8>,
    metrics: Arc<Metrics>,
    /// SRTP keys that came before their leg's Open.
    pending_srtp: HashMap<LegId, SrtpLeg>,
    /// The recorder thread, started with the first recording.
    recorder: Option<Recorder>,
    /// Recordings in progress: their legs and the packets they lost.
    recordings: HashMap<RecordingId, Recording>,
    next_recording: RecordingId,
    /// Monitored calls by their supervisor's leg, and when each next mixes
    /// a frame.
    mixes: HashMap<LegId, Mix>,
    mix_due: Deadlines<LegId>,
}

/// One monitored call: its three legs, the mixer, its 20 ms grid.
struct Mix {
    /// Caller, agent, supervisor (the order of [`Party::ALL`]).
    legs: [LegId; 3],
    mixer: Mixer,
    next_frame: Instant,
}

struct Recording {
    legs: [LegId; 2],
    lost: u64,
    /// A message (one leg, not bridged): when speech was last reported.
    message: Option<Option<Instant>>,
}

async fn run(
    bind_ip: IpAddr,
    rtp_timeout: Duration,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
    metrics: Arc<Metrics>,
    parked: Parked,
    rtp_pairs: usize,
) {
    let (pkt_tx, mut packets) = mpsc::channel::<Packet>(8192);
    let mut e = Engine {
        binder: Binder {
            ip: bind_ip,
            packets: pkt_tx,
            metrics: metrics.clone(),
        },
        parked,
        rtp_pairs,
        rtp_timeout,
        slots: HashMap::new(),
        deadlines: Deadlines::new(),
        prompts: PromptCache::new(),
        events,
        out: Vec::with_capacity(256),
        metrics,
        pending_srtp: HashMap::new(),
        recorder: None,
        recordings: HashMap::new(),
        next_recording: 0,
        mixes: HashMap::new(),
        mix_due: Deadlines::new(),
    };
    // One timer, re-armed only when the earliest deadline changes (not per
    // packet batch).
    let sleep = tokio::time::sleep(IDLE_SLEEP);
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        let next = match (e.deadlines.earliest(), e.mix_due.earliest()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if next != armed {
            let at = next.unwrap_or_else(|| Instant::now() + IDLE_SLEEP);
            sleep.as_mut().reset(tokio::time::Instant::from_std(at));
            armed = next;
        }
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => e.apply(cmd).await,
                None => return,
            },
            Some(p) = packets.recv() => {
                e.on_packet(p);
                // Take what else arrived in one go.
                while let Ok(p) = packets.try_recv() {
                    e.on_packet(p);
                }
            }
            _ = &mut sleep, if armed.is_some() => {
                armed = None;
                e.on_due(Instant::now());
            }
        }
    }
}

fn params(codec: u8, telephone_event: Option<u8>) -> LegParams {
    LegParams {
        codec: Codec::from_pt(codec).unwrap_or(Codec::Pcmu),
        te_pt: telephone_event,
    }
}

impl Engine {
    /// Binds a new pair for `leg`, first closing a parked one if open and
    /// parked pairs fill the descriptors set aside for RTP: a cache of idle
    /// sockets must never be what turns a call away.
    async fn bind_within_budget(&mut self, port: u16, leg: LegId) -> std::io::Result<SocketPair> {
        if self.slots.len() + self.parked.len() >= self.rtp_pairs {
            self.parked.evict_newest();
        }
        self.binder.bind(port, leg).await
    }

    async fn apply(&mut self, cmd: MediaCommand) {
        let now = Instant::now();
        match cmd {
            MediaCommand::Open {
                leg,
                port,
                remote,
                codec,
                telephone_event,
            } => {
                let srtp = self.pending_srtp.remove(&leg);
                let pair = match self.parked.take(port, leg) {
                    Some(pair) => pair,
                    None => match self.bind_within_budget(port, leg).await {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Taken since the pool probed it: without media
                            // the call is hung up, as on an RTP timeout.
                            warn!(leg, port, error = %e, "cannot bind RTP port: ending the call");
                            let _ = self.events.send(MediaEvent::Timeout { leg });
                            return;
                        }
                    },
                };
                let l = Leg::new(params(codec, telephone_event), remote, now);
                let slot = Slot {
                    port,
                    pair,
                    leg: l,
                    bridge: None,
                    timed_out: false,
                    srtp,
                    rec: None,
                    mix: None,
                };
                if let Some(old) = self.slots.insert(leg, slot) {
                    // A second Open for one leg: the first pair is let go.
                    drop(old);
                }
                self.reschedule(leg);
            }
            MediaCommand::Update {
                leg,
                remote,
                codec,
                telephone_event,
                sending,
            } => {
                if let Some(s) = self.slots.get_mut(&leg) {
                    s.leg.update_remote(params(codec, telephone_event), remote);
                    s.leg.set_expect_rx(sending, now);
                }
                self.reschedule(leg);
            }
            MediaCommand::Play {
                leg,
                prompts,
                looped,
            } => {
                let loaded: Vec<Prompt> = prompts
                    .iter()
                    .filter_map(|p| match self.prompts.get(p) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            warn!(path = %p.display(), error = %e, "prompt not playable");
                            None
                        }
                    })
                    .collect();
                let Some(s) = self.slots.get_mut(&leg) else {
                    return;
                };
                if loaded.is_empty() {
                    // Nothing to play still ends: the IVR must go on.
                    let _ = self.events.send(MediaEvent::PromptEnded { leg });
                    return;
                }
                let prompt = if loaded.len() == 1 {
                    loaded[0].clone()
                } else {
                    Prompt::concat(&loaded)
                };
                s.leg.play(Source::prompt(prompt, looped), now);
                self.reschedule(leg);
            }
            MediaCommand::Stop { leg } => {
                if let Some(s) = self.slots.get_mut(&leg) {
                    s.leg.play(Source::Silence, now);
                }
                self.reschedule(leg);
            }
            MediaCommand::Bridge { a, b } => {
                for (me, other) in [(a, b), (b, a)] {
                    if let Some(s) = self.slots.get_mut(&me) {
                        s.bridge = Some(other);
                        s.leg.play(Source::Relay, now);
                        // Digits are no longer for the IVR; spare the CPU.
                        s.leg.set_inband_dtmf(false);
                    }
                    self.reschedule(me);
                }
                // Resumed from hold on a monitored call: mixed where the
                // mode says so.
                for leg in [a, b] {
                    if let Some(key) = self.slots.get(&leg).and_then(|s| s.mix).map(|m| m.0) {
                        self.apply_mix_sources(key, now);
                    }
                }
            }
            MediaCommand::Monitor {
                caller,
                agent,
                supervisor,
                mode,
            } => self.monitor(caller, agent, supervisor, mode, now),
            MediaCommand::Srtp { leg, keys } => {
                // A re-key of an SRTP leg keeps what did not change.
                let current = self.slots.get_mut(&leg).and_then(|s| s.srtp.as_mut());
                if let (Some(cur), Some(k)) = (current, keys.clone()) {
                    if let Err(e) = cur.update(k) {
                        warn!(leg, error = %e, "SRTP keys not usable: ending the call");
                        let _ = self.events.send(MediaEvent::Timeout { leg });
                    }
                    return;
                }
                let srtp = match keys.map(SrtpLeg::new).transpose() {
                    Ok(s) => s,
                    Err(e) => {
                        // Never fall back to plain RTP on a leg meant to be SRTP.
                        warn!(leg, error = %e, "SRTP keys not usable: ending the call");
                        let _ = self.events.send(MediaEvent::Timeout { leg });
                        return;
                    }
                };
                match self.slots.get_mut(&leg) {
                    Some(s) => s.srtp = srtp,
                    None => match srtp {
                        Some(s) => {
                            self.pending_srtp.insert(leg, s);
                        }
                        None => {
                            self.pending_srtp.remove(&leg);
                        }
                    },
                }
            }
            MediaCommand::Record {
                caller,
                agent,
                path,
            } => self.start_recording(caller, agent, path, now),
            MediaCommand::RecordMessage { leg, path } => self.start_message(leg, path, now),
            MediaCommand::StopRecording { leg } => self.stop_recording(leg),
            MediaCommand::Close { leg } => {
                self.stop_recording(leg);
                self.stop_mix(leg, now);
                self.pending_srtp.remove(&leg);
                self.deadlines.cancel(leg);
                if let Some(s) = self.slots.remove(&leg) {
                    // Open and parked pairs within the descriptors set
                    // aside for RTP.
                    if self.slots.len() + self.parked.len() < self.rtp_pairs {
                        self.parked.park(s.port, s.pair);
                    }
                    if let Some(b) = s.bridge {
                        // Unless the other leg was bridged elsewhere since
                        // (an attended transfer moves a leg to a new call).
                        let other = self.slots.get_mut(&b).filter(|o| o.bridge == Some(leg));
                        if let Some(other) = other {
                            other.bridge = None;
                            other.leg.play(Source::Silence, now);
                        }
                        self.reschedule(b);
                    }
                }
            }
        }
    }

    fn on_packet(&mut self, p: Packet) {
        let now = Instant::now();
        if p.rtcp_port || is_rtcp(&p.bytes) {
            return self.on_rtcp(p, now);
        }
        let Some(slot) = self.slots.get_mut(&p.leg) else {
            return;
        };
        let bridge = slot.bridge;
        // An SRTP leg's packet is authenticated and decrypted first: only
        // then may it latch, relay or carry digits.
        let data: Bytes = match slot.srtp.as_mut() {
            None => p.bytes.clone(),
            Some(srtp) => match srtp.unprotect_rtp(&p.bytes) {
                Ok(plain) => plain,
                Err(r) => return drop_refused(&self.metrics, r, false),
            },
        };
        let pkt: &[u8] = &data;
        if let Some(mix) = slot.mix {
            return self.on_mixed_packet(p.leg, mix, p.from, &data, now);
        }
        match bridge {
            Some(b) if self.slots.contains_key(&b) => {
                // Two legs of one map: take one out to borrow both.
                let Some(mut me) = self.slots.remove(&p.leg) else {
                    return;
                };
                let before = *me.leg.stats();
                if let Some(other) = self.slots.get_mut(&b) {
                    if me
                        .leg
                        .relay_to(&mut other.leg, p.from, pkt, now, &mut self.out)
                    {
                        let protected;
                        let wire: Option<&[u8]> = match other.srtp.as_mut() {
                            None => Some(&self.out),
                            Some(srtp) => {
                                protected = srtp.protect_rtp(&self.out);
                                protected.as_deref()
                            }
                        };
                        if let (Some(to), Some(wire)) = (other.leg.remote(), wire) {
                            match other.pair.sock.try_send_to(wire, to) {
                                Ok(_) => self.metrics.rtp_relayed.inc(),
                                Err(e) => {
                                    drop_rtp(&self.metrics, "send_error", 1);
                                    debug!(error = %e, "rtp relay send failed");
                                    0
                                }
                            };
                        }
                        // After the relay's send: the recording's copy
                        // costs the relayed packet nothing.
                        if let Some(rec) = me.rec {
                            self.record(rec, &data, now);
                        }
                    }
                }
                count_drops(&self.metrics, &before, me.leg.stats());
                self.slots.insert(p.leg, me);
            }
            _ => {
                let mut rec = None;
                if let Some(s) = self.slots.get_mut(&p.leg) {
                    let before = *s.leg.stats();
                    let _ = s.leg.on_rtp(p.from, pkt, now);
                    count_drops(&self.metrics, &before, s.leg.stats());
                    rec = s.rec;
                }
                // A message being left: the caller's audio, and whether
                // it is speech.
                if let Some(rec) = rec {
                    self.record(rec, &data, now);
                    self.heard(p.leg, rec.0, &data, now);
                }
            }
        }
        self.drain_events(p.leg);
        self.reschedule_earlier(p.leg);
    }

    /// A packet on a leg of a monitored call: its audio goes to the mixer,
    /// and to the other phone's leg as a plain relay while that leg is not
    /// mixed (the mode decides); it is recorded as on any bridged leg.
    fn on_mixed_packet(
        &mut self,
        id: LegId,
        (key, party): (LegId, Party),
        from: std::net::SocketAddr,
        data: &Bytes,
        now: Instant,
    ) {
        let Some(mut me) = self.slots.remove(&id) else {
            return;
        };
        let before = *me.leg.stats();
        if let Some(rtp) = me.leg.on_rtp(from, data, now) {
            let audio = Codec::from_pt(rtp.pt).filter(|_| me.leg.params().te_pt != Some(rtp.pt));
            if let (Some(codec), Some(mix)) = (audio, self.mixes.get_mut(&key)) {
                mix.mixer.push(party, codec, rtp.payload);
            }
            let other = me.bridge.and_then(|b| self.slots.get_mut(&b));
            if let Some(other) = other {
                if me.leg.forward_to(&rtp, &mut other.leg, now, &mut self.out) {
                    send_rtp(other, &self.out, &self.metrics, true);
                }
            }
            if let (Some(rec), Some(_)) = (me.rec, audio) {
                self.slots.insert(id, me);
                self.record(rec, data, now);
                return self.after_packet(id, &before);
            }
        }
        self.slots.insert(id, me);
        self.after_packet(id, &before);
    }

    fn after_packet(&mut self, id: LegId, before: &RelayStats) {
        if let Some(s) = self.slots.get(&id) {
            count_drops(&self.metrics, before, s.leg.stats());
        }
        self.drain_events(id);
        self.reschedule_earlier(id);
    }

    /// Starts mixing `supervisor` into the bridged `caller` and `agent`, or
    /// changes the mode of the mix it is in.
    fn monitor(
        &mut self,
        caller: LegId,
        agent: LegId,
        supervisor: LegId,
        mode: MonitorMode,
        now: Instant,
    ) {
        let legs = [caller, agent, supervisor];
        if !legs.iter().all(|l| self.slots.contains_key(l)) {
            return;
        }
        if let Some(mix) = self.mixes.get_mut(&supervisor) {
            mix.mixer.set_mode(mode);
        } else {
            // A phone leg is in one mix at a time.
            self.stop_mix(caller, now);
            self.stop_mix(agent, now);
            self.mixes.insert(
                supervisor,
                Mix {
                    legs,
                    mixer: Mixer::new(mode),
                    next_frame: now + FRAME,
                },
            );
            for (leg, party) in legs.into_iter().zip(Party::ALL) {
                if let Some(s) = self.slots.get_mut(&leg) {
                    s.mix = Some((supervisor, party));
                }
            }
            self.mix_due.schedule(supervisor, now + FRAME);
        }
        self.apply_mix_sources(supervisor, now);
    }

    /// Each leg of mix `key` mixed or relayed as its mode says (a leg
    /// playing music, held, keeps its music).
    fn apply_mix_sources(&mut self, key: LegId, now: Instant) {
        let Some(mix) = self.mixes.get(&key) else {
            return;
        };
        let (legs, mode) = (mix.legs, mix.mixer.mode());
        for (leg, party) in legs.into_iter().zip(Party::ALL) {
            let Some(s) = self.slots.get_mut(&leg) else {
                continue;
            };
            let generated = matches!(s.leg.pacer().source(), Source::Prompt { .. });
            if party == Party::Supervisor || (!generated && mode.mixes_for(party)) {
                s.leg.play(Source::Mixed, now);
            } else if !generated && s.bridge.is_some() {
                s.leg.play(Source::Relay, now);
            }
            self.reschedule(leg);
        }
    }

    /// Ends the mix leg `leg` is part of, if any: the phones are relayed
    /// again, the supervisor's leg hears silence until it closes.
    fn stop_mix(&mut self, leg: LegId, now: Instant) {
        let Some((key, _)) = self.slots.get(&leg).and_then(|s| s.mix) else {
            return;
        };
        self.mix_due.cancel(key);
        let Some(mix) = self.mixes.remove(&key) else {
            return;
        };
        for l in mix.legs {
            if let Some(s) = self.slots.get_mut(&l) {
                s.mix = None;
                if s.leg.is_mixed() {
                    let back = if s.bridge.is_some() {
                        Source::Relay
                    } else {
                        Source::Silence
                    };
                    s.leg.play(back, now);
                }
            }
            self.reschedule(l);
        }
    }

    /// Mixes the frames due of mix `key` and sends each mixed leg its own.
    fn run_mix(&mut self, key: LegId, now: Instant) {
        let Some(mut mix) = self.mixes.remove(&key) else {
            return;
        };
        if now.saturating_duration_since(mix.next_frame) >= FRAME * MAX_CATCH_UP {
            // Slept through several frames: start again from now rather
            // than bursting them out.
            mix.next_frame = now;
        }
        let mut frames = [[0i16; FRAME_SAMPLES]; 3];
        let mut payload = Vec::with_capacity(FRAME_SAMPLES);
        while mix.next_frame <= now {
            mix.mixer.mix_frame(&mut frames);
            for ((leg, frame), _) in mix.legs.iter().zip(&frames).zip(Party::ALL) {
                let Some(s) = self.slots.get_mut(leg) else {
                    continue;
                };
                if !s.leg.is_mixed() {
                    continue;
                }
                payload.clear();
                encode_frame(frame, s.leg.params().codec, &mut payload);
                if s.leg.send_mixed(&payload, now, &mut self.out) {
                    send_rtp(s, &self.out, &self.metrics, false);
                }
            }
            mix.next_frame += FRAME;
        }
        self.mix_due.schedule(key, mix.next_frame);
        self.mixes.insert(key, mix);
    }

    /// Hands the audio of a relayed packet to its recording.
    fn record(&mut self, (id, channel): (RecordingId, Channel), data: &Bytes, now: Instant) {
        let Ok(rtp) = crate::media::relay::parse(data) else {
            return;
        };
        // Telephone-events and comfort noise are not audio to keep.
        let Some(codec) = Codec::from_pt(rtp.pt) else {
            return;
        };
        let Some(recorder) = &self.recorder else {
            return;
        };
        let frame = Frame {
            id,
            channel,
            arrival: now,
            ssrc: rtp.header.ssrc,
            ts: rtp.header.ts,
            codec,
            payload: data.slice_ref(rtp.payload),
        };
        if !recorder.frame(frame) {
            self.metrics.recording_lost.inc();
            if let Some(r) = self.recordings.get_mut(&id) {
                r.lost += 1;
            }
        }
    }

    /// Tells the endpoint a message heard speech, at most every
    /// [`VOICE_EVERY`].
    fn heard(&mut self, leg: LegId, id: RecordingId, data: &Bytes, now: Instant) {
        let Some(Some(last)) = self.recordings.get_mut(&id).map(|r| r.message.as_mut()) else {
            return;
        };
        if last.is_some_and(|t| now.duration_since(t) < VOICE_EVERY) {
            return;
        }
        let Ok(rtp) = crate::media::relay::parse(data) else {
            return;
        };
        let Some(codec) = Codec::from_pt(rtp.pt) else {
            return;
        };
        if crate::media::g711::is_voiced(codec, rtp.payload) {
            *last = Some(now);
            let _ = self.events.send(MediaEvent::Voice { leg });
        }
    }

    /// Starts recording what the peer of `leg` says, alone, to a mono file.
    fn start_message(&mut self, leg: LegId, path: PathBuf, now: Instant) {
        if !self.slots.contains_key(&leg) {
            return;
        }
        self.stop_recording(leg);
        let id = self.next_recording + 1;
        let Some(recorder) = self.recorder() else {
            return;
        };
        recorder.start_mono(id, path, now);
        self.next_recording = id;
        self.metrics.recordings.inc();
        if let Some(s) = self.slots.get_mut(&leg) {
            s.rec = Some((id, Channel::Left));
        }
        self.recordings.insert(
            id,
            Recording {
                legs: [leg, leg],
                lost: 0,
                message: Some(None),
            },
        );
    }

    /// The recorder thread, started on first use.
    fn recorder(&mut self) -> Option<&Recorder> {
        if self.recorder.is_none() {
            match Recorder::spawn() {
                Ok(r) => self.recorder = Some(r),
                Err(e) => {
                    warn!(error = %e, "cannot start the recorder: not recorded");
                    return None;
                }
            }
        }
        self.recorder.as_ref()
    }

    /// Starts recording the legs `caller` (left) and `agent` (right).
    fn start_recording(&mut self, caller: LegId, agent: LegId, path: PathBuf, now: Instant) {
        if !(self.slots.contains_key(&caller) && self.slots.contains_key(&agent)) {
            return;
        }
        // A leg records into one file at a time.
        self.stop_recording(caller);
        self.stop_recording(agent);
        if self.recorder.is_none() {
            match Recorder::spawn() {
                Ok(r) => self.recorder = Some(r),
                Err(e) => return warn!(error = %e, "cannot start the recorder: call not recorded"),
            }
        }
        let Some(recorder) = &self.recorder else {
            return;
        };
        self.next_recording += 1;
        let id = self.next_recording;
        recorder.start(id, path, now);
        self.metrics.recordings.inc();
        for (leg, ch) in [(caller, Channel::Left), (agent, Channel::Right)] {
            if let Some(s) = self.slots.get_mut(&leg) {
                s.rec = Some((id, ch));
            }
        }
        self.recordings.insert(
            id,
            Recording {
                legs: [caller, agent],
                lost: 0,
                message: None,
            },
        );
    }

    /// Ends the recording leg `leg` is part of, if any.
    fn stop_recording(&mut self, leg: LegId) {
        let Some((id, _)) = self.slots.get(&leg).and_then(|s| s.rec) else {
            return;
        };
        let Some(r) = self.recordings.remove(&id) else {
            return;
        };
        for l in r.legs {
            if let Some(s) = self.slots.get_mut(&l) {
                s.rec = None;
            }
        }
        if let Some(recorder) = &self.recorder {
            recorder.stop(id, r.lost);
        }
    }

    /// Valid RTCP from a bridged leg's peer goes to the other leg's peer
    /// (SSRCs translated) from the other leg's RTCP port; other RTCP is only
    /// counted (the leg's own reports answer it).
    fn on_rtcp(&mut self, p: Packet, now: Instant) {
        let bridge = self.slots.get(&p.leg).and_then(|s| s.bridge);
        let Some(mut me) = self.slots.remove(&p.leg) else {
            return;
        };
        let decrypted;
        let pkt: &[u8] = match me.srtp.as_mut() {
            None => &p.bytes,
            Some(srtp) => match srtp.unprotect_rtcp(&p.bytes) {
                Ok(plain) => {
                    decrypted = plain;
                    &decrypted
                }
                Err(r) => {
                    drop_refused(&self.metrics, r, true);
                    self.slots.insert(p.leg, me);
                    return;
                }
            },
        };
        let before = *me.leg.stats();
        match bridge.and_then(|b| self.slots.get_mut(&b)) {
            Some(other) => {
                let to = me.leg.relay_rtcp_to(
                    &mut other.leg,
                    p.from,
                    pkt,
                    p.rtcp_port,
                    now,
                    &mut self.out,
                );
                let protected;
                let wire: Option<&[u8]> = match other.srtp.as_mut() {
                    None => Some(&self.out),
                    Some(srtp) => {
                        protected = to.and_then(|_| srtp.protect_rtcp(&self.out));
                        protected.as_deref()
                    }
                };
                if let (Some(to), Some(wire)) = (to, wire) {
                    if let Err(e) = other.rtcp_sock().try_send_to(wire, to) {
                        debug!(error = %e, "rtcp relay send failed");
                    }
                }
            }
            None => {
                me.leg.on_rtcp(p.from, pkt, p.rtcp_port, now);
            }
        }
        count_drops(&self.metrics, &before, me.leg.stats());
        self.slots.insert(p.leg, me);
    }

    /// Runs every leg whose deadline has come, and only those.
    fn on_due(&mut self, now: Instant) {
        while let Some(key) = self.mix_due.pop_due(now) {
            self.run_mix(key, now);
        }
        let wall = SystemTime::now();
        while let Some(id) = self.deadlines.pop_due(now) {
            self.run_leg(id, now, wall);
        }
    }

    fn run_leg(&mut self, id: LegId, now: Instant, wall: SystemTime) {
        let Some(s) = self.slots.get_mut(&id) else {
            return;
        };
        let (rtp_to, rtcp_to) = (s.leg.remote(), s.leg.rtcp_remote());
        // As `Slot::rtcp_sock`, by field, to leave `s.leg` free to borrow.
        let sock: &UdpSocket = &s.pair.sock;
        let rtcp_sock: &UdpSocket = match &s.pair.rtcp_sock {
            Some(r) if !s.leg.rtcp_muxed() => r,
            _ => sock,
        };
        let srtp = &mut s.srtp;
        s.leg.run_timers(now, wall, &mut self.out, |kind, pkt| {
            let (sock, to) = match kind {
                Outgoing::Rtp => (sock, rtp_to),
                Outgoing::Rtcp => (rtcp_sock, rtcp_to),
            };
            let Some(to) = to else {
                return;
            };
            match srtp.as_mut() {
                None => {
                    let _ = sock.try_send_to(pkt, to);
                }
                // Prompts, music and our reports on an SRTP leg.
                Some(srtp) => {
                    let wire = match kind {
                        Outgoing::Rtp => srtp.protect_rtp(pkt),
                        Outgoing::Rtcp => srtp.protect_rtcp(pkt),
                    };
                    if let Some(wire) = wire {
                        let _ = sock.try_send_to(&wire, to);
                    }
                }
            }
        });
        if !s.timed_out && s.leg.is_timed_out(now, self.rtp_timeout) {
            s.timed_out = true;
            let _ = self.events.send(MediaEvent::Timeout { leg: id });
        }
        self.drain_events(id);
        // A timer still claiming to be due waits a moment (no spinning).
        let at = self
            .deadline_of(id)
            .map(|t| if t <= now { now + MIN_RESCHEDULE } else { t });
        self.deadlines.set(id, at);
    }

    /// When leg `id` next needs a turn: its own timers, and the RTP timeout
    /// until it has fired.
    fn deadline_of(&self, id: LegId) -> Option<Instant> {
        let s = self.slots.get(&id)?;
        let watch = (!s.timed_out).then_some(self.rtp_timeout);
        s.leg.next_deadline(watch)
    }

    /// After a command changed what leg `id` does: its deadline as it now is.
    fn reschedule(&mut self, id: LegId) {
        let at = self.deadline_of(id);
        self.deadlines.set(id, at);
    }

    /// After a packet: only a sooner deadline (a DTMF end timer) is worth a
    /// heap entry; one that moved later (the RTP timeout, pushed back by
    /// every packet) costs a harmless early look when it comes.
    fn reschedule_earlier(&mut self, id: LegId) {
        if let Some(at) = self.deadline_of(id) {
            self.deadlines.schedule_earlier(id, at);
        }
    }

    fn drain_events(&mut self, id: LegId) {
        let Some(s) = self.slots.get_mut(&id) else {
            return;
        };
        while let Some(ev) = s.leg.poll_event() {
            let ev = match ev {
                crate::media::MediaEvent::PromptEnded => MediaEvent::PromptEnded { leg: id },
                crate::media::MediaEvent::Digit(d) => MediaEvent::Digit {
                    leg: id,
                    digit: d.digit,
                },
            };
            let _ = self.events.send(ev);
        }
    }
}

/// Sends `pkt` (plain RTP) to `to`'s peer, SRTP-protected if the leg is;
/// `relayed` counts it as relayed.
fn send_rtp(to: &mut Slot, pkt: &[u8], metrics: &Metrics, relayed: bool) {
    let protected;
    let wire: Option<&[u8]> = match to.srtp.as_mut() {
        None => Some(pkt),
        Some(srtp) => {
            protected = srtp.protect_rtp(pkt);
            protected.as_deref()
        }
    };
    if let (Some(dest), Some(wire)) = (to.leg.remote(), wire) {
        match to.pair.sock.try_send_to(wire, dest) {
            Ok(_) if relayed => metrics.rtp_relayed.inc(),
            Ok(_) => 0,
            Err(e) => {
                debug!(error = %e, "rtp send failed");
                drop_rtp(metrics, "send_error", 1)
            }
        };
    }
}

/// Adds what a leg dropped while handling one packet.
fn count_drops(m: &Metrics, before: &RelayStats, after: &RelayStats) {
    for (reason, n) in [
        (
            "garbage",
            after.dropped_garbage.saturating_sub(before.dropped_garbage),
        ),
        (
            "foreign",
            after.dropped_foreign.saturating_sub(before.dropped_foreign),
        ),
        (
            "payload_type",
            after.dropped_pt.saturating_sub(before.dropped_pt),
        ),
    ] {
        if n > 0 {
            drop_rtp(m, reason, n);
        }
    }
}

/// Counts an SRTP or SRTCP packet refused before anything read it.
fn drop_refused(m: &Metrics, r: Refused, rtcp: bool) {
    let reason = match (r, rtcp) {
        (Refused::Auth, false) => "srtp_auth",
        (Refused::Replay, false) => "srtp_replay",
        (Refused::Auth, true) => "srtcp_auth",
        (Refused::Replay, true) => "srtcp_replay",
    };
    drop_rtp(m, reason, 1);
}

fn drop_rtp(m: &Metrics, reason: &'static str, n: u64) -> u64 {
    m.rtp_dropped
        .get_or_create(&ReasonLabel { reason })
        .inc_by(n)
}
