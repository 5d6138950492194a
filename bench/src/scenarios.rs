//! The scenarios. Each starts its own fake upstream and gateway on a fresh database (so that
//! one scenario's jobs and processes cannot skew the next), measures, and adds rows and notes
//! to the report.
//!
//! 1. `POST /v1/videos` through seedance.it.com's protocol on the fake (the cheapest fake path:
//!    one JSON submit, one lookup per poll), with full features on: API key, rate limiter,
//!    tenant caps, idempotency key, routing, ledger hold, submit inside the request, webhooks.
//! 2. `GET /v1/videos/{id}` of in-flight and completed jobs, alternately.
//! 3. The same two requests sent straight to the fake (its submit and status endpoints).
//! 4. A batch to completion against four providers capped at 10 concurrent jobs each, and
//!    (4b) the poll schedule for 30-150 s jobs on a time-scaled run.
//! 5. Many in-flight jobs: the gateway's RSS and whether polling keeps its schedule.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use crate::db;
use crate::http::request;
use crate::load::{self, MakeRequest};
use crate::procs::{PhaseMeter, RssSampler};
use crate::report::{
    BatchRow, InflightRow, Load, Measured, Report, RequestRow, ScheduleRow, GET, POST,
};
use crate::stack::{wall_ms, Env, Fake, Gateway, GatewaySpec, Upstream, FAKE_KEY};

const MODEL: &str = "seedance-2.0-fast";
const PROMPT: &str = "A paper boat drifting down a rainy street, cinematic";
/// Jobs that outlast the run: the gateway's first poll comes at 80% of the estimate.
const LONG_JOB_MS: u64 = 24 * 3600 * 1000;

/// Durations and sizes, full or `--quick`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub conns: usize,
    pub quotas: bool,
    pub warmup: Duration,
    pub closed: Duration,
    pub open: Duration,
    pub rates: Vec<u64>,
    /// Restart the fake before each POST run (its job store slows every submit as it grows).
    pub fresh_fake: bool,
    pub get_jobs: u64,
    pub batch_jobs: u64,
    pub batch_job_ms: u64,
    pub batch_cap: u32,
    /// The whole batch (creates and completion) is cut off after this.
    pub batch_limit: Duration,
    pub scale: u64,
    pub schedule_step_s: u64,
    pub schedule_jobs_per_step: u64,
    pub inflight_jobs: u64,
    pub inflight_create_limit: Duration,
    pub inflight_observe: Duration,
}

impl Settings {
    pub fn new(quick: bool, conns: usize, quotas: bool, fresh_fake: bool) -> Settings {
        if quick {
            Settings {
                conns,
                quotas,
                warmup: Duration::from_millis(200),
                closed: Duration::from_millis(800),
                open: Duration::from_millis(500),
                rates: vec![200, 1000, 5000],
                fresh_fake,
                get_jobs: 50,
                batch_jobs: 300,
                batch_job_ms: 200,
                batch_cap: 10,
                batch_limit: Duration::from_secs(30),
                scale: 30,
                schedule_step_s: 30,
                schedule_jobs_per_step: 4,
                inflight_jobs: 2_000,
                inflight_create_limit: Duration::from_secs(8),
                inflight_observe: Duration::from_secs(8),
            }
        } else {
            Settings {
                conns,
                quotas,
                warmup: Duration::from_secs(1),
                closed: Duration::from_secs(4),
                open: Duration::from_millis(2500),
                rates: vec![200, 1000, 5000],
                fresh_fake,
                get_jobs: 500,
                batch_jobs: 10_000,
                batch_job_ms: 200,
                batch_cap: 10,
                batch_limit: Duration::from_secs(150),
                scale: 10,
                schedule_step_s: 10,
                schedule_jobs_per_step: 8,
                inflight_jobs: 100_000,
                inflight_create_limit: Duration::from_secs(45),
                inflight_observe: Duration::from_secs(15),
            }
        }
    }
}

/// Which of scenarios 1-3 to run.
#[derive(Debug, Clone, Copy)]
pub struct RequestScenarios {
    pub post: bool,
    pub get: bool,
    pub direct: bool,
}

/// Makes every idempotency key of the run unique.
static RUN: AtomicU64 = AtomicU64::new(0);

fn create_body(provider: Option<&str>) -> Bytes {
    let mut body = json!({"model": MODEL, "prompt": PROMPT, "seconds": 5});
    if let Some(provider) = provider {
        body["routing"] = json!({"providers": [provider]});
    }
    Bytes::from(body.to_string())
}

/// `POST /v1/videos` with the bench key and a fresh `Idempotency-Key` per request.
fn gateway_post(gw: &Gateway, provider: Option<&str>) -> MakeRequest {
    let addr = gw.addr;
    let key = gw.key.clone();
    let body = create_body(provider);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    Arc::new(move |i| {
        request(
            Method::POST,
            addr,
            "/v1/videos",
            Some(&key),
            &[("idempotency-key", format!("bench-{run}-{i}"))],
            Some(body.clone()),
        )
    })
}

/// The submit the gateway sends seedance.it.com for that create, sent straight to the fake.
fn direct_post(fake: &Fake, gw: &Gateway) -> MakeRequest {
    let addr = fake.addr;
    let body = Bytes::from(
        json!({
            "prompt": PROMPT,
            "duration": 5,
            "aspect_ratio": "16:9",
            "webhook_url": format!("http://{}/webhooks/providers/seedance-it/{}", gw.addr, "x".repeat(43)),
        })
        .to_string(),
    );
    Arc::new(move |_| {
        request(
            Method::POST,
            addr,
            "/seedance-it/api/v1/bytedance/seedance-2.0/fast/text-to-video",
            Some(FAKE_KEY),
            &[],
            Some(body.clone()),
        )
    })
}

fn get_paths(addr: std::net::SocketAddr, auth: String, paths: Vec<String>) -> MakeRequest {
    Arc::new(move |i| {
        let path = &paths[i as usize % paths.len()];
        request(Method::GET, addr, path, Some(&auth), &[], None)
    })
}

async fn measure<F>(pid: u32, sampler: Option<&RssSampler>, run: F) -> anyhow::Result<Measured>
where
    F: std::future::Future<Output = anyhow::Result<load::LoadResult>>,
{
    let meter = PhaseMeter::start(pid, sampler);
    let result = run.await?;
    let usage = meter.finish(sampler);
    Ok(Measured { result, usage })
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Waits until the gateway's database has at least `n` jobs in a final state, or `limit`.
async fn wait_terminal(db_url: &str, n: usize, limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        let counts = db::status_counts(db_url).await?;
        let done: i64 = ["completed", "failed", "canceled"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum();
        if done as usize >= n {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn note_log(report: &mut Report, backend: &str, scenario: &str, gw: &Gateway) {
    let problems = gw.log_problems();
    if problems.warnings + problems.errors == 0 {
        return;
    }
    let samples = problems
        .samples
        .iter()
        .map(|(key, example, n)| {
            let parsed: serde_json::Value = serde_json::from_str(example).unwrap_or_default();
            let mut detail = String::new();
            if let Some(fields) = parsed.as_object() {
                for (name, value) in fields {
                    if matches!(
                        name.as_str(),
                        "timestamp"
                            | "level"
                            | "message"
                            | "target"
                            | "db.statement"
                            | "slow_threshold"
                            | "elapsed_secs"
                    ) {
                        continue;
                    }
                    let value = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_string);
                    detail.push_str(&format!(
                        " {name}={}",
                        value.chars().take(80).collect::<String>()
                    ));
                }
            }
            format!(
                "`{key}` ×{n} (e.g.{})",
                detail.replace('|', "/").replace('`', "'")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    report.notes.push(format!(
        "[{backend}] {scenario}: the gateway logged {} WARN and {} ERROR lines: {samples}",
        problems.warnings, problems.errors,
    ));
}

/// After a run of creates: how many jobs the gateway had left queued for its worker (creates
/// under concurrency defer their submit to the queue) and how long it took to submit them all.
async fn drain(db_url: &str, limit: Duration) -> anyhow::Result<(i64, f64)> {
    let started = Instant::now();
    let at_end = db::queued(db_url).await?;
    let mut left = at_end;
    while left > 0 && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = db::queued(db_url).await?;
    }
    if left > 0 {
        anyhow::bail!("{left} jobs were still queued {limit:?} after the run");
    }
    Ok((at_end, started.elapsed().as_secs_f64()))
}

fn note_failures(report: &mut Report, backend: &str, what: &str, measured: &Measured) {
    let outcome = &measured.result.outcome;
    if outcome.failures() > 0 {
        report.notes.push(format!(
            "[{backend}] {what}: {} failed requests ({}); first: {}",
            outcome.failures(),
            outcome.failure_summary(),
            outcome
                .sample_error
                .as_deref()
                .unwrap_or("-")
                .replace('|', "/")
        ));
    }
}

/// Scenarios 1-3.
pub async fn requests(
    env: &mut Env,
    s: &Settings,
    which: RequestScenarios,
    report: &std::sync::Mutex<Report>,
) -> anyhow::Result<()> {
    let backend = env.backend.name();
    let mut fake = Fake::start(env, LONG_JOB_MS).await?;
    let spec = GatewaySpec {
        upstreams: vec![Upstream::new("seedance_it", 1_000_000)],
        webhooks: true,
        tick_ms: None,
        quotas: s.quotas,
    };
    let mut gw = Gateway::start(env, &fake, &spec).await?;
    let sampler = RssSampler::start(gw.pid());
    let mut loads = vec![Load::Closed(s.conns)];
    loads.extend(s.rates.iter().map(|r| Load::Open(*r)));
    let run = |addr, load, make: MakeRequest| {
        let s = s.clone();
        async move {
            match load {
                Load::Closed(conns) => {
                    load::closed_loop(addr, conns, s.warmup, s.closed, make).await
                }
                Load::Open(rate) => {
                    load::open_loop(addr, s.conns.max(64), rate, s.open, make).await
                }
            }
        }
    };
    if which.post {
        for &load in &loads {
            if s.fresh_fake {
                fake.restart().await?;
                gw.reset_circuit("seedance-it").await?;
            }
            let meter = PhaseMeter::start(gw.pid(), Some(&sampler));
            let result = run(gw.addr, load, gateway_post(&gw, None)).await?;
            let backlog = drain(&gw.db_url, Duration::from_secs(120)).await?;
            let gateway = Measured {
                result,
                usage: meter.finish(Some(&sampler)),
            };
            let direct = if which.direct {
                if s.fresh_fake {
                    fake.restart().await?;
                }
                Some(
                    measure(
                        fake.pid(),
                        None,
                        run(fake.addr, load, direct_post(&fake, &gw)),
                    )
                    .await?,
                )
            } else {
                None
            };
            let mut r = report.lock().expect("report");
            note_failures(&mut r, backend, &format!("{POST} {load}"), &gateway);
            r.requests.push(RequestRow {
                backend,
                request: POST,
                load,
                gateway: Some(gateway),
                direct,
                backlog: Some(backlog),
            });
        }
    }
    if which.post {
        note_deferred(report, backend, &gw.db_url).await?;
    }
    if which.get {
        if s.fresh_fake {
            fake.restart().await?;
            gw.reset_circuit("seedance-it").await?;
        }
        let videos = get_targets(&mut fake, &mut gw, s).await?;
        let gw_paths: Vec<String> = videos.iter().map(|id| format!("/v1/videos/{id}")).collect();
        for &load in &loads {
            let gateway = measure(
                gw.pid(),
                Some(&sampler),
                run(
                    gw.addr,
                    load,
                    get_paths(gw.addr, gw.key.clone(), gw_paths.clone()),
                ),
            )
            .await?;
            let direct = if which.direct {
                let fake_paths: Vec<String> = seed_direct(&mut fake, &gw, s.get_jobs)
                    .await?
                    .iter()
                    .map(|id| format!("/seedance-it/api/v1/jobs/{id}"))
                    .collect();
                Some(
                    measure(
                        fake.pid(),
                        None,
                        run(
                            fake.addr,
                            load,
                            get_paths(fake.addr, FAKE_KEY.into(), fake_paths),
                        ),
                    )
                    .await?,
                )
            } else {
                None
            };
            let mut r = report.lock().expect("report");
            note_failures(&mut r, backend, &format!("{GET} {load}"), &gateway);
            r.requests.push(RequestRow {
                backend,
                request: GET,
                load,
                gateway: Some(gateway),
                direct,
                backlog: None,
            });
        }
    }
    note_log(
        &mut report.lock().expect("report"),
        backend,
        "scenarios 1-3",
        &gw,
    );
    drop(sampler);
    gw.stop();
    Ok(())
}

/// Creates the videos scenario 2 reads through the gateway: half completed, half in flight,
/// alternating.
async fn get_targets(
    fake: &mut Fake,
    gw: &mut Gateway,
    s: &Settings,
) -> anyhow::Result<Vec<String>> {
    let deadline = || Instant::now() + Duration::from_secs(60);
    fake.set_durations(&[("seedance-it", 300)]).await?;
    let done =
        load::create_jobs(gw.addr, 16, s.get_jobs, deadline(), gateway_post(gw, None)).await?;
    anyhow::ensure!(
        !done.ids.is_empty(),
        "no video could be created for the GET scenario: {}",
        done.outcome.sample_error.as_deref().unwrap_or("-")
    );
    drain(&gw.db_url, Duration::from_secs(60)).await?;
    if !wait_terminal(&gw.db_url, done.ids.len(), Duration::from_secs(60)).await? {
        anyhow::bail!("the GET scenario's short jobs did not complete within 60 s");
    }
    fake.set_durations(&[("seedance-it", LONG_JOB_MS)]).await?;
    let running =
        load::create_jobs(gw.addr, 16, s.get_jobs, deadline(), gateway_post(gw, None)).await?;
    drain(&gw.db_url, Duration::from_secs(60)).await?;
    Ok(interleave(done.ids, running.ids))
}

fn interleave(a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect()
}

/// A fresh fake with jobs of its own for the direct reads, half completed and half running:
/// its call log grows with every request (and is copied when it outgrows its allocation), so
/// the direct GET runs do not start on the log of the runs before them.
async fn seed_direct(fake: &mut Fake, gw: &Gateway, n: u64) -> anyhow::Result<Vec<String>> {
    fake.restart().await?;
    let deadline = || Instant::now() + Duration::from_secs(60);
    fake.set_durations(&[("seedance-it", 1)]).await?;
    let done = load::create_jobs(fake.addr, 16, n, deadline(), direct_post(fake, gw)).await?;
    fake.set_durations(&[("seedance-it", LONG_JOB_MS)]).await?;
    let running = load::create_jobs(fake.addr, 16, n, deadline(), direct_post(fake, gw)).await?;
    anyhow::ensure!(
        !done.ids.is_empty() && !running.ids.is_empty(),
        "the fake did not take the direct GET scenario's jobs: {}",
        done.outcome.sample_error.as_deref().unwrap_or("-")
    );
    Ok(interleave(done.ids, running.ids))
}

/// How many of the jobs created so far were submitted upstream by the worker, after their
/// create had answered, rather than inside the create request.
async fn note_deferred(
    report: &std::sync::Mutex<Report>,
    backend: &str,
    db_url: &str,
) -> anyhow::Result<()> {
    let jobs = db::jobs(db_url).await?;
    let mut waits: Vec<f64> = jobs
        .iter()
        .filter_map(|j| Some((j.submit_answered_at? - j.created_at) as f64))
        .collect();
    waits.sort_by(f64::total_cmp);
    let deferred: Vec<f64> = waits.iter().copied().filter(|w| *w > 50.0).collect();
    if !deferred.is_empty() {
        report.lock().expect("report").notes.push(format!(
            "[{backend}] POST runs: {} of {} creates had their upstream submit answered more than 50 ms after their job row was written (queued inside the request, or left to the worker; median {:.0} ms, p95 {:.0} ms, max {:.0} ms after it)",
            deferred.len(),
            waits.len(),
            quantile(&deferred, 0.5),
            quantile(&deferred, 0.95),
            deferred.last().copied().unwrap_or(0.0),
        ));
    }
    Ok(())
}

/// The four providers the batch runs on: their fakes all serve Seedance 2.0 Fast at 720p 16:9.
/// AIgateway is left out: it refuses polls closer than 3 s, which no short job can live with.
const BATCH_PROVIDERS: [&str; 4] = ["seedance_it", "apiframe", "seedanceapi", "aimlapi"];

/// Scenario 4.
pub async fn batch(
    env: &mut Env,
    s: &Settings,
    report: &std::sync::Mutex<Report>,
) -> anyhow::Result<()> {
    let backend = env.backend.name();
    let job_ms = s.batch_job_ms;
    let mut fake = Fake::start(env, job_ms).await?;
    let upstreams: Vec<Upstream> = BATCH_PROVIDERS
        .iter()
        .map(|name| Upstream::new(name, s.batch_cap).poll_interval(1000))
        .collect();
    let durations: Vec<(&str, u64)> = upstreams.iter().map(|u| (u.fake_prefix, job_ms)).collect();
    fake.set_durations(&durations).await?;
    let spec = GatewaySpec {
        upstreams: upstreams.clone(),
        webhooks: true,
        tick_ms: None,
        quotas: s.quotas,
    };
    let gw = Gateway::start(env, &fake, &spec).await?;
    let sampler = RssSampler::start(gw.pid());
    let meter = PhaseMeter::start(gw.pid(), Some(&sampler));
    let concurrency = (s.batch_cap as u64) * upstreams.len() as u64;
    let t0 = wall_ms();
    let cutoff = Instant::now() + s.batch_limit;
    let created = load::create_jobs(
        gw.addr,
        s.conns,
        s.batch_jobs,
        cutoff,
        gateway_post(&gw, None),
    )
    .await?;
    let ideal_ms = created.ids.len() as u64 * job_ms / concurrency;
    let limit = cutoff.saturating_duration_since(Instant::now());
    let finished = wait_terminal(&gw.db_url, created.ids.len(), limit).await?;
    let stopped = wall_ms();
    let usage = meter.finish(Some(&sampler));
    let jobs = db::jobs(&gw.db_url).await?;
    let (calls, _) = fake.calls().await?;
    let completed: Vec<&db::JobRow> = jobs.iter().filter(|j| j.status == "completed").collect();
    let failed = jobs.iter().filter(|j| j.status == "failed").count();
    let last = if finished {
        completed
            .iter()
            .filter_map(|j| j.completed_at)
            .max()
            .unwrap_or(t0)
    } else {
        stopped
    };
    let mut delays: Vec<f64> = completed
        .iter()
        .filter_map(|j| {
            let answered = j.submit_answered_at.or(j.submitted_at)?;
            Some((j.completed_at? - (answered + job_ms as i64)) as f64)
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let mut per_provider = Vec::new();
    for upstream in &upstreams {
        let name = upstream.api_name();
        let jobs = completed.iter().filter(|j| j.provider == name).count();
        let submits = calls
            .iter()
            .filter(|c| c.provider == upstream.fake_prefix && c.op == "submit")
            .count();
        let polls = calls
            .iter()
            .filter(|c| c.provider == upstream.fake_prefix && c.op != "submit")
            .count();
        per_provider.push((name.to_string(), jobs, submits, polls));
    }
    let max_running = max_overlap(&jobs);
    let row = BatchRow {
        backend,
        created: created.ids.len(),
        completed: completed.len(),
        failed,
        providers: upstreams.len(),
        cap: s.batch_cap,
        job_ms,
        concurrency,
        finished,
        create_s: created.elapsed.as_secs_f64(),
        wall_s: (last - t0) as f64 / 1000.0,
        ideal_s: ideal_ms as f64 / 1000.0,
        upstream_per_job: calls.len() as f64 / completed.len().max(1) as f64,
        per_provider,
        delay_p50_ms: quantile(&delays, 0.5),
        delay_p95_ms: quantile(&delays, 0.95),
        max_running,
        usage,
        create_failures: created.outcome.failure_summary(),
    };
    let mut r = report.lock().expect("report");
    if !finished {
        r.notes.push(format!(
            "[{backend}] scenario 4: cut off after {:?}: {} of {} jobs had finished",
            s.batch_limit,
            completed.len() + failed,
            created.ids.len()
        ));
    }
    if let Some(sample) = &created.outcome.sample_error {
        r.notes.push(format!(
            "[{backend}] scenario 4 creates: first failure: {sample}"
        ));
    }
    r.batches.push(row);
    note_log(&mut r, backend, "scenario 4", &gw);
    drop(r);
    drop(sampler);
    gw.stop();
    Ok(())
}

/// The most jobs of one provider between an accepted submit and completion at once.
fn max_overlap(jobs: &[db::JobRow]) -> usize {
    let mut by_provider: BTreeMap<&str, Vec<(i64, i32)>> = BTreeMap::new();
    for job in jobs {
        if let (Some(start), Some(end)) = (
            job.submit_answered_at.or(job.submitted_at),
            job.completed_at,
        ) {
            let events = by_provider.entry(job.provider.as_str()).or_default();
            events.push((start, 1));
            events.push((end, -1));
        }
    }
    let mut max = 0;
    for events in by_provider.values_mut() {
        events.sort_unstable();
        let mut running = 0i32;
        for (_, delta) in events.iter() {
            running += delta;
            max = max.max(running.max(0) as usize);
        }
    }
    max
}

/// Scenario 4b: the poll schedule for 30-150 s jobs, everything `s.scale` times faster.
pub async fn schedule(
    env: &mut Env,
    s: &Settings,
    report: &std::sync::Mutex<Report>,
) -> anyhow::Result<()> {
    let backend = env.backend.name();
    let k = s.scale;
    let mut fake = Fake::start(env, LONG_JOB_MS).await?;
    // Every provider, with the default poll interval (10 s), scaled. Those that call back are
    // polled only as a safety net (first past the expected end, then every
    // `workers.safety_poll_secs`): with webhooks delivered, a job costs its submit and one
    // confirming poll.
    let variants = [
        ("seedance_it", "webhook (with an estimate)"),
        ("apiframe", "webhook (signed, no estimate)"),
        ("aigateway", "webhook (signed, no estimate, 3 s poll gap)"),
        ("seedanceapi", "webhook (no estimate)"),
        ("aimlapi", "polling only (no estimate, no webhook)"),
    ];
    let upstreams: Vec<Upstream> = variants
        .iter()
        .map(|(name, _)| Upstream::new(name, 1_000_000).poll_interval(10_000 / k))
        .collect();
    let spec = GatewaySpec {
        upstreams: upstreams.clone(),
        webhooks: true,
        tick_ms: Some((250 / k).max(5)),
        quotas: s.quotas,
    };
    let gw = Gateway::start(env, &fake, &spec).await?;
    // Video id → its unscaled duration in seconds.
    let mut duration_of: HashMap<String, u64> = HashMap::new();
    let mut created_total = 0;
    let mut longest = 0;
    for seconds in (30..=150).step_by(s.schedule_step_s as usize) {
        let scaled_ms = seconds * 1000 / k;
        longest = longest.max(scaled_ms);
        let durations: Vec<(&str, u64)> = upstreams
            .iter()
            .map(|u| (u.fake_prefix, scaled_ms))
            .collect();
        fake.set_durations(&durations).await?;
        for upstream in &upstreams {
            let created = load::create_jobs(
                gw.addr,
                4,
                s.schedule_jobs_per_step,
                Instant::now() + Duration::from_secs(30),
                gateway_post(&gw, Some(upstream.api_name())),
            )
            .await?;
            created_total += created.ids.len();
            for id in created.ids {
                duration_of.insert(id, seconds);
            }
        }
        // Creates under concurrency may leave their submit to the worker: the fake must see
        // every submit of this group before its job duration changes.
        drain(&gw.db_url, Duration::from_secs(30)).await?;
    }
    let finished = wait_terminal(
        &gw.db_url,
        created_total,
        Duration::from_millis(longest * 2 + 20_000),
    )
    .await?;
    let jobs = db::jobs(&gw.db_url).await?;
    let (calls, _) = fake.calls().await?;
    let mut r = report.lock().expect("report");
    if !finished {
        r.notes.push(format!(
            "[{backend}] scenario 4b: not every job finished within the time allowed"
        ));
    }
    for (upstream, (_, variant)) in upstreams.iter().zip(variants) {
        let mine: Vec<&db::JobRow> = jobs
            .iter()
            .filter(|j| j.provider == upstream.api_name() && duration_of.contains_key(&j.id))
            .collect();
        let completed: Vec<&&db::JobRow> =
            mine.iter().filter(|j| j.status == "completed").collect();
        let submits = calls
            .iter()
            .filter(|c| c.provider == upstream.fake_prefix && c.op == "submit")
            .count();
        let polls = calls
            .iter()
            .filter(|c| c.provider == upstream.fake_prefix && c.op != "submit")
            .count();
        let mut delays: Vec<f64> = completed
            .iter()
            .filter_map(|j| {
                let answered = j.submit_answered_at.or(j.submitted_at)?;
                let duration_ms = (duration_of[&j.id] * 1000 / k) as i64;
                Some((j.completed_at? - answered - duration_ms) as f64 * k as f64 / 1000.0)
            })
            .collect();
        delays.sort_by(f64::total_cmp);
        let n = completed.len().max(1) as f64;
        r.schedules.push(ScheduleRow {
            backend,
            provider: upstream.api_name().to_string(),
            variant: variant.to_string(),
            scale: k,
            jobs: mine.len(),
            completed: completed.len(),
            submits_per_job: submits as f64 / n,
            polls_per_job: polls as f64 / n,
            delay_p50_s: quantile(&delays, 0.5),
            delay_p95_s: quantile(&delays, 0.95),
        });
    }
    note_log(&mut r, backend, "scenario 4b", &gw);
    drop(r);
    gw.stop();
    Ok(())
}

/// Scenario 5.
pub async fn inflight(
    env: &mut Env,
    s: &Settings,
    report: &std::sync::Mutex<Report>,
) -> anyhow::Result<()> {
    let backend = env.backend.name();
    let mut fake = Fake::start(env, LONG_JOB_MS).await?;
    let upstream = Upstream::new("aimlapi", 100_000_000);
    let interval = 10_000i64; // aimlapi's default poll_interval_ms
    let spec = GatewaySpec {
        upstreams: vec![upstream],
        webhooks: true,
        tick_ms: None,
        // The caps are checked against running totals, so 100k jobs cost no more per create.
        quotas: s.quotas,
    };
    let gw = Gateway::start(env, &fake, &spec).await?;
    let sampler = RssSampler::start(gw.pid());
    let meter = PhaseMeter::start(gw.pid(), Some(&sampler));
    fake.mark_clock().await?;
    let created = load::create_jobs(
        gw.addr,
        s.conns,
        s.inflight_jobs,
        Instant::now() + s.inflight_create_limit,
        gateway_post(&gw, None),
    )
    .await?;
    let window_start = wall_ms();
    tokio::time::sleep(s.inflight_observe).await;
    let window_end = wall_ms();
    fake.mark_clock().await?;
    let usage = meter.finish(Some(&sampler));
    let jobs = db::jobs(&gw.db_url).await?;
    let in_progress = jobs.iter().filter(|j| j.status == "in_progress").count() as i64;
    let queued = jobs.iter().filter(|j| j.status == "queued").count() as i64;
    let (calls, offset) = fake.calls().await?;
    let offset = offset.ok_or_else(|| anyhow::anyhow!("the fake's clock marker is missing"))?;
    let observed = calls
        .iter()
        .filter(|c| c.op == "poll")
        .map(|c| c.at_ms as i64 + offset)
        .filter(|at| (window_start..window_end).contains(at))
        .count();
    let expected: usize = jobs
        .iter()
        .filter_map(|j| {
            let submitted = j.submit_answered_at.or(j.submitted_at)?;
            Some(expected_polls(
                j.created_at,
                submitted,
                interval,
                window_start,
                window_end,
            ))
        })
        .sum();
    let mut r = report.lock().expect("report");
    if let Some(sample) = &created.outcome.sample_error {
        r.notes.push(format!(
            "[{backend}] scenario 5 creates: first failure: {sample}"
        ));
    }
    if queued > 0 {
        r.notes.push(format!(
            "[{backend}] scenario 5: {} jobs created in {:.0} s, but by the end of the window the worker had submitted only {in_progress} of them ({queued} still queued in the gateway): polling was only asked to follow those",
            created.ids.len(),
            created.elapsed.as_secs_f64(),
        ));
    }
    r.inflight.push(InflightRow {
        backend,
        jobs: s.inflight_jobs,
        created: created.ids.len(),
        create_rate: created.ids.len() as f64 / created.elapsed.as_secs_f64().max(1e-9),
        create_failures: created.outcome.failure_summary(),
        in_progress,
        queued,
        window_s: (window_end - window_start) as f64 / 1000.0,
        observed_polls: observed,
        expected_polls: expected,
        usage,
        requests: created.outcome.answered_all,
    });
    note_log(&mut r, backend, "scenario 5", &gw);
    drop(r);
    drop(sampler);
    gw.stop();
    Ok(())
}

/// Polls the gateway's schedule makes for a job without an estimate within `[from, to)`: the
/// first one interval after the submit, then every quarter of the job's age, kept within
/// [interval / 4, interval] (`workers::jobs::poll_delay`).
fn expected_polls(created: i64, submitted: i64, interval: i64, from: i64, to: i64) -> usize {
    let mut at = submitted + interval;
    let mut count = 0;
    while at < to {
        if at >= from {
            count += 1;
        }
        let age = at - created;
        at += (age / 4).clamp(interval / 4, interval);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_schedule_backs_off_with_age() {
        // Polls at 10, 12.5, 15.625, 19.53, 24.41, 30.52, 38.15, 47.68 s, then every 10 s.
        assert_eq!(expected_polls(0, 0, 10_000, 0, 10_001), 1);
        assert_eq!(expected_polls(0, 0, 10_000, 0, 48_000), 8);
        assert_eq!(expected_polls(0, 0, 10_000, 48_000, 78_000), 3);
    }

    #[test]
    fn overlap_counts_concurrent_jobs_per_provider() {
        let job = |provider: &str, start, end| db::JobRow {
            id: String::new(),
            provider: provider.into(),
            status: "completed".into(),
            created_at: 0,
            submitted_at: Some(start),
            completed_at: Some(end),
            submit_answered_at: None,
        };
        let jobs = [
            job("a", 0, 10),
            job("a", 5, 15),
            job("a", 12, 20),
            job("b", 0, 30),
        ];
        assert_eq!(max_overlap(&jobs), 2);
    }
}
