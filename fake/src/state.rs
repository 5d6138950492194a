//! What the fake knows: every job it made (and its phase, from the time it has run), the
//! calls it received, the faults queued for the next calls, and the settings tests and the
//! `/_fake/settings` control change. One mutex over all of it: the fake is not the system
//! under test.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::faults::Fault;

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

pub(crate) struct Inner {
    pub(crate) jobs: HashMap<String, FakeJob>,
    pub(crate) faults: HashMap<(String, String), VecDeque<Fault>>,
    pub(crate) calls: Vec<Call>,
    pub(crate) job_duration: Duration,
    pub(crate) failing: HashMap<String, u32>,
    pub(crate) next_id: u64,
    pub(crate) estimate_secs: Option<u64>,
    /// Job durations for single providers, over `job_duration`.
    pub(crate) durations: HashMap<String, Duration>,
    /// The most jobs seen running at once, per provider.
    pub(crate) max_running: HashMap<String, usize>,
    /// Per provider, the jobs still running by when they end, so a start counts the running
    /// jobs without scanning every job the fake has seen.
    running: HashMap<&'static str, Running>,
    /// Per provider, the job each idempotency key made.
    pub(crate) idempotency: HashMap<(String, String), String>,
    /// The content type output files are served with (`video/mp4` unless set).
    pub(crate) output_content_type: Option<String>,
    /// Providers (by prefix) whose webhooks are never delivered, as when a provider fails to
    /// call back.
    pub(crate) lost_webhooks: HashSet<String>,
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
    /// An empty fake serving at `origin` (`http://host:port`, for output URLs).
    pub(crate) fn new(origin: String) -> anyhow::Result<FakeState> {
        Ok(FakeState {
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
            origin,
            webhooks: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            started: Instant::now(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
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
    pub(crate) fn due_webhooks(&self) -> Vec<FakeJob> {
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
