//! `/admin/v1/…/keys`: issue, list, revoke and rotate a tenant's API keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::{key_id, parse_mode, tenant_id};
use crate::domain::admin;
use crate::domain::tenants::{ApiKey, Scope};
use crate::error::{Error, Result};
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mode": "test", "name": "staging"}))]
pub struct CreateKeyBody {
    /// `live` (default) or `test`.
    pub mode: Option<String>,
    pub name: Option<String>,
    /// Scopes the key has (default: all): `videos:write`, `videos:read`, `billing:read`,
    /// `end_users:write`.
    pub scopes: Option<Vec<String>>,
    /// Seconds until the key stops working (default: never).
    pub expires_in_secs: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyObject {
    pub id: String,
    pub object: &'static str,
    pub tenant_id: String,
    pub mode: &'static str,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub display_prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// Scopes; null means all.
    pub scopes: Option<Vec<&'static str>>,
    /// Unix seconds after which the key stops working.
    pub expires_at: Option<i64>,
}

impl From<&ApiKey> for ApiKeyObject {
    fn from(key: &ApiKey) -> Self {
        ApiKeyObject {
            id: key.id.to_string(),
            object: "api_key",
            tenant_id: key.tenant_id.to_string(),
            mode: key.mode.as_str(),
            name: key.name.clone(),
            display_prefix: key.display_prefix.clone(),
            created_at: key.created_at_ms / 1000,
            revoked_at: key.revoked_at_ms.map(|t| t / 1000),
            last_used_at: key.last_used_at_ms.map(|t| t / 1000),
            scopes: key
                .scopes
                .as_ref()
                .map(|s| s.iter().map(|s| s.as_str()).collect()),
            expires_at: key.expires_at_ms.map(|t| t / 1000),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKeyObject,
    /// The key itself. Shown only in this response; store it now.
    pub secret: String,
}

impl From<admin::IssuedKey> for CreatedKey {
    fn from(issued: admin::IssuedKey) -> Self {
        CreatedKey {
            key: ApiKeyObject::from(&issued.key),
            secret: issued.secret,
        }
    }
}

/// Create an API key
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/keys", tag = "admin", request_body = CreateKeyBody,
    params(("tenant_id" = String, Path)),
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn create_key(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> Result<(StatusCode, Json<CreatedKey>)> {
    let mode = parse_mode(body.mode.as_deref())?;
    let scopes = body
        .scopes
        .map(|list| {
            list.iter()
                .map(|s| {
                    Scope::parse(s)
                        .ok_or_else(|| Error::invalid("scopes", format!("unknown scope `{s}`")))
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let options = admin::KeyOptions {
        scopes,
        expires_at_ms: admin::expiry_in(body.expires_in_secs)?,
    };
    let issued = admin::create_key(&state.db, &tenant_id(&id)?, mode, body.name, options).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey::from(issued))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub object: &'static str,
    pub data: Vec<ApiKeyObject>,
}

/// List a tenant's API keys
#[utoipa::path(
    get, path = "/admin/v1/tenants/{tenant_id}/keys", tag = "admin",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = ApiKeyList), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn list_keys(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKeyList>> {
    let keys = admin::list_keys(&state.db, &tenant_id(&id)?).await?;
    Ok(Json(ApiKeyList {
        object: "list",
        data: keys.iter().map(ApiKeyObject::from).collect(),
    }))
}

/// Revoke an API key
///
/// Takes effect on the next request.
#[utoipa::path(
    post, path = "/admin/v1/keys/{key_id}/revoke", tag = "admin",
    params(("key_id" = String, Path)),
    responses((status = 200, body = ApiKeyObject), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKeyObject>> {
    let id = key_id(&id)?;
    let key = admin::revoke_key(&state.db, &id).await?;
    state.forget_key(&id);
    Ok(Json(ApiKeyObject::from(&key)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyBody {
    /// Seconds the old key keeps working (default 86400).
    pub overlap_secs: Option<i64>,
}

/// Rotate an API key
///
/// Issues a new key with the same tenant, mode, name and scopes; the old one keeps working
/// for the overlap period, then expires.
#[utoipa::path(
    post, path = "/admin/v1/keys/{key_id}/rotate", tag = "admin", request_body = RotateKeyBody,
    params(("key_id" = String, Path)),
    responses((status = 201, body = CreatedKey), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RotateKeyBody>,
) -> Result<(StatusCode, Json<CreatedKey>)> {
    let id = key_id(&id)?;
    let issued = admin::rotate_key(&state.db, &id, body.overlap_secs.unwrap_or(86_400)).await?;
    state.forget_key(&id);
    Ok((StatusCode::CREATED, Json(CreatedKey::from(issued))))
}
