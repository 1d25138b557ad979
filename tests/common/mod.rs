//! Test harness shared by the integration tests: free loopback ports, a
//! temporary configuration, the real `sipacd` binary as a child process,
//! SIPp runs and a few raw-UDP SIP helpers.
//!
//! Every wait here is bounded: a hung daemon or peer fails the test, it never
//! hangs the suite.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod baresip;
pub mod demo;
pub mod http;
pub mod limited;
pub mod linphone;
pub mod netns;
pub mod phone;
pub mod sip;
pub mod sipp;
pub mod spoken;
pub mod sse;
pub mod tls;
pub mod tone;

use std::fs;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Password of agent 1001 in the harness configuration.
pub const AGENT_PASSWORD: &str = "s3cret-1001";
/// SIP domain of the harness configuration.
pub const DOMAIN: &str = "support.example.com";

/// True when skipping tests whose tools are missing was asked for
/// (`SIPACD_SKIP_MISSING_TOOLS=1`); never under CI.
pub fn skip_allowed() -> bool {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    !ci && std::env::var("SIPACD_SKIP_MISSING_TOOLS").as_deref() == Ok("1")
}

/// Fails when a prerequisite (sipp, baresip, Chromium...) is missing: a
/// test that cannot run must not pass. Skips (returns false, with a note)
/// only when `SIPACD_SKIP_MISSING_TOOLS=1` asks for it outside CI.
pub fn require(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    if !skip_allowed() {
        panic!("{what} is missing: install it (see .ci/run), or set SIPACD_SKIP_MISSING_TOOLS=1 to skip");
    }
    eprintln!("SKIPPED: {what} is missing (SIPACD_SKIP_MISSING_TOOLS=1)");
    false
}

/// Polls `f` every 50 ms until it holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// First and one-past-last port handed out by `free_ports`: below the RTP
/// ranges (21000 up) and the demo's 20000-20999, and below Linux's ephemeral
/// ports (32768 up). A port asked of the kernel (`bind` to port 0: phones,
/// baresip's SIP socket) is never one of these, so a port checked free here
/// stays free until the daemon or SIPp binds it. (Ports taken from the
/// ephemeral range were taken back by a parallel test's phone in the gap
/// between the check and the daemon's bind: CI saw EADDRINUSE.)
const PORTS_LO: u32 = 10000;
const PORTS_HI: u32 = 20000;

/// `n` consecutive loopback ports, each free for both UDP and TCP at the
/// time of the call, never handed out twice in one test binary (the tests
/// inside a binary run in parallel; cargo runs binaries one at a time). The
/// first block depends on the process id, so test binaries started side by
/// side by hand rarely meet.
pub fn free_ports(n: u16) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = PORTS_HI - PORTS_LO;
    let start = (std::process::id().wrapping_mul(977)) % span;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let off = NEXT.fetch_add(u32::from(n), Ordering::SeqCst) % span;
        if off + u32::from(n) > span {
            continue; // a block never wraps past the range's end
        }
        let base = (PORTS_LO + off) as u16;
        let free = (base..base + n).all(|p| {
            UdpSocket::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no block of {n} loopback ports free for both UDP and TCP");
}

/// One loopback port for a daemon's SIP or admin listener, SIPp or a
/// control socket. A block of four is kept for it: SIPp's `-mp` media port
/// uses the three after it (RTCP, video) too.
pub fn free_port() -> u16 {
    free_ports(4)
}

/// A WAV file: 8 kHz mono 16-bit PCM, `samples` samples of a quiet tone.
pub fn wav_bytes(samples: u32) -> Vec<u8> {
    // 400 Hz square wave at low level: deterministic, audible if played.
    wav_from_samples(&square_wave(10, 1000, samples))
}

/// `samples` samples of a square wave of half-period `half` samples and
/// amplitude `level`.
pub fn square_wave(half: u32, level: i16, samples: u32) -> Vec<i16> {
    (0..samples)
        .map(|i| if (i / half) % 2 == 0 { level } else { -level })
        .collect()
}

/// A WAV file (8 kHz mono 16-bit PCM) holding `samples`.
pub fn wav_from_samples(samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes()); // sample rate
    out.extend_from_slice(&16000u32.to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A media range of 100 ports per daemon, never the same twice in one test
/// binary (cargo runs test binaries one at a time, the tests inside one in
/// parallel), so daemons running side by side never bind each other's ports.
/// Ranges sit in 21000-32699: above the demo's 20000-20999 and below Linux's
/// ephemeral ports (32768 up), so no socket bound to port 0 (SIP ports,
/// phones, SIPp) can hold a daemon's RTP or RTCP port.
fn next_rtp_base() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    const RANGES: u32 = 117;
    let start = std::process::id() % RANGES;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    let n = NEXT.fetch_add(1, Ordering::SeqCst) % RANGES;
    21000 + (n as u16) * 100
}

/// The harness's contact center, rendered to TOML. Tests tweak fields before
/// writing it (extra numbers, max_calls, a deliberate error...).
#[derive(Clone, Debug)]
pub struct ConfigSpec {
    pub sip_port: u16,
    pub admin_port: u16,
    pub rtp_base: u16,
    /// Ports in `server.rtp_ports` from `rtp_base` (100: 50 pairs).
    pub rtp_count: u16,
    pub max_calls: u32,
    pub drain_s: u32,
    /// `server.rtp_timeout_s`.
    pub rtp_timeout_s: u32,
    /// `server.admin_token`; empty = none.
    pub admin_token: String,
    /// Appended verbatim at the end of the file.
    pub extra: String,
    /// Extra `[server]` lines (`key = value`), appended to that table.
    pub server_extra: String,
    /// Extra listeners appended to `server.sip` (e.g. `, "tls:127.0.0.1:P"`).
    pub sip_extra: String,
    /// Extra `[queues.support]` lines (`wrapup_s = 2`).
    pub support_extra: String,
    /// Environment of the daemon process (e.g. `TOKIO_WORKER_THREADS`).
    pub env: Vec<(String, String)>,
}

impl ConfigSpec {
    pub fn new() -> Self {
        let rtp_base = next_rtp_base();
        ConfigSpec {
            sip_port: free_port(),
            admin_port: free_port(),
            rtp_base,
            rtp_count: 100,
            max_calls: 100,
            drain_s: 2,
            rtp_timeout_s: 60,
            admin_token: String::new(),
            extra: String::new(),
            server_extra: String::new(),
            sip_extra: String::new(),
            support_extra: String::new(),
            env: Vec::new(),
        }
    }

    /// The TOML text. `root` is the directory holding data and prompts.
    pub fn render(&self, root: &Path) -> String {
        let p = self.sip_port;
        format!(
            r#"# written by tests/common/mod.rs
[server]
sip = ["udp:127.0.0.1:{p}", "tcp:127.0.0.1:{p}"{sip_extra}]
advertise = "127.0.0.1"
domain = "{DOMAIN}"
rtp_ports = "{rtp_lo}-{rtp_hi}"
admin = "127.0.0.1:{admin}"
admin_token = "{token}"
data_dir = "{data}"
prompts = "{prompts}"
timezone = "UTC"
drain_s = {drain}
max_calls = {max_calls}
rtp_timeout_s = {rtp_timeout}
{server_extra}
[agents.1001]
name = "Alice"
password = "{AGENT_PASSWORD}"
skills = {{ support = 5 }}

[queues.support]
skills = {{ support = 1 }}
strategy = "longest_idle"
music = "moh.wav"
{support_extra}
[[numbers]]
number = "1500"
to = "queue:support"

# rings 5 s before answering: long enough to CANCEL
[[numbers]]
number = "1501"
to = "queue:support"
ring_s = 5

[[numbers]]
number = "1600"
to = "ivr:bye"

[ivr.bye]
start = "bye"

[ivr.bye.nodes.bye]
type = "hangup"
{extra}"#,
            rtp_lo = self.rtp_base,
            rtp_hi = self.rtp_base + self.rtp_count.max(2) - 1,
            admin = self.admin_port,
            token = self.admin_token,
            data = root.join("data").display(),
            prompts = root.join("prompts").display(),
            drain = self.drain_s,
            max_calls = self.max_calls,
            rtp_timeout = self.rtp_timeout_s,
            extra = self.extra,
            server_extra = self.server_extra,
            sip_extra = self.sip_extra,
            support_extra = self.support_extra,
        )
    }
}

impl Default for ConfigSpec {
    fn default() -> Self {
        Self::new()
    }
}

/// A temporary directory holding `sipacd.toml`, `prompts/` and `data/`.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
    pub spec: ConfigSpec,
}

impl ConfigDir {
    pub fn new(spec: ConfigSpec) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sipacd-test-")
            .tempdir()
            .unwrap();
        fs::create_dir_all(dir.path().join("data")).unwrap();
        fs::create_dir_all(dir.path().join("prompts")).unwrap();
        // Half a second of tone: tiny, but a real prompt.
        fs::write(dir.path().join("prompts/moh.wav"), wav_bytes(4000)).unwrap();
        let cd = ConfigDir { dir, spec };
        cd.write();
        cd
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("sipacd.toml")
    }

    /// (Re)writes the config file from `spec`.
    pub fn write(&self) {
        self.write_text(&self.spec.render(self.dir.path()));
    }

    /// Replaces the config file with arbitrary text (atomically, so a reload
    /// never reads half a file).
    pub fn write_text(&self, text: &str) {
        let tmp = self.dir.path().join("sipacd.toml.tmp");
        let mut f = fs::File::create(&tmp).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.sync_all().unwrap();
        fs::rename(&tmp, self.config_path()).unwrap();
    }
}

/// Path of the daemon under test: `SIPACD_BIN` overrides the cargo-built one
/// (e.g. to test a release build).
pub fn sipacd_bin() -> PathBuf {
    match std::env::var_os("SIPACD_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_sipacd")),
    }
}

/// A running `sipacd --config …`; SIGTERM then SIGKILL on drop.
pub struct Daemon {
    pub cfg: ConfigDir,
    child: Option<Child>,
    pub stderr_path: PathBuf,
}

/// How long a daemon may take to answer its first OPTIONS.
const STARTUP: Duration = Duration::from_secs(20);

impl Daemon {
    /// Starts the harness configuration and waits until it answers OPTIONS.
    pub fn start() -> Daemon {
        Self::start_with(ConfigSpec::new())
    }

    pub fn start_with(spec: ConfigSpec) -> Daemon {
        Self::start_dir(ConfigDir::new(spec))
    }

    /// Starts on a whole configuration `text` (e.g. the demo's, with its
    /// addresses and directories rewritten) instead of the harness's;
    /// `spec` holds the ports the text uses.
    pub fn start_with_text(spec: ConfigSpec, text: &str) -> Daemon {
        let cfg = ConfigDir::new(spec);
        cfg.write_text(text);
        Self::start_dir(cfg)
    }

    fn start_dir(cfg: ConfigDir) -> Daemon {
        let stderr_path = cfg.root().join("sipacd.stderr.log");
        let child = Self::spawn(&cfg, &stderr_path);
        let mut d = Daemon {
            cfg,
            child: Some(child),
            stderr_path,
        };
        d.wait_ready();
        d
    }

    /// Base URL of the admin API.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.cfg.spec.admin_port)
    }

    /// SIGKILL (no drain, no cleanup), then a fresh process on the same
    /// configuration and data directory; its stderr is appended.
    pub fn kill9_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = Some(Self::spawn(&self.cfg, &self.stderr_path));
        self.wait_ready();
    }

    fn spawn(cfg: &ConfigDir, stderr_path: &Path) -> Child {
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_path)
            .unwrap();
        Command::new(sipacd_bin())
            .envs(cfg.spec.env.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(cfg.config_path())
            .current_dir(cfg.root())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", sipacd_bin().display()))
    }

    pub fn sip_port(&self) -> u16 {
        self.cfg.spec.sip_port
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon already reaped").id()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Some(st) = self.try_wait() {
                panic!(
                    "sipacd exited during startup ({st}); stderr:\n{}",
                    self.stderr()
                );
            }
            if sip::options_status(self.sip_port(), Duration::from_millis(300)) == Some(200) {
                return;
            }
        }
        panic!(
            "sipacd did not answer OPTIONS on 127.0.0.1:{} within {STARTUP:?}; stderr:\n{}",
            self.sip_port(),
            self.stderr()
        );
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until a stderr line satisfies `pred`; true if one did in time.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().lines().any(&pred) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The stored bindings of `user` (from `data_dir/registrations.json`).
    pub fn bindings_of(&self, user: &str) -> Vec<serde_json::Value> {
        let path = self.cfg.root().join("data/registrations.json");
        let Ok(text) = fs::read_to_string(&path) else {
            return Vec::new(); // not written yet: no binding at all
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["user"] == user)
            .cloned()
            .collect()
    }

    /// Waits for a first binding of `user`; None after `timeout`.
    pub fn wait_binding(&self, user: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(b) = self.bindings_of(user).into_iter().next() {
                return Some(b);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal by name ("HUP", "TERM", ...).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Non-blocking: the exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    pub fn is_alive(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
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

/// Finds `PATH:LINE:COL: message` diagnostics in `sipacd check` output:
/// returns (path, line, col, message) for each line that has that shape.
pub fn parse_diagnostics(out: &str) -> Vec<(String, u32, u32, String)> {
    let mut found = Vec::new();
    for line in out.lines() {
        // The path may itself hold ':' in theory; search from the left for the
        // first ":<digits>:<digits>: " which cannot occur in our temp paths.
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(off) = line[i..].find(':') {
            let start = i + off;
            let rest = &line[start + 1..];
            let l_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if l_end > 0 && rest[l_end..].starts_with(':') {
                let rest2 = &rest[l_end + 1..];
                let c_end = rest2
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest2.len());
                if c_end > 0 && rest2[c_end..].starts_with(": ") {
                    found.push((
                        line[..start].to_string(),
                        rest[..l_end].parse().unwrap(),
                        rest2[..c_end].parse().unwrap(),
                        rest2[c_end + 2..].to_string(),
                    ));
                    break;
                }
            }
            i = start + 1;
            if i >= bytes.len() {
                break;
            }
        }
    }
    found
}
