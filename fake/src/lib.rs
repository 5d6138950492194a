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

pub mod cli;

pub mod aigateway;
pub mod aimlapi;
pub mod apiframe;
pub mod seedance_it;
pub mod seedanceapi;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status (and the provider's error body), optionally `Retry-After`.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Wait this long before answering normally (longer than the client's timeout: a timeout).
    Hang { millis: u64 },
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Answer 200 with JSON cut off in the middle.
    Truncated,
    /// Do the work (a submit creates its job upstream), then cut the answer off in the middle
    /// of its JSON: the job exists, but its caller cannot read its id.
    LostAnswer,
}

tokio::task_local! {
    /// Set while a request whose answer must be lost (see [`Fault::LostAnswer`]) is handled.
    static LOSE_ANSWER: std::cell::Cell<bool>;
}

/// Cuts off the answer of a request handled under [`Fault::LostAnswer`], after the handler
/// did its work.
async fn lose_answers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (lose, response) = LOSE_ANSWER
        .scope(std::cell::Cell::new(false), async {
            let response = next.run(request).await;
            (LOSE_ANSWER.with(|flag| flag.get()), response)
        })
        .await;
    if !lose {
        return response;
    }
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let cut = body.len() / 2;
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.slice(..cut),
    )
        .into_response()
}

/// One request the fake received.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub provider: String,
    /// `submit`, `poll` or `cancel`.
    pub op: String,
    pub method: String,
    pub path: String,
    /// The credential header as received.
    pub auth: Option<String>,
    pub body: Value,
    /// When the call arrived, in milliseconds since the fake started.
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Running(u8),
    Completed,
    Failed,
    Canceled,
}

#[derive(Debug, Clone)]
pub struct FakeJob {
    pub provider: &'static str,
    pub id: String,
    pub started: Instant,
    pub duration: Duration,
    pub fails: bool,
    pub canceled: bool,
    pub request: Value,
    pub callback: Option<String>,
    pub webhook_sent: bool,
    /// Seconds of video the job was asked for.
    pub seconds: i64,
    /// The provider's model id the job was submitted with.
    pub model: String,
    /// When a poll of this job was last answered in full (for providers that rate-limit
    /// polling).
    pub last_answered_poll: Option<Instant>,
}

impl FakeJob {
    pub fn phase(&self) -> Phase {
        if self.canceled {
            return Phase::Canceled;
        }
        let elapsed = self.started.elapsed();
        if elapsed >= self.duration {
            return if self.fails {
                Phase::Failed
            } else {
                Phase::Completed
            };
        }
        if elapsed < self.duration / 5 {
            return Phase::Queued;
        }
        Phase::Running((elapsed.as_millis() * 100 / self.duration.as_millis().max(1)).min(99) as u8)
    }
}

struct Inner {
    jobs: HashMap<String, FakeJob>,
    faults: HashMap<(String, String), VecDeque<Fault>>,
    calls: Vec<Call>,
    job_duration: Duration,
    failing: HashMap<String, u32>,
    next_id: u64,
    estimate_secs: Option<u64>,
    /// Job durations for single providers, over `job_duration`.
    durations: HashMap<String, Duration>,
    /// The most jobs seen running at once, per provider.
    max_running: HashMap<String, usize>,
    /// Per provider, the jobs still running by when they end, so a start counts the running
    /// jobs without scanning every job the fake has seen.
    running: HashMap<&'static str, Running>,
    /// Per provider, the job each idempotency key made.
    idempotency: HashMap<(String, String), String>,
    /// The content type output files are served with (`video/mp4` unless set).
    output_content_type: Option<String>,
    /// Providers (by prefix) whose webhooks are never delivered, as when a provider fails to
    /// call back.
    lost_webhooks: HashSet<String>,
}

/// The running jobs of one provider: their end times, and which of them were canceled early.
#[derive(Default)]
struct Running {
    ends: BinaryHeap<Reverse<(Instant, String)>>,
    canceled: HashSet<String>,
}

impl Running {
    fn start(&mut self, end: Instant, id: String) -> usize {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.ends.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, id))) = self.ends.pop() {
                self.canceled.remove(&id);
            }
        }
        self.ends.push(Reverse((end, id)));
        self.ends.len() - self.canceled.len()
    }
}

pub struct FakeState {
    inner: Mutex<Inner>,
    /// `http://host:port` of the running server, for output URLs.
    pub origin: String,
    pub webhooks: reqwest::Client,
    started: Instant,
}

impl FakeState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The job an idempotency key already made at a provider.
    pub fn replay(&self, provider: &str, key: &str) -> Option<String> {
        self.lock()
            .idempotency
            .get(&(provider.to_string(), key.to_string()))
            .cloned()
    }

    /// Remembers the job an idempotency key made.
    pub fn remember(&self, provider: &str, key: &str, job: &str) {
        self.lock()
            .idempotency
            .insert((provider.to_string(), key.to_string()), job.to_string());
    }

    pub fn record(
        &self,
        provider: &str,
        op: &str,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Value,
    ) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.lock().calls.push(Call {
            provider: provider.into(),
            op: op.into(),
            method: method.into(),
            path: path.into(),
            auth: auth.map(str::to_string),
            body,
            at_ms,
        });
    }

    pub fn take_fault(&self, provider: &str, op: &str) -> Option<Fault> {
        self.lock()
            .faults
            .get_mut(&(provider.to_string(), op.to_string()))
            .and_then(VecDeque::pop_front)
    }

    /// Starts a job; it fails if the test asked for failing jobs.
    pub fn start_job(
        &self,
        provider: &'static str,
        id_prefix: &str,
        model: &str,
        seconds: i64,
        request: Value,
        callback: Option<String>,
    ) -> FakeJob {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = format!("{id_prefix}{:06}", inner.next_id);
        let fails = match inner.failing.get_mut(provider) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        let job = FakeJob {
            provider,
            id: id.clone(),
            started: Instant::now(),
            duration: inner
                .durations
                .get(provider)
                .copied()
                .unwrap_or(inner.job_duration),
            fails,
            canceled: false,
            request,
            callback,
            webhook_sent: false,
            seconds,
            model: model.to_string(),
            last_answered_poll: None,
        };
        let running = inner
            .running
            .entry(provider)
            .or_default()
            .start(job.started + job.duration, id.clone());
        inner.jobs.insert(id, job.clone());
        let max = inner.max_running.entry(provider.to_string()).or_insert(0);
        *max = (*max).max(running);
        job
    }

    pub fn job(&self, provider: &str, id: &str) -> Option<FakeJob> {
        self.lock()
            .jobs
            .get(id)
            .filter(|j| j.provider == provider)
            .cloned()
    }

    /// Cancels a running job; false when unknown or already finished.
    pub fn cancel_job(&self, provider: &str, id: &str) -> Option<bool> {
        let mut inner = self.lock();
        let job = inner.jobs.get_mut(id).filter(|j| j.provider == provider)?;
        if matches!(job.phase(), Phase::Completed | Phase::Failed) {
            return Some(false);
        }
        job.canceled = true;
        let provider = job.provider;
        let id = job.id.clone();
        if let Some(running) = inner.running.get_mut(provider) {
            running.canceled.insert(id);
        }
        Some(true)
    }

    /// The completion estimate a provider reports for a job: its duration, unless a test set
    /// another.
    pub fn estimated_secs(&self, job: &FakeJob) -> u64 {
        self.lock()
            .estimate_secs
            .unwrap_or_else(|| job.duration.as_secs().max(1))
    }

    /// For providers that rate-limit polling: true when the job's last fully answered poll
    /// was less than `min_gap` ago; otherwise notes this poll as answered and returns false.
    pub fn polled_too_soon(&self, provider: &str, id: &str, min_gap: Duration) -> bool {
        let mut inner = self.lock();
        let Some(job) = inner.jobs.get_mut(id).filter(|j| j.provider == provider) else {
            return false;
        };
        let now = Instant::now();
        if job
            .last_answered_poll
            .is_some_and(|last| now.duration_since(last) < min_gap)
        {
            return true;
        }
        job.last_answered_poll = Some(now);
        false
    }

    pub fn output_url(&self, job: &FakeJob) -> String {
        format!("{}/files/{}.mp4", self.origin, job.id)
    }

    /// Finished jobs with a callback not yet delivered; marks them delivered.
    fn due_webhooks(&self) -> Vec<FakeJob> {
        let mut inner = self.lock();
        inner
            .jobs
            .values_mut()
            .filter(|j| {
                j.callback.is_some()
                    && !j.webhook_sent
                    && matches!(j.phase(), Phase::Completed | Phase::Failed)
            })
            .map(|j| {
                j.webhook_sent = true;
                j.clone()
            })
            .collect::<Vec<_>>()
            .into_iter()
            .filter(|j| !inner.lost_webhooks.contains(j.provider))
            .collect()
    }
}

/// Answers a fault the way a misbehaving provider would. `error_body` is the provider's
/// error shape for a status.
pub async fn fault_response(fault: Fault, error_body: fn(u16) -> Value) -> Option<Response> {
    match fault {
        Fault::Status {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (code, Json(error_body(status))).into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Some(response)
        }
        Fault::Hang { millis } => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            None
        }
        Fault::Malformed => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "<html>upstream proxy error</html>",
            )
                .into_response(),
        ),
        Fault::LostAnswer => {
            // The handler goes on; the answer it makes is cut off on the way out.
            let _ = LOSE_ANSWER.try_with(|flag| flag.set(true));
            None
        }
        Fault::Truncated => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"job_id\": \"abc\", \"sta",
            )
                .into_response(),
        ),
    }
}

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
        let state = Arc::new(FakeState {
            inner: Mutex::new(Inner {
                jobs: HashMap::new(),
                faults: HashMap::new(),
                calls: Vec::new(),
                job_duration: Duration::from_millis(300),
                failing: HashMap::new(),
                next_id: 0,
                estimate_secs: None,
                durations: HashMap::new(),
                max_running: HashMap::new(),
                running: HashMap::new(),
                idempotency: HashMap::new(),
                output_content_type: None,
                lost_webhooks: HashSet::new(),
            }),
            origin: format!("http://{addr}"),
            webhooks: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            started: Instant::now(),
        });
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
        tokio::spawn(async move { deliver_webhooks(webhook_state, stop).await });
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

pub fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .nest(&format!("/{}", seedance_it::PREFIX), seedance_it::routes())
        .nest(&format!("/{}", apiframe::PREFIX), apiframe::routes())
        .nest(&format!("/{}", aigateway::PREFIX), aigateway::routes())
        .nest(&format!("/{}", seedanceapi::PREFIX), seedanceapi::routes())
        .nest(&format!("/{}", aimlapi::PREFIX), aimlapi::routes())
        .route("/files/{name}", get(output_file))
        .route("/_fake/faults", post(control_fault))
        .route("/_fake/calls", get(control_calls))
        .route("/_fake/settings", post(control_settings))
        .layer(axum::middleware::from_fn(lose_answers))
        .with_state(state)
}

async fn output_file(State(state): State<Arc<FakeState>>, Path(name): Path<String>) -> Response {
    if !name.ends_with(".mp4") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let content_type = state
        .lock()
        .output_content_type
        .clone()
        .unwrap_or_else(|| "video/mp4".into());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(VIDEO),
    )
        .into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    provider: String,
    op: String,
    fault: Fault,
}

async fn control_fault(
    State(state): State<Arc<FakeState>>,
    Json(request): Json<FaultRequest>,
) -> StatusCode {
    state
        .lock()
        .faults
        .entry((request.provider, request.op))
        .or_default()
        .push_back(request.fault);
    StatusCode::NO_CONTENT
}

async fn control_calls(State(state): State<Arc<FakeState>>) -> Json<Vec<Call>> {
    Json(state.lock().calls.clone())
}

#[derive(Deserialize)]
struct Settings {
    job_duration_ms: Option<u64>,
    /// Per-provider job durations, by prefix.
    provider_job_duration_ms: Option<HashMap<String, u64>>,
    fail_next_jobs: Option<HashMap<String, u32>>,
    /// Providers (by prefix) whose webhooks are lost (true) or delivered again (false).
    lost_webhooks: Option<HashMap<String, bool>>,
}

async fn control_settings(
    State(state): State<Arc<FakeState>>,
    Json(settings): Json<Settings>,
) -> StatusCode {
    let mut inner = state.lock();
    if let Some(ms) = settings.job_duration_ms {
        inner.job_duration = Duration::from_millis(ms);
    }
    if let Some(durations) = settings.provider_job_duration_ms {
        inner.durations.extend(
            durations
                .into_iter()
                .map(|(p, ms)| (p, Duration::from_millis(ms))),
        );
    }
    if let Some(failing) = settings.fail_next_jobs {
        inner.failing.extend(failing);
    }
    for (provider, lost) in settings.lost_webhooks.unwrap_or_default() {
        if lost {
            inner.lost_webhooks.insert(provider);
        } else {
            inner.lost_webhooks.remove(&provider);
        }
    }
    StatusCode::NO_CONTENT
}

/// Sends each finished job's webhook once, signed as its provider signs.
async fn deliver_webhooks(state: Arc<FakeState>, stop: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        for job in state.due_webhooks() {
            let Some(url) = job.callback.clone() else {
                continue;
            };
            let (headers, body) = match job.provider {
                seedance_it::PREFIX => seedance_it::webhook(&state, &job),
                apiframe::PREFIX => apiframe::webhook(&state, &job),
                aigateway::PREFIX => aigateway::webhook(&state, &job),
                seedanceapi::PREFIX => seedanceapi::webhook(&state, &job),
                _ => continue,
            };
            let mut request = state
                .webhooks
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            if let Err(error) = request.send().await {
                tracing::debug!(%error, "fake webhook delivery failed");
            }
        }
    }
}
