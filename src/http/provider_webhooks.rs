//! `POST /webhooks/providers/{provider}/{token}`: upstream completion callbacks.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::domain::provider_webhooks;
use crate::error::{Error, Result};
use crate::http::extract::ApiPath;
use crate::http::AppState;
use crate::types::ids::ProviderId;

/// Receive an upstream provider's webhook
///
/// The URL is the one the gateway handed the provider for one job. Signed providers' signatures
/// are verified; the job's state is then confirmed by polling the provider, at most once per
/// `workers.webhook_poll_floor_ms` however many deliveries arrive.
#[utoipa::path(
    post, path = "/webhooks/providers/{provider}/{token}", tag = "operations",
    params(("provider" = String, Path), ("token" = String, Path, description = "The job's callback token")),
    request_body(content = Object, description = "The provider's own payload"),
    responses(
        (status = 200, description = "Accepted", body = Object),
        (status = 400, body = crate::http::error::ErrorBody),
        (status = 401, description = "Bad signature", body = crate::http::error::ErrorBody),
        (status = 404, description = "Unknown token or provider", body = crate::http::error::ErrorBody),
        (status = 409, description = "`webhook_replayed`: a signed delivery received before for this job (Apiframe); nothing changed", body = crate::http::error::ErrorBody),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    ApiPath((provider, token)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>> {
    let provider = ProviderId::parse(&provider).ok_or(Error::NotFound("webhook"))?;
    provider_webhooks::receive(&state, provider, &token, &headers, &body).await?;
    Ok(Json(json!({"received": true})))
}
