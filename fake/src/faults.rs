//! Faults a test injects into the next calls (`FakeUpstream::inject`, `POST /_fake/faults`),
//! and how a misbehaving provider answers each.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status (and the provider's error body), optionally `Retry-After`.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Wait this long before answering normally (longer than the client's timeout: a timeout).
    Hang { millis: u64 },
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Answer 200 with JSON cut off in the middle.
    Truncated,
    /// Do the work (a submit creates its job upstream), then cut the answer off in the middle
    /// of its JSON: the job exists, but its caller cannot read its id.
    LostAnswer,
}

tokio::task_local! {
    /// Set while a request whose answer must be lost (see [`Fault::LostAnswer`]) is handled.
    static LOSE_ANSWER: std::cell::Cell<bool>;
}

/// Cuts off the answer of a request handled under [`Fault::LostAnswer`], after the handler
/// did its work.
pub(crate) async fn lose_answers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (lose, response) = LOSE_ANSWER
        .scope(std::cell::Cell::new(false), async {
            let response = next.run(request).await;
            (LOSE_ANSWER.with(|flag| flag.get()), response)
        })
        .await;
    if !lose {
        return response;
    }
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let cut = body.len() / 2;
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.slice(..cut),
    )
        .into_response()
}

/// Answers a fault the way a misbehaving provider would. `error_body` is the provider's
/// error shape for a status.
pub async fn fault_response(fault: Fault, error_body: fn(u16) -> Value) -> Option<Response> {
    match fault {
        Fault::Status {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (code, Json(error_body(status))).into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Some(response)
        }
        Fault::Hang { millis } => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            None
        }
        Fault::Malformed => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "<html>upstream proxy error</html>",
            )
                .into_response(),
        ),
        Fault::LostAnswer => {
            // The handler goes on; the answer it makes is cut off on the way out.
            let _ = LOSE_ANSWER.try_with(|flag| flag.set(true));
            None
        }
        Fault::Truncated => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"job_id\": \"abc\", \"sta",
            )
                .into_response(),
        ),
    }
}
