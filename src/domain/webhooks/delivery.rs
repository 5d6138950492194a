//! What happens around one delivery attempt of an outbox message: where it goes and which
//! secrets sign it, the body it carries (rendered once, then fixed), and, after the attempt,
//! its next state: delivered, retried on the configured schedule (with jitter, or after the
//! receiver's `Retry-After`), or failed; an endpoint that answers 410 Gone is disabled.
//! The worker (`workers::webhooks`) only claims messages and makes the HTTP request.

use rand::Rng;

use super::{Attempt, Message, MessageState};
use crate::domain::services::Services;
use crate::storage::now_ms;

/// Where a message goes and which secrets sign it.
pub struct Target {
    pub url: String,
    pub secrets: Vec<String>,
    endpoint_id: Option<String>,
}

/// A message ready to send: its target and its body.
pub struct Ready {
    pub target: Target,
    pub body: String,
}

/// Resolves a claimed message's target and body. `None` when it can no longer be delivered
/// (its endpoint is gone or disabled): the message is then canceled.
pub async fn prepare(state: &Services, message: &Message) -> anyhow::Result<Option<Ready>> {
    let target = match target(state, message).await? {
        Ok(target) => target,
        Err(reason) => {
            state
                .db
                .cancel_webhook_message(&message.id, &reason)
                .await?;
            state.metrics.webhook_delivery("canceled");
            return Ok(None);
        }
    };
    let body = payload(state, message).await?;
    Ok(Some(Ready { target, body }))
}

async fn target(state: &Services, message: &Message) -> anyhow::Result<Result<Target, String>> {
    let now = now_ms();
    if let Some(endpoint_id) = &message.endpoint_id {
        let Some(endpoint) = state.db.webhook_endpoint_by_id(endpoint_id).await? else {
            return Ok(Err("the endpoint no longer exists".into()));
        };
        if endpoint.disabled_at.is_some() {
            return Ok(Err("the endpoint is disabled".into()));
        }
        return Ok(Ok(Target {
            secrets: endpoint
                .signing_secrets(now)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            url: endpoint.url,
            endpoint_id: Some(endpoint.id),
        }));
    }
    let Some(url) = message.url.clone() else {
        return Ok(Err("the message has no target".into()));
    };
    let (secret, previous, until) = super::request_secret(state, &message.tenant_id, message.mode)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut secrets = vec![secret];
    if let (Some(previous), Some(until)) = (previous, until) {
        if now < until {
            secrets.push(previous);
        }
    }
    Ok(Ok(Target {
        url,
        secrets,
        endpoint_id: None,
    }))
}

/// The message's body: the video as it was when the event happened, rendered at the first
/// attempt and kept, so every retry sends the same bytes.
async fn payload(state: &Services, message: &Message) -> anyhow::Result<String> {
    if let Some(payload) = &message.payload {
        return Ok(payload.clone());
    }
    let id = crate::types::ids::VideoId::from_db(message.video_id.clone());
    let video = state
        .db
        .get_video_any(&id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("video {id} is gone"))?;
    let body = serde_json::json!({
        "type": message.event_type,
        "timestamp": super::rfc3339(message.event_at),
        "data": crate::domain::video_object::VideoObject::from(&video),
    });
    let rendered = serde_json::to_string(&body)?;
    Ok(state.db.fix_webhook_payload(&message.id, &rendered).await?)
}

/// How the receiver answered an attempt.
pub struct Answer {
    pub attempt: Attempt,
    /// The receiver's `Retry-After`, if it sent one.
    pub retry_after: Option<std::time::Duration>,
}

/// Records an attempt and moves the message on: delivered on a 2xx; failed for good on a 410
/// (and the endpoint disabled) or once the retry schedule is spent; else pending until its
/// next try.
pub async fn record(
    state: &Services,
    message: &Message,
    target: &Target,
    answer: Answer,
) -> anyhow::Result<()> {
    let Answer {
        attempt,
        retry_after,
    } = answer;
    let attempted_at = attempt.attempted_at;
    let delivered = attempt.status.is_some_and(|s| (200..300).contains(&s));
    let gone = attempt.status == Some(410);
    let schedule = &state.config.webhooks.retry_schedule_secs;
    let (next_state, next_at, outcome) = if delivered {
        (MessageState::Delivered, attempted_at, "delivered")
    } else if gone {
        (MessageState::Failed, attempted_at, "gone")
    } else if let Some(wait) = schedule.get(message.attempts as usize) {
        let wait = retry_after
            .map(|r| r.as_secs().max(*wait).min(24 * 3600))
            .unwrap_or_else(|| jitter(*wait));
        (
            MessageState::Pending,
            now_ms() + (wait as i64) * 1000,
            "retrying",
        )
    } else {
        (MessageState::Failed, attempted_at, "failed")
    };
    let recorded = state
        .db
        .record_webhook_attempt(
            &state.instance_id,
            &message.id,
            &message.tenant_id,
            &attempt,
            next_state,
            next_at,
        )
        .await?;
    if !recorded {
        return Ok(());
    }
    state.metrics.webhook_delivery(outcome);
    if gone {
        if let Some(endpoint_id) = &target.endpoint_id {
            state
                .db
                .set_webhook_endpoint_disabled(endpoint_id, Some("the endpoint answered 410 Gone"))
                .await?;
            tracing::info!(endpoint = %endpoint_id, "webhook endpoint answered 410; disabled");
        }
    }
    Ok(())
}

/// The wait with up to ±20% jitter, so retries of many messages do not arrive together.
fn jitter(secs: u64) -> u64 {
    if secs == 0 {
        return 0;
    }
    let spread = (secs as f64 * 0.2) as u64;
    let low = secs.saturating_sub(spread);
    rand::thread_rng().gen_range(low..=secs + spread)
}
