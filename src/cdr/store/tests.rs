//! Files of the schema versions `calls.sqlite` had, frozen as SQL in
//! `tests/fixtures/calls_sqlite` (never built from today's [`MIGRATIONS`],
//! which could have been edited since), opened by today's store; and a
//! file of a newer version, refused.

use super::*;
use crate::cdr::record::{
    AgentLegRecord, Candidate, Disposition, HangupBy, MonitorMode, MonitorRecord, RoutingDecision,
};
use crate::cdr::CallbackRecord;

/// Each schema version `calls.sqlite` had on main, as such a file holds
/// it (there is no version 1: see the fixtures' README).
const SHIPPED: [(usize, &str); 7] = [
    (
        0,
        include_str!("../../../tests/fixtures/calls_sqlite/v0.sql"),
    ),
    (
        2,
        include_str!("../../../tests/fixtures/calls_sqlite/v2.sql"),
    ),
    (
        3,
        include_str!("../../../tests/fixtures/calls_sqlite/v3.sql"),
    ),
    (
        4,
        include_str!("../../../tests/fixtures/calls_sqlite/v4.sql"),
    ),
    (
        5,
        include_str!("../../../tests/fixtures/calls_sqlite/v5.sql"),
    ),
    (
        6,
        include_str!("../../../tests/fixtures/calls_sqlite/v6.sql"),
    ),
    (
        7,
        include_str!("../../../tests/fixtures/calls_sqlite/v7.sql"),
    ),
];

fn fixture(version: usize) -> &'static str {
    SHIPPED
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, sql)| *sql)
        .unwrap_or_else(|| panic!("no fixture of version {version}"))
}

/// A data directory whose `calls.sqlite` holds `sql` (a fixture, then the
/// rows that version's code would have written).
fn data_dir_of(sql: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
    for s in sql {
        conn.execute_batch(s).expect("fixture");
    }
    dir
}

fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version")
}

/// What the code depends on in a file: each table's columns (name, type,
/// NOT NULL, default, key) and each index's definition.
fn shape(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    let mut objects = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        .expect("sqlite_master");
    let objects: Vec<(String, String, String)> = objects
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    for (kind, name, sql) in objects {
        if kind == "table" {
            let mut cols = conn
                .prepare(&format!("PRAGMA table_info({name})"))
                .expect("table_info");
            let cols = cols
                .query_map([], |r| {
                    Ok(format!(
                        "{name}.{}: {} notnull={} default={:?} pk={}",
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .expect("columns")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("rows");
            out.extend(cols);
        } else {
            out.push(sql.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    out
}

#[test]
fn every_version_calls_sqlite_had_is_brought_to_the_shape_of_a_new_file() {
    // The latest version and the one before are always among them: adding
    // a migration means freezing a file of the version it replaces.
    let versions: Vec<usize> = SHIPPED.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions[versions.len() - 2..],
        [SCHEMA_VERSION - 1, SCHEMA_VERSION],
        "freeze tests/fixtures/calls_sqlite/v{SCHEMA_VERSION}.sql"
    );
    let new = tempfile::tempdir().expect("tempdir");
    let want = shape(&CdrStore::open_reader(new.path()).expect("new file").conn);
    assert!(want.iter().any(|c| c.starts_with("calls.callback:")));
    for (version, sql) in SHIPPED {
        let dir = data_dir_of(&[sql]);
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("open");
            assert_eq!(user_version(&conn), version as i64, "fixture v{version}");
        }
        let (store, _) = CdrStore::open(dir.path())
            .unwrap_or_else(|e| panic!("a file of version {version}: {e}"));
        assert_eq!(user_version(&store.conn), SCHEMA_VERSION as i64);
        assert_eq!(shape(&store.conn), want, "a file of version {version}");
    }
}

/// A finished call and one cut off by a crash, as the first release's
/// `write_batch` wrote them (its 15 columns, JSON as it serialised it).
const V0_ROWS: &str = r#"
INSERT OR REPLACE INTO calls (id, caller, number, ivr_path, variables, queue, arrived_ms,
    queued_ms, offered_ms, answered_ms, ended_ms, agent, disposition, hangup_by, routing)
VALUES ('old-1', '555', '1500', '["main","queue:support"]', '{"lang":"en"}', 'support',
        1000, 2000, 3000, 4000, 9000, '1001', 'answered', 'agent',
        '{"strategy":"longest_idle","candidates":[{"agent":"1001","score":120.0},{"agent":"1002","note":"paused"}],"chosen":"1001","reason":"longest idle"}'),
       ('old-2', '556', '1500', '[]', '{}', NULL, 10000, NULL, NULL, NULL, NULL, NULL,
        'in_progress', NULL, NULL);
"#;

#[test]
fn a_file_of_the_first_release_keeps_its_rows_and_takes_every_later_column() {
    let dir = data_dir_of(&[fixture(0), V0_ROWS]);
    let (mut store, interrupted) = CdrStore::open(dir.path()).expect("migrated");
    assert_eq!(interrupted, 1, "old-2 was in progress");
    assert_eq!(user_version(&store.conn), SCHEMA_VERSION as i64);

    let mut want = CallRecord::arrival("old-1", "555", "1500", 1000);
    want.ivr_path = vec!["main".into(), "queue:support".into()];
    want.variables.insert("lang".into(), "en".into());
    want.queue = Some("support".into());
    (want.queued_ms, want.offered_ms) = (Some(2000), Some(3000));
    (want.answered_ms, want.ended_ms) = (Some(4000), Some(9000));
    want.agent = Some("1001".into());
    want.disposition = Disposition::Answered;
    want.hangup_by = Some(HangupBy::Agent);
    want.routing = Some(RoutingDecision {
        strategy: "longest_idle".into(),
        candidates: vec![
            Candidate {
                agent: "1001".into(),
                score: Some(120.0),
                note: String::new(),
            },
            Candidate {
                agent: "1002".into(),
                score: None,
                note: "paused".into(),
            },
        ],
        chosen: Some("1001".into()),
        reason: "longest idle".into(),
        eligible: None,
        free: None,
    });
    // Every later column at its default: arrival() holds them.
    assert_eq!(store.get("old-1").expect("read"), Some(want));
    let cut = store.get("old-2").expect("read").expect("row kept");
    assert_eq!(cut.disposition, Disposition::Interrupted);

    let mut rec = CallRecord::arrival("new-1", "557", "1500", 20000);
    (rec.disposition, rec.ended_ms) = (Disposition::Abandoned, Some(25000));
    rec.hold_ms = 1500;
    rec.recording = Some("recordings/2027-01-15/new-1.wav".into());
    rec.monitors.push(MonitorRecord {
        supervisor: "2002".into(),
        started_ms: 2500,
        ended_ms: Some(3000),
        ended_by: Some("api".into()),
        modes: vec![MonitorMode {
            mode: "whisper".into(),
            since_ms: 2500,
        }],
    });
    rec.callback = Some(CallbackRecord {
        offered_ms: Some(21000),
        ..Default::default()
    });
    store
        .write_batch(std::slice::from_ref(&rec))
        .expect("write");
    drop(store);
    // Opening again runs no step twice.
    let (store, _) = CdrStore::open(dir.path()).expect("reopen");
    assert_eq!(store.get("new-1").expect("read"), Some(rec));
}

/// What the version-6 code (the latest but one when this was written)
/// wrote: a finished call with every column it knew, one cut off by a
/// crash, and agents' sessions, one left open by the crash.
const V6_ROWS: &str = r#"
INSERT OR REPLACE INTO calls (id, caller, number, ivr_path, variables, queue, arrived_ms,
    queued_ms, offered_ms, answered_ms, ended_ms, agent, disposition, hangup_by, routing,
    closed_by, hold_ms, legs, recording, monitors, voicemail, csat)
VALUES ('v6-1', '555', '1500', '["main","queue:support"]', '{"lang":"en"}', 'sales',
        1000, 2000, 3000, 4000, 9000, '1001', 'answered', 'caller',
        '{"strategy":"longest_idle","candidates":[{"agent":"1001","score":120.0}],"chosen":"1001","reason":"longest idle","eligible":3,"free":1}',
        'ivr:main.hours', 2500,
        '[{"agent":"1001","queue":"support","answered_ms":4000,"ended_ms":6000,"transferred_to":"queue:sales"},{"agent":"","queue":null,"answered_ms":6500,"ended_ms":9000,"transferred_to":null,"trunk":"gw","number":"0301234567"}]',
        'recordings/2026-12-03/v6-1.wav',
        '[{"supervisor":"2002","started_ms":4500,"ended_ms":5000,"ended_by":"api","modes":[{"mode":"listen","since_ms":4500},{"mode":"whisper","since_ms":4800}]}]',
        'voicemail/2026-12-03/v6-1.wav', 4),
       ('v6-2', '556', '1500', '[]', '{}', NULL, 10000, NULL, NULL, NULL, NULL, NULL,
        'in_progress', NULL, NULL, NULL, 0, '[]', NULL, '[]', NULL, NULL);
INSERT OR IGNORE INTO agent_sessions (agent, login_ms) VALUES ('1001', 500), ('1002', 600);
UPDATE agent_sessions SET logout_ms = 9500 WHERE agent = '1001';
"#;

#[test]
fn a_file_of_version_6_keeps_its_rows_and_takes_callbacks() {
    let dir = data_dir_of(&[fixture(6), V6_ROWS]);
    let (mut store, interrupted) = CdrStore::open(dir.path()).expect("migrated");
    assert_eq!(interrupted, 1, "v6-2 was in progress");
    assert_eq!(user_version(&store.conn), SCHEMA_VERSION as i64);

    let mut want = CallRecord::arrival("v6-1", "555", "1500", 1000);
    want.ivr_path = vec!["main".into(), "queue:support".into()];
    want.variables.insert("lang".into(), "en".into());
    want.queue = Some("sales".into());
    (want.queued_ms, want.offered_ms) = (Some(2000), Some(3000));
    (want.answered_ms, want.ended_ms) = (Some(4000), Some(9000));
    want.agent = Some("1001".into());
    want.disposition = Disposition::Answered;
    want.hangup_by = Some(HangupBy::Caller);
    want.routing = Some(RoutingDecision {
        strategy: "longest_idle".into(),
        candidates: vec![Candidate {
            agent: "1001".into(),
            score: Some(120.0),
            note: String::new(),
        }],
        chosen: Some("1001".into()),
        reason: "longest idle".into(),
        eligible: Some(3),
        free: Some(1),
    });
    want.closed_by = Some("ivr:main.hours".into());
    want.hold_ms = 2500;
    let mut first = AgentLegRecord::agent("1001", Some("support".into()), 4000);
    first.ended_ms = Some(6000);
    first.transferred_to = Some("queue:sales".into());
    let mut outside = AgentLegRecord::outside("gw", "0301234567", 6500);
    outside.ended_ms = Some(9000);
    want.legs = vec![first, outside];
    want.recording = Some("recordings/2026-12-03/v6-1.wav".into());
    want.monitors = vec![MonitorRecord {
        supervisor: "2002".into(),
        started_ms: 4500,
        ended_ms: Some(5000),
        ended_by: Some("api".into()),
        modes: vec![
            MonitorMode {
                mode: "listen".into(),
                since_ms: 4500,
            },
            MonitorMode {
                mode: "whisper".into(),
                since_ms: 4800,
            },
        ],
    }];
    want.voicemail = Some("voicemail/2026-12-03/v6-1.wav".into());
    want.csat = Some(4);
    // The one new column, callback, defaults to none.
    assert_eq!(want.callback, None);
    assert_eq!(store.get("v6-1").expect("read"), Some(want));
    assert_eq!(
        store.get("v6-2").expect("read").map(|r| r.disposition),
        Some(Disposition::Interrupted)
    );
    // The session the crash left open ends at the file's last call event.
    let sessions: Vec<_> = store
        .sessions(&CdrFilter::default())
        .expect("sessions")
        .into_iter()
        .map(|s| (s.agent, s.login_ms, s.logout_ms))
        .collect();
    assert_eq!(
        sessions,
        [
            ("1001".to_owned(), 500, Some(9500)),
            ("1002".to_owned(), 600, Some(10000))
        ]
    );

    let mut r = CallRecord::arrival("cb-call", "1001", "1500", 50000);
    r.disposition = Disposition::Callback;
    r.callback = Some(CallbackRecord {
        id: Some("cb-1".into()),
        number: Some("0301234567".into()),
        offered_ms: Some(50500),
        accepted_ms: Some(51000),
        ..Default::default()
    });
    store.write_batch(std::slice::from_ref(&r)).expect("write");
    assert_eq!(store.get("cb-call").expect("read"), Some(r));
}

/// A call the version-4 code wrote: no voicemail or csat columns yet.
const V4_ROWS: &str = r#"
INSERT OR REPLACE INTO calls (id, caller, number, ivr_path, variables, queue, arrived_ms,
    queued_ms, offered_ms, answered_ms, ended_ms, agent, disposition, hangup_by, routing,
    closed_by, hold_ms, legs, recording)
VALUES ('old-1', '555', '1500', '[]', '{}', NULL, 1000, NULL, NULL, NULL, 5000, NULL,
        'abandoned', 'caller', NULL, NULL, 0, '[]', NULL);
"#;

#[test]
fn a_message_and_a_score_are_kept_and_messages_are_listed_newest_first() {
    let dir = data_dir_of(&[fixture(4), V4_ROWS]);
    let (mut store, _) = CdrStore::open(dir.path()).expect("migrated");
    let mut a = CallRecord::arrival("m-1", "555", "1500", 2000);
    a.voicemail = Some("voicemail/2027-01-15/m-1.wav".into());
    let mut b = CallRecord::arrival("m-2", "556", "1500", 3000);
    b.voicemail = Some("voicemail/2027-01-15/m-2.wav".into());
    let mut c = CallRecord::arrival("s-1", "557", "1500", 4000);
    c.csat = Some(4);
    store.write_batch(&[a, b.clone(), c]).expect("write");
    let listed = store.voicemails(&CdrFilter::default(), 10).expect("list");
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["m-2", "m-1"]);
    assert_eq!(listed[0].voicemail, b.voicemail);
    assert_eq!(
        store
            .voicemails(&CdrFilter::default(), 1)
            .expect("list")
            .len(),
        1
    );
    let s = store.get("s-1").expect("read").expect("row");
    assert_eq!((s.csat, s.voicemail), (Some(4), None));
    let old = store.get("old-1").expect("read").expect("kept");
    assert_eq!((old.csat, old.voicemail), (None, None));
}

#[test]
fn a_file_a_newer_sipacd_wrote_is_refused_and_left_as_it_was() {
    let newer = SCHEMA_VERSION + 2;
    let dir = data_dir_of(&[
        fixture(SCHEMA_VERSION),
        // What the newer version added, and a call it was still taking.
        "ALTER TABLE calls ADD COLUMN from_the_future TEXT;",
        "INSERT INTO calls (id, caller, number, arrived_ms, disposition) \
         VALUES ('live', '555', '1500', 1000, 'in_progress');",
        &format!("PRAGMA user_version = {newer};"),
    ]);
    let path = dir.path().join(DB_FILE);
    let before = std::fs::read(&path).expect("read file");

    let err = CdrStore::open(dir.path())
        .err()
        .expect("a newer file is refused");
    match &err {
        CdrError::NewerSchema {
            path: p,
            found,
            known,
        } => {
            assert_eq!((p, *found, *known), (&path, newer as i64, SCHEMA_VERSION));
        }
        other => panic!("not NewerSchema: {other}"),
    }
    let text = err.to_string();
    for part in [
        path.display().to_string(),
        format!("schema version {newer}"),
        format!("knows up to {SCHEMA_VERSION}"),
    ] {
        assert!(text.contains(&part), "{text:?} names {part:?}");
    }
    assert!(matches!(
        CdrStore::open_reader(dir.path()).err(),
        Some(CdrError::NewerSchema { .. })
    ));

    // Nothing was written: not the in-progress row, not the version, not
    // the journal mode.
    let after = std::fs::read(&path).expect("read file");
    assert!(after == before, "the refused file was written to");
    assert!(!dir.path().join(format!("{DB_FILE}-wal")).exists());
    let conn = Connection::open(&path).expect("open");
    assert_eq!(user_version(&conn), newer as i64);
}
