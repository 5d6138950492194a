//! Counts and times every upstream call. [`Providers`](super::Providers) wraps each adapter
//! in [`Metered`], so no adapter has to remember to record its own calls. The wrapper also
//! carries the adapter's capabilities as the operator corrected them in configuration, so
//! routing and every other reader see one matrix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    capabilities, CancelOutcome, Provider, ProviderError, Submission, SubmitRequest,
    UpstreamStatus, WebhookError,
};
use crate::metrics::Metrics;

pub struct Metered {
    inner: Arc<dyn Provider>,
    metrics: Arc<Metrics>,
    capabilities: capabilities::Capabilities,
}

impl Metered {
    /// Wraps `inner`, serving `capabilities` (its own, or as corrected) in its place.
    pub fn new(
        inner: Arc<dyn Provider>,
        metrics: Arc<Metrics>,
        capabilities: capabilities::Capabilities,
    ) -> Metered {
        Metered {
            inner,
            metrics,
            capabilities,
        }
    }

    fn record<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: &Result<T, ProviderError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(ProviderError::Rejected(_)) => "rejected",
            Err(ProviderError::Unsupported(_)) => "unsupported",
            Err(ProviderError::Unavailable(_)) => "unavailable",
            Err(ProviderError::Transient { .. }) => "transient",
            Err(ProviderError::OutcomeUnknown(_)) => "unknown",
        };
        self.metrics
            .observe_upstream(self.inner.id(), operation, outcome, started.elapsed());
    }
}

#[async_trait::async_trait]
impl Provider for Metered {
    fn id(&self) -> crate::types::ids::ProviderId {
        self.inner.id()
    }

    fn idempotent_submits(&self) -> bool {
        self.inner.idempotent_submits()
    }

    fn client_reference(&self, video: &crate::types::ids::VideoId) -> Option<String> {
        self.inner.client_reference(video)
    }

    fn capabilities(&self) -> &capabilities::Capabilities {
        &self.capabilities
    }

    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError> {
        let started = Instant::now();
        let result = self.inner.submit(request).await;
        self.record("submit", started, &result);
        result
    }

    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let started = Instant::now();
        let result = self.inner.poll(upstream_id).await;
        self.record("poll", started, &result);
        result
    }

    async fn cancel(&self, upstream_id: &str) -> Result<CancelOutcome, ProviderError> {
        let started = Instant::now();
        let result = self.inner.cancel(upstream_id).await;
        self.record("cancel", started, &result);
        result
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }

    fn webhook_job_id(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<String, WebhookError> {
        self.inner.webhook_job_id(headers, body)
    }

    fn webhook_delivery_id(&self, headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
        self.inner.webhook_delivery_id(headers, body)
    }

    fn min_poll_interval(&self) -> Duration {
        self.inner.min_poll_interval()
    }

    fn free_polls(&self) -> bool {
        self.inner.free_polls()
    }

    fn sends_webhooks(&self) -> bool {
        self.inner.sends_webhooks()
    }
}
