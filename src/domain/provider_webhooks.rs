//! Webhooks from upstream providers. The callback URL the gateway hands a provider carries a
//! per-job random token; a provider that signs its webhooks (Apiframe, AIgateway) is verified
//! by its module as well. Nothing in the body is trusted beyond the job id: the job is made
//! due for one confirming poll, and the worker confirms its state by polling. Until a webhook
//! comes, such jobs are polled only as a safety net (`workers::jobs`).
//!
//! Whoever holds a job's callback URL can send deliveries as fast as they like, so they are
//! coalesced: a job is never polled twice at once (its lease), nor twice within
//! [`webhook_poll_interval`] because of webhooks, however many arrive. A finished job ignores
//! them. Where the provider's signature carries no timestamp (Apiframe), a captured delivery
//! would verify forever: each job remembers the deliveries it received, and one seen before is
//! refused (409 `webhook_replayed`) and changes nothing.

use crate::domain::jobs::transitions::IN_FLIGHT;
use crate::domain::jobs::{confirmation_due, webhook_poll_interval};
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::providers::{Headers, WebhookError};
use crate::storage::{now_ms, Db};
use crate::types::ids::ProviderId;

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
    let delivery = handler.webhook_delivery_id(headers, body);
    let running = !job.status.is_terminal();
    if delivery.is_none() && !running {
        return Ok(());
    }
    let mut tx = state.db.begin().await?;
    if let Some(delivery) = &delivery {
        if !Db::remember_webhook_delivery(&mut tx, &job.id, delivery).await? {
            return Err(Error::Conflict(
                "webhook_replayed",
                "this webhook delivery was received before; a replay changes nothing".into(),
            ));
        }
    }
    if running {
        let interval = webhook_poll_interval(state, handler.as_ref());
        // The job's last step may move while this reads it (a poll rescheduling it): read it
        // again and recompute, a few times at most. When every try loses, the delivery is
        // refused (and its record rolled back) so that the provider sends it again.
        let mut scheduled = false;
        for _ in 0..3 {
            let Some(last_step) = Db::last_job_step(&mut tx, &job.id, IN_FLIGHT).await? else {
                scheduled = true;
                break;
            };
            let now = now_ms();
            let at = confirmation_due(last_step, now, interval);
            if Db::poll_soon(&mut tx, &job.id, IN_FLIGHT, last_step, now, at).await? {
                scheduled = true;
                break;
            }
        }
        if !scheduled {
            return Err(Error::DatabaseBusy {
                attempts: 3,
                cause: anyhow::anyhow!("the job kept moving while its confirmation was scheduled"),
            });
        }
    }
    tx.commit().await?;
    if running {
        state.wake_workers();
    }
    Ok(())
}
