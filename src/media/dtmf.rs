//! DTMF by all three routes phones use: RFC 4733 telephone-events in RTP,
//! SIP INFO bodies, and in-band tones in the G.711 audio (Goertzel).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::g711::Codec;

/// Which route a key press came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    Rfc4733,
    SipInfo,
    InBand,
}

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// One of `0-9 * # A-D`.
    pub digit: char,
    /// How long the key was held; 0 when the signalling did not say.
    pub duration_ms: u32,
    pub source: DtmfSource,
}

/// RFC 4733 §3.2 event codes 0-15 as digits.
pub fn event_digit(code: u8) -> Option<char> {
    const DIGITS: &[u8; 16] = b"0123456789*#ABCD";
    DIGITS.get(code as usize).map(|&b| b as char)
}

// ---------------------------------------------------------------- RFC 4733

/// If the end packets of an event are all lost, the digit is reported once
/// no packet of it has come for this long (updates come every ~50 ms).
pub const EVENT_END_TIMEOUT: Duration = Duration::from_millis(400);

#[derive(Debug, Clone, Copy)]
struct Pending {
    ts: u32,
    digit: char,
    duration: u16,
    last_seen: Instant,
}

/// Assembles telephone-event packets into key presses: one digit per event
/// (keyed by RTP timestamp) however many of its packets arrive, reported at
/// its first end packet.
#[derive(Debug, Default)]
pub struct Rfc4733Receiver {
    pending: Option<Pending>,
    /// Timestamps of recent reported events: retransmitted end packets
    /// (senders repeat them three times) must not report again.
    done: [Option<u32>; 8],
    done_next: usize,
    out: VecDeque<DtmfEvent>,
}

impl Rfc4733Receiver {
    pub fn new() -> Rfc4733Receiver {
        Rfc4733Receiver::default()
    }

    /// Feeds the payload of a telephone-event packet with RTP timestamp `ts`.
    pub fn on_packet(&mut self, ts: u32, payload: &[u8], now: Instant) {
        let Some(&[code, flags, d0, d1]) =
            payload.get(..4).and_then(|p| <&[u8; 4]>::try_from(p).ok())
        else {
            return;
        };
        let Some(digit) = event_digit(code) else {
            return; // flash, tones and other non-DTMF events
        };
        if self.done.contains(&Some(ts)) {
            return;
        }
        let duration = u16::from_be_bytes([d0, d1]);
        let end = flags & 0x80 != 0;
        match &mut self.pending {
            Some(p) if p.ts == ts => {
                p.duration = p.duration.max(duration);
                p.last_seen = now;
            }
            other => {
                // A new event while the previous never ended: its end
                // packets were lost, it still was a key press.
                if let Some(prev) = other.take() {
                    self.report(prev);
                }
                self.pending = Some(Pending {
                    ts,
                    digit,
                    duration,
                    last_seen: now,
                });
            }
        }
        if end {
            if let Some(p) = self.pending.take() {
                self.report(p);
            }
        }
    }

    fn report(&mut self, p: Pending) {
        self.done[self.done_next] = Some(p.ts);
        self.done_next = (self.done_next + 1) % self.done.len();
        self.out.push_back(DtmfEvent {
            digit: p.digit,
            duration_ms: u32::from(p.duration) / 8,
            source: DtmfSource::Rfc4733,
        });
    }

    /// When [`Rfc4733Receiver::handle_timeout`] should next be called.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.pending.map(|p| p.last_seen + EVENT_END_TIMEOUT)
    }

    /// Reports an event whose end packets never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(p) = self.pending {
            if now >= p.last_seen + EVENT_END_TIMEOUT {
                self.pending = None;
                self.report(p);
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.out.pop_front()
    }
}

// ---------------------------------------------------------------- SIP INFO

/// The digit in a SIP INFO body, for `application/dtmf-relay`
/// (`Signal=5\r\nDuration=160`) and `application/dtmf` (`5`). None for
/// other content types or bodies without a DTMF digit.
pub fn parse_info(content_type: &str, body: &[u8]) -> Option<DtmfEvent> {
    let mime = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let (signal, duration_ms) = match mime.as_str() {
        "application/dtmf-relay" => {
            let mut signal = None;
            let mut duration = 0;
            for line in text.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("signal") {
                    signal = Some(v);
                } else if k.eq_ignore_ascii_case("duration") {
                    duration = v.parse().unwrap_or(0);
                }
            }
            (signal?, duration)
        }
        "application/dtmf" => (text.trim(), 0),
        _ => return None,
    };
    Some(DtmfEvent {
        digit: signal_digit(signal)?,
        duration_ms,
        source: DtmfSource::SipInfo,
    })
}

/// `5`, `*`, `#`, `a`-`d`, or the event codes some phones send (`10` = `*`,
/// `11` = `#`).
fn signal_digit(s: &str) -> Option<char> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if matches!(c, '0'..='9' | '*' | '#') => Some(c),
        (Some(c), None) if matches!(c, 'a'..='d' | 'A'..='D') => Some(c.to_ascii_uppercase()),
        _ => event_digit(s.parse().ok()?),
    }
}

// ----------------------------------------------------------------- in-band

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Samples per analysis block: 102 at 8 kHz puts the neighbouring row
/// frequencies near a null of the window (the choice of spandsp).
pub const BLOCK: usize = 102;
/// Consecutive hit blocks for a press (~25 ms of steady tone; any tone of
/// 40 ms or more contains two whole blocks).
const MIN_HIT_BLOCKS: u32 = 2;
/// Consecutive miss blocks that end a press (the inter-digit gap).
const END_MISS_BLOCKS: u32 = 2;
/// Each tone's mean square must exceed this (amplitude ~400 of 32767,
/// about -36 dBm0).
const MIN_TONE_POWER: f32 = 400.0 * 400.0 / 2.0;
/// Largest allowed level difference between the two tones (8 dB).
const MAX_TWIST: f32 = 6.3;
/// The strongest row (column) must beat the others by this (8 dB).
const MIN_PEAK_RATIO: f32 = 6.3;
/// Share of the block's energy the two tones must carry.
const MIN_TONE_SHARE: f32 = 0.6;

fn coeff(f: f32) -> f32 {
    2.0 * (2.0 * std::f32::consts::PI * f / 8000.0).cos()
}

/// In-band DTMF detector for one leg's audio.
#[derive(Debug)]
pub struct InbandDetector {
    coeffs: [f32; 8],
    block: [f32; BLOCK],
    fill: usize,
    /// Digit being held and for how many blocks.
    current: Option<(char, u32)>,
    misses: u32,
    out: VecDeque<DtmfEvent>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        InbandDetector::new()
    }
}

impl InbandDetector {
    pub fn new() -> InbandDetector {
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            *c = coeff(*f);
        }
        InbandDetector {
            coeffs,
            block: [0.0; BLOCK],
            fill: 0,
            current: None,
            misses: 0,
            out: VecDeque::new(),
        }
    }

    /// Feeds a G.711 payload.
    pub fn push_g711(&mut self, codec: Codec, payload: &[u8]) {
        for &b in payload {
            self.push_sample(codec.decode(b));
        }
    }

    /// Feeds linear samples.
    pub fn push(&mut self, samples: &[i16]) {
        for &s in samples {
            self.push_sample(s);
        }
    }

    fn push_sample(&mut self, s: i16) {
        if let Some(slot) = self.block.get_mut(self.fill) {
            *slot = f32::from(s);
        }
        self.fill += 1;
        if self.fill >= BLOCK {
            self.fill = 0;
            let hit = self.analyse();
            self.step(hit);
        }
    }

    /// The key whose two tones dominate the current block, if any.
    fn analyse(&self) -> Option<char> {
        let n = BLOCK as f32;
        let energy: f32 = self.block.iter().map(|x| x * x).sum::<f32>() / n;
        if energy < 2.0 * MIN_TONE_POWER {
            return None;
        }
        let mut p = [0f32; 8];
        for (pi, &c) in p.iter_mut().zip(&self.coeffs) {
            let (mut s1, mut s2) = (0f32, 0f32);
            for &x in &self.block {
                let s0 = x + c * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            // |X|^2 scaled so a sine of amplitude A gives A^2/2.
            *pi = 2.0 * (s1 * s1 + s2 * s2 - c * s1 * s2) / (n * n);
        }
        let (rows, cols) = p.split_at(4);
        let (r, pr) = peak(rows)?;
        let (c, pc) = peak(cols)?;
        let dominant = |band: &[f32], at: usize, top: f32| {
            band.iter()
                .enumerate()
                .all(|(i, &x)| i == at || x * MIN_PEAK_RATIO < top)
        };
        let ok = pr >= MIN_TONE_POWER
            && pc >= MIN_TONE_POWER
            && pr < pc * MAX_TWIST
            && pc < pr * MAX_TWIST
            && dominant(rows, r, pr)
            && dominant(cols, c, pc)
            && pr + pc >= MIN_TONE_SHARE * energy;
        if ok {
            KEYS.get(r).and_then(|row| row.get(c)).copied()
        } else {
            None
        }
    }

    fn step(&mut self, hit: Option<char>) {
        match (hit, self.current) {
            (Some(d), Some((cur, n))) if d == cur => {
                self.current = Some((cur, n + 1));
                self.misses = 0;
            }
            (Some(d), _) => {
                self.finish();
                self.current = Some((d, 1));
            }
            (None, Some(_)) => {
                self.misses += 1;
                if self.misses >= END_MISS_BLOCKS {
                    self.finish();
                }
            }
            (None, None) => {}
        }
    }

    fn finish(&mut self) {
        if let Some((digit, n)) = self.current.take() {
            if n >= MIN_HIT_BLOCKS {
                self.out.push_back(DtmfEvent {
                    digit,
                    duration_ms: n * BLOCK as u32 / 8,
                    source: DtmfSource::InBand,
                });
            }
        }
        self.misses = 0;
    }

    /// Presses end after a short gap, so a digit is reported ~25 ms after
    /// the key is released.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.out.pop_front()
    }
}

fn peak(band: &[f32]) -> Option<(usize, f32)> {
    band.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [code, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    fn drain(r: &mut Rfc4733Receiver) -> Vec<(char, u32)> {
        std::iter::from_fn(|| r.poll_event())
            .map(|e| (e.digit, e.duration_ms))
            .collect()
    }

    #[test]
    fn one_digit_per_event_despite_three_end_packets() {
        let t = Instant::now();
        let mut r = Rfc4733Receiver::new();
        for d in [160, 320, 480] {
            r.on_packet(1000, &te(5, false, d), t);
        }
        assert!(drain(&mut r).is_empty());
        for _ in 0..3 {
            r.on_packet(1000, &te(5, true, 800), t);
        }
        assert_eq!(drain(&mut r), [('5', 100)]);
        // A retransmitted end after the next event started still counts once.
        r.on_packet(2000, &te(11, false, 160), t);
        r.on_packet(1000, &te(5, true, 800), t);
        r.on_packet(2000, &te(11, true, 640), t);
        assert_eq!(drain(&mut r), [('#', 80)]);
    }

    #[test]
    fn lost_start_and_lost_end_packets() {
        let t = Instant::now();
        let mut r = Rfc4733Receiver::new();
        // Only end packets arrive.
        r.on_packet(500, &te(10, true, 960), t);
        r.on_packet(500, &te(10, true, 960), t);
        assert_eq!(drain(&mut r), [('*', 120)]);
        // No end packet: reported when the next event starts...
        r.on_packet(900, &te(1, false, 400), t);
        r.on_packet(1900, &te(2, true, 400), t);
        assert_eq!(drain(&mut r), [('1', 50), ('2', 50)]);
        // ...or after the timeout.
        r.on_packet(3000, &te(15, false, 240), t);
        assert_eq!(r.next_timeout(), Some(t + EVENT_END_TIMEOUT));
        r.handle_timeout(t + Duration::from_millis(100));
        assert!(drain(&mut r).is_empty());
        r.handle_timeout(t + EVENT_END_TIMEOUT);
        assert_eq!(drain(&mut r), [('D', 30)]);
        r.on_packet(3000, &te(15, true, 240), t);
        assert!(drain(&mut r).is_empty(), "late end of a timed-out event");
    }

    #[test]
    fn all_sixteen_event_codes_and_junk() {
        let t = Instant::now();
        let mut r = Rfc4733Receiver::new();
        for code in 0..20u8 {
            r.on_packet(u32::from(code) * 1000, &te(code, true, 800), t);
        }
        let got: String = drain(&mut r).into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, "0123456789*#ABCD");
        r.on_packet(1, &[1, 2, 3], t);
        r.on_packet(1, &[], t);
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn info_bodies() {
        let ev = parse_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n").unwrap();
        assert_eq!(
            (ev.digit, ev.duration_ms, ev.source),
            ('5', 160, DtmfSource::SipInfo)
        );
        let ev = parse_info("Application/DTMF-Relay; x=y", b"signal = #\nduration= 250").unwrap();
        assert_eq!((ev.digit, ev.duration_ms), ('#', 250));
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=11")
                .unwrap()
                .digit,
            '#'
        );
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=d")
                .unwrap()
                .digit,
            'D'
        );
        assert_eq!(parse_info("application/dtmf", b"7\r\n").unwrap().digit, '7');
        assert_eq!(parse_info("application/dtmf", b"10").unwrap().digit, '*');
        assert_eq!(parse_info("application/dtmf", b"*").unwrap().duration_ms, 0);
        assert!(parse_info("application/dtmf-relay", b"Duration=160").is_none());
        assert!(parse_info("application/dtmf-relay", b"Signal=16").is_none());
        assert!(parse_info("application/dtmf", b"55").is_none());
        assert!(parse_info("application/dtmf", b"\xff").is_none());
        assert!(parse_info("text/plain", b"5").is_none());
    }

    // ------------------------------------------------------------ in-band

    fn sine(f: f32, amp: f32, n: usize, start: usize) -> impl Iterator<Item = f32> {
        (start..start + n)
            .map(move |i| amp * (2.0 * std::f32::consts::PI * f * i as f32 / 8000.0).sin())
    }

    fn key_freqs(d: char) -> (f32, f32) {
        for (r, row) in KEYS.iter().enumerate() {
            for (c, k) in row.iter().enumerate() {
                if *k == d {
                    return (ROWS[r], COLS[c]);
                }
            }
        }
        panic!("{d}")
    }

    /// Deterministic xorshift noise, uniform in [-amp, amp].
    struct Noise(u32);
    impl Noise {
        fn next(&mut self, amp: f32) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 as f32 / u32::MAX as f32 * 2.0 - 1.0) * amp
        }
    }

    /// Digits as tones of `on` ms separated by `off` ms, plus noise, through
    /// G.711 in 20 ms frames.
    fn detect(
        digits: &str,
        on: usize,
        off: usize,
        amp: f32,
        noise: f32,
        codec: Codec,
    ) -> Vec<DtmfEvent> {
        let mut samples = Vec::new();
        let mut rng = Noise(0x1234_5678);
        for d in digits.chars() {
            let (r, c) = key_freqs(d);
            let start = samples.len();
            let tone: Vec<f32> = sine(r, amp, on * 8, start)
                .zip(sine(c, amp, on * 8, start))
                .map(|(a, b)| a + b)
                .collect();
            samples.extend(tone);
            samples.extend(std::iter::repeat_n(0.0, off * 8));
        }
        let pcm: Vec<u8> = samples
            .iter()
            .map(|&x| codec.encode((x + rng.next(noise)).clamp(-32768.0, 32767.0) as i16))
            .collect();
        let mut det = InbandDetector::new();
        for frame in pcm.chunks(160) {
            det.push_g711(codec, frame);
        }
        std::iter::from_fn(|| det.poll_event()).collect()
    }

    #[test]
    fn detects_all_sixteen_keys_once_each() {
        let keys = "123A456B789C*0#D";
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let got = detect(keys, 100, 60, 6000.0, 0.0, codec);
            let s: String = got.iter().map(|e| e.digit).collect();
            assert_eq!(s, keys, "{codec:?}");
            for e in &got {
                assert!((76..=115).contains(&e.duration_ms), "{e:?}");
                assert_eq!(e.source, DtmfSource::InBand);
            }
        }
    }

    #[test]
    fn detects_short_quiet_and_noisy_tones() {
        // 45 ms tones with 45 ms gaps.
        assert_eq!(detect("159#", 45, 45, 6000.0, 0.0, Codec::Pcmu).len(), 4);
        // Quiet tones (-25 dBm0 each).
        let got: String = detect("0827", 80, 60, 1300.0, 0.0, Codec::Pcma)
            .iter()
            .map(|e| e.digit)
            .collect();
        assert_eq!(got, "0827");
        // White noise about 12 dB below the tones.
        let got: String = detect("3*6", 80, 60, 6000.0, 3000.0, Codec::Pcmu)
            .iter()
            .map(|e| e.digit)
            .collect();
        assert_eq!(got, "3*6");
    }

    #[test]
    fn rejects_too_short_tones() {
        assert!(detect("5", 15, 60, 6000.0, 0.0, Codec::Pcmu).is_empty());
    }

    fn run_detector(samples: impl Iterator<Item = f32>) -> Vec<DtmfEvent> {
        let pcm: Vec<i16> = samples.map(|x| x.clamp(-32768.0, 32767.0) as i16).collect();
        let mut det = InbandDetector::new();
        for frame in pcm.chunks(160) {
            det.push(frame);
        }
        std::iter::from_fn(|| det.poll_event()).collect()
    }

    #[test]
    fn no_digits_from_silence_noise_or_music() {
        assert!(run_detector(std::iter::repeat_n(0.0, 80000)).is_empty());
        let mut rng = Noise(42);
        assert!(run_detector((0..80000).map(|_| rng.next(12000.0))).is_empty());
        // A major chord with harmonics (880 and 1320 Hz sit near 852 and
        // 1336 Hz) held for 2 s.
        let chord = (0..16000).map(|i| {
            let t = i as f32 / 8000.0;
            [440.0f32, 554.4, 659.3]
                .iter()
                .map(|f| {
                    (1..=4)
                        .map(|h| {
                            3000.0 / h as f32
                                * (2.0 * std::f32::consts::PI * f * h as f32 * t).sin()
                        })
                        .sum::<f32>()
                })
                .sum::<f32>()
        });
        assert!(run_detector(chord).is_empty());
        // A melody of single notes with harmonics, 150 ms each, sweeping the
        // DTMF bands (C major scale over three octaves).
        let notes: Vec<f32> = (0..21)
            .map(|k| {
                261.63 * 2f32.powf([0, 2, 4, 5, 7, 9, 11][k % 7] as f32 / 12.0 + (k / 7) as f32)
            })
            .collect();
        let melody = notes.iter().flat_map(|&f| {
            (0..1200).map(move |i| {
                let t = i as f32 / 8000.0;
                (1..=3)
                    .map(|h| {
                        5000.0 / h as f32 * (2.0 * std::f32::consts::PI * f * h as f32 * t).sin()
                    })
                    .sum::<f32>()
            })
        });
        assert!(run_detector(melody).is_empty());
        // A single pure DTMF frequency is not a key.
        assert!(run_detector(sine(770.0, 8000.0, 8000, 0)).is_empty());
    }
}
