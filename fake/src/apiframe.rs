//! The Apiframe protocol (docs/providers.md, "Verified"), as the fake serves it: `X-API-Key`,
//! `POST /v2/videos/generate` answering 202 `{jobId, status: "QUEUED"}`, `GET /v2/jobs/{id}`
//! with upper-case statuses and `creditCost`, no cancel endpoint, `{"error": "..."}` errors
//! (402 adds `creditsRequired` and `creditsAvailable`) and webhooks signed with
//! `sha256(api key)`. A submit with an `Idempotency-Key` (an optional header of its OpenAPI)
//! that the fake has seen answers with the job that key made, and makes no new one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{fault_response, header_value, FakeJob, FakeState, Phase, FAKE_KEY};

pub const PREFIX: &str = "apiframe";

const MODELS: [&str; 3] = ["seedance-2", "seedance-2-fast", "seedance-2-mini"];
const RATIOS: [&str; 7] = ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "adaptive"];
/// What an account in the fake holds, in Apiframe credits (for 402 bodies).
const CREDITS_AVAILABLE: i64 = 0;

pub fn routes() -> Router<Arc<FakeState>> {
    Router::new()
        .route("/v2/videos/generate", post(submit))
        .route("/v2/jobs/{id}", get(poll))
}

fn error_body(status: u16) -> Value {
    match status {
        400 => json!({"error": "Invalid request"}),
        401 => json!({"error": "Invalid API key"}),
        402 => json!({
            "error": "Insufficient credits",
            "creditsRequired": 10,
            "creditsAvailable": CREDITS_AVAILABLE,
        }),
        404 => json!({"error": "Not found"}),
        429 => json!({"error": "Too many requests"}),
        _ => json!({"error": "Internal server error"}),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    header_value(headers, "x-api-key") == Some(FAKE_KEY)
}

/// Credits for a request: per second 1 at 480p, 2 at 720p, doubled with a reference video.
pub fn credit_cost(params: &Value, seconds: i64) -> i64 {
    let per_second = if params["resolution"].as_str() == Some("480p") {
        1
    } else {
        2
    };
    let with_video = params["reference_video_urls"]
        .as_array()
        .is_some_and(|v| !v.is_empty());
    per_second * if with_video { 2 } else { 1 } * seconds
}

/// Checks `seedanceParams` as Apiframe documents them; the duration on success.
fn validate(body: &Value) -> Result<i64, String> {
    if body["prompt"].as_str().is_none_or(str::is_empty) {
        return Err("prompt is required".into());
    }
    if !body["model"].as_str().is_some_and(|m| MODELS.contains(&m)) {
        return Err(format!("model must be one of {}", MODELS.join(", ")));
    }
    let params = &body["seedanceParams"];
    if !(params.is_null() || params.is_object()) {
        return Err("seedanceParams must be an object".into());
    }
    let duration = match &params["duration"] {
        Value::Null => 8,
        value => value
            .as_i64()
            .filter(|d| (4..=15).contains(d))
            .ok_or("seedanceParams.duration must be an integer from 4 to 15")?,
    };
    if !(params["resolution"].is_null()
        || matches!(params["resolution"].as_str(), Some("480p" | "720p")))
    {
        return Err("seedanceParams.resolution must be 480p or 720p".into());
    }
    if !(params["aspect_ratio"].is_null()
        || params["aspect_ratio"]
            .as_str()
            .is_some_and(|r| RATIOS.contains(&r)))
    {
        return Err(format!(
            "seedanceParams.aspect_ratio must be one of {}",
            RATIOS.join(", ")
        ));
    }
    for (field, max) in [
        ("reference_image_urls", 9),
        ("reference_video_urls", 3),
        ("reference_audio_urls", 3),
    ] {
        match &params[field] {
            Value::Null => {}
            Value::Array(urls) if urls.len() <= max && urls.iter().all(Value::is_string) => {}
            _ => return Err(format!("seedanceParams.{field} takes up to {max} URLs")),
        }
    }
    for field in ["start_image", "end_image"] {
        if !(params[field].is_null() || params[field].is_string()) {
            return Err(format!("seedanceParams.{field} must be a URL"));
        }
    }
    for field in ["generate_audio", "camera_fixed"] {
        if !(params[field].is_null() || params[field].is_boolean()) {
            return Err(format!("seedanceParams.{field} must be a boolean"));
        }
    }
    if !(params["seed"].is_null() || params["seed"].is_i64()) {
        return Err("seedanceParams.seed must be an integer".into());
    }
    match &body["webhookEvents"] {
        Value::Null => {}
        Value::Array(events)
            if events
                .iter()
                .all(|e| matches!(e.as_str(), Some("progress" | "completed" | "failed"))) => {}
        _ => return Err("webhookEvents may hold progress, completed and failed".into()),
    }
    Ok(duration)
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
        "/v2/videos/generate",
        header_value(&headers, "x-api-key"),
        body.clone(),
    );
    if let Some(fault) = state.take_fault(PREFIX, "submit") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let duration = match validate(&body) {
        Ok(duration) => duration,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let key = header_value(&headers, "idempotency-key").map(str::to_string);
    if let Some(existing) = key.as_deref().and_then(|k| state.replay(PREFIX, k)) {
        return (
            StatusCode::ACCEPTED,
            Json(json!({"jobId": existing, "status": "QUEUED"})),
        )
            .into_response();
    }
    let callback = body["webhookUrl"].as_str().map(str::to_string);
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let job = state.start_job(PREFIX, "apf_job_", &model, duration, body, callback);
    if let Some(key) = &key {
        state.remember(PREFIX, key, &job.id);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"jobId": job.id, "status": "QUEUED"})),
    )
        .into_response()
}

fn job_object(state: &FakeState, job: &FakeJob) -> Value {
    let (status, progress) = match job.phase() {
        Phase::Queued => ("QUEUED", 0),
        Phase::Running(p) => ("PROCESSING", i64::from(p)),
        Phase::Completed => ("COMPLETED", 100),
        Phase::Failed => ("FAILED", 0),
        Phase::Canceled => ("CANCELLED", 0),
    };
    let cost = match job.phase() {
        // Failed jobs are refunded.
        Phase::Failed | Phase::Canceled => 0,
        _ => credit_cost(&job.request["seedanceParams"], job.seconds),
    };
    let mut object = json!({
        "id": job.id,
        "status": status,
        "progress": progress,
        "result": null,
        "error": null,
        "creditCost": cost,
        "model": job.model,
    });
    match job.phase() {
        Phase::Completed => object["result"] = json!({"videoUrl": state.output_url(job)}),
        Phase::Failed => object["error"] = json!("Generation failed: content moderation"),
        _ => {}
    }
    object
}

async fn poll(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/v2/jobs/{id}");
    state.record(
        PREFIX,
        "poll",
        "GET",
        &path,
        header_value(&headers, "x-api-key"),
        Value::Null,
    );
    if let Some(fault) = state.take_fault(PREFIX, "poll") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    match state.job(PREFIX, &id) {
        Some(job) => Json(job_object(&state, &job)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Job not found"),
    }
}

/// The webhook: the job object with `jobId` and the event `type`, signed
/// `x-webhook-signature: sha256=<hex HMAC-SHA256(sha256(api key), body)>`.
pub fn webhook(state: &FakeState, job: &FakeJob) -> (Vec<(String, String)>, String) {
    let mut payload = job_object(state, job);
    payload["jobId"] = json!(job.id);
    payload["type"] = json!(if job.phase() == Phase::Completed {
        "completed"
    } else {
        "failed"
    });
    let body = payload.to_string();
    let key = Sha256::digest(FAKE_KEY.as_bytes());
    let signature = match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(mut mac) => {
            mac.update(body.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (
        vec![(
            "x-webhook-signature".to_string(),
            format!("sha256={signature}"),
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_bodies_are_validated_as_documented() {
        let ok = json!({"prompt": "a boat", "model": "seedance-2-mini",
            "seedanceParams": {"duration": 4, "resolution": "480p", "aspect_ratio": "adaptive"}});
        assert_eq!(validate(&ok), Ok(4));
        assert_eq!(
            validate(&json!({"prompt": "a boat", "model": "seedance-2"})),
            Ok(8)
        );
        for (field, value) in [
            ("duration", json!(16)),
            ("resolution", json!("1080p")),
            ("aspect_ratio", json!("2:1")),
            ("reference_video_urls", json!(["a", "b", "c", "d"])),
        ] {
            let mut bad = ok.clone();
            bad["seedanceParams"][field] = value;
            assert!(validate(&bad).is_err(), "{field}");
        }
        let mut bad = ok.clone();
        bad["model"] = json!("seedance-2.0");
        assert!(validate(&bad).is_err());
    }

    #[test]
    fn credits_follow_resolution_and_reference_video() {
        let refvid = json!(["https://vid.example.com/1.mp4"]);
        assert_eq!(credit_cost(&json!({"resolution": "480p"}), 5), 5);
        assert_eq!(credit_cost(&json!({"resolution": "720p"}), 5), 10);
        assert_eq!(credit_cost(&json!({}), 5), 10);
        assert_eq!(
            credit_cost(
                &json!({"resolution": "480p", "reference_video_urls": refvid}),
                5
            ),
            10
        );
        assert_eq!(
            credit_cost(
                &json!({"resolution": "720p", "reference_video_urls": refvid}),
                15
            ),
            60
        );
    }
}
