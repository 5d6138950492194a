//! `/admin/v1/…/routing`: the routing policy of a tenant or of one API key (see
//! [`crate::domain::routing::policy`]).

use axum::extract::State;
use axum::Json;

use super::params::{key_id, tenant_id};
use crate::domain::admin::{self, PolicyOwner};
use crate::error::Result;
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::AppState;

pub use crate::domain::routing::policy::RoutingPolicyBody;

/// Set a tenant's routing policy
#[utoipa::path(
    put, path = "/admin/v1/tenants/{tenant_id}/routing", tag = "admin", request_body = RoutingPolicyBody,
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = RoutingPolicyBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn put_tenant_routing(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RoutingPolicyBody>,
) -> Result<Json<RoutingPolicyBody>> {
    let owner = PolicyOwner::Tenant(tenant_id(&id)?);
    let level = admin::set_routing_policy(&state.db, &owner, body).await?;
    Ok(Json(RoutingPolicyBody::from_level(level)))
}

/// Set an API key's routing policy
#[utoipa::path(
    put, path = "/admin/v1/keys/{key_id}/routing", tag = "admin", request_body = RoutingPolicyBody,
    params(("key_id" = String, Path)),
    responses((status = 200, body = RoutingPolicyBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn put_key_routing(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RoutingPolicyBody>,
) -> Result<Json<RoutingPolicyBody>> {
    let owner = PolicyOwner::Key(key_id(&id)?);
    let level = admin::set_routing_policy(&state.db, &owner, body).await?;
    Ok(Json(RoutingPolicyBody::from_level(level)))
}

/// Read a tenant's routing policy
#[utoipa::path(
    get, path = "/admin/v1/tenants/{tenant_id}/routing", tag = "admin",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = RoutingPolicyBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn get_tenant_routing(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RoutingPolicyBody>> {
    let owner = PolicyOwner::Tenant(tenant_id(&id)?);
    let level = admin::routing_policy(&state.db, &owner).await?;
    Ok(Json(RoutingPolicyBody::from_level(level)))
}
