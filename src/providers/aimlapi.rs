//! AI/ML API. Sources: `seeds/004_03dbf6f30e4fceb5.txt` and the "Verified" reference of
//! docs/providers.md (AI/ML API's own docs), which this adapter follows where they differ.
//!
//! - `POST /v2/video/generations` with `{model, prompt, image_url?, last_image_url?,
//!   image_urls?, video_urls?, audio_urls?, aspect_ratio, resolution, duration,
//!   generate_audio?, seed?, watermark: false}` → `{id, status}` (the seed's older endpoint
//!   answers `{task_id}`; either is accepted).
//! - `GET /v2/video/generations?generation_id=ID` → `{id, status, video: {url},
//!   error: {name, message}, meta: {usage: {credits_used, usd_spent}}}`; statuses `queued`,
//!   `generating`, `completed`, `error`; anything else is running.
//! - No cancel and no webhook: jobs are polled, and a cancel is local.
//! - `usd_spent` is a JSON number of dollars, converted exactly from its decimal text.
//!
//! All three models, 4-15 s (the seed's 10 s cap belongs to its older endpoint), 480p-1080p
//! for the standard model and 480p-720p for Fast and Mini (the API reference; the seed page
//! says 1080p for Fast, and where sources disagree the narrower claim is kept),
//! every ratio but `adaptive`, first and last frame, 9 reference images, 3 videos, 3 audio
//! clips, audio generation and seed.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::config::UpstreamConfig;
use crate::providers::capabilities::{Capabilities, Durations, ModelCapabilities};
use crate::providers::upstream::{common_error_text, Auth, Upstream};
use crate::providers::{
    CancelOutcome, Provider, ProviderError, ReportedCost, Submission, SubmitRequest,
    UpstreamStatus, WebhookError,
};
use crate::types::money::MicroUsd;
use crate::types::video::{AspectRatio, Model, Resolution};

pub const ID: crate::types::ids::ProviderId = crate::types::ids::ProviderId::AimlApi;
pub const NAME: &str = ID.as_str();
pub const DEFAULT_BASE: &str = "https://api.aimlapi.com";

/// This adapter's entry in the registry (`providers::registry`).
pub const ADAPTER: crate::providers::Adapter = crate::providers::Adapter {
    id: ID,
    build: |config| Ok(std::sync::Arc::new(AimlApi::new(config)?)),
    upstream_cost,
};

/// What a request costs here, in micro-USD, by this provider's price rule (list prices of the
/// day of its documents; `pricing.upstream_usd_per_second` overrides them), or why it cannot be
/// priced. The routing catalog (`domain::routing::catalog`) asks every provider through this.
pub fn upstream_cost(
    request: &crate::types::video::NewVideo,
    _pricing: &crate::config::PricingConfig,
) -> Result<crate::types::money::MicroUsd, String> {
    // Fast $0.10 per second, standard $0.25; Mini unpublished (unpriced).
    match request.model {
        crate::types::video::Model::Fast => {
            crate::providers::price::per_second(100_000, request.seconds.get())
        }
        crate::types::video::Model::Standard => {
            crate::providers::price::per_second(250_000, request.seconds.get())
        }
        crate::types::video::Model::Mini => {
            Err("has no published price for seedance-2.0-mini".into())
        }
    }
}
/// Submit (POST) and poll (GET with `generation_id`) share one path.
pub const GENERATIONS_PATH: &str = "/v2/video/generations";

pub struct AimlApi {
    upstream: Upstream,
    capabilities: Capabilities,
    poll_interval: Duration,
}

fn model_capabilities(model: Model) -> ModelCapabilities {
    ModelCapabilities {
        model,
        durations: Durations::Range(4, 15),
        // The API reference allows 1080p for the standard model only, 480p | 720p for Fast
        // and Mini; the seed page claims 1080p for Fast. The narrower claim is kept.
        resolutions: match model {
            Model::Standard => vec![Resolution::P480, Resolution::P720, Resolution::P1080],
            Model::Fast | Model::Mini => vec![Resolution::P480, Resolution::P720],
        },
        aspect_ratios: vec![
            AspectRatio::R21x9,
            AspectRatio::R16x9,
            AspectRatio::R4x3,
            AspectRatio::R1x1,
            AspectRatio::R3x4,
            AspectRatio::R9x16,
        ],
        first_frame: true,
        last_frame: true,
        max_reference_images: 9,
        max_reference_videos: 3,
        max_reference_audio: 3,
        audio: true,
        seed: true,
        camera_fixed: false,
    }
}

impl AimlApi {
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<AimlApi> {
        Ok(AimlApi {
            upstream: Upstream::new(NAME, config, DEFAULT_BASE, Auth::Bearer)?,
            capabilities: Capabilities {
                models: Model::ALL.into_iter().map(model_capabilities).collect(),
            },
            poll_interval: Duration::from_millis(config.poll_interval_ms.unwrap_or(10_000)),
        })
    }

    /// An upstream text made safe to show a client: printable, short, and without the key.
    fn clean(&self, text: &str) -> String {
        let cleaned: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        cleaned.replace(self.upstream.key().expose(), "[redacted]")
    }
}

#[derive(Debug, Serialize)]
pub struct SubmitBody<'a> {
    pub model: &'static str,
    pub prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_image_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_urls: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub video_urls: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audio_urls: Vec<&'a str>,
    pub aspect_ratio: &'static str,
    pub resolution: &'static str,
    pub duration: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_audio: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    pub watermark: bool,
}

/// The provider's id for a model.
pub fn model_id(model: Model) -> &'static str {
    match model {
        Model::Standard => "bytedance/seedance-2-0",
        Model::Fast => "bytedance/seedance-2-0-fast",
        Model::Mini => "bytedance/dreamina-seedance-2-0-mini",
    }
}

/// The JSON body sent for a request (public for the wire-format tests). No callback is sent:
/// the provider has no webhook.
pub fn submit_body<'a>(request: &'a SubmitRequest<'a>) -> SubmitBody<'a> {
    let video = request.video;
    let inputs = &video.inputs;
    SubmitBody {
        model: model_id(video.model),
        prompt: &video.prompt,
        image_url: request.first_frame_url.as_deref(),
        last_image_url: inputs.last_frame_url.as_ref().map(|u| u.as_str()),
        image_urls: inputs
            .reference_image_urls
            .iter()
            .map(|u| u.as_str())
            .collect(),
        video_urls: inputs
            .reference_video_urls
            .iter()
            .map(|u| u.as_str())
            .collect(),
        audio_urls: inputs
            .reference_audio_urls
            .iter()
            .map(|u| u.as_str())
            .collect(),
        aspect_ratio: video.aspect_ratio.as_str(),
        resolution: video.resolution.as_str(),
        duration: video.seconds.get(),
        generate_audio: video.generate_audio,
        seed: video.seed,
        watermark: false,
    }
}

/// A number or string as the provider wrote it, bounded in length.
fn field_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Number(number) => number.to_string(),
        Value::String(text) if !text.trim().is_empty() => text.trim().to_string(),
        _ => return None,
    };
    Some(text.chars().take(64).collect())
}

/// The cost in `meta.usage`: `usd_spent` converted exactly from its decimal text (never through
/// floating point), else `credits_used` as written, with no dollar value.
pub fn reported_cost(usage: &Value) -> Option<ReportedCost> {
    if let Some(text) = field_text(&usage["usd_spent"]) {
        return Some(ReportedCost {
            micro_usd: MicroUsd::parse_usd(&text).filter(|m| !m.is_negative()),
            raw: format!("usd_spent={text}"),
        });
    }
    field_text(&usage["credits_used"]).map(|text| ReportedCost {
        raw: format!("credits_used={text}"),
        micro_usd: None,
    })
}

/// The generation id, under whichever name the answer uses.
fn generation_id(answer: &Value) -> Option<String> {
    ["id", "generation_id", "task_id"]
        .into_iter()
        .find_map(|field| match &answer[field] {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
}

#[async_trait::async_trait]
impl Provider for AimlApi {
    fn id(&self) -> crate::types::ids::ProviderId {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError> {
        let body = submit_body(&request);
        let answer = self
            .upstream
            .send(
                self.upstream
                    .request(Method::POST, GENERATIONS_PATH)
                    .json(&body),
                common_error_text,
            )
            .await?;
        let parsed: Value = answer.json(NAME)?;
        let upstream_id = generation_id(&parsed).ok_or_else(|| ProviderError::Transient {
            message: format!("{NAME} accepted the request without a generation id"),
            retry_after: None,
        })?;
        Ok(Submission {
            upstream_id,
            estimated: None,
            cost: None,
        })
    }

    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let answer = self
            .upstream
            .send(
                self.upstream
                    .request(Method::GET, GENERATIONS_PATH)
                    .query(&[("generation_id", upstream_id)]),
                common_error_text,
            )
            .await?;
        self.status_of(&answer.json(NAME)?)
    }

    async fn cancel(&self, _upstream_id: &str) -> Result<CancelOutcome, ProviderError> {
        Ok(CancelOutcome::Unsupported)
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn webhook_job_id(
        &self,
        _headers: &http::HeaderMap,
        _body: &[u8],
    ) -> Result<String, WebhookError> {
        Err(WebhookError::Unsupported)
    }
}

impl AimlApi {
    /// Maps a generation to the gateway lifecycle.
    fn status_of(&self, job: &Value) -> Result<UpstreamStatus, ProviderError> {
        let Some(status) = job["status"].as_str() else {
            return Err(ProviderError::Transient {
                message: format!("{NAME} sent a generation without a status"),
                retry_after: None,
            });
        };
        Ok(match status {
            "queued" => UpstreamStatus::Queued,
            "generating" => UpstreamStatus::Running { progress: None },
            "completed" => {
                // The seed's older endpoint put the URL in `video_url`.
                let url = job["video"]["url"]
                    .as_str()
                    .or_else(|| job["video_url"].as_str())
                    .filter(|u| !u.is_empty());
                match url {
                    Some(video_url) => UpstreamStatus::Completed {
                        video_url: video_url.to_string(),
                        seconds: None,
                        cost: reported_cost(&job["meta"]["usage"]),
                    },
                    None => {
                        return Err(ProviderError::Transient {
                            message: format!("{NAME} reported completion without a video URL"),
                            retry_after: None,
                        })
                    }
                }
            }
            "error" => {
                let error = &job["error"];
                let message = error["message"]
                    .as_str()
                    .or_else(|| error["name"].as_str())
                    .or_else(|| error.as_str())
                    .filter(|m| !m.trim().is_empty())
                    .map(|m| self.clean(m))
                    .unwrap_or_else(|| "the upstream failed the job".into());
                UpstreamStatus::Failed {
                    code: "upstream_failed".into(),
                    message,
                }
            }
            _ => UpstreamStatus::Running { progress: None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ids::VideoId;
    use crate::types::video::NewVideo;
    use serde_json::json;

    fn with(changes: Value) -> NewVideo {
        let mut video = json!({
            "model": "seedance-2.0", "prompt": "a boat", "seconds": 5, "resolution": "720p",
            "aspect_ratio": "16:9", "inputs": {}, "generate_audio": null, "seed": null,
            "camera_fixed": null, "user": null, "metadata": {}, "webhook_url": null
        });
        if let (Some(target), Some(changes)) = (video.as_object_mut(), changes.as_object()) {
            for (key, value) in changes {
                target.insert(key.clone(), value.clone());
            }
        }
        serde_json::from_value(video).expect("a NewVideo")
    }

    #[test]
    fn wire_format_of_normalized_requests() {
        let id = VideoId::generate();
        let cases: Vec<(&str, NewVideo, Option<&str>, Value)> = vec![
            (
                "text to video, standard",
                with(json!({})),
                None,
                json!({"model": "bytedance/seedance-2-0", "prompt": "a boat",
                       "aspect_ratio": "16:9", "resolution": "720p", "duration": 5,
                       "watermark": false}),
            ),
            (
                "first and last frame, fast",
                with(
                    json!({"model": "seedance-2.0-fast", "seconds": 12, "resolution": "1080p",
                            "aspect_ratio": "21:9", "inputs": {
                    "first_frame_url": "https://img.example.com/a.png",
                    "last_frame_url": "https://img.example.com/z.png"}}),
                ),
                Some("https://img.example.com/a.png"),
                json!({"model": "bytedance/seedance-2-0-fast", "prompt": "a boat",
                       "image_url": "https://img.example.com/a.png",
                       "last_image_url": "https://img.example.com/z.png",
                       "aspect_ratio": "21:9", "resolution": "1080p", "duration": 12,
                       "watermark": false}),
            ),
            (
                "references, mini",
                with(
                    json!({"model": "seedance-2.0-mini", "seconds": 4, "resolution": "480p",
                            "aspect_ratio": "9:16", "inputs": {
                    "reference_image_urls": ["https://img.example.com/r1.png"],
                    "reference_video_urls": ["https://cdn.example.com/v.mp4"],
                    "reference_audio_urls": ["https://cdn.example.com/a.mp3"]}}),
                ),
                None,
                json!({"model": "bytedance/dreamina-seedance-2-0-mini", "prompt": "a boat",
                       "image_urls": ["https://img.example.com/r1.png"],
                       "video_urls": ["https://cdn.example.com/v.mp4"],
                       "audio_urls": ["https://cdn.example.com/a.mp3"],
                       "aspect_ratio": "9:16", "resolution": "480p", "duration": 4,
                       "watermark": false}),
            ),
            (
                "audio and seed",
                with(json!({"generate_audio": true, "seed": 42, "seconds": 15,
                            "aspect_ratio": "1:1"})),
                None,
                json!({"model": "bytedance/seedance-2-0", "prompt": "a boat",
                       "aspect_ratio": "1:1", "resolution": "720p", "duration": 15,
                       "generate_audio": true, "seed": 42, "watermark": false}),
            ),
        ];
        for (what, video, first_frame, expected) in cases {
            let request = SubmitRequest {
                video_id: &id,
                video: &video,
                first_frame_url: first_frame.map(str::to_string),
                // Never forwarded: the provider has no webhook.
                callback_url: Some("https://gw.example.com/webhooks/providers/aimlapi/t".into()),
            };
            assert_eq!(
                serde_json::to_value(submit_body(&request)).expect("json"),
                expected,
                "{what}"
            );
        }
        assert_eq!(GENERATIONS_PATH, "/v2/video/generations");
    }

    #[test]
    fn usd_spent_converts_exactly_from_its_decimal_text() {
        let usage: Value =
            serde_json::from_str(r#"{"credits_used": 735000, "usd_spent": 0.35}"#).expect("json");
        assert_eq!(
            reported_cost(&usage),
            Some(ReportedCost {
                raw: "usd_spent=0.35".into(),
                micro_usd: Some(MicroUsd::from_stored(350_000)),
            })
        );
        let usage: Value = serde_json::from_str(r#"{"usd_spent": 2.1}"#).expect("json");
        assert_eq!(
            reported_cost(&usage)
                .and_then(|c| c.micro_usd)
                .map(MicroUsd::get),
            Some(2_100_000)
        );
        let usage: Value = serde_json::from_str(r#"{"usd_spent": "0.05"}"#).expect("json");
        assert_eq!(
            reported_cost(&usage)
                .and_then(|c| c.micro_usd)
                .map(MicroUsd::get),
            Some(50_000)
        );
    }

    #[test]
    fn every_documented_status_is_mapped_and_unknown_ones_are_running() {
        let config = UpstreamConfig {
            api_key: Some(crate::config::Secret::new("sk-test-secret")),
            ..UpstreamConfig::default()
        };
        let provider = AimlApi::new(&config).expect("provider");
        let status = |job: Value| provider.status_of(&job);
        assert_eq!(
            status(json!({"id": "g", "status": "queued"})).expect("ok"),
            UpstreamStatus::Queued
        );
        assert_eq!(
            status(json!({"id": "g", "status": "generating"})).expect("ok"),
            UpstreamStatus::Running { progress: None }
        );
        let done: Value = serde_json::from_str(
            r#"{"id": "g", "status": "completed", "video": {"url": "https://cdn.example.com/g.mp4"},
                "meta": {"usage": {"credits_used": 1050000, "usd_spent": 0.5}}}"#,
        )
        .expect("json");
        assert_eq!(
            status(done).expect("ok"),
            UpstreamStatus::Completed {
                video_url: "https://cdn.example.com/g.mp4".into(),
                seconds: None,
                cost: Some(ReportedCost {
                    raw: "usd_spent=0.5".into(),
                    micro_usd: Some(MicroUsd::from_stored(500_000)),
                }),
            }
        );
        assert_eq!(
            status(
                json!({"status": "error", "error": {"name": "ModerationError",
                                                       "message": "flagged sk-test-secret"}})
            )
            .expect("ok"),
            UpstreamStatus::Failed {
                code: "upstream_failed".into(),
                message: "flagged [redacted]".into(),
            }
        );
        assert_eq!(
            status(json!({"status": "error"})).expect("ok"),
            UpstreamStatus::Failed {
                code: "upstream_failed".into(),
                message: "the upstream failed the job".into(),
            }
        );
        assert_eq!(
            status(json!({"status": "waiting"})).expect("ok"),
            UpstreamStatus::Running { progress: None }
        );
        assert!(status(json!({"status": "completed", "video": {}})).is_err());
        assert!(status(json!({"id": "g"})).is_err());
        assert!(status(json!("completed")).is_err());
    }

    #[test]
    fn credits_without_dollars_are_kept_as_written() {
        assert_eq!(
            reported_cost(&json!({"credits_used": 1200})),
            Some(ReportedCost {
                raw: "credits_used=1200".into(),
                micro_usd: None,
            })
        );
        assert_eq!(reported_cost(&json!({})), None);
        assert_eq!(reported_cost(&Value::Null), None);
    }

    #[test]
    fn the_generation_id_is_read_from_either_field() {
        assert_eq!(
            generation_id(&json!({"id": "gen-1", "status": "queued"})).as_deref(),
            Some("gen-1")
        );
        assert_eq!(
            generation_id(&json!({"task_id": "t-2"})).as_deref(),
            Some("t-2")
        );
        assert_eq!(generation_id(&json!({"status": "queued"})), None);
    }
}
