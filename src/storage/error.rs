//! What a storage call fails with, [`DbError`], and what kind of failure it is: the database
//! saying "not now" ([`DbError::unavailability`]: a 503 with `Retry-After` above storage), a
//! transaction that lost a conflict with concurrent ones ([`Conflict`]: run it again), a
//! unique violation (a precise 4xx), or anything else (the gateway's bug). The driver's error
//! stays inside: nothing above `storage/` names sqlx, it asks the error these questions.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::error::DatabaseError;

/// What a storage call fails with: the database driver's error, opaque above `storage/`.
/// Its message and source chain are the driver's own, so logs keep the real cause.
#[derive(Debug)]
pub struct DbError(sqlx::Error);

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> DbError {
        DbError(error)
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DbError {
    // Transparent: the driver's error is this one, so its causes are this one's.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The kinds of [`DbError::unavailability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Connection refused, reset or timed out; the pool is exhausted; the server is shutting
    /// down, starting, out of resources or not accepting connections; disk I/O failed.
    Unreachable,
    /// Another process holds SQLite's write lock.
    Locked,
    /// SQLite reports a malformed database file.
    Corrupt,
}

impl Unavailable {
    pub fn reason(self) -> &'static str {
        match self {
            Unavailable::Unreachable => "database unreachable",
            Unavailable::Locked => "database locked by another process",
            Unavailable::Corrupt => "database disk image is malformed",
        }
    }
}

impl DbError {
    /// Why the database could not serve a statement, when the cause is the database being
    /// unreachable, busy with itself, locked or damaged rather than the statement: the
    /// request may be retried later (503), while any other database error is the gateway's
    /// bug (500).
    pub fn unavailability(&self) -> Option<Unavailable> {
        driver_unavailability(&self.0)
    }

    /// Whether this is a unique-constraint violation (PostgreSQL's 23505, SQLite's 2067 or
    /// 1555).
    pub fn is_unique_violation(&self) -> bool {
        match &self.0 {
            sqlx::Error::Database(db) => {
                db.code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                    || db.message().contains("UNIQUE constraint failed")
            }
            _ => false,
        }
    }

    /// The database's own report, when it made one.
    fn database(&self) -> Option<&dyn DatabaseError> {
        match &self.0 {
            sqlx::Error::Database(db) => Some(db.as_ref()),
            _ => None,
        }
    }
}

/// The unavailability behind one of the driver's errors: it could not reach the database
/// (I/O, TLS, an exhausted or closed pool, a crashed connection thread), or the database
/// itself said so.
fn driver_unavailability(error: &sqlx::Error) -> Option<Unavailable> {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Some(Unavailable::Unreachable),
        sqlx::Error::Database(db) => database_unavailability(db.as_ref()),
        _ => None,
    }
}

/// The unavailability a database's own report says, by its code. PostgreSQL reports a
/// SQLSTATE, always five characters; SQLite a numeric result code of at most four digits.
fn database_unavailability(db: &dyn DatabaseError) -> Option<Unavailable> {
    let code = db.code()?;
    if code.len() == 5 {
        return sqlstate_unavailability(&code, db.message());
    }
    // SQLite: the primary result code is the low byte of the extended one.
    match code.parse::<i64>().ok()? & 0xff {
        // SQLITE_BUSY, SQLITE_LOCKED.
        5 | 6 => Some(Unavailable::Locked),
        // SQLITE_CORRUPT, SQLITE_NOTADB.
        11 | 26 => {
            CORRUPTION_SEEN.store(true, Ordering::Relaxed);
            Some(Unavailable::Corrupt)
        }
        // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
        10 | 13 | 14 => Some(Unavailable::Unreachable),
        _ => None,
    }
}

/// Every way PostgreSQL says "not now", by SQLSTATE: class 08 (connection exception), class
/// 53 (insufficient resources: out of memory or disk, too many connections), 57P0x (the
/// operator intervened: administrator or crash shutdown, cannot connect now while starting or
/// recovering, the database dropped under the session, the session closed for idling), and 55000 when a connection is refused because
/// the database is not accepting connections (`ALTER DATABASE … ALLOW_CONNECTIONS false`,
/// during maintenance). 55000 otherwise means a statement was wrong for the object's state,
/// and a lost conflict (40001, 40P01) is no unavailability: see [`Conflict`].
fn sqlstate_unavailability(code: &str, message: &str) -> Option<Unavailable> {
    let refusing_connections =
        code == "55000" && message.contains("not currently accepting connections");
    (code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P0")
        || refusing_connections)
        .then_some(Unavailable::Unreachable)
}

/// Whether an error, or any cause in its chain, is the database being unavailable.
pub fn unavailability_in(error: &anyhow::Error) -> Option<Unavailable> {
    error.chain().find_map(|e| {
        if let Some(db) = e.downcast_ref::<DbError>() {
            return db.unavailability();
        }
        // Start-up and maintenance paths may carry the driver's error itself.
        if let Some(driver) = e.downcast_ref::<sqlx::Error>() {
            return driver_unavailability(driver);
        }
        // A transparent wrapper (`#[error(transparent)]`) hides the `DbError` itself and
        // shows what is under it: the database's own report, or the I/O error.
        if let Some(pg) = e.downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            return sqlstate_unavailability(pg.code(), pg.message());
        }
        None
    })
}

/// Set once any statement of this process found the database file malformed: readiness then
/// stays 503 until the file is repaired and the gateway restarted.
static CORRUPTION_SEEN: AtomicBool = AtomicBool::new(false);

/// Whether a statement of this process has found the database file malformed.
pub fn corruption_seen() -> bool {
    CORRUPTION_SEEN.load(Ordering::Relaxed)
}

/// An error that may be a transaction losing a conflict with concurrent ones: PostgreSQL's
/// serialization failure (SQLSTATE 40001) or deadlock (40P01). The database rolled the
/// transaction back, and running it again from the start normally succeeds.
pub trait Conflict {
    fn is_conflict(&self) -> bool;
}

impl Conflict for DbError {
    fn is_conflict(&self) -> bool {
        // SQLite reports numeric result codes, so these SQLSTATEs are PostgreSQL's only.
        self.database()
            .and_then(|db| db.code())
            .is_some_and(|c| c == "40001" || c == "40P01")
    }
}

impl Conflict for anyhow::Error {
    fn is_conflict(&self) -> bool {
        // A wrapper that is transparent (`#[error(transparent)]`) hides the `DbError` itself
        // from the chain and shows only PostgreSQL's error under it.
        self.chain().any(|e| {
            e.downcast_ref::<DbError>()
                .is_some_and(Conflict::is_conflict)
                || e.downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some_and(|pg| pg.code() == "40001" || pg.code() == "40P01")
        })
    }
}

/// A database error with a given SQLSTATE, as PostgreSQL would report it, for tests.
#[cfg(test)]
pub(crate) fn database_error(code: &'static str) -> DbError {
    database_error_saying(code, "reported by the test")
}

/// A database error with a given SQLSTATE and message, for tests.
#[cfg(test)]
pub(crate) fn database_error_saying(code: &'static str, message: &'static str) -> DbError {
    #[derive(Debug)]
    struct Reported(&'static str, &'static str);
    impl std::fmt::Display for Reported {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}: {}", self.0, self.1)
        }
    }
    impl std::error::Error for Reported {}
    impl DatabaseError for Reported {
        fn message(&self) -> &str {
            self.1
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
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
            sqlx::error::ErrorKind::Other
        }
    }
    DbError(sqlx::Error::Database(Box::new(Reported(code, message))))
}

/// The pool gave no connection in time, for tests.
#[cfg(test)]
pub(crate) fn pool_timed_out() -> DbError {
    DbError(sqlx::Error::PoolTimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable(error: &DbError) -> bool {
        error.unavailability() == Some(Unavailable::Unreachable)
    }

    #[test]
    fn a_connection_exception_is_unavailable() {
        // connection_exception, sqlclient_unable_to_establish_sqlconnection,
        // connection_does_not_exist, connection_failure, protocol_violation.
        for code in ["08000", "08001", "08003", "08006", "08P01"] {
            assert!(unreachable(&database_error(code)), "{code}");
        }
    }

    #[test]
    fn insufficient_resources_are_unavailable() {
        // insufficient_resources, disk_full, out_of_memory, too_many_connections,
        // configuration_limit_exceeded.
        for code in ["53000", "53100", "53200", "53300", "53400"] {
            assert!(unreachable(&database_error(code)), "{code}");
        }
    }

    #[test]
    fn a_server_shutting_down_or_starting_is_unavailable() {
        // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped,
        // idle_session_timeout.
        for code in ["57P01", "57P02", "57P03", "57P04", "57P05"] {
            assert!(unreachable(&database_error(code)), "{code}");
        }
    }

    #[test]
    fn a_database_not_accepting_connections_is_unavailable_and_other_55000s_are_not() {
        let refused = database_error_saying(
            "55000",
            "database \"gw\" is not currently accepting connections",
        );
        assert!(unreachable(&refused));
        // The same SQLSTATE for a statement wrong for an object's state is a bug, not "later".
        let misuse = database_error_saying("55000", "currval of sequence \"s\" is not yet defined");
        assert_eq!(misuse.unavailability(), None);
    }

    #[test]
    fn io_errors_and_an_exhausted_pool_are_unavailable() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        for error in [
            DbError::from(sqlx::Error::Io(reset)),
            pool_timed_out(),
            DbError::from(sqlx::Error::PoolClosed),
            DbError::from(sqlx::Error::WorkerCrashed),
        ] {
            assert!(unreachable(&error), "{error:?}");
        }
    }

    #[test]
    fn a_statement_the_database_refuses_is_not_unavailability() {
        // unique_violation, undefined_table, query_canceled (a statement timeout), the lost
        // conflicts (run again instead), and a row that is not there.
        for code in ["23505", "42P01", "57014", "40001", "40P01"] {
            assert_eq!(database_error(code).unavailability(), None, "{code}");
        }
        assert_eq!(
            DbError::from(sqlx::Error::RowNotFound).unavailability(),
            None
        );
    }

    #[test]
    fn an_unavailable_database_is_found_through_the_causes_that_wrap_it() {
        let wrapped = anyhow::Error::new(database_error("53300")).context("reading the balance");
        assert_eq!(unavailability_in(&wrapped), Some(Unavailable::Unreachable));
        let other = anyhow::Error::new(database_error("23505")).context("inserting");
        assert_eq!(unavailability_in(&other), None);
    }

    #[test]
    fn sqlite_result_codes_are_read_as_sqlite_s() {
        // SQLITE_BUSY_SNAPSHOT (517) is busy; SQLITE_IOERR_WRITE (778) is I/O; a constraint
        // (2067) is none of these.
        assert_eq!(
            database_error("517").unavailability(),
            Some(Unavailable::Locked)
        );
        assert!(unreachable(&database_error("778")));
        assert_eq!(database_error("2067").unavailability(), None);
        assert!(database_error("2067").is_unique_violation());
    }
}
