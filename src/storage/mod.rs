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

pub mod archive;
pub mod attempts;
pub mod audit;
mod conn;
mod db_clock;
pub mod end_users;
mod error;
mod exec;
pub mod files;
pub mod gauges;
pub mod idempotency;
pub mod inline;
pub mod leases;
pub mod ledger;
pub mod objects;
pub mod policies;
pub mod prices;
pub mod provider_webhooks;
pub mod reports;
pub mod slots;
pub mod speed;
mod sql;
pub mod tenants;
pub mod videos;
pub mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::DatabaseConfig;

pub use conn::{retry_conflicts, Tx, CONFLICT_ATTEMPTS};
pub use error::{corruption_seen, unavailability_in, Conflict, DbError, Unavailable};
#[cfg(test)]
pub(crate) use error::{database_error, database_error_saying, pool_timed_out};

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
    /// The SQLite file; `None` on PostgreSQL.
    sqlite_path: Option<std::path::PathBuf>,
    /// Where the database is, for messages: a file path or host/database, never a password.
    location: Arc<str>,
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
        let location: Arc<str> = describe_url(url).into();
        let sqlite_path = match backend {
            Backend::Sqlite => Some(
                sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .context("parsing database.url")?
                    .get_filename()
                    .to_path_buf(),
            ),
            Backend::Postgres => None,
        };
        // One connection first, bounded in time, so that a final cause (refused, unknown
        // host, not a database) is reported as itself at once instead of as a pool timeout.
        probe_connection(&options, backend)
            .await
            .with_context(|| format!("connecting to the database at {location}"))?;
        let acquire_timeout_secs = config.acquire_timeout_secs.clamp(1, 600);
        let pool_with = |connections: u32| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(acquire_timeout_secs))
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
            .with_context(|| format!("connecting to the database at {location}"))?;
        let writer = match backend {
            Backend::Sqlite => pool_with(1)
                .connect_with(options)
                .await
                .with_context(|| format!("connecting to the database at {location}"))?,
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
            sqlite_path,
            location,
        })
    }

    /// Where the database is (a file path, or host:port/database), never with a password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Applies pending migrations. On PostgreSQL the migrator holds an advisory lock, so
    /// replicas starting together apply them once while the others wait.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &MIGRATE_SQLITE,
            Backend::Postgres => &MIGRATE_POSTGRES,
        };
        // SQLite has no lock of its own around migrations: two processes starting on one
        // file at once (`serve` and `bootstrap`) would both apply them. A lock file beside
        // the database serializes them; the second finds them applied.
        let _guard = match &self.sqlite_path {
            Some(path) => {
                let lock_path = sibling(path, "-migrate.lock");
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .with_context(|| format!("opening {}", lock_path.display()))?;
                let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                    .await
                    .context("waiting for the migration lock")?
                    .with_context(|| format!("locking {}", lock_path.display()))?;
                Some(file)
            }
            None => None,
        };
        migrator
            .run(&self.pool)
            .await
            .with_context(|| format!("applying database migrations to {}", self.location))
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

    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the database can take a write now (readiness): on SQLite, takes and releases
    /// the write lock beside the gateway's writer; on PostgreSQL, a round trip.
    pub async fn ping_write(&self) -> Result<(), DbError> {
        match &self.inline {
            Some(inline) => {
                let inline = inline.clone();
                tokio::task::spawn_blocking(move || inline.probe_write())
                    .await
                    .map_err(|_| sqlx::Error::WorkerCrashed)?
            }
            None => self.ping().await,
        }
    }

    /// On SQLite, refuses a damaged file before anything is served (`PRAGMA quick_check`,
    /// which reads every page: seconds for a database of gigabytes).
    pub async fn check_integrity(&self) -> anyhow::Result<()> {
        let Some(inline) = self.inline.clone() else {
            return Ok(());
        };
        let verdict = tokio::task::spawn_blocking(move || inline.quick_check())
            .await
            .context("checking the SQLite file")?
            .context("checking the SQLite file")?;
        verdict.map_err(|found| {
            anyhow::anyhow!("the SQLite database is damaged (PRAGMA quick_check: {found}); restore it from a backup")
        })
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
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
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

pub use crate::clock::now_ms;

/// Claims a SQLite file for one serving process: a second `serve` on the same file is
/// refused while the first runs (the lock is released when the returned file is dropped
/// or the process dies). The lock sits beside the file's canonical path, so the same file
/// named through a symlink or a relative path is refused too. Other commands (`bootstrap`,
/// `keys`, ...) may still open it. On PostgreSQL any number of replicas may serve.
pub fn claim_for_serving(config: &DatabaseConfig) -> anyhow::Result<Option<std::fs::File>> {
    let url = config.url.expose();
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    ensure_sqlite_parent_dir(url)?;
    let options =
        sqlx::sqlite::SqliteConnectOptions::from_str(url).context("parsing database.url")?;
    let path = canonical_file_path(options.get_filename())?;
    let path = path.as_path();
    let lock_path = sibling(path, "-serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            anyhow::bail!(
                "another `seedance-gateway serve` (pid {}) is already serving {}; one process \
                 per SQLite file (use PostgreSQL for replicas)",
                holder.trim(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
    use std::io::{Seek, Write};
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(Some(file))
}

/// The path a file is reached by once every symlink is resolved, whether or not the file
/// exists yet (SQLite creates it at the first connection): an existing file is
/// canonicalized; a symlink whose target does not exist yet is followed to that target; a
/// missing file is its canonical parent directory joined with its name.
fn canonical_file_path(path: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    // Bounded like the kernel's own symlink resolution (ELOOP after 40).
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        if let Ok(canonical) = path.canonicalize() {
            return Ok(canonical);
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)
                    .with_context(|| format!("reading the symlink {}", path.display()))?;
                // A relative target is relative to the directory holding the link.
                path = match path.parent() {
                    Some(parent) => parent.join(target),
                    None => target,
                };
            }
            _ => {
                let name = path
                    .file_name()
                    .with_context(|| format!("{} names no file", path.display()))?;
                let parent = match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => std::path::Path::new("."),
                };
                let parent = parent
                    .canonicalize()
                    .with_context(|| format!("resolving {}", parent.display()))?;
                return Ok(parent.join(name));
            }
        }
    }
    anyhow::bail!("{}: too many levels of symbolic links", path.display())
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}

/// A database URL as it may be shown: SQLite's file path, or PostgreSQL's host, port and
/// database without user or password.
pub fn describe_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        let absolute = std::path::Path::new(path)
            .canonicalize()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.to_string());
        return format!("sqlite file {absolute}");
    }
    match url::Url::parse(url) {
        Ok(parsed) => format!(
            "postgres {}:{}{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(5432),
            parsed.path()
        ),
        Err(_) => "the configured database".to_string(),
    }
}

/// Opens and closes one connection (on SQLite, with the gateway's pragmas) within five
/// seconds, so that start-up fails with the real cause.
async fn probe_connection(options: &AnyConnectOptions, backend: Backend) -> anyhow::Result<()> {
    use sqlx::{ConnectOptions, Connection};
    let attempt = async {
        let mut conn = options.connect().await?;
        if backend == Backend::Sqlite {
            conn.execute(SQLITE_PRAGMAS).await?;
            // Reading the schema fails at once on a file that is not a database.
            conn.execute("SELECT count(*) FROM sqlite_master").await?;
        }
        conn.close().await
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(outcome) => outcome.map_err(anyhow::Error::new),
        Err(_) => anyhow::bail!("no answer within 5 s"),
    }
}

/// Whether a database URL names a SQLite file that does not exist yet.
pub fn is_new_sqlite_file(url: &str) -> bool {
    url.starts_with("sqlite:")
        && sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map(|options| !options.get_filename().exists())
            .unwrap_or(false)
}
