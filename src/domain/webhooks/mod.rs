//! Webhooks to tenants, signed per the Standard Webhooks specification
//! (`../reference/standard-webhooks`): every message carries `webhook-id` (stable across
//! retries), `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, keyed with the base64 part of a `whsec_` secret. While a rotated
//! secret overlaps, both signatures are sent, space-separated, so receivers verifying with
//! either the old or the new secret accept the message.
//!
//! Delivery is at least once from a durable outbox: [`enqueue`] writes one message per target
//! in the same transaction that gives the job its terminal state, so a committed terminal
//! state always has its messages and a rolled-back one has none. The sender
//! (`workers::webhooks`) leases due messages, renders the payload once (stored, so every retry
//! sends the same bytes), and retries on the configured schedule with jitter, honouring
//! `Retry-After`; 410 Gone disables the endpoint.
//!
//! Secrets are stored as issued: the gateway must know the key to sign with it. They are shown
//! to the tenant when created or rotated and never logged.

pub mod delivery;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::access::Reach;
use crate::domain::services::Services;
use crate::error::{Error, Result};
use crate::storage::webhooks::OutboxTarget;
use crate::storage::{now_ms, Db, Tx};
use crate::types::ids::{message_id, random_token, TenantId};
use crate::types::money::Mode;
use crate::types::video::{Video, VideoStatus};

/// Endpoints, messages and attempts are storage's rows; the rules about them (who receives
/// what, signing, retries) are here.
pub use crate::storage::webhooks::{Attempt, Endpoint, Message, MessageState};

pub const EVENTS: [&str; 3] = ["video.completed", "video.failed", "video.canceled"];

/// The event a terminal status announces.
pub fn event_for(status: VideoStatus) -> Option<&'static str> {
    match status {
        VideoStatus::Completed => Some("video.completed"),
        VideoStatus::Failed => Some("video.failed"),
        VideoStatus::Canceled => Some("video.canceled"),
        _ => None,
    }
}

/// Writes the outbox messages for a job that has just ended, inside its transaction: one to
/// every endpoint that [`receives`] its event, and one to the request's own `webhook_url`.
/// Returns how many were written.
pub async fn enqueue(
    tx: &mut Tx,
    job: &Video,
    status: VideoStatus,
) -> std::result::Result<u64, crate::storage::DbError> {
    let Some(event) = event_for(status) else {
        return Ok(0);
    };
    let endpoints = Db::webhook_endpoints_in(tx, &job.tenant_id).await?;
    let mut targets: Vec<OutboxTarget> = endpoints
        .iter()
        .filter(|endpoint| receives(endpoint, job.mode, event))
        .map(|endpoint| OutboxTarget {
            message_id: message_id(),
            endpoint_id: Some(endpoint.id.clone()),
            url: None,
        })
        .collect();
    if let Some(url) = &job.request.webhook_url {
        targets.push(OutboxTarget {
            message_id: message_id(),
            endpoint_id: None,
            url: Some(url.as_str().to_owned()),
        });
    }
    Db::enqueue_webhooks(tx, &job.tenant_id, job.mode, &job.id, event, &targets).await
}

/// Whether `endpoint` receives `event` of a video of `mode`: it is enabled, of the video's
/// mode, and subscribed to the event. (A request's own `webhook_url` receives its video's
/// events whatever the endpoints say.)
pub fn receives(endpoint: &Endpoint, mode: Mode, event: &str) -> bool {
    endpoint.disabled_at.is_none()
        && endpoint.mode == mode
        && endpoint.events.iter().any(|e| e == event)
}

pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// `v1,<signature>` of `id.timestamp.body` with one `whsec_` secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header value: one signature per secret in force.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// RFC 3339 UTC time with milliseconds, for payload timestamps.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{millis:03}Z",
        crate::domain::reports::date_of_day(days),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Endpoint {
    /// The secrets messages are signed with now: the current one, and the previous one while
    /// its overlap lasts.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_expires_at) {
            if now < until {
                secrets.push(previous.as_str());
            }
        }
        secrets
    }
}

/// What a create or update of an endpoint asks for.
pub struct EndpointRequest {
    pub url: String,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

pub async fn create_endpoint(
    state: &Services,
    reach: &Reach,
    request: EndpointRequest,
) -> Result<Endpoint> {
    check_target(state, &request.url).await?;
    let events = match request.events {
        None => EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        Some(events) if events.is_empty() => {
            return Err(Error::invalid(
                "events",
                "events must name at least one event",
            ))
        }
        Some(events) => {
            for event in &events {
                if !EVENTS.contains(&event.as_str()) {
                    return Err(Error::invalid(
                        "events",
                        format!("unknown event `{event}`; use {}", EVENTS.join(", ")),
                    ));
                }
            }
            let mut events = events;
            events.sort();
            events.dedup();
            events
        }
    };
    let description = request.description.unwrap_or_default();
    if description.chars().count() > 256 {
        return Err(Error::invalid(
            "description",
            "description is at most 256 characters",
        ));
    }
    let existing = state.db.webhook_endpoints(&reach.tenant, None).await?;
    if existing.len() >= 20 {
        return Err(Error::invalid(
            "url",
            "a tenant has at most 20 webhook endpoints",
        ));
    }
    let endpoint = Endpoint {
        id: format!("we_{}", random_token(24)),
        tenant_id: reach.tenant.clone(),
        mode: reach.mode,
        url: request.url,
        description,
        events,
        secret: new_secret(),
        previous_secret: None,
        previous_expires_at: None,
        disabled_at: None,
        disabled_reason: None,
        created_at: now_ms(),
    };
    state.db.insert_webhook_endpoint(&endpoint).await?;
    Ok(endpoint)
}

/// A target URL must be http(s), at most 2048 characters, and pass the SSRF guard.
pub async fn check_target(state: &Services, url: &str) -> Result<()> {
    if url.len() > 2048 {
        return Err(Error::invalid("url", "url is at most 2048 characters"));
    }
    crate::domain::ssrf::check_url(url, "url", &state.config.security.url_allowlist).await
}

/// A tenant's endpoints of the reach's mode.
pub async fn endpoints(state: &Services, reach: &Reach) -> Result<Vec<Endpoint>> {
    Ok(state
        .db
        .webhook_endpoints(&reach.tenant, Some(reach.mode))
        .await?)
}

/// All of a tenant's endpoints, of both modes, for the operator.
pub async fn all_endpoints(state: &Services, tenant: &TenantId) -> Result<Vec<Endpoint>> {
    Ok(state.db.webhook_endpoints(tenant, None).await?)
}

/// The reach of one of a tenant's endpoints, whatever its mode, for the operator.
pub async fn operator_reach(state: &Services, tenant: &TenantId, id: &str) -> Result<Reach> {
    let endpoint = state
        .db
        .webhook_endpoint(tenant, None, id)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))?;
    Ok(Reach::operator(tenant.clone(), endpoint.mode))
}

/// A message to a tenant and its delivery attempts, oldest first.
pub struct MessageLog {
    pub message: Message,
    pub attempts: Vec<Attempt>,
}

async fn with_attempts(state: &Services, message: Message) -> Result<MessageLog> {
    let attempts = state.db.webhook_attempts(&message.id).await?;
    Ok(MessageLog { message, attempts })
}

/// A tenant's messages, newest first, at most `limit` (1-100), about one video if given.
pub async fn messages(
    state: &Services,
    reach: &Reach,
    video: Option<&str>,
    limit: i64,
) -> Result<Vec<MessageLog>> {
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid("limit", "limit must be 1-100"));
    }
    let mut logs = Vec::new();
    for message in state
        .db
        .webhook_messages(&reach.tenant, reach.mode, video, limit)
        .await?
    {
        logs.push(with_attempts(state, message).await?);
    }
    Ok(logs)
}

pub async fn message(state: &Services, reach: &Reach, id: &str) -> Result<MessageLog> {
    let message = state
        .db
        .webhook_message(&reach.tenant, reach.mode, id)
        .await?
        .ok_or(Error::NotFound("webhook message"))?;
    with_attempts(state, message).await
}

/// Queues a message again, same id and payload, for a fresh round of attempts.
pub async fn redeliver(state: &Services, reach: &Reach, id: &str) -> Result<MessageLog> {
    if !state
        .db
        .redeliver_webhook_message(&reach.tenant, reach.mode, id)
        .await?
    {
        return Err(Error::NotFound("webhook message"));
    }
    state.wake_outbox();
    message(state, reach, id).await
}

pub async fn endpoint(state: &Services, reach: &Reach, id: &str) -> Result<Endpoint> {
    state
        .db
        .webhook_endpoint(&reach.tenant, Some(reach.mode), id)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))
}

pub async fn set_disabled(
    state: &Services,
    reach: &Reach,
    id: &str,
    disabled: bool,
) -> Result<Endpoint> {
    endpoint(state, reach, id).await?;
    state
        .db
        .set_webhook_endpoint_disabled(id, disabled.then_some("disabled by the tenant"))
        .await?;
    endpoint(state, reach, id).await
}

/// How long a rotated secret keeps signing: the request's `overlap_secs` or the default.
fn overlap(state: &Services, overlap_secs: Option<i64>) -> Result<i64> {
    let overlap = overlap_secs.unwrap_or(state.config.webhooks.secret_overlap_secs);
    if !(0..=7 * 86_400).contains(&overlap) {
        return Err(Error::invalid(
            "overlap_secs",
            "overlap_secs must be 0-604800",
        ));
    }
    Ok(overlap)
}

/// Issues a new secret; the old one keeps signing alongside it for `overlap_secs`.
pub async fn rotate(
    state: &Services,
    reach: &Reach,
    id: &str,
    overlap_secs: Option<i64>,
) -> Result<Endpoint> {
    endpoint(state, reach, id).await?;
    let overlap = overlap(state, overlap_secs)?;
    state
        .db
        .rotate_webhook_endpoint_secret(id, &new_secret(), now_ms() + overlap * 1000)
        .await?;
    endpoint(state, reach, id).await
}

/// The secret per-request `webhook_url` deliveries of one mode are signed with (created on
/// first use): each mode has its own, so a test key never learns what signs live deliveries.
pub async fn request_secret(
    state: &Services,
    tenant: &TenantId,
    mode: Mode,
) -> Result<(String, Option<String>, Option<i64>)> {
    Ok(state
        .db
        .tenant_webhook_secret(tenant, mode, &new_secret())
        .await?)
}

pub async fn rotate_request_secret(
    state: &Services,
    reach: &Reach,
    overlap_secs: Option<i64>,
) -> Result<(String, Option<String>, Option<i64>)> {
    request_secret(state, &reach.tenant, reach.mode).await?;
    let overlap = overlap(state, overlap_secs)?;
    state
        .db
        .rotate_tenant_webhook_secret(
            &reach.tenant,
            reach.mode,
            &new_secret(),
            now_ms() + overlap * 1000,
        )
        .await?;
    request_secret(state, &reach.tenant, reach.mode).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(mode: Mode, events: &[&str], disabled: bool) -> Endpoint {
        Endpoint {
            id: "ep_1".into(),
            tenant_id: TenantId::from_db("ten_1".into()),
            mode,
            url: "https://example.com/hook".into(),
            description: String::new(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            secret: new_secret(),
            previous_secret: None,
            previous_expires_at: None,
            disabled_at: disabled.then_some(1),
            disabled_reason: None,
            created_at: 0,
        }
    }

    #[test]
    fn an_endpoint_receives_only_enabled_subscribed_events_of_its_mode() {
        let completed = "video.completed";
        let both = ["video.completed", "video.failed"];
        assert!(receives(
            &endpoint(Mode::Live, &both, false),
            Mode::Live,
            completed
        ));
        assert!(!receives(
            &endpoint(Mode::Test, &both, false),
            Mode::Live,
            completed
        ));
        assert!(!receives(
            &endpoint(Mode::Live, &both, true),
            Mode::Live,
            completed
        ));
        assert!(!receives(
            &endpoint(Mode::Live, &["video.failed"], false),
            Mode::Live,
            completed
        ));
        assert!(!receives(
            &endpoint(Mode::Live, &["video.completed.extra"], false),
            Mode::Live,
            completed
        ));
    }

    #[test]
    fn signs_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        let signature = sign(secret, id, 1_614_265_330, body).expect("signs");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn both_secrets_sign_while_a_rotation_overlaps() {
        let endpoint = Endpoint {
            id: "we_1".into(),
            tenant_id: TenantId::from_db("ten_1".into()),
            mode: Mode::Live,
            url: "https://hooks.example.com/".into(),
            description: String::new(),
            events: vec![],
            secret: new_secret(),
            previous_secret: Some(new_secret()),
            previous_expires_at: Some(2_000),
            disabled_at: None,
            disabled_reason: None,
            created_at: 0,
        };
        assert_eq!(endpoint.signing_secrets(1_000).len(), 2);
        assert_eq!(endpoint.signing_secrets(2_000).len(), 1);
        let header = signature_header(&endpoint.signing_secrets(1_000), "msg_1", 5, "{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_614_265_330_123), "2021-02-25T15:02:10.123Z");
        assert_eq!(rfc3339(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
    }
}
