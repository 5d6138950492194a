//! State columns are read back strictly: a value the gateway does not know is an error, never
//! a guess at a neighbouring state (a failed video, a test-mode job, a key with every scope).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use seedance_gateway::domain::ids::{ProviderId, TenantId, VideoId};
use seedance_gateway::domain::video::{ArchiveState, VideoStatus};
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
