//! `[routing]`: the operator's routing policy (strategy, allowed providers, fallback and
//! resubmission), the savings report's baseline, and the providers' circuit breaker.

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// The operator's default strategy: `cheapest`, `fastest` or `ordered`.
    pub strategy: crate::types::video::Strategy,
    /// The providers tenants may use, in order for `ordered`; unset allows every enabled one.
    pub providers: Option<Vec<String>>,
    /// Whether a failing provider may hand a job to the next candidate.
    pub fallback: bool,
    /// Whether a job that fails upstream is resubmitted to the next candidate.
    pub resubmit_failed: bool,
    /// The provider the savings report compares against (e.g. the one used before the gateway).
    pub baseline_provider: Option<String>,
    /// Consecutive failures that open a provider's circuit.
    pub circuit_failure_threshold: u32,
    /// How long an open circuit keeps a provider out before a probe, in seconds.
    pub circuit_cooldown_secs: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            strategy: crate::types::video::Strategy::Cheapest,
            providers: None,
            fallback: true,
            resubmit_failed: false,
            baseline_provider: None,
            circuit_failure_threshold: 5,
            circuit_cooldown_secs: 30,
        }
    }
}

impl RoutingConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        use crate::types::ids::ProviderId;
        let known = |p: &str| ProviderId::ALL.iter().any(|id| id.as_str() == p);
        if let Some(baseline) = self.baseline_provider.as_deref().filter(|b| !known(b)) {
            return Err(ConfigError::Invalid(format!(
                "routing.baseline_provider: unknown provider `{baseline}`"
            )));
        }
        if let Some(unknown) = self.providers.iter().flatten().find(|p| !known(p)) {
            return Err(ConfigError::Invalid(format!(
                "routing.providers: unknown provider `{unknown}`"
            )));
        }
        Ok(())
    }
}
