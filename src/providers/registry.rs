//! The registry of providers: which adapters exist, and the enabled ones built from the
//! configuration, each wrapped to record its upstream calls and with its capacity and submit
//! rate. The adapters and the interface they share are the modules beside this one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{
    aigateway, aimlapi, apiframe, capabilities, circuit, metered, refusals, sandbox, seedance_it,
    seedanceapi, Adapter, PriceRule, Provider,
};
use crate::types::ids::ProviderId;

/// Every adapter of an upstream (the sandbox, built in, aside). Adding a provider adds its
/// line here (docs/adding-a-provider.md).
pub const ADAPTERS: [Adapter; 5] = [
    seedance_it::ADAPTER,
    apiframe::ADAPTER,
    aigateway::ADAPTER,
    seedanceapi::ADAPTER,
    aimlapi::ADAPTER,
];

/// Every provider name the gateway knows, enabled or not.
pub fn all_names() -> Vec<&'static str> {
    ADAPTERS
        .iter()
        .map(|a| a.id.as_str())
        .chain([sandbox::ID.as_str()])
        .collect()
}

/// The price rule of `provider` (every provider has one; the sandbox's is free).
pub fn price_rule(provider: ProviderId) -> PriceRule {
    ADAPTERS
        .iter()
        .find(|a| a.id == provider)
        .map_or(sandbox::upstream_cost as PriceRule, |a| a.upstream_cost)
}

/// The enabled providers, by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_id: BTreeMap<ProviderId, Arc<dyn Provider>>,
    /// Providers live keys may use, in preference order.
    live: Vec<ProviderId>,
    /// Health of each provider, as this replica has seen it.
    pub circuits: Arc<circuit::Circuits>,
    /// Shapes of request each provider refused lately, kept out of routing for a while.
    pub refusals: Arc<refusals::Refusals>,
    /// Most jobs running at once per provider; absent means unlimited (the sandbox).
    limits: BTreeMap<ProviderId, i64>,
    /// Submit rates: (milliseconds between submits, burst), per provider that has one.
    rates: BTreeMap<ProviderId, (i64, i64)>,
    /// Where upstream calls are counted; each inserted provider is wrapped to record them.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Providers {
    pub fn from_config(
        config: &crate::config::Config,
        metrics: &Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Providers> {
        // The sandbox always exists, because test keys run there; live keys reach it only
        // when it is enabled.
        let mut providers = Providers {
            circuits: Arc::new(circuit::Circuits::new(
                config.routing.circuit_failure_threshold,
                Duration::from_secs(config.routing.circuit_cooldown_secs),
            )),
            metrics: Some(metrics.clone()),
            ..Providers::default()
        };
        let p = &config.providers;
        for adapter in &ADAPTERS {
            let section = p.upstream(adapter.id);
            if section.enabled {
                providers.insert_corrected((adapter.build)(section)?, &section.capabilities)?;
            }
        }
        let real_enabled = !providers.live.is_empty();
        providers.insert(
            Arc::new(sandbox::Sandbox::new(&p.sandbox)),
            p.sandbox.enabled && !real_enabled,
        );
        if p.sandbox.enabled && real_enabled {
            // The sandbox costs nothing, so cheapest routing would send every live job there:
            // live keys would pay for sandbox clips. With a real provider enabled it serves
            // test keys only.
            tracing::warn!(
                "providers.sandbox.enabled is true but real providers are enabled: live keys \
                 are never routed to the sandbox (test keys still are); set \
                 providers.sandbox.enabled = false to silence this"
            );
        }
        for adapter in &ADAPTERS {
            let (name, section) = (adapter.id, p.upstream(adapter.id));
            if section.enabled {
                providers
                    .limits
                    .insert(name, i64::from(section.max_concurrent.unwrap_or(5).max(1)));
                if let Some(per_minute) = section.submits_per_minute.filter(|n| *n > 0) {
                    let burst = i64::from(section.submit_burst.unwrap_or(1).max(1));
                    providers
                        .rates
                        .insert(name, (60_000 / i64::from(per_minute), burst));
                }
            }
        }
        Ok(providers)
    }

    /// Adds a live provider whose declared capabilities the operator may have corrected.
    fn insert_corrected(
        &mut self,
        provider: Arc<dyn Provider>,
        overrides: &std::collections::BTreeMap<String, crate::config::CapabilityOverride>,
    ) -> anyhow::Result<()> {
        let capabilities = provider
            .capabilities()
            .corrected(provider.id().as_str(), overrides)?;
        self.add(provider, true, capabilities);
        Ok(())
    }

    pub fn insert(&mut self, provider: Arc<dyn Provider>, live: bool) {
        let capabilities = provider.capabilities().clone();
        self.add(provider, live, capabilities);
    }

    fn add(
        &mut self,
        provider: Arc<dyn Provider>,
        live: bool,
        capabilities: capabilities::Capabilities,
    ) {
        let provider: Arc<dyn Provider> = match &self.metrics {
            Some(metrics) => Arc::new(metered::Metered::new(
                provider,
                metrics.clone(),
                capabilities,
            )),
            None => provider,
        };
        if live {
            self.live.push(provider.id());
        }
        self.by_id.insert(provider.id(), provider);
    }

    /// The submit rate of `provider`, if limited: (milliseconds between submits, burst).
    pub fn rate(&self, provider: ProviderId) -> Option<(i64, i64)> {
        self.rates.get(&provider).copied()
    }

    /// Most jobs that may run at `provider` at once, if limited.
    pub fn limit(&self, provider: ProviderId) -> Option<i64> {
        self.limits.get(&provider).copied()
    }

    /// The providers live keys may use, in preference order.
    pub fn live(&self) -> impl Iterator<Item = ProviderId> + '_ {
        self.live.iter().copied()
    }

    pub fn get(&self, id: ProviderId) -> Option<&Arc<dyn Provider>> {
        self.by_id.get(&id)
    }

    /// Every provider registered, enabled for live keys or not (the sandbox always is).
    pub fn ids(&self) -> impl Iterator<Item = ProviderId> + '_ {
        self.by_id.keys().copied()
    }
}
