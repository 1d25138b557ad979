//! The RTP sender of one leg: one SSRC, one sequence-number and timestamp
//! space, whatever it is playing (a prompt, silence, or audio relayed from
//! the other leg). Sans-IO: the driver asks `next_due()`, sleeps until
//! then and calls `poll(now)` until it returns nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::event::MediaEvent;
use crate::media::g711::{Codec, FRAME_SAMPLES};
use crate::media::prompt::Prompt;

/// Packetisation time of every packet we generate.
pub const FRAME: Duration = Duration::from_millis(20);
/// Timestamp units per frame (8 kHz).
pub const FRAME_TS: u32 = FRAME_SAMPLES as u32;
/// A driver this many frames late skips ahead instead of bursting.
pub const MAX_CATCH_UP: u32 = 3;

/// What the leg hears.
#[derive(Debug, Clone)]
pub enum Source {
    Silence,
    /// `pos` is the next frame to send.
    Prompt {
        prompt: Prompt,
        pos: usize,
        looped: bool,
    },
    /// Packets come from the other leg through [`Pacer::relay_header`];
    /// nothing is generated on a timer.
    Relay,
    /// Frames come from a monitored call's mixer through
    /// [`Pacer::send_mixed`], on the mixer's 20 ms grid.
    Mixed,
}

impl Source {
    /// A prompt from its start.
    pub fn prompt(prompt: Prompt, looped: bool) -> Source {
        Source::Prompt {
            prompt,
            pos: 0,
            looped,
        }
    }
}

/// The initial RTP identifiers (random in production, fixed in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub codec: Codec,
}

impl PacerConfig {
    /// Random SSRC, sequence and timestamp (RFC 3550 §5.1).
    pub fn random(codec: Codec) -> PacerConfig {
        PacerConfig {
            ssrc: rand::random(),
            seq: rand::random(),
            ts: rand::random(),
            codec,
        }
    }
}

/// How relayed packets map into our numbering: fixed offsets per incoming
/// stream, so the far end's own pacing (and loss) shows through unchanged.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    in_ssrc: u32,
    last_in_seq: u16,
    seq_off: u16,
    ts_off: u32,
}

/// Header fields of a packet to relay, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InHeader {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
}

#[derive(Debug)]
pub struct Pacer {
    ssrc: u32,
    codec: Codec,
    next_seq: u16,
    /// Timestamp of the next generated frame.
    next_ts: u32,
    next_due: Instant,
    /// Timestamp and (virtual) send time of the last packet out.
    last_sent: Option<(u32, Instant)>,
    marker: bool,
    source: Source,
    anchor: Option<Anchor>,
    events: VecDeque<MediaEvent>,
    sent: u64,
    /// Payload octets sent (RTCP SR's octet count).
    octets: u64,
    resyncs: u64,
}

/// Writes a plain 12-byte RTP header (no CSRC, no extension).
pub(crate) fn write_header(out: &mut Vec<u8>, marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    out.push(0x80);
    out.push(pt & 0x7F | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
}

impl Pacer {
    /// A sender playing silence, first packet due at `now`.
    pub fn new(cfg: PacerConfig, now: Instant) -> Pacer {
        Pacer {
            ssrc: cfg.ssrc,
            codec: cfg.codec,
            next_seq: cfg.seq,
            next_ts: cfg.ts,
            next_due: now,
            last_sent: None,
            marker: true,
            source: Source::Silence,
            anchor: None,
            events: VecDeque::new(),
            sent: 0,
            octets: 0,
            resyncs: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The codec changed by re-INVITE: later frames use it.
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Packets sent (generated and relayed) and late-wake resyncs.
    pub fn stats(&self) -> (u64, u64) {
        (self.sent, self.resyncs)
    }

    /// Payload octets sent, generated and relayed.
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// A relayed packet's payload of `n` octets was appended (the header
    /// came from [`Pacer::relay_header`]).
    pub fn note_payload(&mut self, n: usize) {
        self.octets += n as u64;
    }

    /// The RTP timestamp our stream has at `now` (the last packet's plus
    /// the time since it was due): what an RTCP SR pairs with wall time.
    pub fn ts_at(&self, now: Instant) -> u32 {
        let Some((ts, at)) = self.last_sent else {
            return self.next_ts;
        };
        let samples = |d: Duration| (d.as_micros() * 8 / 1000).min(u32::MAX as u128) as u32;
        if now >= at {
            ts.wrapping_add(samples(now - at))
        } else {
            ts.wrapping_sub(samples(at - now))
        }
    }

    /// When `poll` next has a packet; None while relaying.
    pub fn next_due(&self) -> Option<Instant> {
        match self.source {
            Source::Relay | Source::Mixed => None,
            _ => Some(self.next_due),
        }
    }

    /// Switches what the leg hears. Sequence numbers and timestamps carry on
    /// from the last packet (timestamps by the wall time elapsed), and the
    /// next packet has the marker bit.
    pub fn set_source(&mut self, source: Source, now: Instant) {
        let was_relay = matches!(self.source, Source::Relay);
        match source {
            Source::Relay if was_relay => return,
            Source::Mixed if matches!(self.source, Source::Mixed) => return,
            Source::Relay => self.anchor = None,
            _ if was_relay => {
                // Back on our own clock from wherever the relayed stream was.
                self.next_ts = self.ts_after(now);
                self.next_due = now;
            }
            _ => {}
        }
        self.source = source;
        self.marker = true;
    }

    /// Timestamp for a packet sent at `now` after a change of source: at
    /// least one frame after the last one, more if time has passed.
    fn ts_after(&self, now: Instant) -> u32 {
        match self.last_sent {
            None => self.next_ts,
            Some((ts, at)) => {
                let elapsed = now.saturating_duration_since(at).as_micros();
                let samples = (elapsed * 8 / 1000).min(u32::MAX as u128) as u32;
                ts.wrapping_add(samples.max(FRAME_TS))
            }
        }
    }

    /// The next event (a prompt ended).
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// A packet if one is due at `now` (call until None).
    pub fn poll(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(12 + FRAME_SAMPLES);
        self.poll_into(now, &mut out).then_some(out)
    }

    /// Like [`Pacer::poll`], writing into `out` (cleared first) to reuse a
    /// buffer. Returns whether a packet was written.
    pub fn poll_into(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if matches!(self.source, Source::Relay | Source::Mixed) || now < self.next_due {
            return false;
        }
        let late = now - self.next_due;
        if late >= FRAME * MAX_CATCH_UP {
            // The driver slept through several frames: sending them all at
            // once would overflow the phone's jitter buffer. Skip ahead in
            // time (the prompt itself is delayed, not cut) and mark the gap.
            let skip = (late.as_micros() / FRAME.as_micros()).min(u32::MAX as u128) as u32;
            self.next_due += FRAME * skip;
            self.next_ts = self.next_ts.wrapping_add(FRAME_TS.wrapping_mul(skip));
            self.marker = true;
            self.resyncs += 1;
        }
        self.own_header(out);
        let silence = [self.codec.silence(); FRAME_SAMPLES];
        let mut ended = false;
        match &mut self.source {
            Source::Prompt {
                prompt,
                pos,
                looped,
            } => {
                if *pos >= prompt.len() && *looped {
                    *pos = 0;
                }
                out.extend_from_slice(prompt.frame(*pos, self.codec).unwrap_or(&silence));
                *pos += 1;
                ended = *pos >= prompt.len() && !*looped;
            }
            _ => out.extend_from_slice(&silence),
        }
        if ended {
            self.events.push_back(MediaEvent::PromptEnded);
            self.source = Source::Silence;
        }
        self.count_own(FRAME_TS, self.next_due);
        self.next_due += FRAME;
        true
    }

    /// The header of our next own packet (a generated or mixed frame):
    /// our SSRC, sequence, timestamp and pending marker.
    fn own_header(&self, out: &mut Vec<u8>) {
        write_header(
            out,
            self.marker,
            self.codec.pt(),
            self.next_seq,
            self.next_ts,
            self.ssrc,
        );
    }

    /// One own packet of `samples` samples (one octet each in G.711) went
    /// out at `at`: sequence and timestamp move on, the marker is spent.
    fn count_own(&mut self, samples: u32, at: Instant) {
        self.last_sent = Some((self.next_ts, at));
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_ts = self.next_ts.wrapping_add(samples);
        self.marker = false;
        self.sent += 1;
        self.octets += u64::from(samples);
    }

    /// Writes one mixed frame (a G.711 `payload` in this leg's codec) as
    /// our next packet into `out` (cleared first). False (nothing written)
    /// when this leg is not in `Source::Mixed`.
    pub fn send_mixed(&mut self, payload: &[u8], now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if !matches!(self.source, Source::Mixed) {
            return false;
        }
        self.own_header(out);
        out.extend_from_slice(payload);
        self.count_own(u32::try_from(payload.len()).unwrap_or(FRAME_TS), now);
        true
    }

    /// Writes the rewritten header of a relayed packet into `out` (cleared
    /// first); the caller appends the payload. False (nothing written) when
    /// this leg is not in `Source::Relay`.
    ///
    /// The first packet of each incoming stream (new SSRC, or a wild jump
    /// in its sequence) is placed right after our last packet, so the far
    /// end sees one continuous stream with the marker bit at the switch.
    pub fn relay_header(&mut self, h: InHeader, pt: u8, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if !matches!(self.source, Source::Relay) {
            return false;
        }
        let reanchor = match self.anchor {
            None => true,
            Some(a) => {
                let d = h.seq.wrapping_sub(a.last_in_seq) as i16;
                a.in_ssrc != h.ssrc || !(-100..=1000).contains(&d)
            }
        };
        if reanchor {
            let ts = self.ts_after(now);
            self.anchor = Some(Anchor {
                in_ssrc: h.ssrc,
                last_in_seq: h.seq.wrapping_sub(1),
                seq_off: self.next_seq.wrapping_sub(h.seq),
                ts_off: ts.wrapping_sub(h.ts),
            });
            self.marker = true;
        }
        let Some(a) = self.anchor.as_mut() else {
            return false;
        };
        let seq = h.seq.wrapping_add(a.seq_off);
        let ts = h.ts.wrapping_add(a.ts_off);
        // Reordered (older) packets keep their place; only newer ones
        // advance our counters.
        if (h.seq.wrapping_sub(a.last_in_seq) as i16) > 0 {
            a.last_in_seq = h.seq;
            self.next_seq = seq.wrapping_add(1);
            self.last_sent = Some((ts, now));
        }
        write_header(out, h.marker || self.marker, pt, seq, ts, self.ssrc);
        self.marker = false;
        self.sent += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    fn cfg() -> PacerConfig {
        PacerConfig {
            ssrc: 0x1234_5678,
            seq: 65530,
            ts: u32::MAX - 400,
            codec: Codec::Pcma,
        }
    }

    fn hdr(p: &[u8]) -> (u16, u32, bool, u8, u32) {
        let r = RtpReader::new(p).unwrap();
        (
            r.sequence_number().into(),
            r.timestamp(),
            r.mark(),
            r.payload_type(),
            r.ssrc(),
        )
    }

    fn tone(frames: usize) -> Prompt {
        let s: Vec<i16> = (0..frames * 160).map(|i| (i as i16 % 160) * 50).collect();
        Prompt::from_linear(&s)
    }

    /// Runs a virtual clock in 1 ms steps, collecting (time, packet).
    fn run(p: &mut Pacer, start: Instant, ms: u64) -> Vec<(u64, Vec<u8>)> {
        let mut got = Vec::new();
        for t in 0..ms {
            let now = start + Duration::from_millis(t);
            while let Some(pkt) = p.poll(now) {
                got.push((t, pkt));
            }
        }
        got
    }

    #[test]
    fn paces_fifty_packets_per_second_with_exact_headers() {
        let t0 = Instant::now();
        let mut p = Pacer::new(cfg(), t0);
        p.set_source(Source::prompt(tone(100), false), t0);
        let got = run(&mut p, t0, 1000);
        assert_eq!(got.len(), 50);
        for (i, (t, pkt)) in got.iter().enumerate() {
            assert_eq!(*t, 20 * i as u64);
            let (seq, ts, m, pt, ssrc) = hdr(pkt);
            assert_eq!(seq, 65530u16.wrapping_add(i as u16));
            assert_eq!(ts, (u32::MAX - 400).wrapping_add(160 * i as u32));
            assert_eq!(m, i == 0);
            assert_eq!((pt, ssrc), (8, 0x1234_5678));
            assert_eq!(pkt.len(), 172);
            assert_eq!(&pkt[12..], &tone(100).frame(i, Codec::Pcma).unwrap()[..]);
        }
        assert_eq!(p.next_due(), Some(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn prompt_end_is_an_event_then_silence() {
        let t0 = Instant::now();
        let mut p = Pacer::new(cfg(), t0);
        p.set_source(Source::prompt(tone(3), false), t0);
        let got = run(&mut p, t0, 50);
        assert_eq!(got.len(), 3);
        assert_eq!(p.poll_event(), Some(MediaEvent::PromptEnded));
        assert_eq!(p.poll_event(), None);
        let more = run(&mut p, t0 + Duration::from_millis(50), 40);
        assert_eq!(more.len(), 2);
        assert!(more[0].1[12..].iter().all(|&b| b == 0xD5));
        assert!(!hdr(&more[0].1).2, "silence after a prompt is no talkspurt");
        assert_eq!(hdr(&more[0].1).0, hdr(&got[2].1).0.wrapping_add(1));
    }

    #[test]
    fn looped_prompt_wraps_without_events_or_markers() {
        let t0 = Instant::now();
        let mut p = Pacer::new(cfg(), t0);
        let music = tone(4);
        p.set_source(Source::prompt(music.clone(), true), t0);
        let got = run(&mut p, t0, 200);
        assert_eq!(got.len(), 10);
        for (i, (_, pkt)) in got.iter().enumerate() {
            assert_eq!(&pkt[12..], &music.frame(i % 4, Codec::Pcma).unwrap()[..]);
            assert_eq!(hdr(pkt).2, i == 0);
        }
        assert_eq!(p.poll_event(), None);
    }

    #[test]
    fn switching_prompts_keeps_the_grid_and_sets_the_marker() {
        let t0 = Instant::now();
        let mut p = Pacer::new(cfg(), t0);
        p.set_source(Source::prompt(tone(50), true), t0);
        let a = run(&mut p, t0, 110);
        p.set_source(
            Source::prompt(tone(2), false),
            t0 + Duration::from_millis(110),
        );
        let b = run(&mut p, t0 + Duration::from_millis(110), 40);
        let (s1, t1, ..) = hdr(&a.last().unwrap().1);
        let (s2, t2, m2, ..) = hdr(&b[0].1);
        assert_eq!(
            (s2, t2, m2),
            (s1.wrapping_add(1), t1.wrapping_add(160), true)
        );
        assert_eq!(b[0].0, 10, "next frame still on the 20 ms grid");
    }

    #[test]
    fn late_wake_catches_up_a_few_frames_then_resyncs() {
        let t0 = Instant::now();
        let mut p = Pacer::new(cfg(), t0);
        p.set_source(Source::prompt(tone(100), false), t0);
        assert!(p.poll(t0).is_some());
        // 50 ms late: the frames due at 20 and 40 go out back to back.
        let now = t0 + Duration::from_millis(50);
        let burst: Vec<_> = std::iter::from_fn(|| p.poll(now)).collect();
        assert_eq!(burst.len(), 2);
        assert_eq!(hdr(&burst[1]).1, (u32::MAX - 400).wrapping_add(320));
        assert!(!hdr(&burst[0]).2);
        // 500 ms asleep: one packet, timestamp jumped with the clock, marked.
        let now = t0 + Duration::from_millis(560);
        let burst: Vec<_> = std::iter::from_fn(|| p.poll(now)).collect();
        assert_eq!(burst.len(), 1);
        let (seq, ts, m, ..) = hdr(&burst[0]);
        assert_eq!(seq, 65530u16.wrapping_add(3));
        assert_eq!(ts, (u32::MAX - 400).wrapping_add(160 * 28));
        assert!(m);
        assert_eq!(
            &burst[0][12..],
            &tone(100).frame(3, Codec::Pcma).unwrap()[..]
        );
        assert_eq!(p.stats(), (4, 1));
        assert_eq!(p.next_due(), Some(t0 + Duration::from_millis(580)));
    }

    #[test]
    fn music_to_relay_to_music_is_continuous() {
        let t0 = Instant::now();
        let mut p = Pacer::new(cfg(), t0);
        p.set_source(Source::prompt(tone(10), true), t0);
        let music = run(&mut p, t0, 100);
        let (s_last, t_last, ..) = hdr(&music.last().unwrap().1);
        // Agent answers at 95 ms; its first packet arrives at 105 ms.
        p.set_source(Source::Relay, t0 + Duration::from_millis(95));
        assert_eq!(p.next_due(), None);
        assert!(p.poll(t0 + Duration::from_millis(200)).is_none());
        let mut out = Vec::new();
        let mut h = InHeader {
            ssrc: 77,
            seq: 9000,
            ts: 5_000_000,
            marker: false,
        };
        assert!(p.relay_header(h, 8, t0 + Duration::from_millis(105), &mut out));
        let (s, t, m, pt, ssrc) = hdr(&out);
        assert_eq!(
            (s, m, pt, ssrc),
            (s_last.wrapping_add(1), true, 8, 0x1234_5678)
        );
        // 25 ms after the last music frame (sent at 80 ms).
        assert_eq!(t, t_last.wrapping_add(200));
        // The agent's stream keeps its own spacing, reordering included.
        h.seq = 9002;
        h.ts += 320;
        p.relay_header(h, 8, t0 + Duration::from_millis(145), &mut out);
        assert_eq!(hdr(&out).0, s_last.wrapping_add(3));
        assert_eq!(hdr(&out).1, t_last.wrapping_add(200 + 320));
        assert!(!hdr(&out).2);
        h.seq = 9001;
        h.ts -= 160;
        p.relay_header(h, 8, t0 + Duration::from_millis(146), &mut out);
        assert_eq!(hdr(&out).0, s_last.wrapping_add(2));
        assert_eq!(p.next_seq(), s_last.wrapping_add(4));
        // A new SSRC (transfer to another phone) re-anchors after our last.
        let h2 = InHeader {
            ssrc: 78,
            seq: 1,
            ts: 7,
            marker: false,
        };
        p.relay_header(h2, 8, t0 + Duration::from_millis(150), &mut out);
        let (s, t, m, ..) = hdr(&out);
        assert_eq!((s, m), (s_last.wrapping_add(4), true));
        assert_eq!(t, t_last.wrapping_add(200 + 320 + 160));
        // Back to music: continues from the relayed stream, marked.
        p.set_source(
            Source::prompt(tone(10), true),
            t0 + Duration::from_millis(300),
        );
        let back = p.poll(t0 + Duration::from_millis(300)).unwrap();
        let (s, t, m, ..) = hdr(&back);
        assert_eq!((s, m), (s_last.wrapping_add(5), true));
        assert_eq!(t, t_last.wrapping_add(200 + 320 + 160 + 1200));
    }

    #[test]
    fn relay_header_refused_unless_relaying() {
        let t0 = Instant::now();
        let mut p = Pacer::new(cfg(), t0);
        let mut out = vec![1, 2, 3];
        let h = InHeader {
            ssrc: 1,
            seq: 1,
            ts: 1,
            marker: false,
        };
        assert!(!p.relay_header(h, 0, t0, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn mixed_frames_continue_the_stream_from_relay_and_back() {
        let t0 = Instant::now();
        let mut p = Pacer::new(cfg(), t0);
        p.set_source(Source::Relay, t0);
        let mut out = Vec::new();
        let h = InHeader {
            ssrc: 9,
            seq: 100,
            ts: 5000,
            marker: false,
        };
        assert!(p.relay_header(h, 8, t0, &mut out));
        let (seq0, ts0, ..) = hdr(&out);
        assert!(!p.send_mixed(&[0xD5; 160], t0, &mut out), "not mixing yet");
        let t1 = t0 + Duration::from_millis(20);
        p.set_source(Source::Mixed, t1);
        assert_eq!(p.next_due(), None, "the mixer's grid drives it");
        assert!(p.poll(t1 + Duration::from_secs(1)).is_none());
        assert!(p.send_mixed(&[0xD5; 160], t1, &mut out));
        let (seq, ts, m, pt, ssrc) = hdr(&out);
        assert_eq!(
            (seq, ts, m, pt, ssrc),
            (
                seq0.wrapping_add(1),
                ts0.wrapping_add(160),
                true,
                8,
                0x1234_5678
            )
        );
        assert_eq!(&out[12..], &[0xD5; 160]);
        assert!(p.send_mixed(&[0xD5; 160], t1 + FRAME, &mut out));
        assert_eq!(hdr(&out).0, seq0.wrapping_add(2));
        assert!(!hdr(&out).2);
        // Back to the relay: the next relayed packet follows on.
        p.set_source(Source::Relay, t1 + FRAME * 2);
        let h2 = InHeader {
            seq: 103,
            ts: 5480,
            ..h
        };
        assert!(p.relay_header(h2, 8, t1 + FRAME * 2, &mut out));
        let (seq, ts, m, ..) = hdr(&out);
        assert_eq!((seq, m), (seq0.wrapping_add(3), true));
        assert_eq!(ts, ts0.wrapping_add(480));
    }
}
