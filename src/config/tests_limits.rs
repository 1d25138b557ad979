//! Values and files that used to pass `check` and then hurt the daemon:
//! durations that overflow a timer, empty files, pipes and huge prompts.

use super::wav::tests::wav_bytes;
use super::*;
use std::path::Path;

const HUGE: u64 = 9_223_372_036_854_775_807;

/// A config with every bounded key set to `v`, each on its own line.
fn every_key(v: u64) -> String {
    format!(
        "[server]\nprompts = \"p\"\ndrain_s = {v}\nmax_calls = {v}\nrtp_timeout_s = {v}\n\n\
         [queues.q]\nring_timeout_s = {v}\nwrapup_s = {v}\nretry_s = {v}\nmax_wait_s = {v}\n\
         max_waiting = {v}\nservice_level_s = {v}\nrelax = [{{ after_s = {v} }}]\n\n\
         [[numbers]]\nnumber = \"1\"\nto = \"ivr:i\"\nring_s = {v}\n\n\
         [ivr.i]\nstart = \"m\"\n\n[ivr.i.nodes.m]\ntype = \"menu\"\nprompt = \"menu.wav\"\n\
         timeout_s = {v}\nretries = {v}\noptions = {{ \"1\" = \"queue:q\" }}\n"
    )
}

fn dir_with_prompt() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("p")).unwrap();
    std::fs::write(dir.path().join("p/menu.wav"), wav_bytes(1, 1, 8000, 16, 8)).unwrap();
    dir
}

fn errors(r: Result<Config, ConfigErrors>) -> Vec<(usize, usize, String)> {
    match r {
        Ok(_) => panic!("expected errors"),
        Err(e) => {
            e.0.into_iter()
                .map(|e| (e.line, e.col, e.message))
                .collect()
        }
    }
}

#[test]
fn values_that_would_overflow_a_timer_are_errors_at_their_place() {
    let dir = dir_with_prompt();
    let path = dir.path().join("sipacd.toml");
    let text = every_key(HUGE);
    let e = errors(parse_str(&text, &path));
    let want: &[(usize, usize, &str)] = &[
        (
            3,
            11,
            "drain_s = 9223372036854775807 is out of range: 0..=86400 seconds",
        ),
        (
            4,
            13,
            "max_calls = 9223372036854775807 is out of range: 1..=1000000",
        ),
        (5, 17, "rtp_timeout_s"),
        (8, 18, "ring_timeout_s"),
        (9, 12, "wrapup_s"),
        (10, 11, "retry_s"),
        (11, 14, "max_wait_s"),
        (12, 15, "max_waiting"),
        (13, 19, "service_level_s"),
        (14, 22, "after_s"),
        (
            19,
            10,
            "ring_s = 9223372036854775807 is out of range: 0..=600 seconds",
        ),
        (27, 13, "timeout_s"),
        (28, 11, "retries"),
    ];
    for (line, col, needle) in want {
        assert!(
            e.iter()
                .any(|(l, c, m)| l == line && c == col && m.contains(needle)),
            "no {line}:{col} {needle:?} in {e:#?}"
        );
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
    // The same file with sensible values loads, so the errors above are
    // the values' own.
    parse_str(&every_key(7), &path).unwrap();
}

#[test]
fn the_bounds_themselves_are_accepted() {
    let dir = dir_with_prompt();
    let text = every_key(1)
        .replace("drain_s = 1", "drain_s = 86400")
        .replace("ring_s = 1", "ring_s = 600")
        .replace("max_calls = 1", "max_calls = 1000000");
    let c = parse_str(&text, &dir.path().join("sipacd.toml")).unwrap();
    assert_eq!(c.server.drain_s, 86_400);
    assert_eq!(c.numbers[0].ring_s, 600);
    let e = errors(parse_str(
        &text.replace("ring_s = 600", "ring_s = 601"),
        &dir.path().join("sipacd.toml"),
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].2.starts_with("ring_s = 601"), "{e:?}");
}

#[test]
fn an_empty_file_is_refused_by_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipacd.toml");
    std::fs::write(&path, "# nothing yet\n").unwrap();
    let e = errors(load(&path));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e.iter().all(|(l, c, _)| (*l, *c) == (1, 1)), "{e:?}");
    assert!(e[0].2.contains("no [server] table"), "{e:?}");
    assert!(e[1].2.contains("routes no [[numbers]]"), "{e:?}");
}

#[test]
fn a_file_without_numbers_is_refused_by_load() {
    let dir = dir_with_prompt();
    let path = dir.path().join("sipacd.toml");
    std::fs::write(&path, "[server]\nprompts = \"p\"\n\n[queues.q]\n").unwrap();
    let e = errors(load(&path));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].2.contains("routes no [[numbers]]"), "{e:?}");
    std::fs::write(&path, "[server]\nnumbers = []\n").unwrap();
    let e = errors(load(&path));
    assert!(
        e.iter().any(|e| e.2.contains("routes no [[numbers]]")),
        "{e:?}"
    );
    // Other errors are still reported beside it, in file order.
    std::fs::write(&path, "[server]\ndrain_s = 999999\n").unwrap();
    let e = errors(load(&path));
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!((e[0].0, e[1].0), (1, 2), "{e:?}");
    // With a number it loads.
    std::fs::write(&path, every_key(3)).unwrap();
    load(&path).unwrap();
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
}

#[test]
fn a_fifo_config_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipacd.toml");
    mkfifo(&path);
    let e = errors(load(&path));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].2
            .contains("cannot read config file: is a named pipe (FIFO), not a regular file"),
        "{e:?}"
    );
}

#[test]
fn fifo_and_oversized_prompts_are_refused() {
    let dir = dir_with_prompt();
    let path = dir.path().join("sipacd.toml");
    let text = every_key(3);
    std::fs::remove_file(dir.path().join("p/menu.wav")).unwrap();
    mkfifo(&dir.path().join("p/menu.wav"));
    let e = errors(parse_str(&text, &path));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].0, e[0].1), (26, 10), "{e:?}");
    assert!(e[0].2.contains("named pipe (FIFO)"), "{e:?}");

    // A valid header in front of a sparse gigabyte: the header alone
    // would pass, the size does not.
    std::fs::remove_file(dir.path().join("p/menu.wav")).unwrap();
    let big = dir.path().join("p/menu.wav");
    std::fs::write(&big, wav_bytes(1, 1, 8000, 16, 8)).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
    f.set_len(1 << 30).unwrap();
    let e = errors(parse_str(&text, &path));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].2
            .contains("is 1073741824 bytes, more than the limit of 16777216"),
        "{e:?}"
    );
}

#[test]
fn flood_keys_are_range_checked_and_allow_networks_replaces_loopback() {
    let dir = dir_with_prompt();
    let path = dir.path().join("sipacd.toml");
    let base = every_key(7);
    let c = parse_str(&base, &path).unwrap();
    let lo: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    assert!(c.server.allow_networks.iter().any(|n| n.contains(lo)));
    assert_eq!(c.server.pike, crate::flood::PikeConfig::default());
    assert_eq!(c.server.max_calls_in_setup_per_source, 50);
    let text = base.replace(
        "drain_s = 7\n",
        "drain_s = 7\npike_window_s = 0\npike_max_requests = 2000000\npike_block_s = 90000\n\
         max_calls_in_setup_per_source = 2000000\nallow_networks = [\"10.0.0.0/33\"]\n",
    );
    let e = errors(parse_str(&text, &path));
    for (line, needle) in [
        (4, "pike_window_s = 0 is out of range: 1..=3600 seconds"),
        (
            5,
            "pike_max_requests = 2000000 is out of range: 0..=1000000",
        ),
        (6, "pike_block_s = 90000 is out of range: 1..=86400 seconds"),
        (7, "max_calls_in_setup_per_source = 2000000 is out of range"),
        (
            8,
            "allow_networks `10.0.0.0/33` must be an address or a network",
        ),
    ] {
        assert!(
            e.iter().any(|(l, _, m)| *l == line && m.contains(needle)),
            "no {line}: {needle:?} in {e:#?}"
        );
    }
    assert_eq!(e.len(), 5, "{e:#?}");
    let text = base.replace("drain_s = 7\n", "drain_s = 7\nallow_networks = []\n");
    let c = parse_str(&text, &path).unwrap();
    assert!(c.server.allow_networks.is_empty(), "[] limits loopback too");
    // A reload applies every one of them and names each as the file does.
    let changed = base.replace(
        "drain_s = 7\n",
        "drain_s = 7\npike_window_s = 5\npike_max_requests = 30\npike_block_s = 600\n\
         max_calls_in_setup_per_source = 3\nallow_networks = [\"10.0.0.0/8\"]\n",
    );
    let d = diff(&c, &parse_str(&changed, &path).unwrap());
    assert_eq!(
        d,
        [
            "server.max_calls_in_setup_per_source changed",
            "server.allow_networks changed",
            "server.pike_window_s changed",
            "server.pike_max_requests changed",
            "server.pike_block_s changed",
        ]
    );
}

#[test]
fn media_encryption_is_read_per_agent_and_number_and_checked_at_its_place() {
    let dir = dir_with_prompt();
    let path = dir.path().join("sipacd.toml");
    let text = "[server]\nprompts = \"p\"\n\n\
                [agents.a]\npassword = \"x\"\nmedia_encryption = \"srtp\"\n\n\
                [queues.q]\n\n\
                [[numbers]]\nnumber = \"1\"\nto = \"queue:q\"\nmedia_encryption = \"optional\"\n\n\
                [[numbers]]\nnumber = \"2\"\nto = \"queue:q\"\n";
    let c = parse_str(text, &path).unwrap();
    assert_eq!(c.agents["a"].media_encryption, MediaEncryption::Srtp);
    assert_eq!(c.numbers[0].media_encryption, MediaEncryption::Optional);
    assert_eq!(c.numbers[1].media_encryption, MediaEncryption::None);
    let bad = text.replace("\"optional\"", "\"sdes\"");
    let e = errors(parse_str(&bad, &path));
    assert_eq!(
        e,
        vec![(
            13,
            20,
            "media_encryption `sdes` must be one of srtp, optional, none".to_string()
        )]
    );
    // A reload names the change.
    let plain = text.replace("media_encryption = \"srtp\"\n", "");
    let plain = plain.replace(
        "media_encryption = \"optional\"\n",
        "media_encryption = \"none\"\n",
    );
    let d = diff(&c, &parse_str(&plain, &path).unwrap());
    assert_eq!(
        d,
        [
            "agent a changed: media_encryption",
            "number 1 changed: media_encryption"
        ]
    );
}

#[test]
fn a_static_contact_on_tls_is_refused_at_its_place() {
    let dir = dir_with_prompt();
    let path = dir.path().join("sipacd.toml");
    let text = "[server]\nprompts = \"p\"\n\n\
                [agents.a]\ncontact = \"sip:a@127.0.0.1:5062;transport=TCP\"\n\n\
                [agents.b]\ncontact = \"sip:b@127.0.0.1:5063\"\n\n\
                [queues.q]\n\n\
                [[numbers]]\nnumber = \"1\"\nto = \"queue:q\"\n";
    let c = parse_str(text, &path).unwrap();
    assert!(c.agents["a"].contact.is_some() && c.agents["b"].contact.is_some());
    let bad = text.replace(";transport=TCP", ";transport=tls");
    let e = errors(parse_str(&bad, &path));
    assert_eq!(e.len(), 1, "{e:#?}");
    let (line, _, msg) = &e[0];
    assert_eq!(*line, 5);
    assert!(msg.contains("reached over udp or tcp, not `tls`"), "{msg}");
}
