//! The webhook sender: leases due outbox messages, signs and posts them, and records each
//! attempt. A message is leased for longer than one attempt can take, so a replica that dies
//! mid-attempt only delays it; a message whose attempt succeeded but whose result was not
//! recorded is sent again (at least once — receivers deduplicate on `webhook-id`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::domain::webhooks::{self, Attempt, Message, MessageState};
use crate::storage::now_ms;

/// Messages sent at once by one replica.
const PARALLEL: usize = 16;
/// The start of a response body kept in the attempt log.
const SNIPPET_BYTES: usize = 512;

pub async fn run(state: AppState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = &state.config.webhooks;
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    let client = crate::domain::ssrf::guarded_client(
        &state.config.security.url_allowlist,
        timeout,
        config.max_redirects,
    )?;
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let tick = Duration::from_millis(state.config.workers.tick_ms.clamp(10, 1000));
    // Long enough for an attempt with redirects to finish before another replica may retry.
    let lease_ms = (timeout.as_millis() as i64) * (config.max_redirects as i64 + 2) + 5_000;
    while !shutdown.is_cancelled() {
        let free = slots.available_permits() as i64;
        let now = now_ms();
        let claimed = if free > 0 {
            match state
                .db
                .claim_webhook_messages(&state.instance_id, now, now + lease_ms, free)
                .await
            {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, "claiming webhook messages failed; retrying");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let full = claimed.len() as i64 == free && free > 0;
        for message in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let state = state.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let id = message.id.clone();
                if let Err(error) = deliver(&state, &client, message).await {
                    tracing::warn!(message = %id, error = ?error, "webhook delivery step failed; retried after its lease");
                }
                drop(permit);
            });
        }
        if !full {
            tokio::select! {
                () = state.outbox.notified() => {}
                () = tokio::time::sleep(tick) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
    let _ =
        tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(PARALLEL as u32)).await;
    Ok(())
}

/// Where a message goes and which secrets sign it.
struct Target {
    url: String,
    secrets: Vec<String>,
    endpoint_id: Option<String>,
}

async fn target(state: &AppState, message: &Message) -> anyhow::Result<Result<Target, String>> {
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
    let (secret, previous, until) = webhooks::request_secret(state, &message.tenant_id)
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

async fn payload(state: &AppState, message: &Message) -> anyhow::Result<String> {
    if let Some(payload) = &message.payload {
        return Ok(payload.clone());
    }
    let id = crate::domain::ids::VideoId::from_db(message.video_id.clone());
    let video = state
        .db
        .get_video_any(&id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("video {id} is gone"))?;
    let body = serde_json::json!({
        "type": message.event_type,
        "timestamp": webhooks::rfc3339(message.event_at),
        "data": crate::domain::video_object::VideoObject::from(&video),
    });
    let rendered = serde_json::to_string(&body)?;
    Ok(state.db.fix_webhook_payload(&message.id, &rendered).await?)
}

async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    message: Message,
) -> anyhow::Result<()> {
    let target = match target(state, &message).await? {
        Ok(target) => target,
        Err(reason) => {
            state
                .db
                .cancel_webhook_message(&message.id, &reason)
                .await?;
            state.metrics.webhook_delivery("canceled");
            return Ok(());
        }
    };
    let body = payload(state, &message).await?;
    let timestamp = now_ms() / 1000;
    let secrets: Vec<&str> = target.secrets.iter().map(String::as_str).collect();
    let signature = webhooks::signature_header(&secrets, &message.id, timestamp, &body);
    let started = Instant::now();
    let attempted_at = now_ms();
    let sent = client
        .post(&target.url)
        .header("content-type", "application/json")
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let (attempt, retry_after, gone) = match sent {
        Ok(response) => {
            let status = response.status();
            let retry_after = crate::providers::upstream::retry_after(response.headers());
            let snippet = snippet(response).await;
            let latency_ms = started.elapsed().as_millis() as i64;
            (
                Attempt {
                    attempted_at,
                    status: Some(i64::from(status.as_u16())),
                    latency_ms,
                    error: (!status.is_success()).then(|| format!("HTTP {}", status.as_u16())),
                    response: Some(snippet),
                },
                retry_after,
                status == reqwest::StatusCode::GONE,
            )
        }
        Err(error) => {
            let error = describe(&error);
            (
                Attempt {
                    attempted_at,
                    status: None,
                    latency_ms: started.elapsed().as_millis() as i64,
                    error: Some(error),
                    response: None,
                },
                None,
                false,
            )
        }
    };
    let delivered = attempt.status.is_some_and(|s| (200..300).contains(&s));
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

async fn snippet(response: reqwest::Response) -> String {
    use futures::StreamExt;
    let mut stream = response.bytes_stream();
    let mut kept = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = SNIPPET_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if kept.len() >= SNIPPET_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_redirect() {
        "refused redirect".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(300).collect()
}
