//! The job lifecycle: how a stored job moves `queued → in_progress → completed | failed |
//! canceled` (or times out), one step at a time, with its hold settled exactly once.
//!
//! - [`advance`] takes a leased job one step: a submit (`submit`: slots, rates, fallback,
//!   lost answers; `intents`: a submit cut off by a crash or a lost lease) or a poll, whose
//!   answer is settled by `lifecycle` (capture or void in the same transaction as the final
//!   state).
//! - [`transitions`] is the one table of the job's statuses and the moves between them; every
//!   write that changes a status hands storage its guard from there.
//! - `schedule` decides when a running job is next due: the regular poll schedule, or, for
//!   jobs whose provider calls back, only safety polls until the webhook.
//! - The worker (`workers::jobs`) claims due jobs and calls [`advance`]; a create calls
//!   [`dispatch_now`]; a tenant's cancel and the hold timeout end jobs through
//!   [`lifecycle::end_job`]; provider webhooks make a job due (`domain::provider_webhooks`).
//!
//! A replica that dies loses only its leases, which expire and are claimed again, so every job
//! reaches a final state and is charged at most once.

mod intents;
mod lifecycle;
mod schedule;
mod submit;
pub mod transitions;

use crate::domain::services::Services;
use crate::providers::{ProviderError, UpstreamStatus};
use crate::storage::leases::{ClaimStatuses, Due};
use crate::storage::now_ms;
use crate::types::ids::ProviderId;
use crate::types::video::{JobError, PollCause, Video, VideoStatus};

pub use lifecycle::{after_terminal, cancel_upstream, end_job, expire_overdue, EndedBy};
pub use schedule::{backoff, confirmation_due, poll_delay, webhook_poll_interval};
pub use submit::{hand_out_slots, take_slot_for_new_job};

pub use intents::{UNKNOWN_OUTCOME, UNSUPPORTED_OUTCOME};

use lifecycle::{complete, end, retry_later};
use schedule::next_poll;
use submit::{resubmit, submit};
use transitions::{IN_FLIGHT, UPSTREAM, WAITING};

/// Leases up to `limit` due jobs to this replica for `lease_ms`: running ones to poll first,
/// then waiting ones to submit, in the tenants' fair order (see `Db::claim_due_jobs`).
pub async fn claim_due(
    state: &Services,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<Video>> {
    let statuses = ClaimStatuses {
        upstream: UPSTREAM,
        waiting: WAITING,
        in_flight: IN_FLIGHT,
    };
    let claimed = state
        .db
        .claim_due_jobs(&state.instance_id, (now, lease_ms, limit), statuses)
        .await?;
    Ok(claimed)
}

/// Submits a just-created job from the request that created it, so that the client learns at
/// once when the upstream refuses it. The job was stored leased to this replica (holding its
/// provider's slot where the provider has a limit), so no worker can take it meanwhile.
/// Returns the job as it stands afterwards; a transient failure leaves it queued for the
/// worker.
pub async fn dispatch_now(state: &Services, job: Video) -> anyhow::Result<Option<Video>> {
    let id = job.id.clone();
    match advance(state, job).await? {
        Some(submitted) => Ok(Some(submitted)),
        None => Ok(state.db.get_video_any(&id).await?),
    }
}

/// Takes a leased job one step further. Returns the job as stored when the step was an
/// accepted submit (the common case of a create), so the caller need not read it back.
pub async fn advance(state: &Services, job: Video) -> anyhow::Result<Option<Video>> {
    let owner = state.instance_id.as_ref();
    let Some(provider) = job.provider.and_then(|p| state.providers.get(p)).cloned() else {
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
                .job_request(provider.id(), cause.request_label());
            let polled = record_health(state, provider.id(), provider.poll(upstream_id).await);
            let after_poll = |at: i64, cause: PollCause, progress: Option<i64>| Due {
                at,
                cause,
                progress,
                count_attempt: false,
                requests: 1,
                step_started: Some(started),
                confirm_at: now_ms()
                    + webhook_poll_interval(state, provider.as_ref()).as_millis() as i64,
            };
            match polled {
                Ok(UpstreamStatus::Queued) => {
                    let (at, cause) = next_poll(state, provider.as_ref(), &job);
                    state
                        .db
                        .reschedule(&job.id, owner, IN_FLIGHT, after_poll(at, cause, None))
                        .await?;
                }
                Ok(UpstreamStatus::Running { progress }) => {
                    let (at, cause) = next_poll(state, provider.as_ref(), &job);
                    let progress = progress.map(|p| p.clamp(0, 99));
                    state
                        .db
                        .reschedule(&job.id, owner, IN_FLIGHT, after_poll(at, cause, progress))
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

/// Feeds a poll's outcome to the provider's circuit: answers count as health, failures that
/// are the provider's (not a refused request) count against it.
pub(crate) fn record_health<T>(
    state: &Services,
    provider: ProviderId,
    outcome: Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    match &outcome {
        Ok(_) => state.providers.circuits.record_success(provider),
        Err(ProviderError::Rejected(_) | ProviderError::Unsupported(_)) => {}
        Err(_) => state.providers.circuits.record_failure(provider),
    }
    outcome
}
