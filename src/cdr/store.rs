//! The SQLite file: schema, upserts in one transaction, range queries.

use super::record::{AgentSession, CallRecord, UnixMs};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::{Path, PathBuf};

/// File name inside `data_dir`.
pub const DB_FILE: &str = "calls.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calls (
    id          TEXT PRIMARY KEY,
    caller      TEXT NOT NULL,
    number      TEXT NOT NULL,
    ivr_path    TEXT NOT NULL DEFAULT '[]',
    variables   TEXT NOT NULL DEFAULT '{}',
    queue       TEXT,
    arrived_ms  INTEGER NOT NULL,
    queued_ms   INTEGER,
    offered_ms  INTEGER,
    answered_ms INTEGER,
    ended_ms    INTEGER,
    agent       TEXT,
    disposition TEXT NOT NULL,
    hangup_by   TEXT,
    routing     TEXT
);
CREATE INDEX IF NOT EXISTS calls_arrived ON calls(arrived_ms);
CREATE INDEX IF NOT EXISTS calls_in_progress ON calls(disposition)
    WHERE disposition = 'in_progress';
";

/// What each schema version (`PRAGMA user_version`) adds to the one
/// before: version 0 is [`SCHEMA`], the first release's. A file of any
/// older version is brought up to date when it is opened; its rows stay.
const MIGRATIONS: [&str; 7] = [
    // 1: after-hours demand and agents' logged-in time.
    "
ALTER TABLE calls ADD COLUMN closed_by TEXT;
CREATE TABLE agent_sessions (
    agent     TEXT NOT NULL,
    login_ms  INTEGER NOT NULL,
    logout_ms INTEGER,
    PRIMARY KEY (agent, login_ms)
);
CREATE INDEX agent_sessions_login ON agent_sessions(login_ms);
",
    // 2: time on hold from either leg (re-INVITE/UPDATE hold), in ms.
    "ALTER TABLE calls ADD COLUMN hold_ms INTEGER NOT NULL DEFAULT 0;",
    // 3: the agents' legs of a call, in order (blind transfers), as JSON.
    "ALTER TABLE calls ADD COLUMN legs TEXT NOT NULL DEFAULT '[]';",
    // 4: the call's recording, relative to data_dir.
    "ALTER TABLE calls ADD COLUMN recording TEXT;",
    // 5: supervisors' monitor legs (listen, whisper, barge), as JSON.
    "ALTER TABLE calls ADD COLUMN monitors TEXT NOT NULL DEFAULT '[]';",
    // 6: the message left in a voicemail node, and the post-call survey's
    // score (CSAT).
    "
ALTER TABLE calls ADD COLUMN voicemail TEXT;
ALTER TABLE calls ADD COLUMN csat INTEGER;
CREATE INDEX calls_voicemail ON calls(arrived_ms) WHERE voicemail IS NOT NULL;
",
    // 7: a queue's callback: offered, accepted, or the try of a placed
    // call and its outcome, as JSON.
    "ALTER TABLE calls ADD COLUMN callback TEXT;",
];

/// The schema version this build writes: a file of a higher one was
/// written by a newer sipacd and is refused (see [`CdrError::NewerSchema`]).
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

const COLUMNS: &str = "id, caller, number, ivr_path, variables, queue, arrived_ms, \
    queued_ms, offered_ms, answered_ms, ended_ms, agent, disposition, hangup_by, routing, \
    closed_by, hold_ms, legs, recording, monitors, voicemail, csat, callback";

/// A record's row, inserted or, for a call already written, updated in
/// place: `INSERT OR REPLACE` deleted and re-inserted the row, with its
/// index entries, for each of a call's records.
static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns: Vec<&str> = COLUMNS.split(',').map(str::trim).collect();
    let values: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| **c != "id")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO calls ({COLUMNS}) VALUES ({}) ON CONFLICT(id) DO UPDATE SET {}",
        values.join(", "),
        updates.join(", ")
    )
});

/// An agent's logged-in state changed (see [`CdrStore::write_sessions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub agent: String,
    /// `true`: a session starts (if none is open); `false`: it ends.
    pub logged_in: bool,
    pub at_ms: UnixMs,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CdrError {
    #[error("call records directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("call records database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("call record {id}: bad {column}: {message}")]
    Corrupt {
        id: String,
        column: &'static str,
        message: String,
    },
    #[error("call record writer has stopped")]
    WriterGone,
    /// The file was written by a newer sipacd (then downgraded): this
    /// build neither knows its columns nor may mark it as its own version.
    #[error(
        "{} has schema version {found}, this sipacd knows up to {known}: \
         refusing to open it (run the newer sipacd again, or move the file aside)",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: usize,
    },
}

/// Which records to read: arrival time in `[since, until)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrFilter {
    pub since_ms: Option<UnixMs>,
    pub until_ms: Option<UnixMs>,
}

/// One connection to `DATA_DIR/calls.sqlite`.
pub struct CdrStore {
    conn: Connection,
}

impl CdrStore {
    /// Opens (creating if needed) the database in `dir`, and marks every row
    /// still `in_progress` as `interrupted`: at start no call can be in
    /// progress, so those were cut off by a crash. Returns how many.
    ///
    /// Only the daemon's own start calls this; other readers use
    /// [`CdrStore::open_reader`].
    pub fn open(dir: &Path) -> Result<(CdrStore, usize), CdrError> {
        let store = Self::open_reader(dir)?;
        let n = store.conn.execute(
            "UPDATE calls SET disposition = 'interrupted' WHERE disposition = 'in_progress'",
            [],
        )?;
        // Sessions a dead process left open end at the last sign of life
        // the file holds: the latest call event (never before the login).
        store.conn.execute(
            "UPDATE agent_sessions SET logout_ms = max(login_ms, coalesce( \
                 (SELECT max(coalesce(ended_ms, answered_ms, offered_ms, queued_ms, arrived_ms)) \
                  FROM calls), login_ms)) \
             WHERE logout_ms IS NULL",
            [],
        )?;
        Ok((store, n))
    }

    /// Opens (creating if needed) without touching in-progress rows: for
    /// reports and the admin API while the daemon runs.
    ///
    /// A file of an older schema version is brought up to date; one of a
    /// newer version ([`SCHEMA_VERSION`]) is refused before anything is
    /// written to it.
    pub fn open_reader(dir: &Path) -> Result<CdrStore, CdrError> {
        std::fs::create_dir_all(dir).map_err(|source| CdrError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Before anything below writes to it.
        refuse_newer(&conn, &path)?;
        // WAL: readers never block the writer; NORMAL: fsync at checkpoints
        // only (see the module docs for what a power loss can cost).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        let mut store = CdrStore { conn };
        store.migrate(&path)?;
        Ok(store)
    }

    /// Applies the [`MIGRATIONS`] the file lacks, in one transaction taken
    /// for writing first, so the daemon and a `sipacd report` opening the
    /// same old file at once do not both apply them.
    fn migrate(&mut self, path: &Path) -> Result<(), CdrError> {
        if schema_version(&self.conn)? == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A newer sipacd may have upgraded the file since it was opened.
        refuse_newer(&tx, path)?;
        let from = schema_version(&tx)?;
        for m in MIGRATIONS.iter().skip(from) {
            tx.execute_batch(m)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION as i64)?;
        tx.commit()?;
        Ok(())
    }

    /// Applies agents' logins and logouts in one transaction: a login
    /// opens a session unless one is open, a logout closes the open one.
    pub fn write_sessions(&mut self, events: &[SessionEvent]) -> Result<(), CdrError> {
        let tx = self.conn.transaction()?;
        {
            let mut login = tx.prepare_cached(
                "INSERT OR IGNORE INTO agent_sessions (agent, login_ms) SELECT ?1, ?2 \
                 WHERE NOT EXISTS (SELECT 1 FROM agent_sessions \
                                   WHERE agent = ?1 AND logout_ms IS NULL)",
            )?;
            let mut logout = tx.prepare_cached(
                "UPDATE agent_sessions SET logout_ms = max(login_ms, ?2) \
                 WHERE agent = ?1 AND logout_ms IS NULL",
            )?;
            for e in events {
                if e.logged_in {
                    login.execute(params![e.agent, e.at_ms])?;
                } else {
                    logout.execute(params![e.agent, e.at_ms])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Ends every open session at `at_ms` (the daemon stops).
    pub fn close_sessions(&mut self, at_ms: UnixMs) -> Result<usize, CdrError> {
        Ok(self.conn.execute(
            "UPDATE agent_sessions SET logout_ms = max(login_ms, ?1) WHERE logout_ms IS NULL",
            params![at_ms],
        )?)
    }

    /// Sessions that overlap `[since, until)`, open ones included, by
    /// agent and login time.
    pub fn sessions(&self, filter: &CdrFilter) -> Result<Vec<AgentSession>, CdrError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT agent, login_ms, logout_ms FROM agent_sessions \
             WHERE login_ms < ?2 AND (logout_ms IS NULL OR logout_ms > ?1) \
             ORDER BY agent, login_ms",
        )?;
        let since = filter.since_ms.unwrap_or(i64::MIN);
        let until = filter.until_ms.unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![since, until], |r| {
            Ok(AgentSession {
                agent: r.get(0)?,
                login_ms: r.get(1)?,
                logout_ms: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Inserts or replaces each record (by id) in one transaction.
    pub fn write_batch(&mut self, records: &[CallRecord]) -> Result<(), CdrError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(&UPSERT)?;
            for r in records {
                let routing = match &r.routing {
                    Some(d) => Some(to_json(&r.id, "routing", d)?),
                    None => None,
                };
                let callback = match &r.callback {
                    Some(c) => Some(to_json(&r.id, "callback", c)?),
                    None => None,
                };
                stmt.execute(params![
                    r.id,
                    r.caller,
                    r.number,
                    to_json(&r.id, "ivr_path", &r.ivr_path)?,
                    to_json(&r.id, "variables", &r.variables)?,
                    r.queue,
                    r.arrived_ms,
                    r.queued_ms,
                    r.offered_ms,
                    r.answered_ms,
                    r.ended_ms,
                    r.agent,
                    r.disposition.as_str(),
                    r.hangup_by.map(|h| h.as_str()),
                    routing,
                    r.closed_by,
                    r.hold_ms,
                    to_json(&r.id, "legs", &r.legs)?,
                    r.recording,
                    to_json(&r.id, "monitors", &r.monitors)?,
                    r.voicemail,
                    r.csat,
                    callback,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records by arrival time, oldest first.
    pub fn query(&self, filter: &CdrFilter) -> Result<Vec<CallRecord>, CdrError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM calls WHERE arrived_ms >= ?1 AND arrived_ms < ?2 \
             ORDER BY arrived_ms, id"
        ))?;
        let since = filter.since_ms.unwrap_or(i64::MIN);
        let until = filter.until_ms.unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![since, until], raw_row)?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(raw?.decode()?);
        }
        Ok(out)
    }

    /// One record by call id.
    pub fn get(&self, id: &str) -> Result<Option<CallRecord>, CdrError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM calls WHERE id = ?1"))?;
        match stmt.query_row(params![id], raw_row).optional()? {
            Some(raw) => Ok(Some(raw.decode()?)),
            None => Ok(None),
        }
    }

    /// Calls that left a message, newest first, at most `limit`.
    pub fn voicemails(
        &self,
        filter: &CdrFilter,
        limit: usize,
    ) -> Result<Vec<CallRecord>, CdrError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM calls WHERE voicemail IS NOT NULL \
             AND arrived_ms >= ?1 AND arrived_ms < ?2 ORDER BY arrived_ms DESC, id LIMIT ?3"
        ))?;
        let since = filter.since_ms.unwrap_or(i64::MIN);
        let until = filter.until_ms.unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![since, until, limit], raw_row)?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(raw?.decode()?);
        }
        Ok(out)
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, CdrError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// The file's `PRAGMA user_version`; a negative one (not ours) counts as 0.
fn schema_version(conn: &Connection) -> rusqlite::Result<usize> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(0))
}

/// [`CdrError::NewerSchema`] when a newer sipacd wrote the file at `path`.
fn refuse_newer(conn: &Connection, path: &Path) -> Result<(), CdrError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if usize::try_from(found).is_ok_and(|v| v > SCHEMA_VERSION) {
        return Err(CdrError::NewerSchema {
            path: path.to_owned(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(id: &str, column: &'static str, v: &T) -> Result<String, CdrError> {
    serde_json::to_string(v).map_err(|e| CdrError::Corrupt {
        id: id.to_owned(),
        column,
        message: e.to_string(),
    })
}

/// Columns as stored; decoding JSON and enums happens outside rusqlite's
/// closure so errors keep the call id.
struct RawRow {
    id: String,
    caller: String,
    number: String,
    ivr_path: String,
    variables: String,
    queue: Option<String>,
    arrived_ms: i64,
    queued_ms: Option<i64>,
    offered_ms: Option<i64>,
    answered_ms: Option<i64>,
    ended_ms: Option<i64>,
    agent: Option<String>,
    disposition: String,
    hangup_by: Option<String>,
    routing: Option<String>,
    closed_by: Option<String>,
    hold_ms: i64,
    legs: String,
    recording: Option<String>,
    monitors: String,
    voicemail: Option<String>,
    csat: Option<u8>,
    callback: Option<String>,
}

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        caller: r.get(1)?,
        number: r.get(2)?,
        ivr_path: r.get(3)?,
        variables: r.get(4)?,
        queue: r.get(5)?,
        arrived_ms: r.get(6)?,
        queued_ms: r.get(7)?,
        offered_ms: r.get(8)?,
        answered_ms: r.get(9)?,
        ended_ms: r.get(10)?,
        agent: r.get(11)?,
        disposition: r.get(12)?,
        hangup_by: r.get(13)?,
        routing: r.get(14)?,
        closed_by: r.get(15)?,
        hold_ms: r.get(16)?,
        legs: r.get(17)?,
        recording: r.get(18)?,
        monitors: r.get(19)?,
        voicemail: r.get(20)?,
        csat: r.get(21)?,
        callback: r.get(22)?,
    })
}

impl RawRow {
    fn decode(self) -> Result<CallRecord, CdrError> {
        let id = self.id;
        let bad = |column: &'static str, message: String| CdrError::Corrupt {
            id: id.clone(),
            column,
            message,
        };
        let ivr_path =
            serde_json::from_str(&self.ivr_path).map_err(|e| bad("ivr_path", e.to_string()))?;
        let variables =
            serde_json::from_str(&self.variables).map_err(|e| bad("variables", e.to_string()))?;
        let legs = serde_json::from_str(&self.legs).map_err(|e| bad("legs", e.to_string()))?;
        let monitors =
            serde_json::from_str(&self.monitors).map_err(|e| bad("monitors", e.to_string()))?;
        let routing = match self.routing {
            Some(s) => Some(serde_json::from_str(&s).map_err(|e| bad("routing", e.to_string()))?),
            None => None,
        };
        let disposition = self
            .disposition
            .parse()
            .map_err(|e| bad("disposition", e))?;
        let hangup_by = match self.hangup_by {
            Some(s) => Some(s.parse().map_err(|e| bad("hangup_by", e))?),
            None => None,
        };
        let callback = match self.callback {
            Some(s) => Some(serde_json::from_str(&s).map_err(|e| bad("callback", e.to_string()))?),
            None => None,
        };
        Ok(CallRecord {
            id,
            caller: self.caller,
            number: self.number,
            ivr_path,
            variables,
            queue: self.queue,
            arrived_ms: self.arrived_ms,
            queued_ms: self.queued_ms,
            offered_ms: self.offered_ms,
            answered_ms: self.answered_ms,
            ended_ms: self.ended_ms,
            agent: self.agent,
            disposition,
            hangup_by,
            routing,
            closed_by: self.closed_by,
            hold_ms: self.hold_ms,
            legs,
            recording: self.recording,
            monitors,
            voicemail: self.voicemail,
            csat: self.csat,
            callback,
        })
    }
}

impl CdrStore {
    /// Reads the period `opts` names and computes the report over it: what
    /// `sipacd report` prints through [`crate::cdr::render_text`].
    pub fn report(&self, opts: &crate::cdr::ReportOptions) -> Result<crate::cdr::Report, CdrError> {
        let filter = CdrFilter {
            since_ms: opts.since_ms,
            until_ms: opts.until_ms,
        };
        let records = self.query(&filter)?;
        let mut sessions = self.sessions(&filter)?;
        // A session still open counts up to now.
        let now = super::record::now_ms();
        for s in &mut sessions {
            s.logout_ms.get_or_insert(now.max(s.login_ms));
        }
        Ok(crate::cdr::compute_report(&records, &sessions, opts))
    }
}

#[cfg(test)]
mod tests;
