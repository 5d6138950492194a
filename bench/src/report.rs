//! The results and how they are printed: markdown tables per scenario, then every target
//! judged PASS or FAIL, then the notes (errors, slow paths, knobs) gathered during the run.

use std::fmt::Write as _;

use crate::load::LoadResult;
use crate::procs::PhaseUsage;

/// A load run and what the measured process used meanwhile.
#[derive(Debug, Clone)]
pub struct Measured {
    pub result: LoadResult,
    pub usage: PhaseUsage,
}

impl Measured {
    /// CPU seconds per 1,000 answered requests (warm-up included on both sides).
    pub fn cpu_per_1k(&self) -> f64 {
        per_1k(self.usage.cpu_secs, self.result.outcome.answered_all)
    }

    /// Context switches of the measured process per answered request.
    pub fn switches_per_request(&self) -> f64 {
        self.usage.ctx_switches as f64 / self.result.outcome.answered_all.max(1) as f64
    }
}

pub fn per_1k(cpu_secs: f64, requests: u64) -> f64 {
    if requests == 0 {
        return f64::NAN;
    }
    cpu_secs / requests as f64 * 1000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    Closed(usize),
    Open(u64),
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Load::Closed(conns) => write!(f, "closed, {conns} conns"),
            Load::Open(rate) => write!(f, "open {rate}/s"),
        }
    }
}

/// Scenarios 1-3: one request kind at one load, through the gateway and straight to the fake.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub backend: &'static str,
    pub request: &'static str,
    pub load: Load,
    pub gateway: Option<Measured>,
    pub direct: Option<Measured>,
    /// Creates: jobs left queued for the worker when the run ended, and the seconds it took
    /// to submit them (counted in the gateway's RSS and CPU).
    pub backlog: Option<(i64, f64)>,
}

/// Scenario 4: a batch to completion against capped providers.
#[derive(Debug, Clone, Default)]
pub struct BatchRow {
    pub backend: &'static str,
    pub created: usize,
    pub completed: usize,
    pub failed: usize,
    pub providers: usize,
    pub cap: u32,
    pub job_ms: u64,
    pub concurrency: u64,
    /// Every created job finished before the cut-off.
    pub finished: bool,
    pub create_s: f64,
    pub wall_s: f64,
    pub ideal_s: f64,
    pub upstream_per_job: f64,
    /// (provider, completed jobs, submits, polls).
    pub per_provider: Vec<(String, usize, usize, usize)>,
    pub delay_p50_ms: f64,
    pub delay_p95_ms: f64,
    pub max_running: usize,
    pub usage: PhaseUsage,
    pub create_failures: String,
}

impl BatchRow {
    /// The wall time, or for a cut-off run the time all created jobs would have taken at the
    /// rate they were finishing.
    pub fn projected_wall_s(&self) -> f64 {
        if self.finished || self.completed == 0 {
            self.wall_s
        } else {
            self.wall_s * self.created as f64 / self.completed as f64
        }
    }
}

/// Scenario 4b: the poll schedule for 30-150 s jobs, measured on a time-scaled run.
#[derive(Debug, Clone, Default)]
pub struct ScheduleRow {
    pub backend: &'static str,
    pub provider: String,
    pub variant: String,
    pub scale: u64,
    pub jobs: usize,
    pub completed: usize,
    pub submits_per_job: f64,
    pub polls_per_job: f64,
    /// Unscaled seconds.
    pub delay_p50_s: f64,
    pub delay_p95_s: f64,
}

impl ScheduleRow {
    pub fn requests_per_job(&self) -> f64 {
        self.submits_per_job + self.polls_per_job
    }
}

/// Scenario 5: many in-flight jobs.
#[derive(Debug, Clone, Default)]
pub struct InflightRow {
    pub backend: &'static str,
    pub jobs: u64,
    pub created: usize,
    pub create_rate: f64,
    pub create_failures: String,
    pub in_progress: i64,
    pub queued: i64,
    pub window_s: f64,
    pub observed_polls: usize,
    pub expected_polls: usize,
    pub usage: PhaseUsage,
    pub requests: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub header: Vec<String>,
    pub requests: Vec<RequestRow>,
    pub batches: Vec<BatchRow>,
    pub schedules: Vec<ScheduleRow>,
    pub inflight: Vec<InflightRow>,
    pub notes: Vec<String>,
}

fn mb(kb: u64) -> String {
    format!("{:.0}", kb as f64 / 1024.0)
}

fn num(value: f64) -> String {
    if !value.is_finite() {
        "-".into()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn latencies(result: &LoadResult) -> String {
    if result.outcome.ok == 0 {
        return "-".into();
    }
    format!(
        "{} / {} / {}",
        num(result.ms(0.5)),
        num(result.ms(0.99)),
        num(result.ms(0.999))
    )
}

fn rate(result: &LoadResult) -> String {
    let mut text = format!("{:.0}", result.rate());
    if result.overloaded {
        text.push_str(" (overloaded)");
    }
    text
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    }
}

/// One target line: backend, target, measured, verdict.
struct Target {
    backend: &'static str,
    what: String,
    measured: String,
    pass: Option<bool>,
}

impl Report {
    fn request_row(&self, backend: &str, request: &str, load: Load) -> Option<&RequestRow> {
        self.requests
            .iter()
            .find(|r| r.backend == backend && r.request == request && r.load == load)
    }

    fn closed_row(&self, backend: &str, request: &str) -> Option<&RequestRow> {
        self.requests.iter().find(|r| {
            r.backend == backend && r.request == request && matches!(r.load, Load::Closed(_))
        })
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let mut backends: Vec<&'static str> = Vec::new();
        for backend in self
            .requests
            .iter()
            .map(|r| r.backend)
            .chain(self.schedules.iter().map(|r| r.backend))
            .chain(self.inflight.iter().map(|r| r.backend))
        {
            if !backends.contains(&backend) {
                backends.push(backend);
            }
        }
        for backend in backends {
            for (request, share) in [(GET, 0.30), (POST, 0.05)] {
                if let Some(row) = self.closed_row(backend, request) {
                    let gateway = row.gateway.as_ref().map(|m| m.result.rate());
                    let direct = row.direct.as_ref().map(|m| m.result.rate());
                    let (measured, pass) = match (gateway, direct) {
                        (Some(g), Some(d)) if d > 0.0 => (
                            format!("{:.1}% ({g:.0}/s vs {d:.0}/s)", g / d * 100.0),
                            Some(g / d >= share),
                        ),
                        _ => ("not measured (needs scenario 3)".into(), None),
                    };
                    targets.push(Target {
                        backend,
                        what: format!(
                            "{} throughput ≥ {:.0}% of the fake's own",
                            short(request),
                            share * 100.0
                        ),
                        measured,
                        pass,
                    });
                }
            }
            if backend == "sqlite" {
                if let Some(g) = self
                    .closed_row(backend, POST)
                    .and_then(|r| r.gateway.as_ref())
                {
                    targets.push(Target {
                        backend,
                        what: "POST ≥ 3,000/s on SQLite".into(),
                        measured: format!("{:.0}/s", g.result.rate()),
                        pass: Some(g.result.rate() >= 3000.0),
                    });
                }
            }
            for (request, limit) in [(POST, 2.0), (GET, 1.0)] {
                let Some(row) = self.request_row(backend, request, Load::Open(1000)) else {
                    continue;
                };
                let (measured, pass) = match (&row.gateway, &row.direct) {
                    (Some(g), Some(d)) => {
                        let added = g.result.ms(0.99) - d.result.ms(0.99);
                        let complete = !g.result.overloaded && g.result.outcome.ok > 0;
                        (
                            format!(
                                "{added:.2} ms (p99 {:.2} vs {:.2}){}",
                                g.result.ms(0.99),
                                d.result.ms(0.99),
                                if complete { "" } else { ", gateway overloaded" }
                            ),
                            Some(complete && added < limit),
                        )
                    }
                    _ => ("not measured (needs scenario 3)".into(), None),
                };
                targets.push(Target {
                    backend,
                    what: format!(
                        "{} p99 added latency at 1,000/s < {limit} ms",
                        short(request)
                    ),
                    measured,
                    pass,
                });
            }
            for row in self.schedules.iter().filter(|r| r.backend == backend) {
                targets.push(Target {
                    backend,
                    what: format!(
                        "30-150 s jobs, {} ({}): ≤ 3 upstream requests/job, completion visible ≤ 5 s p95",
                        row.provider, row.variant
                    ),
                    measured: format!(
                        "{:.2} req/job, p95 {:.1} s",
                        row.requests_per_job(),
                        row.delay_p95_s
                    ),
                    pass: (row.completed > 0)
                        .then(|| row.requests_per_job() <= 3.0 && row.delay_p95_s <= 5.0),
                });
            }
            for row in self.inflight.iter().filter(|r| r.backend == backend) {
                let full = row.created >= 100_000;
                let measured = if full {
                    format!(
                        "{} MB peak with {} jobs",
                        mb(row.usage.rss_peak_kb),
                        row.created
                    )
                } else {
                    format!(
                        "{} MB peak with {} jobs (not judged: fewer than 100k created in the time allowed; raise `--inflight-secs`)",
                        mb(row.usage.rss_peak_kb),
                        row.created
                    )
                };
                targets.push(Target {
                    backend,
                    what: "100k in-flight jobs < 300 MB RSS".into(),
                    measured,
                    pass: full.then_some(row.usage.rss_peak_kb < 300 * 1024),
                });
            }
        }
        targets
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "\n# seedance-gateway benchmark\n")?;
        for line in &self.header {
            writeln!(out, "- {line}")?;
        }
        if !self.requests.is_empty() {
            writeln!(
                out,
                "\n## 1-3. Requests: gateway vs the fake upstream directly\n"
            )?;
            writeln!(out, "Latencies in ms (p50 / p99 / p99.9); open-loop latency counts from each request's intended send time. RSS and CPU are the gateway's over the run; the last column is the fake's CPU per 1,000 direct requests. Creates that the gateway left queued for its worker are drained after each POST run, within the run's RSS and CPU.\n")?;
            writeln!(out, "| backend | request | load | gateway req/s | gateway ms | direct req/s | direct ms | gw/direct | added p99 ms | gateway non-2xx | queued at end / drain s | RSS peak/end MB | gw CPU s/1k | gw ctx switches/req | fake CPU s/1k |")?;
            writeln!(
                out,
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            )?;
            for row in &self.requests {
                let g = row.gateway.as_ref();
                let d = row.direct.as_ref();
                let ratio = match (g, d, row.load) {
                    (Some(g), Some(d), Load::Closed(_)) if d.result.rate() > 0.0 => {
                        format!("{:.1}%", g.result.rate() / d.result.rate() * 100.0)
                    }
                    _ => "-".into(),
                };
                let added = match (g, d) {
                    (Some(g), Some(d)) if g.result.outcome.ok > 0 && d.result.outcome.ok > 0 => {
                        num(g.result.ms(0.99) - d.result.ms(0.99))
                    }
                    _ => "-".into(),
                };
                writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    row.backend,
                    row.request,
                    row.load,
                    g.map_or("-".into(), |m| rate(&m.result)),
                    g.map_or("-".into(), |m| latencies(&m.result)),
                    d.map_or("-".into(), |m| rate(&m.result)),
                    d.map_or("-".into(), |m| latencies(&m.result)),
                    ratio,
                    added,
                    g.map_or("-".into(), |m| {
                        let mut s = m.result.outcome.failure_summary();
                        if m.result.not_sent > 0 {
                            s = format!("{s} not sent×{}", m.result.not_sent)
                                .trim()
                                .to_string();
                        }
                        if s.is_empty() {
                            "0".into()
                        } else {
                            s
                        }
                    }),
                    row.backlog
                        .map_or("-".into(), |(queued, secs)| format!("{queued} / {secs:.1}")),
                    g.map_or("-".into(), |m| format!(
                        "{} / {}",
                        mb(m.usage.rss_peak_kb),
                        mb(m.usage.rss_end_kb)
                    )),
                    g.map_or("-".into(), |m| num(m.cpu_per_1k())),
                    g.map_or("-".into(), |m| num(m.switches_per_request())),
                    d.map_or("-".into(), |m| num(m.cpu_per_1k())),
                )?;
            }
        }
        if !self.batches.is_empty() {
            writeln!(
                out,
                "\n## 4. Batch to completion against capped providers\n"
            )?;
            writeln!(out, "Ideal = jobs × job duration / total concurrency; a run cut off before the end is projected at the rate its jobs were finishing (wall/ideal uses the projection); slot overhead = the time each job held a provider slot beyond its duration, on average (wall × concurrency / jobs − duration). Visible delay = the gateway row's `completed_at` (ms; what any GET shows from then on) minus the upstream completion (accepted submit answered + job duration). RSS and CPU are the gateway's.\n")?;
            writeln!(out, "| backend | jobs done/created | providers × cap | job ms | create s | wall s | ideal s | wall/ideal | slot overhead ms | upstream req/job | per provider: jobs, req/job | visible delay p50 / p95 ms | max running/provider | RSS peak/end MB | CPU s/1k jobs | failed / create errors |")?;
            writeln!(
                out,
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            )?;
            for row in &self.batches {
                let per_provider = row
                    .per_provider
                    .iter()
                    .map(|(p, jobs, submits, polls)| {
                        format!(
                            "{p}: {jobs}, {}",
                            num((submits + polls) as f64 / (*jobs).max(1) as f64)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                writeln!(
                    out,
                    "| {} | {}/{} | {} × {} | {} | {:.1} | {} | {:.1} | {:.2} | {:.0} | {:.2} | {} | {} / {} | {} | {} / {} | {} | {} / {} |",
                    row.backend,
                    row.completed,
                    row.created,
                    row.providers,
                    row.cap,
                    row.job_ms,
                    row.create_s,
                    if row.finished {
                        format!("{:.1}", row.wall_s)
                    } else {
                        format!(
                            "{:.1} (cut off; {:.0} projected)",
                            row.wall_s,
                            row.projected_wall_s()
                        )
                    },
                    row.ideal_s,
                    row.projected_wall_s() / row.ideal_s,
                    row.wall_s * 1000.0 * row.concurrency as f64 / row.completed.max(1) as f64
                        - row.job_ms as f64,
                    row.upstream_per_job,
                    per_provider,
                    num(row.delay_p50_ms),
                    num(row.delay_p95_ms),
                    row.max_running,
                    mb(row.usage.rss_peak_kb),
                    mb(row.usage.rss_end_kb),
                    num(per_1k(row.usage.cpu_secs, row.completed as u64)),
                    row.failed,
                    if row.create_failures.is_empty() { "0".into() } else { row.create_failures.clone() },
                )?;
            }
        }
        if !self.schedules.is_empty() {
            let scale = self.schedules[0].scale;
            writeln!(
                out,
                "\n## 4b. Poll schedule for 30-150 s jobs (time-scaled run)\n"
            )?;
            writeln!(out, "Jobs of 30-150 s run {scale}× faster: the fake's job durations, the providers' `poll_interval_ms` and `workers.tick_ms` divided by {scale}. Requests per job do not depend on the scale; delays are multiplied back by {scale} (the fake's 50 ms webhook loop becomes {:.1} s of it).\n", 0.05 * scale as f64)?;
            writeln!(out, "| backend | provider | variant | jobs done/created | submits/job | polls/job | upstream req/job | visible delay p50 / p95 s |")?;
            writeln!(out, "|---|---|---|---|---|---|---|---|")?;
            for row in &self.schedules {
                writeln!(
                    out,
                    "| {} | {} | {} | {}/{} | {:.2} | {:.2} | {:.2} | {:.1} / {:.1} |",
                    row.backend,
                    row.provider,
                    row.variant,
                    row.completed,
                    row.jobs,
                    row.submits_per_job,
                    row.polls_per_job,
                    row.requests_per_job(),
                    row.delay_p50_s,
                    row.delay_p95_s
                )?;
            }
        }
        if !self.inflight.is_empty() {
            writeln!(out, "\n## 5. In-flight jobs\n")?;
            writeln!(out, "Jobs that run for a day at the fake (AI/ML API protocol: no estimate, no webhook, so polling alone tracks them). Expected polls: the gateway's own schedule (first poll after `poll_interval_ms`, then a quarter of the job's age within [interval/4, interval]) replayed for every job over the observation window after the last create; observed: polls the fake recorded in it.\n")?;
            writeln!(out, "| backend | jobs created/target | create rate/s | in_progress / queued at end | window s | polls/s observed | polls/s expected | observed/expected | RSS peak/end MB | CPU s/1k creates | create errors |")?;
            writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|")?;
            for row in &self.inflight {
                writeln!(
                    out,
                    "| {} | {}/{} | {:.0} | {} / {} | {:.1} | {:.0} | {:.0} | {} | {} / {} | {} | {} |",
                    row.backend,
                    row.created,
                    row.jobs,
                    row.create_rate,
                    row.in_progress,
                    row.queued,
                    row.window_s,
                    row.observed_polls as f64 / row.window_s.max(1e-9),
                    row.expected_polls as f64 / row.window_s.max(1e-9),
                    if row.expected_polls > 0 {
                        format!(
                            "{:.0}%",
                            row.observed_polls as f64 / row.expected_polls as f64 * 100.0
                        )
                    } else {
                        "-".into()
                    },
                    mb(row.usage.rss_peak_kb),
                    mb(row.usage.rss_end_kb),
                    num(per_1k(row.usage.cpu_secs, row.requests)),
                    if row.create_failures.is_empty() {
                        "0".into()
                    } else {
                        row.create_failures.clone()
                    },
                )?;
            }
        }
        let targets = self.targets();
        if !targets.is_empty() {
            writeln!(out, "\n## Targets\n")?;
            writeln!(out, "| backend | target | measured | result |")?;
            writeln!(out, "|---|---|---|---|")?;
            for t in &targets {
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    t.backend,
                    t.what,
                    t.measured,
                    verdict(t.pass)
                )?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(out, "\n## Notes\n")?;
            for note in &self.notes {
                writeln!(out, "- {note}")?;
            }
        }
        Ok(())
    }
}

pub const POST: &str = "POST /v1/videos";
pub const GET: &str = "GET /v1/videos/{id}";

fn short(request: &str) -> &'static str {
    if request == POST {
        "POST"
    } else {
        "GET"
    }
}
