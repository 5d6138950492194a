//! The webhook sender: leases due outbox messages, signs and posts them, and records each
//! attempt. A message is leased for longer than one attempt can take, so a replica that dies
//! mid-attempt only delays it; a message whose attempt succeeded but whose result was not
//! recorded is sent again (at least once — receivers deduplicate on `webhook-id`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::domain::services::Services;
use crate::domain::webhooks::{self, delivery, Attempt, Message};

/// Messages sent at once by one replica.
const PARALLEL: usize = 16;
/// The start of a response body kept in the attempt log.
const SNIPPET_BYTES: usize = 512;

pub async fn run(state: Arc<Services>, shutdown: CancellationToken) -> anyhow::Result<()> {
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
                .claim_webhook_messages(&state.instance_id, now, lease_ms, free)
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

async fn deliver(
    state: &Arc<Services>,
    client: &reqwest::Client,
    message: Message,
) -> anyhow::Result<()> {
    let Some(ready) = delivery::prepare(state, &message).await? else {
        return Ok(());
    };
    let timestamp = now_ms() / 1000;
    let secrets: Vec<&str> = ready.target.secrets.iter().map(String::as_str).collect();
    let signature = webhooks::signature_header(&secrets, &message.id, timestamp, &ready.body);
    let started = Instant::now();
    let attempted_at = now_ms();
    let sent = client
        .post(&ready.target.url)
        .header("content-type", "application/json")
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(ready.body)
        .send()
        .await;
    let answer = match sent {
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(crate::types::time::retry_after);
            let snippet = snippet(response).await;
            delivery::Answer {
                attempt: Attempt {
                    attempted_at,
                    status: Some(i64::from(status.as_u16())),
                    latency_ms: started.elapsed().as_millis() as i64,
                    error: (!status.is_success()).then(|| format!("HTTP {}", status.as_u16())),
                    response: Some(snippet),
                },
                retry_after,
            }
        }
        Err(error) => delivery::Answer {
            attempt: Attempt {
                attempted_at,
                status: None,
                latency_ms: started.elapsed().as_millis() as i64,
                error: Some(describe(&error)),
                response: None,
            },
            retry_after: None,
        },
    };
    delivery::record(state, &message, &ready.target, answer).await
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
