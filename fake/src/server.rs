//! The fake's HTTP side: each protocol's routes under its prefix, the output files, the
//! `/_fake/` controls (faults, call log, settings), and the loop that delivers finished jobs'
//! webhooks, signed as each provider signs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::faults::{lose_answers, Fault};
use crate::state::{Call, FakeState};
use crate::{aigateway, aimlapi, apiframe, seedance_it, seedanceapi, VIDEO};

pub fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .nest(&format!("/{}", seedance_it::PREFIX), seedance_it::routes())
        .nest(&format!("/{}", apiframe::PREFIX), apiframe::routes())
        .nest(&format!("/{}", aigateway::PREFIX), aigateway::routes())
        .nest(&format!("/{}", seedanceapi::PREFIX), seedanceapi::routes())
        .nest(&format!("/{}", aimlapi::PREFIX), aimlapi::routes())
        .route("/files/{name}", get(output_file))
        .route("/_fake/faults", post(control_fault))
        .route("/_fake/calls", get(control_calls))
        .route("/_fake/settings", post(control_settings))
        .layer(axum::middleware::from_fn(lose_answers))
        .with_state(state)
}

async fn output_file(State(state): State<Arc<FakeState>>, Path(name): Path<String>) -> Response {
    if !name.ends_with(".mp4") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let content_type = state
        .lock()
        .output_content_type
        .clone()
        .unwrap_or_else(|| "video/mp4".into());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(VIDEO),
    )
        .into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    provider: String,
    op: String,
    fault: Fault,
}

async fn control_fault(
    State(state): State<Arc<FakeState>>,
    Json(request): Json<FaultRequest>,
) -> StatusCode {
    state
        .lock()
        .faults
        .entry((request.provider, request.op))
        .or_default()
        .push_back(request.fault);
    StatusCode::NO_CONTENT
}

async fn control_calls(State(state): State<Arc<FakeState>>) -> Json<Vec<Call>> {
    Json(state.lock().calls.clone())
}

#[derive(Deserialize)]
struct Settings {
    job_duration_ms: Option<u64>,
    /// Per-provider job durations, by prefix.
    provider_job_duration_ms: Option<HashMap<String, u64>>,
    fail_next_jobs: Option<HashMap<String, u32>>,
    /// Providers (by prefix) whose webhooks are lost (true) or delivered again (false).
    lost_webhooks: Option<HashMap<String, bool>>,
}

async fn control_settings(
    State(state): State<Arc<FakeState>>,
    Json(settings): Json<Settings>,
) -> StatusCode {
    let mut inner = state.lock();
    if let Some(ms) = settings.job_duration_ms {
        inner.job_duration = Duration::from_millis(ms);
    }
    if let Some(durations) = settings.provider_job_duration_ms {
        inner.durations.extend(
            durations
                .into_iter()
                .map(|(p, ms)| (p, Duration::from_millis(ms))),
        );
    }
    if let Some(failing) = settings.fail_next_jobs {
        inner.failing.extend(failing);
    }
    for (provider, lost) in settings.lost_webhooks.unwrap_or_default() {
        if lost {
            inner.lost_webhooks.insert(provider);
        } else {
            inner.lost_webhooks.remove(&provider);
        }
    }
    StatusCode::NO_CONTENT
}

/// Sends each finished job's webhook once, signed as its provider signs.
pub(crate) async fn deliver_webhooks(
    state: Arc<FakeState>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        for job in state.due_webhooks() {
            let Some(url) = job.callback.clone() else {
                continue;
            };
            let (headers, body) = match job.provider {
                seedance_it::PREFIX => seedance_it::webhook(&state, &job),
                apiframe::PREFIX => apiframe::webhook(&state, &job),
                aigateway::PREFIX => aigateway::webhook(&state, &job),
                seedanceapi::PREFIX => seedanceapi::webhook(&state, &job),
                _ => continue,
            };
            let mut request = state
                .webhooks
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            if let Err(error) = request.send().await {
                tracing::debug!(%error, "fake webhook delivery failed");
            }
        }
    }
}
