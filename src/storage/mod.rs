//! Persistence. One SQL dialect serves both backends through sqlx's `Any` driver: `$n`
//! placeholders (SQLite accepts them too), `BIGINT` integers, `TEXT` strings and JSON, and
//! times as unix milliseconds. Where the backends must differ (the write-transaction mode)
//! the [`Backend`] says which to use.
//!
//! On SQLite, writes (transactions and single statements alike) go through a pool of one
//! connection, [`Db::writer`], while reads use the main pool: SQLite admits one writer at a
//! time anyway, and queueing for that connection is fair and immediate, where contending
//! connections would wait in SQLite's busy handler in sleeps of up to 100 ms. A background
//! task checkpoints the WAL on a read connection, so the writer never waits for a checkpoint.
//!
//! Trade-off: the `Any` driver costs a little per row compared with the native drivers, in
//! exchange for writing every query once and running the same tests on both backends.

pub mod audit;
pub mod end_users;
pub mod files;
pub mod inline;
pub mod jobs;
pub mod ledger;
pub mod objects;
pub mod sql;
pub mod tenants;
pub mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::DatabaseConfig;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// Where writes go: on SQLite a pool of one connection, so that writers queue here in
    /// order instead of in SQLite's busy handler, which sleeps for milliseconds at a time; on
    /// PostgreSQL the same pool as reads.
    writer: AnyPool,
    backend: Backend,
    /// Stops the SQLite checkpointer when the last clone of this handle is dropped.
    _checkpointer: Option<Arc<DropGuard>>,
    /// SQLite called in place for the hot paths; `None` on PostgreSQL.
    inline: Option<Arc<inline::Inline>>,
}

/// A transaction for the hot paths: in place on SQLite, sqlx's on PostgreSQL. Dropped without
/// [`HotTx::commit`], it rolls back.
pub enum HotTx {
    Inline(inline::Writer),
    Sqlx(Tx),
}

impl HotTx {
    pub fn exec(&mut self) -> sql::Exec<'_> {
        match self {
            HotTx::Inline(writer) => writer.exec(),
            HotTx::Sqlx(tx) => sql::Exec::Sqlx(tx),
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            HotTx::Inline(mut writer) => writer.commit(),
            HotTx::Sqlx(tx) => tx.commit().await,
        }
    }
}

/// A connection for one hot-path write outside a transaction.
pub enum HotWrite {
    Inline(inline::Writer),
    Pool(AnyPool),
}

impl HotWrite {
    pub fn exec(&mut self) -> sql::Exec<'_> {
        match self {
            HotWrite::Inline(writer) => writer.exec(),
            HotWrite::Pool(pool) => sql::Exec::Pool(pool),
        }
    }
}

/// A connection for hot-path reads.
pub enum HotRead {
    Inline(inline::Reader),
    Pool(AnyPool),
}

impl HotRead {
    pub fn exec(&mut self) -> Result<sql::Exec<'_>, sqlx::Error> {
        match self {
            HotRead::Inline(reader) => reader.exec(),
            HotRead::Pool(pool) => Ok(sql::Exec::Pool(pool)),
        }
    }
}

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let url = config.url.expose();
        let backend = if url.starts_with("sqlite:") {
            ensure_sqlite_parent_dir(url)?;
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyConnectOptions::from_str(url).context("parsing database.url")?;
        let pool_with = |connections: u32| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(10))
                // A SQLite connection is a file handle that cannot drop, and testing it costs
                // a round trip to its thread on every acquire; a PostgreSQL connection can.
                .test_before_acquire(backend == Backend::Postgres)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            conn.execute(SQLITE_PRAGMAS).await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = pool_with(config.max_connections.max(1))
            .connect_with(options.clone())
            .await
            .context("connecting to the database")?;
        let writer = match backend {
            Backend::Sqlite => pool_with(1)
                .connect_with(options)
                .await
                .context("connecting to the database")?,
            Backend::Postgres => pool.clone(),
        };
        let inline = match backend {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .context("parsing database.url")?;
                let inline = inline::Inline::open(options.get_filename(), SQLITE_PRAGMAS)
                    .context("opening the SQLite database")?;
                Some(Arc::new(inline))
            }
            Backend::Postgres => None,
        };
        let checkpointer = (backend == Backend::Sqlite).then(|| {
            let stop = CancellationToken::new();
            tokio::spawn(checkpoint_sqlite(pool.clone(), stop.clone()));
            Arc::new(stop.drop_guard())
        });
        Ok(Db {
            pool,
            writer,
            backend,
            _checkpointer: checkpointer,
            inline,
        })
    }

    /// Applies pending migrations. On PostgreSQL the migrator holds an advisory lock, so
    /// replicas starting together apply them once while the others wait.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &MIGRATE_SQLITE,
            Backend::Postgres => &MIGRATE_POSTGRES,
        };
        migrator
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }

    /// The pool for reads (and, on PostgreSQL, writes).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for writes outside a transaction.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`)
    /// so that a transaction that reads before it writes never fails on a stale snapshot.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Starts a hot-path transaction (see [`sql`]): in place on SQLite, where it queues for
    /// the writer like [`Db::begin`] and takes the write lock up front.
    pub async fn begin_hot(&self) -> Result<HotTx, sqlx::Error> {
        match &self.inline {
            Some(inline) => {
                let token = self.writer.acquire().await?;
                let mut writer = inline.writer(token).await;
                writer.begin()?;
                Ok(HotTx::Inline(writer))
            }
            None => Ok(HotTx::Sqlx(self.begin().await?)),
        }
    }

    /// A connection for one hot-path write outside a transaction.
    pub async fn hot_writer(&self) -> Result<HotWrite, sqlx::Error> {
        match &self.inline {
            Some(inline) => {
                let token = self.writer.acquire().await?;
                Ok(HotWrite::Inline(inline.writer(token).await))
            }
            None => Ok(HotWrite::Pool(self.writer.clone())),
        }
    }

    /// A connection for hot-path reads.
    pub fn hot_reader(&self) -> Result<HotRead, sqlx::Error> {
        match &self.inline {
            Some(inline) => Ok(HotRead::Inline(inline.reader()?)),
            None => Ok(HotRead::Pool(self.pool.clone())),
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// Every SQLite connection: WAL (readers never wait for the writer), a busy timeout for
/// writers in other processes (the CLI), `synchronous = NORMAL` (a commit survives a crash of
/// the process; the last commits before a power loss may not), and an automatic checkpoint
/// only once the WAL reaches 40,000 pages (160 MB): checkpoints are the job of
/// [`checkpoint_sqlite`], and the automatic one is the safety net should it fall behind.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 40000;";

/// How often SQLite's WAL is copied back into the database file.
const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies SQLite's WAL back into the database file every [`SQLITE_CHECKPOINT_EVERY`], on a
/// read connection, until `stop` is cancelled.
///
/// Trade-off: SQLite's own automatic checkpoint runs on the connection that commits, after the
/// commit, and that is the gateway's one writer connection: every writer then waits for the
/// copy and its `fsync`, tens of milliseconds every few thousand creates. A passive checkpoint
/// on another connection runs beside the writer and never takes the write lock. The WAL
/// still restarts from its beginning at the first write after a complete checkpoint, so it
/// stays small.
async fn checkpoint_sqlite(pool: AnyPool, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SQLITE_CHECKPOINT_EVERY) => {}
        }
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(%error, "SQLite checkpoint failed; retrying");
        }
    }
}

fn ensure_sqlite_parent_dir(url: &str) -> anyhow::Result<()> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the database directory {}", parent.display()))?;
        }
    }
    Ok(())
}

/// Milliseconds since the unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// True when a database error is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.code()
                .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}
