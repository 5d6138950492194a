//! The database's clock: the one time line every replica agrees on. Leases are set and
//! checked against it in SQL ([`Backend::now_sql`], `storage::leases`), and each replica sets
//! its own clock to it ([`Db::align_clock`], `crate::clock`), so due times, hold timeouts and
//! timestamps written by replicas whose machine clocks disagree still compare.

use super::sql;
use super::{Backend, Db, DbError};

impl Backend {
    /// The database's clock in unix milliseconds, as an SQL expression: PostgreSQL's
    /// `clock_timestamp()` (the time of the statement, not of the transaction's start);
    /// SQLite's `julianday('now')`, which is the clock of the one machine that serves its file.
    pub fn now_sql(self) -> &'static str {
        match self {
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        }
    }
}

impl Db {
    /// Reads the database's clock and sets this process's to it (`crate::clock::align`).
    /// Returns the alignment in force: the database's clock minus this machine's, in ms.
    pub async fn align_clock(&self) -> Result<i64, DbError> {
        let query = format!("SELECT {}", self.backend.now_sql());
        let sent = crate::clock::machine_ms();
        let row = sql::query(query).fetch_one(&mut self.scan()).await?;
        let received = crate::clock::machine_ms();
        let database: i64 = row.at(0)?;
        Ok(crate::clock::align(database, sent, received))
    }
}
