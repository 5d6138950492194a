//! Every seed provider, through the running gateway, against the fake of its protocol:
//! text- and image-to-video to completion and download, failure, upstream 400/401/402,
//! 429 and 500 then success, timeouts, malformed answers, cancel, and the key never leaking.
//! Each test runs over the whole provider table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::Duration;

use common::{ledger_kinds, TestApp};
use fake_upstream::{FakeUpstream, Fault, FAKE_KEY};
use reqwest::StatusCode;
use seedance_gateway::config::{Config, Secret, UpstreamConfig};
use serde_json::{json, Value};

/// A provider under test: its fake prefix, gateway name, config slot, and a request it serves.
struct Case {
    prefix: &'static str,
    name: &'static str,
    slot: fn(&mut Config) -> &mut UpstreamConfig,
    /// A text-to-video request this provider can serve.
    t2v: fn() -> Value,
    /// An image-to-video request this provider can serve.
    i2v: fn() -> Value,
    /// The gateway-level price of `t2v` (credits) at the default price list.
    t2v_price: i64,
    /// Whether the provider has an upstream cancel endpoint.
    cancels_upstream: bool,
    /// The submit path the fake sees for `t2v`.
    t2v_path: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            prefix: "seedance-it",
            name: "seedance-it",
            slot: |c| {
                c.providers
                    .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt)
            },
            t2v: || json!({"model": "seedance-2.0-fast", "prompt": "a paper boat", "seconds": 5, "aspect_ratio": "16:9"}),
            i2v: || json!({"model": "seedance-2.0-fast", "prompt": "animate it", "seconds": 8, "aspect_ratio": "9:16", "image_url": "https://img.example.com/first.png"}),
            t2v_price: 250,
            cancels_upstream: true,
            t2v_path: "/api/v1/bytedance/seedance-2.0/fast/text-to-video",
        },
        Case {
            prefix: "apiframe",
            name: "apiframe",
            slot: |c| {
                c.providers
                    .upstream_mut(seedance_gateway::types::ids::ProviderId::Apiframe)
            },
            t2v: || json!({"model": "seedance-2.0-fast", "prompt": "a paper boat", "seconds": 5, "aspect_ratio": "16:9"}),
            i2v: || json!({"model": "seedance-2.0-mini", "prompt": "animate it", "seconds": 6, "resolution": "480p", "aspect_ratio": "adaptive", "image_url": "https://img.example.com/first.png", "last_frame_url": "https://img.example.com/last.png"}),
            t2v_price: 250,
            cancels_upstream: false,
            t2v_path: "/v2/videos/generate",
        },
        Case {
            prefix: "aigateway",
            name: "aigateway",
            slot: |c| {
                c.providers
                    .upstream_mut(seedance_gateway::types::ids::ProviderId::AiGateway)
            },
            t2v: || json!({"model": "seedance-2.0-fast", "prompt": "a paper boat", "seconds": 5, "aspect_ratio": "4:3"}),
            i2v: || json!({"model": "seedance-2.0-fast", "prompt": "animate it", "seconds": 8, "aspect_ratio": "9:16", "image_url": "https://img.example.com/first.png"}),
            t2v_price: 250,
            cancels_upstream: true,
            t2v_path: "/v1/videos/generations",
        },
        Case {
            prefix: "seedanceapi",
            name: "seedanceapi",
            slot: |c| {
                c.providers
                    .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceApi)
            },
            t2v: || json!({"model": "seedance-2.0-fast", "prompt": "a paper boat", "seconds": 10, "aspect_ratio": "9:16"}),
            i2v: || json!({"model": "seedance-2.0-mini", "prompt": "animate it", "seconds": 8, "resolution": "480p", "aspect_ratio": "1:1", "image_url": "https://img.example.com/first.png"}),
            t2v_price: 500,
            cancels_upstream: false,
            t2v_path: "/v2/generate",
        },
        Case {
            prefix: "aimlapi",
            name: "aimlapi",
            slot: |c| {
                c.providers
                    .upstream_mut(seedance_gateway::types::ids::ProviderId::AimlApi)
            },
            t2v: || json!({"model": "seedance-2.0-mini", "prompt": "a paper boat", "seconds": 6, "aspect_ratio": "21:9"}),
            i2v: || json!({"model": "seedance-2.0", "prompt": "animate it", "seconds": 5, "resolution": "1080p", "aspect_ratio": "9:16", "image_url": "https://img.example.com/first.png", "last_frame_url": "https://img.example.com/last.png"}),
            t2v_price: 210,
            cancels_upstream: false,
            t2v_path: "/v2/video/generations",
        },
    ]
}

async fn gateway_for(
    case: &Case,
    fake: &FakeUpstream,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let base = fake.base_url(case.prefix);
    let slot = case.slot;
    TestApp::spawn_with(move |config| {
        config.providers.sandbox.enabled = false;
        config.workers.tick_ms = 20;
        // Apiframe's credit value is unpublished; give it one so cheapest routing prices it.
        config.pricing.apiframe_usd_per_credit = Some("0.01".into());
        // Nor is AI/ML API's Mini price.
        config.pricing.upstream_usd_per_second.insert(
            "aimlapi".into(),
            [("seedance-2.0-mini".to_string(), "0.05".to_string())]
                .into_iter()
                .collect(),
        );
        let upstream = slot(config);
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(50);
        upstream.timeout_secs = Some(2);
        adjust(config);
    })
    .await
}

/// A gateway with all five providers enabled against `fake`, each priced.
async fn every_provider(fake: &FakeUpstream) -> TestApp {
    TestApp::spawn_with(|config| {
        config.providers.sandbox.enabled = false;
        config.pricing.apiframe_usd_per_credit = Some("0.01".into());
        for case in cases() {
            let upstream = (case.slot)(config);
            upstream.enabled = true;
            upstream.base_url = Some(fake.base_url(case.prefix));
            upstream.api_key = Some(Secret::new(FAKE_KEY));
            upstream.poll_interval_ms = Some(50);
            upstream.timeout_secs = Some(2);
        }
    })
    .await
}

async fn fake() -> FakeUpstream {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake starts");
    fake.set_job_duration(Duration::from_millis(300));
    fake
}

async fn download(app: &TestApp, key: &str, id: &str) -> bytes::Bytes {
    let response = app
        .client
        .get(app.url(&format!("/v1/videos/{id}/content")))
        .bearer_auth(key)
        .send()
        .await
        .expect("content");
    // The copy is served from the upstream's URL until archiving exists.
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    reqwest::get(location)
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes")
}

#[tokio::test]
async fn text_and_image_to_video_complete_and_download_on_every_provider() {
    for case in cases() {
        let fake = fake().await;
        let app = gateway_for(&case, &fake, |_| {}).await;
        let (tenant, key) = app.tenant_with_key("live", 10_000).await;

        let response = app.create_video(&key, (case.t2v)()).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", case.name);
        assert_eq!(response.headers()["x-gateway-provider"], case.name);
        let created: Value = response.json().await.expect("json");
        let id = created["id"].as_str().expect("id").to_string();
        let done = app.wait_terminal(&key, &id).await;
        assert_eq!(done["status"], "completed", "{}: {done}", case.name);
        assert_eq!(done["cost"]["charged"], case.t2v_price, "{}", case.name);
        assert_eq!(&download(&app, &key, &id).await[4..8], b"ftyp");
        let submits: Vec<_> = fake
            .calls(case.prefix)
            .into_iter()
            .filter(|c| c.op == "submit")
            .collect();
        assert_eq!(submits.len(), 1, "{}", case.name);
        assert_eq!(submits[0].path, case.t2v_path, "{}", case.name);

        let response = app.create_video(&key, (case.i2v)()).await;
        if case.name == "aigateway" {
            // AIgateway documents no image field: a first frame is refused at create, and
            // nothing more is sent upstream.
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            let refused: Value = response.json().await.expect("json");
            assert_eq!(refused["error"]["code"], "unsupported_capability");
            assert!(
                refused["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("aigateway") && m.contains("first frame")),
                "{refused}"
            );
            let submits = fake
                .calls(case.prefix)
                .into_iter()
                .filter(|c| c.op == "submit");
            assert_eq!(submits.count(), 1);
        } else {
            let created: Value = response.json().await.expect("json");
            let done = app
                .wait_terminal(&key, created["id"].as_str().expect("id"))
                .await;
            assert_eq!(done["status"], "completed", "{}: {done}", case.name);
            let submit = fake
                .calls(case.prefix)
                .into_iter()
                .rfind(|c| c.op == "submit")
                .expect("submit");
            assert!(
                submit
                    .body
                    .to_string()
                    .contains("https://img.example.com/first.png"),
                "{}: {:?}",
                case.name,
                submit.body
            );
        }

        let video = app
            .db
            .get_video_any(&seedance_gateway::types::ids::VideoId::parse(&id).expect("id"))
            .await
            .expect("db")
            .expect("video");
        assert!(
            video.upstream_cost.is_some() || case.name == "aigateway",
            "{}: upstream cost recorded",
            case.name
        );
        assert_eq!(ledger_kinds(&app.db, &id).await, vec!["hold", "capture"]);
        assert_eq!(app.balance(&tenant).await["held"].as_i64(), Some(0));
        app.assert_ledger_consistent().await;
    }
}

#[tokio::test]
async fn a_job_the_upstream_fails_voids_its_hold() {
    for case in cases() {
        let fake = fake().await;
        fake.fail_next_jobs(case.prefix, 1);
        let app = gateway_for(&case, &fake, |_| {}).await;
        let (tenant, key) = app.tenant_with_key("live", 10_000).await;
        let created: Value = app
            .create_video(&key, (case.t2v)())
            .await
            .json()
            .await
            .expect("json");
        let id = created["id"].as_str().expect("id");
        let done = app.wait_terminal(&key, id).await;
        assert_eq!(done["status"], "failed", "{}", case.name);
        assert_eq!(done["cost"]["charged"], 0);
        assert_eq!(ledger_kinds(&app.db, id).await, vec!["hold", "void"]);
        let balance = app.balance(&tenant).await;
        assert_eq!(
            (balance["available"].as_i64(), balance["held"].as_i64()),
            (Some(10_000), Some(0))
        );
    }
}

#[tokio::test]
async fn upstream_refusals_and_account_problems_reach_the_client_as_400_and_503() {
    for case in cases() {
        let fake = fake().await;
        let app = gateway_for(&case, &fake, |_| {}).await;
        let (tenant, key) = app.tenant_with_key("live", 10_000).await;
        // A 400 about the client's own content (seedanceapi's fake answers INVALID_PROMPT) is
        // the client's `invalid_request`. Any other 400 is taken as "this provider cannot serve
        // that", the only provider here: a 400 `unsupported_capability` with its reason, and
        // the provider is then left out of that shape of request for a while (so it comes last).
        let content_refusal = case.name == "seedanceapi";
        let refusal_code = if content_refusal {
            "invalid_request"
        } else {
            "unsupported_capability"
        };
        for (status, client_status, code) in [
            (401, StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable"),
            (402, StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable"),
            (400, StatusCode::BAD_REQUEST, refusal_code),
        ] {
            fake.inject(
                case.prefix,
                "submit",
                Fault::Status {
                    status,
                    retry_after: None,
                },
            );
            let response = app.create_video(&key, (case.t2v)()).await;
            assert_eq!(
                response.status(),
                client_status,
                "{} upstream {status}",
                case.name
            );
            let text = response.text().await.expect("text");
            assert!(text.contains(code), "{}: {text}", case.name);
            assert!(!text.contains(FAKE_KEY), "the upstream key leaked: {text}");
            if status == 400 {
                assert!(text.contains(&format!("{} refused", case.name)), "{text}");
            }
        }
        let quote: Value = app
            .client
            .post(app.url("/v1/videos/quote"))
            .bearer_auth(&key)
            .json(&(case.t2v)())
            .send()
            .await
            .expect("quote")
            .json()
            .await
            .expect("json");
        let remembered = quote["excluded"].as_array().is_some_and(|e| {
            e.iter().any(|x| {
                x["provider"] == case.name
                    && x["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("refused this kind of request recently"))
            })
        });
        // A content refusal says nothing about the provider: it stays eligible.
        assert_eq!(remembered, !content_refusal, "{}: {quote}", case.name);
        let balance = app.balance(&tenant).await;
        assert_eq!(
            (balance["available"].as_i64(), balance["held"].as_i64()),
            (Some(10_000), Some(0)),
            "{}",
            case.name
        );
        app.assert_ledger_consistent().await;
    }
}

#[tokio::test]
async fn transient_upstream_failures_are_retried_until_the_job_completes() {
    for case in cases() {
        let fake = fake().await;
        let app = gateway_for(&case, &fake, |_| {}).await;
        let (_, key) = app.tenant_with_key("live", 10_000).await;
        let faults = [
            (
                "submit",
                Fault::Status {
                    status: 429,
                    retry_after: Some(1),
                },
            ),
            (
                "submit",
                Fault::Status {
                    status: 500,
                    retry_after: None,
                },
            ),
            ("submit", Fault::Hang { millis: 3000 }),
            ("submit", Fault::Malformed),
            ("poll", Fault::Truncated),
            (
                "poll",
                Fault::Status {
                    status: 503,
                    retry_after: None,
                },
            ),
        ];
        for (op, fault) in faults {
            let before = fake
                .calls(case.prefix)
                .iter()
                .filter(|c| c.op == op)
                .count();
            fake.inject(case.prefix, op, fault.clone());
            let response = app.create_video(&key, (case.t2v)()).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{} {op} {fault:?}",
                case.name
            );
            let created: Value = response.json().await.expect("json");
            let done = app
                .wait_terminal(&key, created["id"].as_str().expect("id"))
                .await;
            assert_eq!(
                done["status"], "completed",
                "{} after {op} {fault:?}: {done}",
                case.name
            );
            assert_eq!(
                fake.faults_pending(case.prefix, op),
                0,
                "{}: the {op} fault was met",
                case.name
            );
            let calls: Vec<_> = fake
                .calls(case.prefix)
                .into_iter()
                .filter(|c| c.op == op)
                .skip(before)
                .collect();
            if op == "submit" {
                // The faulted submit, then exactly one retry that succeeded.
                assert_eq!(
                    calls.len(),
                    2,
                    "{}: {op} retried once after {fault:?}",
                    case.name
                );
                if let Fault::Status {
                    retry_after: Some(secs),
                    ..
                } = &fault
                {
                    let secs = *secs;
                    let waited = calls[1].at_ms - calls[0].at_ms;
                    assert!(
                        waited >= secs * 1000,
                        "{}: the retry came {waited} ms after a Retry-After of {secs} s",
                        case.name
                    );
                }
            } else {
                // The job could only complete through a poll after the faulted one.
                assert!(
                    calls.len() >= 2,
                    "{}: {op} was retried after {fault:?}",
                    case.name
                );
            }
        }
        app.assert_ledger_consistent().await;
    }
}

#[tokio::test]
async fn cancel_stops_the_job_upstream_or_locally_and_charges_nothing() {
    for case in cases() {
        let fake = fake().await;
        fake.set_job_duration(Duration::from_secs(5));
        let app = gateway_for(&case, &fake, |_| {}).await;
        let (tenant, key) = app.tenant_with_key("live", 10_000).await;
        let created: Value = app
            .create_video(&key, (case.t2v)())
            .await
            .json()
            .await
            .expect("json");
        let id = created["id"].as_str().expect("id");
        let canceled: Value = app
            .client
            .post(app.url(&format!("/v1/videos/{id}/cancel")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("cancel")
            .json()
            .await
            .expect("json");
        assert_eq!(canceled["status"], "canceled", "{}", case.name);
        // The upstream cancel is sent in the background.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while case.cancels_upstream && !fake.calls(case.prefix).iter().any(|c| c.op == "cancel") {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no upstream cancel",
                case.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The cancel is among the job's attempts in the operator's view, with its outcome.
        let expected = if case.cancels_upstream {
            "accepted"
        } else {
            "unsupported"
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let view: Value = app
                .admin_get(&format!("/admin/v1/videos/{id}"))
                .await
                .json()
                .await
                .expect("json");
            let cancels: Vec<&Value> = view["attempts"]
                .as_array()
                .expect("attempts")
                .iter()
                .filter(|a| a["operation"] == "cancel")
                .collect();
            if let Some(cancel) = cancels.first() {
                assert_eq!(cancels.len(), 1, "{}: {view}", case.name);
                assert_eq!(cancel["outcome"], expected, "{}: {view}", case.name);
                assert_eq!(cancel["provider"], case.name);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no cancel attempt recorded: {view}",
                case.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let balance = app.balance(&tenant).await;
        assert_eq!(
            (balance["available"].as_i64(), balance["held"].as_i64()),
            (Some(10_000), Some(0))
        );
        assert_eq!(ledger_kinds(&app.db, id).await, vec!["hold", "void"]);
    }
}

#[tokio::test]
async fn a_request_a_provider_cannot_serve_is_never_sent_to_it() {
    for case in cases() {
        let fake = fake().await;
        let app = gateway_for(&case, &fake, |_| {}).await;
        let (_, key) = app.tenant_with_key("live", 10_000).await;
        // No provider can both fix the camera and make 1080p: Apiframe stops at 720p, and
        // the others cannot fix the camera.
        let mut body = (case.t2v)();
        body["resolution"] = json!("1080p");
        body["camera_fixed"] = json!(true);
        let response = app.create_video(&key, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{}", case.name);
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["code"], "unsupported_capability");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(case.name)),
            "{error}"
        );
        assert!(
            fake.calls(case.prefix).iter().all(|c| c.op != "submit"),
            "{}",
            case.name
        );
    }
}

/// A submit whose 2xx answer is cut off after the job was made upstream is never sent again
/// blindly: where the provider de-duplicates (Apiframe's `Idempotency-Key`) it is repeated and
/// one job exists; elsewhere it is sent once more at most (here to the same provider, the
/// only one enabled), the video still finishes, is charged once, and the lost submit is listed
/// for the operator as a possible orphan.
#[tokio::test]
async fn a_lost_submit_answer_makes_at_most_two_upstream_jobs_and_the_video_finishes() {
    for case in cases() {
        let fake = fake().await;
        fake.inject(case.prefix, "submit", Fault::LostAnswer);
        let app = gateway_for(&case, &fake, |_| {}).await;
        let (tenant, key) = app.tenant_with_key("live", 10_000).await;
        let created: Value = app
            .create_video(&key, (case.t2v)())
            .await
            .json()
            .await
            .expect("json");
        let id = created["id"].as_str().expect("id").to_string();
        let done = app.wait_terminal(&key, &id).await;
        assert_eq!(done["status"], "completed", "{}: {done}", case.name);
        assert_eq!(done["cost"]["charged"], case.t2v_price, "{}", case.name);
        let submits = fake
            .calls(case.prefix)
            .into_iter()
            .filter(|c| c.op == "submit")
            .count();
        assert_eq!(
            submits, 2,
            "{}: one lost answer, one more submit",
            case.name
        );
        let expected_jobs = if case.name == "apiframe" { 1 } else { 2 };
        assert_eq!(fake.jobs_made(case.prefix), expected_jobs, "{}", case.name);

        let report: Value = app
            .admin_get("/admin/v1/reports/cost_mismatches")
            .await
            .json()
            .await
            .expect("report");
        let orphans = report["possible_orphans"].as_array().expect("orphans");
        if case.name == "apiframe" {
            assert!(orphans.is_empty(), "{}: {report}", case.name);
        } else {
            assert_eq!(orphans.len(), 1, "{}: {report}", case.name);
            assert_eq!(orphans[0]["video_id"], id.as_str());
            assert_eq!(orphans[0]["provider"], case.name);
            assert_eq!(orphans[0]["tenant_id"], tenant.as_str());
        }
        assert_eq!(ledger_kinds(&app.db, &id).await, vec!["hold", "capture"]);
        app.assert_ledger_consistent().await;
    }
}

/// With every provider enabled, a lost answer at the cheapest moves the job to the next one:
/// two upstream jobs in all, the video finishes at the second, charged once.
#[tokio::test]
async fn a_lost_submit_answer_fails_over_once() {
    let fake = fake().await;
    let app = every_provider(&fake).await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    let body = json!({"model": "seedance-2.0-fast", "prompt": "a boat", "seconds": 5});
    let quote: Value = app
        .client
        .post(app.url("/v1/videos/quote"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .expect("quote")
        .json()
        .await
        .expect("json");
    let first = quote["pick"].as_str().expect("pick").to_string();
    let second = quote["candidates"][1]["provider"]
        .as_str()
        .expect("a second candidate")
        .to_string();
    fake.inject(&first, "submit", Fault::LostAnswer);
    let created: Value = app
        .create_video(&key, body)
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let done = app.wait_terminal(&key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let made: usize = cases().iter().map(|c| fake.jobs_made(c.prefix)).sum();
    assert_eq!(made, 2, "jobs made upstream");
    assert_eq!(fake.jobs_made(&first), 1);
    assert_eq!(fake.jobs_made(&second), 1);
    assert_eq!(ledger_kinds(&app.db, &id).await, vec!["hold", "capture"]);
    app.assert_ledger_consistent().await;
}

/// With every provider on, a provider that refuses a request its capabilities admit is a
/// provider-side failure: the job moves on and finishes elsewhere, charged once, and routing
/// leaves that provider out of that shape for a while. When every candidate refuses, the
/// create is one 400 `unsupported_capability` naming each provider's reason.
#[tokio::test]
async fn a_provider_refusal_moves_the_job_on_and_is_remembered() {
    let fake = fake().await;
    let app = every_provider(&fake).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    let quote = |body: Value| {
        let app = &app;
        let key = key.clone();
        async move {
            app.client
                .post(app.url("/v1/videos/quote"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .expect("quote")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let body = json!({"model": "seedance-2.0-fast", "prompt": "a boat", "seconds": 5});
    let before = quote(body.clone()).await;
    let first = before["pick"].as_str().expect("pick").to_string();
    fake.inject(
        &first,
        "submit",
        Fault::Status {
            status: 404,
            retry_after: None,
        },
    );
    let response = app.create_video(&key, body.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let moved_to = response.headers()["x-gateway-provider"]
        .to_str()
        .expect("provider")
        .to_string();
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let done = app.wait_terminal(&key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(fake.jobs_made(&first), 0);
    let made: usize = cases().iter().map(|c| fake.jobs_made(c.prefix)).sum();
    assert_eq!(made, 1);
    assert_eq!(ledger_kinds(&app.db, &id).await, vec!["hold", "capture"]);
    let after = quote(body.clone()).await;
    assert_ne!(after["pick"], first.as_str(), "{after}");
    assert!(
        after["excluded"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x["provider"] == first.as_str()
                && x["reason"].as_str().is_some_and(|r| r.contains("recently")))),
        "{after}"
    );
    let _ = moved_to;

    // Every candidate refuses another shape: one error with every provider's reason.
    let other = json!({"model": "seedance-2.0-fast", "prompt": "a boat", "seconds": 10});
    let candidates: Vec<String> = quote(other.clone()).await["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["provider"].as_str().expect("name").to_string())
        .collect();
    assert!(candidates.len() >= 2, "{candidates:?}");
    for name in &candidates {
        fake.inject(
            name,
            "submit",
            Fault::Status {
                status: 422,
                retry_after: None,
            },
        );
    }
    let available_before = app.balance(&tenant).await["available"].clone();
    let response = app.create_video(&key, other).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refused: Value = response.json().await.expect("json");
    assert_eq!(
        refused["error"]["code"], "unsupported_capability",
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    for name in &candidates {
        assert!(
            message.contains(&format!("{name} refused")),
            "{name}: {message}"
        );
    }
    assert_eq!(app.balance(&tenant).await["available"], available_before);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn test_keys_never_reach_a_paid_upstream_even_when_one_is_enabled() {
    for case in cases() {
        let fake = fake().await;
        // The paid upstream is enabled and the sandbox is not offered to live keys.
        let app = gateway_for(&case, &fake, |_| {}).await;
        let (tenant, key) = app.tenant_with_key("test", 10_000).await;
        let response = app.create_video(&key, (case.t2v)()).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", case.name);
        assert_eq!(response.headers()["x-gateway-provider"], "sandbox");
        let created: Value = response.json().await.expect("json");
        let done = app
            .wait_terminal(&key, created["id"].as_str().expect("id"))
            .await;
        assert_eq!(done["status"], "completed", "{}: {done}", case.name);
        assert_eq!(done["mode"], "test");
        assert_eq!(
            fake.calls(case.prefix).len(),
            0,
            "{}: a test key reached the paid upstream",
            case.name
        );
        let balance = app.balance(&tenant).await;
        assert_eq!(
            (balance["available"].as_i64(), balance["held"].as_i64()),
            (Some(10_000), Some(0)),
            "{}: the live balance paid for a test key",
            case.name
        );
    }
}

#[tokio::test]
async fn an_upstream_that_keeps_failing_ends_the_job_failed_with_its_hold_voided() {
    let case = &cases()[0];
    let fake = fake().await;
    let app = gateway_for(case, &fake, |_| {}).await;
    let (tenant, key) = app.tenant_with_key("live", 10_000).await;
    // Every poll fails, each asking to be retried at once: the job runs out of attempts.
    for _ in 0..20 {
        fake.inject(
            case.prefix,
            "poll",
            Fault::Status {
                status: 503,
                retry_after: Some(0),
            },
        );
    }
    let response = app.create_video(&key, (case.t2v)()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id");
    let done = app.wait_terminal(&key, id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "upstream_unavailable");
    assert_eq!(done["cost"]["charged"], 0);
    let polls = fake
        .calls(case.prefix)
        .iter()
        .filter(|c| c.op == "poll")
        .count();
    assert_eq!(polls, 8, "given up after its attempts, not before");
    common::assert_postings(
        &app.db,
        id,
        &[("hold", -case.t2v_price), ("void", case.t2v_price)],
    )
    .await;
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(10_000), Some(0))
    );
}

/// A duplicate waits for the first request's answer for `server.idempotency_wait_ms` (15 s by
/// default, 1 s here), then is told the key is in progress.
#[tokio::test]
async fn a_duplicate_of_a_create_still_running_past_the_wait_gets_idempotency_in_progress() {
    let case = &cases()[0];
    let fake = fake().await;
    let app = gateway_for(case, &fake, |config| {
        config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt)
            .timeout_secs = Some(30);
        config.server.idempotency_wait_ms = 1_000;
    })
    .await;
    let (tenant, key) = app.tenant_with_key("live", 10_000).await;
    // The first create's submit is held upstream longer than a duplicate waits (1 s).
    fake.inject(case.prefix, "submit", Fault::Hang { millis: 3_000 });
    let create = || {
        app.client
            .post(app.url("/v1/videos"))
            .bearer_auth(&key)
            .header("idempotency-key", "slow-1")
            .json(&(case.t2v)())
            .send()
    };
    let first = create();
    let duplicate = async {
        // Sent once the first is known to be submitting: its key is stored, its answer not.
        let fake = &fake;
        let submitting = common::eventually(Duration::from_secs(10), move || async move {
            fake.calls(case.prefix).iter().any(|c| c.op == "submit")
        })
        .await;
        assert!(submitting, "the first create never reached the upstream");
        create().await.expect("send")
    };
    let (first, duplicate) = tokio::join!(first, duplicate);
    let first = first.expect("send");
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let body: Value = duplicate.json().await.expect("json");
    assert_eq!(body["error"]["code"], "idempotency_in_progress", "{body}");
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.expect("json");

    // Once answered, the key replays the first answer; one job, one hold, one submit.
    let replay = create().await.expect("send");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replayed: Value = replay.json().await.expect("json");
    assert_eq!(replayed["id"], first["id"]);
    let (_, list) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    let submits = fake
        .calls(case.prefix)
        .iter()
        .filter(|c| c.op == "submit")
        .count();
    assert_eq!(submits, 1);
    let id = first["id"].as_str().expect("id");
    app.wait_terminal(&key, id).await;
    common::assert_postings(&app.db, id, &[("hold", -case.t2v_price), ("capture", 0)]).await;
    assert_eq!(
        app.balance(&tenant).await["available"].as_i64(),
        Some(10_000 - case.t2v_price)
    );
}
