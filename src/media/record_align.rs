//! Two directions of a call laid side by side in time: the caller's audio
//! on the left channel, the agent's on the right, each packet placed by its
//! RTP timestamp (so network jitter does not move it) on a time line
//! anchored at the recording's start by arrival time (so the two sides line
//! up, and a side that sends nothing is silence, not a shorter track).
//! Lost packets leave silence where they belonged; packets arriving after
//! their place was written out are counted and dropped.
//!
//! Plain data in, samples out: the recorder thread feeds it and writes what
//! it hands back; nothing here reads a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::wav_out::RATE;

/// Which channel of the file a direction goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The caller.
    Left = 0,
    /// The agent.
    Right = 1,
}

/// How long a packet may be late (jitter, the writer's own lag) and still
/// take its place: samples older than this behind the newest arrival are
/// written out.
pub const JITTER: Duration = Duration::from_millis(300);

/// A stream whose timestamps say a place further than this from where its
/// arrival time puts it (a phone restarting its clock after hold, a new
/// stream) is anchored again at its arrival.
pub const MAX_DRIFT: Duration = Duration::from_secs(1);

/// What the aligner saw, beyond the samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlignStats {
    /// Packets that came after their place was written out.
    pub late: u64,
    /// Times a stream was anchored again (new SSRC, timestamp jump).
    pub reanchored: u64,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    ts: u32,
    /// Sample position of `ts` on the recording's time line.
    pos: u64,
}

/// The interleaver: two channels from a common start.
#[derive(Debug)]
pub struct StereoAligner {
    start: Instant,
    /// Time-line position of the first sample still buffered.
    base: u64,
    chans: [VecDeque<i16>; 2],
    anchors: [Option<Anchor>; 2],
    /// Furthest arrival seen, as a position.
    newest: u64,
    stats: AlignStats,
}

fn samples_of(d: Duration) -> u64 {
    // 8 samples a millisecond, to the microsecond.
    (d.as_micros() as u64).saturating_mul(u64::from(RATE)) / 1_000_000
}

impl StereoAligner {
    /// A recording that starts at `start` (position 0).
    pub fn new(start: Instant) -> StereoAligner {
        StereoAligner {
            start,
            base: 0,
            chans: [VecDeque::new(), VecDeque::new()],
            anchors: [None, None],
            newest: 0,
            stats: AlignStats::default(),
        }
    }

    pub fn stats(&self) -> AlignStats {
        self.stats
    }

    /// Places `samples` of one RTP packet (`ssrc`, `ts`) that arrived at
    /// `arrival` on channel `ch`.
    pub fn push(&mut self, ch: Channel, arrival: Instant, ssrc: u32, ts: u32, samples: &[i16]) {
        let at = samples_of(arrival.saturating_duration_since(self.start));
        self.newest = self.newest.max(at);
        let drift = samples_of(MAX_DRIFT);
        let slot = &mut self.anchors[ch as usize];
        let placed = slot.filter(|a| a.ssrc == ssrc).and_then(|a| {
            let delta = i64::from(ts.wrapping_sub(a.ts) as i32);
            let pos = a.pos.checked_add_signed(delta)?;
            (pos.abs_diff(at) <= drift).then_some(pos)
        });
        let pos = match placed {
            Some(p) => p,
            None => {
                if slot.is_some() {
                    self.stats.reanchored += 1;
                }
                *slot = Some(Anchor { ssrc, ts, pos: at });
                at
            }
        };
        if pos < self.base {
            self.stats.late += 1;
            return;
        }
        let buf = &mut self.chans[ch as usize];
        let off = usize::try_from(pos - self.base).unwrap_or(usize::MAX);
        let end = off.saturating_add(samples.len());
        if buf.len() < end {
            buf.resize(end, 0);
        }
        for (d, s) in buf.range_mut(off..end).zip(samples) {
            *d = *s;
        }
    }

    /// Appends to `out`, interleaved (left, right), every sample older than
    /// [`JITTER`] behind the newest arrival; returns how many frames.
    pub fn drain_ready(&mut self, out: &mut Vec<i16>) -> usize {
        let keep = samples_of(JITTER);
        let until = self.newest.saturating_sub(keep);
        self.drain_to(until, out)
    }

    /// Appends everything still buffered (the recording ends).
    pub fn finish(&mut self, out: &mut Vec<i16>) -> usize {
        let longest = self.chans.iter().map(VecDeque::len).max().unwrap_or(0);
        self.drain_to(self.base + longest as u64, out)
    }

    fn drain_to(&mut self, until: u64, out: &mut Vec<i16>) -> usize {
        let n = usize::try_from(until.saturating_sub(self.base)).unwrap_or(usize::MAX);
        out.reserve(n * 2);
        for _ in 0..n {
            let l = self.chans[0].pop_front().unwrap_or(0);
            let r = self.chans[1].pop_front().unwrap_or(0);
            out.push(l);
            out.push(r);
        }
        self.base += n as u64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Left and right of `out` as two tracks.
    fn split(out: &[i16]) -> (Vec<i16>, Vec<i16>) {
        let l = out.iter().step_by(2).copied().collect();
        let r = out.iter().skip(1).step_by(2).copied().collect();
        (l, r)
    }

    #[test]
    fn two_sides_are_interleaved_left_and_right_at_their_times() {
        let t0 = Instant::now();
        let mut a = StereoAligner::new(t0);
        // The caller from the start, the agent 20 ms later.
        a.push(Channel::Left, ms(t0, 0), 1, 1000, &[7; 160]);
        a.push(Channel::Left, ms(t0, 20), 1, 1160, &[8; 160]);
        a.push(Channel::Right, ms(t0, 20), 2, 50, &[-3; 160]);
        let mut out = Vec::new();
        assert_eq!(a.finish(&mut out), 320);
        let (l, r) = split(&out);
        assert_eq!(&l[..160], &[7; 160]);
        assert_eq!(&l[160..], &[8; 160]);
        assert_eq!(&r[..160], &[0; 160], "the agent was silent at first");
        assert_eq!(&r[160..], &[-3; 160]);
    }

    #[test]
    fn a_lost_packet_is_silence_and_jitter_does_not_move_audio() {
        let t0 = Instant::now();
        let mut a = StereoAligner::new(t0);
        a.push(Channel::Left, ms(t0, 0), 9, 0, &[1; 160]);
        // Packet at ts 160 is lost; ts 320 arrives 15 ms late.
        a.push(Channel::Left, ms(t0, 55), 9, 320, &[3; 160]);
        // ts 480 arrives early and before the late one would have.
        a.push(Channel::Left, ms(t0, 58), 9, 480, &[4; 160]);
        let mut out = Vec::new();
        a.finish(&mut out);
        let (l, _) = split(&out);
        assert_eq!(l.len(), 640);
        assert_eq!(&l[..160], &[1; 160]);
        assert_eq!(&l[160..320], &[0; 160], "the lost packet");
        assert_eq!(&l[320..480], &[3; 160]);
        assert_eq!(&l[480..], &[4; 160]);
        assert_eq!(a.stats(), AlignStats::default());
    }

    #[test]
    fn only_samples_past_the_jitter_window_are_written_out() {
        let t0 = Instant::now();
        let mut a = StereoAligner::new(t0);
        let mut out = Vec::new();
        for i in 0..25u32 {
            a.push(
                Channel::Right,
                ms(t0, u64::from(i) * 20),
                4,
                i * 160,
                &[5; 160],
            );
        }
        // Newest arrival at 480 ms: up to 180 ms (1440 samples) is final.
        assert_eq!(a.drain_ready(&mut out), 1440);
        assert_eq!(a.drain_ready(&mut out), 0, "nothing new arrived");
        // A packet for 100 ms now comes too late to be written.
        a.push(Channel::Right, ms(t0, 490), 4, 800, &[6; 160]);
        assert_eq!(a.stats().late, 1);
        let (_, r) = split(&out);
        assert!(r.iter().all(|&s| s == 5));
        a.finish(&mut out);
        assert_eq!(out.len() / 2, 25 * 160);
    }

    #[test]
    fn a_timestamp_jump_or_new_stream_is_anchored_at_its_arrival() {
        let t0 = Instant::now();
        let mut a = StereoAligner::new(t0);
        a.push(Channel::Left, ms(t0, 0), 1, 5000, &[1; 160]);
        // Two seconds later (the agent held) the phone sends with a
        // timestamp that only moved by one frame: placed at 2 s, not 20 ms.
        a.push(Channel::Left, ms(t0, 2000), 1, 5160, &[2; 160]);
        // A new SSRC at 3 s with an unrelated timestamp.
        a.push(Channel::Left, ms(t0, 3000), 77, 1, &[3; 160]);
        assert_eq!(a.stats().reanchored, 2);
        let mut out = Vec::new();
        a.finish(&mut out);
        let (l, r) = split(&out);
        assert_eq!(l.len(), 3 * 8000 + 160);
        assert_eq!(l[16000], 2);
        assert_eq!(l[160], 0);
        assert_eq!(l[24000], 3);
        assert!(r.iter().all(|&s| s == 0), "the right side never spoke");
    }

    #[test]
    fn timestamps_wrap_around() {
        let t0 = Instant::now();
        let mut a = StereoAligner::new(t0);
        a.push(Channel::Left, ms(t0, 0), 1, u32::MAX - 79, &[1; 160]);
        a.push(Channel::Left, ms(t0, 20), 1, 80, &[2; 160]);
        let mut out = Vec::new();
        a.finish(&mut out);
        let (l, _) = split(&out);
        assert_eq!(l.len(), 320);
        assert_eq!(&l[160..], &[2; 160]);
    }
}
