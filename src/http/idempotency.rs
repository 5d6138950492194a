//! The `Idempotency-Key` header at the edge, for every POST that creates something or moves
//! money: the key read from the request, the request run once through
//! [`crate::domain::idempotency::once`], its first answer stored and later answers replayed
//! as HTTP responses (marked `idempotent-replayed: true`).

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::idempotency::{self, Answer, Claim, Committed, IdempotencyKey, StoredAnswer};
use crate::error::{Error, Result};
use crate::http::AppState;

/// The request's `Idempotency-Key` header as sent. Extracting it never fails: a malformed key
/// is refused by [`IdempotencyHeader::claim`], after the handler's own checks of the request.
pub struct IdempotencyHeader(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(IdempotencyHeader(
            parts.headers.get("idempotency-key").cloned(),
        ))
    }
}

impl IdempotencyHeader {
    /// The claim of a request with a key: the key, kept apart per `scope` (a tenant, or the
    /// operator), and what the request is (`request`, called only when there is a key), to
    /// tell a repeat from another request. `None` without the header; 400 for a malformed key.
    pub fn claim<R: Serialize>(
        &self,
        scope: &str,
        request: impl FnOnce() -> R,
    ) -> Result<Option<Claim>> {
        self.0
            .as_ref()
            .map(|value| {
                let key = IdempotencyKey::parse(value.to_str().unwrap_or(""))?;
                Ok(Claim {
                    scope: scope.to_string(),
                    key,
                    hash: idempotency::request_hash(&request()),
                })
            })
            .transpose()
    }
}

/// Runs a request once per key: replays a stored answer, waits out a concurrent first use,
/// and stores the answer of the first. Without a key it just runs the request. When the
/// first request committed but its answer was lost, `rebuild` answers from what it created;
/// that answer is stored for later repeats and marked as replayed.
pub async fn once(
    state: &AppState,
    claim: Option<&Claim>,
    run: impl Future<Output = Result<Response>>,
    rebuild: impl AsyncFnOnce(Committed) -> Result<Response>,
) -> Result<Response> {
    let in_flight_ms = i64::try_from(state.config.server.request_timeout_secs.max(1))
        .unwrap_or(i64::MAX / 2_000)
        .saturating_mul(1000);
    let wait = std::time::Duration::from_millis(state.config.server.idempotency_wait_ms);
    match idempotency::once(&state.db, claim, in_flight_ms, wait, run).await? {
        Answer::Replay(answer) => Ok(replay(answer)),
        Answer::First(response) => match claim {
            Some(claim) => remember(state, claim, response).await,
            None => Ok(response),
        },
        Answer::Rebuild(committed) => {
            let response = rebuild(committed).await?;
            let response = match claim {
                Some(claim) => remember(state, claim, response).await?,
                None => response,
            };
            Ok(mark_replayed(response))
        }
    }
}

/// The answer to a repeat of a money move whose first answer was lost: the move was applied
/// once (the journal shows it), and is not applied again.
pub async fn answer_lost(_: Committed) -> Result<Response> {
    Err(Error::Conflict(
        "idempotency_answer_lost",
        "the request with this Idempotency-Key was applied once, but its answer was lost; \
         the journal shows its effect"
            .into(),
    ))
}

/// Headers that are part of an answer worth replaying.
const REPLAYED_HEADERS: [&str; 5] = [
    "content-type",
    "x-gateway-provider",
    "x-gateway-route",
    "openai-poll-after-ms",
    "retry-after",
];

/// Stores the answer of a key's first request (if the request created anything) and returns it.
async fn remember(state: &AppState, claim: &Claim, response: Response) -> Result<Response> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("reading an answer to store it: {e}")))?;
    let answer = StoredAnswer {
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        headers: REPLAYED_HEADERS
            .iter()
            .filter_map(|name| {
                parts
                    .headers
                    .get(*name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| (name.to_string(), v.to_string()))
            })
            .collect(),
    };
    idempotency::remember(&state.db, claim, &answer).await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// A stored answer, as it was first given, marked as replayed.
fn replay(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            response.headers_mut().insert(name, value);
        }
    }
    mark_replayed(response)
}

fn mark_replayed(mut response: Response) -> Response {
    response.headers_mut().insert(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    );
    response
}
