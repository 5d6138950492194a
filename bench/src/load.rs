//! The load generator: HTTP/1.1 keep-alive connections, each owned by one worker task.
//!
//! - **Closed loop** ([`closed_loop`]): N connections send back to back for a fixed time (after
//!   a warm-up that is not counted): the throughput at saturation.
//! - **Open loop** ([`open_loop`]): requests are due at a fixed rate whatever the server does;
//!   each latency is measured from the request's *intended* send time, so time a request spent
//!   waiting for a free connection behind a slow server counts (no coordinated omission). When
//!   more than a second of requests is waiting, the run stops early and is marked overloaded.
//!
//! Latencies of 2xx answers go into an HDR histogram in microseconds; other statuses and
//! transport errors are counted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::Request;

use crate::http::{Body, Conn};

/// Builds request number `i`.
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Body> + Send + Sync>;

/// Longest a single request may take before it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// What a set of requests got back.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Latency of each 2xx answer, in microseconds.
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    /// One non-2xx body or transport error, as evidence.
    pub sample_error: Option<String>,
    /// Every answered request, measured or not (warm-up included): for CPU per request.
    pub answered_all: u64,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            hist: histogram(),
            ok: 0,
            statuses: BTreeMap::new(),
            transport_errors: 0,
            sample_error: None,
            answered_all: 0,
        }
    }
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.ok += other.ok;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.answered_all += other.answered_all;
        if self.sample_error.is_none() {
            self.sample_error = other.sample_error;
        }
    }

    /// Answers that were not 2xx, plus transport errors.
    pub fn failures(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }

    /// `429×12 500×3 io×1`, or empty.
    pub fn failure_summary(&self) -> String {
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect();
        if self.transport_errors > 0 {
            parts.push(format!("io×{}", self.transport_errors));
        }
        parts.join(" ")
    }

    /// Counts an answer outside the measured window.
    fn count(&mut self, result: &anyhow::Result<(hyper::StatusCode, bytes::Bytes)>) {
        if result.is_ok() {
            self.answered_all += 1;
        }
    }

    fn record(&mut self, result: anyhow::Result<(hyper::StatusCode, bytes::Bytes)>, micros: u64) {
        self.count(&result);
        match result {
            Ok((status, _)) if status.is_success() => {
                self.ok += 1;
                self.hist.saturating_record(micros.max(1));
            }
            Ok((status, body)) => {
                *self.statuses.entry(status.as_u16()).or_default() += 1;
                if self.sample_error.is_none() {
                    let text = String::from_utf8_lossy(&body);
                    self.sample_error = Some(format!(
                        "{status}: {}",
                        text.chars().take(300).collect::<String>()
                    ));
                }
            }
            Err(error) => {
                self.transport_errors += 1;
                if self.sample_error.is_none() {
                    self.sample_error = Some(format!("transport: {error:#}"));
                }
            }
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub outcome: Outcome,
    /// The measured time (without warm-up).
    pub elapsed: Duration,
    /// Open loop: requests due but never sent (the run stopped early or ran out of time).
    pub not_sent: u64,
    /// Open loop: the server fell more than a second behind the schedule (more than a second
    /// of requests waiting, or answers still coming a second after the last was due).
    pub overloaded: bool,
}

impl LoadResult {
    /// 2xx answers per second.
    pub fn rate(&self) -> f64 {
        self.outcome.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.outcome.hist.value_at_quantile(quantile) as f64 / 1000.0
    }
}

async fn send(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    request: Request<Body>,
) -> anyhow::Result<(hyper::StatusCode, bytes::Bytes)> {
    if conn.is_none() {
        *conn = Some(Conn::connect(addr).await?);
    }
    let result = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        conn.as_mut().expect("connected").send(request),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!("no answer within {REQUEST_TIMEOUT:?}")),
    };
    if result.is_err() {
        *conn = None; // Reconnect for the next request.
    }
    result
}

async fn connect_all(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::connect(addr).await?);
    }
    Ok(conns)
}

/// `conns` connections send back to back for `warmup + duration`; requests that start after
/// the warm-up and finish within the duration are counted.
pub async fn closed_loop(
    addr: SocketAddr,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<LoadResult> {
    let connections = connect_all(addr, conns).await?;
    let next = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let measure_from = begin + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for conn in connections {
        let next = next.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Some(conn);
            let mut outcome = Outcome::default();
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let request = make(next.fetch_add(1, Ordering::Relaxed));
                let result = send(&mut conn, addr, request).await;
                let finished = Instant::now();
                if started >= measure_from && finished <= end {
                    outcome.record(result, (finished - started).as_micros() as u64);
                } else {
                    outcome.count(&result);
                    if result.is_err() {
                        // Keep a reconnect storm from spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            outcome
        }));
    }
    let mut outcome = Outcome::default();
    for task in tasks {
        outcome.merge(task.await?);
    }
    Ok(LoadResult {
        outcome,
        elapsed: duration,
        not_sent: 0,
        overloaded: false,
    })
}

/// Requests due at `rate` per second for `duration`, sent over up to `conns` connections.
pub async fn open_loop(
    addr: SocketAddr,
    conns: usize,
    rate: u64,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<LoadResult> {
    let connections = connect_all(addr, conns).await?;
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    // Requests still queued this long after the end are dropped.
    let give_up = end + Duration::from_secs(5);
    let (tx, rx) = flume::unbounded::<(u64, Instant)>();
    let dropped = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for conn in connections {
        let rx = rx.clone();
        let make = make.clone();
        let dropped = dropped.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Some(conn);
            let mut outcome = Outcome::default();
            while let Ok((i, intended)) = rx.recv_async().await {
                if Instant::now() > give_up {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let result = send(&mut conn, addr, make(i)).await;
                outcome.record(result, intended.elapsed().as_micros() as u64);
            }
            outcome
        }));
    }
    let mut overloaded = false;
    let backlog_limit = rate.max(100) as usize;
    let mut not_sent = 0;
    for i in 0..total {
        let intended = start + period.mul_f64(i as f64);
        if intended > Instant::now() {
            tokio::time::sleep_until(intended.into()).await;
        }
        if rx.len() > backlog_limit {
            overloaded = true;
            not_sent = total - i;
            break;
        }
        let _ = tx.send((i, intended));
    }
    drop(tx);
    drop(rx);
    let mut outcome = Outcome::default();
    for task in tasks {
        outcome.merge(task.await?);
    }
    // A server that cannot keep up answers the last requests well after the schedule ended:
    // then the rate is what it served over the time it took.
    let finished = Instant::now();
    let mut elapsed = duration;
    if overloaded || finished > end + Duration::from_secs(1) {
        overloaded = true;
        elapsed = (finished - start).max(duration);
    }
    Ok(LoadResult {
        outcome,
        elapsed,
        not_sent: not_sent + dropped.load(Ordering::Relaxed),
        overloaded,
    })
}

/// Created jobs, in the order their requests were numbered.
#[derive(Debug)]
pub struct Created {
    pub ids: Vec<String>,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Sends up to `n` create requests over `conns` connections, stopping at `deadline`, and
/// collects the created videos' ids.
pub async fn create_jobs(
    addr: SocketAddr,
    conns: usize,
    n: u64,
    deadline: Instant,
    make: MakeRequest,
) -> anyhow::Result<Created> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(alias = "job_id")]
        id: String,
    }
    let connections = connect_all(addr, conns.min(n.max(1) as usize)).await?;
    let next = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for conn in connections {
        let next = next.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Some(conn);
            let mut outcome = Outcome::default();
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || Instant::now() >= deadline {
                    break;
                }
                let started = Instant::now();
                let result = send(&mut conn, addr, make(i)).await;
                if let Ok((status, body)) = &result {
                    if status.is_success() {
                        if let Ok(created) = serde_json::from_slice::<Answer>(body) {
                            ids.push((i, created.id));
                        }
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                outcome.record(result, started.elapsed().as_micros() as u64);
            }
            (outcome, ids)
        }));
    }
    let mut outcome = Outcome::default();
    let mut ids = Vec::new();
    for task in tasks {
        let (o, i) = task.await?;
        outcome.merge(o);
        ids.extend(i);
    }
    ids.sort_unstable_by_key(|(i, _)| *i);
    Ok(Created {
        ids: ids.into_iter().map(|(_, id)| id).collect(),
        outcome,
        elapsed: begin.elapsed(),
    })
}
