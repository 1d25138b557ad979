//! Telling which of the project's spoken prompts (`prompts/`, real speech)
//! a phone hears: each prompt's PCMU frames that no other prompt of the
//! set sends, so one frame heard names its prompt.

use sipacd::media::{prompt::Prompt, Codec};
use std::collections::HashSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The project's `prompts/` directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
}

/// A set of project prompts and the frames of each that are its own.
pub struct Spoken {
    names: Vec<String>,
    own: Vec<HashSet<Vec<u8>>>,
}

impl Spoken {
    /// Panics when a prompt of `names` has fewer than 6 frames of its own
    /// (it could not be told from the others).
    pub fn new(names: &[&str]) -> Spoken {
        let sets: Vec<HashSet<Vec<u8>>> = names
            .iter()
            .map(|name| {
                let p = Prompt::load(&dir().join(name)).unwrap();
                (0..p.len())
                    .filter_map(|i| p.frame(i, Codec::Pcmu))
                    .filter(|f| f.iter().any(|b| *b != f[0]))
                    .map(|f| f.to_vec())
                    .collect()
            })
            .collect();
        let own: Vec<HashSet<Vec<u8>>> = (0..sets.len())
            .map(|i| {
                sets[i]
                    .iter()
                    .filter(|f| {
                        sets.iter()
                            .enumerate()
                            .all(|(j, s)| j == i || !s.contains(*f))
                    })
                    .cloned()
                    .collect()
            })
            .collect();
        for (name, frames) in names.iter().zip(&own) {
            assert!(frames.len() > 5, "{name} has too few frames of its own");
        }
        Spoken {
            names: names.iter().map(|n| n.to_string()).collect(),
            own,
        }
    }

    /// The prompt whose own frame an RTP packet carries (PCMU only).
    fn of(&self, packet: &[u8]) -> Option<usize> {
        if packet.len() <= 12 || packet[1] & 0x7F != 0 {
            return None;
        }
        self.own.iter().position(|own| own.contains(&packet[12..]))
    }

    /// The prompts heard on `rtp`, in order, until `want` were heard or
    /// `within` passed: a prompt counts once `frames` of its own frames
    /// came since the last prompt counted, so a prompt played twice with
    /// another between (a number's digits) counts twice.
    pub fn heard_in_order(
        &self,
        rtp: &UdpSocket,
        want: usize,
        frames: usize,
        within: Duration,
    ) -> Vec<String> {
        rtp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (mut heard, mut buf) = (Vec::new(), [0u8; 2048]);
        let mut run: Option<(usize, usize)> = None;
        let deadline = Instant::now() + within;
        while heard.len() < want && Instant::now() < deadline {
            let Ok((n, _)) = rtp.recv_from(&mut buf) else {
                continue;
            };
            let Some(i) = self.of(&buf[..n]) else {
                continue;
            };
            let count = match run {
                Some((j, c)) if j == i => c + 1,
                _ => 1,
            };
            run = Some((i, count));
            if count == frames {
                heard.push(self.names[i].clone());
            }
        }
        heard
    }
}
