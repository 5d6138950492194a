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

use sqlx::AnyPool;

use super::sql::Exec;
use super::{inline, Db, DbError};

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
            TxInner::Sqlx(tx) => tx.commit().await,
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

/// What a statement can run on: a transaction or a connection.
pub(super) trait On {
    fn on(&mut self) -> Result<Exec<'_>, DbError>;
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
