//! The AI/ML API protocol (the "Verified" shape of docs/providers.md), as the fake serves it:
//! `POST /v2/video/generations` and `GET /v2/video/generations?generation_id=…`, with
//! `usd_spent` at the providers' list prices. No cancel and no webhook.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{fault_response, header_value, FakeJob, FakeState, Phase, FAKE_KEY};

pub const PREFIX: &str = "aimlapi";

const PATH: &str = "/v2/video/generations";
const STANDARD: &str = "bytedance/seedance-2-0";
const FAST: &str = "bytedance/seedance-2-0-fast";
const MINI: &str = "bytedance/dreamina-seedance-2-0-mini";

pub fn routes() -> Router<Arc<FakeState>> {
    Router::new().route(PATH, get(poll).post(submit))
}

fn error_body(status: u16) -> Value {
    let message = match status {
        400 => "Bad request",
        401 => "Unauthorized",
        402 => "Insufficient balance",
        404 => "Generation not found",
        429 => "Too many requests",
        _ => "Internal server error",
    };
    json!({"statusCode": status, "message": message})
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"statusCode": status.as_u16(), "message": message})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    header_value(headers, "authorization") == Some(&format!("Bearer {FAKE_KEY}"))
}

/// The list price in US cents per second: Fast $0.10, standard $0.25, Mini $0.05.
pub fn cents_per_second(model: &str) -> i64 {
    match model {
        FAST => 10,
        MINI => 5,
        _ => 25,
    }
}

/// `usd_spent` as a JSON number of dollars, from whole cents (at most two decimals).
fn usd_spent(cents: i64) -> Value {
    // cents / 100 is the nearest double to a two-decimal amount, which serde_json writes back
    // as that amount's shortest decimal text (e.g. 0.35, 1.5).
    json!(cents as f64 / 100.0)
}

/// Validates a submit body as the provider documents: the model and duration, or why the
/// request is a 400.
fn validate(body: &Value) -> Result<(&'static str, i64), String> {
    let bad = |message: &str| Err(message.to_string());
    let model = match body["model"].as_str() {
        Some(STANDARD) => STANDARD,
        Some(FAST) => FAST,
        Some(MINI) => MINI,
        _ => return bad("model must be one of the Seedance 2.0 models"),
    };
    if body["prompt"].as_str().is_none_or(|p| p.trim().is_empty()) {
        return bad("prompt is required");
    }
    let duration = match &body["duration"] {
        Value::Null => Some(5),
        other => other.as_i64(),
    };
    let Some(duration) = duration.filter(|d| (4..=15).contains(d)) else {
        return bad("duration must be an integer from 4 to 15");
    };
    // The API reference allows 1080p for the standard model only; Fast and Mini take
    // 480p | 720p (the seed page's "1080p" for Fast is the narrower source's loser).
    let standard = body["model"].as_str() == Some(STANDARD);
    let resolution_ok = match &body["resolution"] {
        Value::Null => true,
        Value::String(r) => match r.as_str() {
            "480p" | "720p" => true,
            "1080p" => standard,
            _ => false,
        },
        _ => false,
    };
    if !resolution_ok {
        return bad(if standard {
            "resolution must be 480p, 720p or 1080p"
        } else {
            "resolution must be 480p or 720p for this model"
        });
    }
    let ratio_ok = match &body["aspect_ratio"] {
        Value::Null => true,
        Value::String(r) => matches!(r.as_str(), "21:9" | "16:9" | "4:3" | "1:1" | "3:4" | "9:16"),
        _ => false,
    };
    if !ratio_ok {
        return bad("aspect_ratio must be 21:9, 16:9, 4:3, 1:1, 3:4 or 9:16");
    }
    for (field, max) in [("image_urls", 9), ("video_urls", 3), ("audio_urls", 3)] {
        if body[field].as_array().is_some_and(|list| list.len() > max) {
            return bad(&format!("{field} takes at most {max} URLs"));
        }
    }
    Ok((model, duration))
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
        PATH,
        header_value(&headers, "authorization"),
        body.clone(),
    );
    if let Some(fault) = state.take_fault(PREFIX, "submit") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let (model, duration) = match validate(&body) {
        Ok(valid) => valid,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let job = state.start_job(PREFIX, "gen-", model, duration, body, None);
    Json(json!({"id": job.id, "status": "queued"})).into_response()
}

fn generation(state: &FakeState, job: &FakeJob) -> Value {
    let status = match job.phase() {
        Phase::Queued => "queued",
        Phase::Running(_) => "generating",
        Phase::Completed => "completed",
        Phase::Failed | Phase::Canceled => "error",
    };
    let mut object = json!({"id": job.id, "status": status});
    match job.phase() {
        Phase::Completed => {
            let cents = cents_per_second(&job.model) * job.seconds;
            object["video"] = json!({"url": state.output_url(job)});
            // credits_used is the provider's own unit; the fake writes one per cent.
            object["meta"] =
                json!({"usage": {"credits_used": cents, "usd_spent": usd_spent(cents)}});
        }
        Phase::Failed | Phase::Canceled => {
            object["error"] = json!({
                "name": "GenerationError",
                "message": "generation failed: content moderation",
            });
        }
        _ => {}
    }
    object
}

async fn poll(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = query.get("generation_id").cloned().unwrap_or_default();
    state.record(
        PREFIX,
        "poll",
        "GET",
        &format!("{PATH}?generation_id={id}"),
        header_value(&headers, "authorization"),
        Value::Null,
    );
    if let Some(fault) = state.take_fault(PREFIX, "poll") {
        if let Some(response) = fault_response(fault, error_body).await {
            return response;
        }
    }
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    match state.job(PREFIX, &id) {
        Some(job) => Json(generation(&state, &job)).into_response(),
        None => error(StatusCode::NOT_FOUND, "Generation not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_spent_is_written_as_a_two_decimal_number() {
        assert_eq!(usd_spent(35).to_string(), "0.35");
        assert_eq!(usd_spent(150).to_string(), "1.5");
        assert_eq!(usd_spent(375).to_string(), "3.75");
    }

    #[test]
    fn submit_bodies_are_validated_as_documented() {
        let refused = |body: Value| validate(&body).is_err();
        assert!(!refused(json!({"model": FAST, "prompt": "a"})));
        assert!(refused(
            json!({"model": "seedance-2-0-fast", "prompt": "a"})
        ));
        assert!(refused(
            json!({"model": MINI, "prompt": "a", "duration": 16})
        ));
        assert!(refused(
            json!({"model": STANDARD, "prompt": "a", "resolution": "4k"})
        ));
        assert!(refused(
            json!({"model": STANDARD, "prompt": "a", "aspect_ratio": "adaptive"})
        ));
        assert!(refused(
            json!({"model": STANDARD, "prompt": "a", "video_urls": ["1", "2", "3", "4"]})
        ));
    }
}
