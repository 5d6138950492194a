//! The harness's own database access: creating and dropping the PostgreSQL bench database,
//! and reading the gateway's job rows afterwards, with their millisecond timestamps (the API
//! rounds `completed_at` to seconds).

use std::collections::HashMap;

use anyhow::Context;
use sqlx::{Connection, Row};

/// Drops `name` if it exists (closing its connections) and creates it empty; returns its URL.
pub async fn pg_recreate(server: &str, name: &str) -> anyhow::Result<String> {
    pg_drop(server, name).await?;
    let mut conn = sqlx::postgres::PgConnection::connect(server)
        .await
        .with_context(|| format!("connect to PostgreSQL at {}", redact(server)))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("CREATE DATABASE {name}"))?;
    conn.close().await?;
    Ok(with_database(server, name))
}

/// Drops `name`, closing the connections still open to it.
pub async fn pg_drop(server: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::postgres::PgConnection::connect(server)
        .await
        .with_context(|| format!("connect to PostgreSQL at {}", redact(server)))?;
    let forced = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
    if forced.is_err() {
        // Before PostgreSQL 13: no FORCE; end the sessions first.
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("DROP DATABASE {name}"))?;
    }
    conn.close().await?;
    Ok(())
}

/// The server URL with its path replaced by `/name` (query kept).
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// One job as the gateway stored it (times in unix milliseconds).
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub provider: String,
    pub status: String,
    pub created_at: i64,
    pub submitted_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// When the accepted submit was answered (its attempt's start plus duration).
    pub submit_answered_at: Option<i64>,
}

async fn connect(url: &str) -> anyhow::Result<sqlx::AnyConnection> {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url)
        .await
        .with_context(|| format!("open the gateway's database {}", redact(url)))
}

/// Every job in the gateway's database, with its accepted submit.
pub async fn jobs(url: &str) -> anyhow::Result<Vec<JobRow>> {
    let mut conn = connect(url).await?;
    let mut answered: HashMap<String, i64> = HashMap::new();
    for row in sqlx::query(
        "SELECT video_id, started_at, duration_ms FROM job_attempts \
         WHERE operation = 'submit' AND outcome = 'accepted'",
    )
    .fetch_all(&mut conn)
    .await?
    {
        let id: String = row.try_get(0)?;
        let at = row.try_get::<i64, _>(1)? + row.try_get::<i64, _>(2)?;
        answered.insert(id, at);
    }
    let rows = sqlx::query(
        "SELECT id, COALESCE(provider, ''), status, created_at, submitted_at, completed_at FROM videos",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0)?;
        jobs.push(JobRow {
            submit_answered_at: answered.get(&id).copied(),
            id,
            provider: row.try_get(1)?,
            status: row.try_get(2)?,
            created_at: row.try_get(3)?,
            submitted_at: row.try_get(4)?,
            completed_at: row.try_get(5)?,
        });
    }
    conn.close().await?;
    Ok(jobs)
}

/// How many jobs wait in the gateway's queue (not yet submitted upstream).
pub async fn queued(url: &str) -> anyhow::Result<i64> {
    let mut conn = connect(url).await?;
    let row = sqlx::query("SELECT COUNT(*) FROM videos WHERE status = 'queued'")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(row.try_get(0)?)
}

/// How many jobs are in each status.
pub async fn status_counts(url: &str) -> anyhow::Result<HashMap<String, i64>> {
    let mut conn = connect(url).await?;
    let mut counts = HashMap::new();
    for row in sqlx::query("SELECT status, COUNT(*) FROM videos GROUP BY status")
        .fetch_all(&mut conn)
        .await?
    {
        counts.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
    }
    conn.close().await?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "bench_1"),
            "postgres://postgres@127.0.0.1:5432/bench_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/x?sslmode=disable", "b"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
        assert_eq!(redact("postgres://u:secret@h/x"), "postgres://u:***@h/x");
        assert_eq!(redact("postgres://u@h/x"), "postgres://u@h/x");
    }
}
