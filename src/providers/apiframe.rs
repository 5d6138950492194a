//! Apiframe. Sources: `seeds/001_61acd9bc440e59a0.txt` (the Seedance 2.0 parameters and the
//! credit table) and, where it differs or says more, the "Verified" reference in docs/providers.md
//! §2 (Apiframe's OpenAPI in its Node SDK), which this adapter follows.
//!
//! - `POST /v2/videos/generate` with `X-API-Key`, `Idempotency-Key: <gateway video id>` (a
//!   re-submit after a crash finds the same job) and `{prompt, model, seedanceParams:
//!   {duration, resolution, aspect_ratio, start_image?, end_image?, reference_*_urls?,
//!   generate_audio?, seed?, camera_fixed?}, webhookUrl?, webhookEvents?}` → 202
//!   `{jobId, status: "QUEUED"}`.
//! - `GET /v2/jobs/{id}` → `{id, status, progress, result: {videoUrl}, error, creditCost}`;
//!   `QUEUED`, `PROCESSING`, `COMPLETED`, `FAILED`, `CANCELLED`; anything else is running.
//! - No cancel endpoint: the gateway cancels locally and ignores the result.
//! - Errors are `{"error": "..."}`. Webhooks are signed `x-webhook-signature: sha256=<hex
//!   HMAC-SHA256(key = sha256(api key), raw body)>`.
//! - `creditCost` is in Apiframe credits, whose dollar value is not published: it is recorded
//!   as written, without a micro-USD amount.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{Method, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::UpstreamConfig;
use crate::providers::capabilities::{Capabilities, Durations, ModelCapabilities, ALL_RATIOS};
use crate::providers::upstream::{common_error_text, path_segment, Auth, Upstream};
use crate::providers::{
    CancelOutcome, Provider, ProviderError, ReportedCost, Submission, SubmitRequest,
    UpstreamStatus, WebhookError,
};
use crate::types::video::{Model, Resolution};

pub const ID: crate::types::ids::ProviderId = crate::types::ids::ProviderId::Apiframe;
pub const NAME: &str = ID.as_str();
pub const DEFAULT_BASE: &str = "https://api.apiframe.ai";

/// This adapter's entry in the registry (`providers::registry`).
pub const ADAPTER: crate::providers::Adapter = crate::providers::Adapter {
    id: ID,
    build: |config| Ok(std::sync::Arc::new(Apiframe::new(config)?)),
    upstream_cost,
};

/// What a request costs here, in micro-USD, by this provider's price rule (list prices of the
/// day of its documents; `pricing.upstream_usd_per_second` overrides them), or why it cannot be
/// priced. The routing catalog (`domain::routing::catalog`) asks every provider through this.
pub fn upstream_cost(
    request: &crate::types::video::NewVideo,
    pricing: &crate::config::PricingConfig,
) -> Result<crate::types::money::MicroUsd, String> {
    use crate::types::video::Resolution;
    // Credits per second: 480p 1, 720p 2, doubled with a reference video; their dollar value
    // is unpublished (`pricing.apiframe_usd_per_credit`; unset means unpriced).
    let per_credit = pricing
        .apiframe_usd_per_credit
        .as_deref()
        .ok_or("has no known dollar value per credit (set pricing.apiframe_usd_per_credit)")?;
    let per_credit = crate::types::money::MicroUsd::parse_usd(per_credit)
        .ok_or("has an unreadable pricing.apiframe_usd_per_credit")?;
    let per_second = match request.resolution {
        Resolution::P480 => 1,
        Resolution::P720 => 2,
        Resolution::P1080 => return Err("has no price for 1080p".into()),
    } * if request.inputs.reference_video_urls.is_empty() {
        1
    } else {
        2
    };
    per_credit
        .checked_mul(per_second * request.seconds.get())
        .map_err(|e| e.to_string())
}
pub const SUBMIT_PATH: &str = "/v2/videos/generate";
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";

type HmacSha256 = Hmac<Sha256>;

pub struct Apiframe {
    upstream: Upstream,
    capabilities: Capabilities,
    poll_interval: Duration,
    /// `sha256(api key)`, the key Apiframe signs its webhooks with.
    webhook_key: [u8; 32],
}

fn model_capabilities(model: Model) -> ModelCapabilities {
    ModelCapabilities {
        model,
        durations: Durations::Range(4, 15),
        resolutions: vec![Resolution::P480, Resolution::P720],
        aspect_ratios: ALL_RATIOS.to_vec(),
        first_frame: true,
        last_frame: true,
        max_reference_images: 9,
        max_reference_videos: 3,
        max_reference_audio: 3,
        audio: true,
        seed: true,
        camera_fixed: true,
    }
}

impl Apiframe {
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<Apiframe> {
        let upstream = Upstream::new(NAME, config, DEFAULT_BASE, Auth::Header("X-API-Key"))?;
        let webhook_key = Sha256::digest(upstream.key().expose().as_bytes()).into();
        Ok(Apiframe {
            upstream,
            capabilities: Capabilities {
                models: Model::ALL.into_iter().map(model_capabilities).collect(),
            },
            poll_interval: Duration::from_millis(config.poll_interval_ms.unwrap_or(5_000)),
            webhook_key,
        })
    }

    /// The submit call, ready to send (public for the wire-format tests).
    pub fn submit_request(
        &self,
        request: &SubmitRequest<'_>,
    ) -> Result<RequestBuilder, ProviderError> {
        let body = submit_body(request)?;
        Ok(self
            .upstream
            .request(Method::POST, SUBMIT_PATH)
            .header("Idempotency-Key", request.video_id.as_str())
            .json(&body))
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitBody<'a> {
    pub prompt: &'a str,
    pub model: &'static str,
    pub seedance_params: SeedanceParams<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_events: Option<[&'static str; 2]>,
}

#[derive(Debug, Serialize)]
pub struct SeedanceParams<'a> {
    pub duration: i64,
    pub resolution: &'static str,
    pub aspect_ratio: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_image: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reference_image_urls: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reference_video_urls: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reference_audio_urls: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_audio: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_fixed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubmitAnswer {
    job_id: String,
}

/// A job as `GET /v2/jobs/{id}` reports it. Fields beyond `status` are read leniently: an odd
/// `progress` or `creditCost` must not fail the poll.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobAnswer {
    status: String,
    progress: Option<Value>,
    result: Option<Value>,
    error: Option<Value>,
    credit_cost: Option<Value>,
}

/// Apiframe's model id for a Seedance model.
pub fn model_id(model: Model) -> &'static str {
    match model {
        Model::Standard => "seedance-2",
        Model::Fast => "seedance-2-fast",
        Model::Mini => "seedance-2-mini",
    }
}

/// The JSON body sent for a request (public for the wire-format tests).
pub fn submit_body<'a>(request: &'a SubmitRequest<'a>) -> Result<SubmitBody<'a>, ProviderError> {
    let video = request.video;
    let resolution = match video.resolution {
        Resolution::P480 | Resolution::P720 => video.resolution.as_str(),
        Resolution::P1080 => {
            return Err(ProviderError::Unsupported(format!(
                "{NAME} does not offer {}",
                video.resolution.as_str()
            )))
        }
    };
    let urls = |list: &'a [crate::types::video::MediaUrl]| {
        list.iter().map(|u| u.as_str()).collect::<Vec<_>>()
    };
    Ok(SubmitBody {
        prompt: &video.prompt,
        model: model_id(video.model),
        seedance_params: SeedanceParams {
            duration: video.seconds.get(),
            resolution,
            aspect_ratio: video.aspect_ratio.as_str(),
            start_image: request.first_frame_url.as_deref(),
            end_image: video.inputs.last_frame_url.as_ref().map(|u| u.as_str()),
            reference_image_urls: urls(&video.inputs.reference_image_urls),
            reference_video_urls: urls(&video.inputs.reference_video_urls),
            reference_audio_urls: urls(&video.inputs.reference_audio_urls),
            generate_audio: video.generate_audio,
            seed: video.seed,
            camera_fixed: video.camera_fixed,
        },
        webhook_url: request.callback_url.as_deref(),
        // Progress events would only wake the gateway to poll a job that is not done.
        webhook_events: request
            .callback_url
            .as_ref()
            .map(|_| ["completed", "failed"]),
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

/// `creditCost` as written: a whole or decimal number of Apiframe credits.
fn credit_cost(value: Option<&Value>) -> Option<ReportedCost> {
    let raw = match value? {
        Value::Number(n) => n.to_string(),
        Value::String(s)
            if !s.is_empty()
                && s.len() <= 20
                && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            s.clone()
        }
        _ => return None,
    };
    Some(ReportedCost {
        raw: format!("creditCost={raw}"),
        micro_usd: None,
    })
}

fn progress(value: Option<&Value>) -> Option<i64> {
    value?
        .as_f64()
        .filter(|p| p.is_finite())
        .map(|p| p.round().clamp(0.0, 100.0) as i64)
}

/// Maps a job to the gateway lifecycle.
fn job_status(job: JobAnswer) -> Result<UpstreamStatus, ProviderError> {
    Ok(match job.status.to_ascii_uppercase().as_str() {
        "QUEUED" => UpstreamStatus::Queued,
        "PROCESSING" => UpstreamStatus::Running {
            progress: progress(job.progress.as_ref()),
        },
        "COMPLETED" => {
            let video_url = job
                .result
                .as_ref()
                .and_then(|r| r["videoUrl"].as_str())
                .filter(|u| !u.is_empty());
            match video_url {
                Some(url) => UpstreamStatus::Completed {
                    video_url: url.to_string(),
                    seconds: None,
                    cost: credit_cost(job.credit_cost.as_ref()),
                },
                None => {
                    return Err(ProviderError::Transient {
                        message: format!("{NAME} reported completion without result.videoUrl"),
                        retry_after: None,
                    })
                }
            }
        }
        "FAILED" => UpstreamStatus::Failed {
            code: "upstream_failed".into(),
            message: error_message(job.error.as_ref()),
        },
        "CANCELLED" | "CANCELED" => UpstreamStatus::Canceled,
        _ => UpstreamStatus::Running {
            progress: progress(job.progress.as_ref()),
        },
    })
}

/// Checks `x-webhook-signature` (`sha256=<hex>`, or the bare hex) against the body, in
/// constant time.
fn verify_signature(key: &[u8], signature: &str, body: &[u8]) -> Result<(), WebhookError> {
    let trimmed = signature.trim();
    let hex_part = trimmed.strip_prefix("sha256=").unwrap_or(trimmed);
    let provided = hex::decode(hex_part).map_err(|_| WebhookError::BadSignature)?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| WebhookError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&provided)
        .map_err(|_| WebhookError::BadSignature)
}

#[async_trait::async_trait]
impl Provider for Apiframe {
    fn id(&self) -> crate::types::ids::ProviderId {
        ID
    }

    /// Submits carry `Idempotency-Key: <video id>`: a repeat returns the same job.
    fn idempotent_submits(&self) -> bool {
        true
    }

    fn client_reference(&self, video: &crate::types::ids::VideoId) -> Option<String> {
        Some(video.as_str().to_string())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError> {
        let answer = self
            .upstream
            .send(self.submit_request(&request)?, common_error_text)
            .await?;
        let parsed: SubmitAnswer = answer.json(NAME)?;
        Ok(Submission {
            upstream_id: parsed.job_id,
            estimated: None,
            cost: None,
        })
    }

    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let path = format!("/v2/jobs/{}", path_segment(upstream_id));
        let answer = self
            .upstream
            .send(self.upstream.request(Method::GET, &path), common_error_text)
            .await?;
        job_status(answer.json(NAME)?)
    }

    /// Apiframe has no cancel endpoint.
    async fn cancel(&self, _upstream_id: &str) -> Result<CancelOutcome, ProviderError> {
        Ok(CancelOutcome::Unsupported)
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Apiframe signs its webhooks with the account key (verified below).
    fn sends_webhooks(&self) -> bool {
        true
    }

    fn webhook_job_id(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<String, WebhookError> {
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::BadSignature)?;
        verify_signature(&self.webhook_key, signature, body)?;
        let value: Value = serde_json::from_slice(body).map_err(|_| WebhookError::Malformed)?;
        value["jobId"]
            .as_str()
            .or_else(|| value["id"].as_str())
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or(WebhookError::Malformed)
    }

    /// The signature covers the body alone, with no timestamp or delivery id, so a captured
    /// delivery would verify forever: the body's SHA-256 identifies it.
    fn webhook_delivery_id(&self, _headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
        Some(format!("sha256:{}", hex::encode(Sha256::digest(body))))
    }
}

#[cfg(test)]
mod tests;
