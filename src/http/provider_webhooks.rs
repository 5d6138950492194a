//! `POST /webhooks/providers/{provider}/{token}`: upstream completion callbacks.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::domain::provider_webhooks;
use crate::error::Result;

pub async fn receive(
    State(state): State<AppState>,
    Path((provider, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>> {
    provider_webhooks::receive(&state, &provider, &token, &headers, &body).await?;
    Ok(Json(json!({"received": true})))
}
