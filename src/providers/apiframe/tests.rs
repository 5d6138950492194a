//! Tests of the Apiframe adapter: the requests it builds, the answers and errors it reads,
//! and the webhook signatures it accepts.

use super::*;
use crate::config::Secret;
use crate::types::ids::VideoId;
use crate::types::video::NewVideo;
use serde_json::json;

const KEY: &str = "afk_test_key_0123456789";

fn provider() -> Apiframe {
    Apiframe::new(&UpstreamConfig {
        api_key: Some(Secret::new(KEY)),
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

/// The body, path and headers of the submit call for a request.
fn wire(
    video: &NewVideo,
    first_frame: Option<&str>,
    callback: Option<&str>,
) -> (Value, reqwest::Request) {
    let id = VideoId::parse("video_0123456789abcdef").expect("an id");
    let request = SubmitRequest {
        video_id: &id,
        video,
        first_frame_url: first_frame.map(str::to_string),
        callback_url: callback.map(str::to_string),
    };
    let built = provider()
        .submit_request(&request)
        .expect("submittable")
        .build()
        .expect("request");
    let body = built.body().and_then(|b| b.as_bytes()).expect("a body");
    (serde_json::from_slice(body).expect("json"), built)
}

#[test]
fn wire_format_of_each_kind_of_request() {
    let cases = [
        (
            "text to video, fast",
            video(json!({})),
            None,
            None,
            json!({"prompt": "a boat", "model": "seedance-2-fast", "seedanceParams": {
                "duration": 5, "resolution": "720p", "aspect_ratio": "16:9"}}),
        ),
        (
            "first and last frame, standard, with a webhook",
            video(
                json!({"model": "seedance-2.0", "seconds": 15, "aspect_ratio": "adaptive",
                "inputs": {"last_frame_url": "https://img.example.com/z.png"}}),
            ),
            Some("https://img.example.com/a.png"),
            Some("https://gw.example.com/webhooks/providers/apiframe/tok"),
            json!({"prompt": "a boat", "model": "seedance-2", "seedanceParams": {
                "duration": 15, "resolution": "720p", "aspect_ratio": "adaptive",
                "start_image": "https://img.example.com/a.png",
                "end_image": "https://img.example.com/z.png"},
                "webhookUrl": "https://gw.example.com/webhooks/providers/apiframe/tok",
                "webhookEvents": ["completed", "failed"]}),
        ),
        (
            "references, mini, 480p",
            video(
                json!({"model": "seedance-2.0-mini", "resolution": "480p", "seconds": 4,
                "aspect_ratio": "21:9", "inputs": {
                    "reference_image_urls": ["https://img.example.com/1.png", "https://img.example.com/2.png"],
                    "reference_video_urls": ["https://vid.example.com/1.mp4"],
                    "reference_audio_urls": ["https://aud.example.com/1.mp3"]}}),
            ),
            None,
            None,
            json!({"prompt": "a boat", "model": "seedance-2-mini", "seedanceParams": {
                "duration": 4, "resolution": "480p", "aspect_ratio": "21:9",
                "reference_image_urls": ["https://img.example.com/1.png", "https://img.example.com/2.png"],
                "reference_video_urls": ["https://vid.example.com/1.mp4"],
                "reference_audio_urls": ["https://aud.example.com/1.mp3"]}}),
        ),
        (
            "audio, seed and fixed camera",
            video(
                json!({"aspect_ratio": "9:16", "generate_audio": false, "seed": 42,
                "camera_fixed": true}),
            ),
            None,
            None,
            json!({"prompt": "a boat", "model": "seedance-2-fast", "seedanceParams": {
                "duration": 5, "resolution": "720p", "aspect_ratio": "9:16",
                "generate_audio": false, "seed": 42, "camera_fixed": true}}),
        ),
    ];
    for (what, video, first_frame, callback, expected) in cases {
        let (body, request) = wire(&video, first_frame, callback);
        assert_eq!(body, expected, "{what}");
        assert_eq!(request.method(), Method::POST, "{what}");
        assert_eq!(
            request.url().as_str(),
            "https://api.apiframe.ai/v2/videos/generate",
            "{what}"
        );
        assert_eq!(request.headers()["x-api-key"], KEY, "{what}");
        assert!(request.headers().get("authorization").is_none(), "{what}");
    }
}

#[test]
fn the_gateway_video_id_is_the_idempotency_key() {
    let video = video(json!({}));
    let (_, request) = wire(&video, None, None);
    let key = request.headers()["idempotency-key"]
        .to_str()
        .expect("ascii");
    assert_eq!(key, "video_0123456789abcdef");
}

#[test]
fn a_resolution_apiframe_lacks_is_refused_before_sending() {
    let id = VideoId::generate();
    let video = video(json!({"resolution": "1080p"}));
    let request = SubmitRequest {
        video_id: &id,
        video: &video,
        first_frame_url: None,
        callback_url: None,
    };
    assert!(matches!(
        submit_body(&request),
        Err(ProviderError::Unsupported(_))
    ));
}

fn status(job: Value) -> Result<UpstreamStatus, ProviderError> {
    job_status(serde_json::from_value(job).expect("a job"))
}

#[test]
fn every_documented_status_maps_to_the_gateway_lifecycle() {
    assert_eq!(
        status(json!({"id": "j", "status": "QUEUED"})).ok(),
        Some(UpstreamStatus::Queued)
    );
    assert_eq!(
        status(json!({"id": "j", "status": "PROCESSING", "progress": 41.6})).ok(),
        Some(UpstreamStatus::Running { progress: Some(42) })
    );
    assert_eq!(
        status(json!({"id": "j", "status": "COMPLETED", "progress": 100,
            "result": {"videoUrl": "https://cdn.apiframe.ai/v.mp4"}, "creditCost": 10}))
        .ok(),
        Some(UpstreamStatus::Completed {
            video_url: "https://cdn.apiframe.ai/v.mp4".into(),
            seconds: None,
            cost: Some(ReportedCost {
                raw: "creditCost=10".into(),
                micro_usd: None
            }),
        })
    );
    assert_eq!(
        status(json!({"id": "j", "status": "FAILED", "error": "moderation\nblocked"})).ok(),
        Some(UpstreamStatus::Failed {
            code: "upstream_failed".into(),
            message: "moderation blocked".into()
        })
    );
    assert_eq!(
        status(json!({"id": "j", "status": "CANCELLED"})).ok(),
        Some(UpstreamStatus::Canceled)
    );
    assert_eq!(
        status(json!({"id": "j", "status": "UPSCALING", "progress": "soon"})).ok(),
        Some(UpstreamStatus::Running { progress: None })
    );
    assert!(matches!(
        status(json!({"id": "j", "status": "COMPLETED", "result": null})),
        Err(ProviderError::Transient { .. })
    ));
}

fn sign(key: &str, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(&Sha256::digest(key.as_bytes())).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn headers(signature: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, signature.parse().expect("header"));
    headers
}

#[test]
fn a_webhook_signed_with_the_api_key_is_accepted() {
    let body = br#"{"jobId":"job_1","type":"completed","status":"COMPLETED"}"#;
    assert_eq!(
        provider().webhook_job_id(&headers(&sign(KEY, body)), body),
        Ok("job_1".into())
    );
    let bare = sign(KEY, body).replace("sha256=", "");
    assert_eq!(
        provider().webhook_job_id(&headers(&bare), body),
        Ok("job_1".into())
    );
}

#[test]
fn a_forged_or_unsigned_webhook_is_rejected() {
    let body = br#"{"jobId":"job_1","status":"COMPLETED"}"#;
    let forged = sign("afk_someone_else", body);
    assert_eq!(
        provider().webhook_job_id(&headers(&forged), body),
        Err(WebhookError::BadSignature)
    );
    let tampered = br#"{"jobId":"job_2","status":"COMPLETED"}"#;
    assert_eq!(
        provider().webhook_job_id(&headers(&sign(KEY, body)), tampered),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        provider().webhook_job_id(&headers("sha256=zz"), body),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        provider().webhook_job_id(&http::HeaderMap::new(), body),
        Err(WebhookError::BadSignature)
    );
}
