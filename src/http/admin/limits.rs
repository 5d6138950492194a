//! `PUT /admin/v1/tenants/{tenant_id}/limits` and `…/quotas`: a tenant's request rate and its
//! caps on jobs, credits and seconds of video.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::tenant_id;
use crate::domain::admin;
use crate::domain::end_users::TenantQuotas;
use crate::error::Result;
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::AppState;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"requests_per_minute": 600, "burst": 50}))]
pub struct TenantLimitsBody {
    /// Requests per minute for this tenant's keys together.
    pub requests_per_minute: i64,
    /// Requests allowed back to back.
    pub burst: i64,
}

/// Set a tenant's request rate
///
/// Replaces `limits.tenant_requests_per_minute` for this tenant, on every replica within a
/// few seconds.
#[utoipa::path(
    put, path = "/admin/v1/tenants/{tenant_id}/limits", tag = "admin", request_body = TenantLimitsBody,
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = TenantLimitsBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn put_limits(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<TenantLimitsBody>,
) -> Result<Json<TenantLimitsBody>> {
    let tenant = tenant_id(&id)?;
    admin::set_tenant_rate(&state.db, &tenant, body.requests_per_minute, body.burst).await?;
    state
        .tenant_rates
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(tenant.as_str());
    Ok(Json(body))
}

/// Set a tenant's caps
///
/// Concurrent jobs, credits per UTC day and month, seconds of video per UTC day; a field left
/// out has no cap. Checked in the transaction that creates each job, so they hold exactly
/// under parallel load and across replicas.
#[utoipa::path(
    put, path = "/admin/v1/tenants/{tenant_id}/quotas", tag = "admin",
    request_body = crate::domain::end_users::TenantQuotas,
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = crate::domain::end_users::TenantQuotas), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn put_quotas(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<TenantQuotas>,
) -> Result<Json<TenantQuotas>> {
    admin::set_tenant_quotas(&state.db, &tenant_id(&id)?, &body).await?;
    Ok(Json(body))
}
