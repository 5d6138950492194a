//! The AIgateway protocol (docs/providers.md, "Verified"), as the fake serves it: Bearer keys,
//! `POST /v1/videos/generations` answering 202, `GET /v1/jobs/{id}`, `POST
//! /v1/jobs/{id}/cancel`, `{error: {message, type}}` errors (an unknown model is a 404
//! `not_found`, as the seed documents) and webhooks signed `X-Gateway-Signature: t=...,v1=...`
//! with [`WEBHOOK_SECRET`].
//!
//! Polling one job again sooner than AIgateway's 3 s answers 304. So that tests with short
//! jobs still finish, the fake's interval is the shorter of 3 s and a quarter of the job's
//! duration, counted from the last poll it answered in full. In-progress jobs report
//! `processing` for the first half and `running` after; completed jobs carry `result.url`
//! or, for ids ending in an odd digit, `result.file_url`, so adapters meet both spellings the
//! docs use. Only the seed's one model (`bytedance/seedance-2.0-fast`) exists, and a body
//! field neither the seed nor the docs name is refused.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{fault_response, header_value, FakeJob, FakeState, Phase, FAKE_KEY};

pub const PREFIX: &str = "aigateway";
/// The signing secret of the fake account's webhooks (the gateway's `webhook_secret`).
pub const WEBHOOK_SECRET: &str = "fake-aigateway-webhook-secret";

/// The seed names one model only; anything else is "Unknown model", as the seed's 404 says.
const MODELS: [&str; 1] = ["bytedance/seedance-2.0-fast"];
/// The fields the seed's request body and the async-jobs docs name; any other field is
/// refused, so that an adapter sending something the real service may drop fails here.
const FIELDS: [&str; 6] = [
    "model",
    "prompt",
    "duration",
    "aspect_ratio",
    "resolution",
    "webhook_url",
];
const RATIOS: [&str; 6] = ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"];
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(3);

pub fn routes() -> Router<Arc<FakeState>> {
    Router::new()
        .route("/v1/videos/generations", post(submit))
        .route("/v1/jobs/{id}", get(poll))
        .route("/v1/jobs/{id}/cancel", post(cancel))
}

fn error_type(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("invalid_request_error", "Invalid request"),
        401 => ("authentication_error", "Invalid or missing API key"),
        402 => ("insufficient_credits", "Wallet empty"),
        404 => ("not_found", "Unknown model or endpoint"),
        429 => ("rate_limit_error", "Over per-minute limit"),
        503 => ("service_unavailable", "Upstream saturated"),
        _ => ("server_error", "Upstream provider failed"),
    }
}

fn error_body(status: u16) -> Value {
    let (kind, message) = error_type(status);
    json!({"error": {"message": message, "type": kind}})
}

fn error(status: StatusCode, message: &str) -> Response {
    let (kind, _) = error_type(status.as_u16());
    (
        status,
        Json(json!({"error": {"message": message, "type": kind}})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    header_value(headers, "authorization") == Some(&format!("Bearer {FAKE_KEY}"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Checks a submit body; the duration on success, else the status and message.
fn validate(body: &Value) -> Result<i64, (StatusCode, String)> {
    let bad = |message: &str| (StatusCode::BAD_REQUEST, message.to_string());
    if !body["model"].as_str().is_some_and(|m| MODELS.contains(&m)) {
        return Err((
            StatusCode::NOT_FOUND,
            format!("Unknown model: {}", body["model"].as_str().unwrap_or("")),
        ));
    }
    if let Some(unknown) = body
        .as_object()
        .and_then(|fields| fields.keys().find(|k| !FIELDS.contains(&k.as_str())))
    {
        return Err(bad(&format!("unknown field: {unknown}")));
    }
    if body["prompt"].as_str().is_none_or(str::is_empty) {
        return Err(bad("prompt is required"));
    }
    let duration = match &body["duration"] {
        Value::Null => 5,
        value => value
            .as_i64()
            .filter(|d| (4..=15).contains(d))
            .ok_or_else(|| bad("duration must be an integer from 4 to 15"))?,
    };
    if !(body["aspect_ratio"].is_null()
        || body["aspect_ratio"]
            .as_str()
            .is_some_and(|r| RATIOS.contains(&r)))
    {
        return Err(bad(&format!(
            "aspect_ratio must be one of {}",
            RATIOS.join(", ")
        )));
    }
    // The docs name no resolution parameter; only the 720p the gateway assumes is accepted.
    if !(body["resolution"].is_null() || body["resolution"].as_str() == Some("720p")) {
        return Err(bad("resolution is not supported for this model"));
    }
    if !(body["webhook_url"].is_null() || body["webhook_url"].is_string()) {
        return Err(bad("webhook_url must be a URL"));
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
        "/v1/videos/generations",
        header_value(&headers, "authorization"),
        body.clone(),
    );
    if let Some(fault) = state.take_fault(PREFIX, "submit") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid or missing API key");
    }
    let duration = match validate(&body) {
        Ok(duration) => duration,
        Err((status, message)) => return error(status, &message),
    };
    let callback = body["webhook_url"].as_str().map(str::to_string);
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let job = state.start_job(PREFIX, "job_", &model, duration, body, callback);
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "id": job.id,
            "object": "job",
            "status": "queued",
            "model": job.model,
            "created": unix_now(),
        })),
    )
        .into_response()
}

fn job_record(state: &FakeState, job: &FakeJob) -> Value {
    let status = match job.phase() {
        Phase::Queued => "queued",
        Phase::Running(p) if p < 50 => "processing",
        Phase::Running(_) => "running",
        Phase::Completed => "completed",
        Phase::Failed => "failed",
        Phase::Canceled => "cancelled",
    };
    let mut record = json!({"id": job.id, "object": "job", "status": status, "model": job.model});
    match job.phase() {
        Phase::Completed => {
            // Both spellings of the docs, by job: ids ending in an even digit get `url`.
            let url_field = if job
                .id
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_digit() && (b - b'0') % 2 == 1)
            {
                "file_url"
            } else {
                "url"
            };
            record["result"] = json!({
                url_field: state.output_url(job),
                "duration": job.seconds,
                "resolution": "1280x720",
            });
        }
        Phase::Failed => {
            record["error"] = json!({"code": "provider_error", "message": "generation failed: content moderation"})
        }
        _ => {}
    }
    record
}

async fn poll(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/v1/jobs/{id}");
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
        return error(StatusCode::UNAUTHORIZED, "Invalid or missing API key");
    }
    let Some(job) = state.job(PREFIX, &id) else {
        return error(StatusCode::NOT_FOUND, "Job not found");
    };
    let min_gap = MIN_POLL_INTERVAL.min(job.duration / 4);
    if state.polled_too_soon(PREFIX, &id, min_gap) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    Json(job_record(&state, &job)).into_response()
}

async fn cancel(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/v1/jobs/{id}/cancel");
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
        return error(StatusCode::UNAUTHORIZED, "Invalid or missing API key");
    }
    match state.cancel_job(PREFIX, &id) {
        Some(true) => match state.job(PREFIX, &id) {
            Some(job) => Json(job_record(&state, &job)).into_response(),
            None => error(StatusCode::NOT_FOUND, "Job not found"),
        },
        Some(false) => error(StatusCode::BAD_REQUEST, "Job already finished"),
        None => error(StatusCode::NOT_FOUND, "Job not found"),
    }
}

/// The completion webhook: the job record, signed `X-Gateway-Signature: t=<unix>,v1=<hex
/// HMAC-SHA256(WEBHOOK_SECRET, "<t>.<body>")>`.
pub fn webhook(state: &FakeState, job: &FakeJob) -> (Vec<(String, String)>, String) {
    let body = job_record(state, job).to_string();
    let t = unix_now();
    let signature = match Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()) {
        Ok(mut mac) => {
            mac.update(format!("{t}.{body}").as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (
        vec![(
            "X-Gateway-Signature".to_string(),
            format!("t={t},v1={signature}"),
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeUpstream;

    async fn fake() -> FakeUpstream {
        FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("fake starts")
    }

    #[test]
    fn submit_bodies_are_validated_as_documented() {
        let ok = json!({"model": "bytedance/seedance-2.0-fast", "prompt": "a boat", "duration": 15,
            "aspect_ratio": "21:9"});
        assert_eq!(validate(&ok), Ok(15));
        for (field, value, status) in [
            ("duration", json!(3), StatusCode::BAD_REQUEST),
            ("aspect_ratio", json!("adaptive"), StatusCode::BAD_REQUEST),
            ("resolution", json!("1080p"), StatusCode::BAD_REQUEST),
            (
                "model",
                json!("bytedance/seedance-2.0-mini"),
                StatusCode::NOT_FOUND,
            ),
            (
                "model",
                json!("bytedance/seedance-2.0"),
                StatusCode::NOT_FOUND,
            ),
            (
                "image_url",
                json!("https://img.example.com/a.png"),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let mut bad = ok.clone();
            bad[field] = value;
            assert_eq!(validate(&bad).map_err(|(s, _)| s), Err(status), "{field}");
        }
    }

    #[tokio::test]
    async fn a_poll_sooner_than_the_interval_answers_304() {
        let fake = fake().await;
        fake.set_job_duration(Duration::from_millis(2_000));
        let base = fake.base_url(PREFIX);
        let client = reqwest::Client::new();
        let submitted: Value = client
            .post(format!("{base}/v1/videos/generations"))
            .bearer_auth(FAKE_KEY)
            .json(&json!({"model": "bytedance/seedance-2.0-fast", "prompt": "a boat"}))
            .send()
            .await
            .expect("submit")
            .json()
            .await
            .expect("json");
        let url = format!("{base}/v1/jobs/{}", submitted["id"].as_str().expect("id"));
        let poll = || client.get(&url).bearer_auth(FAKE_KEY).send();
        assert_eq!(poll().await.expect("poll").status(), StatusCode::OK);
        assert_eq!(
            poll().await.expect("poll").status(),
            StatusCode::NOT_MODIFIED
        );
        // A quarter of the job's two seconds.
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert_eq!(poll().await.expect("poll").status(), StatusCode::OK);
    }
}
