//! `[pricing]`: what tenants pay (credits per second of video, by model) and what the
//! upstreams charge where the adapters' published prices need an override.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// Credits that make one US dollar (the ledger unit).
    pub credits_per_usd: i64,
    /// Tenant price in credits per second of video, by canonical model id.
    pub credits_per_second: BTreeMap<String, i64>,
    /// Dollar value of one Apiframe credit (unpublished); while unset, Apiframe is unpriced
    /// and `cheapest` routing leaves it out.
    pub apiframe_usd_per_credit: Option<String>,
    /// Upstream price overrides, in US dollars per second as decimal strings, by provider and
    /// model id, e.g. `[pricing.upstream_usd_per_second.aimlapi] "seedance-2.0-mini" = "0.05"`.
    pub upstream_usd_per_second: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            credits_per_usd: 100,
            apiframe_usd_per_credit: None,
            upstream_usd_per_second: BTreeMap::new(),
            credits_per_second: BTreeMap::from([
                ("seedance-2.0".to_string(), 60),
                ("seedance-2.0-fast".to_string(), 50),
                ("seedance-2.0-mini".to_string(), 35),
            ]),
        }
    }
}

impl PricingConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bounded = |v: i64| (0..=crate::types::money::MAX_AMOUNT).contains(&v);
        if self.credits_per_usd <= 0 || !bounded(self.credits_per_usd) {
            return Err(ConfigError::Invalid(
                "pricing.credits_per_usd must be a positive integer of at most 10^15".into(),
            ));
        }
        for (model, price) in &self.credits_per_second {
            if crate::types::video::Model::parse(model).map(|m| m.id()) != Some(model.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "pricing.credits_per_second: `{model}` is not a model id; use seedance-2.0, seedance-2.0-fast or seedance-2.0-mini"
                )));
            }
            if !bounded(*price) {
                return Err(ConfigError::Invalid(format!(
                    "pricing.credits_per_second.{model} must be an integer from 0 to 10^15"
                )));
            }
        }
        let readable =
            |v: &str| crate::types::money::MicroUsd::parse_usd(v).is_some_and(|m| m.get() >= 0);
        if let Some(value) = &self.apiframe_usd_per_credit {
            if !readable(value) {
                return Err(ConfigError::Invalid(format!(
                    "pricing.apiframe_usd_per_credit `{value}` is not a dollar amount like \"0.01\""
                )));
            }
        }
        for (provider, models) in &self.upstream_usd_per_second {
            for (model, value) in models {
                if crate::types::video::Model::parse(model).map(|m| m.id()) != Some(model.as_str())
                    || !readable(value)
                {
                    return Err(ConfigError::Invalid(format!(
                        "pricing.upstream_usd_per_second.{provider}.{model}: needs a model id and a dollar amount"
                    )));
                }
            }
        }
        Ok(())
    }
}
