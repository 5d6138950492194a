//! The ends of a job, each settling its hold exactly once in the transaction that records
//! the end: completed (capture the price of what was generated, never more than the hold),
//! failed or canceled (void). After the commit, the end is counted, the webhook sender and
//! the archiver are woken, and an upstream job that may still run is asked to cancel.

use std::time::Duration;

use super::schedule::{backoff, MAX_ATTEMPTS};
use super::transitions::{Transition, IN_FLIGHT};
use crate::domain::billing::{ledger, pricing};
use crate::domain::end_users::usage_after_end;
use crate::domain::services::Services;
use crate::providers::ReportedCost;
use crate::storage::{attempts::Attempt, leases::Due};
use crate::storage::{now_ms, retry_conflicts, Db};
use crate::types::ids::TenantId;
use crate::types::video::{JobError, Video, VideoStatus};

/// Who ends a job, which decides the update's guard and what follows it.
pub enum EndedBy<'a> {
    /// The worker holding the job's lease, after the upstream's answer: the upstream job is
    /// over, nothing to cancel there.
    Worker(&'a str),
    /// The tenant that owns the job: the upstream is asked to cancel.
    Tenant(&'a TenantId),
    /// The hold timeout: the upstream is asked to cancel.
    Timeout,
}

/// Ends a running job without output: records the end (`failed` or `canceled`), voids its
/// hold and queues the tenant's webhook in one transaction; then counts it, wakes the webhook
/// sender and, for a cancel or a timeout, asks the upstream to stop. False when the job was no
/// longer running (or no longer this worker's, or not this tenant's): nothing changed.
///
/// Every end of a job without output goes through here — the worker's failures, a tenant's
/// cancel, the hold timeout — so the hold is voided exactly once.
pub async fn end_job(
    state: &Services,
    job: &Video,
    status: VideoStatus,
    error: Option<JobError>,
    by: EndedBy<'_>,
) -> anyhow::Result<bool> {
    let (owner, tenant) = match &by {
        EndedBy::Worker(owner) => (Some(*owner), None),
        EndedBy::Tenant(tenant) => (None, Some(*tenant)),
        EndedBy::Timeout => (None, None),
    };
    let transition = Transition::ending(status, matches!(by, EndedBy::Timeout));
    let (from, to) = transition.guard();
    let error = error.as_ref();
    let (ended, voided) = retry_conflicts(|| async move {
        let mut tx = state.db.begin().await?;
        let usage = usage_after_end(job, None);
        let ended =
            Db::mark_ended(&mut tx, &job.id, (from, to), error, owner, tenant, usage).await?;
        let voided = ended && ledger::void(&mut tx, &job.id).await?;
        if ended {
            crate::domain::webhooks::enqueue(&mut tx, job, to).await?;
        }
        tx.commit().await?;
        Ok::<_, anyhow::Error>((ended, voided))
    })
    .await?;
    if !ended {
        return Ok(false);
    }
    after_terminal(state, job, to, 0, voided);
    if !matches!(by, EndedBy::Worker(_)) {
        cancel_upstream(state, job);
    }
    Ok(true)
}

/// Called once a job's terminal transaction has committed: counts it, and wakes the webhook
/// sender and the archiver (which find their work in the database, so a wake that is missed
/// by a crash only delays them).
pub fn after_terminal(
    state: &Services,
    video: &Video,
    status: VideoStatus,
    captured: i64,
    voided: bool,
) {
    let metrics = &state.metrics;
    metrics.job_finished(video.provider, status.as_str());
    if captured > 0 {
        metrics.credits_captured.inc_by(captured as u64);
    }
    if voided {
        metrics
            .credits_voided
            .inc_by(video.cost_reserved.get().max(0) as u64);
    }
    state.wake_outbox();
}

/// Fails jobs that have run longer than `workers.hold_timeout_secs` (their holds voided in
/// the same transaction) and asks their upstreams to cancel.
pub async fn expire_overdue(state: &Services) -> anyhow::Result<()> {
    let cutoff = now_ms() - (state.config.workers.hold_timeout_secs * 1000) as i64;
    for job in state.db.overdue_jobs(IN_FLIGHT, cutoff, 100).await? {
        let error = JobError {
            code: "timeout".into(),
            message: "the job did not finish in time; its credits were released".into(),
        };
        if end_job(
            state,
            &job,
            VideoStatus::Failed,
            Some(error),
            EndedBy::Timeout,
        )
        .await?
        {
            tracing::warn!(video = %job.id, "job timed out; hold voided");
        }
    }
    Ok(())
}

/// Asks a job's provider, in the background, to stop the upstream job of a job that ended
/// here (canceled, timed out), and records the call among the job's attempts. The job stays
/// ended whatever the upstream answers.
pub fn cancel_upstream(state: &Services, job: &Video) {
    let (Some(provider), Some(upstream_id)) = (
        job.provider.and_then(|p| state.providers.get(p)).cloned(),
        job.upstream_id.clone(),
    ) else {
        return;
    };
    let db = state.db.clone();
    let video = job.id.clone();
    crate::telemetry::spawn_detached("upstream-cancel", async move {
        let started = now_ms();
        let outcome = provider.cancel(&upstream_id).await;
        let (result, error) = match &outcome {
            Ok(crate::providers::CancelOutcome::Canceled) => ("accepted", None),
            Ok(crate::providers::CancelOutcome::Unsupported) => ("unsupported", None),
            Err(error) => {
                tracing::warn!(%error, provider = provider.id().as_str(), video = %video, "upstream cancel failed; the job stays ended here");
                ("failed", Some(error.to_string()))
            }
        };
        let attempt = Attempt {
            video: &video,
            provider: provider.id(),
            operation: "cancel",
            started_at: started,
            duration_ms: now_ms() - started,
        };
        if let Err(error) = db.record_attempt(&attempt, result, error.as_deref()).await {
            tracing::debug!(%error, "recording an upstream cancel failed");
        }
    });
}

/// Completes a job and captures its charge in one transaction: the price of what was actually
/// generated, never more than the hold.
pub(super) async fn complete(
    state: &Services,
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
    let (requests, charged) = retry_conflicts(|| async move {
        let mut tx = state.db.begin().await?;
        let (from, to) = Transition::Complete.guard();
        let requests = Db::mark_completed(
            &mut tx,
            &job.id,
            owner,
            (from, to),
            video_url,
            charge,
            expires_at,
            cost,
            usage_after_end(job, Some(charge)),
        )
        .await?;
        let mut charged = 0;
        if requests.is_some() {
            let captured = ledger::capture(&mut tx, &job.id, charge).await?;
            charged = captured.map_or(0, |c| c.get());
            crate::domain::webhooks::enqueue(&mut tx, job, to).await?;
            if state.config.storage.archive {
                Db::queue_archive(&mut tx, &job.id).await?;
            }
            if let Some(provider) = job.provider {
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
        Ok::<_, anyhow::Error>((requests, charged))
    })
    .await?;
    let completed = requests.is_some();
    if let (Some(requests), Some(provider)) = (requests, job.provider) {
        state.metrics.job_completed_after(provider, requests);
    }
    if completed {
        after_terminal(state, job, VideoStatus::Completed, charged, false);
    }
    Ok(())
}

/// Ends a leased job without output (see [`end_job`]).
pub(super) async fn end(
    state: &Services,
    job: &Video,
    owner: &str,
    status: VideoStatus,
    error: JobError,
) -> anyhow::Result<()> {
    end_job(state, job, status, Some(error), EndedBy::Worker(owner)).await?;
    Ok(())
}

pub(super) async fn retry_later(
    state: &Services,
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
    state.db.reschedule(&job.id, owner, IN_FLIGHT, due).await?;
    Ok(())
}
