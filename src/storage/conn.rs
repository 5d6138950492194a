//! Where storage runs a statement. Above `storage/` there are two ways to reach the database,
//! and they are the same on both backends: a method on [`Db`] (one statement or a few, each
//! committed on its own) or a function taking a [`Tx`] from [`Db::begin`] (all or nothing).
//! Which engine runs the SQL is decided here and nowhere else:
//!
//! - On SQLite, writes and point reads run in place on the calling thread ([`super::inline`]):
//!   a statement costs microseconds there, against two context switches per statement on
//!   sqlx's connection thread (see [`super::sql`] for the figures).
//! - On SQLite, reads that may visit many rows (lists, reports, scans of the job queue) run on
//!   sqlx's pool ([`Db::scan`]), whose connections have threads of their own, so that a long
//!   read never blocks a request's thread.
//! - On PostgreSQL, everything runs through sqlx.
//!
//! Every storage function writes its SQL once, with [`super::sql::query`], and runs it on what
//! one of these gives it.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use sqlx::AnyPool;

use super::error::Conflict;
use super::exec::{Exec, On};
use super::{inline, Db, DbError};

/// How many times a transaction that lost a conflict with concurrent ones is run in all.
pub const CONFLICT_ATTEMPTS: u32 = 5;

/// A write transaction: in place on SQLite, where it queues for the one writer and takes the
/// write lock up front (`BEGIN IMMEDIATE`, so that a transaction that reads before it writes
/// never fails on a stale snapshot); sqlx's on PostgreSQL. Dropped without [`Tx::commit`], it
/// rolls back.
pub struct Tx(TxInner);

enum TxInner {
    Inline(inline::Writer),
    Sqlx(sqlx::Transaction<'static, sqlx::Any>),
}

impl Tx {
    pub(super) fn exec(&mut self) -> Exec<'_> {
        match &mut self.0 {
            TxInner::Inline(writer) => writer.exec(),
            TxInner::Sqlx(tx) => Exec::Sqlx(tx),
        }
    }

    /// Which database runs it: SQLite runs every transaction in place.
    pub(super) fn backend(&self) -> super::Backend {
        match &self.0 {
            TxInner::Inline(_) => super::Backend::Sqlite,
            TxInner::Sqlx(_) => super::Backend::Postgres,
        }
    }

    pub async fn commit(self) -> Result<(), DbError> {
        match self.0 {
            TxInner::Inline(mut writer) => writer.commit(),
            TxInner::Sqlx(tx) => Ok(tx.commit().await?),
        }
    }
}

/// A connection for statements outside a transaction, each committed on its own.
pub(super) enum Conn {
    Reader(inline::Reader),
    Writer(inline::Writer),
    Pool(AnyPool),
    /// A read-only transaction on the pool: one consistent snapshot for several reads.
    Snapshot(sqlx::Transaction<'static, sqlx::Any>),
}

impl Conn {
    pub(super) fn exec(&mut self) -> Result<Exec<'_>, DbError> {
        match self {
            Conn::Reader(reader) => reader.exec(),
            Conn::Writer(writer) => Ok(writer.exec()),
            Conn::Pool(pool) => Ok(Exec::Pool(pool)),
            Conn::Snapshot(tx) => Ok(Exec::Sqlx(tx)),
        }
    }
}

impl On for Tx {
    fn on(&mut self) -> Result<Exec<'_>, DbError> {
        Ok(self.exec())
    }
}

impl On for Conn {
    fn on(&mut self) -> Result<Exec<'_>, DbError> {
        self.exec()
    }
}

/// Runs `transaction` — one whole transaction, from [`Db::begin`] to its commit — again when it
/// loses a conflict with concurrent ones, after a short random wait, at most
/// [`CONFLICT_ATTEMPTS`] times in all. Any other outcome, and the last conflict, is returned
/// as it is. Every transaction that moves money runs through here, so that a deadlock or a
/// serialization failure costs its request a few milliseconds rather than an error.
pub async fn retry_conflicts<T, E, F, Fut>(mut transaction: F) -> Result<T, E>
where
    E: Conflict,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match transaction().await {
            Err(error) if error.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                tracing::debug!(attempt, "a transaction lost a conflict; running it again");
                tokio::time::sleep(conflict_backoff(attempt)).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// A random wait of up to 5 ms × 2^attempt (full jitter), so that transactions that collided
/// do not collide again in step.
fn conflict_backoff(attempt: u32) -> Duration {
    let ceiling = 5u64 << attempt.min(6);
    Duration::from_millis(rand::thread_rng().gen_range(1..=ceiling))
}

impl Db {
    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        match &self.inline {
            Some(inline) => {
                let token = self.writer.acquire().await?;
                let mut writer = inline.writer(token).await;
                writer.begin()?;
                Ok(Tx(TxInner::Inline(writer)))
            }
            None => Ok(Tx(TxInner::Sqlx(self.pool.begin().await?))),
        }
    }

    /// A connection for point reads (a row by its key, a handful of rows by an index).
    pub(super) fn read(&self) -> Result<Conn, DbError> {
        match &self.inline {
            Some(inline) => Ok(Conn::Reader(inline.reader()?)),
            None => Ok(Conn::Pool(self.pool.clone())),
        }
    }

    /// A connection for reads that may visit many rows.
    pub(super) fn scan(&self) -> Conn {
        Conn::Pool(self.pool.clone())
    }

    /// A read-only transaction, so that several reads see one state while writers go on.
    /// SQLite's deferred transaction reads one snapshot from its first statement on.
    pub(super) async fn snapshot(&self) -> Result<Conn, DbError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == super::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(Conn::Snapshot(tx))
    }

    /// A connection for writes outside a transaction. On SQLite it is the one writer, held
    /// until the connection drops: never ask for another, or begin a transaction, while
    /// holding it.
    pub(super) async fn write(&self) -> Result<Conn, DbError> {
        match &self.inline {
            Some(inline) => {
                let token = self.writer.acquire().await?;
                Ok(Conn::Writer(inline.writer(token).await))
            }
            None => Ok(Conn::Pool(self.writer.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::storage::database_error;

    #[tokio::test]
    async fn a_transaction_that_loses_a_deadlock_runs_again_until_it_commits() {
        let runs = AtomicU32::new(0);
        let outcome: Result<&str, DbError> = retry_conflicts(|| async {
            match runs.fetch_add(1, Ordering::SeqCst) {
                0 => Err(database_error("40P01")),
                1 => Err(database_error("40001")),
                _ => Ok("committed"),
            }
        })
        .await;
        assert_eq!(outcome.ok(), Some("committed"));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn conflicts_are_retried_a_bounded_number_of_times_other_errors_never() {
        let runs = AtomicU32::new(0);
        let outcome: Result<(), DbError> = retry_conflicts(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(database_error("40P01"))
        })
        .await;
        assert!(outcome.is_err_and(|e| e.is_conflict()));
        assert_eq!(runs.load(Ordering::SeqCst), CONFLICT_ATTEMPTS);

        let runs = AtomicU32::new(0);
        let outcome: Result<(), DbError> = retry_conflicts(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(database_error("23505"))
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "a unique violation is final"
        );
    }
}
