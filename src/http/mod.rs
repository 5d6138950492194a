//! The HTTP edge: routes, middleware (request id, tracing, timeouts, body limit, panic
//! catcher) and the handlers, which only translate between HTTP and the domain.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod end_users;
pub mod error;
pub mod extract;
pub mod files;
pub mod health;
pub mod idempotency;
pub mod openapi;
pub mod provider_webhooks;
pub mod routing;
pub mod schema;
pub mod server;
pub mod state;
pub mod videos;
pub mod webhooks;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, Response};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

use crate::error::Error;

pub use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    let v1 = Router::new()
        .route(
            "/videos",
            post(videos::create_video).get(videos::list_videos),
        )
        .route(
            "/videos/{video_id}",
            get(videos::get_video).delete(videos::delete_video),
        )
        .route("/videos/quote", post(routing::quote))
        .route("/models", get(routing::models))
        .route("/balance", get(billing::balance))
        .route("/ledger", get(billing::entries))
        .route("/usage", get(billing::usage))
        .route(
            "/end_users/{user_id}",
            get(end_users::get).put(end_users::put),
        )
        .route("/end_users/{user_id}/wallet", post(end_users::wallet))
        .route("/videos/{video_id}/cancel", post(videos::cancel_video))
        .route("/videos/{video_id}/content", get(videos::video_content))
        .route(
            "/webhook_endpoints",
            post(webhooks::create_endpoint).get(webhooks::list_endpoints),
        )
        .route(
            "/webhook_endpoints/{endpoint_id}",
            get(webhooks::get_endpoint),
        )
        .route(
            "/webhook_endpoints/{endpoint_id}/disable",
            post(webhooks::disable_endpoint),
        )
        .route(
            "/webhook_endpoints/{endpoint_id}/enable",
            post(webhooks::enable_endpoint),
        )
        .route(
            "/webhook_endpoints/{endpoint_id}/rotate_secret",
            post(webhooks::rotate_endpoint),
        )
        .route("/webhook_secret", get(webhooks::get_request_secret))
        .route(
            "/webhook_secret/rotate",
            post(webhooks::rotate_request_secret),
        )
        .route("/webhook_messages", get(webhooks::list_messages))
        .route("/webhook_messages/{message_id}", get(webhooks::get_message))
        .route(
            "/webhook_messages/{message_id}/redeliver",
            post(webhooks::redeliver),
        );
    Router::new()
        .nest("/v1", v1)
        .nest("/admin/v1", admin::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs))
        .route("/files/uploads/{name}", get(files::upload))
        .route("/webhooks/providers/{provider}/{token}", post(provider_webhooks::receive))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_declared_oversize,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), measure))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request| {
                        let id = request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
                    })
                    .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
                    tracing::error!("a request handler panicked");
                    Error::Internal(anyhow::anyhow!("handler panicked")).into_response()
                })),
        )
        .with_state(state)
}

/// Refuses new work while draining and bounds each request's time.
async fn guard(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response<axum::body::Body> {
    let probe = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if state.is_draining() && !probe {
        return Error::Draining.into_response();
    }
    let limit = Duration::from_secs(state.config.server.request_timeout_secs.max(1));
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Timeout.into_response(),
    }
}

/// Answers 413 at once when a request declares a `Content-Length` above
/// `server.max_body_bytes`: the body limit alone would only trip once that much had been
/// read, so a client that declares a large body and sends it slowly (or never) was held
/// until the request timeout.
async fn refuse_declared_oversize(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response<axum::body::Body> {
    let limit = u64::try_from(state.config.server.max_body_bytes).unwrap_or(u64::MAX);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Error::PayloadTooLarge.into_response();
    }
    next.run(request).await
}

/// Counts and times every request by method, route template and status.
async fn measure(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response<axum::body::Body> {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| route_label(path.as_str()));
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let labels = crate::metrics::HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    let metrics = &state.metrics;
    metrics.http_requests.get_or_create(&labels).inc();
    metrics
        .http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if response.status() == axum::http::StatusCode::TOO_MANY_REQUESTS {
        if let Some(crate::http::error::ErrorCode(code)) = response.extensions().get() {
            metrics.rate_limited(code);
        }
    }
    response
}

/// A route template as a metric label: `/v1/videos/{video_id}` becomes `/v1/videos/:video_id`,
/// which every text-format parser reads (braces inside label values trip some).
fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

async fn not_found() -> Error {
    Error::NotFound("route")
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}
