//! SQLite called in place, on the calling thread, for the statements of the hot paths (see
//! [`super::sql`] for why). Every other statement goes through sqlx as before.
//!
//! - Writes run on one connection of their own, and only while the caller holds sqlx's one
//!   writer connection ([`super::Db::writer`]) as a token: the two never write at once, and
//!   writers keep queueing in order for that token instead of in SQLite's busy handler.
//! - Reads run on a small set of connections kept here.
//! - A statement blocks the thread that runs it for as long as SQLite takes: microseconds for
//!   these point reads and writes, since WAL readers never wait and a commit does not `fsync`
//!   (`synchronous = NORMAL`); checkpoints run elsewhere ([`super::checkpoint_sqlite`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::Value;
use rusqlite::Connection;
use sqlx::pool::PoolConnection;
use sqlx::Any;
use tokio::sync::OwnedMutexGuard;

use super::exec::{Arg, Exec, InlineRow, Row};
use super::DbError;

/// Idle read connections kept for reuse.
const IDLE_READERS: usize = 16;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

pub struct Inline {
    path: PathBuf,
    writer: Arc<tokio::sync::Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
}

impl Inline {
    pub fn open(path: &Path, pragmas: &str) -> Result<Inline, DbError> {
        let writer = open(path, pragmas)?;
        Ok(Inline {
            path: path.to_path_buf(),
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// A read connection, returned to the set when the guard drops.
    pub fn reader(self: &Arc<Self>) -> Result<Reader, DbError> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&self.path, READER_PRAGMAS)?,
        };
        Ok(Reader {
            inline: self.clone(),
            conn: Some(conn),
        })
    }

    /// The write connection, for as long as `token` (sqlx's writer connection) is held.
    pub async fn writer(&self, token: PoolConnection<Any>) -> Writer {
        let conn = self.writer.clone().lock_owned().await;
        Writer {
            _token: token,
            conn,
            in_transaction: false,
        }
    }
}

impl Inline {
    /// Whether the database can take a write now: takes and releases the write lock on a
    /// connection of its own, waiting at most one second for it. Another process holding the
    /// lock (or a damaged file) fails here; the gateway's own transactions last milliseconds.
    pub fn probe_write(&self) -> Result<(), DbError> {
        let conn = open(&self.path, "PRAGMA busy_timeout = 1000;")?;
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(error)
    }

    /// SQLite's `PRAGMA quick_check`: `Ok(())` when the file is sound, else what it found.
    pub fn quick_check(&self) -> Result<Result<(), String>, DbError> {
        let conn = open(&self.path, READER_PRAGMAS)?;
        let mut statement = conn.prepare("PRAGMA quick_check(5)").map_err(error)?;
        let found: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(error)?
            .collect::<Result<_, _>>()
            .map_err(error)?;
        Ok(if found.len() == 1 && found[0] == "ok" {
            Ok(())
        } else {
            Err(found.join("; "))
        })
    }
}

const READER_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;";

fn open(path: &Path, pragmas: &str) -> Result<Connection, DbError> {
    let conn = Connection::open(path).map_err(error)?;
    conn.execute_batch(pragmas).map_err(error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

pub struct Reader {
    inline: Arc<Inline>,
    conn: Option<Connection>,
}

impl Reader {
    pub fn exec(&mut self) -> Result<Exec<'_>, DbError> {
        // `conn` is only taken when the reader drops.
        self.conn
            .as_mut()
            .map(Exec::Inline)
            .ok_or(sqlx::Error::PoolClosed.into())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self
                .inline
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

/// The write connection, held with sqlx's writer as a token. A transaction begun on it and
/// neither committed nor rolled back is rolled back when it drops.
pub struct Writer {
    _token: PoolConnection<Any>,
    conn: OwnedMutexGuard<Connection>,
    in_transaction: bool,
}

impl Writer {
    pub fn begin(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(error)?;
        self.in_transaction = true;
        Ok(())
    }

    pub fn commit(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT").map_err(error)?;
        self.in_transaction = false;
        Ok(())
    }

    pub fn rollback(&mut self) {
        if self.in_transaction {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back an in-place SQLite transaction failed");
            }
            self.in_transaction = false;
        }
    }

    pub fn exec(&mut self) -> Exec<'_> {
        Exec::Inline(&mut self.conn)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.rollback();
    }
}

fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    args: &[Arg],
) -> Result<rusqlite::CachedStatement<'c>, DbError> {
    let mut stmt = conn.prepare_cached(sql).map_err(error)?;
    for index in 1..=stmt.parameter_count() {
        let number = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| sqlx::Error::Protocol(format!("parameter {index} is not $n: {sql}")))?;
        let arg = number
            .checked_sub(1)
            .and_then(|i| args.get(i))
            .ok_or_else(|| sqlx::Error::Protocol(format!("no argument for ${number}: {sql}")))?;
        match arg {
            Arg::Int(v) => stmt.raw_bind_parameter(index, v),
            Arg::Text(v) => stmt.raw_bind_parameter(index, v),
        }
        .map_err(error)?;
    }
    Ok(stmt)
}

pub(super) fn execute(conn: &Connection, sql: &str, args: &[Arg]) -> Result<u64, DbError> {
    let mut stmt = prepare(conn, sql, args)?;
    Ok(stmt.raw_execute().map_err(error)? as u64)
}

pub(super) fn fetch(conn: &Connection, sql: &str, args: &[Arg]) -> Result<Vec<Row>, DbError> {
    let mut stmt = prepare(conn, sql, args)?;
    let names: Arc<[String]> = stmt.column_names().into_iter().map(String::from).collect();
    let width = names.len();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(error)? {
        let values = (0..width)
            .map(|i| row.get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        out.push(Row::Inline(InlineRow {
            names: names.clone(),
            values,
        }));
    }
    Ok(out)
}

/// SQLite's failures as sqlx reports them, so callers (unique violations, for one) see one
/// kind of error.
#[derive(Debug)]
struct InlineError {
    code: Option<i32>,
    message: String,
}

impl std::fmt::Display for InlineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InlineError {}

impl sqlx::error::DatabaseError for InlineError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.code.map(|c| c.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use sqlx::error::ErrorKind;
        match self.code {
            Some(2067 | 1555) => ErrorKind::UniqueViolation,
            Some(787) => ErrorKind::ForeignKeyViolation,
            Some(1299) => ErrorKind::NotNullViolation,
            Some(275) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

fn error(e: rusqlite::Error) -> DbError {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let message = message.unwrap_or_else(|| failure.to_string());
            sqlx::Error::Database(Box::new(InlineError {
                code: Some(failure.extended_code),
                message,
            }))
            .into()
        }
        other => sqlx::Error::Database(Box::new(InlineError {
            code: None,
            message: other.to_string(),
        }))
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sql;

    fn connection() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let conn = open(&dir.path().join("t.db"), "PRAGMA journal_mode = WAL;").expect("open");
        conn.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT, note TEXT)")
            .expect("schema");
        (dir, conn)
    }

    #[tokio::test]
    async fn placeholders_bind_by_number_and_rows_decode_by_name_and_position() {
        let (_dir, mut conn) = connection();
        let mut exec = Exec::Inline(&mut conn);
        // `$2` comes first and `$1` twice: binding by position would swap or miss them.
        let changed = sql::query("INSERT INTO t (n, id, note) VALUES ($2, $1, $1 || '-' || $3)")
            .bind("a")
            .bind(7_i64)
            .bind(None::<&str>)
            .execute(&mut exec)
            .await
            .expect("insert");
        assert_eq!(changed, 1);
        let row = sql::query("SELECT id, n, note FROM t WHERE id = $1")
            .bind("a")
            .fetch_one(&mut exec)
            .await
            .expect("row");
        assert_eq!(row.at::<String>(0).expect("id"), "a");
        assert_eq!(sql::Get::col::<i64>(&row, "n").expect("n"), 7);
        assert_eq!(
            sql::Get::col::<Option<String>>(&row, "note").expect("note"),
            None
        );
        assert!(row.at::<i64>(0).is_err(), "text decoded as an integer");
        assert!(sql::Get::col::<i64>(&row, "missing").is_err());
    }

    #[tokio::test]
    async fn a_unique_violation_reads_as_one_and_a_missing_argument_is_an_error() {
        let (_dir, mut conn) = connection();
        let mut exec = Exec::Inline(&mut conn);
        let insert = || {
            sql::query("INSERT INTO t (id, n) VALUES ($1, $2)")
                .bind("a")
                .bind(1_i64)
        };
        insert().execute(&mut exec).await.expect("first insert");
        let error = insert().execute(&mut exec).await.expect_err("duplicate");
        assert!(error.is_unique_violation(), "{error:?}");
        let outcome = sql::query("SELECT * FROM t WHERE id = $2")
            .bind("a")
            .fetch_all(&mut exec)
            .await;
        assert!(
            matches!(&outcome, Err(e) if e.to_string().contains("no argument for $2")),
            "a statement ran without its argument"
        );
    }
}
