//! Fake upstreams: one HTTP server that speaks each seed provider's protocol under its own
//! path prefix (`/seedance-it/api/v1/...`, `/apiframe/...`, ...), so that adapters, end-to-end
//! tests, the benchmark and docker-compose run against real HTTP without the real providers.
//!
//! Each protocol module validates what it receives the way its provider documents (wrong key
//! → 401, bad duration → 400, ...). The server can be told to inject faults into the next
//! calls (HTTP errors with `Retry-After`, hangs, malformed or truncated JSON), to make jobs
//! fail, and how long jobs take; it records every call for tests to assert on. Tests use the
//! library API ([`FakeUpstream`]); the binary (`fake-upstream`, see [`cli`]) exposes the same
//! controls under `/_fake/`.
//!
//! It is written from the providers' documents (`docs/providers.md`), not from the gateway's
//! adapters, and does not depend on the gateway: a fake built from the adapters would only
//! agree with them.
//!
//! - [`state`]: jobs, their phases, the call log and the settings, shared by every protocol.
//! - [`faults`]: the faults a test can inject, and how each is answered.
//! - [`server`]: the router (each protocol under its prefix, output files, `/_fake/`
//!   controls) and webhook delivery.
//! - one module per provider protocol: [`seedance_it`], [`apiframe`], [`aigateway`],
//!   [`seedanceapi`], [`aimlapi`].

pub mod cli;
pub mod faults;
pub mod server;
pub mod state;

pub mod aigateway;
pub mod aimlapi;
pub mod apiframe;
pub mod seedance_it;
pub mod seedanceapi;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;

pub use faults::{fault_response, Fault};
pub use server::router;
pub use state::{Call, FakeJob, FakeState, Phase};

/// The MP4 every fake job's output URL serves: the gateway's sandbox clip, the same file
/// (`assets/sandbox.mp4`).
pub const VIDEO: &[u8] = include_bytes!("../../assets/sandbox.mp4");

/// The API key every fake provider accepts.
pub const FAKE_KEY: &str = "fake-upstream-key-0123456789";

/// Provider prefixes served by the fake, with the path their documented base URL adds.
pub const PROVIDERS: [(&str, &str); 5] = [
    (seedance_it::PREFIX, "/api/v1"),
    (apiframe::PREFIX, ""),
    (aigateway::PREFIX, ""),
    (seedanceapi::PREFIX, ""),
    (aimlapi::PREFIX, ""),
];

/// A request header as text, when it is present and visible ASCII.
pub fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The running fake server.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
    shutdown: tokio_util::sync::CancellationToken,
}

impl FakeUpstream {
    pub async fn start(addr: SocketAddr) -> anyhow::Result<FakeUpstream> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(FakeState::new(format!("http://{addr}"))?);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let app = router(state.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        let webhook_state = state.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { server::deliver_webhooks(webhook_state, stop).await });
        Ok(FakeUpstream {
            addr,
            state,
            shutdown,
        })
    }

    /// The base URL to configure for a provider (its prefix and documented base path).
    pub fn base_url(&self, prefix: &str) -> String {
        let path = PROVIDERS
            .iter()
            .find(|(p, _)| *p == prefix)
            .map(|(_, path)| *path)
            .unwrap_or("");
        format!("http://{}/{prefix}{path}", self.addr)
    }

    /// Queues a fault for the next `op` (`submit`, `poll`, `cancel`) call to `provider`.
    pub fn inject(&self, provider: &str, op: &str, fault: Fault) {
        self.state
            .lock()
            .faults
            .entry((provider.to_string(), op.to_string()))
            .or_default()
            .push_back(fault);
    }

    /// Faults queued for `op` at `provider` that no call has met yet.
    pub fn faults_pending(&self, provider: &str, op: &str) -> usize {
        self.state
            .lock()
            .faults
            .get(&(provider.to_string(), op.to_string()))
            .map_or(0, VecDeque::len)
    }

    pub fn calls(&self, provider: &str) -> Vec<Call> {
        self.state
            .lock()
            .calls
            .iter()
            .filter(|c| c.provider == provider)
            .cloned()
            .collect()
    }

    pub fn set_job_duration(&self, duration: Duration) {
        self.state.lock().job_duration = duration;
    }

    /// How many jobs this provider made, whatever became of them.
    pub fn jobs_made(&self, provider: &str) -> usize {
        self.state
            .lock()
            .jobs
            .values()
            .filter(|job| job.provider == provider)
            .count()
    }

    /// The most jobs this provider had running at once (as it sees them).
    pub fn max_running(&self, provider: &str) -> usize {
        self.state
            .lock()
            .max_running
            .get(provider)
            .copied()
            .unwrap_or(0)
    }

    /// Sets how long jobs take at one provider only.
    pub fn set_provider_job_duration(&self, provider: &str, duration: Duration) {
        self.state
            .lock()
            .durations
            .insert(provider.to_string(), duration);
    }

    /// Makes providers report this completion estimate, whatever the jobs really take.
    pub fn set_estimate_secs(&self, secs: u64) {
        self.state.lock().estimate_secs = Some(secs);
    }

    /// Makes a provider (by prefix) never deliver its webhooks, or deliver them again.
    pub fn set_webhooks_lost(&self, provider: &str, lost: bool) {
        let mut inner = self.state.lock();
        if lost {
            inner.lost_webhooks.insert(provider.to_string());
        } else {
            inner.lost_webhooks.remove(provider);
        }
    }

    /// Serves output files with this content type instead of `video/mp4`.
    pub fn set_output_content_type(&self, content_type: &str) {
        self.state.lock().output_content_type = Some(content_type.to_string());
    }

    /// Makes the next `n` jobs submitted to `provider` fail upstream.
    pub fn fail_next_jobs(&self, provider: &str, n: u32) {
        self.state.lock().failing.insert(provider.to_string(), n);
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
