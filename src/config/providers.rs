//! `[providers]`: the sandbox and each upstream reseller — whether it is enabled, its key,
//! URL, timeouts, concurrency and submit rate, and the operator's corrections of what it
//! serves.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, WorkersConfig};
use crate::types::ids::ProviderId;

/// `[providers]`: the sandbox's section, and one section per upstream, named after it
/// (`providers.seedance_it`, `providers.apiframe`, …; docs/providers.md). The upstreams'
/// sections are read by name, so an adapter needs no field here: a section whose name is no
/// known provider is refused by [`ProvidersConfig::validate`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProvidersConfig {
    pub sandbox: SandboxConfig,
    #[serde(flatten)]
    upstreams: BTreeMap<String, UpstreamConfig>,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        let mut config = ProvidersConfig {
            sandbox: SandboxConfig::default(),
            upstreams: BTreeMap::new(),
        };
        config.complete();
        config
    }
}

/// One upstream reseller. Disabled until enabled with a key.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub enabled: bool,
    /// Base URL of the provider's API; empty means the provider's documented one.
    pub base_url: Option<String>,
    /// The gateway's API key at this provider.
    pub api_key: Option<Secret>,
    /// A file holding the API key (e.g. a mounted secret); used when `api_key` is unset.
    pub api_key_file: Option<PathBuf>,
    /// Secret for verifying this provider's webhook signatures, where it signs with one of
    /// its own (AIgateway); Apiframe signs with the API key.
    pub webhook_secret: Option<Secret>,
    /// Per-call timeout, in seconds (default 30).
    pub timeout_secs: Option<u64>,
    /// Wait between two polls of one running job, in milliseconds (default per provider).
    pub poll_interval_ms: Option<u64>,
    /// Most jobs running at this provider at once, across all replicas (default 5, the
    /// seeds' "5-10 jobs in parallel per account"). More wait in the gateway's queue.
    pub max_concurrent: Option<u32>,
    /// Most submits per minute to this provider, across all replicas (unset: no limit beyond
    /// `max_concurrent`). Bursts up to `submit_burst` pass at once.
    pub submits_per_minute: Option<u32>,
    /// Submits allowed back to back before the rate applies (default 1).
    pub submit_burst: Option<u32>,
    /// Corrections of what this provider serves, per model id (see [`CapabilityOverride`]).
    pub capabilities: BTreeMap<String, CapabilityOverride>,
}

/// An operator's correction of what one provider serves for one model
/// (`providers.<name>.capabilities."<model id>"`), applied over the adapter's declared
/// capabilities without a release. Each key left out keeps the declared value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityOverride {
    /// `false` takes the model away from this provider; `true` with durations, resolutions
    /// and aspect ratios adds one it does not declare.
    pub offered: Option<bool>,
    /// The lengths it makes, in seconds (4-15).
    pub durations: Option<Vec<i64>>,
    pub resolutions: Option<Vec<String>>,
    pub aspect_ratios: Option<Vec<String>>,
    pub first_frame: Option<bool>,
    pub last_frame: Option<bool>,
    pub max_reference_images: Option<usize>,
    pub max_reference_videos: Option<usize>,
    pub max_reference_audio: Option<usize>,
    pub audio: Option<bool>,
    pub seed: Option<bool>,
    pub camera_fixed: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    pub enabled: bool,
    /// Time from submit to completion of a sandbox job, in milliseconds.
    pub delay_ms: u64,
    /// Make every sandbox job fail (a prompt containing `[sandbox:fail]` fails one job).
    pub fail_all: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: true,
            delay_ms: 3000,
            fail_all: false,
        }
    }
}

impl UpstreamConfig {
    /// The API key from `api_key`, else read from `api_key_file`.
    pub fn resolve_key(&self, name: &str) -> Result<Secret, ConfigError> {
        if let Some(key) = &self.api_key {
            return Ok(key.clone());
        }
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!(
                    "providers.{name}.api_key_file {}: {e}",
                    path.display()
                ))
            })?;
            let key = text.trim();
            if key.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "providers.{name}.api_key_file is empty"
                )));
            }
            return Ok(Secret::new(key));
        }
        Err(ConfigError::Invalid(format!(
            "providers.{name} is enabled but has no api_key or api_key_file"
        )))
    }
}

impl ProvidersConfig {
    /// Every upstream's section, by configuration name (`seedance_it`), a disabled one for
    /// each provider the file does not mention.
    pub fn upstreams(&self) -> impl Iterator<Item = (&str, &UpstreamConfig)> {
        self.upstreams
            .iter()
            .map(|(name, section)| (name.as_str(), section))
    }

    /// The section of the upstream `provider` (a disabled, empty one for a name that has no
    /// section, such as the sandbox's).
    pub fn upstream(&self, provider: ProviderId) -> &UpstreamConfig {
        static NONE: std::sync::OnceLock<UpstreamConfig> = std::sync::OnceLock::new();
        self.upstreams
            .get(&provider.config_section())
            .unwrap_or_else(|| NONE.get_or_init(UpstreamConfig::default))
    }

    /// The section of the upstream `provider`, to change it (tests, tools).
    pub fn upstream_mut(&mut self, provider: ProviderId) -> &mut UpstreamConfig {
        self.upstreams.entry(provider.config_section()).or_default()
    }

    /// Gives every known upstream a section (disabled unless the file enables it), so that the
    /// effective configuration lists them all.
    pub(super) fn complete(&mut self) {
        for provider in ProviderId::ALL {
            if provider != ProviderId::Sandbox {
                self.upstreams.entry(provider.config_section()).or_default();
            }
        }
    }

    /// Checks each enabled upstream: its lease margin over `workers`, its key, its URL.
    pub(super) fn validate(&self, workers: &WorkersConfig) -> Result<(), ConfigError> {
        for name in self.upstreams.keys() {
            let known = ProviderId::parse(name)
                .filter(|p| *p != ProviderId::Sandbox && p.config_section() == *name);
            if known.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "providers.{name} names no provider (known: {})",
                    ProviderId::ALL
                        .iter()
                        .filter(|p| **p != ProviderId::Sandbox)
                        .map(|p| p.config_section())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        for (name, upstream) in self.upstreams() {
            if upstream.enabled {
                // A lease must outlive the longest upstream call, or a slow call could be
                // claimed again by another replica and submitted twice.
                let timeout = upstream.timeout_secs.unwrap_or(30);
                let margin = workers.lease_margin_secs;
                if workers.lease_secs < timeout.saturating_add(margin) {
                    return Err(ConfigError::Invalid(format!(
                        "workers.lease_secs ({}) must exceed providers.{name}.timeout_secs ({timeout}) by at least workers.lease_margin_secs ({margin})",
                        workers.lease_secs
                    )));
                }
                upstream.resolve_key(name)?;
                if let Some(base) = &upstream.base_url {
                    let parsed = url::Url::parse(base).map_err(|_| {
                        ConfigError::Invalid(format!("providers.{name}.base_url is not a URL"))
                    })?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(ConfigError::Invalid(format!(
                            "providers.{name}.base_url must be http(s)"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
