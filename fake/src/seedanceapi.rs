//! The seedanceapi.org protocol (docs/providers.md), as the fake serves it: `POST /v2/generate`,
//! `GET /v2/status?task_id=…`, the `{code, message, data}` envelope, its documented error codes
//! and credit prices, and an unsigned callback to `callback_url`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{fault_response, header_value, FakeJob, FakeState, Phase, FAKE_KEY};

pub const PREFIX: &str = "seedanceapi";

const STANDARD: &str = "seedance-2.0";
const FAST: &str = "seedance-2.0-fast";
const MINI: &str = "seedance-2-mini";

pub fn routes() -> Router<Arc<FakeState>> {
    Router::new()
        .route("/v2/generate", post(submit))
        .route("/v2/status", get(poll))
}

fn error_body(status: u16) -> Value {
    let (code, message) = match status {
        400 => ("INVALID_PROMPT", "Prompt missing or invalid"),
        401 => ("INVALID_API_KEY", "API key missing or invalid"),
        402 => ("INSUFFICIENT_CREDITS", "Not enough credits"),
        404 => ("TASK_NOT_FOUND", "Task not found"),
        429 => ("RATE_LIMITED", "Too many requests"),
        _ => ("INTERNAL_ERROR", "Server error"),
    };
    json!({"code": code, "message": message})
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    header_value(headers, "authorization") == Some(&format!("Bearer {FAKE_KEY}"))
}

/// The seed's price in credits (1 USD = 100): 2.0 48/s and Fast 32/s (its 5/10/15 s table);
/// Mini per second at 480p 14.25, or 9 with reference video; at 720p (and 1080p, billed as
/// 720p) 30.75, or 18.75 with reference video; fractions rounded up.
pub fn cost_credits(model: &str, resolution: &str, reference_video: bool, seconds: i64) -> i64 {
    let hundredths_per_second = match (model, resolution, reference_video) {
        (STANDARD, _, _) => 4800,
        (FAST, _, _) => 3200,
        (_, "480p", false) => 1425,
        (_, "480p", true) => 900,
        (_, _, false) => 3075,
        (_, _, true) => 1875,
    };
    (hundredths_per_second * seconds + 99) / 100
}

fn job_cost(job: &FakeJob) -> i64 {
    let request = &job.request;
    cost_credits(
        &job.model,
        request["resolution"].as_str().unwrap_or("720p"),
        request["reference_video_urls"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        job.seconds,
    )
}

/// Validates a submit body as the provider documents: the model and duration, or the 400's
/// error code and message.
fn validate(body: &Value) -> Result<(&'static str, i64), (&'static str, &'static str)> {
    match body["prompt"].as_str() {
        Some(prompt) if !prompt.trim().is_empty() && prompt.chars().count() <= 2000 => {}
        _ => return Err(("INVALID_PROMPT", "Prompt missing or invalid")),
    }
    let model = match body["model"].as_str() {
        None if body["model"].is_null() => STANDARD,
        Some(STANDARD) => STANDARD,
        Some(FAST) => FAST,
        Some(MINI) => MINI,
        // Not in the seed's error table; the fake still refuses it.
        _ => return Err(("INVALID_MODEL", "Unsupported model")),
    };
    let mini = model == MINI;
    let duration = match &body["duration"] {
        Value::Null => Some(5),
        other => other.as_i64(),
    };
    let Some(duration) = duration.filter(|d| {
        if mini {
            (4..=15).contains(d)
        } else {
            [5, 10, 15].contains(d)
        }
    }) else {
        return Err((
            "INVALID_DURATION",
            "duration must be 5, 10, or 15 for 2.0 / Fast, or 4–15 for Mini",
        ));
    };
    let resolution_ok = match &body["resolution"] {
        Value::Null => true,
        Value::String(r) => matches!(r.as_str(), "480p" | "720p" | "1080p"),
        _ => false,
    };
    if !resolution_ok {
        return Err((
            "INVALID_RESOLUTION",
            "resolution must be 480p, 720p or 1080p",
        ));
    }
    let ratio_ok = match &body["aspect_ratio"] {
        Value::Null => true,
        Value::String(r) => {
            matches!(r.as_str(), "16:9" | "9:16" | "4:3" | "3:4")
                || (mini && matches!(r.as_str(), "1:1" | "21:9" | "adaptive"))
        }
        _ => false,
    };
    if !ratio_ok {
        return Err((
            "INVALID_ASPECT_RATIO",
            "Unsupported aspect_ratio for the selected model",
        ));
    }
    if body["images"]
        .as_array()
        .is_some_and(|images| images.len() > 4)
    {
        return Err(("TOO_MANY_IMAGES", "Too many images (max 4)"));
    }
    Ok((model, duration))
}

fn envelope(data: Value) -> Value {
    json!({"code": 200, "message": "success", "data": data})
}

async fn submit(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.record(
        PREFIX,
        "submit",
        "POST",
        "/v2/generate",
        header_value(&headers, "authorization"),
        body.clone(),
    );
    if let Some(fault) = state.take_fault(PREFIX, "submit") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_API_KEY",
            "API key missing or invalid",
        );
    }
    let (model, duration) = match validate(&body) {
        Ok(valid) => valid,
        Err((code, message)) => return error(StatusCode::BAD_REQUEST, code, message),
    };
    let callback = body["callback_url"].as_str().map(str::to_string);
    let job = state.start_job(PREFIX, "n90a", model, duration, body, callback);
    Json(envelope(json!({
        "task_id": job.id,
        "status": "IN_PROGRESS",
        "consumed_credits": job_cost(&job),
    })))
    .into_response()
}

fn status_envelope(state: &FakeState, job: &FakeJob) -> Value {
    let (status, response, error_message) = match job.phase() {
        Phase::Queued | Phase::Running(_) => ("IN_PROGRESS", json!([]), Value::Null),
        Phase::Completed => ("SUCCESS", json!([state.output_url(job)]), Value::Null),
        Phase::Failed | Phase::Canceled => (
            "FAILED",
            json!([]),
            json!("generation failed: content moderation"),
        ),
    };
    envelope(json!({
        "task_id": job.id,
        "status": status,
        "consumed_credits": job_cost(job),
        "created_at": "2026-04-03T10:30:00Z",
        "request": {
            "prompt": job.request["prompt"],
            "aspect_ratio": job.request["aspect_ratio"],
            "duration": job.seconds,
        },
        "response": response,
        "error_message": error_message,
    }))
}

async fn poll(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = query.get("task_id").cloned().unwrap_or_default();
    state.record(
        PREFIX,
        "poll",
        "GET",
        &format!("/v2/status?task_id={id}"),
        header_value(&headers, "authorization"),
        Value::Null,
    );
    if let Some(fault) = state.take_fault(PREFIX, "poll") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_API_KEY",
            "API key missing or invalid",
        );
    }
    match state.job(PREFIX, &id) {
        Some(job) => Json(status_envelope(&state, &job)).into_response(),
        None => error(StatusCode::NOT_FOUND, "TASK_NOT_FOUND", "Task not found"),
    }
}

/// The completion callback: the status envelope, unsigned (the seed documents no signature).
pub fn webhook(state: &FakeState, job: &FakeJob) -> (Vec<(String, String)>, String) {
    (Vec::new(), status_envelope(state, job).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_follow_the_seed_tables() {
        assert_eq!(cost_credits(STANDARD, "720p", false, 5), 240);
        assert_eq!(cost_credits(STANDARD, "1080p", false, 15), 720);
        assert_eq!(cost_credits(FAST, "720p", false, 10), 320);
        assert_eq!(cost_credits(MINI, "480p", false, 5), 72); // ceil(71.25)
        assert_eq!(cost_credits(MINI, "480p", true, 5), 45);
        assert_eq!(cost_credits(MINI, "720p", false, 4), 123);
        assert_eq!(cost_credits(MINI, "720p", true, 5), 94); // ceil(93.75)
        assert_eq!(cost_credits(MINI, "1080p", false, 4), 123);
    }

    #[test]
    fn submit_bodies_are_validated_as_documented() {
        let code = |body: Value| validate(&body).err().map(|(code, _)| code);
        assert_eq!(code(json!({"prompt": "a"})), None);
        assert_eq!(
            code(json!({"prompt": "a", "duration": 7})),
            Some("INVALID_DURATION")
        );
        assert_eq!(
            code(json!({"prompt": "a", "duration": 7, "model": MINI})),
            None
        );
        assert_eq!(
            code(json!({"prompt": "a", "aspect_ratio": "1:1"})),
            Some("INVALID_ASPECT_RATIO")
        );
        assert_eq!(
            code(json!({"prompt": "a", "aspect_ratio": "1:1", "model": MINI})),
            None
        );
        assert_eq!(
            code(json!({"prompt": "x".repeat(2001)})),
            Some("INVALID_PROMPT")
        );
        assert_eq!(
            code(json!({"prompt": "a", "images": ["1", "2", "3", "4", "5"]})),
            Some("TOO_MANY_IMAGES")
        );
    }
}
