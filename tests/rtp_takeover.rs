//! RTP takeover: a bridged call whose caller (SIPp) has been silent for
//! more than 2 s, and a third party sending RTP to the caller leg's port.
//! sipacd keeps the latched caller: the agent (baresip, recording what it
//! hears) never hears the third party, the third party receives nothing,
//! and the caller's own audio, when it speaks again, still reaches the
//! agent. Without sipp or baresip this test fails (see `common::require`).

mod common;

use common::baresip::{
    agent_account, baresip_or_skip, read_wav_8k_mono, rms, sine_wav, tone_share, Baresip,
};
use common::sipp::{run_sipp, sipp_or_skip, SippRun};
use common::{free_port, ConfigSpec, Daemon, AGENT_PASSWORD};
use sipacd::media::g711::linear_to_alaw;
use std::net::UdpSocket;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
/// The third party's tone: neither the agent's 1000 Hz nor speech-like.
const INTRUDER_HZ: f64 = 2000.0;
const AGENT_HZ: f64 = 1000.0;

/// A blocking GET of the daemon's metrics text.
fn metrics(d: &Daemon) -> String {
    let url = format!("{}/metrics", d.admin_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

/// `sipacd_rtp_dropped_packets_total{reason="foreign"}`, 0 if absent.
fn foreign_drops(d: &Daemon) -> f64 {
    metrics(d)
        .lines()
        .find(|l| l.starts_with("sipacd_rtp_dropped_packets_total") && l.contains("foreign"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// 20 ms frames of a sine at `hz`, A-law.
fn intruder_frame(n: u32) -> Vec<u8> {
    (0..160u32)
        .map(|i| {
            let t = f64::from(n * 160 + i) / 8000.0;
            linear_to_alaw((12000.0 * (2.0 * std::f64::consts::PI * INTRUDER_HZ * t).sin()) as i16)
        })
        .collect()
}

fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn a_third_party_cannot_take_over_a_silent_callers_leg() {
    if !(sipp_or_skip()
        && baresip_or_skip()
        && common::require(
            Path::new("/usr/share/sip-tester/dtmf_2833_1.pcap").is_file(),
            "sip-tester's pcap files",
        ))
    {
        return;
    }
    let spec = ConfigSpec::new();
    // The first call's caller leg takes the first pair of the range.
    let caller_leg_port = spec.rtp_base;
    let mut d = Daemon::start_with(spec);
    let port = d.sip_port();
    let mut agent = Baresip::start(
        "agent",
        &agent_account(port, AGENT_PASSWORD),
        &sine_wav(AGENT_HZ, 30.0),
    );
    let mut agent_ctrl = agent.ctrl();
    assert!(
        d.wait_binding("1001", WAIT).is_some(),
        "agent did not register; baresip:\n{}\nsipacd:\n{}",
        agent.output(),
        d.stderr()
    );

    let media = free_port().to_string();
    let sipp: JoinHandle<SippRun> = std::thread::spawn(move || {
        run_sipp(
            port,
            "caller_falls_silent",
            &["-s", "1500", "-mp", &media],
            Duration::from_secs(30),
        )
    });
    assert!(
        d.wait_for_log(WAIT, |l| l.contains("agent answered: bridged")),
        "no bridge; sipacd:\n{}",
        d.stderr()
    );
    assert!(agent_ctrl.wait_event("CALL_ESTABLISHED", WAIT).is_some());
    assert!(
        !d.stderr().contains("in use by another process"),
        "the caller leg did not get the first port of the range:\n{}",
        d.stderr()
    );

    // The caller's burst lasted 0.14 s: after 2.5 s more it has been silent
    // for well over 2 s. Then 2 s of a third party's stream, at 50 pps,
    // while listening for anything sipacd would send it.
    std::thread::sleep(Duration::from_millis(2500));
    let foreign_before = foreign_drops(&d);
    let third = UdpSocket::bind("127.0.0.1:0").unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut received = Vec::new();
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_secs(3) {
        if start.elapsed() < Duration::from_secs(2)
            && start.elapsed() >= Duration::from_millis(20) * sent
        {
            let pkt = rtp(
                sent as u16 + 1,
                sent * 160,
                0x0BAD_F00D,
                &intruder_frame(sent),
            );
            third.send_to(&pkt, ("127.0.0.1", caller_leg_port)).unwrap();
            sent += 1;
        }
        if let Ok((n, from)) = third.recv_from(&mut buf) {
            received.push((n, from));
        }
    }
    let foreign = foreign_drops(&d) - foreign_before;

    let run = sipp.join().unwrap();
    assert!(
        run.success(),
        "{}\n--- sipacd stderr ---\n{}",
        run.report(),
        d.stderr()
    );
    agent.stop();
    assert!(d.is_alive(), "sipacd died:\n{}", d.stderr());

    assert!(
        received.is_empty(),
        "the third party received {} datagrams from sipacd (first: {:?})",
        received.len(),
        received.first()
    );
    // Most, not all: on a loaded machine the media task may shed some as
    // `overload` before looking at them.
    assert!(
        foreign >= f64::from(sent) * 0.5,
        "only {foreign} of the third party's {sent} packets counted as foreign"
    );
    let files = agent.heard();
    assert_eq!(files.len(), 1, "agent recordings: {files:?}");
    let samples = read_wav_8k_mono(&files[0]);
    let windows: Vec<(f64, f64)> = samples
        .chunks_exact(4000)
        .map(|w| (rms(w), tone_share(w, INTRUDER_HZ)))
        .collect();
    let detail = format!("agent heard, per 0.5 s (rms, share {INTRUDER_HZ} Hz): {windows:.3?}");
    assert!(
        windows
            .iter()
            .all(|&(level, share)| level < 300.0 || share < 0.2),
        "the agent heard the third party\n{detail}"
    );
    // The caller spoke again after the attempt: its leg was still its own.
    let speech = windows.iter().filter(|&&(level, _)| level > 500.0).count();
    assert!(
        speech >= 2,
        "the caller's speech after the attempt never reached the agent\n{detail}"
    );
    eprintln!("{detail}");
}
