//! Tenant webhooks over HTTP: endpoints (create, list, disable/enable, rotate the secret), the
//! secret for per-request `webhook_url` deliveries, and the delivery log with redelivery.
//! The same endpoint operations exist for the operator under `/admin/v1/tenants/{id}`.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::access::{self, Reach};
use crate::domain::webhooks::{self, Endpoint, EndpointRequest};
use crate::error::{Error, Result};
use crate::http::auth::{Caller, Operator};
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::http::AppState;
use crate::types::ids::TenantId;
use crate::types::money::Mode;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://app.example.com/hooks/videos", "events": ["video.completed", "video.failed"], "description": "production"}))]
pub struct EndpointBody {
    /// Where messages are posted (http or https; internal addresses are refused).
    pub url: String,
    /// Event types to receive; all of `video.completed`, `video.failed`, `video.canceled` when
    /// left out.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// `live` or `test`: the mode of the videos whose events it receives. A tenant's key
    /// creates endpoints of its own mode (naming the other is refused); the operator's default
    /// is `live`.
    #[schema(value_type = Option<String>, example = "live")]
    pub mode: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointObject {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: &'static str,
    /// `live` or `test`: it receives the events of this mode's videos only.
    pub mode: &'static str,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    /// `enabled` or `disabled`.
    pub status: &'static str,
    pub disabled_reason: Option<String>,
    /// The `whsec_…` signing secret: shown when the endpoint is created or its secret rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Until when (unix seconds) the previous secret also signs, after a rotation.
    pub previous_secret_expires_at: Option<i64>,
    pub created_at: i64,
}

impl EndpointObject {
    fn new(endpoint: Endpoint, show_secret: bool) -> EndpointObject {
        let now = crate::clock::now_ms();
        EndpointObject {
            object: "webhook_endpoint",
            mode: endpoint.mode.as_str(),
            status: if endpoint.disabled_at.is_some() {
                "disabled"
            } else {
                "enabled"
            },
            previous_secret_expires_at: endpoint
                .previous_expires_at
                .filter(|until| *until > now)
                .map(|ms| ms / 1000),
            secret: show_secret.then_some(endpoint.secret),
            id: endpoint.id,
            url: endpoint.url,
            description: endpoint.description,
            events: endpoint.events,
            disabled_reason: endpoint.disabled_reason,
            created_at: endpoint.created_at / 1000,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub object: &'static str,
    pub data: Vec<EndpointObject>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// Seconds the previous secret keeps signing alongside the new one (0-604800; default
    /// `webhooks.secret_overlap_secs`).
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_secs: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestSecret {
    /// Always `webhook_secret`.
    pub object: &'static str,
    /// Signs deliveries to the `webhook_url` given in a create request.
    pub secret: String,
    pub previous_secret_expires_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptObject {
    pub attempted_at: i64,
    /// The HTTP status the target answered; null when no answer came.
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The first 512 bytes of the response body.
    pub response: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageObject {
    /// The `webhook-id` the message is sent with, the same on every attempt.
    pub id: String,
    /// Always `webhook_message`.
    pub object: &'static str,
    pub event_type: String,
    pub video_id: String,
    pub endpoint_id: Option<String>,
    /// The per-request target, when the message is for a create's `webhook_url`.
    pub url: Option<String>,
    /// `pending`, `delivered`, `failed` or `canceled`.
    pub status: &'static str,
    pub attempts: i64,
    /// When the next attempt is due (unix seconds), while pending.
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
    pub attempt_log: Vec<AttemptObject>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub object: &'static str,
    pub data: Vec<MessageObject>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// Only the messages about this video.
    pub video_id: Option<String>,
    /// At most this many, newest first (1-100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

fn message_object(log: webhooks::MessageLog) -> MessageObject {
    let webhooks::MessageLog { message, attempts } = log;
    MessageObject {
        object: "webhook_message",
        status: message.state.as_str(),
        next_attempt_at: (message.state == webhooks::MessageState::Pending)
            .then_some(message.next_attempt_at / 1000),
        id: message.id,
        event_type: message.event_type,
        video_id: message.video_id,
        endpoint_id: message.endpoint_id,
        url: message.url,
        attempts: message.attempts,
        last_status: message.last_status,
        last_error: message.last_error,
        delivered_at: message.delivered_at.map(|ms| ms / 1000),
        created_at: message.created_at / 1000,
        attempt_log: attempts
            .into_iter()
            .map(|a| AttemptObject {
                attempted_at: a.attempted_at / 1000,
                status: a.status,
                latency_ms: a.latency_ms,
                error: a.error,
                response: a.response,
            })
            .collect(),
    }
}

/// The request and the mode it names, if any.
fn request(body: EndpointBody) -> Result<(EndpointRequest, Option<Mode>)> {
    let mode = body
        .mode
        .as_deref()
        .map(|raw| {
            Mode::parse(raw).ok_or_else(|| Error::invalid("mode", "mode must be live or test"))
        })
        .transpose()?;
    let request = EndpointRequest {
        url: body.url,
        events: body.events,
        description: body.description,
    };
    Ok((request, mode))
}

fn list(endpoints: Vec<Endpoint>) -> EndpointList {
    EndpointList {
        object: "list",
        data: endpoints
            .into_iter()
            .map(|e| EndpointObject::new(e, false))
            .collect(),
    }
}

/// Create a webhook endpoint
///
/// The answer carries the endpoint's `whsec_` signing secret; later reads do not.
#[utoipa::path(
    post, path = "/v1/webhook_endpoints", tag = "webhooks", request_body = EndpointBody,
    responses((status = 200, body = EndpointObject), (status = 400, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn create_endpoint(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<Json<EndpointObject>> {
    let reach = access::webhooks(&principal)?;
    let (request, mode) = request(body)?;
    if mode.is_some_and(|mode| mode != reach.mode) {
        return Err(Error::invalid(
            "mode",
            format!(
                "a {} key creates {} endpoints",
                reach.mode.as_str(),
                reach.mode.as_str()
            ),
        ));
    }
    let endpoint = webhooks::create_endpoint(&state, &reach, request).await?;
    Ok(Json(EndpointObject::new(endpoint, true)))
}

/// List webhook endpoints
#[utoipa::path(
    get, path = "/v1/webhook_endpoints", tag = "webhooks",
    responses((status = 200, body = EndpointList)),
    security(("api_key" = []))
)]
pub async fn list_endpoints(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<EndpointList>> {
    let reach = access::webhooks(&principal)?;
    Ok(Json(list(webhooks::endpoints(&state, &reach).await?)))
}

/// Retrieve a webhook endpoint
#[utoipa::path(
    get, path = "/v1/webhook_endpoints/{endpoint_id}", tag = "webhooks",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointObject), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn get_endpoint(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointObject>> {
    let reach = access::webhooks(&principal)?;
    let endpoint = webhooks::endpoint(&state, &reach, &id).await?;
    Ok(Json(EndpointObject::new(endpoint, false)))
}

/// Disable a webhook endpoint
///
/// Pending messages to it are canceled when they come due.
#[utoipa::path(
    post, path = "/v1/webhook_endpoints/{endpoint_id}/disable", tag = "webhooks",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointObject), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn disable_endpoint(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointObject>> {
    let reach = access::webhooks(&principal)?;
    let endpoint = webhooks::set_disabled(&state, &reach, &id, true).await?;
    Ok(Json(EndpointObject::new(endpoint, false)))
}

/// Enable a webhook endpoint again
#[utoipa::path(
    post, path = "/v1/webhook_endpoints/{endpoint_id}/enable", tag = "webhooks",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointObject), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn enable_endpoint(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointObject>> {
    let reach = access::webhooks(&principal)?;
    let endpoint = webhooks::set_disabled(&state, &reach, &id, false).await?;
    Ok(Json(EndpointObject::new(endpoint, false)))
}

/// Rotate a webhook endpoint's secret
///
/// The new secret is returned; the old one keeps signing alongside it (both signatures are
/// sent) for `overlap_secs`.
#[utoipa::path(
    post, path = "/v1/webhook_endpoints/{endpoint_id}/rotate_secret", tag = "webhooks",
    params(("endpoint_id" = String, Path)), request_body = Option<RotateBody>,
    responses((status = 200, body = EndpointObject), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn rotate_endpoint(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<RotateBody>,
) -> Result<Json<EndpointObject>> {
    let reach = access::webhooks(&principal)?;
    let overlap = body.unwrap_or_default().overlap_secs;
    let endpoint = webhooks::rotate(&state, &reach, &id, overlap).await?;
    Ok(Json(EndpointObject::new(endpoint, true)))
}

fn secret_object(secret: (String, Option<String>, Option<i64>)) -> RequestSecret {
    let now = crate::clock::now_ms();
    RequestSecret {
        object: "webhook_secret",
        secret: secret.0,
        previous_secret_expires_at: secret.2.filter(|until| *until > now).map(|ms| ms / 1000),
    }
}

/// The secret for per-request `webhook_url` deliveries
#[utoipa::path(
    get, path = "/v1/webhook_secret", tag = "webhooks",
    responses((status = 200, body = RequestSecret)),
    security(("api_key" = []))
)]
pub async fn get_request_secret(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<RequestSecret>> {
    let reach = access::webhooks(&principal)?;
    Ok(Json(secret_object(
        webhooks::request_secret(&state, &reach.tenant, reach.mode).await?,
    )))
}

/// Rotate the secret for per-request `webhook_url` deliveries
#[utoipa::path(
    post, path = "/v1/webhook_secret/rotate", tag = "webhooks", request_body = Option<RotateBody>,
    responses((status = 200, body = RequestSecret)),
    security(("api_key" = []))
)]
pub async fn rotate_request_secret(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OptionalJson(body): OptionalJson<RotateBody>,
) -> Result<Json<RequestSecret>> {
    let reach = access::webhooks(&principal)?;
    let overlap = body.unwrap_or_default().overlap_secs;
    Ok(Json(secret_object(
        webhooks::rotate_request_secret(&state, &reach, overlap).await?,
    )))
}

/// List webhook messages and their delivery attempts
#[utoipa::path(
    get, path = "/v1/webhook_messages", tag = "webhooks", params(MessageQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn list_messages(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(query): ApiQuery<MessageQuery>,
) -> Result<Json<MessageList>> {
    let reach = access::webhooks(&principal)?;
    let limit = query.limit.unwrap_or(20);
    let video = query.video_id.as_deref();
    let logs = webhooks::messages(&state, &reach, video, limit).await?;
    let data = logs.into_iter().map(message_object).collect();
    Ok(Json(MessageList {
        object: "list",
        data,
    }))
}

/// Retrieve a webhook message and its delivery attempts
#[utoipa::path(
    get, path = "/v1/webhook_messages/{message_id}", tag = "webhooks",
    params(("message_id" = String, Path)),
    responses((status = 200, body = MessageObject), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn get_message(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageObject>> {
    let reach = access::webhooks(&principal)?;
    let log = webhooks::message(&state, &reach, &id).await?;
    Ok(Json(message_object(log)))
}

/// Redeliver a webhook message
///
/// Queues the message again with the same `webhook-id` and payload, for a fresh round of
/// attempts.
#[utoipa::path(
    post, path = "/v1/webhook_messages/{message_id}/redeliver", tag = "webhooks",
    params(("message_id" = String, Path)),
    responses((status = 200, body = MessageObject), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MessageObject>> {
    let reach = access::webhooks(&principal)?;
    let log = webhooks::redeliver(&state, &reach, &id).await?;
    Ok(Json(message_object(log)))
}

async fn admin_tenant(state: &AppState, raw: &str) -> Result<TenantId> {
    let id = TenantId::parse(raw).ok_or(Error::NotFound("tenant"))?;
    crate::domain::admin::tenant(&state.db, &id).await?;
    Ok(id)
}

/// Create a webhook endpoint for a tenant
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/webhook_endpoints", tag = "admin",
    params(("tenant_id" = String, Path)), request_body = EndpointBody,
    responses((status = 200, body = EndpointObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn admin_create_endpoint(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<Json<EndpointObject>> {
    let tenant = admin_tenant(&state, &tenant).await?;
    let (request, mode) = request(body)?;
    let reach = Reach::operator(tenant, mode.unwrap_or(Mode::Live));
    let endpoint = webhooks::create_endpoint(&state, &reach, request).await?;
    Ok(Json(EndpointObject::new(endpoint, true)))
}

/// List a tenant's webhook endpoints
#[utoipa::path(
    get, path = "/admin/v1/tenants/{tenant_id}/webhook_endpoints", tag = "admin",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = EndpointList), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn admin_list_endpoints(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(tenant): ApiPath<String>,
) -> Result<Json<EndpointList>> {
    let tenant = admin_tenant(&state, &tenant).await?;
    Ok(Json(list(webhooks::all_endpoints(&state, &tenant).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminEndpointAction {
    /// `disable`, `enable` or `rotate_secret`.
    pub action: String,
    pub overlap_secs: Option<i64>,
}

/// Disable, enable or rotate the secret of a tenant's webhook endpoint
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/webhook_endpoints/{endpoint_id}", tag = "admin",
    params(("tenant_id" = String, Path), ("endpoint_id" = String, Path)), request_body = AdminEndpointAction,
    responses((status = 200, body = EndpointObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn admin_endpoint_action(
    State(state): State<AppState>,
    _: Operator,
    ApiPath((tenant, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<AdminEndpointAction>,
) -> Result<Json<EndpointObject>> {
    let tenant = admin_tenant(&state, &tenant).await?;
    let reach = webhooks::operator_reach(&state, &tenant, &id).await?;
    let (endpoint, show) = match body.action.as_str() {
        "disable" => (
            webhooks::set_disabled(&state, &reach, &id, true).await?,
            false,
        ),
        "enable" => (
            webhooks::set_disabled(&state, &reach, &id, false).await?,
            false,
        ),
        "rotate_secret" => (
            webhooks::rotate(&state, &reach, &id, body.overlap_secs).await?,
            true,
        ),
        other => {
            return Err(Error::invalid(
                "action",
                format!("unknown action `{other}`; use disable, enable or rotate_secret"),
            ))
        }
    };
    Ok(Json(EndpointObject::new(endpoint, show)))
}
