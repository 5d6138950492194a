//! Submit intents: what makes a submit cut off between its call and its commit visible to
//! the next step that takes the job.
//!
//! Each submit is written as an attempt (outcome `sent`, with the client reference
//! the provider sees, if the adapter sends one) *before* the call, and its answer is recorded
//! on that row after it, guarded on the row still being `sent`. So a step that dies between
//! the call and the commit (a crash, a SIGKILL) or outlives its lease leaves a trace, and the
//! next step that takes the job finds the open intent and closes it as a lost answer:
//! - where the provider de-duplicates on the reference (Apiframe's `Idempotency-Key: <video
//!   id>`), it sends the submit again at once as it was, and the upstream answers with the
//!   job the cut-off submit made: one upstream job;
//! - elsewhere, it is a lost answer like any other: the job is sent once more at most,
//!   elsewhere when a candidate remains, and the cut-off submit is listed among the possible
//!   orphans for the operator. A lost answer still costs at most two upstream jobs.
//!
//! A late answer to a submit whose intent another step has closed (or whose job is no longer
//! this step's) is not stored: the job is the other step's. The upstream job it names is
//! canceled there, unless the provider de-duplicates (then the job's own submit names the same
//! upstream job, and canceling it would cancel the job's). The trade-off: one more write per
//! submit, and a provider without a client reference or a lookup by it cannot tell us whether
//! the cut-off submit made a job, so that case may cost one more upstream job (listed, never
//! charged to the tenant twice: the hold is the job's).

use super::lifecycle::cancel_upstream;
use crate::domain::services::Services;
use crate::providers::{Provider, ProviderError};
use crate::types::video::Video;

/// The attempt outcome of a submit the provider could not serve (see [`super::submit`]).
pub const UNSUPPORTED_OUTCOME: &str = "unsupported";

/// The attempt outcome of a submit whose answer was lost: an intent closed without its
/// answer, or a call that failed without saying whether the upstream took the job.
pub const UNKNOWN_OUTCOME: &str = "unknown";

/// Closes the job's submits that an earlier step wrote but never recorded an answer for (it
/// crashed, or outlived its lease): each is a lost answer. Returns the error the submit step
/// goes on from, or `None` when the submit is simply sent again: where the provider
/// de-duplicates on the reference the cut-off submit carried, it answers with the same job.
pub(super) async fn recover_intents(
    state: &Services,
    job: &Video,
    provider: &dyn Provider,
) -> anyhow::Result<Option<ProviderError>> {
    let open = state.db.open_intents(&job.id).await?;
    let mut lost = 0;
    let mut same_again = true;
    for intent in &open {
        let message = "no answer was recorded for this submit: the step that sent it stopped \
                       (a crash, or its lease ran out) while it was in flight";
        if state
            .db
            .close_intent(intent.seq, UNKNOWN_OUTCOME, message)
            .await?
        {
            lost += 1;
            same_again &= provider.idempotent_submits()
                && intent.provider == provider.id().as_str()
                && intent.client_ref.is_some()
                && intent.client_ref == provider.client_reference(&job.id);
        }
    }
    if lost == 0 {
        return Ok(None);
    }
    tracing::warn!(
        video = %job.id,
        provider = provider.id().as_str(),
        same_again,
        "a submit was cut off before its answer was recorded: it counts as a lost answer"
    );
    if same_again {
        return Ok(None);
    }
    Ok(Some(ProviderError::OutcomeUnknown(
        "a submit was cut off before its answer was recorded".into(),
    )))
}

/// A submit answered after its job stopped being this step's (another step took it, or it
/// ended): the upstream job it made is not the job's. It is canceled upstream, unless the job
/// as stored names it or the provider de-duplicates submits (the job's own submit then names
/// the same upstream job).
pub(super) async fn abandon(
    state: &Services,
    job: &Video,
    provider: &dyn Provider,
    upstream_id: &str,
) -> anyhow::Result<()> {
    if provider.idempotent_submits() {
        return Ok(());
    }
    let stored = state.db.get_video_any(&job.id).await?;
    if stored.as_ref().and_then(|v| v.upstream_id.as_deref()) == Some(upstream_id) {
        return Ok(());
    }
    tracing::warn!(
        video = %job.id,
        provider = provider.id().as_str(),
        upstream_id,
        "a submit answered after its job was taken elsewhere; canceling the upstream job it made"
    );
    let mut orphan = job.clone();
    orphan.provider = Some(provider.id());
    orphan.upstream_id = Some(upstream_id.to_string());
    cancel_upstream(state, &orphan);
    Ok(())
}
