//! Upstream providers behind one interface. Each provider module owns its vendor's protocol
//! (paths, bodies, status values, errors); the rest of the gateway only sees [`Provider`].

pub mod sandbox;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::ids::VideoId;
use crate::domain::video::NewVideo;

/// What a provider is asked to generate.
pub struct SubmitRequest<'a> {
    pub video_id: &'a VideoId,
    pub video: &'a NewVideo,
}

/// An accepted upstream job.
#[derive(Debug, Clone)]
pub struct Submission {
    pub upstream_id: String,
    /// When the provider expects the job to finish, if it says.
    pub estimated: Option<Duration>,
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
    /// The upstream refused the request itself (HTTP 400): the client's fault.
    #[error("{0}")]
    Rejected(String),
    /// The gateway's credentials or account there are unusable (401/403/402).
    #[error("{0}")]
    Unavailable(String),
    /// Worth retrying later (429, 5xx, timeouts, malformed answers).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
}

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError>;
    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError>;
    async fn cancel(&self, upstream_id: &str) -> Result<CancelOutcome, ProviderError>;
    /// How long to wait between polls of a running job.
    fn poll_interval(&self) -> Duration;
}

/// The enabled providers, by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<&'static str, Arc<dyn Provider>>,
    /// Providers live keys may use, in preference order.
    live: Vec<&'static str>,
}

impl Providers {
    pub fn from_config(config: &crate::config::Config) -> Providers {
        // The sandbox always exists, because test keys run there; live keys reach it only
        // when it is enabled.
        let mut providers = Providers::default();
        providers.insert(
            Arc::new(sandbox::Sandbox::new(&config.providers.sandbox)),
            config.providers.sandbox.enabled,
        );
        providers
    }

    pub fn insert(&mut self, provider: Arc<dyn Provider>, live: bool) {
        if live {
            self.live.push(provider.name());
        }
        self.by_name.insert(provider.name(), provider);
    }

    pub fn live_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.live.iter().copied()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}
