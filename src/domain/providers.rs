//! The upstreams as the operator sees them — which are enabled for live keys, their circuit
//! breakers and capabilities — and closing a circuit. The admin API and the command line ask
//! here rather than reading the provider registry themselves.

use crate::config::Config;
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::types::ids::ProviderId;

pub use crate::providers::circuit::CircuitView;

/// One provider this replica knows.
pub struct ProviderStatus {
    pub id: ProviderId,
    /// Whether live keys are routed to it.
    pub live: bool,
    /// This replica's circuit breaker for it.
    pub circuit: CircuitView,
    /// What it serves, per model, as routing sees it (declared, with the operator's
    /// `providers.<name>.capabilities` corrections applied).
    pub capabilities: serde_json::Value,
}

fn status(state: &Services, id: ProviderId) -> ProviderStatus {
    ProviderStatus {
        id,
        live: state.providers.live().any(|n| n == id),
        circuit: state.providers.circuits.view(id),
        capabilities: state
            .providers
            .get(id)
            .and_then(|p| serde_json::to_value(p.capabilities()).ok())
            .unwrap_or_default(),
    }
}

/// Every provider registered, enabled for live keys or not (the sandbox always is).
pub fn list(state: &Services) -> Vec<ProviderStatus> {
    state.providers.ids().map(|id| status(state, id)).collect()
}

/// Puts the provider named `name` back into routing at once, on this replica.
pub fn reset_circuit(state: &Services, name: &str) -> Result<ProviderStatus> {
    let provider = ProviderId::parse(name)
        .and_then(|id| state.providers.get(id))
        .ok_or(Error::NotFound("provider"))?;
    state.providers.circuits.reset(provider.id());
    Ok(status(state, provider.id()))
}

/// The providers `serve` would route live keys to with `config`.
pub fn live_in(config: &Config) -> anyhow::Result<Vec<ProviderId>> {
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let providers = crate::providers::Providers::from_config(config, &metrics)?;
    Ok(providers.live().collect())
}
