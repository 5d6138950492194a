//! `/admin/v1/tenants`: create, list and read tenants, each with its live and test balances.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::tenant_id;
use crate::domain::admin::{self, NewTenant};
use crate::domain::billing::ledger;
use crate::domain::tenants::{BillingKind, Tenant};
use crate::error::{Error, Result};
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::AppState;
use crate::types::money::Mode;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme video app", "billing_kind": "prepaid"}))]
pub struct CreateTenantBody {
    pub name: String,
    /// `prepaid` (default) or `postpaid`.
    pub billing_kind: Option<String>,
    /// Lowest available balance allowed (≤ 0; negative only for postpaid). Default 0.
    pub credit_floor: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantObject {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub billing_kind: &'static str,
    pub credit_floor: i64,
    pub created_at: i64,
    pub balance: BalanceObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceObject {
    /// Credits available to new jobs (live mode).
    pub available: i64,
    /// Credits reserved by running jobs (live mode).
    pub held: i64,
    /// Promotional credit (live mode), consumed before `available`.
    pub promotional: i64,
    /// The same for test keys.
    pub test_available: i64,
    pub test_held: i64,
}

async fn tenant_object(state: &AppState, tenant: &Tenant) -> Result<TenantObject> {
    let live = ledger::balance(&state.db, &tenant.id, Mode::Live).await?;
    let test = ledger::balance(&state.db, &tenant.id, Mode::Test).await?;
    Ok(TenantObject {
        id: tenant.id.to_string(),
        object: "tenant",
        name: tenant.name.clone(),
        billing_kind: tenant.billing_kind.as_str(),
        credit_floor: tenant.credit_floor.get(),
        created_at: tenant.created_at_ms / 1000,
        balance: BalanceObject {
            available: live.available.get(),
            held: live.held.get(),
            promotional: live.promotional.get(),
            test_available: test.available.get(),
            test_held: test.held.get(),
        },
    })
}

/// Create a tenant
#[utoipa::path(
    post, path = "/admin/v1/tenants", tag = "admin", request_body = CreateTenantBody,
    responses((status = 201, body = TenantObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn create_tenant(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<CreateTenantBody>,
) -> Result<(StatusCode, Json<TenantObject>)> {
    let billing_kind = match body.billing_kind.as_deref() {
        None => BillingKind::Prepaid,
        Some(raw) => BillingKind::parse(raw).ok_or_else(|| {
            Error::invalid("billing_kind", "billing_kind must be prepaid or postpaid")
        })?,
    };
    let tenant = admin::create_tenant(
        &state.db,
        NewTenant {
            name: body.name,
            billing_kind,
            credit_floor: crate::domain::billing::amount(
                "credit_floor",
                body.credit_floor.unwrap_or(0),
            )?,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(tenant_object(&state, &tenant).await?),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub object: &'static str,
    pub data: Vec<TenantObject>,
}

/// List tenants
#[utoipa::path(
    get, path = "/admin/v1/tenants", tag = "admin",
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn list_tenants(State(state): State<AppState>, _: Operator) -> Result<Json<TenantList>> {
    let mut data = Vec::new();
    for tenant in admin::tenants(&state.db).await? {
        data.push(tenant_object(&state, &tenant).await?);
    }
    Ok(Json(TenantList {
        object: "list",
        data,
    }))
}

/// Retrieve a tenant with its balances
#[utoipa::path(
    get, path = "/admin/v1/tenants/{tenant_id}", tag = "admin",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = TenantObject), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn get_tenant(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TenantObject>> {
    let tenant = admin::tenant(&state.db, &tenant_id(&id)?).await?;
    Ok(Json(tenant_object(&state, &tenant).await?))
}
