//! Three-way audio of a monitored call: the caller, the agent and a
//! supervisor. Each party's received G.711 is decoded into a small FIFO;
//! every 20 ms the driver takes one frame from each and gets, per
//! listener, the linear sum (saturated to 16 bits) of the parties it hears,
//! never its own input. The mode says who hears whom:
//!
//! | mode | caller hears | agent hears | supervisor hears |
//! |---|---|---|---|
//! | listen | agent | caller | both |
//! | whisper | agent | caller + supervisor | both |
//! | barge | agent + supervisor | caller + supervisor | both |
//!
//! A listener that hears a single party (the caller and the agent in
//! `listen`, the caller in `whisper`) is better served by the plain relay
//! (no decode, no added delay): [`MonitorMode::mixes_for`] says which
//! streams the driver must generate from the mix. Sans-IO: no clock, no
//! socket; the driver calls [`Mixer::mix_frame`] on its own 20 ms grid.

use std::collections::VecDeque;

use crate::media::g711::{Codec, FRAME_SAMPLES};

/// What the supervisor of a monitored call hears and who hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorMode {
    /// Hears caller and agent; heard by none.
    Listen,
    /// Hears both; heard by the agent only (coaching).
    Whisper,
    /// Hears both; heard by both (joins the call).
    Barge,
}

impl MonitorMode {
    /// The name in the admin API, events and records.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }

    pub fn parse(s: &str) -> Option<MonitorMode> {
        match s {
            "listen" => Some(MonitorMode::Listen),
            "whisper" => Some(MonitorMode::Whisper),
            "barge" => Some(MonitorMode::Barge),
            _ => None,
        }
    }

    /// Whether `listener` hears `speaker` (never itself).
    pub fn hears(self, listener: Party, speaker: Party) -> bool {
        if listener == speaker {
            return false;
        }
        match (speaker, listener) {
            (Party::Supervisor, Party::Agent) => self != MonitorMode::Listen,
            (Party::Supervisor, Party::Caller) => self == MonitorMode::Barge,
            _ => true,
        }
    }

    /// Whether `listener`'s stream is made from the mix (it hears more than
    /// one party); otherwise it is the one party it hears, relayed.
    pub fn mixes_for(self, listener: Party) -> bool {
        Party::ALL
            .iter()
            .filter(|&&s| self.hears(listener, s))
            .count()
            > 1
    }
}

/// One participant of a monitored call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    Caller = 0,
    Agent = 1,
    Supervisor = 2,
}

impl Party {
    pub const ALL: [Party; 3] = [Party::Caller, Party::Agent, Party::Supervisor];
}

/// Frames buffered before a party's input is played (and again after it
/// ran dry): absorbs the phase between its packets and our 20 ms grid.
const PREBUFFER: usize = 2 * FRAME_SAMPLES;
/// More than this is dropped from the oldest end: a sender whose clock runs
/// fast (or a burst after a stall) must not build up delay.
const MAX_BUFFERED: usize = 6 * FRAME_SAMPLES;

/// One party's received audio, waiting for the next frames.
#[derive(Debug, Default)]
struct Input {
    samples: VecDeque<i16>,
    /// Playing (not waiting for the prebuffer to fill).
    flowing: bool,
}

impl Input {
    fn push(&mut self, samples: impl Iterator<Item = i16>) {
        self.samples.extend(samples);
        let over = self.samples.len().saturating_sub(MAX_BUFFERED);
        self.samples.drain(..over);
        if self.samples.len() >= PREBUFFER {
            self.flowing = true;
        }
    }

    /// The next frame into `frame` (silence when there is none to play).
    fn take(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        if !self.flowing || self.samples.len() < FRAME_SAMPLES {
            self.flowing = false;
            frame.fill(0);
            return;
        }
        for (s, v) in frame.iter_mut().zip(self.samples.drain(..FRAME_SAMPLES)) {
            *s = v;
        }
    }
}

/// The three inputs and the mode of one monitored call.
#[derive(Debug)]
pub struct Mixer {
    mode: MonitorMode,
    inputs: [Input; 3],
    /// The current frame of each input (reused between frames).
    frames: [[i16; FRAME_SAMPLES]; 3],
}

impl Mixer {
    pub fn new(mode: MonitorMode) -> Mixer {
        Mixer {
            mode,
            inputs: Default::default(),
            frames: [[0; FRAME_SAMPLES]; 3],
        }
    }

    pub fn mode(&self) -> MonitorMode {
        self.mode
    }

    /// Takes effect from the next frame.
    pub fn set_mode(&mut self, mode: MonitorMode) {
        self.mode = mode;
    }

    /// Audio `party` sent: a G.711 payload in `codec`.
    pub fn push(&mut self, party: Party, codec: Codec, payload: &[u8]) {
        self.inputs[party as usize].push(payload.iter().map(|&b| codec.decode(b)));
    }

    /// Audio `party` sent, as linear samples.
    pub fn push_linear(&mut self, party: Party, samples: &[i16]) {
        self.inputs[party as usize].push(samples.iter().copied());
    }

    /// Takes one 20 ms frame from every input and writes into `out[p]` what
    /// party `p` hears: the saturated sum of the parties it hears.
    pub fn mix_frame(&mut self, out: &mut [[i16; FRAME_SAMPLES]; 3]) {
        for (input, frame) in self.inputs.iter_mut().zip(self.frames.iter_mut()) {
            input.take(frame);
        }
        for listener in Party::ALL {
            let mut sum = [0i32; FRAME_SAMPLES];
            for speaker in Party::ALL {
                if self.mode.hears(listener, speaker) {
                    for (acc, &s) in sum.iter_mut().zip(&self.frames[speaker as usize]) {
                        *acc += i32::from(s);
                    }
                }
            }
            for (o, s) in out[listener as usize].iter_mut().zip(sum) {
                *o = s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
        }
    }
}

/// A frame of linear samples as a G.711 payload (appended to `out`).
pub fn encode_frame(frame: &[i16], codec: Codec, out: &mut Vec<u8>) {
    out.extend(frame.iter().map(|&s| codec.encode(s)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` samples of a sine of `hz` at amplitude `amp`, from sample `from`.
    fn tone(hz: f64, amp: f64, from: usize, n: usize) -> Vec<i16> {
        (from..from + n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    /// Goertzel power of `hz` in `x`, normalised by the length.
    fn power(x: &[i16], hz: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s = f64::from(v) + c * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len() as f64 * x.len() as f64)
    }

    /// Feeds 25 frames of a tone per party (400, 1000 and 1700 Hz), in
    /// `codec`, and returns what each party heard over the last 20.
    fn run(mode: MonitorMode, codec: Codec) -> [Vec<i16>; 3] {
        let mut m = Mixer::new(mode);
        let hz = [400.0, 1000.0, 1700.0];
        let mut heard: [Vec<i16>; 3] = Default::default();
        let mut out = [[0i16; FRAME_SAMPLES]; 3];
        for f in 0..25 {
            for p in Party::ALL {
                let mut payload = Vec::new();
                let t = tone(hz[p as usize], 6000.0, f * FRAME_SAMPLES, FRAME_SAMPLES);
                encode_frame(&t, codec, &mut payload);
                m.push(p, codec, &payload);
            }
            m.mix_frame(&mut out);
            if f >= 5 {
                for p in Party::ALL {
                    heard[p as usize].extend_from_slice(&out[p as usize]);
                }
            }
        }
        heard
    }

    fn hears(x: &[i16], hz: f64) -> bool {
        power(x, hz) > 1e5
    }

    #[test]
    fn each_mode_mixes_the_frequencies_of_exactly_the_parties_heard() {
        let hz = [400.0, 1000.0, 1700.0];
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for mode in [
                MonitorMode::Listen,
                MonitorMode::Whisper,
                MonitorMode::Barge,
            ] {
                let heard = run(mode, codec);
                for l in Party::ALL {
                    for s in Party::ALL {
                        assert_eq!(
                            hears(&heard[l as usize], hz[s as usize]),
                            mode.hears(l, s),
                            "{mode:?} {codec:?}: {l:?} hearing {s:?} ({})",
                            power(&heard[l as usize], hz[s as usize])
                        );
                    }
                }
            }
        }
        // Spelled out for barge: both phones hear the supervisor, nobody
        // hears themself.
        let heard = run(MonitorMode::Barge, Codec::Pcmu);
        assert!(hears(&heard[0], 1700.0) && hears(&heard[1], 1700.0));
        assert!(!hears(&heard[0], 400.0) && !hears(&heard[2], 1700.0));
    }

    #[test]
    fn the_sum_is_linear_and_saturates_instead_of_wrapping() {
        let mut m = Mixer::new(MonitorMode::Barge);
        let mut out = [[0i16; FRAME_SAMPLES]; 3];
        for _ in 0..2 {
            m.push_linear(Party::Caller, &[1000; FRAME_SAMPLES]);
            m.push_linear(Party::Agent, &[-300; FRAME_SAMPLES]);
            m.push_linear(Party::Supervisor, &[30_000; FRAME_SAMPLES]);
        }
        m.mix_frame(&mut out);
        assert_eq!(out[Party::Supervisor as usize], [700; FRAME_SAMPLES]);
        assert_eq!(out[Party::Agent as usize], [31_000; FRAME_SAMPLES]);
        // 30000 + 30000 must clip, not wrap.
        let mut m = Mixer::new(MonitorMode::Barge);
        for _ in 0..2 {
            m.push_linear(Party::Caller, &[30_000; FRAME_SAMPLES]);
            m.push_linear(Party::Agent, &[-30_000; FRAME_SAMPLES]);
            m.push_linear(Party::Supervisor, &[-30_000; FRAME_SAMPLES]);
        }
        m.mix_frame(&mut out);
        assert_eq!(out[Party::Agent as usize], [0; FRAME_SAMPLES]);
        assert_eq!(out[Party::Caller as usize], [i16::MIN; FRAME_SAMPLES]);
        assert_eq!(out[Party::Supervisor as usize], [0; FRAME_SAMPLES]);
        let mut m = Mixer::new(MonitorMode::Barge);
        for _ in 0..2 {
            m.push_linear(Party::Caller, &[30_000; FRAME_SAMPLES]);
            m.push_linear(Party::Supervisor, &[30_000; FRAME_SAMPLES]);
        }
        m.mix_frame(&mut out);
        assert_eq!(out[Party::Agent as usize], [i16::MAX; FRAME_SAMPLES]);
    }

    #[test]
    fn an_input_plays_after_its_prebuffer_and_stays_bounded() {
        let mut m = Mixer::new(MonitorMode::Listen);
        let mut out = [[0i16; FRAME_SAMPLES]; 3];
        m.push_linear(Party::Caller, &[500; FRAME_SAMPLES]);
        m.mix_frame(&mut out);
        assert_eq!(
            out[Party::Supervisor as usize],
            [0; FRAME_SAMPLES],
            "prebuffering"
        );
        m.push_linear(Party::Caller, &[500; FRAME_SAMPLES]);
        m.mix_frame(&mut out);
        assert_eq!(out[Party::Supervisor as usize], [500; FRAME_SAMPLES]);
        m.mix_frame(&mut out);
        m.mix_frame(&mut out);
        assert_eq!(
            out[Party::Supervisor as usize],
            [0; FRAME_SAMPLES],
            "ran dry"
        );
        // A burst of a second of audio keeps at most 120 ms.
        for _ in 0..50 {
            m.push_linear(Party::Agent, &[7; FRAME_SAMPLES]);
        }
        let mut frames = 0;
        loop {
            m.mix_frame(&mut out);
            if out[Party::Supervisor as usize][0] != 7 {
                break;
            }
            frames += 1;
        }
        assert_eq!(frames, 6);
    }

    #[test]
    fn only_listeners_hearing_two_parties_need_a_mixed_stream() {
        use MonitorMode::*;
        use Party::*;
        let mixed = |m: MonitorMode| Party::ALL.map(|p| m.mixes_for(p));
        assert_eq!(mixed(Listen), [false, false, true]);
        assert_eq!(mixed(Whisper), [false, true, true]);
        assert_eq!(mixed(Barge), [true, true, true]);
        assert!(!Listen.hears(Caller, Supervisor) && !Listen.hears(Agent, Supervisor));
        assert_eq!(MonitorMode::parse("whisper"), Some(Whisper));
        assert_eq!(MonitorMode::parse("spy"), None);
    }
}
