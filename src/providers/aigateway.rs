//! AIgateway. Sources: `seeds/002_83616a9ad3071fb5.txt` (the model page: body, answer,
//! errors) and, where it differs or says more, the "Verified" reference of docs/providers.md
//! (AIgateway's async-jobs docs), which this adapter follows.
//!
//! - `POST /v1/videos/generations` with a Bearer key and `{model, prompt, duration,
//!   aspect_ratio, webhook_url?}` → 202 `{id: "job_...", status: "queued", model, created}`.
//!   One model: `bytedance/seedance-2.0-fast`, the only one the seed names (the standard
//!   model is not offered there: asking for it is a 404 "Unknown model").
//! - `GET /v1/jobs/{id}`: `queued`, `processing` / `running`, `completed` (with `result: {url
//!   | file_url, duration, resolution}`), `failed`, `cancelled`; anything else is running.
//!   Polling a job again within 3 s answers 304, read as "still running".
//! - `POST /v1/jobs/{id}/cancel`.
//! - Errors are `{error: {message, type}}`: 401, 402, 404 (unknown model), 429 with
//!   `Retry-After`, 500 and 503.
//! - Webhooks are signed `X-Gateway-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
//!   "<t>.<body>")>` with the account's signing secret (`webhook_secret` in the config);
//!   AIgateway's webhooks page names the same scheme as `aig-signature` + `aig-timestamp`
//!   headers, which are accepted too. Deliveries older than 5 minutes are refused. Without a
//!   configured secret no `webhook_url` is sent, since nothing could verify the callbacks.
//! - Conservative capabilities: the seed documents no resolution parameter (its example
//!   result even says 1920x1080), no image field (its page is "Text To Video"), no last
//!   frame, references, audio, seed or fixed camera, so only text-to-video at 720p is
//!   offered, and no field the documents do not name is ever sent.
//! - No cost is reported in any answer; the price is the catalog's.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::config::{Secret, UpstreamConfig};
use crate::providers::capabilities::{Capabilities, Durations, ModelCapabilities};
use crate::providers::upstream::{common_error_text, path_segment, Auth, Upstream};
use crate::providers::{
    CancelOutcome, Provider, ProviderError, Submission, SubmitRequest, UpstreamStatus, WebhookError,
};
use crate::types::video::{AspectRatio, Model, Resolution};

pub const ID: crate::types::ids::ProviderId = crate::types::ids::ProviderId::AiGateway;
pub const NAME: &str = ID.as_str();
pub const DEFAULT_BASE: &str = "https://api.aigateway.sh";

/// This adapter's entry in the registry (`providers::registry`).
pub const ADAPTER: crate::providers::Adapter = crate::providers::Adapter {
    id: ID,
    build: |config| Ok(std::sync::Arc::new(AiGateway::new(config)?)),
    upstream_cost,
};

/// What a request costs here, in micro-USD, by this provider's price rule (list prices of the
/// day of its documents; `pricing.upstream_usd_per_second` overrides them), or why it cannot be
/// priced. The routing catalog (`domain::routing::catalog`) asks every provider through this.
pub fn upstream_cost(
    request: &crate::types::video::NewVideo,
    _pricing: &crate::config::PricingConfig,
) -> Result<crate::types::money::MicroUsd, String> {
    // Fast only: $0.011 per second, plus 5% at top-up: $0.01155 per second.
    match request.model {
        crate::types::video::Model::Fast => {
            crate::providers::price::per_second(11_550, request.seconds.get())
        }
        other => Err(format!("does not offer {}", other.id())),
    }
}
pub const SUBMIT_PATH: &str = "/v1/videos/generations";
pub const SIGNATURE_HEADER: &str = "x-gateway-signature";
/// AIgateway answers 304 to a poll of the same job sooner than this.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(3);
/// How old a signed webhook may be before it is taken for a replay.
pub const WEBHOOK_TOLERANCE_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

pub struct AiGateway {
    upstream: Upstream,
    capabilities: Capabilities,
    poll_interval: Duration,
    min_poll_interval: Duration,
    webhook_secret: Option<Secret>,
}

fn model_capabilities(model: Model) -> ModelCapabilities {
    ModelCapabilities {
        model,
        durations: Durations::Range(4, 15),
        resolutions: vec![Resolution::P720],
        aspect_ratios: vec![
            AspectRatio::R16x9,
            AspectRatio::R9x16,
            AspectRatio::R1x1,
            AspectRatio::R4x3,
            AspectRatio::R3x4,
            AspectRatio::R21x9,
        ],
        first_frame: false,
        last_frame: false,
        max_reference_images: 0,
        max_reference_videos: 0,
        max_reference_audio: 0,
        audio: false,
        seed: false,
        camera_fixed: false,
    }
}

impl AiGateway {
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<AiGateway> {
        let configured = config.poll_interval_ms.map(Duration::from_millis);
        Ok(AiGateway {
            upstream: Upstream::new(NAME, config, DEFAULT_BASE, Auth::Bearer)?,
            capabilities: Capabilities {
                models: vec![model_capabilities(Model::Fast)],
            },
            poll_interval: configured.unwrap_or(Duration::from_secs(5)),
            // An operator who sets a shorter interval gets 304s, which read as "running".
            min_poll_interval: configured.map_or(MIN_POLL_INTERVAL, |c| c.min(MIN_POLL_INTERVAL)),
            webhook_secret: config.webhook_secret.clone(),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct SubmitBody<'a> {
    pub model: &'static str,
    pub prompt: &'a str,
    pub duration: i64,
    pub aspect_ratio: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct SubmitAnswer {
    id: String,
}

/// A job as `GET /v1/jobs/{id}` reports it, read leniently beyond `status`.
#[derive(Debug, Deserialize)]
struct JobAnswer {
    status: String,
    result: Option<Value>,
    error: Option<Value>,
    progress: Option<Value>,
}

/// AIgateway's model slug for a Seedance model.
pub fn model_id(model: Model) -> Option<&'static str> {
    match model {
        Model::Fast => Some("bytedance/seedance-2.0-fast"),
        Model::Standard | Model::Mini => None,
    }
}

/// The JSON body sent for a request (public for the wire-format tests). `webhooks` says
/// whether the gateway can verify AIgateway's callbacks, i.e. has its signing secret.
pub fn submit_body<'a>(
    request: &'a SubmitRequest<'a>,
    webhooks: bool,
) -> Result<SubmitBody<'a>, ProviderError> {
    let video = request.video;
    let model = model_id(video.model).ok_or_else(|| {
        ProviderError::Unsupported(format!("{NAME} does not offer {}", video.model.id()))
    })?;
    Ok(SubmitBody {
        model,
        prompt: &video.prompt,
        duration: video.seconds.get(),
        aspect_ratio: video.aspect_ratio.as_str(),
        webhook_url: request.callback_url.as_deref().filter(|_| webhooks),
    })
}

/// Printable, short text from an upstream's own words.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

fn error_message(error: Option<&Value>) -> String {
    let text = match error {
        Some(Value::String(text)) => Some(text.as_str()),
        Some(other) => other["message"].as_str(),
        None => None,
    };
    clean(text.unwrap_or("the upstream failed the job"))
}

fn progress(value: Option<&Value>) -> Option<i64> {
    value?
        .as_f64()
        .filter(|p| p.is_finite())
        .map(|p| p.round().clamp(0.0, 100.0) as i64)
}

/// Maps a job to the gateway lifecycle.
fn job_status(job: JobAnswer) -> Result<UpstreamStatus, ProviderError> {
    Ok(match job.status.to_ascii_lowercase().as_str() {
        "queued" => UpstreamStatus::Queued,
        "completed" => {
            let result = job.result.unwrap_or(Value::Null);
            let url = result["url"]
                .as_str()
                .or_else(|| result["file_url"].as_str())
                .filter(|u| !u.is_empty());
            let Some(url) = url else {
                return Err(ProviderError::Transient {
                    message: format!("{NAME} reported completion without result.url"),
                    retry_after: None,
                });
            };
            let seconds = result["duration"]
                .as_f64()
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| d.round() as i64);
            UpstreamStatus::Completed {
                video_url: url.to_string(),
                seconds,
                cost: None,
            }
        }
        "failed" => UpstreamStatus::Failed {
            code: "upstream_failed".into(),
            message: error_message(job.error.as_ref()),
        },
        "cancelled" | "canceled" => UpstreamStatus::Canceled,
        // `processing`, `running`, and anything new.
        _ => UpstreamStatus::Running {
            progress: progress(job.progress.as_ref()),
        },
    })
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks a webhook's signature and age. The signed text is `"<t>.<raw body>"`, `t` exactly
/// as sent; any one `v1` that matches is enough (a rotating secret may send two).
fn verify_signature(
    secret: &[u8],
    headers: &http::HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<(), WebhookError> {
    let (timestamp, signatures): (&str, Vec<&str>) = match header(headers, SIGNATURE_HEADER) {
        Some(value) => {
            let mut timestamp = None;
            let mut signatures = Vec::new();
            for part in value.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", t)) => timestamp = Some(t),
                    Some(("v1", v)) => signatures.push(v),
                    _ => {}
                }
            }
            (timestamp.ok_or(WebhookError::BadSignature)?, signatures)
        }
        None => (
            header(headers, "aig-timestamp").ok_or(WebhookError::BadSignature)?,
            header(headers, "aig-signature")
                .map(|s| vec![s.trim().trim_start_matches("v1=")])
                .unwrap_or_default(),
        ),
    };
    let sent_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadSignature)?;
    if now_unix.abs_diff(sent_at) > WEBHOOK_TOLERANCE_SECS {
        return Err(WebhookError::BadSignature);
    }
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let valid = signatures.iter().any(|candidate| {
        hex::decode(candidate.trim())
            .is_ok_and(|provided| mac.clone().verify_slice(&provided).is_ok())
    });
    if valid {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

fn now_unix() -> i64 {
    crate::clock::now_ms().div_euclid(1000)
}

#[async_trait::async_trait]
impl Provider for AiGateway {
    fn id(&self) -> crate::types::ids::ProviderId {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError> {
        let body = submit_body(&request, self.webhook_secret.is_some())?;
        let answer = self
            .upstream
            .send(
                self.upstream.request(Method::POST, SUBMIT_PATH).json(&body),
                common_error_text,
            )
            .await?;
        let parsed: SubmitAnswer = answer.json(NAME)?;
        Ok(Submission {
            upstream_id: parsed.id,
            estimated: None,
            cost: None,
        })
    }

    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let path = format!("/v1/jobs/{}", path_segment(upstream_id));
        let answer = self
            .upstream
            .send_accepting(
                self.upstream.request(Method::GET, &path),
                common_error_text,
                &[StatusCode::NOT_MODIFIED],
            )
            .await?;
        if answer.status == StatusCode::NOT_MODIFIED {
            // Polled too soon: nothing new since the last answer.
            return Ok(UpstreamStatus::Running { progress: None });
        }
        job_status(answer.json(NAME)?)
    }

    async fn cancel(&self, upstream_id: &str) -> Result<CancelOutcome, ProviderError> {
        let path = format!("/v1/jobs/{}/cancel", path_segment(upstream_id));
        self.upstream
            .send(
                self.upstream.request(Method::POST, &path),
                common_error_text,
            )
            .await?;
        Ok(CancelOutcome::Canceled)
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn min_poll_interval(&self) -> Duration {
        self.min_poll_interval
    }

    /// Only with the signing secret: without it the gateway hands AIgateway no webhook URL.
    fn sends_webhooks(&self) -> bool {
        self.webhook_secret.is_some()
    }

    /// The payload is the completed job record (`{id, status, result}`); an account-level
    /// event (`{type, data: {job_id}}`) is read too.
    fn webhook_job_id(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<String, WebhookError> {
        let secret = self
            .webhook_secret
            .as_ref()
            .ok_or(WebhookError::BadSignature)?;
        verify_signature(secret.expose().as_bytes(), headers, body, now_unix())?;
        let value: Value = serde_json::from_slice(body).map_err(|_| WebhookError::Malformed)?;
        value["data"]["job_id"]
            .as_str()
            .or_else(|| value["job_id"].as_str())
            .or_else(|| value["id"].as_str())
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or(WebhookError::Malformed)
    }
}

#[cfg(test)]
mod tests;
