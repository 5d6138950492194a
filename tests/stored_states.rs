//! State columns are read back strictly: a value the gateway does not know is an error, never
//! a guess at a neighbouring state (a failed video, a test-mode job, a key with every scope).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use seedance_gateway::types::ids::{ProviderId, TenantId, VideoId};
use seedance_gateway::types::video::{ArchiveState, VideoStatus};
use serde_json::{json, Value};

/// A gateway that makes no copies of outputs, so that only the test writes `archive_state`.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|config| config.storage.archive = false).await
}

/// A completed video of a new tenant: its tenant, key and id.
async fn completed_video(app: &TestApp) -> (TenantId, String, VideoId) {
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let response = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "a paper boat", "seconds": 4}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let done = app.wait_terminal(&key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    (
        TenantId::parse(&tenant).expect("tenant id"),
        key,
        VideoId::parse(&id).expect("video id"),
    )
}

/// Writes a raw value into one of a video's columns, as a damaged or newer database might hold.
async fn store(app: &TestApp, id: &VideoId, column: &str, value: Option<&str>) {
    sqlx::query(&format!("UPDATE videos SET {column} = $1 WHERE id = $2"))
        .bind(value)
        .bind(id.as_str())
        .execute(app.db.writer())
        .await
        .expect("update");
}

/// Reading the video through every path that decodes it fails, and its API read is a 500.
async fn assert_unreadable(app: &TestApp, tenant: &TenantId, key: &str, id: &VideoId) {
    assert!(app.db.get_video_any(id).await.is_err());
    assert!(app.db.get_video(tenant, id).await.is_err());
    let (status, body) = app
        .get_json(key, &format!("/v1/videos/{}", id.as_str()))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
}

#[tokio::test]
async fn an_unknown_stored_status_is_an_error_not_a_failed_video() {
    let app = spawn().await;
    let (tenant, key, id) = completed_video(&app).await;
    let video = app.db.get_video_any(&id).await.expect("read").expect("row");
    assert_eq!(video.status, VideoStatus::Completed);

    store(&app, &id, "status", Some("exploded")).await;

    assert_unreadable(&app, &tenant, &key, &id).await;
    store(&app, &id, "status", Some("completed")).await; // For the ledger audit at the end.
}

#[tokio::test]
async fn an_unknown_stored_mode_is_an_error_not_a_test_video() {
    let app = spawn().await;
    let (tenant, key, id) = completed_video(&app).await;

    store(&app, &id, "mode", Some("staging")).await;

    assert_unreadable(&app, &tenant, &key, &id).await;
    store(&app, &id, "mode", Some("test")).await; // For the ledger audit at the end.
}

#[tokio::test]
async fn an_unknown_archive_state_is_an_error() {
    let app = spawn().await;
    let (tenant, key, id) = completed_video(&app).await;

    store(&app, &id, "archive_state", Some("misplaced")).await;

    assert_unreadable(&app, &tenant, &key, &id).await;
}

#[tokio::test]
async fn an_unknown_stored_provider_is_an_error_and_either_spelling_reads_as_the_provider() {
    let app = spawn().await;
    let (tenant, key, id) = completed_video(&app).await;
    let video = app.db.get_video_any(&id).await.expect("read").expect("row");
    assert_eq!(video.provider, Some(ProviderId::Sandbox));

    store(&app, &id, "provider", Some("seedance_it")).await;
    let video = app.db.get_video_any(&id).await.expect("read").expect("row");
    assert_eq!(video.provider, Some(ProviderId::SeedanceIt));

    store(&app, &id, "provider", Some("retired-vendor")).await;
    assert_unreadable(&app, &tenant, &key, &id).await;
    store(&app, &id, "provider", Some("sandbox")).await;

    store(
        &app,
        &id,
        "fallbacks",
        Some(r#"["apiframe", "retired-vendor"]"#),
    )
    .await;
    assert_unreadable(&app, &tenant, &key, &id).await;
    store(
        &app,
        &id,
        "fallbacks",
        Some(r#"["apiframe", "seedance_it"]"#),
    )
    .await;
    let video = app.db.get_video_any(&id).await.expect("read").expect("row");
    assert_eq!(
        video.fallbacks,
        vec![ProviderId::Apiframe, ProviderId::SeedanceIt]
    );
}

#[tokio::test]
async fn every_archive_state_reads_back_as_itself() {
    let app = spawn().await;
    let (tenant, _key, id) = completed_video(&app).await;
    let read = || async {
        let any = app.db.get_video_any(&id).await.expect("read").expect("row");
        let own = app
            .db
            .get_video(&tenant, &id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(any.archive_state, own.archive_state);
        any.archive_state
    };
    assert_eq!(read().await, None);
    for state in [
        ArchiveState::Pending,
        ArchiveState::Stored,
        ArchiveState::Failed,
        ArchiveState::Expired,
        ArchiveState::Deleted,
    ] {
        store(&app, &id, "archive_state", Some(state.as_str())).await;
        assert_eq!(read().await, Some(state));
    }
}

#[tokio::test]
async fn a_key_whose_scopes_cannot_be_read_is_refused_not_given_every_scope() {
    let app = spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 0).await;
    // A scope this gateway does not know: read as "no list", the key would hold every scope.
    sqlx::query("UPDATE api_keys SET scopes = $1 WHERE tenant_id = $2")
        .bind(r#"["videos:read", "videos:teleport"]"#)
        .bind(&tenant)
        .execute(app.db.writer())
        .await
        .expect("update");

    let (status, body) = app.get_json(&key, "/v1/videos").await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
}

/// The tables, columns and indexes the migrations leave, read back from a database.
async fn schema(db: &seedance_gateway::storage::Db, postgres: bool) -> Vec<String> {
    let (columns, indexes) = if postgres {
        (
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
            // Indexes the gateway named, not those behind primary keys and unique constraints.
            "SELECT CAST(tablename AS TEXT), CAST(indexname AS TEXT) FROM pg_indexes WHERE schemaname = 'public' \
             AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        )
    } else {
        (
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
            "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' \
             AND name NOT LIKE 'sqlite\\_autoindex%' ESCAPE '\\'",
        )
    };
    let mut schema = Vec::new();
    for (what, sql) in [("column", columns), ("index", indexes)] {
        for row in sqlx::query(sql)
            .fetch_all(db.pool())
            .await
            .expect("schema query")
        {
            use sqlx::Row;
            let table: String = row.get(0);
            let name: String = row.get(1);
            schema.push(format!("{table} {what} {name}"));
        }
    }
    schema.sort();
    schema
}

#[tokio::test]
async fn the_sqlite_and_postgresql_migrations_leave_the_same_tables_columns_and_indexes() {
    use seedance_gateway::config::{DatabaseConfig, Secret};
    use seedance_gateway::storage::Db;
    let Some(server) = common::services::postgres_server("migration parity") else {
        return;
    };
    let connect = |url: String| async move {
        let db = Db::connect(&DatabaseConfig {
            url: Secret::new(url),
            max_connections: 2,
            ..Default::default()
        })
        .await
        .expect("connected");
        db.migrate().await.expect("migrated");
        db
    };
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = connect(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("parity.db").display()
    ))
    .await;
    let postgres = connect(common::fresh_postgres_database(&server).await).await;
    let (sqlite, postgres) = (schema(&sqlite, false).await, schema(&postgres, true).await);
    assert!(sqlite.len() > 100, "the schema was read: {sqlite:?}");
    let only_sqlite: Vec<_> = sqlite.iter().filter(|e| !postgres.contains(e)).collect();
    let only_postgres: Vec<_> = postgres.iter().filter(|e| !sqlite.contains(e)).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only on SQLite: {only_sqlite:?}\nonly on PostgreSQL: {only_postgres:?}"
    );
}
