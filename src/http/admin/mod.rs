//! `/admin/v1`: the operator API, one file per resource — tenants, API keys, credits (grants,
//! adjustments, refunds), prices, limits, routing policies, providers, reports and videos.
//! The same operations are CLI subcommands; both call [`crate::domain::admin`]. This file
//! holds the router; `params` the path and field parsing the resources share.

pub mod credits;
pub mod keys;
pub mod limits;
mod params;
pub mod prices;
pub mod providers;
pub mod reports;
pub mod routing;
pub mod tenants;
pub mod videos;

use axum::routing::{get, post, put};
use axum::Router;

use crate::http::webhooks;
use crate::http::AppState;

pub use self::routing::RoutingPolicyBody;

/// The operator routes, to nest under `/admin/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/tenants",
            post(tenants::create_tenant).get(tenants::list_tenants),
        )
        .route("/tenants/{tenant_id}", get(tenants::get_tenant))
        .route(
            "/tenants/{tenant_id}/keys",
            post(keys::create_key).get(keys::list_keys),
        )
        .route("/tenants/{tenant_id}/grants", post(credits::grant))
        .route("/keys/{key_id}/revoke", post(keys::revoke_key))
        .route("/keys/{key_id}/rotate", post(keys::rotate_key))
        .route("/ledger/audit", get(reports::audit))
        .route("/providers", get(providers::list_providers))
        .route("/reports/savings", get(reports::savings))
        .route("/tenants/{tenant_id}/adjustments", post(credits::adjust))
        .route("/tenants/{tenant_id}/limits", put(limits::put_limits))
        .route("/tenants/{tenant_id}/quotas", put(limits::put_quotas))
        .route("/videos/{video_id}/refund", post(credits::refund))
        .route("/reports/margin", get(reports::margin))
        .route("/reports/cost_mismatches", get(reports::cost_mismatches))
        .route("/tenants/{tenant_id}/prices", put(prices::put_prices))
        .route(
            "/tenants/{tenant_id}/routing",
            get(routing::get_tenant_routing).put(routing::put_tenant_routing),
        )
        .route("/keys/{key_id}/routing", put(routing::put_key_routing))
        .route(
            "/providers/{name}/circuit/reset",
            post(providers::reset_circuit),
        )
        .route("/videos/{video_id}", get(videos::get_video))
        .route(
            "/tenants/{tenant_id}/webhook_endpoints",
            post(webhooks::admin_create_endpoint).get(webhooks::admin_list_endpoints),
        )
        .route(
            "/tenants/{tenant_id}/webhook_endpoints/{endpoint_id}",
            post(webhooks::admin_endpoint_action),
        )
}
