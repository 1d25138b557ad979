//! Tests of loading and validation. Each error test asserts where the error
//! points (line:col) as well as what it says.

use super::wav::tests::wav_bytes;
use super::*;
use std::net::SocketAddr;
use std::path::Path;

/// A temp dir with `p/menu.wav` (PCM16), `p/ulaw.wav`, `p/stereo.wav`.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("menu.wav"), wav_bytes(1, 1, 8000, 16, 8)).unwrap();
    std::fs::write(p.join("ulaw.wav"), wav_bytes(7, 1, 8000, 8, 8)).unwrap();
    std::fs::write(p.join("stereo.wav"), wav_bytes(1, 2, 8000, 16, 8)).unwrap();
    dir
}

const BASE: &str = r#"[server]
prompts = "p"

[schedules.office]
open = ["mon-fri 08:00-20:00"]

[agents.1001]
password = "x"
skills = { billing = 5 }

[queues.billing]
skills = { billing = 3 }

[[numbers]]
number = "1500"
to = "ivr:main"

[ivr.main]
start = "menu"

[ivr.main.nodes.menu]
type = "menu"
prompt = "menu.wav"
options = { "1" = "q" }

[ivr.main.nodes.q]
type = "queue"
queue = "billing"
"#;

fn parse_in(dir: &Path, text: &str) -> Result<Config, ConfigErrors> {
    parse_str(text, &dir.join("sipacd.toml"))
}

/// Errors as `(line, col, message)`.
fn errs(text: &str) -> Vec<(usize, usize, String)> {
    let dir = setup();
    match parse_in(dir.path(), text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => {
            e.0.into_iter()
                .map(|e| (e.line, e.col, e.message))
                .collect()
        }
    }
}

/// Asserts an error at `line:col` whose message contains `needle`.
fn has(errors: &[(usize, usize, String)], line: usize, col: usize, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|(l, c, m)| *l == line && *c == col && m.contains(needle)),
        "no error {line}:{col} containing {needle:?} in {errors:#?}"
    );
}

#[test]
fn base_config_is_valid() {
    let dir = setup();
    let c = parse_in(dir.path(), BASE).unwrap();
    assert_eq!(c.numbers.len(), 1);
    assert_eq!(
        c.numbers[0].to,
        Target::Ivr {
            ivr: "main".into(),
            node: "menu".into()
        }
    );
    let Node::Menu {
        options,
        timeout_s,
        retries,
        on_fail,
        prompt,
    } = &c.ivrs["main"].nodes["menu"]
    else {
        panic!("menu expected");
    };
    assert_eq!(
        options[&'1'],
        Target::Ivr {
            ivr: "main".into(),
            node: "q".into()
        }
    );
    assert_eq!((*timeout_s, *retries), (5, 2));
    assert_eq!(*on_fail, Target::Hangup);
    assert_eq!(*prompt, dir.path().join("p").join("menu.wav"));
    assert_eq!(
        c.agents["1001"].credential,
        Some(Credential::Password("x".into()))
    );
    assert_eq!(c.agents["1001"].name, "1001");
    assert_eq!(c.source_path, dir.path().join("sipacd.toml"));
}

#[test]
fn empty_file_gets_documented_defaults() {
    let c = parse_str("", Path::new("/etc/sipacd/sipacd.toml")).unwrap();
    let s = &c.server;
    assert_eq!(s.sip.len(), 2);
    assert_eq!(s.sip[0].to_string(), "udp:0.0.0.0:5060");
    assert_eq!(s.sip[1].transport, crate::sip::Transport::Tcp);
    assert_eq!(s.advertise.to_string(), "127.0.0.1");
    assert_eq!(s.domain, "127.0.0.1");
    assert_eq!(s.rtp_ports, 10000..=20000);
    assert_eq!(s.admin, "127.0.0.1:8088".parse::<SocketAddr>().unwrap());
    assert_eq!(s.admin_token, None);
    assert_eq!(s.digest_algorithms, vec![DigestAlgorithm::Md5]);
    assert_eq!(s.data_dir, Path::new("/etc/sipacd/data"));
    assert_eq!(s.prompts, Path::new("/etc/sipacd/prompts"));
    assert_eq!(s.timezone, chrono_tz::UTC);
    assert_eq!((s.drain_s, s.max_calls, s.rtp_timeout_s), (30, 5000, 60));
    assert_eq!(s.queue_log, None);
    // A bare file name resolves against the working directory.
    let c = parse_str("", Path::new("sipacd.toml")).unwrap();
    assert_eq!(c.server.data_dir, Path::new("./data"));
}

#[test]
fn demo_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sipacd.toml");
    let c = match load(&path) {
        Ok(c) => c,
        Err(e) => panic!("demo config rejected:\n{e}"),
    };
    assert_eq!(c.server.sip.len(), 2);
    assert_eq!(c.server.admin.port(), 8088);
    assert!(c.server.prompts.join("moh.wav").exists());
    assert!(c.server.data_dir.ends_with("config/../data"));
    assert!(c.queues.len() >= 3);
    assert_eq!(c.agents.len(), 4);
    let zones: std::collections::BTreeSet<_> =
        c.agents.values().map(|a| a.timezone.name()).collect();
    assert!(zones.len() >= 3);
    let to: Vec<_> = c
        .numbers
        .iter()
        .map(|n| (n.number.as_str(), n.to.to_string()))
        .collect();
    assert_eq!(
        to,
        [
            ("1500", "ivr:main.hours".to_string()),
            ("1501", "queue:support".to_string())
        ]
    );
    assert_eq!(
        c.queues["billing"].closed,
        Some(Target::Ivr {
            ivr: "main".into(),
            node: "after_hours".into()
        })
    );
}

#[test]
fn broken_file_reports_path_line_col() {
    let e = parse_str(
        "[server]\nadmin = \"127.0.0.1:8088\"\nsip = [\n",
        Path::new("conf/x.toml"),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1);
    let shown = e.to_string();
    assert!(shown.starts_with("conf/x.toml:"), "{shown}");
    let e = &e.0[0];
    assert_eq!(e.line, 4);
    assert_eq!(
        shown,
        format!("conf/x.toml:{}:{}: {}", e.line, e.col, e.message)
    );
}

#[test]
fn unknown_keys_are_errors() {
    let e = errs("[server]\nadmin = \"127.0.0.1:1\"\nsipp = []\n");
    assert_eq!(e.len(), 1);
    has(&e, 3, 1, "sipp");
    let e = errs("[queues.q]\nstrategy = \"random\"\n  ring_timeout = 3\n");
    has(&e, 3, 3, "ring_timeout");
    let e = errs("[ivrs.main]\nstart = \"x\"\n");
    has(&e, 1, 2, "ivrs");
}

#[test]
fn load_missing_file_is_an_error() {
    let e = load(Path::new("/nonexistent/sipacd.toml")).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/sipacd.toml:1:1: cannot read"));
}

const MANY: &str = r##"[server]
sip = ["udp:127.0.0.1:5060", "sctp:1.2.3.4:5060", "udp:127.0.0.1"]
advertise = "localhost"
rtp_ports = "3000-2000"
admin = "8088"
digest_algorithms = ["MD5", "SHA1"]
timezone = "Europe/Berln"
prompts = "p"
max_calls = 0

[schedules.office]
timezone = "Mars/Olympus"
open = ["mon-fry 08:00-20:00", "sat 9:00-13:00", "sun-tue 22:00-06:00"]
closed_dates = ["2026-12-25", "2026-13-01", "25.12.2026"]

[agents.1001]
password = "x"
ha1 = "abc"
skills = { billing = 11, english = 0, support = 10 }
shift = ["mon 25:00-26:00"]

[agents.1002]
skills = { support = 3 }
contact = "http://example.com"

[agents.1003]
ha1 = "0123456789abcdefABCDEF0123456789"
timezone = "America/New_York"

[queues.billing]
skills = { billing = 5 }
strategy = "fastest"
schedule = "offfice"
closed = "ivr:nope"
overflow = "general"
ring_timeout_s = 0
music = "missing.wav"
relax = [{ after_s = 60, skills = { billing = 7, english = 1 } }]

[[numbers]]
number = "1500"
to = "ivr:main"

[[numbers]]
number = "1500"
to = "queue:sales"

[[numbers]]
number = "1502"
to = "hangup"

[ivr.main]
start = "hourz"

[ivr.main.nodes.menu]
type = "menu"
prompt = "stereo.wav"
options = { "1" = "q", "12" = "q", "x" = "ivr:main.nowhere", "*" = "queue:billing" }
next = "q"

[ivr.main.nodes.q]
type = "queue"
queue = "billingg"

[ivr.main.nodes.c]
type = "collect"
max_digits = 0
terminator = "*#"
variable = "account no"

[ivr.main.nodes.s]
type = "schedule"
schedule = "office"
open = "menu"

[ivr.main.nodes.w]
type = "wait"
"##;

#[test]
fn many_errors_reported_at_once_with_positions() {
    let e = errs(MANY);
    let expect: &[(usize, usize, &str)] = &[
        (
            2,
            30,
            "listener `sctp:1.2.3.4:5060` must be udp:IP:PORT, tcp:IP:PORT or tls:IP:PORT",
        ),
        (2, 51, "listener `udp:127.0.0.1`"),
        (3, 13, "advertise `localhost` must be an IP address"),
        (4, 13, "rtp_ports must be LOW-HIGH with LOW < HIGH"),
        (5, 9, "admin `8088` must be IP:PORT"),
        (6, 29, "digest algorithm `SHA1`"),
        (7, 12, "unknown time zone `Europe/Berln`"),
        (9, 13, "max_calls = 0 is out of range: 1..=1000000"),
        (12, 12, "unknown time zone `Mars/Olympus`"),
        (13, 9, "unknown day `fry`"),
        (13, 32, "time `9:00` must be HH:MM"),
        (14, 31, "date `2026-13-01` must be YYYY-MM-DD"),
        (14, 45, "date `25.12.2026`"),
        (18, 7, "either `password` or `ha1`, not both"),
        (19, 22, "skill `billing` level 11 is out of range 1..10"),
        (19, 36, "skill `english` level 0"),
        (20, 10, "time `25:00`"),
        (24, 11, "contact `http://example.com` must be a sip: URI"),
        (32, 12, "strategy `fastest` must be one of"),
        (33, 12, "unknown schedule `offfice`"),
        (34, 10, "unknown ivr `nope`"),
        (35, 12, "target `general` must be queue:NAME"),
        (
            36,
            18,
            "ring_timeout_s = 0 is out of range: 1..=3600 seconds",
        ),
        (37, 9, "prompt `missing.wav` not found"),
        (38, 47, "relax raises `billing` from 5 to 7"),
        (38, 50, "`english` is not one"),
        (45, 10, "number `1500` is already routed at line 41"),
        (46, 6, "unknown queue `sales`"),
        (50, 6, "target `hangup` must be ivr:NAME"),
        (53, 9, "ivr `main` has no node `hourz`"),
        (57, 10, "prompt `stereo.wav`"),
        (58, 24, "menu option `12` must be one DTMF key"),
        (58, 36, "menu option `x`"),
        (59, 8, "`next` is not a key of a `menu` node"),
        (63, 9, "unknown queue `billingg`"),
        (67, 14, "max_digits must be 1..64"),
        (68, 14, "terminator must be one DTMF key"),
        (69, 12, "variable `account no`"),
        (71, 17, "schedule node `s` needs `closed`"),
        (77, 8, "node type `wait`"),
    ];
    for (line, col, needle) in expect {
        has(&e, *line, *col, needle);
    }
    assert_eq!(e.len(), expect.len(), "{e:#?}");
    // In file order.
    assert!(e.windows(2).all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1)));
    // The prompt error names the file format problem.
    assert!(e
        .iter()
        .any(|(_, _, m)| m.contains("2 channel(s) at 8000 Hz")));
}

/// BASE with `extra` appended (extra starts at line 30).
fn base_plus(extra: &str) -> String {
    assert_eq!(BASE.lines().count(), 28);
    format!("{BASE}\n{extra}")
}

#[test]
fn agent_credentials() {
    let e = errs(&base_plus(
        "[agents.2001]\nname = \"Bob\"\n\n[agents.2002]\nha1 = \"zz\"\n",
    ));
    has(&e, 30, 9, "agent `2001` needs `password` or `ha1`");
    has(&e, 34, 7, "ha1 must be 32 hex digits");
    assert_eq!(e.len(), 2);
    let dir = setup();
    let c = parse_in(
        dir.path(),
        &base_plus(
            "[agents.2003]\ncontact = \"sip:2003@10.0.0.5:5062\"\n\n[agents.2004]\nha1 = \"0123456789ABCDEF0123456789abcdef\"\n",
        ),
    )
    .unwrap();
    assert_eq!(c.agents["2003"].credential, None);
    assert_eq!(
        c.agents["2003"].contact.as_deref(),
        Some("sip:2003@10.0.0.5:5062")
    );
    assert_eq!(
        c.agents["2004"].credential,
        Some(Credential::Ha1("0123456789abcdef0123456789abcdef".into()))
    );
}

#[test]
fn agent_shift_and_zone() {
    let dir = setup();
    let c = parse_in(
        dir.path(),
        &base_plus("[agents.2001]\npassword = \"p\"\ntimezone = \"Asia/Jakarta\"\nshift = [\"fri 22:00-06:00\"]\n"),
    )
    .unwrap();
    let a = &c.agents["2001"];
    assert_eq!(a.timezone, chrono_tz::Asia::Jakarta);
    use chrono::TimeZone;
    // Sat 2026-03-07 02:00 Jakarta = Fri 19:00 UTC.
    assert!(a.on_shift(chrono::Utc.with_ymd_and_hms(2026, 3, 6, 19, 0, 0).unwrap()));
    assert!(!a.on_shift(chrono::Utc.with_ymd_and_hms(2026, 3, 7, 19, 0, 0).unwrap()));
    // No shift = always.
    assert!(c.agents["1001"].on_shift(chrono::Utc.with_ymd_and_hms(2026, 3, 7, 19, 0, 0).unwrap()));
    let e = errs(&base_plus("[agents.2001]\npassword = \"p\"\nshift = []\n"));
    has(&e, 30, 9, "empty `shift`");
}

#[test]
fn rtp_port_ranges() {
    for (range, ok) in [
        ("20000-20001", true),
        ("20000-20000", false),
        ("80-1000", false),
        ("1-2-3", false),
        ("20000-70000", false),
    ] {
        let text = format!("[server]\nrtp_ports = \"{range}\"\n");
        let r = parse_str(&text, Path::new("x.toml"));
        assert_eq!(r.is_ok(), ok, "{range}: {r:?}");
        if let Err(e) = r {
            assert_eq!((e.0[0].line, e.0[0].col), (2, 13));
        }
    }
}

#[test]
fn ivr_targets_resolve_across_ivrs() {
    let dir = setup();
    let c = parse_in(
        dir.path(),
        &base_plus(
            "[ivr.second]\nstart = \"p\"\n\n[ivr.second.nodes.p]\ntype = \"play\"\nprompt = \"ulaw.wav\"\nnext = \"ivr:main\"\n\n\
             [ivr.second.nodes.x]\ntype = \"collect\"\nvariable = \"acct\"\nnext = \"ivr:main.q\"\n\n\
             [ivr.second.nodes.h]\ntype = \"hangup\"\n",
        ),
    )
    .unwrap();
    let second = &c.ivrs["second"];
    assert_eq!(
        second.nodes["p"],
        Node::Play {
            prompt: dir.path().join("p/ulaw.wav"),
            next: Target::Ivr {
                ivr: "main".into(),
                node: "menu".into()
            },
        }
    );
    let Node::Collect {
        prompt,
        max_digits,
        variable,
        timeout_s,
        terminator,
        next,
    } = &second.nodes["x"]
    else {
        panic!()
    };
    assert_eq!(
        (
            prompt,
            *max_digits,
            variable.as_str(),
            *timeout_s,
            *terminator
        ),
        (&None, 10, "acct", 5, Some('#'))
    );
    assert_eq!(
        *next,
        Target::Ivr {
            ivr: "main".into(),
            node: "q".into()
        }
    );
    assert_eq!(second.nodes["h"], Node::Hangup);
    // Unknown node via ivr:NAME.NODE, and a missing start/type.
    let e = errs(&base_plus(
        "[[numbers]]\nnumber = \"1600\"\nto = \"ivr:main.none\"\n\n[ivr.x]\n\n[ivr.x.nodes.a]\nprompt = \"menu.wav\"\n",
    ));
    has(&e, 32, 6, "ivr `main` has no node `none`");
    has(&e, 34, 6, "ivr `x` needs `start`");
    has(&e, 36, 14, "node `a` needs `type`");
}

#[test]
fn loop_through_schedule_nodes_is_an_error() {
    let text = base_plus(
        "[ivr.loop]\nstart = \"a\"\n\n[ivr.loop.nodes.a]\ntype = \"schedule\"\nschedule = \"office\"\nopen = \"b\"\nclosed = \"hangup\"\n\n\
         [ivr.loop.nodes.b]\ntype = \"schedule\"\nschedule = \"office\"\nopen = \"ivr:loop\"\nclosed = \"ivr:main\"\n",
    );
    let e = errs(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    has(
        &e,
        33,
        17,
        "loop forever without waiting for the caller: ivr:loop.a -> ivr:loop.b -> ivr:loop.a",
    );
    // Going through a play node breaks the loop.
    let ok = text.replace("open = \"ivr:loop\"", "open = \"p\"")
        + "\n[ivr.loop.nodes.p]\ntype = \"play\"\nprompt = \"menu.wav\"\nnext = \"a\"\n";
    let dir = setup();
    parse_in(dir.path(), &ok).unwrap();
}

#[test]
fn loop_through_closed_and_full_queues_is_an_error() {
    let text = base_plus(
        "[queues.a]\nschedule = \"office\"\nclosed = \"ivr:main.qa\"\n\n\
         [queues.b]\nmax_waiting = 5\noverflow = \"queue:c\"\n\n[queues.c]\nmax_waiting = 5\noverflow = \"queue:b\"\n\n\
         [ivr.main.nodes.qa]\ntype = \"queue\"\nqueue = \"a\"\n",
    );
    let e = errs(&text);
    assert_eq!(e.len(), 2, "{e:#?}");
    has(&e, 30, 9, "queue:a -> ivr:main.qa -> queue:a");
    has(&e, 34, 9, "queue:b -> queue:c -> queue:b");
    // Overflow after waiting only (no max_waiting) cannot spin.
    let dir = setup();
    parse_in(
        dir.path(),
        &text
            .replace(
                "max_waiting = 5\noverflow = \"queue:b\"",
                "max_wait_s = 5\noverflow = \"queue:b\"",
            )
            .replace("closed = \"ivr:main.qa\"", "closed = \"hangup\""),
    )
    .unwrap();
}

#[test]
fn queue_defaults_and_values() {
    let dir = setup();
    let c = parse_in(
        dir.path(),
        &base_plus(
            "[queues.full]\nskills = { billing = 6 }\nstrategy = \"fewest_calls\"\nschedule = \"office\"\nclosed = \"ivr:main.menu\"\n\
             ring_timeout_s = 20\nwrapup_s = 7\nretry_s = 2\nmax_wait_s = 100\nmax_waiting = 3\noverflow = \"hangup\"\nmusic = \"ulaw.wav\"\n\
             relax = [{ after_s = 90, skills = { billing = 2 } }, { after_s = 30, skills = { billing = 4 } }]\npriority = 5\ntransfer_priority = 8\nservice_level_s = 15\nservice_level_target = 90\n",
        ),
    )
    .unwrap();
    let d = &c.queues["billing"];
    assert_eq!(d.strategy, Strategy::LongestIdle);
    assert_eq!(
        (
            d.ring_timeout_s,
            d.wrapup_s,
            d.retry_s,
            d.max_wait_s,
            d.max_waiting
        ),
        (15, 0, 5, 0, 0)
    );
    assert_eq!(
        (
            d.announce_position_s,
            d.priority,
            d.service_level_s,
            d.service_level_target
        ),
        (0, 0, 20, 80)
    );
    assert_eq!(
        (&d.schedule, &d.closed, &d.overflow, &d.music),
        (&None, &None, &None, &None)
    );
    let q = &c.queues["full"];
    assert_eq!(q.strategy, Strategy::FewestCalls);
    assert_eq!(q.overflow, Some(Target::Hangup));
    assert_eq!(q.music, Some(dir.path().join("p/ulaw.wav")));
    assert_eq!(
        q.relax.iter().map(|r| r.after_s).collect::<Vec<_>>(),
        [30, 90]
    );
    assert_eq!(
        (
            q.ring_timeout_s,
            q.wrapup_s,
            q.retry_s,
            q.max_wait_s,
            q.max_waiting,
            q.priority
        ),
        (20, 7, 2, 100, 3, 5)
    );
    assert_eq!((q.service_level_s, q.service_level_target), (15, 90));
    assert_eq!((q.transfer_priority, d.transfer_priority), (8, 0));
}

#[test]
fn service_level_target_is_a_percentage() {
    let e = errs(&base_plus(
        "[queues.x]\nservice_level_target = 0\n[queues.y]\nservice_level_target = 101\n\
         [queues.z]\nservice_level_target = 100\n",
    ));
    let msgs: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(msgs.len(), 2, "{e:?}");
    assert!(msgs[0].contains("1 to 100 (got 0)"), "{e:?}");
    assert!(msgs[1].contains("1 to 100 (got 101)"), "{e:?}");
}

#[test]
fn service_level_target_defaults_to_80() {
    let dir = setup();
    let c = parse_in(
        dir.path(),
        &base_plus("[queues.x]\nservice_level_target = 90\n"),
    )
    .unwrap();
    assert_eq!(c.queues["x"].service_level_target, 90);
    assert_eq!(c.queues["billing"].service_level_target, 80, "the default");
    // The same target as a fraction.
    let c = parse_in(
        dir.path(),
        &base_plus("[queues.x]\nservice_level_target = 0.85\n"),
    )
    .unwrap();
    assert_eq!(c.queues["x"].service_level_target, 85);
    for bad in ["0.0", "-0.5", "100.5"] {
        let e = errs(&base_plus(&format!(
            "[queues.x]\nservice_level_target = {bad}\n"
        )));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(e[0].2.contains("1 to 100"), "{e:?}");
    }
    for bad in ["0", "101"] {
        let e = errs(&base_plus(&format!(
            "[queues.x]\nservice_level_target = {bad}\n"
        )));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(e[0].2.contains("1 to 100"), "{e:?}");
    }
}

#[test]
fn position_announcements_need_their_prompts() {
    let e = errs(&base_plus("[queues.x]\nannounce_position_s = 30\n"));
    assert_eq!(e.len(), POSITION_PROMPTS.len());
    has(&e, 30, 9, "you-are-number.wav");
}

#[test]
fn syntax_error_position() {
    let e = errs("[server]\nadmin = 127.0.0.1\n");
    assert_eq!(e.len(), 1);
    // toml points inside the bad value (where `127.0` stops being a float).
    assert_eq!(e[0].0, 2);
    assert!((9..=18).contains(&e[0].1), "{e:?}");
    // Wrong value type is reported by serde at the value.
    let e = errs("[server]\ndrain_s = \"30\"\n");
    has(&e, 2, 11, "expected u64");
}

#[test]
fn line_col_counts_chars() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("é = x\n", 3), (1, 3));
    assert_eq!(line_col("ab", 99), (1, 3));
}

#[test]
fn diff_names_changes() {
    let dir = setup();
    let old = parse_in(dir.path(), BASE).unwrap();
    assert!(diff(&old, &old).is_empty());
    let text = BASE
        .replace("skills = { billing = 3 }", "skills = { billing = 4 }")
        .replace("prompts = \"p\"", "prompts = \"p\"\ndrain_s = 5")
        + "\n[agents.1002]\npassword = \"y\"\n\n[[numbers]]\nnumber = \"1501\"\nto = \"queue:billing\"\n";
    let text = text.replace("[schedules.office]\nopen = [\"mon-fri 08:00-20:00\"]\n", "");
    let new = parse_in(dir.path(), &text).unwrap();
    assert_eq!(
        diff(&old, &new),
        [
            "server.drain_s changed",
            "schedule office removed",
            "agent 1002 added",
            "queue billing changed: skills",
            "number 1501 added",
        ]
    );
    assert_eq!(diff(&new, &old)[2], "agent 1002 removed");
    let coded = parse_in(
        dir.path(),
        &base_plus("[features]\npause = \"*45\"\npause_reasons = { \"1\" = \"lunch\" }\n"),
    )
    .unwrap();
    assert_eq!(
        diff(&old, &coded),
        ["features changed: pause, pause_reasons"]
    );
    // Keys read once at start say so; a changed route names old and new.
    let text = BASE
        .replace("prompts = \"p\"", "prompts = \"p\"\nqueue_log = \"ql\"")
        .replace("to = \"ivr:main\"", "to = \"queue:billing\"");
    let later = parse_in(dir.path(), &text).unwrap();
    let lines = diff(&old, &later);
    assert!(
        lines.contains(&"server.queue_log changed (takes effect at the next restart)".to_string()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("number ") && l.contains("to ivr:main.menu -> queue:billing")),
        "{lines:?}"
    );
}

#[test]
fn empty_lists_and_incomplete_numbers() {
    let e = errs("[server]\nsip = []\ndigest_algorithms = []\n\n[[numbers]]\nnumber = \"1\"\n");
    has(&e, 2, 7, "at least one listener");
    has(&e, 3, 21, "must not be empty");
    has(&e, 5, 1, "needs `number` and `to`");
    assert_eq!(e.len(), 3, "{e:#?}");
}

#[test]
fn queue_log_is_relative_to_data_dir_or_absolute() {
    let base = Path::new("/etc/sipacd/sipacd.toml");
    let c = parse_str("[server]\nqueue_log = \"queue_log\"\n", base).unwrap();
    assert_eq!(
        c.server.queue_log.as_deref(),
        Some(Path::new("/etc/sipacd/data/queue_log"))
    );
    let c = parse_str(
        "[server]\ndata_dir = \"d\"\nqueue_log = \"/var/log/asterisk/queue_log\"\n",
        base,
    )
    .unwrap();
    assert_eq!(
        c.server.queue_log.as_deref(),
        Some(Path::new("/var/log/asterisk/queue_log"))
    );
    let errs = parse_str("[server]\nqueue_log = \"\"\n", base).unwrap_err();
    let msg = errs.0[0].to_string();
    assert!(
        msg.contains(":2:") && msg.contains("queue_log must name a file"),
        "{msg}"
    );
    let errs = parse_str("[server]\nqueue_logs = \"x\"\n", base).unwrap_err();
    assert!(errs.0[0].to_string().contains("queue_logs"), "{errs:?}");
}

#[test]
fn feature_codes_are_parsed_and_checked() {
    let dir = setup();
    let c = parse_in(
        dir.path(),
        &base_plus(
            "[features]\npause = \"*45\"\nunpause = \"*46\"\npause_reasons = { \"1\" = \"lunch\", \"22\" = \"training\" }\n",
        ),
    )
    .unwrap();
    assert_eq!(c.features.pause.as_deref(), Some("*45"));
    assert_eq!(c.features.unpause.as_deref(), Some("*46"));
    assert_eq!(c.features.pause_reasons["22"], "training");
    let none = parse_in(dir.path(), BASE).unwrap();
    assert_eq!(none.features, Features::default());

    let e = errs(&base_plus(
        "[features]\npause = \"1500\"\nunpause = \"pause!\"\npause_reasons = { \"x\" = \"lunch\" }\n",
    ));
    has(
        &e,
        31,
        9,
        "features.pause `1500` is also a [[numbers]] number",
    );
    has(&e, 32, 11, "must be digits, `*` and `#` only");
    has(&e, 33, 19, "pause reason code `x` must be digits");
    let e = errs(&base_plus(
        "[features]\npause = \"*4\"\nunpause = \"*46\"\n",
    ));
    has(
        &e,
        32,
        11,
        "features.unpause `*46` starts with the pause code `*4`",
    );
    let c = parse_in(
        dir.path(),
        &base_plus("[features]\nlogin = \"*47\"\nlogout = \"*48\"\n"),
    )
    .unwrap();
    assert_eq!(
        c.features.action("*47"),
        Some(crate::config::FeatureAction::Login)
    );
    assert_eq!(
        c.features.action("*48"),
        Some(crate::config::FeatureAction::Logout)
    );
    let e = errs(&base_plus(
        "[features]\npause = \"*4\"\nlogin = \"*47\"\nlogout = \"*99\"\nunpause = \"*99\"\n",
    ));
    has(
        &e,
        32,
        9,
        "features.login `*47` starts with the pause code `*4`",
    );
    has(&e, 33, 10, "features.logout `*99` is also features.unpause");
    let e = errs(&base_plus("[features]\npaus = \"*45\"\n"));
    assert!(e.iter().any(|(_, _, m)| m.contains("unknown key")), "{e:?}");
}

#[test]
fn transfer_trunk_names_a_trunk_and_its_prefixes_are_dialable() {
    let dir = setup();
    let trunk = "[trunks.gw]\nuri = \"sip:10.0.0.1\"\n";
    let c = parse_in(
        dir.path(),
        &base_plus(&format!(
            "{trunk}[features]\ntransfer_trunk = \"gw\"\ntransfer_prefixes = [\"0049\", \"+49\"]\n"
        )),
    )
    .unwrap();
    let t = c.features.transfer.as_ref().expect("transfer");
    assert_eq!(t.trunk, "gw");
    assert_eq!(t.ring_s, crate::config::DEFAULT_TRANSFER_RING_S);
    assert!(t.allows("0049301234567") && t.allows("+4930"));
    assert!(!t.allows("0033123") && !t.allows("900"));
    let any = parse_in(
        dir.path(),
        &base_plus(&format!(
            "{trunk}[features]\ntransfer_trunk = \"gw\"\ntransfer_ring_s = 12\n"
        )),
    )
    .unwrap();
    // A reload swaps the rule in (or out) like the other feature keys.
    assert_eq!(
        crate::config::diff(&c, &any),
        ["features changed: transfer"]
    );
    let t = any.features.transfer.expect("transfer");
    assert!(t.allows("0033123"));
    assert_eq!(t.ring_s, 12);

    // Line 30 is `[features]` (the trunk takes lines 30-31 when present).
    let e = errs(&base_plus("[features]\ntransfer_trunk = \"nope\"\n"));
    has(
        &e,
        31,
        18,
        "features.transfer_trunk `nope` is no [trunks] entry",
    );
    let e = errs(&base_plus(&format!(
        "{trunk}[features]\ntransfer_trunk = \"gw\"\ntransfer_prefixes = [\"00 49\"]\ntransfer_ring_s = 0\n"
    )));
    has(&e, 34, 22, "`00 49` must be digits, `+`, `*` and `#` only");
    has(&e, 35, 19, "transfer_ring_s");
    let e = errs(&base_plus("[features]\ntransfer_ring_s = 5\n"));
    has(&e, 31, 19, "need features.transfer_trunk");
}

#[test]
fn record_is_none_all_or_a_percentage_and_its_prompt_is_checked() {
    let dir = setup();
    let c = parse_in(
        dir.path(),
        &base_plus(
            "[queues.a]\nrecord = \"all\"\nrecord_prompt = \"menu.wav\"\n\
             [queues.n]\nrecord = \"none\"\n[queues.p]\nrecord = 25\n",
        ),
    )
    .unwrap();
    assert_eq!(c.queues["a"].record, RecordPolicy::All);
    assert!(c.queues["a"]
        .record_prompt
        .as_ref()
        .is_some_and(|p| p.ends_with("menu.wav")));
    assert_eq!(c.queues["n"].record, RecordPolicy::None);
    assert_eq!(c.queues["p"].record, RecordPolicy::Percent(25));
    assert_eq!(c.queues["billing"].record, RecordPolicy::None, "default");
    assert_eq!(c.server.retention_days, 0, "kept by default");

    let e = errs(&base_plus(
        "[queues.x]\nrecord = \"some\"\n[queues.y]\nrecord = 101\n\
         [queues.z]\nrecord = \"all\"\nrecord_prompt = \"missing.wav\"\n\
         [queues.w]\nrecord_prompt = \"stereo.wav\"\n",
    ));
    let msgs: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(msgs.len(), 4, "{e:?}");
    assert!(msgs[0].contains("(got `some`)"), "{e:?}");
    assert!(msgs[1].contains("0 to 100 (got 101)"), "{e:?}");
    assert!(msgs.iter().any(|m| m.contains("missing.wav")), "{e:?}");
    assert!(msgs.iter().any(|m| m.contains("stereo.wav")), "{e:?}");
}

#[test]
fn retention_days_is_read_and_bounded() {
    let text = base_plus("").replacen("[server]\n", "[server]\nretention_days = 90\n", 1);
    let dir = setup();
    let c = parse_in(dir.path(), &text).unwrap();
    assert_eq!(c.server.retention_days, 90);
    let e = errs(&base_plus("").replacen("[server]\n", "[server]\nretention_days = 40000\n", 1));
    assert!(
        e.iter().any(|(_, _, m)| m.contains("retention_days")),
        "{e:?}"
    );
}

#[test]
fn a_queue_callback_names_its_trunk_when_to_offer_and_its_prompts() {
    let dir = setup();
    let trunk = "[trunks.gw]\nuri = \"sip:10.0.0.1\"\n";
    let prompts = "prompt = \"menu.wav\"\nnumber_prompt = \"menu.wav\"\n\
                   accepted_prompt = \"menu.wav\"\nagent_prompt = \"menu.wav\"\n";
    let c = parse_in(
        dir.path(),
        &base_plus(&format!(
            "{trunk}[queues.billing.callback]\ntrunk = \"gw\"\nafter_s = 60\n{prompts}"
        )),
    )
    .unwrap();
    let cb = c.queues["billing"].callback.as_ref().expect("callback");
    assert_eq!(cb.trunk, "gw");
    assert_eq!((cb.after_s, cb.above_wait_s), (Some(60), None));
    assert_eq!((cb.digit, cb.ring_s), ('1', 30));
    assert_eq!(cb.retry_s, [120, 600]);
    assert!(cb.agent_prompt.ends_with("menu.wav"));
    let other = parse_in(
        dir.path(),
        &base_plus(&format!(
            "{trunk}[queues.billing.callback]\ntrunk = \"gw\"\nabove_wait_s = 300\n\
             digit = \"*\"\nretry_s = [30]\nring_s = 20\n{prompts}"
        )),
    )
    .unwrap();
    let cb = other.queues["billing"].callback.as_ref().expect("callback");
    assert_eq!((cb.after_s, cb.above_wait_s), (None, Some(300)));
    assert_eq!(
        (cb.digit, cb.ring_s, cb.retry_s.clone()),
        ('*', 20, vec![30])
    );
    // A reload names the change.
    assert_eq!(
        crate::config::diff(&c, &other),
        ["queue billing changed: callback"]
    );

    // Line 30 is the first after BASE.
    let e = errs(&base_plus(&format!(
        "[queues.billing.callback]\ntrunk = \"nope\"\nafter_s = 1\n{prompts}"
    )));
    has(&e, 31, 9, "callback trunk `nope` is no [trunks] entry");
    let e = errs(&base_plus(&format!(
        "{trunk}[queues.billing.callback]\ntrunk = \"gw\"\ndigit = \"12\"\n{prompts}"
    )));
    has(&e, 34, 9, "callback digit is one key");
    assert!(
        e.iter()
            .any(|(_, _, m)| m.contains("needs `after_s` or `above_wait_s`")),
        "{e:#?}"
    );
    // The default prompts must be in the prompts directory.
    let e = errs(&base_plus(&format!(
        "{trunk}[queues.billing.callback]\ntrunk = \"gw\"\nafter_s = 1\n"
    )));
    assert!(
        e.iter()
            .any(|(_, _, m)| m.contains("offers callbacks but prompt")
                && m.contains("callback-offer.wav")),
        "{e:#?}"
    );
    let e = errs(&base_plus(
        "[queues.billing.callback]\nafter_s = 1\nbogus = 2\n",
    ));
    assert!(
        e.iter().any(|(_, _, m)| m.contains("needs `trunk`")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|(l, _, m)| *l == 32 && m.contains("bogus")),
        "{e:#?}"
    );
}
