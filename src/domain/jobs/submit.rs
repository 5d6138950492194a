//! Submitting a job: a slot at its provider (or the next candidate with room), a token of the
//! provider's submit rate, then the submit itself. A failure another provider might not have
//! moves the job to the next candidate on the same hold; a lost answer is sent again only
//! where the provider de-duplicates, else once more at most.
//!
//! Each submit is written as an intent before it is sent (see `intents`).

use std::sync::Arc;

use super::intents::{abandon, recover_intents, UNKNOWN_OUTCOME, UNSUPPORTED_OUTCOME};
use super::lifecycle::{end, retry_later};
use super::schedule::{first_poll_delay, first_safety_poll, observed_duration, safety_interval};
use super::transitions::{Transition, IN_FLIGHT, WAITING};
use crate::domain::routing::eligibility;
use crate::domain::services::Services;
use crate::providers::{Provider, ProviderError, SubmitRequest};
use crate::storage::{attempts::Attempt, leases::Due};
use crate::storage::{now_ms, Db, DbError, Tx};
use crate::types::ids::ProviderId;
use crate::types::video::{JobError, PollCause, Video, VideoStatus};

/// The attempt outcome of a submit the provider accepted.
const ACCEPTED_OUTCOME: &str = "accepted";

/// Submits a job to its provider. A failure that another provider might not have — the
/// provider is misconfigured or out of credit (401/403/402), rate limiting, failing or
/// unreachable — moves the job to the next candidate of its routing decision, as long as
/// candidates remain and the request allowed fallback; an upstream 400 does not (the request
/// itself is at fault). Every attempt is recorded for the operator, its intent before the call.
/// The hold is the job's, whatever provider takes it, so the tenant is charged once, at most
/// the reserved price.
pub(super) async fn submit(
    state: &Services,
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
    // A submit an earlier step sent without recording its answer is a lost answer.
    let mut cut_off = recover_intents(state, &job, provider.as_ref()).await?;
    loop {
        if let Some(error) = cut_off.take() {
            match after_failure(state, &mut job, &mut provider, error, false, submits).await? {
                Then::Done => return Ok(None),
                Then::SubmitNow => continue,
            }
        }
        if !take_slot(state, &mut job, &mut provider).await?
            || !within_rate(state, &mut job, provider.as_ref()).await?
        {
            // Every candidate is full: wait in the queue for a slot.
            let due = Due::at(next_queue_turn(now_ms()), PollCause::Scheduled);
            state.db.reschedule(&job.id, owner, IN_FLIGHT, due).await?;
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
                provider.id()
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
        let attempt = Attempt {
            video: &job.id,
            provider: provider.id(),
            operation: "submit",
            started_at: started,
            duration_ms: 0,
        };
        let client_ref = provider.client_reference(&job.id);
        let intent = state
            .db
            .record_intent(&attempt, client_ref.as_deref())
            .await?;
        state.metrics.job_request(provider.id(), "submit");
        submits += 1;
        let outcome = provider.submit(request).await;
        let duration_ms = now_ms() - started;
        let error = match outcome {
            Ok(submission) => {
                state.providers.circuits.record_success(provider.id());
                let ours = state
                    .db
                    .settle_intent(
                        intent,
                        ACCEPTED_OUTCOME,
                        None,
                        duration_ms,
                        Some(&submission.upstream_id),
                    )
                    .await?;
                let next = if calls_back {
                    let expected = match submission.estimated {
                        Some(estimate) => Some(estimate),
                        None => observed_duration(state, provider.id(), &job).await,
                    };
                    let wait =
                        first_safety_poll(provider.as_ref(), expected, safety_interval(state));
                    (now_ms() + wait.as_millis() as i64, PollCause::Safety)
                } else {
                    let wait = first_poll_delay(provider.as_ref(), submission.estimated);
                    (now_ms() + wait.as_millis() as i64, PollCause::Scheduled)
                };
                let submitted = if ours {
                    state
                        .db
                        .mark_submitted(
                            &job.id,
                            owner,
                            Transition::Submit.guard(),
                            provider.id(),
                            &submission.upstream_id,
                            Due {
                                requests: submits,
                                ..Due::at(next.0, next.1)
                            },
                            submission.cost.as_ref(),
                        )
                        .await?
                } else {
                    None
                };
                if submitted.is_none() {
                    abandon(state, &job, provider.as_ref(), &submission.upstream_id).await?;
                }
                return Ok(submitted);
            }
            Err(error) => error,
        };
        let error = same_again_if_deduplicated(error, provider.as_ref());
        if !state
            .db
            .settle_intent(
                intent,
                outcome_of(&error),
                Some(&error.to_string()),
                duration_ms,
                None,
            )
            .await?
        {
            return Ok(None); // Another step took the job and counted this submit as lost.
        }
        match after_failure(state, &mut job, &mut provider, error, true, submits).await? {
            Then::Done => return Ok(None),
            Then::SubmitNow => continue,
        }
    }
}

/// A submit whose answer was lost may have made a job upstream. Sent again as it is only
/// where the provider de-duplicates it; elsewhere it is sent once more at most.
fn same_again_if_deduplicated(error: ProviderError, provider: &dyn Provider) -> ProviderError {
    match error {
        ProviderError::OutcomeUnknown(message) if provider.idempotent_submits() => {
            ProviderError::Transient {
                message,
                retry_after: None,
            }
        }
        other => other,
    }
}

/// The attempt outcome recorded for a failed submit.
fn outcome_of(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::Rejected(_) => "rejected",
        ProviderError::Unsupported(_) => UNSUPPORTED_OUTCOME,
        ProviderError::Unavailable(_) => "unavailable",
        ProviderError::Transient { .. } => "transient",
        ProviderError::OutcomeUnknown(_) => UNKNOWN_OUTCOME,
    }
}

/// What a submit step does after a failed submit.
enum Then {
    /// The step is over: the job retries later, ended, or is no longer this step's.
    Done,
    /// Submit now, to the provider the job was switched to.
    SubmitNow,
}

/// Goes on after a failed submit (`sent`: this step sent it; else it is a cut-off submit
/// found by `recover_intents`): the next candidate, a retry later, or the job's end.
async fn after_failure(
    state: &Services,
    job: &mut Video,
    provider: &mut Arc<dyn Provider>,
    error: ProviderError,
    sent: bool,
    submits: i64,
) -> anyhow::Result<Then> {
    let owner = state.instance_id.as_ref();
    // A cut-off submit says nothing of the provider's health.
    if sent
        && !matches!(
            error,
            ProviderError::Rejected(_) | ProviderError::Unsupported(_)
        )
    {
        state.providers.circuits.record_failure(provider.id());
    }
    if let ProviderError::Unsupported(reason) = &error {
        // The declared capabilities were wrong for this shape: say so, and keep the
        // provider out of it for a while.
        tracing::warn!(
            video = %job.id,
            provider = provider.id().as_str(),
            model = job.request.model.id(),
            %reason,
            "the provider refused a request its capabilities admit; trying the next candidate"
        );
        state
            .providers
            .refusals
            .learn(provider.id(), &job.request, reason);
    }
    if let ProviderError::Unavailable(message) = &error {
        tracing::error!(provider = provider.id().as_str(), %message, "provider is misconfigured or out of credit");
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
            provider = provider.id().as_str(),
            %message,
            "a submit's answer was lost: the job may exist upstream unseen (listed in the cost-mismatch report)"
        );
    }
    let next = match &error {
        ProviderError::Rejected(_) => None,
        // One more submit at most after a lost answer, elsewhere when possible.
        ProviderError::OutcomeUnknown(_) if lost_answers > 1 => None,
        _ if !job.request.routing.fallback => None,
        _ => next_candidate(state, job),
    };
    if job.slot_provider.take().is_some() {
        state.db.release_slot(&job.id).await?;
        state.wake_workers();
    }
    if let Some(next) = next {
        tracing::info!(video = %job.id, from = provider.id().as_str(), to = next.id().as_str(), %error, "failing over to the next provider");
        if !state
            .db
            .switch_provider(&job.id, owner, IN_FLIGHT, next.id(), &job.fallbacks)
            .await?
        {
            return Ok(Then::Done); // No longer ours (canceled, or the lease was lost).
        }
        *provider = next;
        return Ok(Then::SubmitNow);
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
            end(state, job, owner, VideoStatus::Failed, error).await
        }
        ProviderError::Rejected(message) => {
            let error = JobError {
                code: "upstream_rejected".into(),
                message,
            };
            end(state, job, owner, VideoStatus::Failed, error).await
        }
        ProviderError::Unavailable(_) => {
            let error = JobError {
                code: "upstream_unavailable".into(),
                message: "no upstream could take this job".into(),
            };
            end(state, job, owner, VideoStatus::Failed, error).await
        }
        ProviderError::Transient {
            message,
            retry_after,
        } => retry_later(state, job, owner, &message, retry_after, submits).await,
        // No other candidate: the one more submit goes to the same provider, later.
        ProviderError::OutcomeUnknown(message) if lost_answers <= 1 => {
            retry_later(state, job, owner, &message, None, submits).await
        }
        ProviderError::OutcomeUnknown(message) => {
            let error = JobError {
                code: "upstream_outcome_unknown".into(),
                message: format!(
                    "the upstream's answers to this job's submits were lost ({message}); \
                         it was not sent again, and its credits were released"
                ),
            };
            end(state, job, owner, VideoStatus::Failed, error).await
        }
    };
    ended.map(|()| Then::Done)
}

/// Gives free slots to claimed queued jobs in the claim's fair order, before their submits run
/// concurrently: otherwise the jobs of a batch would race for a freed slot and the order would
/// mean nothing. Once a provider has no room, later jobs for it get none in this round.
pub async fn hand_out_slots(state: &Services, mut claimed: Vec<Video>) -> Vec<Video> {
    let mut full: Vec<ProviderId> = Vec::new();
    for job in claimed
        .iter_mut()
        .filter(|j| j.status == VideoStatus::Queued)
    {
        let Some(provider) = job.provider else {
            continue;
        };
        let Some(limit) = state.providers.limit(provider) else {
            continue;
        };
        if job.slot_provider == Some(provider) || full.contains(&provider) {
            continue;
        }
        if job.slot_provider.is_some() {
            continue; // Holds a slot elsewhere; the submit step sorts it out.
        }
        match state
            .db
            .acquire_slot(&job.id, &state.instance_id, IN_FLIGHT, provider, limit)
            .await
        {
            Ok(true) => job.slot_provider = Some(provider),
            Ok(false) => full.push(provider),
            Err(error) => tracing::warn!(video = %job.id, %error, "taking a slot failed"),
        }
    }
    claimed
}

/// How many waiting jobs a create counts before it joins them in the queue.
const WAITING_COUNTED: i64 = 256;

/// Takes one of `provider`'s `limit` slots for a job being created, in its creating
/// transaction, unless the jobs already waiting for that provider need every free slot: jobs
/// that waited go first. Waiting jobs are counted up to [`WAITING_COUNTED`]; with that many,
/// the new job waits too.
pub async fn take_slot_for_new_job(
    tx: &mut Tx,
    provider: ProviderId,
    limit: i64,
) -> Result<bool, DbError> {
    let ahead = Db::jobs_waiting_for(tx, provider, WAITING, WAITING_COUNTED).await?;
    if ahead >= WAITING_COUNTED || ahead >= limit {
        return Ok(false);
    }
    Db::take_slot_leaving(tx, provider, ahead, limit).await
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
    state: &Services,
    job: &mut Video,
    provider: &mut Arc<dyn Provider>,
) -> anyhow::Result<bool> {
    let owner = state.instance_id.as_ref();
    if job.slot_provider == Some(provider.id()) {
        return Ok(true);
    }
    if job.slot_provider.take().is_some() {
        state.db.release_slot(&job.id).await?;
    }
    let Some(limit) = state.providers.limit(provider.id()) else {
        return Ok(true);
    };
    if state
        .db
        .acquire_slot(&job.id, owner, IN_FLIGHT, provider.id(), limit)
        .await?
    {
        job.slot_provider = Some(provider.id());
        return Ok(true);
    }
    if !job.request.routing.fallback {
        return Ok(false);
    }
    for (index, name) in job.fallbacks.clone().into_iter().enumerate() {
        let Ok(candidate) = eligibility::check(state, job.mode, name, &job.request).cloned() else {
            continue;
        };
        let room = match state.providers.limit(name) {
            None => true,
            Some(limit) => {
                state
                    .db
                    .acquire_slot(&job.id, owner, IN_FLIGHT, name, limit)
                    .await?
            }
        };
        if room {
            job.fallbacks.remove(index);
            job.fallbacks.insert(0, provider.id());
            if state.providers.limit(name).is_some() {
                job.slot_provider = Some(name);
            }
            if !state
                .db
                .switch_provider(&job.id, owner, IN_FLIGHT, name, &job.fallbacks)
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
pub(super) async fn resubmit(
    state: &Services,
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
    let Some(from) = job.provider else {
        return Ok(false);
    };
    let attempt = Attempt {
        video: &job.id,
        provider: from,
        operation: "generate",
        started_at: started,
        duration_ms: 0,
    };
    state
        .db
        .record_attempt(&attempt, "failed", Some(&format!("{code}: {message}")))
        .await?;
    tracing::info!(video = %job.id, from = from.as_str(), to = next.id().as_str(), %code, "resubmitting a job that failed upstream");
    let moved = state
        .db
        .requeue_elsewhere(
            &job.id,
            &state.instance_id,
            Transition::Requeue.guard(),
            next.id(),
            &job.fallbacks,
        )
        .await?;
    if moved {
        state.wake_workers();
    }
    Ok(moved)
}

/// Takes a submit from the provider's rate, if it has one. When the rate is spent the job gives
/// its slot back and waits in the queue like a job whose provider is full.
async fn within_rate(
    state: &Services,
    job: &mut Video,
    provider: &dyn Provider,
) -> anyhow::Result<bool> {
    let Some((interval_ms, burst)) = state.providers.rate(provider.id()) else {
        return Ok(true);
    };
    if state
        .db
        .take_submit_token(provider.id(), interval_ms, burst, now_ms())
        .await?
    {
        return Ok(true);
    }
    if job.slot_provider.take().is_some() {
        state.db.release_slot(&job.id).await?;
    }
    Ok(false)
}

/// Takes the next candidate that may take the job now off the job's fallback list; those
/// that may not (see [`eligibility::check`]) are dropped from it.
fn next_candidate(state: &Services, job: &mut Video) -> Option<Arc<dyn Provider>> {
    while !job.fallbacks.is_empty() {
        let name = job.fallbacks.remove(0);
        match eligibility::check(state, job.mode, name, &job.request) {
            Ok(provider) => return Some(provider.clone()),
            Err(reason) => {
                tracing::info!(video = %job.id, provider = name.as_str(), %reason, "skipping a fallback that cannot take the job now");
            }
        }
    }
    None
}
