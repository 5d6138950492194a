//! Upstream providers behind one interface. Each provider module owns its vendor's protocol
//! (paths, bodies, status values, errors); the rest of the gateway only sees [`Provider`].

pub mod aigateway;
pub mod aimlapi;
pub mod apiframe;
pub mod capabilities;
pub mod circuit;
pub mod metered;
pub mod price;
pub mod refusals;
pub mod sandbox;
pub mod seedance_it;
pub mod seedanceapi;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::types::ids::{ProviderId, VideoId};
use crate::types::video::NewVideo;

/// A cost an upstream reported: a plain value of the bottom layer, so that storage keeps it
/// without knowing the providers.
pub use crate::types::money::ReportedCost;

/// Every provider name the gateway knows, enabled or not.
pub const ALL_NAMES: [&str; 6] = [
    ProviderId::SeedanceIt.as_str(),
    ProviderId::Apiframe.as_str(),
    ProviderId::AiGateway.as_str(),
    ProviderId::SeedanceApi.as_str(),
    ProviderId::AimlApi.as_str(),
    ProviderId::Sandbox.as_str(),
];

/// What a provider is asked to generate.
pub struct SubmitRequest<'a> {
    pub video_id: &'a VideoId,
    pub video: &'a NewVideo,
    /// The first frame as a URL the provider can fetch (an uploaded file is served by the
    /// gateway under its public base URL).
    pub first_frame_url: Option<String>,
    /// Where the provider should send its completion webhook, if the gateway takes them.
    pub callback_url: Option<String>,
}

/// An accepted upstream job.
#[derive(Debug, Clone)]
pub struct Submission {
    pub upstream_id: String,
    /// When the provider expects the job to finish, if it says.
    pub estimated: Option<Duration>,
    pub cost: Option<ReportedCost>,
}

/// The state of an upstream job, mapped to the gateway lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamStatus {
    Queued,
    Running {
        progress: Option<i64>,
    },
    Completed {
        video_url: String,
        /// Seconds actually generated, when the provider reports them.
        seconds: Option<i64>,
        cost: Option<ReportedCost>,
    },
    Failed {
        code: String,
        message: String,
    },
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Canceled,
    /// The provider has no cancel: the gateway cancels locally and ignores later results.
    Unsupported,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The upstream refused the client's own content (moderation, an input it could not
    /// fetch): the client's 400, whichever provider is asked.
    #[error("{0}")]
    Rejected(String),
    /// The upstream cannot serve this kind of request (unknown model, a length, resolution or
    /// ratio it does not make, a field it does not take): another provider may.
    #[error("{0}")]
    Unsupported(String),
    /// The gateway's credentials or account there are unusable (401/403/402).
    #[error("{0}")]
    Unavailable(String),
    /// Worth retrying later (429, 5xx, a connection that could not be opened, a malformed
    /// error answer).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request went out and its answer was lost (a timeout after sending, a connection
    /// reset, an unreadable 2xx): the upstream may have acted on it. A poll may simply be
    /// repeated; a submit may not, since the job may already exist there (see the job worker).
    #[error("{0}")]
    OutcomeUnknown(String),
}

/// Why a provider webhook was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the webhook signature is missing or does not verify")]
    BadSignature,
    #[error("the webhook body is not what this provider sends")]
    Malformed,
    #[error("this provider does not send webhooks")]
    Unsupported,
}

/// The headers of a delivery a provider sent the gateway (a webhook), as the adapter that
/// verifies it reads them.
pub type Headers = http::HeaderMap;

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn id(&self) -> ProviderId;
    /// What this provider can serve, per model.
    fn capabilities(&self) -> &capabilities::Capabilities;
    /// Whether a repeated submit of the same job makes no second upstream job (the provider
    /// honours an idempotency key the adapter sends), so a submit whose answer was lost may
    /// be sent again as it is.
    fn idempotent_submits(&self) -> bool {
        false
    }
    /// The reference a submit of this job carries that the provider keeps (an idempotency key),
    /// if the adapter sends one: written with the submit's intent before the call.
    fn client_reference(&self, _video: &VideoId) -> Option<String> {
        None
    }
    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError>;
    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError>;
    async fn cancel(&self, upstream_id: &str) -> Result<CancelOutcome, ProviderError>;
    /// How long to wait between polls of a running job.
    fn poll_interval(&self) -> Duration;
    /// Verifies a webhook this provider sent (its signature, where it signs) and returns the
    /// upstream job id it is about. The gateway then confirms the job's state by polling, so
    /// nothing in a webhook body is trusted beyond the id.
    fn webhook_job_id(&self, headers: &Headers, body: &[u8]) -> Result<String, WebhookError>;
    /// What tells one delivery of a verified webhook from another, for a provider whose
    /// signature cannot tell a replay from a new delivery (it carries no timestamp): the
    /// gateway remembers it per job and refuses a delivery it has seen. `None` where a
    /// replay is already bounded (a signed timestamp) or nothing is signed.
    fn webhook_delivery_id(&self, _headers: &Headers, _body: &[u8]) -> Option<String> {
        None
    }
    /// The least time the provider allows between two polls of one job.
    fn min_poll_interval(&self) -> Duration {
        Duration::ZERO
    }
    /// Whether polling costs nothing (no upstream call): such a provider is polled before
    /// its estimate too, so progress shows while the job runs.
    fn free_polls(&self) -> bool {
        false
    }
    /// Whether the provider calls the gateway back when a job it was handed a callback URL for
    /// finishes, with a webhook the gateway can verify. Such jobs are polled only as a safety
    /// net (see `workers::jobs`).
    fn sends_webhooks(&self) -> bool {
        false
    }
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
        if p.seedance_it.enabled {
            providers.insert_corrected(
                Arc::new(seedance_it::SeedanceIt::new(&p.seedance_it)?),
                &p.seedance_it.capabilities,
            )?;
        }
        if p.apiframe.enabled {
            providers.insert_corrected(
                Arc::new(apiframe::Apiframe::new(&p.apiframe)?),
                &p.apiframe.capabilities,
            )?;
        }
        if p.aigateway.enabled {
            providers.insert_corrected(
                Arc::new(aigateway::AiGateway::new(&p.aigateway)?),
                &p.aigateway.capabilities,
            )?;
        }
        if p.seedanceapi.enabled {
            providers.insert_corrected(
                Arc::new(seedanceapi::SeedanceApi::new(&p.seedanceapi)?),
                &p.seedanceapi.capabilities,
            )?;
        }
        if p.aimlapi.enabled {
            providers.insert_corrected(
                Arc::new(aimlapi::AimlApi::new(&p.aimlapi)?),
                &p.aimlapi.capabilities,
            )?;
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
        let sections = [
            (seedance_it::ID, &p.seedance_it),
            (apiframe::ID, &p.apiframe),
            (aigateway::ID, &p.aigateway),
            (seedanceapi::ID, &p.seedanceapi),
            (aimlapi::ID, &p.aimlapi),
        ];
        for (name, section) in sections {
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
