//! `/admin/v1`: the operator API — tenants, API keys, credit grants, ledger audit. The same
//! operations are CLI subcommands; both call [`crate::domain::admin`].

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::domain::admin::{self, NewTenant};
use crate::domain::billing::ledger;
use crate::domain::billing::Mode;
use crate::domain::ids::{ApiKeyId, TenantId};
use crate::domain::tenants::{ApiKey, BillingKind, Tenant};
use crate::error::{Error, ErrorBody, Result};
use crate::http::auth::Operator;
use crate::http::extract::ApiJson;
use crate::storage::audit::AuditReport;

/// A `mode` field: `live` (the default) or `test`.
fn parse_mode(raw: Option<&str>) -> Result<Mode> {
    match raw {
        None => Ok(Mode::Live),
        Some(raw) => {
            Mode::parse(raw).ok_or_else(|| Error::invalid("mode", "mode must be live or test"))
        }
    }
}

fn tenant_id(raw: &str) -> Result<TenantId> {
    TenantId::parse(raw).ok_or(Error::NotFound("tenant"))
}

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
) -> Result<(axum::http::StatusCode, Json<TenantObject>)> {
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
        axum::http::StatusCode::CREATED,
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
    for tenant in state.db.list_tenants().await? {
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
    Path(id): Path<String>,
) -> Result<Json<TenantObject>> {
    let tenant = admin::tenant(&state.db, &tenant_id(&id)?).await?;
    Ok(Json(tenant_object(&state, &tenant).await?))
}

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
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> Result<(axum::http::StatusCode, Json<CreatedKey>)> {
    let mode = parse_mode(body.mode.as_deref())?;
    let scopes = body
        .scopes
        .map(|list| {
            list.iter()
                .map(|s| {
                    crate::domain::tenants::Scope::parse(s)
                        .ok_or_else(|| Error::invalid("scopes", format!("unknown scope `{s}`")))
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let expires_at_ms = match body.expires_in_secs {
        Some(secs) if !(1..=10 * 365 * 86_400).contains(&secs) => {
            return Err(Error::invalid(
                "expires_in_secs",
                "expires_in_secs must be from 1 to 10 years",
            ))
        }
        other => other.map(|secs| crate::storage::now_ms() + secs * 1000),
    };
    let options = admin::KeyOptions {
        scopes,
        expires_at_ms,
    };
    let issued = admin::create_key(&state.db, &tenant_id(&id)?, mode, body.name, options).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(CreatedKey {
            key: ApiKeyObject::from(&issued.key),
            secret: issued.secret,
        }),
    ))
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
    Path(id): Path<String>,
) -> Result<Json<ApiKeyList>> {
    let tenant = admin::tenant(&state.db, &tenant_id(&id)?).await?;
    let keys = state.db.list_api_keys(&tenant.id).await?;
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
    Path(id): Path<String>,
) -> Result<Json<ApiKeyObject>> {
    let id = ApiKeyId::parse(&id).ok_or(Error::NotFound("API key"))?;
    let key = admin::revoke_key(&state.db, &id).await?;
    state.forget_key(&id);
    Ok(Json(ApiKeyObject::from(&key)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 10000, "reason": "welcome credit", "mode": "live"}))]
pub struct GrantBody {
    /// Credits to add, > 0.
    pub amount: i64,
    /// Why; kept in the journal.
    pub reason: String,
    /// `live` (default) or `test`.
    pub mode: Option<String>,
    /// Who granted it; defaults to `admin-api`.
    pub actor: Option<String>,
    /// `paid` (default) or `promotional`: promotional credit is kept apart and consumed first.
    pub credit_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantObject {
    pub object: &'static str,
    pub txn_id: String,
    pub tenant_id: String,
    pub mode: &'static str,
    pub amount: i64,
    pub available: i64,
    pub held: i64,
}

/// Grant credits to a tenant
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/grants", tag = "admin", request_body = GrantBody,
    params(("tenant_id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 409")),
    responses((status = 201, body = GrantObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn grant(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<axum::response::Response> {
    use crate::domain::idempotency::{self, Claim, IdempotencyKey, Outcome};
    use axum::response::IntoResponse;
    let tenant = tenant_id(&id)?;
    let mode = parse_mode(body.mode.as_deref())?;
    let credit_type = match body.credit_type.as_deref() {
        None | Some("paid") => admin::CreditType::Paid,
        Some("promotional") => admin::CreditType::Promotional,
        Some(_) => {
            return Err(Error::invalid(
                "credit_type",
                "credit_type must be paid or promotional",
            ))
        }
    };
    let actor = body.actor.clone().unwrap_or_else(|| "admin-api".into());
    if actor.len() > 200 {
        return Err(Error::invalid(
            "actor",
            "actor must be at most 200 characters",
        ));
    }
    let claim = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(Claim {
            scope: "admin".into(),
            key: IdempotencyKey::parse(value.to_str().unwrap_or(""))?,
            hash: idempotency::request_hash(&(
                "grant",
                tenant.as_str(),
                mode.as_str(),
                body.amount,
                &body.reason,
                &actor,
                body.credit_type.as_deref(),
            )),
        }),
    };
    if let Some(claim) = &claim {
        if let Outcome::Replay(answer) = idempotency::check(&state.db, claim).await? {
            return Ok(crate::http::videos::replay(answer));
        }
    }
    let granted = match admin::grant_credits(
        &state.db,
        &tenant,
        mode,
        crate::domain::billing::positive_amount("amount", body.amount)?,
        credit_type,
        &body.reason,
        &actor,
        claim.as_ref(),
    )
    .await
    {
        Ok(granted) => granted,
        Err(Error::Conflict("idempotency_race", _)) => {
            let claim = claim
                .as_ref()
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("race without a key")))?;
            return match idempotency::check(&state.db, claim).await? {
                Outcome::Replay(answer) => Ok(crate::http::videos::replay(answer)),
                Outcome::Proceed => Err(Error::Conflict(
                    "idempotency_in_progress",
                    "retry shortly".into(),
                )),
            };
        }
        Err(error) => return Err(error),
    };
    let response = (
        axum::http::StatusCode::CREATED,
        Json(GrantObject {
            object: "credit_grant",
            txn_id: granted.txn_id.to_string(),
            tenant_id: tenant.to_string(),
            mode: mode.as_str(),
            amount: body.amount,
            available: granted.balance.available.get(),
            held: granted.balance.held.get(),
        }),
    )
        .into_response();
    match &claim {
        Some(claim) => crate::http::videos::remember(&state, claim, response).await,
        None => Ok(response),
    }
}

/// Audit the ledger
///
/// Checks every money invariant on one snapshot: the journal sums to zero, every transaction
/// balances and every cached balance equals its entries; each hold is settled at most once and
/// agrees with the journal and the holds accounts; no video is charged more than it reserved
/// nor refunded more than it was charged; the caps' running totals and the provider slots
/// equal what the jobs say; test-mode money never touches live accounts. Each list names what
/// breaks its invariant; `ok` is true when all are empty.
#[utoipa::path(
    get, path = "/admin/v1/ledger/audit", tag = "admin",
    responses((status = 200, body = AuditReport)),
    security(("admin_token" = []))
)]
pub async fn audit(State(state): State<AppState>, _: Operator) -> Result<Json<AuditReport>> {
    Ok(Json(state.db.audit_ledger().await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminVideo {
    #[serde(flatten)]
    pub video: crate::http::videos::object::VideoObject,
    pub tenant_id: String,
    pub upstream_id: Option<String>,
    /// What the upstream reported it charged, as it wrote it.
    pub upstream_cost: Option<String>,
    pub upstream_cost_micro_usd: Option<i64>,
    /// Providers still available to fail over to.
    pub fallbacks: Vec<String>,
    /// Every upstream call made for the job, oldest first.
    pub attempts: Vec<crate::storage::attempts::AttemptRow>,
}

/// Retrieve any job with its upstream attempts
#[utoipa::path(
    get, path = "/admin/v1/videos/{video_id}", tag = "admin",
    params(("video_id" = String, Path)),
    responses((status = 200, body = AdminVideo), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn get_video(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<AdminVideo>> {
    let id = crate::domain::ids::VideoId::parse(&id).ok_or(Error::NotFound("video"))?;
    let video = state
        .db
        .get_video_any(&id)
        .await?
        .ok_or(Error::NotFound("video"))?;
    let attempts = state.db.attempts_for_video(&id).await?;
    Ok(Json(AdminVideo {
        video: crate::http::videos::object::VideoObject::from(&video),
        tenant_id: video.tenant_id.to_string(),
        upstream_id: video.upstream_id.clone(),
        upstream_cost: video.upstream_cost.clone(),
        upstream_cost_micro_usd: video.upstream_cost_micro_usd,
        fallbacks: video.fallbacks.clone(),
        attempts,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderObject {
    pub name: String,
    pub object: &'static str,
    /// Whether live keys are routed to it.
    pub live: bool,
    /// This replica's circuit breaker for it.
    pub circuit: crate::providers::circuit::CircuitView,
    /// What it serves, per model, as routing sees it (declared, with the operator's
    /// `providers.<name>.capabilities` corrections applied).
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub object: &'static str,
    pub data: Vec<ProviderObject>,
}

fn provider_object(state: &AppState, name: &str) -> ProviderObject {
    ProviderObject {
        name: name.to_string(),
        object: "provider",
        live: state.providers.live_names().any(|n| n == name),
        circuit: state.providers.circuits.view(name),
        capabilities: state
            .providers
            .get(name)
            .and_then(|p| serde_json::to_value(p.capabilities()).ok())
            .unwrap_or_default(),
    }
}

/// List providers with their circuit state
#[utoipa::path(
    get, path = "/admin/v1/providers", tag = "admin",
    responses((status = 200, body = ProviderList)),
    security(("admin_token" = []))
)]
pub async fn list_providers(State(state): State<AppState>, _: Operator) -> Json<ProviderList> {
    let data = state
        .providers
        .names()
        .map(|name| provider_object(&state, name))
        .collect();
    Json(ProviderList {
        object: "list",
        data,
    })
}

/// Close a provider's circuit
///
/// Puts the provider back into routing at once, on this replica.
#[utoipa::path(
    post, path = "/admin/v1/providers/{name}/circuit/reset", tag = "admin",
    params(("name" = String, Path)),
    responses((status = 200, body = ProviderObject), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn reset_circuit(
    State(state): State<AppState>,
    _: Operator,
    Path(name): Path<String>,
) -> Result<Json<ProviderObject>> {
    let provider = state
        .providers
        .get(&name)
        .ok_or(Error::NotFound("provider"))?;
    state.providers.circuits.reset(provider.name());
    Ok(Json(provider_object(&state, provider.name())))
}

/// Every provider name the gateway knows, enabled or not.
pub const PROVIDER_NAMES: [&str; 6] = [
    "seedance-it",
    "apiframe",
    "aigateway",
    "seedanceapi",
    "aimlapi",
    "sandbox",
];

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"strategy": "ordered", "providers": ["seedanceapi", "aimlapi"], "fallback": true, "resubmit_failed": false}))]
pub struct RoutingPolicyBody {
    /// `cheapest`, `fastest` or `ordered`; null inherits.
    pub strategy: Option<String>,
    /// Providers allowed (in order for `ordered`); null inherits, and a list can only narrow
    /// what the level above allows.
    pub providers: Option<Vec<String>>,
    /// Whether a failing provider may hand a job to the next candidate; null inherits.
    pub fallback: Option<bool>,
    /// Whether a job that fails upstream is resubmitted to the next candidate; null inherits.
    pub resubmit_failed: Option<bool>,
}

impl RoutingPolicyBody {
    pub fn into_level(self) -> Result<crate::domain::routing::policy::PolicyLevel> {
        let strategy = self
            .strategy
            .as_deref()
            .map(|s| {
                crate::domain::video::Strategy::parse(s).ok_or_else(|| {
                    Error::invalid("strategy", "strategy must be cheapest, fastest or ordered")
                })
            })
            .transpose()?;
        // One spelling everywhere: the configuration's `seedance_it` is `seedance-it`.
        let providers = self.providers.map(|names| {
            names
                .into_iter()
                .map(|p| p.trim().to_ascii_lowercase().replace('_', "-"))
                .collect::<Vec<_>>()
        });
        if let Some(unknown) = providers
            .iter()
            .flatten()
            .find(|p| !crate::providers::ALL_NAMES.contains(&p.as_str()))
        {
            return Err(Error::invalid(
                "providers",
                format!(
                    "unknown provider `{unknown}`; the providers are {}",
                    crate::providers::ALL_NAMES.join(", ")
                ),
            ));
        }
        Ok(crate::domain::routing::policy::PolicyLevel {
            strategy,
            providers,
            fallback: self.fallback,
            resubmit: self.resubmit_failed,
        })
    }

    fn from_level(level: crate::domain::routing::policy::PolicyLevel) -> Self {
        RoutingPolicyBody {
            strategy: level.strategy.map(|s| s.as_str().to_string()),
            providers: level.providers,
            fallback: level.fallback,
            resubmit_failed: level.resubmit,
        }
    }
}

async fn policy_scope(state: &AppState, scope: &str, id: &str) -> Result<String> {
    match scope {
        "tenant" => Ok(admin::tenant(&state.db, &tenant_id(id)?)
            .await?
            .id
            .to_string()),
        _ => {
            let key = ApiKeyId::parse(id).ok_or(Error::NotFound("API key"))?;
            Ok(state
                .db
                .get_api_key(&key)
                .await?
                .ok_or(Error::NotFound("API key"))?
                .id
                .to_string())
        }
    }
}

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
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RoutingPolicyBody>,
) -> Result<Json<RoutingPolicyBody>> {
    set_policy(&state, "tenant", &id, body).await
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
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RoutingPolicyBody>,
) -> Result<Json<RoutingPolicyBody>> {
    set_policy(&state, "key", &id, body).await
}

/// Stores the routing policy of a tenant or a key (`scope`).
async fn set_policy(
    state: &AppState,
    scope: &str,
    id: &str,
    body: RoutingPolicyBody,
) -> Result<Json<RoutingPolicyBody>> {
    let scope_id = policy_scope(state, scope, id).await?;
    let level = body.into_level()?;
    state
        .db
        .put_routing_policy(scope, &scope_id, &level)
        .await?;
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
    Path(id): Path<String>,
) -> Result<Json<RoutingPolicyBody>> {
    let scope_id = policy_scope(&state, "tenant", &id).await?;
    let level = state
        .db
        .routing_policy("tenant", &scope_id)
        .await?
        .unwrap_or_default();
    Ok(Json(RoutingPolicyBody::from_level(level)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SavingsParams {
    /// First UTC day, `YYYY-MM-DD` (default: 30 days ago).
    pub from: Option<String>,
    /// Last UTC day, inclusive (default: today).
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SavingsDay {
    pub tenant_id: String,
    /// UTC day, `YYYY-MM-DD`.
    pub date: String,
    /// Completed live jobs.
    pub jobs: i64,
    /// What the gateway paid upstream (the providers' reported dollars where given, else the
    /// catalog estimate at the provider that did the job), in micro-USD.
    pub paid_micro_usd: i64,
    /// What the most expensive eligible provider would have cost.
    pub most_expensive_micro_usd: i64,
    pub saved_vs_most_expensive_micro_usd: i64,
    /// What `routing.baseline_provider` would have cost (jobs it could be priced for).
    pub baseline_micro_usd: Option<i64>,
    pub saved_vs_baseline_micro_usd: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SavingsReport {
    pub object: &'static str,
    pub baseline_provider: Option<String>,
    pub data: Vec<SavingsDay>,
}

/// Savings report
///
/// Per tenant and UTC day, the upstream cost the gateway paid for completed live jobs against
/// the most expensive eligible provider and against the configured baseline provider.
#[utoipa::path(
    get, path = "/admin/v1/reports/savings", tag = "admin", params(SavingsParams),
    responses((status = 200, body = SavingsReport), (status = 400, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn savings(
    State(state): State<AppState>,
    _: Operator,
    crate::http::extract::ApiQuery(params): crate::http::extract::ApiQuery<SavingsParams>,
) -> Result<Json<SavingsReport>> {
    use crate::domain::reports::date_of_day;
    let (from, to) = report_window(&params)?;
    let rows = state.db.savings_report(from, to).await?;
    let data = rows
        .into_iter()
        .map(|r| {
            let baseline = (r.jobs_with_baseline > 0).then_some(r.baseline_micro_usd);
            SavingsDay {
                tenant_id: r.tenant_id,
                date: date_of_day(r.day),
                jobs: r.jobs,
                paid_micro_usd: r.paid_micro_usd,
                most_expensive_micro_usd: r.ceiling_micro_usd,
                saved_vs_most_expensive_micro_usd: r.ceiling_micro_usd - r.paid_micro_usd,
                baseline_micro_usd: baseline,
                saved_vs_baseline_micro_usd: baseline.map(|b| b - r.paid_micro_usd),
            }
        })
        .collect();
    Ok(Json(SavingsReport {
        object: "savings_report",
        baseline_provider: state.config.routing.baseline_provider.clone(),
        data,
    }))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[schema(example = json!({"kind": "fixed", "rules": [
    {"model": "seedance-2.0-fast", "credits_per_second": 40},
    {"model": "seedance-2.0-fast", "resolution": "1080p", "credits_per_second": 70},
    {"model": "seedance-2.0", "resolution": "1080p", "input_mode": "reference_video", "credits_per_second": 120}
]}))]
pub enum PricesBody {
    /// Credits per second by model, optionally by resolution and input mode (`text`, `image`,
    /// `reference_video`); the most specific matching rule wins, else the operator's price.
    Fixed { rules: Vec<PriceRuleBody> },
    /// Upstream cost at the chosen provider × (1 + markup), rounded up once.
    CostPlus {
        /// Markup in percent as a decimal string, e.g. `"25"` or `"12.5"`.
        markup_percent: String,
    },
}

/// One rule of a fixed price list.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceRuleBody {
    /// A model id, e.g. `seedance-2.0-fast`.
    pub model: String,
    /// `480p`, `720p` or `1080p`; absent: any.
    pub resolution: Option<String>,
    /// `text`, `image` or `reference_video`; absent: any.
    #[schema(value_type = Option<String>, pattern = "^(text|image|reference_video)$")]
    pub input_mode: Option<crate::domain::billing::pricing::InputMode>,
    /// Credits per second of video (0 or more).
    #[schema(minimum = 0)]
    pub credits_per_second: i64,
}

impl PricesBody {
    /// The prices as set, in the shape they are sent in: canonical model names, the markup
    /// in percent.
    fn from_prices(prices: crate::domain::billing::pricing::TenantPrices) -> PricesBody {
        use crate::domain::billing::pricing::TenantPrices;
        match prices {
            TenantPrices::Fixed { rules } => PricesBody::Fixed {
                rules: rules
                    .into_iter()
                    .map(|rule| PriceRuleBody {
                        model: rule.model.id().to_owned(),
                        resolution: rule.resolution.map(|r| r.as_str().to_owned()),
                        input_mode: rule.input_mode,
                        credits_per_second: rule.credits_per_second,
                    })
                    .collect(),
            },
            TenantPrices::CostPlus { markup_bps } => {
                let (whole, hundredths) = (markup_bps / 100, markup_bps % 100);
                let markup_percent = match hundredths {
                    0 => whole.to_string(),
                    h if h % 10 == 0 => format!("{whole}.{}", h / 10),
                    h => format!("{whole}.{h:02}"),
                };
                PricesBody::CostPlus { markup_percent }
            }
        }
    }

    fn into_prices(self) -> Result<crate::domain::billing::pricing::TenantPrices> {
        use crate::domain::billing::pricing::{PriceRule, TenantPrices};
        match self {
            PricesBody::Fixed { rules } => {
                if rules.is_empty() || rules.len() > 200 {
                    return Err(Error::invalid("rules", "give 1 to 200 rules"));
                }
                let rules = rules
                    .into_iter()
                    .map(|r| {
                        let model =
                            crate::domain::video::Model::parse(&r.model).ok_or_else(|| {
                                Error::invalid(
                                    "rules.model",
                                    format!("unknown model `{}`", r.model),
                                )
                            })?;
                        let resolution = r
                            .resolution
                            .as_deref()
                            .map(|x| {
                                crate::domain::video::Resolution::parse(x).ok_or_else(|| {
                                    Error::invalid(
                                        "rules.resolution",
                                        "resolution must be 480p, 720p or 1080p",
                                    )
                                })
                            })
                            .transpose()?;
                        let rate = crate::domain::billing::non_negative_amount(
                            "rules.credits_per_second",
                            r.credits_per_second,
                        )?;
                        Ok(PriceRule {
                            model,
                            resolution,
                            input_mode: r.input_mode,
                            credits_per_second: rate.get(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(TenantPrices::Fixed { rules })
            }
            PricesBody::CostPlus { markup_percent } => {
                // Percent with up to two decimals → basis points, exactly.
                let micros = crate::providers::upstream::usd_to_micros(&markup_percent)
                    .filter(|m| *m >= 0 && m % 10_000 == 0 && *m <= 10_000 * 1_000_000)
                    .ok_or_else(|| Error::invalid("markup_percent", "markup_percent must be a percentage like \"25\" or \"12.5\" (at most two decimals)"))?;
                Ok(TenantPrices::CostPlus {
                    markup_bps: micros / 10_000,
                })
            }
        }
    }
}

/// Set a tenant's prices
///
/// A fixed price list or cost-plus. Quotes and holds use it at once; jobs already running keep
/// the price they reserved.
#[utoipa::path(
    put, path = "/admin/v1/tenants/{tenant_id}/prices", tag = "admin", request_body = PricesBody,
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = PricesBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn put_prices(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PricesBody>,
) -> Result<Json<PricesBody>> {
    let tenant = admin::tenant(&state.db, &tenant_id(&id)?).await?;
    let prices = body.into_prices()?;
    state.db.put_tenant_prices(&tenant.id, &prices).await?;
    Ok(Json(PricesBody::from_prices(prices)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarginDay {
    pub tenant_id: String,
    pub provider: String,
    /// UTC day, `YYYY-MM-DD`.
    pub date: String,
    pub jobs: i64,
    /// Credits charged to the tenant.
    pub revenue_credits: i64,
    /// The same in micro-USD at `pricing.credits_per_usd` (rounded down).
    pub revenue_micro_usd: i64,
    /// What the gateway paid upstream (reported where given, else the catalog estimate).
    pub upstream_cost_micro_usd: i64,
    pub margin_micro_usd: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarginReport {
    pub object: &'static str,
    pub data: Vec<MarginDay>,
}

fn report_window(params: &SavingsParams) -> Result<(i64, i64)> {
    use crate::domain::reports::day_of_date;
    let today = crate::storage::now_ms().div_euclid(86_400_000);
    let day = |param: &str, value: Option<&str>, default: i64| match value {
        None => Ok(default),
        Some(text) => day_of_date(text).ok_or_else(|| {
            Error::invalid(param, format!("{param} must be a date like 2026-11-21"))
        }),
    };
    let from = day("from", params.from.as_deref(), today - 30)?;
    let to = day("to", params.to.as_deref(), today)?;
    if to < from {
        return Err(Error::invalid("to", "to is before from"));
    }
    Ok((from * 86_400_000, (to + 1) * 86_400_000))
}

/// Margin report
///
/// Per tenant, provider and UTC day: credits charged against the upstream cost, for completed
/// live jobs.
#[utoipa::path(
    get, path = "/admin/v1/reports/margin", tag = "admin", params(SavingsParams),
    responses((status = 200, body = MarginReport), (status = 400, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn margin(
    State(state): State<AppState>,
    _: Operator,
    crate::http::extract::ApiQuery(params): crate::http::extract::ApiQuery<SavingsParams>,
) -> Result<Json<MarginReport>> {
    let (from, to) = report_window(&params)?;
    let per_usd = state.config.pricing.credits_per_usd;
    let data = state
        .db
        .margin_report(from, to)
        .await?
        .into_iter()
        .map(|r| {
            let revenue_micro =
                (i128::from(r.revenue_credits) * 1_000_000 / i128::from(per_usd)) as i64;
            MarginDay {
                tenant_id: r.tenant_id,
                provider: r.provider,
                date: crate::domain::reports::date_of_day(r.day),
                jobs: r.jobs,
                revenue_credits: r.revenue_credits,
                revenue_micro_usd: revenue_micro,
                upstream_cost_micro_usd: r.cost_micro_usd,
                margin_micro_usd: revenue_micro - r.cost_micro_usd,
            }
        })
        .collect();
    Ok(Json(MarginReport {
        object: "margin_report",
        data,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MismatchParams {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Flag jobs whose reported cost differs from the estimate by more than this (default 10).
    pub threshold_percent: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostMismatch {
    pub video_id: String,
    pub tenant_id: String,
    pub provider: Option<String>,
    /// What the upstream reported, as written.
    pub reported: Option<String>,
    pub reported_micro_usd: Option<i64>,
    pub estimated_micro_usd: Option<i64>,
}

/// A submit whose answer was lost: the provider may hold, and bill, a job the gateway never
/// saw. Reconcile it with the provider's invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct PossibleOrphan {
    pub video_id: String,
    pub tenant_id: String,
    pub provider: String,
    /// Unix seconds of the submit.
    pub attempted_at: i64,
    pub error: Option<String>,
    /// The request as the gateway normalized it.
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostMismatchList {
    pub object: &'static str,
    pub threshold_percent: i64,
    pub data: Vec<CostMismatch>,
    /// Submits in the window whose answer was lost (see [`PossibleOrphan`]).
    pub possible_orphans: Vec<PossibleOrphan>,
}

/// Jobs whose upstream cost differs from the catalog
///
/// Flags completed jobs whose upstream-reported cost differs from the price catalog's estimate
/// by more than `threshold_percent`: a provider changed its prices, or bills differently.
#[utoipa::path(
    get, path = "/admin/v1/reports/cost_mismatches", tag = "admin", params(MismatchParams),
    responses((status = 200, body = CostMismatchList), (status = 400, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn cost_mismatches(
    State(state): State<AppState>,
    _: Operator,
    crate::http::extract::ApiQuery(params): crate::http::extract::ApiQuery<MismatchParams>,
) -> Result<Json<CostMismatchList>> {
    let threshold = params.threshold_percent.unwrap_or(10);
    if !(0..=10_000).contains(&threshold) {
        return Err(Error::invalid(
            "threshold_percent",
            "threshold_percent must be from 0 to 10000",
        ));
    }
    let (from, to) = report_window(&SavingsParams {
        from: params.from,
        to: params.to,
    })?;
    let data = state
        .db
        .cost_mismatches(from, to, threshold, 500)
        .await?
        .into_iter()
        .map(|v| CostMismatch {
            video_id: v.id.to_string(),
            tenant_id: v.tenant_id.to_string(),
            provider: v.provider.clone(),
            reported: v.upstream_cost.clone(),
            reported_micro_usd: v.upstream_cost_micro_usd,
            estimated_micro_usd: v.upstream_estimate_micro,
        })
        .collect();
    let possible_orphans = state
        .db
        .possible_orphans(from, to, 500)
        .await?
        .into_iter()
        .map(|o| PossibleOrphan {
            video_id: o.video_id,
            tenant_id: o.tenant_id,
            provider: o.provider,
            attempted_at: o.attempted_at_ms / 1000,
            error: o.error,
            request: o.request,
        })
        .collect();
    Ok(Json(CostMismatchList {
        object: "list",
        threshold_percent: threshold,
        data,
        possible_orphans,
    }))
}

/// The operator's idempotency claim for a money call, from its `Idempotency-Key` header.
fn operator_claim(
    headers: &axum::http::HeaderMap,
    request: &impl Serialize,
) -> Result<Option<crate::domain::idempotency::Claim>> {
    use crate::domain::idempotency::{request_hash, Claim, IdempotencyKey};
    headers
        .get("idempotency-key")
        .map(|value| {
            Ok(Claim {
                scope: "admin".into(),
                key: IdempotencyKey::parse(value.to_str().unwrap_or(""))?,
                hash: request_hash(request),
            })
        })
        .transpose()
}

/// Runs an operator money call once per idempotency key: replays a stored answer, waits out a
/// concurrent first use, and stores the answer of the first.
async fn once(
    state: &AppState,
    claim: Option<crate::domain::idempotency::Claim>,
    run: impl std::future::Future<Output = Result<axum::response::Response>>,
) -> Result<axum::response::Response> {
    use crate::domain::idempotency::{self, Outcome};
    if let Some(claim) = &claim {
        if let Outcome::Replay(answer) = idempotency::check(&state.db, claim).await? {
            return Ok(crate::http::videos::replay(answer));
        }
    }
    match (run.await, &claim) {
        (Ok(response), Some(claim)) => crate::http::videos::remember(state, claim, response).await,
        (Ok(response), None) => Ok(response),
        (Err(Error::Conflict("idempotency_race", _)), Some(claim)) => {
            match idempotency::check(&state.db, claim).await? {
                Outcome::Replay(answer) => Ok(crate::http::videos::replay(answer)),
                Outcome::Proceed => Err(Error::Conflict(
                    "idempotency_in_progress",
                    "retry shortly".into(),
                )),
            }
        }
        (Err(error), _) => Err(error),
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": -250, "reason": "duplicate grant on 2026-11-20", "actor": "ops@example.com"}))]
pub struct AdjustmentBody {
    /// Credits to add (positive) or take (negative) from the tenant's paid balance.
    pub amount: i64,
    pub reason: String,
    /// `live` (default) or `test`.
    pub mode: Option<String>,
    pub actor: Option<String>,
}

/// Adjust a tenant's balance
///
/// A correction by the operator, with its reason and actor in the journal. A debit cannot take
/// the balance below the tenant's floor.
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/adjustments", tag = "admin", request_body = AdjustmentBody,
    params(("tenant_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = GrantObject), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn adjust(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<AdjustmentBody>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let tenant = tenant_id(&id)?;
    let mode = parse_mode(body.mode.as_deref())?;
    let actor = body.actor.clone().unwrap_or_else(|| "admin-api".into());
    let claim = operator_claim(&headers, &("adjustment", tenant.as_str(), &body))?;
    let run = async {
        let adjusted = admin::adjust_credits(
            &state.db,
            &tenant,
            mode,
            body.amount,
            &body.reason,
            &actor,
            claim.as_ref(),
        )
        .await?;
        Ok((
            axum::http::StatusCode::CREATED,
            Json(GrantObject {
                object: "credit_adjustment",
                txn_id: adjusted.txn_id.to_string(),
                tenant_id: tenant.to_string(),
                mode: mode.as_str(),
                amount: body.amount,
                available: adjusted.balance.available.get(),
                held: adjusted.balance.held.get(),
            }),
        )
            .into_response())
    };
    once(&state, claim.clone(), run).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 100, "reason": "artifacts in the last second"}))]
pub struct RefundBody {
    /// Credits to give back; default: all that is left of the charge.
    pub amount: Option<i64>,
    pub reason: String,
    pub actor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundObject {
    pub object: &'static str,
    pub txn_id: String,
    pub video_id: String,
    pub amount: i64,
}

/// Refund a video
///
/// Gives credits back to whoever paid for a completed video (the tenant's balance or the end
/// user's wallet). All refunds of one video together never exceed what it was charged.
#[utoipa::path(
    post, path = "/admin/v1/videos/{video_id}/refund", tag = "admin", request_body = RefundBody,
    params(("video_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = RefundObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn refund(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<RefundBody>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let video = crate::domain::ids::VideoId::parse(&id).ok_or(Error::NotFound("video"))?;
    let actor = body.actor.clone().unwrap_or_else(|| "admin-api".into());
    let claim = operator_claim(&headers, &("refund", video.as_str(), &body))?;
    let run = async {
        let (txn, amount) = admin::refund_video(
            &state.db,
            &video,
            body.amount,
            &body.reason,
            &actor,
            claim.as_ref(),
        )
        .await?;
        Ok((
            axum::http::StatusCode::CREATED,
            Json(RefundObject {
                object: "refund",
                txn_id: txn.to_string(),
                video_id: video.to_string(),
                amount: amount.get(),
            }),
        )
            .into_response())
    };
    once(&state, claim.clone(), run).await
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
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RotateKeyBody>,
) -> Result<(axum::http::StatusCode, Json<CreatedKey>)> {
    let id = ApiKeyId::parse(&id).ok_or(Error::NotFound("API key"))?;
    let issued = admin::rotate_key(&state.db, &id, body.overlap_secs.unwrap_or(86_400)).await?;
    state.forget_key(&id);
    Ok((
        axum::http::StatusCode::CREATED,
        Json(CreatedKey {
            key: ApiKeyObject::from(&issued.key),
            secret: issued.secret,
        }),
    ))
}

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
    Path(id): Path<String>,
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
    request_body = crate::storage::end_users::TenantQuotas,
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = crate::storage::end_users::TenantQuotas), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn put_quotas(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<crate::storage::end_users::TenantQuotas>,
) -> Result<Json<crate::storage::end_users::TenantQuotas>> {
    admin::set_tenant_quotas(&state.db, &tenant_id(&id)?, &body).await?;
    Ok(Json(body))
}
