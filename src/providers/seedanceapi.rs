//! seedanceapi.org. Source: `seeds/003_7afcf58364257041.txt` (docs/providers.md).
//!
//! - `POST /v2/generate` with `{model, prompt, duration, resolution, aspect_ratio, images?,
//!   reference_video_urls?, reference_audio_urls?, callback_url?}` → the envelope
//!   `{code, message, data: {task_id, status: "IN_PROGRESS", consumed_credits}}`.
//! - `GET /v2/status?task_id=…` → `data.status` `IN_PROGRESS` | `SUCCESS` | `FAILED`, the video
//!   in `data.response[0]`, the reason in `data.error_message`; anything else is running.
//! - Errors carry `{code, message}` (`INVALID_PROMPT`, `INVALID_API_KEY`, `TASK_NOT_FOUND`, …).
//! - No cancel endpoint and no webhook signature: the callback is authenticated by the per-job
//!   token in its URL, and only its task id is read.
//! - Credits are cents (1 USD = 100 credits).
//!
//! 2.0 and Fast make 5, 10 or 15 s at up to 1080p in 16:9, 9:16, 4:3, 3:4; Mini makes 4-15 s at
//! 480p or 720p (the seed says Mini's 1080p is billed and sent as 720p, so it is not offered) and
//! also 1:1, 21:9, adaptive. The first frame is `images[0]`, the only image sent: the seed
//! defines `images` as "for image-to-video" and has no field for reference images, so a
//! request with reference images is not eligible here (merging them into `images` would turn
//! the first reference into a first frame). Reference videos and audio are documented as
//! "Mini-compatible", so only Mini is declared to take them.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::config::UpstreamConfig;
use crate::providers::capabilities::{Capabilities, Durations, ModelCapabilities, ALL_RATIOS};
use crate::providers::upstream::{common_error_text, Auth, Upstream};
use crate::providers::{
    CancelOutcome, Provider, ProviderError, ReportedCost, Submission, SubmitRequest,
    UpstreamStatus, WebhookError,
};
use crate::types::video::{AspectRatio, Model, Resolution};

pub const ID: crate::types::ids::ProviderId = crate::types::ids::ProviderId::SeedanceApi;
pub const NAME: &str = ID.as_str();
pub const DEFAULT_BASE: &str = "https://seedanceapi.org";

/// This adapter's entry in the registry (`providers::registry`).
pub const ADAPTER: crate::providers::Adapter = crate::providers::Adapter {
    id: ID,
    build: |config| Ok(std::sync::Arc::new(SeedanceApi::new(config)?)),
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
    use crate::types::video::{Model, Resolution};
    // 2.0 240/480/720 and Fast 160/320/480 credits for 5/10/15 s; Mini 480p ceil(14.25 × s),
    // with a reference video 9 × s, 720p ceil(30.75 × s), with a reference video
    // ceil(18.75 × s); 1 credit = $0.01.
    let seconds = request.seconds.get();
    let with_reference_video = !request.inputs.reference_video_urls.is_empty();
    let credits = match request.model {
        Model::Standard | Model::Fast => {
            let per_five = if request.model == Model::Standard {
                240
            } else {
                160
            };
            if seconds % 5 != 0 {
                return Err(format!(
                    "has no price for {seconds} s with {}",
                    request.model.id()
                ));
            }
            per_five * seconds / 5
        }
        Model::Mini => match (request.resolution, with_reference_video) {
            (Resolution::P480, false) => ceil_div(1425 * seconds, 100),
            (Resolution::P480, true) => 9 * seconds,
            (_, false) => ceil_div(3075 * seconds, 100),
            (_, true) => ceil_div(1875 * seconds, 100),
        },
    };
    in_credits(credits)
}
/// The longest prompt the provider takes, in characters.
pub const MAX_PROMPT_CHARS: usize = 2000;

pub struct SeedanceApi {
    upstream: Upstream,
    capabilities: Capabilities,
    poll_interval: Duration,
}

fn model_capabilities(model: Model) -> ModelCapabilities {
    let mini = model == Model::Mini;
    ModelCapabilities {
        model,
        durations: if mini {
            Durations::Range(4, 15)
        } else {
            Durations::List(vec![5, 10, 15])
        },
        resolutions: if mini {
            vec![Resolution::P480, Resolution::P720]
        } else {
            vec![Resolution::P480, Resolution::P720, Resolution::P1080]
        },
        aspect_ratios: if mini {
            ALL_RATIOS.to_vec()
        } else {
            vec![
                AspectRatio::R16x9,
                AspectRatio::R9x16,
                AspectRatio::R4x3,
                AspectRatio::R3x4,
            ]
        },
        first_frame: true,
        last_frame: false,
        // `images` is "for image-to-video: 1-4 image URLs", a first frame, not references:
        // the API has no field for reference images, so requests with them go elsewhere.
        max_reference_images: 0,
        max_reference_videos: if mini { 3 } else { 0 },
        max_reference_audio: if mini { 3 } else { 0 },
        audio: false,
        seed: false,
        camera_fixed: false,
    }
}

impl SeedanceApi {
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<SeedanceApi> {
        Ok(SeedanceApi {
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

pub const SUBMIT_PATH: &str = "/v2/generate";
pub const STATUS_PATH: &str = "/v2/status";

#[derive(Debug, Serialize)]
pub struct SubmitBody<'a> {
    pub model: &'static str,
    pub prompt: &'a str,
    pub duration: i64,
    pub resolution: &'static str,
    pub aspect_ratio: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reference_video_urls: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reference_audio_urls: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<&'a str>,
}

/// The provider's id for a model.
pub fn model_id(model: Model) -> &'static str {
    match model {
        Model::Standard => "seedance-2.0",
        Model::Fast => "seedance-2.0-fast",
        Model::Mini => "seedance-2-mini",
    }
}

/// The JSON body sent for a request (public for the wire-format tests).
pub fn submit_body<'a>(request: &'a SubmitRequest<'a>) -> SubmitBody<'a> {
    let video = request.video;
    let inputs = &video.inputs;
    let images = request.first_frame_url.as_deref().into_iter().collect();
    SubmitBody {
        model: model_id(video.model),
        prompt: &video.prompt,
        duration: video.seconds.get(),
        resolution: video.resolution.as_str(),
        aspect_ratio: video.aspect_ratio.as_str(),
        images,
        reference_video_urls: inputs
            .reference_video_urls
            .iter()
            .map(|u| u.as_str())
            .collect(),
        reference_audio_urls: inputs
            .reference_audio_urls
            .iter()
            .map(|u| u.as_str())
            .collect(),
        callback_url: request.callback_url.as_deref(),
    }
}

/// The provider's error text: `CODE: message` from its `{code, message}` envelope.
pub fn error_text(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let code = value["code"]
        .as_str()
        .or_else(|| value["error"].as_str())
        .filter(|c| !c.is_empty());
    let message = value["message"]
        .as_str()
        .or_else(|| value["data"]["error_message"].as_str())
        .filter(|m| !m.is_empty());
    match (code, message) {
        (Some(code), Some(message)) if code != message => Some(format!("{code}: {message}")),
        (Some(text), _) | (None, Some(text)) => Some(text.to_string()),
        (None, None) => common_error_text(body),
    }
}

/// A task id as the provider writes it (a string, or tolerated as a number).
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A 2xx envelope without `data`: its `code` says what went wrong. Only the code is repeated,
/// never the message, so nothing the provider echoes reaches a client.
fn envelope_failure(envelope: &Value) -> ProviderError {
    let code = &envelope["code"];
    let label: String = match code {
        Value::String(text) => text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect(),
        Value::Number(number) => number.to_string(),
        _ => String::new(),
    };
    let numeric = code.as_i64().unwrap_or(0);
    let message = format!("{NAME} answered without a task (code {label})");
    if label == "INVALID_PROMPT" || numeric == 413 {
        // The prompt itself: no other provider would take it either.
        ProviderError::Rejected(message)
    } else if matches!(numeric, 400 | 404 | 422)
        || label.starts_with("INVALID_")
        || matches!(label.as_str(), "TOO_MANY_IMAGES" | "TASK_NOT_FOUND")
    {
        // A duration, ratio or image count it does not take: another provider may.
        ProviderError::Unsupported(message)
    } else if matches!(numeric, 401..=403)
        || matches!(label.as_str(), "INVALID_API_KEY" | "INSUFFICIENT_CREDITS")
    {
        ProviderError::Unavailable(message)
    } else {
        ProviderError::Transient {
            message,
            retry_after: None,
        }
    }
}

fn credits(data: &Value) -> Option<ReportedCost> {
    data["consumed_credits"]
        .as_i64()
        .map(|c| ReportedCost::cents("consumed_credits", c))
}

#[async_trait::async_trait]
impl Provider for SeedanceApi {
    fn id(&self) -> crate::types::ids::ProviderId {
        ID
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn submit(&self, request: SubmitRequest<'_>) -> Result<Submission, ProviderError> {
        // The gateway takes longer prompts than this provider; refuse before spending a call.
        if request.video.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ProviderError::Unsupported(format!(
                "{NAME} takes prompts of at most {MAX_PROMPT_CHARS} characters"
            )));
        }
        let body = submit_body(&request);
        let answer = self
            .upstream
            .send(
                self.upstream.request(Method::POST, SUBMIT_PATH).json(&body),
                error_text,
            )
            .await?;
        let envelope: Value = answer.json(NAME)?;
        let data = &envelope["data"];
        let upstream_id = id_text(&data["task_id"]).ok_or_else(|| envelope_failure(&envelope))?;
        Ok(Submission {
            upstream_id,
            estimated: None,
            cost: credits(data),
        })
    }

    async fn poll(&self, upstream_id: &str) -> Result<UpstreamStatus, ProviderError> {
        let answer = self
            .upstream
            .send(
                self.upstream
                    .request(Method::GET, STATUS_PATH)
                    .query(&[("task_id", upstream_id)]),
                error_text,
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

    /// The seed documents `callback_url`, called with the status envelope.
    fn sends_webhooks(&self) -> bool {
        true
    }

    /// The seed documents no signature: the callback carries the status envelope, and the
    /// per-job token in the callback URL is what authenticates it.
    fn webhook_job_id(
        &self,
        _headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<String, WebhookError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| WebhookError::Malformed)?;
        id_text(&value["data"]["task_id"])
            .or_else(|| id_text(&value["task_id"]))
            .ok_or(WebhookError::Malformed)
    }
}

impl SeedanceApi {
    /// Maps a status envelope to the gateway lifecycle.
    fn status_of(&self, envelope: &Value) -> Result<UpstreamStatus, ProviderError> {
        let data = &envelope["data"];
        let Some(status) = data["status"].as_str() else {
            return Err(envelope_failure(envelope));
        };
        Ok(match status {
            "SUCCESS" => match data["response"][0].as_str() {
                Some(video_url) if !video_url.is_empty() => UpstreamStatus::Completed {
                    video_url: video_url.to_string(),
                    // `data.request.duration` echoes what was asked, not what was made.
                    seconds: None,
                    cost: credits(data),
                },
                _ => {
                    return Err(ProviderError::Transient {
                        message: format!("{NAME} reported success without a video URL"),
                        retry_after: None,
                    })
                }
            },
            "FAILED" => UpstreamStatus::Failed {
                code: "upstream_failed".into(),
                message: data["error_message"]
                    .as_str()
                    .filter(|m| !m.trim().is_empty())
                    .map(|m| self.clean(m))
                    .unwrap_or_else(|| "the upstream failed the job".into()),
            },
            // `IN_PROGRESS`, and anything undocumented, is still running.
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

    fn video(json: Value) -> NewVideo {
        serde_json::from_value(json).expect("a NewVideo")
    }

    fn base() -> Value {
        json!({
            "model": "seedance-2.0", "prompt": "a boat", "seconds": 5, "resolution": "720p",
            "aspect_ratio": "16:9", "inputs": {}, "generate_audio": null, "seed": null,
            "camera_fixed": null, "user": null, "metadata": {}, "webhook_url": null
        })
    }

    fn with(changes: Value) -> NewVideo {
        let mut json = base();
        if let (Some(target), Some(changes)) = (json.as_object_mut(), changes.as_object()) {
            for (key, value) in changes {
                target.insert(key.clone(), value.clone());
            }
        }
        video(json)
    }

    #[test]
    fn wire_format_of_normalized_requests() {
        let id = VideoId::generate();
        let callback = "https://gw.example.com/webhooks/providers/seedanceapi/tok";
        // What, the request, its first frame and callback URLs, and the body expected.
        type Case<'a> = (&'a str, NewVideo, Option<&'a str>, Option<&'a str>, Value);
        let cases: Vec<Case> = vec![
            (
                "text to video, standard",
                with(json!({})),
                None,
                None,
                json!({"model": "seedance-2.0", "prompt": "a boat", "duration": 5,
                       "resolution": "720p", "aspect_ratio": "16:9"}),
            ),
            (
                "image to video, fast, with a callback",
                with(json!({"model": "seedance-2.0-fast", "seconds": 15,
                            "resolution": "1080p", "aspect_ratio": "9:16"})),
                Some("https://img.example.com/a.png"),
                Some(callback),
                json!({"model": "seedance-2.0-fast", "prompt": "a boat", "duration": 15,
                       "resolution": "1080p", "aspect_ratio": "9:16",
                       "images": ["https://img.example.com/a.png"], "callback_url": callback}),
            ),
            (
                "a first frame is the one image",
                with(json!({"seconds": 10, "aspect_ratio": "4:3"})),
                Some("https://img.example.com/a.png"),
                None,
                json!({"model": "seedance-2.0", "prompt": "a boat", "duration": 10,
                       "resolution": "720p", "aspect_ratio": "4:3",
                       "images": ["https://img.example.com/a.png"]}),
            ),
            (
                "mini with reference video and audio",
                with(
                    json!({"model": "seedance-2.0-mini", "seconds": 8, "resolution": "480p",
                            "aspect_ratio": "adaptive", "inputs": {
                    "reference_video_urls": ["https://cdn.example.com/v.mp4"],
                    "reference_audio_urls": ["https://cdn.example.com/a.mp3"]}}),
                ),
                None,
                None,
                json!({"model": "seedance-2-mini", "prompt": "a boat", "duration": 8,
                       "resolution": "480p", "aspect_ratio": "adaptive",
                       "reference_video_urls": ["https://cdn.example.com/v.mp4"],
                       "reference_audio_urls": ["https://cdn.example.com/a.mp3"]}),
            ),
        ];
        for (what, video, first_frame, callback, expected) in cases {
            let request = SubmitRequest {
                video_id: &id,
                video: &video,
                first_frame_url: first_frame.map(str::to_string),
                callback_url: callback.map(str::to_string),
            };
            assert_eq!(
                serde_json::to_value(submit_body(&request)).expect("json"),
                expected,
                "{what}"
            );
        }
        assert_eq!(SUBMIT_PATH, "/v2/generate");
        assert_eq!(STATUS_PATH, "/v2/status");
    }

    #[test]
    fn capabilities_follow_the_documented_limits() {
        let caps = Capabilities {
            models: Model::ALL.into_iter().map(model_capabilities).collect(),
        };
        assert!(caps.check(&with(json!({"seconds": 10}))).is_ok());
        assert!(caps.check(&with(json!({"seconds": 7}))).is_err());
        assert!(caps
            .check(&with(json!({"model": "seedance-2.0-mini", "seconds": 7})))
            .is_ok());
        assert!(caps
            .check(&with(
                json!({"model": "seedance-2.0-mini", "resolution": "1080p"})
            ))
            .is_err());
        assert!(caps.check(&with(json!({"aspect_ratio": "1:1"}))).is_err());
        assert!(caps
            .check(&with(json!({"inputs": {
                "reference_video_urls": ["https://cdn.example.com/v.mp4"]}})))
            .is_err());
        // No field for reference images: a request with them is not eligible, whatever model.
        for model in ["seedance-2.0", "seedance-2.0-mini"] {
            assert!(caps
                .check(&with(json!({"model": model, "inputs": {
                    "reference_image_urls": ["https://img.example.com/r1.png"]}})))
                .is_err_and(|why| why.contains("reference images")));
        }
    }

    fn provider() -> SeedanceApi {
        let config = UpstreamConfig {
            api_key: Some(crate::config::Secret::new("sk-test-secret")),
            ..UpstreamConfig::default()
        };
        SeedanceApi::new(&config).expect("provider")
    }

    #[test]
    fn every_documented_status_is_mapped_and_unknown_ones_are_running() {
        let provider = provider();
        let status = |data: Value| provider.status_of(&json!({"code": 200, "data": data}));
        assert_eq!(
            status(json!({"task_id": "t", "status": "IN_PROGRESS"})).expect("ok"),
            UpstreamStatus::Running { progress: None }
        );
        assert_eq!(
            status(
                json!({"task_id": "t", "status": "SUCCESS", "consumed_credits": 480,
                          "response": ["https://cdn.example.com/t.mp4"]})
            )
            .expect("ok"),
            UpstreamStatus::Completed {
                video_url: "https://cdn.example.com/t.mp4".into(),
                seconds: None,
                cost: Some(ReportedCost {
                    raw: "consumed_credits=480".into(),
                    micro_usd: Some(crate::types::money::MicroUsd::from_stored(4_800_000)),
                }),
            }
        );
        assert_eq!(
            status(json!({"status": "FAILED", "error_message": "bad\nframe sk-test-secret"}))
                .expect("ok"),
            UpstreamStatus::Failed {
                code: "upstream_failed".into(),
                message: "bad frame [redacted]".into(),
            }
        );
        assert_eq!(
            status(json!({"status": "QUEUED_SOMEWHERE"})).expect("ok"),
            UpstreamStatus::Running { progress: None }
        );
        assert!(status(json!({"status": "SUCCESS", "response": []})).is_err());
        assert!(status(json!({"status": "SUCCESS", "response": "x"})).is_err());
        assert!(provider.status_of(&json!([1, 2])).is_err());
    }

    #[test]
    fn the_callback_names_its_task() {
        let provider = provider();
        let headers = http::HeaderMap::new();
        assert_eq!(
            provider.webhook_job_id(
                &headers,
                br#"{"code":200,"message":"success","data":{"task_id":"n90a1","status":"SUCCESS"}}"#
            ),
            Ok("n90a1".to_string())
        );
        assert_eq!(
            provider.webhook_job_id(&headers, br#"{"data":{}}"#),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            provider.webhook_job_id(&headers, b"not json"),
            Err(WebhookError::Malformed)
        );
    }

    #[test]
    fn error_text_reads_the_envelope() {
        assert_eq!(
            error_text(br#"{"code":"INVALID_DURATION","message":"duration must be 5, 10, or 15"}"#)
                .as_deref(),
            Some("INVALID_DURATION: duration must be 5, 10, or 15")
        );
        assert_eq!(
            error_text(br#"{"code":404,"message":"Task not found"}"#).as_deref(),
            Some("Task not found")
        );
        assert_eq!(error_text(b"<html>"), None);
    }

    #[test]
    fn an_envelope_without_data_is_classified_by_its_code() {
        // What it does not take: another provider may.
        assert!(matches!(
            envelope_failure(&json!({"code": "TOO_MANY_IMAGES"})),
            ProviderError::Unsupported(_)
        ));
        // The prompt itself: the client's.
        assert!(matches!(
            envelope_failure(&json!({"code": "INVALID_PROMPT"})),
            ProviderError::Rejected(_)
        ));
        assert!(matches!(
            envelope_failure(&json!({"code": 402, "message": "x"})),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            envelope_failure(&json!({"code": 500})),
            ProviderError::Transient { .. }
        ));
    }
}
