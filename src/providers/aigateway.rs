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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::config::{Secret, UpstreamConfig};
use crate::domain::video::{AspectRatio, Model, Resolution};
use crate::providers::capabilities::{Capabilities, Durations, ModelCapabilities};
use crate::providers::upstream::{common_error_text, path_segment, Auth, Upstream};
use crate::providers::{
    CancelOutcome, Provider, ProviderError, Submission, SubmitRequest, UpstreamStatus, WebhookError,
};

pub const NAME: &str = "aigateway";
pub const DEFAULT_BASE: &str = "https://api.aigateway.sh";

/// What a request costs here, in micro-USD, by this provider's price rule (list prices of the
/// day of its documents; `pricing.upstream_usd_per_second` overrides them), or why it cannot be
/// priced. The routing catalog (`domain::routing::catalog`) asks every provider through this.
pub fn upstream_cost(
    request: &crate::domain::video::NewVideo,
    _pricing: &crate::config::PricingConfig,
) -> Result<i64, String> {
    // Fast only: $0.011 per second, plus 5% at top-up: $0.01155 per second.
    match request.model {
        crate::domain::video::Model::Fast => Ok(11_550 * request.seconds.get()),
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
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl Provider for AiGateway {
    fn name(&self) -> &'static str {
        NAME
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
mod tests {
    use super::*;
    use crate::domain::ids::VideoId;
    use crate::domain::video::NewVideo;
    use serde_json::json;

    const SECRET: &str = "whsec_test_0123456789";

    fn provider(secret: Option<&str>, poll_interval_ms: Option<u64>) -> AiGateway {
        AiGateway::new(&UpstreamConfig {
            api_key: Some(Secret::new("sk-aig-test")),
            webhook_secret: secret.map(Secret::new),
            poll_interval_ms,
            ..UpstreamConfig::default()
        })
        .expect("provider")
    }

    fn video(overrides: Value) -> NewVideo {
        let mut json = json!({
            "model": "seedance-2.0-fast", "prompt": "a boat", "seconds": 5, "resolution": "720p",
            "aspect_ratio": "16:9", "inputs": {}, "generate_audio": null, "seed": null,
            "camera_fixed": null, "user": null, "metadata": {}, "webhook_url": null
        });
        if let (Some(base), Value::Object(changes)) = (json.as_object_mut(), overrides) {
            base.extend(changes);
        }
        serde_json::from_value(json).expect("a NewVideo")
    }

    fn body(
        video: &NewVideo,
        first_frame: Option<&str>,
        callback: Option<&str>,
        webhooks: bool,
    ) -> Result<Value, ProviderError> {
        let id = VideoId::generate();
        let request = SubmitRequest {
            video_id: &id,
            video,
            first_frame_url: first_frame.map(str::to_string),
            callback_url: callback.map(str::to_string),
        };
        submit_body(&request, webhooks).map(|b| serde_json::to_value(b).expect("json"))
    }

    #[test]
    fn wire_format_of_each_kind_of_request() {
        let callback = "https://gw.example.com/webhooks/providers/aigateway/tok";
        let cases = [
            (
                "text to video, fast",
                video(json!({})),
                None,
                None,
                json!({"model": "bytedance/seedance-2.0-fast", "prompt": "a boat",
                    "duration": 5, "aspect_ratio": "16:9"}),
            ),
            (
                "fifteen seconds, 21:9, with a webhook",
                video(json!({"seconds": 15, "aspect_ratio": "21:9"})),
                None,
                Some(callback),
                json!({"model": "bytedance/seedance-2.0-fast", "prompt": "a boat",
                    "duration": 15, "aspect_ratio": "21:9", "webhook_url": callback}),
            ),
            (
                "portrait, four seconds",
                video(json!({"seconds": 4, "aspect_ratio": "9:16"})),
                None,
                Some(callback),
                json!({"model": "bytedance/seedance-2.0-fast", "prompt": "a boat",
                    "duration": 4, "aspect_ratio": "9:16", "webhook_url": callback}),
            ),
            (
                "3:4, ten seconds",
                video(json!({"seconds": 10, "aspect_ratio": "3:4"})),
                None,
                None,
                json!({"model": "bytedance/seedance-2.0-fast", "prompt": "a boat",
                    "duration": 10, "aspect_ratio": "3:4"}),
            ),
        ];
        for (what, video, first_frame, callback, expected) in cases {
            assert_eq!(
                body(&video, first_frame, callback, true).ok(),
                Some(expected),
                "{what}"
            );
        }
    }

    #[test]
    fn no_webhook_url_is_sent_without_a_secret_to_verify_it() {
        let sent = body(
            &video(json!({})),
            None,
            Some("https://gw.example.com/webhooks/providers/aigateway/tok"),
            false,
        )
        .expect("body");
        assert!(sent.get("webhook_url").is_none(), "{sent}");
    }

    #[test]
    fn a_first_frame_is_not_offered() {
        let image = video(json!({"inputs": {"first_frame_url": "https://img.example.com/a.png"}}));
        assert!(provider(None, None)
            .capabilities()
            .check(&image)
            .is_err_and(|why| why.contains("first frame")));
    }

    #[test]
    fn standard_is_refused_before_sending() {
        let standard = video(json!({"model": "seedance-2.0"}));
        assert!(matches!(
            body(&standard, None, None, true),
            Err(ProviderError::Unsupported(_))
        ));
        assert!(provider(None, None)
            .capabilities()
            .check(&standard)
            .is_err_and(|why| why.contains("seedance-2.0")));
    }

    #[test]
    fn mini_is_refused_before_sending() {
        let mini = video(json!({"model": "seedance-2.0-mini"}));
        assert!(matches!(
            body(&mini, None, None, true),
            Err(ProviderError::Unsupported(_))
        ));
        assert!(provider(None, None)
            .capabilities()
            .check(&mini)
            .is_err_and(|why| why.contains("seedance-2.0-mini")));
    }

    #[test]
    fn polls_are_at_least_three_seconds_apart_unless_configured_shorter() {
        let default = provider(None, None);
        assert_eq!(default.min_poll_interval(), MIN_POLL_INTERVAL);
        assert!(default.poll_interval() >= MIN_POLL_INTERVAL);
        let eager = provider(None, Some(50));
        assert_eq!(eager.min_poll_interval(), Duration::from_millis(50));
        let patient = provider(None, Some(10_000));
        assert_eq!(patient.min_poll_interval(), MIN_POLL_INTERVAL);
    }

    fn status(job: Value) -> Result<UpstreamStatus, ProviderError> {
        job_status(serde_json::from_value(job).expect("a job"))
    }

    #[test]
    fn every_documented_status_maps_to_the_gateway_lifecycle() {
        assert_eq!(
            status(json!({"id": "job_1", "status": "queued"})).ok(),
            Some(UpstreamStatus::Queued)
        );
        for running in ["processing", "running", "warming_up"] {
            assert_eq!(
                status(json!({"id": "job_1", "status": running})).ok(),
                Some(UpstreamStatus::Running { progress: None }),
                "{running}"
            );
        }
        assert_eq!(
            status(json!({"id": "job_1", "status": "completed", "result": {
                "url": "https://media.aigateway.sh/video/1.mp4", "duration": 5,
                "resolution": "1920x1080"}}))
            .ok(),
            Some(UpstreamStatus::Completed {
                video_url: "https://media.aigateway.sh/video/1.mp4".into(),
                seconds: Some(5),
                cost: None,
            })
        );
        assert_eq!(
            status(json!({"id": "job_1", "status": "completed", "result": {
                "file_url": "https://media.aigateway.sh/v1/files/jobs/1"}}))
            .ok(),
            Some(UpstreamStatus::Completed {
                video_url: "https://media.aigateway.sh/v1/files/jobs/1".into(),
                seconds: None,
                cost: None,
            })
        );
        assert_eq!(
            status(json!({"id": "job_1", "status": "failed",
                "error": {"code": "provider_error", "message": "upstream refused"}}))
            .ok(),
            Some(UpstreamStatus::Failed {
                code: "upstream_failed".into(),
                message: "upstream refused".into()
            })
        );
        assert_eq!(
            status(json!({"id": "job_1", "status": "cancelled"})).ok(),
            Some(UpstreamStatus::Canceled)
        );
        assert!(matches!(
            status(json!({"id": "job_1", "status": "completed", "result": {"duration": "x"}})),
            Err(ProviderError::Transient { .. })
        ));
    }

    fn signed(secret: &str, t: i64, body: &[u8]) -> http::HeaderMap {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let v1 = hex::encode(mac.finalize().into_bytes());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            format!("t={t},v1={v1}").parse().expect("header"),
        );
        headers
    }

    const BODY: &[u8] =
        br#"{"id":"job_1","status":"completed","result":{"url":"https://m/1.mp4"}}"#;

    #[test]
    fn a_fresh_webhook_signed_with_the_secret_is_accepted() {
        let now = now_unix();
        assert_eq!(
            provider(Some(SECRET), None).webhook_job_id(&signed(SECRET, now - 10, BODY), BODY),
            Ok("job_1".into())
        );
        let event = br#"{"id":"evt_1","type":"job.completed","data":{"job_id":"job_2"}}"#;
        assert_eq!(
            provider(Some(SECRET), None).webhook_job_id(&signed(SECRET, now, event), event),
            Ok("job_2".into())
        );
    }

    #[test]
    fn the_webhooks_page_header_pair_is_accepted() {
        let now = now_unix();
        let signature = signed(SECRET, now, BODY)[SIGNATURE_HEADER]
            .to_str()
            .expect("ascii")
            .split_once(",v1=")
            .map(|(_, v1)| v1.to_string())
            .expect("v1");
        let mut headers = http::HeaderMap::new();
        headers.insert("aig-timestamp", now.to_string().parse().expect("header"));
        headers.insert("aig-signature", signature.parse().expect("header"));
        assert_eq!(
            verify_signature(SECRET.as_bytes(), &headers, BODY, now),
            Ok(())
        );
    }

    #[test]
    fn a_forged_webhook_is_rejected() {
        let now = now_unix();
        let forged = signed("whsec_someone_else", now, BODY);
        assert_eq!(
            provider(Some(SECRET), None).webhook_job_id(&forged, BODY),
            Err(WebhookError::BadSignature)
        );
        let tampered = br#"{"id":"job_9","status":"completed"}"#;
        assert_eq!(
            provider(Some(SECRET), None).webhook_job_id(&signed(SECRET, now, BODY), tampered),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            provider(Some(SECRET), None).webhook_job_id(&http::HeaderMap::new(), BODY),
            Err(WebhookError::BadSignature)
        );
        // Without a configured secret nothing can be verified.
        assert_eq!(
            provider(None, None).webhook_job_id(&signed(SECRET, now, BODY), BODY),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_stale_webhook_is_rejected_as_a_replay() {
        let now = now_unix();
        let old = now - WEBHOOK_TOLERANCE_SECS as i64 - 1;
        assert_eq!(
            verify_signature(SECRET.as_bytes(), &signed(SECRET, old, BODY), BODY, now),
            Err(WebhookError::BadSignature)
        );
        let edge = now - WEBHOOK_TOLERANCE_SECS as i64;
        assert_eq!(
            verify_signature(SECRET.as_bytes(), &signed(SECRET, edge, BODY), BODY, now),
            Ok(())
        );
    }
}
