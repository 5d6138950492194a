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
pub mod registry;
pub mod sandbox;
pub mod seedance_it;
pub mod seedanceapi;
pub mod upstream;

use std::time::Duration;

use crate::types::ids::{ProviderId, VideoId};
use crate::types::money::MicroUsd;
use crate::types::video::NewVideo;

/// A cost an upstream reported: a plain value of the bottom layer, so that storage keeps it
/// without knowing the providers.
pub use crate::types::money::ReportedCost;

pub use registry::Providers;

/// An adapter as the registry knows it: its name, how it is built from its configuration
/// section, and its price rule. Each adapter module declares its own (`ADAPTER`), and
/// `registry::ADAPTERS` lists them.
pub struct Adapter {
    pub id: ProviderId,
    /// The adapter, from its `providers.<name>` section.
    pub build: fn(&crate::config::UpstreamConfig) -> anyhow::Result<std::sync::Arc<dyn Provider>>,
    /// What a request costs there, in micro-USD, by the provider's own price rule (list
    /// prices; `pricing.upstream_usd_per_second` overrides them), or why it cannot be priced.
    pub upstream_cost: PriceRule,
}

/// A provider's price rule (see [`Adapter::upstream_cost`]).
pub type PriceRule = fn(&NewVideo, &crate::config::PricingConfig) -> Result<MicroUsd, String>;

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
