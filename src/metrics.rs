//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! One [`Metrics`] registry per running gateway (not a process global), so several gateways
//! in one test process keep their own counts. Counters and histograms are updated where the
//! event happens; gauges that describe shared state (jobs by state, queue depth and age,
//! credits on hold) are read from the database at scrape time, so every replica reports the
//! same truth. Labels are bounded: route templates (never raw paths), provider names,
//! operations, outcomes and states — no ids.

use crate::types::ids::ProviderId;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The matched route template, e.g. `/v1/videos/{video_id}`, or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub provider: String,
    /// `submit`, `poll` or `cancel`.
    pub operation: &'static str,
    /// `ok`, `rejected`, `unavailable` or `transient`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamTimingLabels {
    pub provider: String,
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobRequestLabels {
    pub provider: String,
    /// `submit`, `scheduled_poll`, `safety_poll` or `webhook_confirmation`.
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub provider: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The error `code` of the refusal, e.g. `rate_limit_tenant`.
    pub limit: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

fn requests_per_job_histogram() -> Histogram {
    // 1 .. 128 requests
    Histogram::new(exponential_buckets(1.0, 2.0, 8))
}

fn upstream_histogram() -> Histogram {
    // 5 ms .. ~80 s
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<HttpLabels>,
    pub connections_rejected: Counter,
    pub upstream_requests: Family<UpstreamLabels, Counter>,
    pub upstream_duration: HistogramFamily<UpstreamTimingLabels>,
    /// Upstream requests made for jobs, by provider and cause.
    pub job_requests: Family<JobRequestLabels, Counter>,
    /// Upstream requests a completed job took in all, by provider.
    pub requests_per_job: HistogramFamily<ProviderLabels>,
    /// Jobs that reached a terminal state on this replica.
    pub jobs_finished: Family<JobLabels, Counter>,
    /// Jobs queued or running, from the database at scrape time.
    pub jobs: Family<JobLabels, Gauge>,
    pub queue_depth: Gauge,
    pub queue_oldest_age_seconds: Gauge,
    pub credits_held: Gauge,
    pub credits_captured: Counter,
    pub credits_voided: Counter,
    pub webhook_deliveries: Family<OutcomeLabels, Counter>,
    pub webhook_outbox_pending: Gauge,
    /// 0 closed, 1 half-open, 2 open.
    pub circuit_state: Family<ProviderLabels, Gauge>,
    pub rate_limited: Family<LimitLabels, Counter>,
    pub archive_copies: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gateway");
        let metrics = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            connections_rejected: Counter::default(),
            upstream_requests: Family::default(),
            upstream_duration: Family::new_with_constructor(upstream_histogram),
            job_requests: Family::default(),
            requests_per_job: Family::new_with_constructor(requests_per_job_histogram),
            jobs_finished: Family::default(),
            jobs: Family::default(),
            queue_depth: Gauge::default(),
            queue_oldest_age_seconds: Gauge::default(),
            credits_held: Gauge::default(),
            credits_captured: Counter::default(),
            credits_voided: Counter::default(),
            webhook_deliveries: Family::default(),
            webhook_outbox_pending: Gauge::default(),
            circuit_state: Family::default(),
            rate_limited: Family::default(),
            archive_copies: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status",
            metrics.http_duration.clone(),
        );
        registry.register(
            "connections_rejected",
            "Connections closed at accept because server.max_connections was reached",
            metrics.connections_rejected.clone(),
        );
        registry.register(
            "upstream_requests",
            "Calls to upstream providers, by provider, operation and outcome",
            metrics.upstream_requests.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Latency of calls to upstream providers, by provider and operation",
            metrics.upstream_duration.clone(),
        );
        registry.register(
            "upstream_job_requests",
            "Upstream requests made for jobs, by provider and cause (submit, scheduled_poll, safety_poll, webhook_confirmation)",
            metrics.job_requests.clone(),
        );
        registry.register(
            "upstream_requests_per_completed_job",
            "Upstream requests (submits and polls) each completed job took, by the provider that completed it",
            metrics.requests_per_job.clone(),
        );
        registry.register(
            "jobs_finished",
            "Jobs this replica moved to a terminal state, by provider and state",
            metrics.jobs_finished.clone(),
        );
        registry.register(
            "jobs",
            "Jobs queued or in progress, by provider and state (all replicas, from the database)",
            metrics.jobs.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs waiting in the queue (all replicas)",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "queue_oldest_age_seconds",
            "Age of the oldest queued job (all replicas)",
            metrics.queue_oldest_age_seconds.clone(),
        );
        registry.register(
            "credits_held",
            "Credits currently on hold for unfinished jobs (all replicas)",
            metrics.credits_held.clone(),
        );
        registry.register(
            "credits_captured",
            "Credits captured from holds by this replica",
            metrics.credits_captured.clone(),
        );
        registry.register(
            "credits_voided",
            "Credits released from voided holds by this replica",
            metrics.credits_voided.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Tenant webhook delivery attempts, by outcome",
            metrics.webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_outbox_pending",
            "Tenant webhook deliveries not yet delivered (all replicas)",
            metrics.webhook_outbox_pending.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker state per provider as this replica sees it: 0 closed, 1 half-open, 2 open",
            metrics.circuit_state.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit or quota, by limit",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "archive_copies",
            "Outputs copied to the gateway's storage, by outcome",
            metrics.archive_copies.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    pub fn observe_upstream(
        &self,
        provider: ProviderId,
        operation: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        self.upstream_requests
            .get_or_create(&UpstreamLabels {
                provider: provider.as_str().to_owned(),
                operation,
                outcome,
            })
            .inc();
        self.upstream_duration
            .get_or_create(&UpstreamTimingLabels {
                provider: provider.as_str().to_owned(),
                operation,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one upstream request made for a job.
    pub fn job_request(&self, provider: ProviderId, cause: &'static str) {
        self.job_requests
            .get_or_create(&JobRequestLabels {
                provider: provider.as_str().to_owned(),
                cause,
            })
            .inc();
    }

    /// Observes the upstream requests a job took, when it completes.
    pub fn job_completed_after(&self, provider: ProviderId, requests: i64) {
        self.requests_per_job
            .get_or_create(&ProviderLabels {
                provider: provider.as_str().to_owned(),
            })
            .observe(requests.max(0) as f64);
    }

    pub fn job_finished(&self, provider: Option<ProviderId>, state: &str) {
        self.jobs_finished
            .get_or_create(&JobLabels {
                provider: provider.map_or("none", ProviderId::as_str).to_owned(),
                state: state.to_owned(),
            })
            .inc();
    }

    pub fn rate_limited(&self, code: &str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                limit: code.to_owned(),
            })
            .inc();
    }

    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn archive_copy(&self, outcome: &'static str) {
        self.archive_copies
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
