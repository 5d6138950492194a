//! The seedance.it.com protocol (docs/providers.md), as the fake serves it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{fault_response, header_value, FakeJob, FakeState, Phase, FAKE_KEY};

pub const PREFIX: &str = "seedance-it";

pub fn routes() -> Router<Arc<FakeState>> {
    Router::new()
        .route(
            "/api/v1/bytedance/seedance-2.0/fast/text-to-video",
            post(submit_fast_t2v),
        )
        .route(
            "/api/v1/bytedance/seedance-2.0/fast/image-to-video",
            post(submit_fast_i2v),
        )
        .route(
            "/api/v1/bytedance/seedance-2.0/text-to-video",
            post(submit_t2v),
        )
        .route(
            "/api/v1/bytedance/seedance-2.0/image-to-video",
            post(submit_i2v),
        )
        .route("/api/v1/jobs/{id}", get(poll))
        .route("/api/v1/jobs/{id}/cancel", post(cancel))
}

fn error_body(status: u16) -> Value {
    let message = match status {
        400 => "bad request",
        401 => "invalid API key",
        402 => "insufficient credits",
        429 => "rate limit exceeded",
        _ => "internal server error",
    };
    json!({"error": message})
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    header_value(headers, "authorization") == Some(&format!("Bearer {FAKE_KEY}"))
}

/// The seed's price table for Fast (credits), ceil(48.4 × s) between its rows; standard +20%.
pub fn cost_credits(fast: bool, seconds: i64) -> i64 {
    let fast_cost = match seconds {
        4 => 194,
        5 => 242,
        8 => 387,
        10 => 484,
        15 => 726,
        s => (484 * s + 9) / 10,
    };
    if fast {
        fast_cost
    } else {
        (fast_cost * 12 + 9) / 10
    }
}

async fn submit_fast_t2v(
    state: State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    submit(
        state,
        headers,
        body,
        true,
        false,
        "/api/v1/bytedance/seedance-2.0/fast/text-to-video",
    )
    .await
}
async fn submit_fast_i2v(
    state: State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    submit(
        state,
        headers,
        body,
        true,
        true,
        "/api/v1/bytedance/seedance-2.0/fast/image-to-video",
    )
    .await
}
async fn submit_t2v(
    state: State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    submit(
        state,
        headers,
        body,
        false,
        false,
        "/api/v1/bytedance/seedance-2.0/text-to-video",
    )
    .await
}
async fn submit_i2v(
    state: State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    submit(
        state,
        headers,
        body,
        false,
        true,
        "/api/v1/bytedance/seedance-2.0/image-to-video",
    )
    .await
}

async fn submit(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
    fast: bool,
    image: bool,
    path: &str,
) -> Response {
    state.record(
        PREFIX,
        "submit",
        "POST",
        path,
        header_value(&headers, "authorization"),
        body.clone(),
    );
    if let Some(fault) = state.take_fault(PREFIX, "submit") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    if body["prompt"].as_str().is_none_or(str::is_empty) {
        return error(StatusCode::BAD_REQUEST, "prompt is required");
    }
    let Some(duration) = body["duration"].as_i64().filter(|d| (4..=15).contains(d)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "duration must be an integer from 4 to 15",
        );
    };
    if !matches!(body["aspect_ratio"].as_str(), Some("16:9" | "9:16" | "1:1")) {
        return error(
            StatusCode::BAD_REQUEST,
            "aspect_ratio must be 16:9, 9:16 or 1:1",
        );
    }
    if image && body["image_url"].as_str().is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "image_url is required for image-to-video",
        );
    }
    let callback = body["webhook_url"].as_str().map(str::to_string);
    let model = if fast { "fast" } else { "standard" };
    let job = state.start_job(PREFIX, "sdf_2026_", model, duration, body, callback);
    (
        StatusCode::OK,
        Json(json!({
            "job_id": job.id,
            "status": "queued",
            "estimated_seconds": state.estimated_secs(&job),
            "cost_credits": cost_credits(fast, duration),
        })),
    )
        .into_response()
}

fn status_object(state: &FakeState, job: &FakeJob) -> Value {
    let fast = job.model == "fast";
    let status = match job.phase() {
        Phase::Queued => "queued",
        Phase::Running(_) => "processing",
        Phase::Completed => "completed",
        Phase::Failed => "failed",
        Phase::Canceled => "cancelled",
    };
    let mut object = json!({"job_id": job.id, "status": status});
    match job.phase() {
        Phase::Completed => {
            object["video_url"] = json!(state.output_url(job));
            object["duration_seconds"] = json!(job.seconds);
            object["resolution"] = json!("720p");
            object["credits_consumed"] = json!(cost_credits(fast, job.seconds));
        }
        Phase::Failed => object["error"] = json!("generation failed: content moderation"),
        _ => {}
    }
    object
}

async fn poll(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/api/v1/jobs/{id}");
    state.record(
        PREFIX,
        "poll",
        "GET",
        &path,
        header_value(&headers, "authorization"),
        Value::Null,
    );
    if let Some(fault) = state.take_fault(PREFIX, "poll") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    match state.job(PREFIX, &id) {
        Some(job) => Json(status_object(&state, &job)).into_response(),
        None => error(StatusCode::NOT_FOUND, "job not found"),
    }
}

async fn cancel(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/api/v1/jobs/{id}/cancel");
    state.record(
        PREFIX,
        "cancel",
        "POST",
        &path,
        header_value(&headers, "authorization"),
        Value::Null,
    );
    if let Some(fault) = state.take_fault(PREFIX, "cancel") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    match state.cancel_job(PREFIX, &id) {
        Some(true) => {
            Json(json!({"job_id": id, "status": "cancelled", "refunded": true})).into_response()
        }
        Some(false) => error(StatusCode::BAD_REQUEST, "job already finished"),
        None => error(StatusCode::NOT_FOUND, "job not found"),
    }
}

/// The completion webhook: the status object, unsigned (the seed documents no signature).
pub fn webhook(state: &FakeState, job: &FakeJob) -> (Vec<(String, String)>, String) {
    (Vec::new(), status_object(state, job).to_string())
}
