//! The service as installed: the systemd unit (accepted by
//! `systemd-analyze verify`, running as the `sipacd` system user with the
//! package's paths and its hardening), the install steps written at its top
//! (every file they copy exists), the package's default configuration (the
//! demo, with only its state and prompt directories moved) and the
//! cargo-deb metadata that ships them together. `tests/package/check.sh`
//! then builds, installs and runs the real package.
//!
//! Without `systemd-analyze` the verify test prints a note and skips, or
//! fails when `CI` is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use toml_edit::{value, DocumentMut, Item};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The unit's `Key=value` lines, in order (comments and sections left out).
fn unit_settings() -> Vec<(String, String)> {
    read("systemd/sipacd.service")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let present = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !common::require(present, "systemd-analyze (Debian package systemd)") {
        return;
    }
    // The unit as written, but naming the binary cargo built: verify checks
    // that every command it names is executable.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("sipacd.service");
    let text = read("systemd/sipacd.service");
    assert!(text.contains("/usr/bin/sipacd"));
    std::fs::write(
        &unit,
        text.replace("/usr/bin/sipacd", env!("CARGO_BIN_EXE_sipacd")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify:\n{stderr}");
    // Warnings about the unit itself (unknown keys, bad values) fail too.
    let about_unit: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("sipacd.service"))
        .collect();
    assert!(about_unit.is_empty(), "{about_unit:#?}");
}

#[test]
fn the_unit_runs_as_the_sipacd_user_with_the_package_paths_and_its_hardening() {
    let settings = unit_settings();
    let get = |k: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("User"), ["sipacd"]);
    assert_eq!(get("Group"), ["sipacd"]);
    assert!(
        get("DynamicUser").is_empty(),
        "a real user, not a dynamic one"
    );
    assert_eq!(
        get("ExecStart"),
        ["/usr/bin/sipacd --config /etc/sipacd/sipacd.toml"]
    );
    assert_eq!(
        get("ExecStartPre"),
        ["/usr/bin/sipacd check --config /etc/sipacd/sipacd.toml"]
    );
    assert_eq!(get("StateDirectory"), ["sipacd"]);
    assert_eq!(get("WorkingDirectory"), ["/var/lib/sipacd"]);
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert!(get(k).contains(&v), "{k}={v} missing: {:?}", get(k));
    }
}

/// Every repository file the unit's install steps copy exists (the old
/// steps copied a `config/prompts` that never was).
#[test]
fn the_install_steps_at_the_top_of_the_unit_copy_files_that_exist() {
    let text = read("systemd/sipacd.service");
    let steps: Vec<&str> = text
        .lines()
        .take_while(|l| l.starts_with('#') || l.is_empty())
        .filter_map(|l| l.strip_prefix("#   "))
        .filter(|l| l.starts_with("install "))
        .collect();
    assert!(steps.len() >= 4, "install steps: {steps:?}");
    let mut sources = 0;
    for step in &steps {
        for word in step.split_whitespace() {
            // A repository path: relative, with a directory.
            if word.starts_with('/') || !word.contains('/') {
                continue;
            }
            sources += 1;
            if word.starts_with("target/") {
                continue; // what `cargo build --release` makes
            }
            match word.strip_suffix("/*.wav") {
                Some(dir) => {
                    let wavs = std::fs::read_dir(repo(dir))
                        .unwrap_or_else(|e| panic!("{dir} in `{step}`: {e}"))
                        .filter(|e| {
                            e.as_ref()
                                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wav"))
                        })
                        .count();
                    assert!(wavs > 0, "no WAV in {dir} (`{step}`)");
                }
                None => assert!(repo(word).is_file(), "`{step}`: no file {word}"),
            }
        }
    }
    // The binary, the prompts, the config and the unit.
    assert!(sources >= 4, "{steps:?}");
}

/// `config/package/sipacd.toml` (installed as /etc/sipacd/sipacd.toml) is
/// the demo with only data_dir and prompts moved, and it passes `sipacd
/// check` once its prompts directory exists.
#[test]
fn the_packaged_config_is_the_demo_with_the_package_paths() {
    let mut demo: DocumentMut = read("config/sipacd.toml").parse().unwrap();
    let packaged: DocumentMut = read("config/package/sipacd.toml").parse().unwrap();
    assert_eq!(
        packaged["server"]["data_dir"].as_str(),
        Some("/var/lib/sipacd")
    );
    assert_eq!(
        packaged["server"]["prompts"].as_str(),
        Some("/usr/share/sipacd/prompts")
    );
    demo["server"]["data_dir"] = value("/var/lib/sipacd");
    demo["server"]["prompts"] = value("/usr/share/sipacd/prompts");
    // Compared as data: comments and layout may differ.
    let as_value = |d: &DocumentMut| -> toml::Value { toml::from_str(&d.to_string()).unwrap() };
    assert_eq!(
        as_value(&demo),
        as_value(&packaged),
        "config/package/sipacd.toml differs from config/sipacd.toml beyond data_dir and prompts"
    );

    // `sipacd check` on it, with the repository's prompts where the
    // package puts its own.
    let dir = tempfile::tempdir().unwrap();
    let mut doc = packaged.clone();
    doc["server"]["prompts"] = value(repo("prompts").display().to_string());
    doc["server"]["data_dir"] = value(dir.path().join("data").display().to_string());
    let conf = dir.path().join("sipacd.toml");
    std::fs::write(&conf, doc.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipacd"))
        .arg("check")
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "sipacd check: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cargo-deb metadata ships what the unit and the packaged config
/// name: the binary in /usr/bin, the config as a conffile in /etc/sipacd,
/// the prompts where the config looks, the unit; and its maintainer scripts
/// exist and are executable.
#[test]
fn the_deb_metadata_ships_what_the_unit_and_the_config_name() {
    let cargo: DocumentMut = read("Cargo.toml").parse().unwrap();
    let deb = &cargo["package"]["metadata"]["deb"];
    let assets: Vec<(String, String, String)> = deb["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("an asset is [source, dest, mode]");
            let s = |i: usize| a.get(i).and_then(|v| v.as_str()).unwrap_or("").to_string();
            (s(0), s(1), s(2))
        })
        .collect();
    let dest_of = |src: &str| -> Option<(&str, &str)> {
        assets
            .iter()
            .find(|(s, _, _)| s == src)
            .map(|(_, d, m)| (d.as_str(), m.as_str()))
    };
    assert_eq!(dest_of("target/release/sipacd"), Some(("usr/bin/", "755")));
    assert_eq!(
        dest_of("config/package/sipacd.toml"),
        Some(("etc/sipacd/sipacd.toml", "640"))
    );
    assert_eq!(
        dest_of("prompts/*.wav"),
        Some(("usr/share/sipacd/prompts/", "644"))
    );
    assert_eq!(
        dest_of("systemd/sipacd.service"),
        Some(("lib/systemd/system/sipacd.service", "644"))
    );
    let conf_files: Vec<_> = deb["conf-files"]
        .as_array()
        .expect("conf-files")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(conf_files, ["/etc/sipacd/sipacd.toml"]);
    // Every other source exists (target/ is built by cargo-deb).
    for (src, _, _) in &assets {
        if src.starts_with("target/") {
            continue;
        }
        match src.split_once("/*") {
            Some((dir, _)) => assert!(repo(dir).is_dir(), "asset {src}"),
            None => assert!(repo(src).is_file(), "asset {src}"),
        }
    }
    let scripts = deb["maintainer-scripts"]
        .as_str()
        .expect("maintainer-scripts");
    for name in ["postinst", "prerm", "postrm"] {
        use std::os::unix::fs::PermissionsExt;
        let p = repo(scripts).join(name);
        let mode = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{} is not executable", p.display());
    }
    assert!(
        matches!(cargo["profile"]["deb"]["inherits"], Item::Value(ref v) if v.as_str() == Some("release")),
        "[profile.deb] inherits release"
    );
}
