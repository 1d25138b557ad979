//! The demo configuration (`config/sipacd.toml`) moved onto a test's
//! loopback ports and directories, nothing else changed; tests that depend
//! on the clock rewrite what they must on top (and say why).

use super::ConfigSpec;
use std::path::{Path, PathBuf};
use toml_edit::{value, Array, DocumentMut};

/// A repository path.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The demo file with `spec`'s SIP, admin and RTP ports, `data` as its
/// data directory, the repository's prompts and a short drain.
pub fn demo_on(spec: &ConfigSpec, data: &Path) -> DocumentMut {
    let text = std::fs::read_to_string(repo("config/sipacd.toml")).unwrap();
    let mut doc: DocumentMut = text.parse().unwrap();
    let p = spec.sip_port;
    let s = &mut doc["server"];
    s["sip"] = value(Array::from_iter([
        format!("udp:127.0.0.1:{p}"),
        format!("tcp:127.0.0.1:{p}"),
    ]));
    s["admin"] = value(format!("127.0.0.1:{}", spec.admin_port));
    s["rtp_ports"] = value(format!("{}-{}", spec.rtp_base, spec.rtp_base + 99));
    s["data_dir"] = value(data.display().to_string());
    s["prompts"] = value(repo("prompts").display().to_string());
    s["drain_s"] = value(2);
    doc
}
