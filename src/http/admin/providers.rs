//! `/admin/v1/providers`: the upstreams this replica knows, with their circuit breakers and
//! capabilities; resetting a circuit.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::providers;
use crate::error::Result;
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiPath;
use crate::http::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderObject {
    pub name: String,
    pub object: &'static str,
    /// Whether live keys are routed to it.
    pub live: bool,
    /// This replica's circuit breaker for it.
    pub circuit: providers::CircuitView,
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

fn provider_object(status: providers::ProviderStatus) -> ProviderObject {
    ProviderObject {
        name: status.id.as_str().to_string(),
        object: "provider",
        live: status.live,
        circuit: status.circuit,
        capabilities: status.capabilities,
    }
}

/// List providers with their circuit state
#[utoipa::path(
    get, path = "/admin/v1/providers", tag = "admin",
    responses((status = 200, body = ProviderList)),
    security(("admin_token" = []))
)]
pub async fn list_providers(State(state): State<AppState>, _: Operator) -> Json<ProviderList> {
    let data = providers::list(&state)
        .into_iter()
        .map(provider_object)
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
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ProviderObject>> {
    Ok(Json(provider_object(providers::reset_circuit(
        &state, &name,
    )?)))
}
