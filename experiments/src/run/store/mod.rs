//! The experiment store: one SQLite file, `cliplab.sqlite3`, in the CLIP Lab home folder.
//!
//! - Schema changes are numbered SQL files in `experiments/migrations/`, embedded in the binary and tracked with
//!   `PRAGMA user_version`; each is applied in its own transaction.
//! - Every connection runs in WAL mode with foreign keys on, a 5 s busy timeout and `synchronous=NORMAL`, so the
//!   desktop app and the CLI can use the same store at once (readers never wait; writers queue).
//! - Every write that touches more than one row is one (`IMMEDIATE`) transaction: a process killed with `kill -9`
//!   leaves either all of it or none of it.
//! - Runs record the process that owns them (pid, host, process start marker). When a store is opened, runs that
//!   are still `queued`/`running` but whose process is gone are marked `interrupted`, keeping what they recorded.
//! - Datasets are immutable once imported (triggers refuse updates). Model weights are never stored here: runs
//!   keep only the path of their checkpoint folder.

mod archive;
mod datasets;
mod delete;
mod owner;
mod queue;
mod recorder;
mod remote;
mod runs;
mod sweeps;
mod system;
mod tags;
#[cfg(test)]
mod tests;
mod types;

pub use archive::{RunFolder, SETTING_TRACKING_URI};
pub use owner::LOCKS_DIR;
pub use delete::Deleted;
pub use queue::QueuedRun;
pub use recorder::{RunRecorder, STORE_PATIENCE};
pub use sweeps::{NewRun, SweepInfo};
pub use system::RunSystem;
pub use tags::{Labelled, RunLabels};
pub use remote::{host_name, PulledFrom, PulledRun, RemotePush, RunLifecycle};
pub use types::*;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{Error, Result};

/// File name of the database inside the CLIP Lab home folder.
pub const DB_FILE: &str = "cliplab.sqlite3";

/// How long a connection waits for another process's write to finish before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema migrations, in order: `(file name, SQL)`. Migration `i` (0-based) brings the schema from
/// `user_version` `i` to `i + 1`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init.sql", include_str!("../../../migrations/0001_init.sql")),
    ("0002_sweeps_queue_tags.sql", include_str!("../../../migrations/0002_sweeps_queue_tags.sql")),
    ("0003_mlflow.sql", include_str!("../../../migrations/0003_mlflow.sql")),
    ("0004_archive_settings.sql", include_str!("../../../migrations/0004_archive_settings.sql")),
    ("0005_run_system.sql", include_str!("../../../migrations/0005_run_system.sql")),
];

/// The schema version this build writes (`PRAGMA user_version` after migrating).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The experiment store. Owns one SQLite connection; open one per thread or process.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Runs this handle marked `interrupted` (when it was opened, or later by [`Store::recover_interrupted`]).
    recovered: Vec<i64>,
    /// Whether opening created the database file (a new, empty store).
    created: bool,
    /// How long a write waits for another process's write lock (SQLite's busy handler: retries with growing
    /// sleeps up to 100 ms each).
    busy_timeout: Duration,
}

impl Store {
    /// Opens (creating if needed) the store in `home`: creates the folder and the database, applies pending
    /// migrations and marks runs whose process is gone as `interrupted` (their ids: [`Store::recovered_runs`]).
    pub fn open(home: &Path) -> Result<Store> {
        std::fs::create_dir_all(home).map_err(|e| Error::io(home, e))?;
        let path = home.join(DB_FILE);
        let created = !path.exists();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).ctx(&path, "opening the database")?;
        let mut store = Store { conn, path, recovered: Vec::new(), created, busy_timeout: BUSY_TIMEOUT };
        store.configure()?;
        store.migrate()?;
        store.recover_interrupted()?;
        Ok(store)
    }

    /// The runs this handle marked `interrupted` because their process was gone: those [`Store::open`] found,
    /// then those later calls of [`Store::recover_interrupted`] found, in that order. The app shows them once
    /// ("runs were interrupted").
    pub fn recovered_runs(&self) -> &[i64] {
        &self.recovered
    }

    /// Whether opening created a new, empty store (no database file was there): the CLI says so, since a
    /// mistyped `--home` would otherwise look like a store that lost everything.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The CLIP Lab home folder: `$CLIPLAB_HOME` if set, else the platform's per-user data folder (from the
    /// `dirs` crate): `$XDG_DATA_HOME/cliplab` or `~/.local/share/cliplab` on Linux,
    /// `~/Library/Application Support/CLIP Lab` on macOS, `%APPDATA%\CLIP Lab` on Windows; `.cliplab` when the
    /// platform has none.
    pub fn default_home() -> PathBuf {
        if let Some(h) = std::env::var_os("CLIPLAB_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(h);
        }
        let name = if cfg!(any(windows, target_os = "macos")) { "CLIP Lab" } else { "cliplab" };
        dirs::data_dir().map_or_else(|| PathBuf::from(".cliplab"), |d| d.join(name))
    }

    /// How long this handle's writes wait for another process's write lock before failing with "database is
    /// locked": [`BUSY_TIMEOUT`] by default; a run waits [`STORE_PATIENCE`].
    pub fn set_busy_timeout(&mut self, patience: Duration) -> Result<()> {
        self.conn.busy_timeout(patience).ctx(&self.path, "setting the busy timeout")?;
        self.busy_timeout = patience;
        Ok(())
    }

    /// Per-connection settings.
    fn configure(&mut self) -> Result<()> {
        let path = self.path.clone();
        let c = &self.conn;
        // First, so that switching the journal mode waits for other processes too.
        c.busy_timeout(BUSY_TIMEOUT).ctx(&path, "setting the busy timeout")?;
        // Switching a new database to WAL needs a lock that SQLite does not wait for with the busy handler (when
        // another process is opening the same new file): retry until the busy timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mode: String = loop {
            match c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
                Ok(m) => break m,
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(sql_error(&path, "switching to WAL journal mode", e)),
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(bad_store(
                &path,
                format!("cannot use WAL journal mode (SQLite kept `{mode}`); is the CLIP Lab home on a network drive?"),
            ));
        }
        c.pragma_update(None, "foreign_keys", true).ctx(&path, "enabling foreign keys")?;
        c.pragma_update(None, "synchronous", "NORMAL").ctx(&path, "setting synchronous")?;
        Ok(())
    }

    /// Applies pending migrations, each in its own transaction (safe against another process migrating at the
    /// same time: the version is read inside the write transaction).
    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        // Up to date (the usual case): no need to wait for the write lock.
        if self.schema_version()? == SCHEMA_VERSION {
            return Ok(());
        }
        loop {
            let tx = self.write_tx()?;
            let version: i64 =
                tx.query_row("PRAGMA user_version", [], |r| r.get(0)).ctx(&path, "reading the schema version")?;
            if version < 0 {
                return Err(bad_store(
                    &path,
                    format!(
                        "the store has schema version {version}, which no CLIP Lab writes (another program changed \
                         `PRAGMA user_version`); it is left as it is"
                    ),
                ));
            }
            if version > SCHEMA_VERSION {
                return Err(bad_store(
                    &path,
                    format!(
                        "the store has schema version {version}, newer than this CLIP Lab knows ({SCHEMA_VERSION}); \
                         update CLIP Lab"
                    ),
                ));
            }
            if version == SCHEMA_VERSION {
                return Ok(());
            }
            let Some((name, sql)) = usize::try_from(version).ok().and_then(|v| MIGRATIONS.get(v)) else {
                return Err(bad_store(&path, format!("no migration from schema version {version}")));
            };
            tx.execute_batch(sql).ctx(&path, format!("applying migration {name}"))?;
            tx.pragma_update(None, "user_version", version + 1).ctx(&path, "setting the schema version")?;
            tx.commit().ctx(&path, format!("committing migration {name}"))?;
        }
    }

    /// The connection's settings, as SQLite reports them (for diagnostics and tests).
    pub fn pragmas(&self) -> Result<Pragmas> {
        let get = |name: &str| -> Result<rusqlite::types::Value> {
            self.conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).ctx(&self.path, format!("reading {name}"))
        };
        let text = |v: rusqlite::types::Value| match v {
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        };
        let num = |v: rusqlite::types::Value| match v {
            rusqlite::types::Value::Integer(i) => i,
            _ => -1,
        };
        Ok(Pragmas {
            journal_mode: text(get("journal_mode")?),
            foreign_keys: num(get("foreign_keys")?) == 1,
            busy_timeout_ms: num(get("busy_timeout")?),
            synchronous: num(get("synchronous")?),
            user_version: num(get("user_version")?),
        })
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).ctx(&self.path, "reading the schema version")
    }

    /// Every row of `sql` (no parameters), read with `row` and completed with `finish`; `doing` names the
    /// listing in errors.
    fn list<R, T>(
        &self,
        sql: &str,
        doing: &str,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
        finish: impl Fn(&Self, R) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn.prepare(sql).ctx(&self.path, doing)?;
        let rows = st.query_map([], row).ctx(&self.path, doing)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(finish(self, r.ctx(&self.path, doing)?)?);
        }
        Ok(out)
    }

    /// A write transaction that takes the write lock up front (waiting up to the busy timeout), so that it can
    /// never fail half-way because another process wrote in between.
    fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&self.path, "starting a write transaction")
    }

    /// A read transaction: several queries see one consistent snapshot.
    fn read_tx(&self) -> Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Deferred)
            .ctx(&self.path, "starting a read transaction")
    }
}

/// A connection's settings (see [`Store::pragmas`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pragmas {
    /// `wal`.
    pub journal_mode: String,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
    /// 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
    pub synchronous: i64,
    /// The schema version.
    pub user_version: i64,
}

/// A store that SQLite reads fine but this build cannot use, naming the database file.
pub(crate) fn bad_store(path: &Path, message: impl Display) -> Error {
    Error::BadStore { path: path.to_path_buf(), message: message.to_string() }
}

/// Converts a SQLite error into the crate's error, keeping it as the source and attaching the database path and
/// what was being done.
pub(crate) fn sql_error(path: &Path, doing: impl Display, source: rusqlite::Error) -> Error {
    // A syntax or schema error renders the whole statement (a migration's is a page long): keep SQLite's message.
    let source = match source {
        rusqlite::Error::SqlInputError { error, msg, .. } => rusqlite::Error::SqliteFailure(error, Some(msg)),
        other => other,
    };
    Error::Store { path: path.to_path_buf(), context: doing.to_string(), source }
}

/// Adds the database path and what was being done to SQLite errors.
pub(crate) trait Ctx<T> {
    fn ctx(self, path: &Path, doing: impl Display) -> Result<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, path: &Path, doing: impl Display) -> Result<T> {
        self.map_err(|e| sql_error(path, doing, e))
    }
}

impl<T> Ctx<T> for serde_json::Result<T> {
    fn ctx(self, path: &Path, doing: impl Display) -> Result<T> {
        self.map_err(|e| bad_store(path, format!("{doing}: {e}")))
    }
}

/// Errors with [`Error::NotFound`] when there is no `what` (`dataset`, `experiment`, `run`: the table is its
/// plural) with id `id`.
pub(crate) fn check_exists(conn: &Connection, path: &Path, what: &str, id: i64) -> Result<()> {
    let found: bool = conn
        .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {what}s WHERE id = ?1)"), [id], |r| r.get(0))
        .ctx(path, format!("looking up {what} {id}"))?;
    if found {
        Ok(())
    } else {
        Err(Error::not_found_id(what, id))
    }
}

/// Whether `e` says another connection holds a lock.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Whether `e` failed because another connection held the store's lock ("database is locked").
pub fn is_busy_error(e: &Error) -> bool {
    matches!(e, Error::Store { source, .. } if is_busy(source))
}

/// Whether `e` is a UNIQUE constraint violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// The current UTC time in SQL, as stored in every `*_at` column.
pub(crate) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// A path as an SQL value: text when it is UTF-8, else (Unix) its raw bytes as a BLOB.
pub(crate) struct SqlPath<'a>(pub &'a Path);

impl ToSql for SqlPath<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        if let Some(s) = self.0.to_str() {
            return Ok(ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())));
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            Ok(ToSqlOutput::Borrowed(ValueRef::Blob(self.0.as_os_str().as_bytes())))
        }
        #[cfg(not(unix))]
        {
            Ok(ToSqlOutput::Owned(rusqlite::types::Value::Text(self.0.to_string_lossy().into_owned())))
        }
    }
}

/// Reads a path stored by [`SqlPath`].
pub(crate) struct PathCol(pub PathBuf);

impl FromSql for PathCol {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Text(t) => Ok(PathCol(PathBuf::from(String::from_utf8_lossy(t).into_owned()))),
            ValueRef::Blob(b) => {
                #[cfg(unix)]
                {
                    use std::os::unix::ffi::OsStrExt;
                    Ok(PathCol(PathBuf::from(std::ffi::OsStr::from_bytes(b))))
                }
                #[cfg(not(unix))]
                {
                    Ok(PathCol(PathBuf::from(String::from_utf8_lossy(b).into_owned())))
                }
            }
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

/// A REAL column where NULL stands for NaN (SQLite stores NaN as NULL).
pub(crate) fn nan_if_null(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// Converts a count or index to its SQL integer.
pub(crate) fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Converts an SQL integer to a count or index (negative values, which the store never writes, become 0).
pub(crate) fn uint(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// Serialises f32s as a JSON array (NaN and infinities become `null`).
pub(crate) fn floats_json(v: &[f32]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Parses a JSON array written by [`floats_json`] (`null` reads back as NaN).
pub(crate) fn parse_floats(path: &Path, text: &str, what: &str) -> Result<Vec<f32>> {
    let v: Vec<Option<f32>> = serde_json::from_str(text).ctx(path, format!("reading {what}"))?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect())
}
