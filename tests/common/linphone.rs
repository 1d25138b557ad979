//! A real Linphone, the console client `linphonec` 5.1 (Debian
//! `linphone-cli`), as a child process with a HOME and a linphonerc of its
//! own in a temporary directory, driven by commands on its stdin. Audio
//! comes from a WAV file (`soundcard use files` + `play FILE`), what it
//! hears goes to another (`record FILE`: 8 kHz mono PCM16 for G.711).
//!
//! linphonec 5.1 quirks handled here:
//! * Without `~/.local/share/linphone/` the core never starts its SIP
//!   transports (its database cannot be created): no listening point, every
//!   REGISTER fails with "no channel available".
//! * `sip_tcp_port=-1` means a *random* port, not "off"; 0 is off.
//! * On first start it deletes `use_ipv6` (a migration) unless
//!   `ipv6_migration_done=1` is there, and then puts its IPv6 address in
//!   the SDP of calls it makes.
//! * Every codec it knows and the file does not list is added enabled
//!   (opus first): each one is listed here, only PCMU and PCMA enabled.
//! * It checks every 5 s that the host has a non-loopback address with a
//!   route; without one (a loopback-only network namespace) it drops its
//!   listening points. `.ci/run` gives its namespace such an address.
//! * Session timers, AVPF and RTCP-XR are off in the file, and no NAT
//!   policy turns ICE on: the calls carry no re-INVITE or UPDATE.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound on any phone's life (`timeout` around linphonec): even if a
/// test process dies without running destructors, none outlives it by much.
const MAX_LIFE_S: u32 = 120;

/// Audio codecs linphonec 5.1 knows: (mime, rate, channels, enabled).
const CODECS: &[(&str, u32, u32, bool)] = &[
    ("PCMU", 8000, 1, true),
    ("PCMA", 8000, 1, true),
    ("opus", 48000, 2, false),
    ("speex", 16000, 1, false),
    ("speex", 8000, 1, false),
    ("speex", 32000, 1, false),
    ("GSM", 8000, 1, false),
    ("G722", 8000, 1, false),
    ("G729", 8000, 1, false),
    ("G726-16", 8000, 1, false),
    ("G726-24", 8000, 1, false),
    ("G726-32", 8000, 1, false),
    ("G726-40", 8000, 1, false),
    ("AAL2-G726-16", 8000, 1, false),
    ("AAL2-G726-24", 8000, 1, false),
    ("AAL2-G726-32", 8000, 1, false),
    ("AAL2-G726-40", 8000, 1, false),
    ("L16", 44100, 2, false),
    ("L16", 44100, 1, false),
];

/// True if linphonec is installed; when not, fails under CI and otherwise
/// prints a skip note. Call at the top of each Linphone test.
pub fn linphonec_or_skip() -> bool {
    let runs = Command::new("linphonec")
        .arg("-v")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    super::require(runs, "linphonec (Debian package linphone-cli)")
}

/// Who the phone is.
pub enum Role<'a> {
    /// Registers `user` (digest `password`) at the daemon on `proxy_port`
    /// in `domain`, and answers every call by itself.
    Agent {
        user: &'a str,
        password: &'a str,
        domain: &'a str,
        proxy_port: u16,
    },
    /// Never registers; calls go out as `user@127.0.0.1`.
    Caller { user: &'a str },
    /// As `Agent`, over TLS to the daemon's `tls:` listener on
    /// `proxy_port`, verifying its certificate against `ca` (PEM).
    TlsAgent {
        user: &'a str,
        password: &'a str,
        domain: &'a str,
        proxy_port: u16,
        ca: &'a Path,
    },
}

/// One linphonec instance.
pub struct Linphone {
    pub name: String,
    pub dir: tempfile::TempDir,
    /// Its SIP (UDP) port.
    pub sip_port: u16,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out_path: PathBuf,
    log_path: PathBuf,
    rec_path: PathBuf,
}

impl Linphone {
    /// Starts linphonec as `role`, sending the WAV `source` as its
    /// microphone, and waits until it listens for SIP.
    pub fn start(name: &str, role: Role<'_>, source: &[u8]) -> Linphone {
        let dir = tempfile::Builder::new()
            .prefix(&format!("linphone-{name}-"))
            .tempdir()
            .unwrap();
        let root = dir.path();
        let home = root.join("home");
        fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        let sip_port = super::free_port();
        // Audio in the first six, video and text (unused, but linphonec
        // keeps ports for them) in the last four.
        let rtp_lo = super::free_ports(10);
        let rtp_hi = rtp_lo + 5;
        let src = root.join("source.wav");
        fs::write(&src, source).unwrap();
        let rec_path = root.join("heard.wav");
        let rc = root.join("linphonerc");
        fs::write(&rc, linphonerc(&role, sip_port, rtp_lo, rtp_hi)).unwrap();
        let out_path = root.join("linphonec.out");
        let log_path = root.join("linphonec.log");
        let out = fs::File::create(&out_path).unwrap();
        let mut cmd = Command::new("timeout");
        cmd.arg("-k")
            .arg("5")
            .arg(MAX_LIFE_S.to_string())
            .arg("linphonec")
            .arg("-c")
            .arg(&rc)
            .arg("-d")
            .arg("6")
            .arg("-l")
            .arg(&log_path);
        if matches!(role, Role::Agent { .. } | Role::TlsAgent { .. }) {
            cmd.arg("-a"); // auto-answer
        }
        let mut child = cmd
            .env("HOME", &home)
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start linphonec: {e}"));
        let stdin = child.stdin.take();
        let mut phone = Linphone {
            name: name.to_string(),
            dir,
            sip_port,
            child: Some(child),
            stdin,
            out_path,
            log_path,
            rec_path,
        };
        phone.command("soundcard use files");
        phone.command(&format!("play {}", src.display()));
        phone.command(&format!("record {}", phone.rec_path.display()));
        phone.command("ports");
        let want = format!("sip port = {sip_port}");
        assert!(
            phone.wait_for_output(Duration::from_secs(20), |o| o.contains(&want)),
            "linphonec {name} does not listen on {sip_port}; output:\n{}",
            phone.output()
        );
        phone
    }

    /// Sends one command line to linphonec.
    pub fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("linphonec already stopped");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("linphonec {}: {e}", self.name));
    }

    /// Everything linphonec printed so far (its console).
    pub fn output(&self) -> String {
        fs::read_to_string(&self.out_path).unwrap_or_default()
    }

    /// Its debug log, with every SIP message it sent or received.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The SIP messages in its log whose first line starts with `start`
    /// (e.g. "REGISTER ", "SIP/2.0 200"), each as its header block.
    pub fn messages(&self, start: &str) -> Vec<String> {
        let log = self.log();
        let mut out = Vec::new();
        let mut lines = log.lines().peekable();
        while let Some(line) = lines.next() {
            if !line.starts_with(start) {
                continue;
            }
            let mut msg = format!("{line}\n");
            while let Some(l) = lines.next_if(|l| !l.trim().is_empty()) {
                msg.push_str(l);
                msg.push('\n');
            }
            out.push(msg);
        }
        out
    }

    /// How many INVITE transactions (distinct CSeq lines) its log holds:
    /// 1 means no re-INVITE.
    pub fn invite_transactions(&self) -> usize {
        let mut seqs: Vec<String> = self
            .messages("INVITE ")
            .iter()
            .filter_map(|m| {
                m.lines()
                    .find(|l| l.starts_with("CSeq:"))
                    .map(str::to_string)
            })
            .collect();
        seqs.sort();
        seqs.dedup();
        seqs.len()
    }

    /// Waits until the console output satisfies `pred`; true if in time.
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

    /// The WAV file of what the phone heard (complete after `stop`).
    pub fn heard(&self) -> &Path {
        &self.rec_path
    }

    /// `quit` (linphonec hangs up, unregisters and closes its recording);
    /// after 5 s SIGTERM (which `timeout` passes on to linphonec), after 2 s
    /// more SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit").and_then(|()| stdin.flush());
        }
        let exited = |child: &mut Child, wait: Duration| {
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        };
        if exited(&mut child, Duration::from_secs(5)) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        if exited(&mut child, Duration::from_secs(2)) {
            return;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The linphonerc of one phone: loopback only, UDP only, G.711 only, no
/// session timers, ICE, AVPF, RTCP-XR or video.
fn linphonerc(role: &Role<'_>, sip_port: u16, rtp_lo: u16, rtp_hi: u16) -> String {
    let contact = match role {
        Role::Agent { user, .. } | Role::Caller { user } | Role::TlsAgent { user, .. } => {
            format!("sip:{user}@127.0.0.1")
        }
    };
    // TLS needs a TLS listening point (any port: -1); the others keep none.
    let (tls_port, tls_lines) = match role {
        Role::TlsAgent { ca, .. } => (
            -1,
            format!(
                "root_ca={}\nverify_server_certs=1\nverify_server_cn=1\n",
                ca.display()
            ),
        ),
        _ => (0, String::new()),
    };
    let mut rc = format!(
        "# written by tests/common/linphone.rs\n\
         [sip]\n\
         sip_port={sip_port}\n\
         sip_tcp_port=0\n\
         sip_tls_port={tls_port}\n\
         bind_address=127.0.0.1\n\
         use_ipv6=0\n\
         ipv6_migration_done=1\n\
         guess_hostname=0\n\
         contact={contact}\n\
         session_expires_enabled=0\n\
         inc_timeout=30\n\
         {tls_lines}\
         [net]\n\
         mtu=1300\n\
         [rtp]\n\
         audio_rtp_port={rtp_lo}-{rtp_hi}\n\
         video_rtp_port={video}\n\
         text_rtp_port={text}\n\
         rtcp_xr_enabled=0\n\
         avpf=0\n\
         [sound]\n\
         echocancellation=0\n\
         [video]\n\
         capture=0\n\
         display=0\n",
        video = rtp_hi + 1,
        text = rtp_hi + 3,
    );
    let agent = match role {
        Role::Agent {
            user,
            password,
            domain,
            proxy_port,
        } => Some((user, password, domain, proxy_port, "udp")),
        Role::TlsAgent {
            user,
            password,
            domain,
            proxy_port,
            ..
        } => Some((user, password, domain, proxy_port, "tls")),
        Role::Caller { .. } => None,
    };
    if let Some((user, password, domain, proxy_port, transport)) = agent {
        // Over TLS by name: this mbedTLS matches a certificate's DNS names
        // only (it cannot read an IP address SAN).
        let host = if transport == "tls" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        rc.push_str(&format!(
            "[proxy_0]\n\
             reg_proxy=<sip:{host}:{proxy_port};transport={transport}>\n\
             reg_identity=<sip:{user}@{domain}>\n\
             reg_expires=600\n\
             reg_sendregister=1\n\
             publish=0\n\
             avpf=0\n\
             [auth_info_0]\n\
             username={user}\n\
             passwd={password}\n\
             domain={domain}\n"
        ));
    }
    for (i, (mime, rate, channels, enabled)) in CODECS.iter().enumerate() {
        rc.push_str(&format!(
            "[audio_codec_{i}]\nmime={mime}\nrate={rate}\nchannels={channels}\nenabled={}\n",
            u8::from(*enabled)
        ));
    }
    rc
}
