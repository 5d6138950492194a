//! Child processes and what they cost: the gateway and the fake upstream run as children,
//! pinned to a core with `taskset` where possible, in their own process group (Ctrl-C reaches
//! only the harness, which then stops them in order), and with `PR_SET_PDEATHSIG` so that they
//! die with the harness even when it is killed outright. Dropping a [`Child`] stops it
//! (SIGTERM, then SIGKILL). RSS and CPU time are read from `/proc/<pid>`.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Which core runs what.
#[derive(Debug, Clone)]
pub struct Pinning {
    /// The gateway's core.
    pub gateway: Option<usize>,
    /// The core of the harness (load generator) and the fake upstream.
    pub harness: Option<usize>,
    /// How it was set up, for the report.
    pub note: String,
}

impl Pinning {
    /// Chooses the cores and pins this process (call before starting any thread: threads
    /// created later inherit the affinity).
    pub fn plan_and_pin_self() -> Pinning {
        let cpus = allowed_cpus();
        let unpinned = |note: String| Pinning {
            gateway: None,
            harness: None,
            note,
        };
        if cpus.len() < 2 {
            return unpinned(format!(
                "not pinned: only {} core(s) allowed to this process",
                cpus.len()
            ));
        }
        let taskset = Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !taskset {
            return unpinned("not pinned: taskset (util-linux) not found".into());
        }
        let (gateway, harness) = (cpus[0], cpus[1]);
        if let Err(error) = pin_self(harness) {
            return unpinned(format!("not pinned: sched_setaffinity failed: {error}"));
        }
        Pinning {
            gateway: Some(gateway),
            harness: Some(harness),
            note: format!(
                "gateway pinned to cpu {gateway}; load generator and fake upstream to cpu {harness}"
            ),
        }
    }
}

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|cpu| libc::CPU_ISSET(*cpu, &set))
            .collect()
    }
}

fn pin_self(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as above; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Environment variables the gateway reads besides its configuration file; they are removed
/// from the children's environment so that the generated file alone configures them.
fn is_gateway_env(name: &str) -> bool {
    name.starts_with("SEEDANCE_GW_") || matches!(name, "DATABASE_URL" | "REDIS_URL" | "RUST_LOG")
}

/// A running child process, stopped when dropped.
pub struct Child {
    name: String,
    inner: Option<std::process::Child>,
    pub pid: u32,
    pub log: PathBuf,
}

impl Child {
    /// Starts `program args`, on `cpu` when given, with stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        cpu: Option<usize>,
        log: &Path,
    ) -> anyhow::Result<Child> {
        let mut command = match cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg(program);
                command
            }
            None => Command::new(program),
        };
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_gateway_env) {
                command.env_remove(name);
            }
        }
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {name} ({})", program.display()))?;
        Ok(Child {
            name: name.to_string(),
            pid: child.id(),
            inner: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.inner
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. Idempotent.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.inner.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "bench: {} (pid {}) did not exit after SIGTERM; killing it",
            self.name, self.pid
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The last `lines` lines of the child's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// A process's memory and CPU time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Resident set size now, in KiB.
    pub rss_kb: u64,
    /// User plus system CPU time, in seconds.
    pub cpu_secs: f64,
    /// Context switches (voluntary and not) summed over the process's live threads.
    pub ctx_switches: u64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`; `None` once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Usage {
        rss_kb: field("VmRSS:"),
        cpu_secs: ticks as f64 / hz,
        ctx_switches: context_switches(pid),
    })
}

fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Samples a process's RSS every 100 ms and keeps the highest value since the last reset.
pub struct RssSampler {
    peak_kb: Arc<AtomicU64>,
    pid: u32,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let peak = peak_kb.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                match usage(pid) {
                    Some(u) => {
                        peak.fetch_max(u.rss_kb, Ordering::Relaxed);
                    }
                    None => return,
                }
            }
        });
        RssSampler { peak_kb, pid, task }
    }

    /// Starts a new phase: the peak becomes the current RSS.
    pub fn reset(&self) {
        let now = usage(self.pid).map_or(0, |u| u.rss_kb);
        self.peak_kb.store(now, Ordering::Relaxed);
    }

    /// The highest RSS seen since the last reset (including now), in KiB.
    pub fn peak_kb(&self) -> u64 {
        let now = usage(self.pid).map_or(0, |u| u.rss_kb);
        self.peak_kb.fetch_max(now, Ordering::Relaxed).max(now)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a process used over one phase of a scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseUsage {
    pub rss_peak_kb: u64,
    pub rss_end_kb: u64,
    pub cpu_secs: f64,
    pub ctx_switches: u64,
}

/// Measures a phase: call [`PhaseMeter::finish`] at its end.
pub struct PhaseMeter {
    pid: u32,
    start: Usage,
}

impl PhaseMeter {
    pub fn start(pid: u32, sampler: Option<&RssSampler>) -> PhaseMeter {
        if let Some(sampler) = sampler {
            sampler.reset();
        }
        PhaseMeter {
            pid,
            start: usage(pid).unwrap_or_default(),
        }
    }

    pub fn finish(&self, sampler: Option<&RssSampler>) -> PhaseUsage {
        let now = usage(self.pid).unwrap_or_default();
        PhaseUsage {
            rss_peak_kb: sampler.map_or(now.rss_kb, |s| s.peak_kb()),
            rss_end_kb: now.rss_kb,
            cpu_secs: (now.cpu_secs - self.start.cpu_secs).max(0.0),
            ctx_switches: now.ctx_switches.saturating_sub(self.start.ctx_switches),
        }
    }
}
