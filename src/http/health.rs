//! Probes: `/healthz` says the process is up; `/readyz` says it can serve (database and, when
//! configured, Redis reachable; not draining).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or why the gateway is not ready.
    pub status: &'static str,
}

/// Liveness
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health))
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if state.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "draining" }),
        );
    }
    let database =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping_write()).await;
    let database_down = match database {
        _ if crate::storage::corruption_seen() => {
            Some(crate::storage::Unavailable::Corrupt.reason())
        }
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(
            error
                .unavailability()
                .map_or("database unreachable", |kind| kind.reason()),
        ),
        // No answer in time: a PostgreSQL that does not answer is unreachable; a SQLite file
        // whose write lock cannot be had is held by another process.
        Err(_) => Some(match state.db.backend() {
            crate::storage::Backend::Postgres => "database unreachable",
            crate::storage::Backend::Sqlite => "database cannot take writes",
        }),
    };
    if let Some(status) = database_down {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status }));
    }
    let limiter =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.limiter.ping()).await;
    if !matches!(limiter, Ok(true)) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "redis unreachable",
            }),
        );
    }
    (StatusCode::OK, Json(Health { status: "ok" }))
}

/// Prometheus metrics
///
/// The text exposition format. Gauges about shared state (jobs, queue, holds) are read from
/// the database, so every replica reports the same values; counters are this replica's.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let metrics = &state.metrics;
    use crate::domain::jobs::transitions::{IN_FLIGHT, WAITING};
    match state.db.job_gauges(IN_FLIGHT, WAITING).await {
        Ok(gauges) => {
            metrics.jobs.clear();
            for (provider, status, count) in gauges.running {
                metrics
                    .jobs
                    .get_or_create(&crate::metrics::JobLabels {
                        provider,
                        state: status,
                    })
                    .set(count);
            }
            metrics.queue_depth.set(gauges.queued);
            let age = gauges
                .oldest_queued_ms
                .map_or(0, |oldest| (crate::clock::now_ms() - oldest).max(0) / 1000);
            metrics.queue_oldest_age_seconds.set(age);
            metrics.credits_held.set(gauges.credits_held);
        }
        Err(error) => tracing::warn!(%error, "reading job gauges for /metrics failed"),
    }
    match state.db.pending_webhook_deliveries().await {
        Ok(pending) => {
            metrics.webhook_outbox_pending.set(pending);
        }
        Err(error) => tracing::warn!(%error, "reading the webhook outbox for /metrics failed"),
    }
    for id in state.providers.ids() {
        let view = state.providers.circuits.view(id);
        let value = match view.state {
            "closed" => 0,
            "half_open" => 1,
            _ => 2,
        };
        metrics
            .circuit_state
            .get_or_create(&crate::metrics::ProviderLabels {
                provider: id.as_str().to_owned(),
            })
            .set(value);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.encode(),
    )
}
