//! The job worker: claims due jobs with a lease, submits queued ones upstream, polls running
//! ones, and settles finished ones — capture or void in the same transaction as the final
//! state. A replica that dies loses only its leases, which expire and are claimed again, so
//! every job reaches a final state and is charged at most once.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::domain::billing::{ledger, pricing};
use crate::domain::video::{JobError, PollCause, Video, VideoStatus};
use crate::providers::{Provider, ProviderError, ReportedCost, SubmitRequest, UpstreamStatus};
use crate::storage::{attempts::Attempt, leases::Due};
use crate::storage::{now_ms, Db};

/// How often the worker looks for jobs past their hold timeout.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Fails jobs that have run longer than `workers.hold_timeout_secs`, voiding their holds in
/// the same transaction, and asks their upstreams to cancel.
async fn expire_overdue(state: &AppState) -> anyhow::Result<()> {
    let cutoff = now_ms() - (state.config.workers.hold_timeout_secs * 1000) as i64;
    for job in state.db.overdue_jobs(cutoff, 100).await? {
        let error = JobError {
            code: "timeout".into(),
            message: "the job did not finish in time; its credits were released".into(),
        };
        let mut tx = state.db.begin().await?;
        let ended = Db::mark_ended(
            &mut tx,
            &job.id,
            VideoStatus::Failed,
            Some(&error),
            None,
            None,
        )
        .await?;
        let voided = ended && ledger::void(&mut tx, &job.id).await?;
        if ended {
            crate::domain::webhooks::enqueue(&mut tx, &job.id, VideoStatus::Failed).await?;
        }
        tx.commit().await?;
        if !ended {
            continue;
        }
        crate::domain::videos::after_terminal(state, &job, VideoStatus::Failed, 0, voided);
        tracing::warn!(video = %job.id, "job timed out; hold voided");
        cancel_upstream(state, &job);
    }
    Ok(())
}

/// Asks a job's provider, in the background, to stop the upstream job of a job that ended
/// here (canceled, timed out), and records the call among the job's attempts. The job stays
/// ended whatever the upstream answers.
pub fn cancel_upstream(state: &AppState, job: &Video) {
    let (Some(provider), Some(upstream_id)) = (
        job.provider
            .as_deref()
            .and_then(|p| state.providers.get(p))
            .cloned(),
        job.upstream_id.clone(),
    ) else {
        return;
    };
    let db = state.db.clone();
    let video = job.id.clone();
    crate::workers::spawn_detached("upstream-cancel", async move {
        let started = now_ms();
        let outcome = provider.cancel(&upstream_id).await;
        let (result, error) = match &outcome {
            Ok(crate::providers::CancelOutcome::Canceled) => ("accepted", None),
            Ok(crate::providers::CancelOutcome::Unsupported) => ("unsupported", None),
            Err(error) => {
                tracing::warn!(%error, provider = provider.name(), video = %video, "upstream cancel failed; the job stays ended here");
                ("failed", Some(error.to_string()))
            }
        };
        let attempt = Attempt {
            video: &video,
            provider: provider.name(),
            operation: "cancel",
            started_at: started,
            duration_ms: now_ms() - started,
        };
        if let Err(error) = db.record_attempt(&attempt, result, error.as_deref()).await {
            tracing::debug!(%error, "recording an upstream cancel failed");
        }
    });
}

/// The attempt outcome of a submit the provider could not serve (see [`submit`]).
pub const UNSUPPORTED_OUTCOME: &str = "unsupported";

/// The attempt outcome of a submit whose answer was lost (see [`submit`]).
pub const UNKNOWN_OUTCOME: &str = "unknown";

/// Transient upstream failures tolerated before a job is failed.
const MAX_ATTEMPTS: i64 = 8;

pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = &state.config.workers;
    let slots = Arc::new(Semaphore::new(workers.concurrency));
    let tick = Duration::from_millis(workers.tick_ms.max(10));
    let lease_ms = (workers.lease_secs * 1000) as i64;
    let mut last_sweep = std::time::Instant::now() - SWEEP_EVERY;
    while !shutdown.is_cancelled() {
        let available = slots.available_permits().min(workers.batch_size as usize) as i64;
        let claimed = if available > 0 {
            let now = now_ms();
            match state
                .db
                .claim_due_jobs(&state.instance_id, now, now + lease_ms, available)
                .await
            {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::warn!(%error, "claiming due jobs failed; retrying");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let full_batch = claimed.len() as i64 == available && available > 0;
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = std::time::Instant::now();
            if let Err(error) = expire_overdue(&state).await {
                tracing::warn!(error = ?error, "expiring overdue jobs failed; retrying later");
            }
        }
        let claimed = hand_out_slots(&state, claimed).await;
        for job in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let id = job.id.clone();
                if let Err(error) = advance(&state, job).await {
                    tracing::warn!(video = %id, error = ?error, "advancing job failed; it will be retried after its lease");
                }
                drop(permit);
            });
        }
        if full_batch || available == 0 {
            // More jobs are likely due: claim again as soon as half the step permits are free,
            // rather than a tick later (a tick per batch would cap the worker at
            // `concurrency` steps per tick, however quick the steps).
            let half = (workers.concurrency as u32).div_ceil(2);
            tokio::select! {
                _ = slots.acquire_many(half) => {}
                () = shutdown.cancelled() => {}
            }
        } else {
            tokio::select! {
                () = state.wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
    // Let in-flight job steps finish so their results are recorded rather than re-done.
    let all = workers.concurrency as u32;
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
    Ok(())
}

/// Submits a just-created job from the request that created it, so that the client learns at
/// once when the upstream refuses it. The job was stored leased to this replica (holding its
/// provider's slot where the provider has a limit), so no worker can take it meanwhile.
/// Returns the job as it stands afterwards; a transient failure leaves it queued for the
/// worker.
pub async fn dispatch_now(state: &AppState, job: Video) -> anyhow::Result<Option<Video>> {
    let id = job.id.clone();
    match advance(state, job).await? {
        Some(submitted) => Ok(Some(submitted)),
        None => Ok(state.db.get_video_any(&id).await?),
    }
}

/// Takes a leased job one step further. Returns the job as stored when the step was an
/// accepted submit (the common case of a create), so the caller need not read it back.
async fn advance(state: &AppState, job: Video) -> anyhow::Result<Option<Video>> {
    let owner = state.instance_id.as_ref();
    let Some(provider) = job
        .provider
        .as_deref()
        .and_then(|p| state.providers.get(p))
        .cloned()
    else {
        let error = JobError {
            code: "upstream_unavailable".into(),
            message: "the provider of this job is no longer configured".into(),
        };
        end(state, &job, owner, VideoStatus::Failed, error).await?;
        return Ok(None);
    };
    match (job.status, job.upstream_id.as_deref()) {
        (VideoStatus::Queued, _) | (VideoStatus::InProgress, None) => {
            return submit(state, job, provider).await;
        }
        (VideoStatus::InProgress, Some(upstream_id)) => {
            let cause = job.poll_cause;
            let started = now_ms();
            state
                .metrics
                .job_request(provider.name(), cause.request_label());
            let polled = record_health(state, provider.name(), provider.poll(upstream_id).await);
            let after_poll = |at: i64, cause: PollCause, progress: Option<i64>| Due {
                at,
                cause,
                progress,
                count_attempt: false,
                requests: 1,
                step_started: Some(started),
                min_interval_ms: provider.min_poll_interval().as_millis() as i64,
            };
            match polled {
                Ok(UpstreamStatus::Queued) => {
                    let (at, cause) = next_poll(state, provider.as_ref(), &job);
                    state
                        .db
                        .reschedule(&job.id, owner, after_poll(at, cause, None))
                        .await?;
                }
                Ok(UpstreamStatus::Running { progress }) => {
                    let (at, cause) = next_poll(state, provider.as_ref(), &job);
                    let progress = progress.map(|p| p.clamp(0, 99));
                    state
                        .db
                        .reschedule(&job.id, owner, after_poll(at, cause, progress))
                        .await?;
                }
                Ok(UpstreamStatus::Completed {
                    video_url,
                    seconds,
                    cost,
                }) => {
                    complete(state, &job, owner, &video_url, seconds, cost.as_ref()).await?;
                }
                Ok(UpstreamStatus::Failed { code, message }) => {
                    if !resubmit(state, &job, &code, &message).await? {
                        end(
                            state,
                            &job,
                            owner,
                            VideoStatus::Failed,
                            JobError { code, message },
                        )
                        .await?;
                    }
                }
                Ok(UpstreamStatus::Canceled) => {
                    let error = JobError {
                        code: "upstream_canceled".into(),
                        message: "the upstream canceled this job".into(),
                    };
                    end(state, &job, owner, VideoStatus::Failed, error).await?;
                }
                Err(ProviderError::Transient {
                    message,
                    retry_after,
                }) => {
                    retry_later(state, &job, owner, &message, retry_after, 1).await?;
                }
                Err(other) => {
                    retry_later(state, &job, owner, &other.to_string(), None, 1).await?;
                }
            }
        }
        (status, _) => {
            tracing::debug!(video = %job.id, status = status.as_str(), "claimed a job that is no longer running");
        }
    }
    Ok(None)
}

/// Submits a job to its provider. A failure that another provider might not have — the
/// provider is misconfigured or out of credit (401/403/402), rate limiting, failing or
/// unreachable — moves the job to the next candidate of its routing decision, as long as
/// candidates remain and the request allowed fallback; an upstream 400 does not (the request
/// itself is at fault). Every attempt is recorded for the operator. The hold is the job's,
/// whatever provider takes it, so the tenant is charged once, at most the reserved price.
async fn submit(
    state: &AppState,
    mut job: Video,
    mut provider: Arc<dyn Provider>,
) -> anyhow::Result<Option<Video>> {
    let owner = state.instance_id.as_ref();
    let public = state
        .config
        .server
        .public_base_url
        .as_deref()
        .map(|b| b.trim_end_matches('/'));
    // Submits sent in this step, counted toward the job's upstream requests.
    let mut submits = 0;
    loop {
        if !take_slot(state, &mut job, &mut provider).await?
            || !within_rate(state, &mut job, provider.as_ref()).await?
        {
            // Every candidate is full: wait in the queue for a slot.
            let due = Due::at(next_queue_turn(now_ms()), PollCause::Scheduled);
            state.db.reschedule(&job.id, owner, due).await?;
            return Ok(None);
        }
        let first_frame_url = match (
            &job.request.inputs.first_frame_url,
            &job.request.inputs.first_frame_upload,
            public,
        ) {
            (Some(url), _, _) => Some(url.as_str().to_string()),
            (None, Some(name), Some(base)) => Some(format!("{base}/files/{name}")),
            _ => None,
        };
        let callback_url = match (public, &job.callback_token) {
            (Some(base), Some(token)) => Some(format!(
                "{base}/webhooks/providers/{}/{token}",
                provider.name()
            )),
            _ => None,
        };
        let calls_back = callback_url.is_some() && provider.sends_webhooks();
        let request = SubmitRequest {
            video_id: &job.id,
            video: &job.request,
            first_frame_url,
            callback_url,
        };
        let started = now_ms();
        state.metrics.job_request(provider.name(), "submit");
        submits += 1;
        let outcome = provider.submit(request).await;
        let attempt = Attempt {
            video: &job.id,
            provider: provider.name(),
            operation: "submit",
            started_at: started,
            duration_ms: now_ms() - started,
        };
        let error = match outcome {
            Ok(submission) => {
                state.providers.circuits.record_success(provider.name());
                state.db.record_attempt(&attempt, "accepted", None).await?;
                let next = if calls_back {
                    let expected = match submission.estimated {
                        Some(estimate) => Some(estimate),
                        None => observed_duration(state, provider.name(), &job).await,
                    };
                    let wait =
                        first_safety_poll(provider.as_ref(), expected, safety_interval(state));
                    (now_ms() + wait.as_millis() as i64, PollCause::Safety)
                } else {
                    let wait = first_poll_delay(provider.as_ref(), submission.estimated);
                    (now_ms() + wait.as_millis() as i64, PollCause::Scheduled)
                };
                let submitted = state
                    .db
                    .mark_submitted(
                        &job.id,
                        owner,
                        provider.name(),
                        &submission.upstream_id,
                        Due {
                            requests: submits,
                            ..Due::at(next.0, next.1)
                        },
                        submission.cost.as_ref(),
                    )
                    .await?;
                return Ok(submitted);
            }
            Err(error) => error,
        };
        // A submit whose answer was lost may have made a job upstream. Sent again as it is
        // only where the provider de-duplicates it; elsewhere it is sent once more at most.
        let error = match error {
            ProviderError::OutcomeUnknown(message) if provider.idempotent_submits() => {
                ProviderError::Transient {
                    message,
                    retry_after: None,
                }
            }
            other => other,
        };
        let outcome = match &error {
            ProviderError::Rejected(_) => "rejected",
            ProviderError::Unsupported(_) => UNSUPPORTED_OUTCOME,
            ProviderError::Unavailable(_) => "unavailable",
            ProviderError::Transient { .. } => "transient",
            ProviderError::OutcomeUnknown(_) => UNKNOWN_OUTCOME,
        };
        state
            .db
            .record_attempt(&attempt, outcome, Some(&error.to_string()))
            .await?;
        if !matches!(
            error,
            ProviderError::Rejected(_) | ProviderError::Unsupported(_)
        ) {
            state.providers.circuits.record_failure(provider.name());
        }
        if let ProviderError::Unsupported(reason) = &error {
            // The declared capabilities were wrong for this shape: say so, and keep the
            // provider out of it for a while.
            tracing::warn!(
                video = %job.id,
                provider = provider.name(),
                model = job.request.model.id(),
                %reason,
                "the provider refused a request its capabilities admit; trying the next candidate"
            );
            state
                .providers
                .refusals
                .learn(provider.name(), &job.request, reason);
        }
        if let ProviderError::Unavailable(message) = &error {
            tracing::error!(provider = provider.name(), %message, "provider is misconfigured or out of credit");
        }
        let mut lost_answers = 0;
        if let ProviderError::OutcomeUnknown(message) = &error {
            lost_answers = state
                .db
                .attempts_for_video(&job.id)
                .await?
                .iter()
                .filter(|a| a.operation == "submit" && a.outcome == UNKNOWN_OUTCOME)
                .count();
            tracing::warn!(
                video = %job.id,
                provider = provider.name(),
                %message,
                "a submit's answer was lost: the job may exist upstream unseen (listed in the cost-mismatch report)"
            );
        }
        let next = match &error {
            ProviderError::Rejected(_) => None,
            // One more submit at most after a lost answer, elsewhere when possible.
            ProviderError::OutcomeUnknown(_) if lost_answers > 1 => None,
            _ if !job.request.routing.fallback => None,
            _ => next_candidate(state, &mut job),
        };
        if job.slot_provider.take().is_some() {
            state.db.release_slot_now(&job.id).await?;
            state.wake_workers();
        }
        if let Some(next) = next {
            tracing::info!(video = %job.id, from = provider.name(), to = next.name(), %error, "failing over to the next provider");
            if !state
                .db
                .switch_provider(&job.id, owner, next.name(), &job.fallbacks)
                .await?
            {
                return Ok(None); // No longer ours (canceled, or the lease was lost).
            }
            provider = next;
            continue;
        }
        let ended = match error {
            ProviderError::Unsupported(_) => {
                // Every candidate tried refused: one error with each provider's reason.
                let reasons: Vec<String> = state
                    .db
                    .attempts_for_video(&job.id)
                    .await?
                    .into_iter()
                    .filter(|a| a.operation == "submit" && a.outcome == UNSUPPORTED_OUTCOME)
                    .filter_map(|a| a.error)
                    .collect();
                let error = JobError {
                    code: "upstream_unsupported".into(),
                    message: format!(
                        "no provider would take this request: {}",
                        reasons.join("; ")
                    ),
                };
                end(state, &job, owner, VideoStatus::Failed, error).await
            }
            ProviderError::Rejected(message) => {
                let error = JobError {
                    code: "upstream_rejected".into(),
                    message,
                };
                end(state, &job, owner, VideoStatus::Failed, error).await
            }
            ProviderError::Unavailable(_) => {
                let error = JobError {
                    code: "upstream_unavailable".into(),
                    message: "no upstream could take this job".into(),
                };
                end(state, &job, owner, VideoStatus::Failed, error).await
            }
            ProviderError::Transient {
                message,
                retry_after,
            } => retry_later(state, &job, owner, &message, retry_after, submits).await,
            // No other candidate: the one more submit goes to the same provider, later.
            ProviderError::OutcomeUnknown(message) if lost_answers <= 1 => {
                retry_later(state, &job, owner, &message, None, submits).await
            }
            ProviderError::OutcomeUnknown(message) => {
                let error = JobError {
                    code: "upstream_outcome_unknown".into(),
                    message: format!(
                        "the upstream's answers to this job's submits were lost ({message}); \
                         it was not sent again, and its credits were released"
                    ),
                };
                end(state, &job, owner, VideoStatus::Failed, error).await
            }
        };
        return ended.map(|()| None);
    }
}

/// Feeds a poll's outcome to the provider's circuit: answers count as health, failures that
/// are the provider's (not a refused request) count against it.
fn record_health<T>(
    state: &AppState,
    provider: &str,
    outcome: Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    match &outcome {
        Ok(_) => state.providers.circuits.record_success(provider),
        Err(ProviderError::Rejected(_) | ProviderError::Unsupported(_)) => {}
        Err(_) => state.providers.circuits.record_failure(provider),
    }
    outcome
}

/// Gives free slots to claimed queued jobs in the claim's fair order, before their submits run
/// concurrently: otherwise the jobs of a batch would race for a freed slot and the order would
/// mean nothing. Once a provider has no room, later jobs for it get none in this round.
async fn hand_out_slots(state: &AppState, mut claimed: Vec<Video>) -> Vec<Video> {
    let mut full: Vec<String> = Vec::new();
    for job in claimed
        .iter_mut()
        .filter(|j| j.status == VideoStatus::Queued)
    {
        let Some(provider) = job.provider.clone() else {
            continue;
        };
        let Some(limit) = state.providers.limit(&provider) else {
            continue;
        };
        if job.slot_provider.as_deref() == Some(provider.as_str()) || full.contains(&provider) {
            continue;
        }
        if job.slot_provider.is_some() {
            continue; // Holds a slot elsewhere; the submit step sorts it out.
        }
        match state
            .db
            .acquire_slot(&job.id, &state.instance_id, &provider, limit)
            .await
        {
            Ok(true) => job.slot_provider = Some(provider),
            Ok(false) => full.push(provider),
            Err(error) => tracing::warn!(video = %job.id, %error, "taking a slot failed"),
        }
    }
    claimed
}

/// How often jobs waiting for a slot look for one.
const QUEUE_WAIT_MS: i64 = 500;

/// The next instant on a shared grid at which waiting jobs look for slots again. All jobs that
/// wait become due at the same instant and are claimed together, so the claim's fair order —
/// not the moment each one happened to start waiting — decides who gets a freed slot.
fn next_queue_turn(now: i64) -> i64 {
    (now / QUEUE_WAIT_MS + 1) * QUEUE_WAIT_MS
}

/// Makes sure the job holds a slot at its provider (when the provider is limited). When the
/// provider is full and the request allows fallback, the job moves to the next candidate that
/// has room (the full one goes to the front of its fallbacks). False: every candidate is full.
async fn take_slot(
    state: &AppState,
    job: &mut Video,
    provider: &mut Arc<dyn Provider>,
) -> anyhow::Result<bool> {
    let owner = state.instance_id.as_ref();
    if job.slot_provider.as_deref() == Some(provider.name()) {
        return Ok(true);
    }
    if job.slot_provider.take().is_some() {
        state.db.release_slot_now(&job.id).await?;
    }
    let Some(limit) = state.providers.limit(provider.name()) else {
        return Ok(true);
    };
    if state
        .db
        .acquire_slot(&job.id, owner, provider.name(), limit)
        .await?
    {
        job.slot_provider = Some(provider.name().to_string());
        return Ok(true);
    }
    if !job.request.routing.fallback {
        return Ok(false);
    }
    for (index, name) in job.fallbacks.clone().iter().enumerate() {
        let Some(candidate) = state.providers.get(name).cloned() else {
            continue;
        };
        if state.providers.circuits.check(name).is_err() {
            continue;
        }
        let room = match state.providers.limit(name) {
            None => true,
            Some(limit) => state.db.acquire_slot(&job.id, owner, name, limit).await?,
        };
        if room {
            job.fallbacks.remove(index);
            job.fallbacks.insert(0, provider.name().to_string());
            if state.providers.limit(name).is_some() {
                job.slot_provider = Some(name.clone());
            }
            if !state
                .db
                .switch_provider(&job.id, owner, name, &job.fallbacks)
                .await?
            {
                return Ok(false);
            }
            *provider = candidate;
            return Ok(true);
        }
    }
    Ok(false)
}

/// When the job's policy asks for it and a candidate remains, sends a job that failed
/// upstream to the next candidate: it is queued again there, with the same hold, so it is
/// still charged once, at most the reserved price. False when it was not resubmitted.
async fn resubmit(
    state: &AppState,
    job: &Video,
    code: &str,
    message: &str,
) -> anyhow::Result<bool> {
    if !job.request.routing.resubmit {
        return Ok(false);
    }
    let mut job = job.clone();
    let Some(next) = next_candidate(state, &mut job) else {
        return Ok(false);
    };
    let started = now_ms();
    let from = job.provider.clone().unwrap_or_default();
    let attempt = Attempt {
        video: &job.id,
        provider: &from,
        operation: "generate",
        started_at: started,
        duration_ms: 0,
    };
    state
        .db
        .record_attempt(&attempt, "failed", Some(&format!("{code}: {message}")))
        .await?;
    tracing::info!(video = %job.id, from = %from, to = next.name(), %code, "resubmitting a job that failed upstream");
    let moved = state
        .db
        .requeue_elsewhere(&job.id, &state.instance_id, next.name(), &job.fallbacks)
        .await?;
    if moved {
        state.wake_workers();
    }
    Ok(moved)
}

/// Takes a submit from the provider's rate, if it has one. When the rate is spent the job gives
/// its slot back and waits in the queue like a job whose provider is full.
async fn within_rate(
    state: &AppState,
    job: &mut Video,
    provider: &dyn Provider,
) -> anyhow::Result<bool> {
    let Some((interval_ms, burst)) = state.providers.rate(provider.name()) else {
        return Ok(true);
    };
    if state
        .db
        .take_submit_token(provider.name(), interval_ms, burst, now_ms())
        .await?
    {
        return Ok(true);
    }
    if job.slot_provider.take().is_some() {
        state.db.release_slot_now(&job.id).await?;
    }
    Ok(false)
}

/// Takes the next configured candidate off the job's fallback list.
fn next_candidate(state: &AppState, job: &mut Video) -> Option<Arc<dyn Provider>> {
    while !job.fallbacks.is_empty() {
        let name = job.fallbacks.remove(0);
        if let Some(provider) = state.providers.get(&name) {
            return Some(provider.clone());
        }
    }
    None
}

/// Completes a job and captures its charge in one transaction: the price of what was actually
/// generated, never more than the hold.
async fn complete(
    state: &AppState,
    job: &Video,
    owner: &str,
    video_url: &str,
    seconds: Option<i64>,
    cost: Option<&ReportedCost>,
) -> anyhow::Result<()> {
    let charge = match seconds {
        Some(generated) => {
            pricing::pro_rata(job.cost_reserved, generated, job.request.seconds.get())
        }
        None => job.cost_reserved,
    };
    let expires_at = now_ms() + state.config.videos.retention_secs * 1000;
    let mut tx = state.db.begin().await?;
    let requests =
        Db::mark_completed(&mut tx, &job.id, owner, video_url, charge, expires_at, cost).await?;
    let completed = requests.is_some();
    let mut charged = 0;
    if completed {
        let captured = ledger::capture(&mut tx, &job.id, charge).await?;
        charged = captured.map_or(0, |c| c.get());
        crate::domain::webhooks::enqueue(&mut tx, &job.id, VideoStatus::Completed).await?;
        if state.config.storage.archive {
            Db::queue_archive(&mut tx, &job.id).await?;
        }
        if let Some(provider) = job.provider.as_deref() {
            let elapsed = now_ms() - job.submitted_at_ms.unwrap_or(job.created_at_ms);
            let model = job.request.model.id();
            Db::record_speed(&mut tx, provider, model, elapsed).await?;
            Db::record_duration(&mut tx, provider, model, job.request.seconds.get(), elapsed)
                .await?;
            if let Ok(estimate) = crate::domain::routing::catalog::upstream_cost(
                provider,
                &job.request,
                &state.config.pricing,
            ) {
                Db::record_estimate(&mut tx, &job.id, estimate).await?;
            }
        }
        if captured.is_none() {
            tracing::warn!(video = %job.id, "completed a job whose hold was already settled");
        }
    }
    tx.commit().await?;
    if let (Some(requests), Some(provider)) = (requests, job.provider.as_deref()) {
        state.metrics.job_completed_after(provider, requests);
    }
    if completed {
        crate::domain::videos::after_terminal(state, job, VideoStatus::Completed, charged, false);
    }
    Ok(())
}

/// Ends a job without output and voids its hold, in one transaction.
async fn end(
    state: &AppState,
    job: &Video,
    owner: &str,
    status: VideoStatus,
    error: JobError,
) -> anyhow::Result<()> {
    let mut tx = state.db.begin().await?;
    let ended = Db::mark_ended(&mut tx, &job.id, status, Some(&error), Some(owner), None).await?;
    let voided = ended && ledger::void(&mut tx, &job.id).await?;
    if ended {
        crate::domain::webhooks::enqueue(&mut tx, &job.id, status).await?;
    }
    tx.commit().await?;
    if ended {
        crate::domain::videos::after_terminal(state, job, status, 0, voided);
    }
    Ok(())
}

async fn retry_later(
    state: &AppState,
    job: &Video,
    owner: &str,
    message: &str,
    retry_after: Option<Duration>,
    requests: i64,
) -> anyhow::Result<()> {
    let attempts = job.attempts;
    if attempts + 1 >= MAX_ATTEMPTS {
        let error = JobError {
            code: "upstream_unavailable".into(),
            message: "the upstream kept failing; the job was given up".into(),
        };
        tracing::warn!(video = %job.id, %message, "giving up after repeated upstream failures");
        return end(state, job, owner, VideoStatus::Failed, error).await;
    }
    let delay = retry_after.unwrap_or_else(|| backoff(attempts));
    tracing::info!(video = %job.id, %message, delay_ms = delay.as_millis() as u64, "upstream call failed; retrying later");
    // The failed call was a request upstream; the retry keeps the cause it was due for.
    let due = Due {
        count_attempt: true,
        requests,
        ..Due::at(now_ms() + delay.as_millis() as i64, job.poll_cause)
    };
    state.db.reschedule(&job.id, owner, due).await?;
    Ok(())
}

/// The wait before the next poll of a running job. It backs off as the job ages — a quarter
/// of the job's age so far — between a floor (a quarter of the provider's poll interval, and
/// never under its minimum) and the configured poll interval. A young job is seen finishing
/// quickly; an old one costs few upstream calls.
pub fn poll_delay(provider: &dyn Provider, age: Duration) -> Duration {
    let ceiling = provider.poll_interval().max(provider.min_poll_interval());
    let floor = (provider.poll_interval() / 4)
        .max(provider.min_poll_interval())
        .min(ceiling);
    (age / 4).clamp(floor, ceiling)
}

/// When and why a running job is polled next, after a poll that found it still running.
///
/// A job whose provider calls back is not polled on the regular schedule: it waits for the
/// webhook, polled only as a safety net every `workers.safety_poll_secs`. The one exception is
/// a webhook's confirmation that found the job still running (the provider's status lagging
/// its webhook): one regular poll follows, then the safety schedule resumes.
fn next_poll(state: &AppState, provider: &dyn Provider, job: &Video) -> (i64, PollCause) {
    let now = now_ms();
    if !calls_back(state, provider, job) || job.poll_cause == PollCause::Webhook {
        let wait = poll_delay(provider, job_age(job));
        return (now + wait.as_millis() as i64, PollCause::Scheduled);
    }
    let wait = safety_interval(state).max(provider.min_poll_interval());
    // The last safety poll comes just before the hold timeout, not after it.
    let deadline = job.created_at_ms + (state.config.workers.hold_timeout_secs * 1000) as i64;
    let at = (now + wait.as_millis() as i64)
        .min(deadline - 1000)
        .max(now + 1000);
    (at, PollCause::Safety)
}

/// Whether the job's provider was handed a callback URL and will call it.
fn calls_back(state: &AppState, provider: &dyn Provider, job: &Video) -> bool {
    state.config.server.public_base_url.is_some()
        && job.callback_token.is_some()
        && provider.sends_webhooks()
}

fn safety_interval(state: &AppState) -> Duration {
    Duration::from_secs(state.config.workers.safety_poll_secs.max(1))
}

/// How long jobs of this provider, model and length have taken, where the gateway has seen one.
async fn observed_duration(state: &AppState, provider: &str, job: &Video) -> Option<Duration> {
    let seconds = job.request.seconds.get();
    match state
        .db
        .expected_duration(provider, job.request.model.id(), seconds)
        .await
    {
        Ok(ms) => ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        Err(error) => {
            tracing::debug!(%error, "reading observed job durations failed");
            None
        }
    }
}

/// The first safety poll of a job whose provider calls back: past its expected end by a
/// quarter of the expectation, and at least 10 s, so that a webhook that comes on time (or a
/// little late) arrives first and the job costs its submit and one confirming poll. Without an
/// expectation, after one safety interval.
fn first_safety_poll(
    provider: &dyn Provider,
    expected: Option<Duration>,
    interval: Duration,
) -> Duration {
    let wait = match expected {
        Some(expected) => expected + (expected / 4).max(Duration::from_secs(10)),
        None => interval,
    };
    wait.max(provider.min_poll_interval())
}

fn job_age(job: &Video) -> Duration {
    Duration::from_millis((now_ms() - job.created_at_ms).max(0) as u64)
}

/// The first poll comes just after the provider's own estimate (never before its minimum
/// interval); without an estimate, after one regular poll interval.
///
/// Polling just after the estimate, rather than before it, is what keeps upstream calls per
/// job low: a job that finishes on time costs its submit and one poll (or, where the provider
/// sends webhooks, the webhook's confirming poll), and one that runs late falls back to the
/// regular schedule. The margin — 2% of the estimate, between 0.5 s and 2 s — absorbs the
/// provider's rounding without delaying the result noticeably.
fn first_poll_delay(provider: &dyn Provider, estimated: Option<Duration>) -> Duration {
    let wait = match estimated {
        // Polls that cost nothing may come early, so progress shows.
        Some(estimate) if provider.free_polls() => {
            estimate.mul_f32(0.8).min(provider.poll_interval())
        }
        Some(estimate) => just_after(estimate),
        None => provider.poll_interval(),
    };
    wait.max(provider.min_poll_interval())
}

/// The estimate plus a margin of 2%, between 0.5 s and 2 s.
fn just_after(estimate: Duration) -> Duration {
    estimate + (estimate / 50).clamp(Duration::from_millis(500), Duration::from_secs(2))
}

/// Exponential backoff with full jitter: up to 0.5 s × 2^attempt, capped at 60 s.
pub fn backoff(attempt: i64) -> Duration {
    let ceiling = 500u64
        .saturating_mul(1u64 << attempt.clamp(0, 7))
        .min(60_000);
    let ms = rand::thread_rng().gen_range(ceiling / 2..=ceiling);
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SandboxConfig;
    use crate::providers::sandbox::Sandbox;

    #[test]
    fn polls_back_off_with_age_within_their_bounds() {
        let provider = Sandbox::new(&SandboxConfig {
            enabled: true,
            delay_ms: 40_000,
            fail_all: false,
        });
        assert_eq!(provider.poll_interval(), Duration::from_secs(2));
        assert_eq!(
            poll_delay(&provider, Duration::ZERO),
            Duration::from_millis(500)
        );
        assert_eq!(
            poll_delay(&provider, Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(
            poll_delay(&provider, Duration::from_secs(600)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_first_poll_comes_just_after_the_estimate() {
        assert_eq!(
            just_after(Duration::from_secs(60)),
            Duration::from_millis(61_200)
        );
        assert_eq!(
            just_after(Duration::from_secs(5)),
            Duration::from_millis(5_500)
        );
        assert_eq!(
            just_after(Duration::from_secs(300)),
            Duration::from_secs(302)
        );
        // The sandbox's polls are free: it is polled early, so progress shows.
        let provider = Sandbox::new(&SandboxConfig {
            enabled: true,
            delay_ms: 40_000,
            fail_all: false,
        });
        assert_eq!(
            first_poll_delay(&provider, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
        assert_eq!(first_poll_delay(&provider, None), Duration::from_secs(2));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            assert!(backoff(0) <= Duration::from_millis(500));
            assert!(backoff(0) >= Duration::from_millis(250));
            assert!(backoff(20) <= Duration::from_secs(60));
        }
    }
}
