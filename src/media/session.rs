//! One call leg's media state: what it receives (latching, DTMF), what it
//! sends (the pacer), and whether it has gone silent. The driver owns two
//! of these per bridged call and the sockets; everything here is sans-IO.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::media::dtmf::{InbandDetector, Rfc4733Receiver};
use crate::media::event::MediaEvent;
use crate::media::pacer::{Pacer, PacerConfig, Source};
use crate::media::relay::{self, Inbound, LegParams, RelayStats, RtpIn};
use crate::media::rtcp::{self, Reception, ReportTimer, SenderInfo};

/// Which of a leg's sockets a packet from [`Leg::run_timers`] leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    Rtp,
    Rtcp,
}

#[derive(Debug)]
pub struct Leg {
    params: LegParams,
    /// Where the SDP says the peer is; the latched address wins once known.
    sdp_remote: Option<SocketAddr>,
    inbound: Inbound,
    pacer: Pacer,
    rfc4733: Rfc4733Receiver,
    inband: Option<InbandDetector>,
    /// Phones that send RFC 4733 usually also leave the tone in the audio
    /// for a moment: once a telephone-event is seen, in-band is ignored.
    seen_4733: bool,
    /// Last RTP or RTCP from the peer, or when watching started.
    last_activity: Instant,
    expect_rx: bool,
    events: VecDeque<MediaEvent>,
    /// Where the peer's RTCP comes from (its RTCP port, NAT included).
    rtcp_latched: Option<SocketAddr>,
    /// The peer sent RTCP on its RTP port (RFC 5761 mux): answer there.
    rtcp_muxed: bool,
    /// Our own Sender Reports, while we generate the stream.
    rtcp_timer: ReportTimer,
    /// What we receive from the peer, for our reports' report block.
    reception: Reception,
}

impl Leg {
    /// A leg sending silence from `now`, with random RTP identifiers.
    pub fn new(params: LegParams, sdp_remote: Option<SocketAddr>, now: Instant) -> Leg {
        Leg::with_ids(params, sdp_remote, PacerConfig::random(params.codec), now)
    }

    /// Like [`Leg::new`] with given SSRC/sequence/timestamp (tests); the
    /// codec is `params.codec`.
    pub fn with_ids(
        params: LegParams,
        sdp_remote: Option<SocketAddr>,
        ids: PacerConfig,
        now: Instant,
    ) -> Leg {
        Leg {
            params,
            sdp_remote,
            inbound: Inbound::new(sdp_remote),
            pacer: Pacer::new(
                PacerConfig {
                    codec: params.codec,
                    ..ids
                },
                now,
            ),
            rfc4733: Rfc4733Receiver::new(),
            inband: Some(InbandDetector::new()),
            seen_4733: false,
            last_activity: now,
            expect_rx: true,
            events: VecDeque::new(),
            rtcp_latched: None,
            rtcp_muxed: false,
            rtcp_timer: ReportTimer::new(ids.ssrc, now),
            reception: Reception::default(),
        }
    }

    pub fn params(&self) -> LegParams {
        self.params
    }

    /// Where to send this leg's RTP: the latched source (symmetric RTP,
    /// phones behind NAT), else the SDP address.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.inbound.latched().or(self.sdp_remote)
    }

    /// A re-INVITE's or UPDATE's new SDP. A moved address drops the latch
    /// (the leg learns its peer again); the same address keeps it.
    pub fn update_remote(&mut self, params: LegParams, sdp_remote: Option<SocketAddr>) {
        if sdp_remote != self.sdp_remote {
            self.rtcp_latched = None;
            self.rtcp_muxed = false;
        }
        self.inbound.set_signalled(sdp_remote);
        self.sdp_remote = sdp_remote;
        self.params = params;
        self.pacer.set_codec(params.codec);
    }

    /// In-band DTMF costs ~8 multiply-adds per sample: switch it off when
    /// no menu is listening (e.g. once bridged).
    pub fn set_inband_dtmf(&mut self, on: bool) {
        self.inband = on.then(|| self.inband.take().unwrap_or_default());
    }

    /// Whether the peer is expected to send (false while it holds the call
    /// with `sendonly`/`inactive` from our side or `recvonly`/`inactive`
    /// from its side): the RTP timeout only runs while expecting.
    pub fn set_expect_rx(&mut self, expect: bool, now: Instant) {
        if expect && !self.expect_rx {
            self.last_activity = now;
        }
        self.expect_rx = expect;
    }

    /// Plays `source` from the next frame (continuity and marker handled by
    /// the pacer). `Source::Relay` stops the timer; relayed packets are then
    /// written by [`Leg::relay_to`] of the other leg.
    pub fn play(&mut self, source: Source, now: Instant) {
        if self.is_relaying() && !matches!(source, Source::Relay) {
            // Our reports take over from the relayed ones.
            self.rtcp_timer.restart(now);
        }
        self.pacer.set_source(source, now);
    }

    fn is_relaying(&self) -> bool {
        matches!(self.pacer.source(), Source::Relay)
    }

    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    pub fn stats(&self) -> &RelayStats {
        self.inbound.stats()
    }

    /// A datagram from the RTP port. Returns the accepted packet (for
    /// relaying) after running DTMF detection on it. RTCP muxed on the port
    /// (RFC 5761) goes to [`Leg::on_rtcp`] and returns None.
    pub fn on_rtp<'a>(
        &mut self,
        from: SocketAddr,
        pkt: &'a [u8],
        now: Instant,
    ) -> Option<RtpIn<'a>> {
        if relay::is_rtcp(pkt) {
            self.on_rtcp(from, pkt, false, now);
            return None;
        }
        let was = self.inbound.latched();
        let rtp = self.inbound.receive(from, pkt, now)?;
        if was.is_some_and(|w| w != from) {
            // The peer moved (NAT re-binding, signalled address): its RTCP
            // address is to be learnt again too.
            self.rtcp_latched = None;
            self.rtcp_muxed = false;
        }
        self.last_activity = now;
        let h = rtp.header;
        let audio = self.params.te_pt != Some(rtp.pt);
        self.reception.on_rtp(h.ssrc, h.seq, h.ts, audio, now);
        if !audio {
            self.seen_4733 = true;
            self.rfc4733.on_packet(rtp.header.ts, rtp.payload, now);
        } else if let (Some(det), Some(codec), false) = (
            self.inband.as_mut(),
            crate::media::g711::Codec::from_pt(rtp.pt),
            self.seen_4733,
        ) {
            det.push_g711(codec, rtp.payload);
        }
        Some(rtp)
    }

    /// A datagram from the RTCP port (`rtcp_port`), or one that looks like
    /// RTCP muxed on the RTP port. Valid compound RTCP is a sign of life and
    /// teaches where the peer's RTCP is; anything else is dropped and
    /// counted, as is RTCP from a host other than the peer's. Returns
    /// whether it is accepted (worth relaying).
    pub fn on_rtcp(&mut self, from: SocketAddr, pkt: &[u8], rtcp_port: bool, now: Instant) -> bool {
        if !self.inbound.admits_rtcp(from) {
            return false;
        }
        if rtcp::check(pkt).is_err() {
            self.inbound.stats_mut().dropped_rtcp += 1;
            return false;
        }
        self.inbound.stats_mut().rtcp += 1;
        self.last_activity = now;
        if let Some((ssrc, lsr)) = rtcp::sr_lsr(pkt) {
            self.reception.on_sr(ssrc, lsr, now);
        }
        if rtcp_port {
            // First source wins, as for RTP: a stray sender cannot take over.
            self.rtcp_latched.get_or_insert(from);
        } else {
            self.rtcp_muxed = true;
        }
        true
    }

    /// Where this leg's RTCP goes: where the peer's RTCP comes from, else
    /// its RTP address if it muxes, else the RTP port + 1 (RFC 3550 §11).
    pub fn rtcp_remote(&self) -> Option<SocketAddr> {
        if let Some(a) = self.rtcp_latched {
            return Some(a);
        }
        let rtp = self.remote()?;
        if self.rtcp_muxed {
            return Some(rtp);
        }
        let port = rtp.port().checked_add(1)?;
        Some(SocketAddr::new(rtp.ip(), port))
    }

    /// Whether the peer muxes RTCP on its RTP port (send ours from there).
    pub fn rtcp_muxed(&self) -> bool {
        self.rtcp_muxed && self.rtcp_latched.is_none()
    }

    /// RTCP received on this leg while bridged goes to the other leg's
    /// peer, written into `out`, with its SSRCs translated into what that
    /// peer sees: this peer's own SSRC becomes the one the other leg sends
    /// with, and ours on this leg (what this peer reports on) becomes the
    /// other peer's. Unknown SSRCs (RTCP before RTP, a phone using another
    /// SSRC for RTCP) pass unchanged; receivers ignore reports they cannot
    /// place. Returns where to send `out`, or None (invalid, not bridged,
    /// or nowhere known to send it).
    pub fn relay_rtcp_to(
        &mut self,
        to: &mut Leg,
        from: SocketAddr,
        pkt: &[u8],
        rtcp_port: bool,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<SocketAddr> {
        out.clear();
        if !self.on_rtcp(from, pkt, rtcp_port, now) || !to.is_relaying() {
            return None;
        }
        let dest = to.rtcp_remote()?;
        let peer = self.inbound.ssrc();
        let ours = self.pacer.ssrc();
        let (to_ours, to_peer) = (to.pacer.ssrc(), to.inbound.ssrc());
        out.extend_from_slice(pkt);
        rtcp::map_ssrcs(out, |x| {
            if Some(x) == peer {
                to_ours
            } else if x == ours {
                to_peer.unwrap_or(x)
            } else {
                x
            }
        });
        self.inbound.stats_mut().rtcp_relayed += 1;
        Some(dest)
    }

    /// Writes our Sender Report (with a report block on the peer's stream,
    /// once it sent something, and SDES CNAME) into `out` when one is due
    /// and we generate the stream (prompt, music, silence); bridged legs
    /// carry the phones' own RTCP instead. `wall` is the current wall-clock
    /// time for the report's NTP timestamp.
    pub fn poll_rtcp(&mut self, now: Instant, wall: SystemTime, out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.is_relaying() || !self.rtcp_timer.poll(now) {
            return false;
        }
        let p = &self.pacer;
        let info = SenderInfo {
            ssrc: p.ssrc(),
            ntp: rtcp::ntp_time(wall),
            rtp_ts: p.ts_at(now),
            // RFC 3550: the counts wrap around.
            packets: p.stats().0 as u32,
            octets: p.octets() as u32,
        };
        let block = self.reception.report_block(now);
        let cname = format!("sipacd-{:08x}", info.ssrc);
        rtcp::write_sr(&info, block.as_ref(), &cname, out);
        self.inbound.stats_mut().rtcp_sent += 1;
        true
    }

    /// Receives a datagram on this leg and, if accepted and `to` is in
    /// `Source::Relay`, writes the packet for `to` into `out`. Returns
    /// whether `out` holds a packet to send to `to.remote()`.
    pub fn relay_to(
        &mut self,
        to: &mut Leg,
        from: SocketAddr,
        pkt: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        let Some(rtp) = self.on_rtp(from, pkt, now) else {
            return false;
        };
        self.forward_to(&rtp, to, now, out)
    }

    /// Writes `rtp`, a packet this leg accepted, for `to` into `out` when
    /// `to` is in `Source::Relay` (a monitored call's legs take their
    /// packets apart: the mixer gets the audio, the relay what is left).
    pub fn forward_to(
        &mut self,
        rtp: &RtpIn<'_>,
        to: &mut Leg,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        let to_params = to.params;
        relay::forward(
            rtp,
            &self.params,
            &to_params,
            &mut to.pacer,
            now,
            out,
            self.inbound.stats_mut(),
        )
    }

    /// Whether this leg's stream comes from a mixer.
    pub fn is_mixed(&self) -> bool {
        matches!(self.pacer.source(), Source::Mixed)
    }

    /// Writes the next mixed frame (`payload`, in this leg's codec) for
    /// the peer into `out`; false unless the leg plays `Source::Mixed`.
    pub fn send_mixed(&mut self, payload: &[u8], now: Instant, out: &mut Vec<u8>) -> bool {
        self.pacer.send_mixed(payload, now, out)
    }

    /// Writes the next generated packet if one is due (call until false).
    pub fn poll_rtp(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        self.pacer.poll_into(now, out)
    }

    /// The earliest instant `poll_rtp`, `poll_rtcp` or `handle_timeout`
    /// has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        let rtcp = (!self.is_relaying()).then(|| self.rtcp_timer.next_due());
        [self.pacer.next_due(), self.rfc4733.next_timeout(), rtcp]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the DTMF end-of-event timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.rfc4733.handle_timeout(now);
    }

    /// Runs everything due at `now`: the DTMF end timer, every generated
    /// frame due (prompt, music, silence) and our RTCP report; `send` gets
    /// each packet with where it goes (`remote()` or `rtcp_remote()`).
    pub fn run_timers(
        &mut self,
        now: Instant,
        wall: SystemTime,
        out: &mut Vec<u8>,
        mut send: impl FnMut(Outgoing, &[u8]),
    ) {
        self.handle_timeout(now);
        while self.poll_rtp(now, out) {
            send(Outgoing::Rtp, out);
        }
        if self.poll_rtcp(now, wall, out) {
            send(Outgoing::Rtcp, out);
        }
    }

    /// When the driver must next look at this leg: its timers, and the
    /// RTP timeout (`rtp_timeout`, if it still watches for one). A bridged
    /// leg only relays: it has no timer but the timeout, so it costs no
    /// wake-up per frame.
    pub fn next_deadline(&self, rtp_timeout: Option<Duration>) -> Option<Instant> {
        let silent = rtp_timeout.and_then(|d| self.rtp_timeout_at(d));
        match (self.next_timeout(), silent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When [`Leg::is_timed_out`] turns true if nothing more arrives; None
    /// while the peer is not expected to send.
    pub fn rtp_timeout_at(&self, timeout: Duration) -> Option<Instant> {
        self.expect_rx
            .then(|| self.last_activity.checked_add(timeout))
            .flatten()
    }

    /// Next event: prompt ended, or a digit by RTP (4733 or in-band).
    /// SIP INFO digits come through `dtmf::parse_info` in the signalling.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        if let Some(e) = self.pacer.poll_event() {
            self.events.push_back(e);
        }
        while let Some(d) = self.rfc4733.poll_event() {
            self.events.push_back(MediaEvent::Digit(d));
        }
        if let Some(det) = self.inband.as_mut() {
            while let Some(d) = det.poll_event() {
                self.events.push_back(MediaEvent::Digit(d));
            }
        }
        self.events.pop_front()
    }

    /// Last RTP/RTCP from the peer, or when the leg (or the expectation of
    /// RTP) started.
    pub fn last_rx(&self) -> Instant {
        self.last_activity
    }

    /// True when the peer should be sending and nothing came for `timeout`
    /// (`rtp_timeout_s`): the call should be ended with a BYE.
    pub fn is_timed_out(&self, now: Instant, timeout: Duration) -> bool {
        self.expect_rx && now.saturating_duration_since(self.last_activity) >= timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::DtmfSource;
    use crate::media::g711::Codec;
    use crate::media::prompt::Prompt;
    use crate::media::relay::tests::rtp;
    use rtp_rs::RtpReader;

    fn ids(ssrc: u32) -> PacerConfig {
        PacerConfig {
            ssrc,
            seq: 1000,
            ts: 50_000,
            codec: Codec::Pcmu,
        }
    }

    fn ms(t: Instant, n: u64) -> Instant {
        t + Duration::from_millis(n)
    }

    fn caller_and_agent(t: Instant) -> (Leg, Leg) {
        let caller = Leg::with_ids(
            LegParams {
                codec: Codec::Pcmu,
                te_pt: Some(101),
            },
            Some("192.0.2.1:4000".parse().unwrap()),
            ids(0xCA11),
            t,
        );
        let agent = Leg::with_ids(
            LegParams {
                codec: Codec::Pcma,
                te_pt: Some(96),
            },
            Some("192.0.2.2:6000".parse().unwrap()),
            ids(0xA6E),
            t,
        );
        (caller, agent)
    }

    #[test]
    fn music_then_agent_audio_reaches_the_caller_seamlessly() {
        let t = Instant::now();
        let (mut caller, mut agent) = caller_and_agent(t);
        let music = Prompt::from_linear(&vec![1000i16; 160 * 5]);
        caller.play(Source::prompt(music, true), t);
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for n in 0..100 {
            while caller.poll_rtp(ms(t, n), &mut out) {
                sent.push(out.clone());
            }
        }
        assert_eq!(sent.len(), 5);
        // Agent answers; its packets now reach the caller.
        caller.play(Source::Relay, ms(t, 100));
        assert_eq!(caller.next_timeout(), None);
        let nat = "198.51.100.7:31000".parse().unwrap();
        let pkt = rtp(8, 7, 777, 0xFEED, true, &[0xD5; 160]);
        assert!(agent.relay_to(&mut caller, nat, &pkt, ms(t, 100), &mut out));
        let r = RtpReader::new(&out).unwrap();
        assert_eq!(u16::from(r.sequence_number()), 1005);
        // Last music frame at 80 ms had ts 50_640; 20 ms later is 160 more.
        assert_eq!(r.timestamp(), 50_000 + 4 * 160 + 160);
        assert!(r.mark());
        assert_eq!((r.payload_type(), r.ssrc()), (0, 0xCA11));
        // A-law "silence" is +8 (no true zero): mu-law 0xFE.
        assert_eq!(r.payload(), &[0xFE; 160][..]);
        assert_eq!(crate::media::g711::ULAW_DECODE[0xFE], 8);
        assert_eq!(agent.remote(), Some(nat), "latched behind NAT");
        assert_eq!(agent.stats().transcoded, 1);
        // Before the agent leg is set to Relay, caller audio goes nowhere.
        let from_caller = "192.0.2.1:4000".parse().unwrap();
        let cpkt = rtp(0, 1, 1, 0xC0, false, &[0x7F; 160]);
        assert!(!caller.relay_to(&mut agent, from_caller, &cpkt, ms(t, 101), &mut out));
        agent.play(Source::Relay, ms(t, 101));
        assert!(caller.relay_to(&mut agent, from_caller, &cpkt, ms(t, 102), &mut out));
        assert_eq!(RtpReader::new(&out).unwrap().payload_type(), 8);
    }

    #[test]
    fn digits_by_rtp_events_and_in_band() {
        let t = Instant::now();
        let (mut caller, _) = caller_and_agent(t);
        let from = "192.0.2.1:4000".parse().unwrap();
        // In-band '7' (852 + 1209 Hz) for 100 ms, then silence.
        let mut seq = 0u16;
        for f in 0..10u32 {
            let payload: Vec<u8> = (0..160u32)
                .map(|i| {
                    let n = (f * 160 + i) as f32 / 8000.0;
                    let tau = 2.0 * std::f32::consts::PI;
                    let x = if f < 5 {
                        6000.0 * ((tau * 852.0 * n).sin() + (tau * 1209.0 * n).sin())
                    } else {
                        0.0
                    };
                    Codec::Pcmu.encode(x as i16)
                })
                .collect();
            seq += 1;
            caller.on_rtp(
                from,
                &rtp(0, seq, f * 160, 1, false, &payload),
                ms(t, 20 * f as u64),
            );
        }
        match caller.poll_event() {
            Some(MediaEvent::Digit(d)) => {
                assert_eq!((d.digit, d.source), ('7', DtmfSource::InBand))
            }
            other => panic!("{other:?}"),
        }
        // RFC 4733 '9', end packet sent three times.
        for _ in 0..3 {
            seq += 1;
            caller.on_rtp(
                from,
                &rtp(101, seq, 9999, 1, false, &[9, 0x8A, 0x03, 0x20]),
                ms(t, 300),
            );
        }
        match caller.poll_event() {
            Some(MediaEvent::Digit(d)) => {
                assert_eq!(
                    (d.digit, d.duration_ms, d.source),
                    ('9', 100, DtmfSource::Rfc4733)
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(caller.poll_event(), None);
    }

    #[test]
    fn prompt_end_reaches_the_leg_events() {
        let t = Instant::now();
        let (mut caller, _) = caller_and_agent(t);
        caller.play(Source::prompt(Prompt::from_linear(&[0; 300]), false), t);
        let mut out = Vec::new();
        assert!(caller.poll_rtp(t, &mut out));
        assert_eq!(caller.poll_event(), None);
        assert!(caller.poll_rtp(ms(t, 20), &mut out));
        assert_eq!(caller.poll_event(), Some(MediaEvent::PromptEnded));
    }

    #[test]
    fn rtp_timeout_counts_rtp_and_rtcp_and_pauses_on_hold() {
        let t = Instant::now();
        let (mut caller, _) = caller_and_agent(t);
        let limit = Duration::from_secs(30);
        assert!(!caller.is_timed_out(ms(t, 29_999), limit));
        assert!(caller.is_timed_out(ms(t, 30_000), limit));
        let from = "192.0.2.1:4000".parse().unwrap();
        caller.on_rtp(from, &rtp(0, 1, 1, 1, false, &[0xFF; 160]), ms(t, 20_000));
        assert_eq!(caller.last_rx(), ms(t, 20_000));
        assert!(!caller.is_timed_out(ms(t, 49_999), limit));
        // Garbage is no sign of life.
        caller.on_rtp(from, &[1, 2, 3], ms(t, 40_000));
        assert!(caller.is_timed_out(ms(t, 50_000), limit));
        // Malformed RTCP is no sign of life either; a valid RR is.
        caller.on_rtcp(from, &[0x80, 200, 0, 6], true, ms(t, 41_000));
        assert_eq!(caller.stats().dropped_rtcp, 1);
        caller.on_rtcp(from, &[0x80, 201, 0, 1, 0, 0, 0, 9], true, ms(t, 45_000));
        assert!(!caller.is_timed_out(ms(t, 74_999), limit));
        caller.set_expect_rx(false, ms(t, 75_000));
        assert!(!caller.is_timed_out(ms(t, 500_000), limit));
        caller.set_expect_rx(true, ms(t, 500_000));
        assert!(!caller.is_timed_out(ms(t, 529_999), limit));
        assert!(caller.is_timed_out(ms(t, 530_000), limit));
    }

    #[test]
    fn reinvite_to_a_new_address_relatches() {
        let t = Instant::now();
        let (mut caller, _) = caller_and_agent(t);
        let nat = "198.51.100.7:31000".parse().unwrap();
        caller.on_rtp(nat, &rtp(0, 1, 1, 1, false, &[]), t);
        assert_eq!(caller.remote(), Some(nat));
        let params = LegParams {
            codec: Codec::Pcma,
            te_pt: None,
        };
        let moved = "192.0.2.50:4100".parse().unwrap();
        caller.update_remote(params, Some(moved));
        assert_eq!(caller.remote(), Some(moved));
        assert_eq!(caller.pacer().codec(), Codec::Pcma);
    }

    fn rr(ssrc: u32) -> Vec<u8> {
        let mut v = vec![0x80, 201, 0, 1];
        v.extend_from_slice(&ssrc.to_be_bytes());
        v
    }

    #[test]
    fn sender_reports_while_playing_none_while_bridged() {
        let t = Instant::now();
        let (mut caller, mut agent) = caller_and_agent(t);
        caller.play(Source::prompt(Prompt::from_linear(&[0; 160 * 50]), true), t);
        let wall = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (mut out, mut rtcp_out) = (Vec::new(), Vec::new());
        let mut reports = Vec::new();
        let mut sent = 0u32;
        for n in (0..20_000).step_by(10) {
            let now = ms(t, n);
            while caller.poll_rtp(now, &mut out) {
                sent += 1;
            }
            if caller.poll_rtcp(now, wall + Duration::from_millis(n), &mut rtcp_out) {
                reports.push((n, sent, rtcp_out.clone()));
            }
        }
        // First after 1.25-3.75 s, then every 2.5-7.5 s: 3 to 7 in 20 s.
        assert!((3..=7).contains(&reports.len()), "{}", reports.len());
        assert!((1250..=3750).contains(&reports[0].0), "{}", reports[0].0);
        for (n, sent, r) in &reports {
            assert!(rtcp::check(r).is_ok());
            assert_eq!(&r[4..8], &0xCA11u32.to_be_bytes(), "our SSRC");
            let ntp = u64::from_be_bytes(r[8..16].try_into().unwrap());
            assert_eq!(ntp >> 32, 2_208_988_800 + 1_700_000_000 + n / 1000);
            let rtp_ts = u32::from_be_bytes(r[16..20].try_into().unwrap());
            // The stream's clock at the report: 8 samples per ms from the start.
            assert_eq!(rtp_ts.wrapping_sub(50_000), *n as u32 * 8);
            assert_eq!(&r[20..24], &sent.to_be_bytes());
            assert_eq!(&r[24..28], &(sent * 160).to_be_bytes());
        }
        assert_eq!(caller.stats().rtcp_sent, reports.len() as u64);
        // Bridged: the phones' own RTCP flows; ours stops.
        caller.play(Source::Relay, ms(t, 20_000));
        agent.play(Source::Relay, ms(t, 20_000));
        assert!(!(20_000..40_000).step_by(10).any(|n| caller.poll_rtcp(
            ms(t, n),
            wall,
            &mut rtcp_out
        )));
        // The agent hangs up: music again, and our reports again.
        caller.play(Source::Silence, ms(t, 40_000));
        assert!((40_000..48_000).step_by(10).any(|n| caller.poll_rtcp(
            ms(t, n),
            wall,
            &mut rtcp_out
        )));
    }

    #[test]
    fn bridged_rtcp_goes_to_the_other_peers_rtcp_port_garbage_nowhere() {
        let t = Instant::now();
        let (mut caller, mut agent) = caller_and_agent(t);
        let from_caller = "192.0.2.1:4001".parse().unwrap();
        let mut out = Vec::new();
        // Not bridged yet: counted, not relayed.
        assert_eq!(
            caller.relay_rtcp_to(&mut agent, from_caller, &rr(1), true, t, &mut out),
            None
        );
        caller.play(Source::Relay, t);
        agent.play(Source::Relay, t);
        // The agent's SDP said 192.0.2.2:6000: RTCP to 6001 until known.
        assert_eq!(
            caller.relay_rtcp_to(&mut agent, from_caller, &rr(1), true, t, &mut out),
            Some("192.0.2.2:6001".parse().unwrap())
        );
        assert_eq!(out, rr(1), "unknown SSRCs pass unchanged");
        // The agent's RTCP comes from behind a NAT: that is where to send.
        let nat = "198.51.100.7:31001".parse().unwrap();
        assert_eq!(
            agent.relay_rtcp_to(&mut caller, nat, &rr(2), true, t, &mut out),
            Some("192.0.2.1:4001".parse().unwrap())
        );
        assert_eq!(
            caller.relay_rtcp_to(&mut agent, from_caller, &rr(1), true, t, &mut out),
            Some(nat)
        );
        // Garbage and RTP-looking data are dropped and counted.
        for junk in [&[0u8; 3][..], &[0x80, 201, 0, 7, 1, 2, 3, 4], &[0xFF; 40]] {
            assert_eq!(
                caller.relay_rtcp_to(&mut agent, from_caller, junk, true, t, &mut out),
                None
            );
        }
        let s = caller.stats();
        assert_eq!((s.rtcp, s.rtcp_relayed, s.dropped_rtcp), (3, 2, 3));
        // A peer muxing RTCP on its RTP port gets ours there.
        let mut muxer = Leg::with_ids(
            caller.params(),
            Some("192.0.2.9:7000".parse().unwrap()),
            ids(9),
            t,
        );
        assert_eq!(muxer.rtcp_remote(), Some("192.0.2.9:7001".parse().unwrap()));
        assert!(muxer.on_rtcp("192.0.2.9:7000".parse().unwrap(), &rr(9), false, t));
        assert_eq!(muxer.rtcp_remote(), Some("192.0.2.9:7000".parse().unwrap()));
    }

    #[test]
    fn our_report_answers_the_peers_stream_and_sr() {
        let t = Instant::now();
        let (mut caller, _) = caller_and_agent(t);
        let from = "192.0.2.1:4000".parse().unwrap();
        for seq in [1u16, 2, 4] {
            let at = ms(t, 20 * u64::from(seq));
            caller.on_rtp(
                from,
                &rtp(0, seq, u32::from(seq) * 160, 0xC, false, &[0; 160]),
                at,
            );
        }
        let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 0xC];
        sr.extend_from_slice(&[0, 0, 0xAB, 0xCD, 0xEF, 0x01, 0, 0]); // NTP
        sr.extend_from_slice(&[0; 12]);
        assert!(caller.on_rtcp(from, &sr, true, ms(t, 100)));
        let mut out = Vec::new();
        let due = caller.next_timeout().unwrap().max(ms(t, 100));
        let _ = (0..5000)
            .map(|n| ms(t, n))
            .filter(|&n| n >= due)
            .find(|&n| caller.poll_rtcp(n, std::time::SystemTime::now(), &mut out))
            .expect("a report within 5 s");
        assert_eq!(out[0], 0x81, "one report block");
        let block = &out[28..52];
        assert_eq!(&block[0..4], &0xCu32.to_be_bytes());
        assert_eq!(&block[5..8], &[0, 0, 1], "seq 3 lost");
        assert_eq!(&block[8..12], &4u32.to_be_bytes());
        assert_eq!(&block[16..20], &0xABCD_EF01u32.to_be_bytes(), "LSR");
        assert_ne!(&block[20..24], &[0; 4], "DLSR: time since that SR");
    }

    #[test]
    fn relayed_rtcp_speaks_of_the_ssrcs_each_phone_sees() {
        let t = Instant::now();
        let (mut caller, mut agent) = caller_and_agent(t);
        caller.play(Source::Relay, t);
        agent.play(Source::Relay, t);
        let (from_caller, from_agent) = (
            "192.0.2.1:4000".parse().unwrap(),
            "192.0.2.2:6000".parse().unwrap(),
        );
        // The phones' RTP: the caller sends SSRC 0xC, the agent 0xA.
        caller.on_rtp(from_caller, &rtp(0, 1, 0, 0xC, false, &[0; 160]), t);
        agent.on_rtp(from_agent, &rtp(8, 1, 0, 0xA, false, &[0; 160]), t);
        // The caller reports, as 0xC, on what it receives from us (0xCA11).
        let mut report = vec![0x81, 201, 0, 7, 0, 0, 0, 0xC, 0, 0, 0xCA, 0x11];
        report.extend_from_slice(&[7; 20]);
        let mut out = Vec::new();
        let to = caller.relay_rtcp_to(&mut agent, from_caller, &report, false, t, &mut out);
        assert_eq!(to, Some("192.0.2.2:6001".parse().unwrap()));
        // The agent sees it from our agent-leg SSRC 0xA6E, about its own 0xA.
        assert_eq!(&out[4..8], &0xA6Eu32.to_be_bytes());
        assert_eq!(&out[8..12], &0xAu32.to_be_bytes());
        assert_eq!(&out[12..], &report[12..], "statistics untouched");
    }

    /// A bridged caller silent for 30 s: a third party's RTP and RTCP to
    /// its leg reach neither the agent nor move where the caller's audio
    /// goes; the caller's own next packet is relayed as before.
    #[test]
    fn a_silent_callers_leg_is_not_taken_over() {
        let t = Instant::now();
        let (mut caller, mut agent) = caller_and_agent(t);
        caller.play(Source::Relay, t);
        agent.play(Source::Relay, t);
        let from_caller = "192.0.2.1:4000".parse().unwrap();
        let third: SocketAddr = "203.0.113.66:5000".parse().unwrap();
        let mut out = Vec::new();
        let pkt = |seq| rtp(0, seq, u32::from(seq) * 160, 0xC0, false, &[0x7F; 160]);
        assert!(caller.relay_to(&mut agent, from_caller, &pkt(1), t, &mut out));
        let later = ms(t, 30_000);
        let intruder = rtp(0, 1, 0, 0xBAD, false, &[0x11; 160]);
        assert!(!caller.relay_to(&mut agent, third, &intruder, later, &mut out));
        let rr = rr(0xBAD);
        let to = caller.relay_rtcp_to(
            &mut agent,
            "203.0.113.66:5001".parse().unwrap(),
            &rr,
            true,
            later,
            &mut out,
        );
        assert_eq!(to, None);
        assert_eq!(caller.remote(), Some(from_caller));
        assert_eq!(
            caller.rtcp_remote(),
            Some("192.0.2.1:4001".parse().unwrap())
        );
        assert_eq!(caller.stats().dropped_foreign, 2);
        assert_eq!(caller.last_rx(), t, "foreign packets are no sign of life");
        assert!(caller.relay_to(&mut agent, from_caller, &pkt(2), later, &mut out));
    }

    /// The media task's loop on a virtual clock: each leg woken only at its
    /// own deadline, late by 0-3 ms as a loaded timer would be. Music stays
    /// on its 20 ms grid without drift for ten minutes, and a bridged leg
    /// (relaying only) gets a single turn: for its RTP timeout.
    #[test]
    fn deadline_driven_legs_keep_the_grid_and_bridged_legs_cost_nothing() {
        use crate::media::deadlines::Deadlines;
        let t = Instant::now();
        let timeout = Duration::from_secs(60);
        let params = LegParams {
            codec: Codec::Pcmu,
            te_pt: None,
        };
        let music = Prompt::from_linear(&[1000i16; 160 * 7]);
        // Two music legs out of phase by 7 ms, one bridged leg.
        let starts = [0u64, 7, 3];
        let mut legs: Vec<Leg> = starts
            .iter()
            .enumerate()
            .map(|(i, &s)| Leg::with_ids(params, None, ids(i as u32), ms(t, s)))
            .collect();
        for (i, l) in legs.iter_mut().enumerate().take(2) {
            l.play(Source::prompt(music.clone(), true), ms(t, starts[i]));
        }
        legs[2].play(Source::Relay, ms(t, 3));
        let mut timed_out = [false; 3];
        let mut d: Deadlines<usize> = Deadlines::new();
        for (i, l) in legs.iter().enumerate() {
            d.set(i, l.next_deadline(Some(timeout)));
        }
        let mut sent: [Vec<(Instant, u16, u32)>; 3] = Default::default();
        let (mut turns, mut rng, mut out) = ([0u32; 3], 12345u32, Vec::new());
        let end = ms(t, 600_000);
        while let Some(due) = d.earliest().filter(|&n| n < end) {
            rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let now = due + Duration::from_micros(u64::from(rng >> 16) % 3000);
            while let Some(i) = d.pop_due(now) {
                turns[i] += 1;
                let l = &mut legs[i];
                l.run_timers(now, std::time::UNIX_EPOCH, &mut out, |kind, p| {
                    if kind == crate::media::session::Outgoing::Rtp {
                        let r = RtpReader::new(p).unwrap();
                        sent[i].push((now, r.sequence_number().into(), r.timestamp()));
                    }
                });
                timed_out[i] |= l.is_timed_out(now, timeout);
                let watch = (!timed_out[i]).then_some(timeout);
                let next = l.next_deadline(watch).map(|n| {
                    if n <= now {
                        now + Duration::from_millis(1)
                    } else {
                        n
                    }
                });
                d.set(i, next);
            }
        }
        for i in 0..2 {
            assert_eq!(sent[i].len(), 30_000, "leg {i}: one frame per 20 ms");
            for (k, &(at, seq, ts)) in sent[i].iter().enumerate() {
                let grid = ms(t, starts[i] + 20 * k as u64);
                assert!(
                    at >= grid && at < grid + Duration::from_millis(3),
                    "leg {i} frame {k} left {:?} after its slot",
                    at.saturating_duration_since(grid)
                );
                assert_eq!(seq, 1000u16.wrapping_add(k as u16));
                assert_eq!(ts, 50_000u32.wrapping_add(160 * k as u32));
            }
        }
        assert!(sent[2].is_empty());
        assert_eq!(turns[2], 1, "the bridged leg: its RTP timeout only");
        assert!(timed_out[2]);
        // Music legs: one turn per frame, plus a few for their RTCP reports.
        assert!(turns[0] < 30_000 + 300, "{}", turns[0]);
    }

    proptest::proptest! {
        #[test]
        fn any_datagram_on_either_port_never_panics(
            pkts in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), 1..8),
        ) {
            let t = Instant::now();
            let (mut caller, mut agent) = caller_and_agent(t);
            caller.play(Source::Relay, t);
            agent.play(Source::Relay, t);
            let from = "192.0.2.1:4000".parse().unwrap();
            let mut out = Vec::new();
            for (i, p) in pkts.iter().enumerate() {
                let now = ms(t, 10 * i as u64);
                caller.relay_rtcp_to(&mut agent, from, p, i % 2 == 0, now, &mut out);
                caller.relay_to(&mut agent, from, p, now, &mut out);
            }
            caller.play(Source::Silence, ms(t, 100));
            for n in 0..800 {
                caller.poll_rtcp(ms(t, 100 + 10 * n), std::time::SystemTime::now(), &mut out);
            }
            let s = caller.stats();
            proptest::prop_assert!(s.rtcp + s.dropped_rtcp <= 2 * pkts.len() as u64);
        }
    }
}
