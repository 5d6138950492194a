//! Tests of the AIgateway adapter: the requests it builds, the answers and errors it reads,
//! and the webhook signatures it accepts.

use super::*;
use crate::types::ids::VideoId;
use crate::types::video::NewVideo;
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

const BODY: &[u8] = br#"{"id":"job_1","status":"completed","result":{"url":"https://m/1.mp4"}}"#;

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

#[test]
fn a_webhook_from_the_future_is_rejected_beyond_the_tolerance() {
    let now = now_unix();
    let ahead = now + WEBHOOK_TOLERANCE_SECS as i64 + 1;
    assert_eq!(
        verify_signature(SECRET.as_bytes(), &signed(SECRET, ahead, BODY), BODY, now),
        Err(WebhookError::BadSignature)
    );
    // The same delivery is fine once the gateway's clock has caught up with it.
    assert_eq!(
        verify_signature(
            SECRET.as_bytes(),
            &signed(SECRET, ahead, BODY),
            BODY,
            ahead - 10
        ),
        Ok(())
    );
}
