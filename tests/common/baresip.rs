//! A real softphone, baresip 1.0 (Debian `baresip-core`), as a child process
//! with a configuration of its own in a temporary directory: audio from an
//! 8 kHz WAV tone (`aufile`), what it hears recorded to WAV (`sndfile`), and
//! driven over its `ctrl_tcp` socket (netstring-framed JSON).
//!
//! baresip 1.0 quirks handled here:
//! * `sip_listen 127.0.0.1:P` also binds TLS on P+1, so two phones on
//!   neighbouring ports collide; we listen on port 0 instead (any free port,
//!   the phone's Contact names it).
//! * Inside a loopback-only network namespace it needs `net_interface
//!   127.0.0.1`, or it finds no local address.
//! * `aufile` refuses a WAV whose rate differs from the codec's: 8 kHz mono
//!   S16LE for G.711. `ausine` is 48 kHz stereo only, so it is not used.
//! * A player is mandatory; `aubridge` is a player that goes nowhere
//!   (no sound card needed, no CPU burnt). `sndfile` is a filter, so it
//!   records the decoded audio before the player.
//! * `dial` and `hangup` are commands of the `menu` module: `ctrl_tcp`
//!   alone knows none.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's baresip keeps its modules.
pub const MODULE_PATH: &str = "/usr/lib/baresip/modules";

/// Upper bound on any phone's life (`baresip -t`): even if a test process
/// dies without running destructors, no baresip outlives it by much.
const MAX_LIFE_S: u32 = 120;

/// baresip's accounts line for agent 1001 registering through the daemon
/// on `port` with `password` (auto-answer, PCMU).
pub fn agent_account(port: u16, password: &str) -> String {
    format!(
        "<sip:1001@{}>;auth_pass={password};outbound=\"sip:127.0.0.1:{port}\";regint=60;answermode=auto;audio_codecs=PCMU",
        super::DOMAIN
    )
}

/// baresip's accounts line for a caller that never registers (PCMU).
pub fn caller_account(port: u16) -> String {
    format!(
        "<sip:5551234@{}>;outbound=\"sip:127.0.0.1:{port}\";regint=0;audio_codecs=PCMU",
        super::DOMAIN
    )
}

/// True if baresip and its modules are installed; when not, fails under CI
/// and otherwise prints a skip note. Call at the top of each baresip test.
pub fn baresip_or_skip() -> bool {
    let runs = Command::new("baresip")
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    let modules = ["g711", "aufile", "aubridge", "sndfile", "menu", "ctrl_tcp"]
        .iter()
        .all(|m| Path::new(MODULE_PATH).join(format!("{m}.so")).exists());
    super::require(
        runs && modules,
        "baresip with its modules (Debian package baresip-core)",
    )
}

/// A WAV file: 8 kHz mono 16-bit PCM, a sine of `freq` Hz for `secs` seconds
/// at half of full scale.
pub fn sine_wav(freq: f64, secs: f64) -> Vec<u8> {
    let samples: Vec<i16> = (0..(8000.0 * secs) as usize)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (16000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect();
    super::wav_from_samples(&samples)
}

/// The samples of an 8 kHz mono PCM16 WAV file (as libsndfile writes them:
/// chunks walked, the data chunk read up to the end of the file even if its
/// declared size was never patched).
pub fn read_wav_8k_mono(path: &Path) -> Vec<i16> {
    let b = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "{}: not a WAV file",
        path.display()
    );
    let mut i = 12;
    let mut fmt_ok = false;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        let body = i + 8;
        if id == b"fmt " {
            let f = &b[body..body + 16];
            let format = u16::from_le_bytes([f[0], f[1]]);
            let channels = u16::from_le_bytes([f[2], f[3]]);
            let rate = u32::from_le_bytes(f[4..8].try_into().unwrap());
            let bits = u16::from_le_bytes([f[14], f[15]]);
            assert_eq!(
                (format, channels, rate, bits),
                (1, 1, 8000, 16),
                "{}: want 8 kHz mono PCM16",
                path.display()
            );
            fmt_ok = true;
        } else if id == b"data" {
            assert!(fmt_ok, "{}: data before fmt", path.display());
            let end = if len == 0 {
                b.len()
            } else {
                (body + len).min(b.len())
            };
            return b[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        i = body + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// Share of the signal's energy at `freq` (Goertzel), between 0 and about
/// 1: a pure sine at `freq` gives ~1, silence or other tones ~0.
pub fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let n = samples.len() as f64;
    let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    if samples.is_empty() || energy == 0.0 {
        return 0.0;
    }
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    // A sine of amplitude A: power = (A*N/2)^2 and energy = N*A^2/2.
    2.0 * power / (n * energy)
}

/// Root mean square level of `samples` (full scale is 32767).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let e: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (e / samples.len() as f64).sqrt()
}

/// What dominates each half second of a recording, one letter per window:
/// the letter of the first `(letter, Hz, min share)` in `tones` whose
/// frequency holds at least that share of the energy, '.' for silence or
/// anything else. Says in what order a caller heard agent, music, agent.
pub fn timeline(samples: &[i16], tones: &[(char, f64, f64)]) -> String {
    samples
        .chunks_exact(4000)
        .map(|w| {
            if rms(w) < 500.0 {
                return '.';
            }
            tones
                .iter()
                .find(|&&(_, hz, share)| tone_share(w, hz) > share)
                .map_or('.', |&(c, _, _)| c)
        })
        .collect()
}

/// Checks that the recording `wav` (of phone `who`) holds `want` Hz (the
/// other phone's tone) for at least `min_s` seconds in half-second windows
/// of real level, and never its own `own` Hz (no loop back).
pub fn assert_tone(who: &str, wav: &Path, want: f64, own: f64, min_s: f64) {
    let samples = read_wav_8k_mono(wav);
    let table: Vec<(f64, f64, f64)> = samples
        .chunks_exact(4000)
        .map(|w| (rms(w), tone_share(w, want), tone_share(w, own)))
        .collect();
    let good = table
        .iter()
        .filter(|&&(level, w, o)| level > 1000.0 && w > 0.5 && o < 0.05)
        .count();
    let detail = format!(
        "{who}: {} samples; per 0.5 s (rms, share {want} Hz, share {own} Hz): {table:.3?}",
        samples.len()
    );
    assert!(
        good as f64 * 0.5 >= min_s,
        "{who} did not hear {want} Hz for {min_s} s\n{detail}"
    );
    assert!(
        table.iter().all(|&(_, _, o)| o < 0.1),
        "{who} hears its own {own} Hz tone\n{detail}"
    );
    eprintln!("{detail}");
}

/// One baresip instance.
pub struct Baresip {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub ctrl_port: u16,
    child: Option<Child>,
    out_path: PathBuf,
}

impl Baresip {
    /// Starts baresip with one account (`account_line` as in baresip's
    /// `accounts` file) sending the WAV `source` as its microphone, and waits
    /// until its control socket accepts connections.
    pub fn start(name: &str, account_line: &str, source: &[u8]) -> Baresip {
        Self::start_full(name, account_line, source, &[], "")
    }

    /// `start` with `extra` lines appended to baresip's `config` (e.g.
    /// `sip_cafile` for TLS).
    pub fn start_with(name: &str, account_line: &str, source: &[u8], extra: &str) -> Baresip {
        Self::start_full(name, account_line, source, &[], extra)
    }

    /// [`Baresip::start`] loading `modules` too (e.g. `srtp.so`).
    pub fn start_with_modules(
        name: &str,
        account_line: &str,
        source: &[u8],
        modules: &[&str],
    ) -> Baresip {
        Self::start_full(name, account_line, source, modules, "")
    }

    fn start_full(
        name: &str,
        account_line: &str,
        source: &[u8],
        modules: &[&str],
        extra: &str,
    ) -> Baresip {
        let extra_modules: String = modules.iter().map(|m| format!("module {m}\n")).collect();
        let dir = tempfile::Builder::new()
            .prefix(&format!("baresip-{name}-"))
            .tempdir()
            .unwrap();
        let root = dir.path();
        let ctrl_port = super::free_port();
        // baresip draws its RTP ports at random from `rtp_ports` (1024-49152
        // by default): a range of its own keeps them off other tests' ports.
        let rtp_lo = super::free_ports(16);
        let rtp_hi = rtp_lo + 15;
        fs::write(root.join("source.wav"), source).unwrap();
        fs::create_dir_all(root.join("rec")).unwrap();
        let config = format!(
            "# written by tests/common/baresip.rs\n\
             poll_method epoll\n\
             call_local_timeout 30\n\
             call_max_calls 4\n\
             sip_listen 127.0.0.1:0\n\
             net_interface 127.0.0.1\n\
             rtp_ports {rtp_lo}-{rtp_hi}\n\
             audio_player aubridge,{name}-play\n\
             audio_alert aubridge,{name}-alert\n\
             audio_source aufile,{src}\n\
             audio_level no\n\
             ausrc_format s16\n\
             auplay_format s16\n\
             auenc_format s16\n\
             audec_format s16\n\
             audio_buffer 20-160\n\
             jitter_buffer_delay 5-10\n\
             rtcp_mux no\n\
             snd_path {rec}\n\
             module_path {MODULE_PATH}\n\
             module g711.so\n\
             module aufile.so\n\
             module aubridge.so\n\
             module sndfile.so\n\
             {extra_modules}\
             module_tmp account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n{extra}",
            src = root.join("source.wav").display(),
            rec = root.join("rec").display(),
        );
        fs::write(root.join("config"), config).unwrap();
        fs::write(root.join("accounts"), format!("{account_line}\n")).unwrap();
        fs::write(root.join("contacts"), "").unwrap();
        let out_path = root.join("baresip.out");
        let out = fs::File::create(&out_path).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(root)
            .arg("-t")
            .arg(MAX_LIFE_S.to_string())
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start baresip: {e}"));
        let b = Baresip {
            name: name.to_string(),
            dir,
            ctrl_port,
            child: Some(child),
            out_path,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", ctrl_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "baresip {name} did not open its control socket; output:\n{}",
                b.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    /// Everything baresip printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        fs::read_to_string(&self.out_path).unwrap_or_default()
    }

    /// Waits until baresip's output satisfies `pred`; true if it did in time.
    pub fn wait_for_output(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.output()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A connection to the control socket.
    pub fn ctrl(&self) -> Ctrl {
        let s = TcpStream::connect(("127.0.0.1", self.ctrl_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Ctrl {
            stream: s,
            buf: Vec::new(),
            events: Vec::new(),
            token: 0,
        }
    }

    /// The WAV files `sndfile` wrote with what the phone heard (decoded
    /// audio, one per call).
    pub fn heard(&self) -> Vec<PathBuf> {
        self.recordings("-dec.wav")
    }

    fn recordings(&self, suffix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.dir.path().join("rec"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        v.sort();
        v
    }

    /// SIGTERM (baresip unregisters and closes its recordings), then SIGKILL
    /// after 5 s. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `ctrl_tcp` protocol: netstrings (`LEN:JSON,`) carrying
/// `{"command","params","token"}` requests; baresip answers with
/// `{"response":true,"ok":..,"data":..,"token":..}` and pushes
/// `{"event":true,"type":"CALL_ESTABLISHED",..}` events on the same stream.
pub struct Ctrl {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Events received so far, in order.
    pub events: Vec<serde_json::Value>,
    token: u32,
}

impl Ctrl {
    /// Sends a command and returns its response (events seen meanwhile are
    /// kept in `events`). Panics if no response comes within 5 s.
    pub fn command(&mut self, command: &str, params: &str) -> serde_json::Value {
        self.token += 1;
        let token = format!("t{}", self.token);
        let msg = serde_json::json!({"command": command, "params": params, "token": token});
        let body = msg.to_string();
        self.stream
            .write_all(format!("{}:{body},", body.len()).as_bytes())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(v) = self.next(deadline) {
                if v["response"] == true && v["token"] == token.as_str() {
                    return v;
                }
                if v["event"] == true {
                    self.events.push(v);
                }
            }
        }
        panic!("no response to {command} {params:?} on ctrl_tcp");
    }

    /// Waits for an event of type `kind` (e.g. "CALL_ESTABLISHED"),
    /// including one already received; None after `timeout`.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events.iter().find(|e| e["type"] == kind) {
                return Some(e.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            if let Some(v) = self.next(deadline) {
                if v["event"] == true {
                    self.events.push(v);
                }
            }
        }
    }

    /// The next netstring's JSON, or None at `deadline`.
    fn next(&mut self, deadline: Instant) -> Option<serde_json::Value> {
        loop {
            if let Some(v) = self.take_frame() {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut tmp = [0u8; 4096];
            match self.stream.read(&mut tmp) {
                Ok(0) => panic!("baresip closed its control socket"),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(_) => {} // read timeout: loop to check the deadline
            }
        }
    }

    fn take_frame(&mut self) -> Option<serde_json::Value> {
        let colon = self.buf.iter().position(|&c| c == b':')?;
        let len: usize = std::str::from_utf8(&self.buf[..colon])
            .ok()?
            .parse()
            .unwrap_or_else(|_| panic!("bad netstring from baresip: {:?}", self.buf));
        let end = colon + 1 + len;
        if self.buf.len() <= end {
            return None;
        }
        assert_eq!(self.buf[end], b',', "netstring without its comma");
        let v = serde_json::from_slice(&self.buf[colon + 1..end]).unwrap();
        self.buf.drain(..=end);
        Some(v)
    }
}
