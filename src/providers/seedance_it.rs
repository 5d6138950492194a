//! seedance.it.com. Source: `seeds/000_f0b3ccba67403427.txt` (docs/providers.md).
//!
//! - `POST /bytedance/seedance-2.0[/fast]/{text,image}-to-video` with
//!   `{prompt, duration, aspect_ratio, image_url?, webhook_url?}` →
//!   `{job_id, status: "queued", estimated_seconds, cost_credits}`.
//! - `GET /jobs/{job_id}` → `{job_id, status, video_url, duration_seconds, resolution,
//!   credits_consumed, error?}`; `queued`, `completed`, `failed`; anything else is running.
//! - `POST /jobs/{job_id}/cancel` (refunds before completion).
//! - Only 720p output and the ratios 16:9, 9:16, 1:1; no mini model; one input image.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::config::UpstreamConfig;
use crate::providers::capabilities::{Capabilities, Durations, ModelCapabilities};
use crate::providers::upstream::{common_error_text, Auth, Upstream};
use crate::providers::{
    CancelOutcome, Provider, ProviderError, ReportedCost, Submission, SubmitRequest,
    UpstreamStatus, WebhookError,
};
use crate::types::video::{AspectRatio, Model, Resolution};

pub const ID: crate::types::ids::ProviderId = crate::types::ids::ProviderId::SeedanceIt;
pub const NAME: &str = ID.as_str();
pub const DEFAULT_BASE: &str = "https://seedance.it.com/api/v1";

/// This adapter's entry in the registry (`providers::registry`).
pub const ADAPTER: crate::providers::Adapter = crate::providers::Adapter {
    id: ID,
    build: |config| Ok(std::sync::Arc::new(SeedanceIt::new(config)?)),
    upstream_cost,
};

/// What a request costs here, in micro-USD, by this provider's price rule (list prices of the
/// day of its documents; `pricing.upstream_usd_per_second` overrides them), or why it cannot be
/// priced. The routing catalog (`domain::routing::catalog`) asks every provider through this.
pub fn upstream_cost(
    request: &crate::types::video::NewVideo,
    _pricing: &crate::config::PricingConfig,
) -> Result<crate::types::money::MicroUsd, String> {
    use crate::providers::price::{ceil_div, credits as in_credits};
    use crate::types::video::Model;
    // Fast: 194/242/387/484/726 credits for 4/5/8/10/15 s, ceil(48.4 × s) between;
    // standard: ceil(1.2 ×) that; 1 credit = $0.01.
    let seconds = request.seconds.get();
    let fast = match seconds {
        4 => 194,
        5 => 242,
        8 => 387,
        10 => 484,
        15 => 726,
        s => ceil_div(484 * s, 10),
    };
    let credits = match request.model {
        Model::Fast => fast,
        Model::Standard => ceil_div(fast * 12, 10),
        Model::Mini => return Err("has no price for seedance-2.0-mini".into()),
    };
    in_credits(credits)
}

pub struct SeedanceIt {
    upstream: Upstream,
    capabilities: Capabilities,
    poll_interval: Duration,
}

fn model_capabilities(model: Model) -> ModelCapabilities {
    ModelCapabilities {
        model,
        durations: Durations::Range(4, 15),
        resolutions: vec![Resolution::P720],
        aspect_ratios: vec![AspectRatio::R16x9, AspectRatio::R9x16, AspectRatio::R1x1],
        first_frame: true,
        last_frame: false,
        max_reference_images: 0,
        max_reference_videos: 0,
        max_reference_audio: 0,
        audio: false,
        seed: false,
        camera_fixed: false,
    }
}

impl SeedanceIt {
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<SeedanceIt> {
        Ok(SeedanceIt {
            upstream: Upstream::new(NAME, config, DEFAULT_BASE, Auth::Bearer)?,
            capabilities: Capabilities {
                models: vec![
                    model_capabilities(Model::Standard),
                    model_capabilities(Model::Fast),
                ],
            },
            poll_interval: Duration::from_millis(config.poll_interval_ms.unwrap_or(10_000)),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct SubmitBody<'a> {
    pub prompt: &'a str,
    pub duration: i64,
    pub aspect_ratio: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct SubmitAnswer {
    job_id: String,
    estimated_seconds: Option<u64>,
    cost_credits: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct JobAnswer {
    status: String,
    video_url: Option<String>,
    duration_seconds: Option<i64>,
    credits_consumed: Option<i64>,
    error: Option<serde_json::Value>,
}

/// The endpoint for a model and input mode.
pub fn submit_path(model: Model, image_to_video: bool) -> Option<&'static str> {
    Some(match (model, image_to_video) {
        (Model::Fast, false) => "/bytedance/seedance-2.0/fast/text-to-video",
        (Model::Fast, true) => "/bytedance/seedance-2.0/fast/image-to-video",
        (Model::Standard, false) => "/bytedance/seedance-2.0/text-to-video",
        (Model::Standard, true) => "/bytedance/seedance-2.0/image-to-video",
        (Model::Mini, _) => return None,
    })
}

/// The JSON body sent for a request (public for the wire-format tests).
pub fn submit_body<'a>(request: &'a SubmitRequest<'a>) -> SubmitBody<'a> {
    SubmitBody {
        prompt: &request.video.prompt,
        duration: request.video.seconds.get(),
        aspect_ratio: request.video.aspect_ratio.as_str(),
        image_url: request.first_frame_url.as_deref(),
        webhook_url: request.callback_url.as_deref(),
    }
}

fn error_message(error: &Option<serde_json::Value>) -> String {
    match error {
        Some(serde_json::Value::String(text)) => text.chars().take(300).collect(),
        Some(other) => other["message"]
            .as_str()
            .unwrap_or("the upstream failed the job")
            .chars()
            .take(300)
            .collect(),
        None => "the upstream failed the job".into(),
    }
}

#[async_trait::async_trait]
impl Provider for SeedanceIt {
    fn id(&self) -> crate::types::ids::ProviderId {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError> {
        let path = submit_path(request.video.model, request.first_frame_url.is_some()).ok_or_else(
            || {
                ProviderError::Unsupported(format!(
                    "{NAME} does not offer {}",
                    request.video.model.id()
                ))
            },
        )?;
        let body = submit_body(&request);
        let answer = self
            .upstream
            .send(
                self.upstream.request(Method::POST, path).json(&body),
                common_error_text,
            )
            .await?;
        let parsed: SubmitAnswer = answer.json(NAME)?;
        Ok(Submission {
            upstream_id: parsed.job_id,
            estimated: parsed.estimated_seconds.map(Duration::from_secs),
            cost: parsed
                .cost_credits
                .map(|c| ReportedCost::cents("cost_credits", c)),
        })
    }

    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let path = format!("/jobs/{}", urlencode(upstream_id));
        let answer = self
            .upstream
            .send(self.upstream.request(Method::GET, &path), common_error_text)
            .await?;
        let job: JobAnswer = answer.json(NAME)?;
        Ok(match job.status.as_str() {
            "queued" => UpstreamStatus::Queued,
            "completed" => match job.video_url {
                Some(video_url) => UpstreamStatus::Completed {
                    video_url,
                    seconds: job.duration_seconds,
                    cost: job
                        .credits_consumed
                        .map(|c| ReportedCost::cents("credits_consumed", c)),
                },
                None => {
                    return Err(ProviderError::Transient {
                        message: format!("{NAME} reported completion without a video_url"),
                        retry_after: None,
                    })
                }
            },
            "failed" => UpstreamStatus::Failed {
                code: "upstream_failed".into(),
                message: error_message(&job.error),
            },
            "canceled" | "cancelled" => UpstreamStatus::Canceled,
            _ => UpstreamStatus::Running { progress: None },
        })
    }

    async fn cancel(&self, upstream_id: &str) -> Result<CancelOutcome, ProviderError> {
        let path = format!("/jobs/{}/cancel", urlencode(upstream_id));
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

    /// The seed documents `webhook_url`, called when the job finishes.
    fn sends_webhooks(&self) -> bool {
        true
    }

    /// The seed documents no signature: the payload is the job's status object, and the
    /// per-job token in the callback URL is what authenticates it.
    fn webhook_job_id(
        &self,
        _headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<String, WebhookError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| WebhookError::Malformed)?;
        value["job_id"]
            .as_str()
            .map(str::to_string)
            .ok_or(WebhookError::Malformed)
    }
}

/// Percent-encodes an upstream id for use as one path segment.
pub fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ids::VideoId;
    use crate::types::video::{NewVideo, Seconds};

    fn video(json: serde_json::Value) -> NewVideo {
        serde_json::from_value(json).expect("a NewVideo")
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "model": "seedance-2.0-fast", "prompt": "a boat", "seconds": 5, "resolution": "720p",
            "aspect_ratio": "16:9", "inputs": {}, "generate_audio": null, "seed": null,
            "camera_fixed": null, "user": null, "metadata": {}, "webhook_url": null
        })
    }

    #[test]
    fn wire_format_of_text_and_image_requests() {
        let id = VideoId::generate();
        let t2v = video(base());
        let request = SubmitRequest {
            video_id: &id,
            video: &t2v,
            first_frame_url: None,
            callback_url: None,
        };
        assert_eq!(
            serde_json::to_value(submit_body(&request)).expect("json"),
            serde_json::json!({"prompt": "a boat", "duration": 5, "aspect_ratio": "16:9"})
        );
        assert_eq!(
            submit_path(t2v.model, false),
            Some("/bytedance/seedance-2.0/fast/text-to-video")
        );

        let mut i2v_json = base();
        i2v_json["model"] = serde_json::json!("seedance-2.0");
        i2v_json["seconds"] = serde_json::json!(15);
        i2v_json["aspect_ratio"] = serde_json::json!("9:16");
        let i2v = video(i2v_json);
        assert_eq!(i2v.seconds, Seconds::new(15).expect("15"));
        let request = SubmitRequest {
            video_id: &id,
            video: &i2v,
            first_frame_url: Some("https://img.example.com/a.png".into()),
            callback_url: Some("https://gw.example.com/webhooks/providers/seedance-it/tok".into()),
        };
        assert_eq!(
            serde_json::to_value(submit_body(&request)).expect("json"),
            serde_json::json!({
                "prompt": "a boat", "duration": 15, "aspect_ratio": "9:16",
                "image_url": "https://img.example.com/a.png",
                "webhook_url": "https://gw.example.com/webhooks/providers/seedance-it/tok"
            })
        );
        assert_eq!(
            submit_path(i2v.model, true),
            Some("/bytedance/seedance-2.0/image-to-video")
        );
        assert_eq!(submit_path(Model::Mini, false), None);
    }
}
