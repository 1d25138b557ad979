//! Unknown keys and type errors do not hide each other or the semantic
//! errors: one `check` reports them all, in file order, at line:col.

use super::*;
use std::path::Path;

fn errs(text: &str) -> Vec<(usize, usize, String)> {
    match parse_str(text, Path::new("/etc/sipacd/sipacd.toml")) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => {
            e.0.into_iter()
                .map(|e| (e.line, e.col, e.message))
                .collect()
        }
    }
}

/// `(line, col, key path)` of each error, asserting every one is an unknown key.
fn unknown(errors: &[(usize, usize, String)]) -> Vec<(usize, usize, &str)> {
    errors
        .iter()
        .map(|(l, c, m)| {
            let rest = m
                .strip_prefix("unknown key `")
                .unwrap_or_else(|| panic!("{m}"));
            let end = rest.find('`').unwrap();
            (*l, *c, &rest[..end])
        })
        .collect()
}

const SEVERAL: &str = r#"schedules = { office = { open = ["mon-fri 08:00-20:00"], tz = "UTC" } }

[server]
admin = "127.0.0.1:1"
colour = "red"

[queues.billing]
  strateg = "x"
skills = { billing = 3 }
relax = [{ after_s = 5, aftr = 1 }]

[[numbers]]
number = "1500"
to = "queue:billing"

[[numbers]]
number = "1501"
to = "queue:billing"
ring = 5

[agents.1001]
password = "x"
info = { a = 1 }

[ivrs.main]
start = "x"
"#;

#[test]
fn every_unknown_key_is_reported_at_its_key() {
    let e = errs(SEVERAL);
    assert_eq!(
        unknown(&e),
        [
            (1, 58, "schedules.office.tz"),
            (5, 1, "server.colour"),
            (8, 3, "queues.billing.strateg"),
            (10, 25, "queues.billing.relax[0].aftr"),
            (19, 1, "numbers[1].ring"),
            (23, 1, "agents.1001.info"),
            (25, 2, "ivrs"),
        ]
    );
    let strateg = &e[2].2;
    assert!(
        strateg.contains("expected one of `skills`, `strategy`,"),
        "{strateg}"
    );
    assert!(e[6].2.contains("`ivr`"), "{}", e[6].2);
    // Free-form tables (skills, menu options) take any key.
    assert!(parse_str(
        "[agents.a]\npassword = \"x\"\nskills = { anything = 2 }\n",
        Path::new("x.toml")
    )
    .is_ok());
}

const MIXED: &str = r#"[server]
timezone = "Mars/Olympus"
colour = "red"
max_calls = "many"

[queues.billing]
strateg = "x"
ring_timeout_s = "soon"

[[numbers]]
number = "1500"
to = "queue:nowhere"
"#;

#[test]
fn unknown_keys_type_errors_and_semantic_errors_together() {
    let e = errs(MIXED);
    let at: Vec<(usize, usize)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(
        at,
        [(2, 12), (3, 1), (4, 13), (7, 1), (8, 18), (12, 6)],
        "{e:#?}"
    );
    assert!(e[0].2.contains("unknown time zone `Mars/Olympus`"));
    assert!(e[1].2.starts_with("unknown key `server.colour`"));
    assert!(
        e[2].2.contains("invalid type: string \"many\""),
        "{}",
        e[2].2
    );
    assert!(e[3].2.starts_with("unknown key `queues.billing.strateg`"));
    assert!(
        e[4].2.contains("invalid type: string \"soon\""),
        "{}",
        e[4].2
    );
    assert!(e[5].2.contains("unknown queue `nowhere`"));
}

#[test]
fn type_error_in_a_dotted_key_still_reports_the_rest_found_so_far() {
    // Blanking `max_calls = ...` would leave `server.`: serde stops there,
    // without inventing a syntax error, but unknown keys are still listed.
    let e = errs("server.max_calls = \"x\"\ncolour = 1\n");
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!((e[0].0, e[0].2.contains("invalid type")), (1, true));
    assert_eq!((e[1].0, e[1].1), (2, 1));
    assert!(e[1].2.starts_with("unknown key `colour`"));
}

#[test]
fn syntax_error_is_alone() {
    let e = errs("colour = 1\n[server\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].0, 2);
}

#[test]
fn wrong_shape_table_and_nested_type_errors_do_not_hide_later_ones() {
    // `[numbers]` for `[[numbers]]`: the header is skipped with its keys.
    let text = "[numbers]\nnumber = \"1\"\n[queues.q]\nskills = { a = \"x\" }\nrelax = [{ skills = {} }]\nstrategy = \"fastest\"\n";
    let e = errs(text);
    let at: Vec<(usize, usize)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, [(1, 1), (4, 16), (5, 10), (6, 12)], "{e:#?}");
    assert!(e[0].2.contains("expected a sequence"), "{}", e[0].2);
    assert!(e[2].2.contains("missing field `after_s`"), "{}", e[2].2);
    // The compile step still ran on what was left.
    assert!(e[3].2.contains("fastest"), "{}", e[3].2);
}
