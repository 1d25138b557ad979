//! Bindings on disk as JSON so registrations survive a restart.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the
//! directory) so a crash leaves either the old or the new file, never half.

use super::bindings::{Binding, BindingTable};
use super::nonce::unix_ms;
use crate::sip::{Peer, Transport};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a registrations file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: unsupported version {version}")]
    Version { path: PathBuf, version: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    bindings: Vec<Stored>,
}

/// [`File`] borrowing its bindings, for writing a [`Snapshot`].
#[derive(Serialize)]
struct FileRef<'a> {
    version: u32,
    bindings: &'a [Stored],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    user: String,
    contact: String,
    transport: String,
    source: String,
    expires_at_unix_ms: u64,
    call_id: String,
    cseq: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reg_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    outbound: bool,
}

/// Every binding at one moment, taken under the registrar's lock (memory
/// only) and written later, off the signalling tasks, by [`Snapshot::save`].
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot(Vec<Stored>);

impl Snapshot {
    pub fn of(table: &BindingTable) -> Snapshot {
        Snapshot(
            table
                .all()
                .map(|(user, b)| Stored {
                    user: user.to_string(),
                    contact: b.contact.clone(),
                    transport: b.source.transport.via_token().to_ascii_lowercase(),
                    source: b.source.addr.to_string(),
                    expires_at_unix_ms: unix_ms(b.expires_at),
                    call_id: b.call_id.clone(),
                    cseq: b.cseq,
                    q: b.q,
                    instance: b.instance.clone(),
                    reg_id: b.reg_id.clone(),
                    outbound: b.outbound,
                })
                .collect(),
        )
    }

    /// How many bindings it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes it to `path` atomically (see the module comment).
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let file = FileRef {
            version: VERSION,
            bindings: &self.0,
        };
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| io(std::io::Error::other(e)))?;
        write_atomic(path, &json)
    }
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside
/// it, synced, renamed over it, and the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // A half-written temporary file (a full disk) must not keep
        // the space the next try needs; the old file is untouched.
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    // Make the rename itself durable; not all platforms allow opening a
    // directory, so this is best effort.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads bindings saved by [`Snapshot::save`], dropping those expired at `now` and
/// entries that do not parse. A missing file is an empty table.
pub fn load(path: &Path, now: SystemTime) -> Result<Vec<(String, Binding)>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: File = serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    if file.version != VERSION {
        return Err(StoreError::Version {
            path: path.to_path_buf(),
            version: file.version,
        });
    }
    let mut out = Vec::new();
    for s in file.bindings {
        let transport = match s.transport.as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            other => {
                tracing::warn!(path = %path.display(), transport = other, "skipping stored binding with unknown transport");
                continue;
            }
        };
        let Ok(addr) = s.source.parse::<SocketAddr>() else {
            tracing::warn!(path = %path.display(), source = %s.source, "skipping stored binding with bad source address");
            continue;
        };
        let expires_at = UNIX_EPOCH + Duration::from_millis(s.expires_at_unix_ms);
        if expires_at <= now {
            continue;
        }
        out.push((
            s.user,
            Binding {
                contact: s.contact,
                source: Peer { transport, addr },
                expires_at,
                call_id: s.call_id,
                cseq: s.cseq,
                q: s.q,
                instance: s.instance,
                reg_id: s.reg_id,
                outbound: s.outbound,
                restored: true,
            },
        ));
    }
    Ok(out)
}
