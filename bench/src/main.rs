//! The benchmark harness of seedance-gateway:
//!
//! ```text
//! cargo run --release -p bench -- [--quick] [--backend sqlite|postgres|both] [--scenarios 1,2,3,4,5]
//! ```
//!
//! It builds the gateway and the fake upstreams (`cargo build --release --bin seedance-gateway
//! --bin fake-upstream`), then for each backend and scenario starts the fake upstream and the
//! gateway as child processes on loopback ports (the gateway pinned to one core, this load
//! generator and the fake to the other), drives load with its own HTTP/1.1 client, and prints
//! markdown tables with every target judged PASS or FAIL. See `bench/README.md`.

mod db;
mod http;
mod load;
mod procs;
mod report;
mod scenarios;
mod stack;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, ValueEnum};

use crate::report::Report;
use crate::scenarios::{RequestScenarios, Settings};
use crate::stack::{Backend, Binaries, Env};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmark seedance-gateway against its fake upstreams"
)]
struct Args {
    /// Short runs and small batches: a smoke run of under a minute per backend.
    #[arg(long)]
    quick: bool,
    #[arg(long, value_enum, default_value_t = BackendArg::Both)]
    backend: BackendArg,
    /// Scenarios to run: 1 POST, 2 GET, 3 the same straight to the fake, 4 batch (and the
    /// 30-150 s poll schedule), 5 in-flight jobs. Comma-separated; default all.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 2, 3, 4, 5])]
    scenarios: Vec<u8>,
    /// Connections of the closed-loop runs (open-loop runs use at least 64).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Do not give the bench tenant caps (they are checked on every create; see the README).
    #[arg(long)]
    no_quotas: bool,
    /// Keep one fake upstream for all POST runs instead of a fresh one per run.
    #[arg(long)]
    reuse_fake: bool,
    /// The gateway's log filter (`log.filter`); `info` logs every request, as shipped.
    #[arg(long, default_value = "info")]
    gateway_log: String,
    /// Use target/release/seedance-gateway and target/release/fake-upstream as they are,
    /// without running cargo build first.
    #[arg(long)]
    no_build: bool,
    /// Scenario 5: how long creating in-flight jobs may take before the run moves on with
    /// what it has (default 45 s, quick 8 s). Creates slow down as the gateway polls more
    /// jobs: 240 s reached 72,000 on SQLite and 38,000 on PostgreSQL.
    #[arg(long)]
    inflight_secs: Option<u64>,
    /// Keep the temporary directory (configurations, logs, SQLite files).
    #[arg(long)]
    keep_temp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is inside the workspace")
        .to_path_buf()
}

/// Builds the gateway and the fake upstreams (a binary of their own, `fake/`) and returns
/// the binaries' paths.
fn build_binaries(root: &Path, build: bool) -> anyhow::Result<Binaries> {
    if build {
        eprintln!("bench: cargo build --release --bin seedance-gateway --bin fake-upstream");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--bin",
                "seedance-gateway",
                "--bin",
                "fake-upstream",
            ])
            .current_dir(root)
            .status()?;
        anyhow::ensure!(status.success(), "building the gateway failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binaries = Binaries {
        gateway: target.join("release").join("seedance-gateway"),
        fake: target.join("release").join("fake-upstream"),
    };
    for binary in [&binaries.gateway, &binaries.fake] {
        anyhow::ensure!(binary.exists(), "{} not found", binary.display());
    }
    Ok(binaries)
}

fn git_head(root: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn git_dirty(root: &Path) -> bool {
    Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = workspace_root();
    let binaries = match build_binaries(&root, !args.no_build) {
        Ok(binaries) => binaries,
        Err(error) => {
            eprintln!("bench: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    // Pin before the runtime starts: its threads inherit this thread's affinity.
    let pinning = procs::Pinning::plan_and_pin_self();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args, root, binaries, pinning))
}

async fn run(args: Args, root: PathBuf, binaries: Binaries, pinning: procs::Pinning) -> ExitCode {
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let machine_cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(cores);
    let dir = std::env::temp_dir().join(format!("seedance-bench-{}", std::process::id()));
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("bench: create {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    let pg_server = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let backends: Vec<Backend> = match args.backend {
        BackendArg::Sqlite => vec![Backend::Sqlite],
        BackendArg::Postgres => vec![Backend::Postgres],
        BackendArg::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    let uses_postgres = backends.contains(&Backend::Postgres);
    let mut settings = Settings::new(
        args.quick,
        args.connections,
        !args.no_quotas,
        !args.reuse_fake,
    );
    if let Some(secs) = args.inflight_secs {
        settings.inflight_create_limit = std::time::Duration::from_secs(secs);
    }
    let report = Mutex::new(Report::default());
    {
        let mut r = report.lock().expect("report");
        let dirty = if git_dirty(&root) {
            " (with uncommitted changes)"
        } else {
            ""
        };
        r.header = vec![
            format!("commit {}{dirty}", git_head(&root)),
            format!("cores: {machine_cores} on the machine ({cores} left to the harness after pinning)"),
            format!("pinning: {}", pinning.note),
            format!(
                "mode: {}; backends: {}; scenarios: {:?}",
                if args.quick { "quick" } else { "full" },
                backends.iter().map(|b| b.name()).collect::<Vec<_>>().join(", "),
                args.scenarios
            ),
            format!(
                "PostgreSQL: {} (server not pinned)",
                db::redact(&pg_server)
            ),
            format!("gateway log filter: {}; tenant caps: {}; load generator: {} closed-loop connections, 64 for open loop", args.gateway_log, if settings.quotas { "set (checked on every create)" } else { "none" }, args.connections),
            format!("temporary directory: {}", dir.display()),
        ];
    }
    let mut failed = false;
    let interrupted = {
        let work = async {
            for backend in backends {
                let mut env = Env::new(
                    binaries.clone(),
                    dir.clone(),
                    backend,
                    pg_server.clone(),
                    pinning.clone(),
                    args.gateway_log.clone(),
                );
                let outcome = run_backend(&mut env, &args, &settings, &report).await;
                if let Err(error) = env.drop_database().await {
                    eprintln!("bench: dropping the PostgreSQL database: {error:#}");
                }
                if let Err(error) = outcome {
                    failed = true;
                    eprintln!("bench: [{}] {error:#}", backend.name());
                    report.lock().expect("report").notes.push(format!(
                        "[{}] run stopped by an error: {error:#}",
                        backend.name()
                    ));
                }
            }
        };
        tokio::select! {
            () = work => false,
            _ = tokio::signal::ctrl_c() => true,
        }
    };
    // An interrupted run's children were stopped as the work was dropped; its database is
    // dropped here.
    if interrupted {
        eprintln!("bench: interrupted; cleaning up");
        if uses_postgres {
            let name = format!("bench_{}", std::process::id());
            if let Err(error) = db::pg_drop(&pg_server, &name).await {
                eprintln!("bench: dropping {name}: {error:#}");
            }
        }
    }
    let mut r = report.lock().expect("report");
    r.header.push(format!(
        "total time: {:.0} s{}",
        started.elapsed().as_secs_f64(),
        if interrupted { " (interrupted)" } else { "" }
    ));
    println!("{}", r.render());
    if !args.keep_temp && !failed && !interrupted {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("bench: logs kept in {}", dir.display());
    }
    if failed || interrupted {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_backend(
    env: &mut Env,
    args: &Args,
    settings: &Settings,
    report: &Mutex<Report>,
) -> anyhow::Result<()> {
    let has = |n: u8| args.scenarios.contains(&n);
    let name = env.backend.name();
    let which = RequestScenarios {
        post: has(1) || (has(3) && !has(2)),
        get: has(2) || (has(3) && !has(1)),
        direct: has(3),
    };
    let mut timings = Vec::new();
    let step = |label: &'static str| {
        eprintln!("bench: [{name}] {label}");
        (label, Instant::now())
    };
    if which.post || which.get {
        let (label, t) = step("scenarios 1-3: requests");
        scenarios::requests(env, settings, which, report).await?;
        timings.push(format!("{label} {:.0} s", t.elapsed().as_secs_f64()));
    }
    if has(4) {
        let (label, t) = step("scenario 4: batch");
        scenarios::batch(env, settings, report).await?;
        timings.push(format!("{label} {:.0} s", t.elapsed().as_secs_f64()));
        let (label, t) = step("scenario 4b: poll schedule of 30-150 s jobs");
        scenarios::schedule(env, settings, report).await?;
        timings.push(format!("{label} {:.0} s", t.elapsed().as_secs_f64()));
    }
    if has(5) {
        let (label, t) = step("scenario 5: in-flight jobs");
        scenarios::inflight(env, settings, report).await?;
        timings.push(format!("{label} {:.0} s", t.elapsed().as_secs_f64()));
    }
    report
        .lock()
        .expect("report")
        .header
        .push(format!("{name} timings: {}", timings.join(", ")));
    Ok(())
}
