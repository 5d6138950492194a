//! Webhooks from upstream providers. The callback URL the gateway hands a provider carries a
//! per-job random token; a provider that signs its webhooks (Apiframe, AIgateway) is verified
//! by its module as well. Nothing in the body is trusted beyond the job id: the job is made
//! due for one confirming poll (after the provider's minimum interval since the last request),
//! and the worker confirms its state by polling. Until a webhook comes, such jobs are polled
//! only as a safety net (`workers::jobs`). Duplicate deliveries cause at most another poll,
//! and a finished job ignores them.

use crate::domain::ids::ProviderId;
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::providers::{Headers, WebhookError};

pub async fn receive(
    state: &Services,
    provider: ProviderId,
    token: &str,
    headers: &Headers,
    body: &[u8],
) -> Result<()> {
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::NotFound("webhook"));
    }
    let job = state
        .db
        .video_by_callback_token(token)
        .await?
        .filter(|job| job.provider == Some(provider))
        .ok_or(Error::NotFound("webhook"))?;
    let handler = state
        .providers
        .get(provider)
        .ok_or(Error::NotFound("webhook"))?;
    let upstream_id = handler.webhook_job_id(headers, body).map_err(|e| match e {
        WebhookError::BadSignature => Error::Unauthorized("invalid_signature", e.to_string()),
        WebhookError::Malformed => Error::invalid_body(e.to_string()),
        WebhookError::Unsupported => Error::NotFound("webhook"),
    })?;
    if job
        .upstream_id
        .as_deref()
        .is_some_and(|id| id != upstream_id)
    {
        return Err(Error::invalid_body("the webhook is about another job"));
    }
    if !job.status.is_terminal() {
        let min_interval = handler.min_poll_interval().as_millis() as i64;
        state.db.poll_soon(&job.id, min_interval).await?;
        state.wake_workers();
    }
    Ok(())
}
