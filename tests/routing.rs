//! Cost routing over the five seed providers: the pick and the exact upstream cost for a
//! table of request shapes, exclusions with reasons, pinned and ordered routing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::TestApp;
use fake_upstream::{FakeUpstream, Fault, FAKE_KEY};
use reqwest::StatusCode;
use seedance_gateway::config::{Config, Secret};
use serde_json::{json, Value};

async fn all_providers(
    adjust: impl FnOnce(&mut Config) + Send + 'static,
) -> (FakeUpstream, TestApp) {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    let bases: Vec<(String, String)> = [
        "seedance-it",
        "apiframe",
        "aigateway",
        "seedanceapi",
        "aimlapi",
    ]
    .iter()
    .map(|p| (p.to_string(), fake.base_url(p)))
    .collect();
    let app = TestApp::spawn_with(move |config| {
        config.providers.sandbox.enabled = false;
        for (prefix, base) in bases {
            let upstream = config.providers.upstream_mut(
                seedance_gateway::types::ids::ProviderId::parse(&prefix).expect("a known provider"),
            );
            upstream.enabled = true;
            upstream.base_url = Some(base);
            upstream.api_key = Some(Secret::new(FAKE_KEY));
            upstream.poll_interval_ms = Some(50);
        }
        adjust(config);
    })
    .await;
    (fake, app)
}

async fn ask_quote(app: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/v1/videos/quote"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn the_cheapest_capable_provider_is_picked_at_its_exact_cost() {
    let (_fake, app) = all_providers(|_| {}).await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    let img = "https://img.example.com/a.png";
    let vid = "https://vid.example.com/a.mp4";
    let aud = "https://aud.example.com/a.mp3";
    #[rustfmt::skip]
    let cases: Vec<(Value, &str, i64)> = vec![
        (json!({"model": "seedance-2.0-fast", "seconds": 5, "resolution": "720p", "aspect_ratio": "16:9"}), "aigateway", 57_750),
        // AIgateway offers Fast only (its seed names one model).
        (json!({"model": "seedance-2.0", "seconds": 10, "resolution": "720p", "aspect_ratio": "9:16"}), "aimlapi", 2_500_000),
        (json!({"model": "seedance-2.0-fast", "seconds": 5, "resolution": "480p", "aspect_ratio": "16:9"}), "aimlapi", 500_000),
        (json!({"model": "seedance-2.0", "seconds": 10, "resolution": "1080p", "aspect_ratio": "16:9"}), "aimlapi", 2_500_000),
        (json!({"model": "seedance-2.0-mini", "seconds": 6, "resolution": "480p", "aspect_ratio": "16:9"}), "seedanceapi", 860_000),
        (json!({"model": "seedance-2.0-mini", "seconds": 5, "resolution": "720p", "aspect_ratio": "1:1", "reference_video_urls": [vid]}), "seedanceapi", 940_000),
        (json!({"model": "seedance-2.0-fast", "seconds": 15, "resolution": "720p", "aspect_ratio": "21:9"}), "aigateway", 173_250),
        // AIgateway takes no image (none in its documents).
        (json!({"model": "seedance-2.0", "seconds": 4, "resolution": "720p", "aspect_ratio": "16:9", "image_url": img}), "aimlapi", 1_000_000),
        (json!({"model": "seedance-2.0-fast", "seconds": 4, "resolution": "720p", "aspect_ratio": "16:9", "image_url": img}), "aimlapi", 400_000),
        (json!({"model": "seedance-2.0-fast", "seconds": 5, "resolution": "720p", "aspect_ratio": "16:9", "image_url": img, "last_frame_url": img}), "aimlapi", 500_000),
        (json!({"model": "seedance-2.0-fast", "seconds": 5, "resolution": "720p", "aspect_ratio": "16:9", "generate_audio": true}), "aimlapi", 500_000),
        (json!({"model": "seedance-2.0", "seconds": 5, "resolution": "720p", "aspect_ratio": "16:9", "seed": 42}), "aimlapi", 1_250_000),
        (json!({"model": "seedance-2.0-fast", "seconds": 10, "resolution": "720p", "aspect_ratio": "16:9", "reference_image_urls": [img, img]}), "aimlapi", 1_000_000),
        (json!({"model": "seedance-2.0-mini", "seconds": 4, "resolution": "480p", "aspect_ratio": "9:16"}), "seedanceapi", 570_000),
        (json!({"model": "seedance-2.0-mini", "seconds": 15, "resolution": "720p", "aspect_ratio": "3:4"}), "seedanceapi", 4_620_000),
        // AI/ML API's reference allows 1080p for the standard model only.
        (json!({"model": "seedance-2.0-fast", "seconds": 15, "resolution": "1080p", "aspect_ratio": "9:16"}), "seedanceapi", 4_800_000),
        (json!({"model": "seedance-2.0", "seconds": 7, "resolution": "1080p", "aspect_ratio": "4:3"}), "aimlapi", 1_750_000),
        (json!({"model": "seedance-2.0-fast", "seconds": 4, "resolution": "720p", "aspect_ratio": "4:3"}), "aigateway", 46_200),
        (json!({"model": "seedance-2.0-fast", "seconds": 12, "resolution": "720p", "aspect_ratio": "3:4"}), "aigateway", 138_600),
        (json!({"model": "seedance-2.0-mini", "seconds": 9, "resolution": "480p", "aspect_ratio": "21:9", "reference_video_urls": [vid]}), "seedanceapi", 810_000),
        (json!({"model": "seedance-2.0", "seconds": 15, "resolution": "720p", "aspect_ratio": "16:9", "reference_audio_urls": [aud]}), "aimlapi", 3_750_000),
        (json!({"model": "seedance-2.0-fast", "seconds": 10, "resolution": "1080p", "aspect_ratio": "16:9", "image_url": img}), "seedanceapi", 3_200_000),
        (json!({"model": "seedance-2.0-mini", "seconds": 10, "resolution": "720p", "aspect_ratio": "adaptive"}), "seedanceapi", 3_080_000),
    ];
    assert!(cases.len() >= 20);
    for (mut body, provider, cost) in cases {
        body["prompt"] = json!("a shape of request");
        let (status, quote) = ask_quote(&app, &key, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {quote}");
        assert_eq!(quote["pick"], provider, "{body}: {quote}");
        assert_eq!(quote["route"], "cheapest");
        assert_eq!(
            quote["candidates"][0]["upstream_cost_micro_usd"], cost,
            "{body}: {quote}"
        );
        let costs: Vec<i64> = quote["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .map(|c| c["upstream_cost_micro_usd"].as_i64().expect("priced"))
            .collect();
        assert!(
            costs.windows(2).all(|w| w[0] <= w[1]),
            "ranked by cost: {quote}"
        );
        let seconds = body["seconds"].as_i64().expect("seconds");
        let rate = match body["model"].as_str() {
            Some("seedance-2.0") => 60,
            Some("seedance-2.0-fast") => 50,
            _ => 35,
        };
        assert_eq!(
            quote["price"]["credits"],
            rate * seconds,
            "the caller's price"
        );
    }
}

#[tokio::test]
async fn exclusions_name_their_reasons_and_nothing_is_created() {
    let (fake, app) = all_providers(|_| {}).await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    let (status, quote) = ask_quote(
        &app,
        &key,
        json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5, "resolution": "480p"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reasons: Vec<(String, String)> = quote["excluded"]
        .as_array()
        .expect("excluded")
        .iter()
        .map(|e| {
            (
                e["provider"].as_str().expect("p").to_string(),
                e["reason"].as_str().expect("r").to_string(),
            )
        })
        .collect();
    let reason = |p: &str| {
        reasons
            .iter()
            .find(|(n, _)| n == p)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    assert!(reason("aigateway").contains("480p"), "{reasons:?}");
    assert!(reason("seedance-it").contains("480p"), "{reasons:?}");
    assert!(
        reason("apiframe").contains("apiframe_usd_per_credit"),
        "{reasons:?}"
    );
    let (_, list) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    assert!(
        fake.calls("aimlapi").is_empty(),
        "a quote calls no upstream"
    );

    // A request only an unpriced provider could serve is refused by cheapest routing...
    let only_apiframe = json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 8, "aspect_ratio": "adaptive"});
    let response = app.create_video(&key, only_apiframe.clone()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["code"], "unsupported_capability");
    assert!(error["error"]["message"]
        .as_str()
        .expect("message")
        .contains("apiframe"));
    // ...but reaches it when ordered or pinned.
    let mut ordered = only_apiframe.clone();
    ordered["routing"] = json!({"strategy": "ordered"});
    let response = app.create_video(&key, ordered).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-gateway-provider"], "apiframe");
    assert_eq!(response.headers()["x-gateway-route"], "ordered");
}

#[tokio::test]
async fn pinned_and_ordered_routing_follow_the_request() {
    let (fake, app) = all_providers(|_| {}).await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    let body = json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5});
    let mut pinned = body.clone();
    pinned["routing"] = json!({"providers": ["seedance-it"]});
    let response = app.create_video(&key, pinned).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-gateway-provider"], "seedance-it");
    assert_eq!(response.headers()["x-gateway-route"], "pinned");
    assert_eq!(
        fake.calls("seedance-it")
            .iter()
            .filter(|c| c.op == "submit")
            .count(),
        1
    );

    let mut ordered = body.clone();
    ordered["routing"] = json!({"strategy": "ordered", "providers": ["seedanceapi", "aimlapi"]});
    ordered["resolution"] = json!("480p");
    ordered["seconds"] = json!(10);
    let (_, quote) = ask_quote(&app, &key, ordered).await;
    assert_eq!(quote["route"], "ordered");
    assert_eq!(quote["pick"], "seedanceapi");
    assert_eq!(quote["candidates"][1]["provider"], "aimlapi");

    let response = app.create_video(&key, body).await;
    assert_eq!(response.headers()["x-gateway-provider"], "aigateway");
    assert_eq!(response.headers()["x-gateway-route"], "cheapest");
}

#[tokio::test]
async fn a_configured_credit_value_prices_apiframe_and_overrides_replace_list_prices() {
    let (_fake, app) = all_providers(|config| {
        config.pricing.apiframe_usd_per_credit = Some("0.001".into());
        config.pricing.upstream_usd_per_second.insert(
            "aimlapi".into(),
            [("seedance-2.0-mini".to_string(), "0.01".to_string())]
                .into_iter()
                .collect(),
        );
    })
    .await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    let (_, quote_camera) = ask_quote(
        &app,
        &key,
        json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 10, "camera_fixed": true}),
    )
    .await;
    assert_eq!(quote_camera["pick"], "apiframe");
    assert_eq!(
        quote_camera["candidates"][0]["upstream_cost_micro_usd"],
        20_000
    );
    let (_, quote_mini) = ask_quote(
        &app,
        &key,
        json!({"prompt": "x", "model": "seedance-2.0-mini", "seconds": 6, "resolution": "480p"}),
    )
    .await;
    assert_eq!(quote_mini["pick"], "apiframe", "{quote_mini}");
    assert_eq!(
        quote_mini["candidates"][0]["upstream_cost_micro_usd"],
        6_000
    );
    assert_eq!(quote_mini["candidates"][1]["provider"], "aimlapi");
    assert_eq!(
        quote_mini["candidates"][1]["upstream_cost_micro_usd"],
        60_000
    );
}

#[tokio::test]
async fn models_list_the_union_of_capabilities_and_the_callers_price() {
    let (_fake, app) = all_providers(|_| {}).await;
    let (_, key) = app.tenant_with_key("live", 0).await;
    let (status, models) = app.get_json(&key, "/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    let fast = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == "seedance-2.0-fast")
        .expect("fast");
    assert_eq!(fast["price_per_second"], 50);
    assert_eq!(
        fast["capabilities"]["seconds"],
        json!((4..=15).collect::<Vec<_>>())
    );
    assert_eq!(
        fast["capabilities"]["resolutions"],
        json!(["480p", "720p", "1080p"])
    );
    assert_eq!(fast["capabilities"]["max_reference_images"], 9);
    assert!(fast["providers"].as_array().expect("providers").len() >= 4);
}

#[tokio::test]
async fn a_failing_provider_hands_the_job_to_the_next_candidate_and_it_is_charged_once() {
    let (fake, app) = all_providers(|_| {}).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    // Cheapest first: aigateway, aimlapi, seedanceapi, seedance-it.
    fake.inject(
        "aigateway",
        "submit",
        Fault::Status {
            status: 402,
            retry_after: None,
        },
    );
    fake.inject(
        "aimlapi",
        "submit",
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-gateway-provider"], "seedanceapi");
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id");
    let done = app.wait_terminal(&key, id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["provider"], "seedanceapi");
    assert_eq!(done["cost"]["charged"], 250);
    assert_eq!(
        common::ledger_kinds(&app.db, id).await,
        vec!["hold", "capture"]
    );
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(100_000 - 250), Some(0))
    );

    let admin: Value = app
        .admin_get(&format!("/admin/v1/videos/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let attempts: Vec<(String, String)> = admin["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["provider"].as_str().expect("p").to_string(),
                a["outcome"].as_str().expect("o").to_string(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            ("aigateway".to_string(), "unavailable".to_string()),
            ("aimlapi".to_string(), "transient".to_string()),
            ("seedanceapi".to_string(), "accepted".to_string()),
        ]
    );
    assert!(
        fake.calls("seedance-it").is_empty(),
        "the last candidate was never needed"
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn a_content_refusal_does_not_fail_over_a_capability_refusal_does() {
    let (fake, app) = all_providers(|_| {}).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    // seedanceapi (the cheapest for Mini at 480p) refuses the prompt itself (its fake's 400 is
    // INVALID_PROMPT): the client's 400, sent nowhere else.
    let mini =
        json!({"prompt": "x", "model": "seedance-2.0-mini", "seconds": 6, "resolution": "480p"});
    let (_, quote) = ask_quote(&app, &key, mini.clone()).await;
    assert_eq!(quote["pick"], "seedanceapi", "{quote}");
    fake.inject(
        "seedanceapi",
        "submit",
        Fault::Status {
            status: 400,
            retry_after: None,
        },
    );
    let response = app.create_video(&key, mini).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refused: Value = response.json().await.expect("json");
    assert_eq!(refused["error"]["code"], "invalid_request", "{refused}");
    assert!(
        fake.calls("aimlapi").is_empty(),
        "a refused request is not sent elsewhere"
    );

    // AIgateway refuses without saying why: taken as "cannot serve this", the job moves on.
    fake.inject(
        "aigateway",
        "submit",
        Fault::Status {
            status: 400,
            retry_after: None,
        },
    );
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 6}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(response.headers()["x-gateway-provider"], "aigateway");
    let created: Value = response.json().await.expect("json");
    let done = app
        .wait_terminal(&key, created["id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let aimlapi_calls = fake.calls("aimlapi").len();

    // A transient failure with fallback refused stays where it was sent.
    fake.inject(
        "aigateway",
        "submit",
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5, "routing": {"fallback": false}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.expect("json");
    let done = app
        .wait_terminal(&key, created["id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["provider"], "aigateway",
        "retried where it was sent, not failed over"
    );
    assert_eq!(fake.calls("aimlapi").len(), aimlapi_calls);
    assert_eq!(app.balance(&tenant).await["held"].as_i64(), Some(0));
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn a_failing_provider_is_left_out_while_its_circuit_is_open() {
    let (fake, app) = all_providers(|config| {
        config.routing.circuit_failure_threshold = 2;
        config.routing.circuit_cooldown_secs = 1;
    })
    .await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    let body = json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5});
    for _ in 0..2 {
        fake.inject(
            "aigateway",
            "submit",
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        );
        let response = app.create_video(&key, body.clone()).await;
        assert_eq!(
            response.headers()["x-gateway-provider"],
            "aimlapi",
            "failed over"
        );
    }
    let (_, quote) = ask_quote(&app, &key, body.clone()).await;
    assert_eq!(quote["pick"], "aimlapi");
    let excluded = quote["excluded"].as_array().expect("excluded");
    let aigateway = excluded
        .iter()
        .find(|e| e["provider"] == "aigateway")
        .expect("aigateway excluded");
    assert!(
        aigateway["reason"]
            .as_str()
            .expect("reason")
            .contains("circuit open"),
        "{aigateway}"
    );
    let providers: Value = app
        .admin_get("/admin/v1/providers")
        .await
        .json()
        .await
        .expect("json");
    let view = providers["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["name"] == "aigateway")
        .expect("listed")
        .clone();
    assert_eq!(view["circuit"]["state"], "open");

    // The operator can close it at once.
    let reset = app
        .admin_post("/admin/v1/providers/aigateway/circuit/reset", json!({}))
        .await;
    assert_eq!(reset.status(), StatusCode::OK);
    let (_, quote) = ask_quote(&app, &key, body.clone()).await;
    assert_eq!(quote["pick"], "aigateway");

    // Open it again; after the cool-down a successful probe closes it.
    for _ in 0..2 {
        fake.inject(
            "aigateway",
            "submit",
            Fault::Status {
                status: 500,
                retry_after: None,
            },
        );
        app.create_video(&key, body.clone()).await;
    }
    assert_eq!(
        ask_quote(&app, &key, body.clone()).await.1["pick"],
        "aimlapi"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let probe = app.create_video(&key, body.clone()).await;
    assert_eq!(
        probe.headers()["x-gateway-provider"],
        "aigateway",
        "half-open: the next job probes"
    );
    let providers: Value = app
        .admin_get("/admin/v1/providers")
        .await
        .json()
        .await
        .expect("json");
    let view = providers["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["name"] == "aigateway")
        .expect("listed")
        .clone();
    assert_eq!(view["circuit"]["state"], "closed");
}

#[tokio::test]
async fn fastest_routing_follows_observed_completion_times() {
    let (fake, app) = all_providers(|_| {}).await;
    fake.set_provider_job_duration("aimlapi", std::time::Duration::from_millis(1500));
    fake.set_provider_job_duration("seedanceapi", std::time::Duration::from_millis(150));
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    // 480p: AIgateway (720p only) is out, AI/ML API is the cheaper of the two that serve it.
    let body =
        json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 10, "resolution": "480p"});
    let mut fastest = body.clone();
    fastest["routing"] = json!({"strategy": "fastest"});
    // Nothing observed yet: fastest falls back to cost order.
    let (_, quote) = ask_quote(&app, &key, fastest.clone()).await;
    assert_eq!(quote["route"], "fastest");
    assert_eq!(quote["pick"], "aimlapi");

    for provider in ["aimlapi", "seedanceapi"] {
        let mut pinned = body.clone();
        pinned["routing"] = json!({"providers": [provider]});
        let created: Value = app
            .create_video(&key, pinned)
            .await
            .json()
            .await
            .expect("json");
        let done = app
            .wait_terminal(&key, created["id"].as_str().expect("id"))
            .await;
        assert_eq!(done["status"], "completed");
    }
    let (_, quote) = ask_quote(&app, &key, fastest).await;
    assert_eq!(quote["pick"], "seedanceapi", "{quote}");
    assert_eq!(quote["candidates"][1]["provider"], "aimlapi");
    let (_, cheapest) = ask_quote(&app, &key, body).await;
    assert_eq!(cheapest["pick"], "aimlapi");
}

async fn key_id_of(app: &TestApp, tenant: &str) -> String {
    let keys: Value = app
        .admin_get(&format!("/admin/v1/tenants/{tenant}/keys"))
        .await
        .json()
        .await
        .expect("json");
    keys["data"][0]["id"].as_str().expect("key id").to_string()
}

#[tokio::test]
async fn tenant_and_key_policies_narrow_what_a_request_may_use() {
    let (_fake, app) = all_providers(|_| {}).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    let put = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/routing")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"strategy": "ordered", "providers": ["seedanceapi", "aimlapi"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(put.status(), StatusCode::OK);
    let body = json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5});
    let response = app.create_video(&key, body.clone()).await;
    assert_eq!(response.headers()["x-gateway-provider"], "seedanceapi");
    assert_eq!(response.headers()["x-gateway-route"], "ordered");

    // The request may choose its strategy within the allowed set...
    let mut cheapest = body.clone();
    cheapest["routing"] = json!({"strategy": "cheapest"});
    let (_, quote) = ask_quote(&app, &key, cheapest).await;
    assert_eq!(quote["pick"], "aimlapi");
    let aigateway = quote["excluded"]
        .as_array()
        .expect("excluded")
        .iter()
        .find(|e| e["provider"] == "aigateway")
        .expect("excluded")
        .clone();
    assert!(
        aigateway["reason"]
            .as_str()
            .expect("reason")
            .contains("routing policy"),
        "{aigateway}"
    );

    // ...but cannot widen it.
    let mut escape = body.clone();
    escape["routing"] = json!({"providers": ["aigateway"]});
    let response = app.create_video(&key, escape).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // A key's policy narrows its tenant's further.
    let key_id = key_id_of(&app, &tenant).await;
    let put = app
        .client
        .put(app.url(&format!("/admin/v1/keys/{key_id}/routing")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"providers": ["aimlapi", "aigateway"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(put.status(), StatusCode::OK);
    let response = app.create_video(&key, body).await;
    assert_eq!(response.headers()["x-gateway-provider"], "aimlapi");
    assert_eq!(
        response.headers()["x-gateway-route"],
        "pinned",
        "only aimlapi is in both lists"
    );

    let bad = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/routing")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"providers": ["nowhere"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_job_that_fails_upstream_is_resubmitted_when_the_tenant_asks_and_charged_once() {
    let (fake, app) = all_providers(|_| {}).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    let put = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/routing")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"resubmit_failed": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(put.status(), StatusCode::OK);
    fake.fail_next_jobs("aigateway", 1);
    let created: Value = app
        .create_video(
            &key,
            json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    assert_eq!(created["provider"], "aigateway");
    let done = app.wait_terminal(&key, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["provider"], "aimlapi");
    assert_eq!(done["cost"]["charged"], 250);
    assert_eq!(
        common::ledger_kinds(&app.db, id).await,
        vec!["hold", "capture"]
    );
    let admin: Value = app
        .admin_get(&format!("/admin/v1/videos/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let outcomes: Vec<&str> = admin["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["outcome"].as_str().expect("o"))
        .collect();
    assert_eq!(outcomes, vec!["accepted", "failed", "accepted"]);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn the_savings_report_compares_what_was_paid_with_the_dearest_and_the_baseline() {
    let (_fake, app) =
        all_providers(|config| config.routing.baseline_provider = Some("seedance-it".into())).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    for _ in 0..2 {
        let created: Value = app
            .create_video(
                &key,
                json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5}),
            )
            .await
            .json()
            .await
            .expect("json");
        let done = app
            .wait_terminal(&key, created["id"].as_str().expect("id"))
            .await;
        assert_eq!(done["provider"], "aigateway");
    }
    let report: Value = app
        .admin_get("/admin/v1/reports/savings")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(report["baseline_provider"], "seedance-it");
    let row = report["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|r| r["tenant_id"] == tenant.as_str())
        .expect("row")
        .clone();
    assert_eq!(row["jobs"], 2);
    // aigateway $0.01155/s × 5 s × 2; the dearest eligible and the baseline: seedance.it.com 242 credits × 2.
    assert_eq!(row["paid_micro_usd"], 115_500);
    assert_eq!(row["most_expensive_micro_usd"], 4_840_000);
    assert_eq!(row["saved_vs_most_expensive_micro_usd"], 4_724_500);
    assert_eq!(row["baseline_micro_usd"], 4_840_000);
    assert_eq!(row["saved_vs_baseline_micro_usd"], 4_724_500);
    let today = seedance_gateway::domain::reports::date_of_day(
        seedance_gateway::storage::now_ms() / 86_400_000,
    );
    assert_eq!(row["date"], today.as_str());
    let bad = app
        .admin_get("/admin/v1/reports/savings?from=2026-02-30")
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

async fn put_prices(app: &TestApp, tenant: &str, body: Value) -> StatusCode {
    app.client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/prices")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("send")
        .status()
}

#[tokio::test]
async fn a_tenant_price_list_sets_the_quote_the_hold_and_the_charge() {
    let (_fake, app) = all_providers(|_| {}).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    let status = put_prices(&app, &tenant, json!({"kind": "fixed", "rules": [
        {"model": "seedance-2.0-fast", "credits_per_second": 40},
        {"model": "seedance-2.0-fast", "resolution": "1080p", "credits_per_second": 70},
        {"model": "seedance-2.0-fast", "resolution": "1080p", "input_mode": "image", "credits_per_second": 90}
    ]}))
    .await;
    assert_eq!(status, StatusCode::OK);
    for (body, expected) in [
        (
            json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5}),
            200,
        ),
        (
            json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5, "resolution": "1080p"}),
            350,
        ),
        (
            json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5, "resolution": "1080p", "image_url": "https://img.example.com/a.png"}),
            450,
        ),
        (
            json!({"prompt": "x", "model": "seedance-2.0", "seconds": 5}),
            300,
        ),
    ] {
        let (_, quote) = ask_quote(&app, &key, body.clone()).await;
        assert_eq!(quote["price"]["credits"], expected, "{body}");
        let created: Value = app
            .create_video(&key, body.clone())
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(created["cost"]["reserved"], expected);
        let done = app
            .wait_terminal(&key, created["id"].as_str().expect("id"))
            .await;
        assert_eq!(
            done["cost"]["charged"], expected,
            "the charge equals the quote"
        );
    }
    assert_eq!(
        put_prices(
            &app,
            &tenant,
            json!({"kind": "fixed", "rules": [{"model": "sora-2", "credits_per_second": 1}]})
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put_prices(
            &app,
            &tenant,
            json!({"kind": "cost_plus", "markup_percent": "-5"})
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put_prices(&app, &tenant, json!({"kind": "flat"})).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn cost_plus_prices_the_upstream_cost_with_a_markup_rounded_up_once() {
    let (_fake, app) = all_providers(|_| {}).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    assert_eq!(
        put_prices(
            &app,
            &tenant,
            json!({"kind": "cost_plus", "markup_percent": "25"})
        )
        .await,
        StatusCode::OK
    );
    // Cheapest: aigateway, $0.05775 for 5 s; × 1.25 = 7.21875 credits → 8.
    let body = json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5});
    let (_, quote) = ask_quote(&app, &key, body.clone()).await;
    assert_eq!(quote["price"]["credits"], 8);
    // Pinned to seedance.it.com: 242 credits upstream × 1.25 = 302.5 → 303.
    let mut pinned = body.clone();
    pinned["routing"] = json!({"providers": ["seedance-it"]});
    let created: Value = app
        .create_video(&key, pinned)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(created["cost"]["reserved"], 303);
    let done = app
        .wait_terminal(&key, created["id"].as_str().expect("id"))
        .await;
    assert_eq!(done["cost"]["charged"], 303);
}

#[tokio::test]
async fn the_margin_report_and_cost_mismatch_flags_use_what_the_upstream_reported() {
    // The catalog says AI/ML API Fast costs $0.05/s; the fake reports $0.10/s.
    let (_fake, app) = all_providers(|config| {
        config.pricing.upstream_usd_per_second.insert(
            "aimlapi".into(),
            [("seedance-2.0-fast".to_string(), "0.05".to_string())]
                .into_iter()
                .collect(),
        );
    })
    .await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5, "routing": {"providers": ["aimlapi"]}}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    app.wait_terminal(&key, id).await;

    let margin: Value = app
        .admin_get("/admin/v1/reports/margin")
        .await
        .json()
        .await
        .expect("json");
    let row = margin["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|r| r["tenant_id"] == tenant.as_str())
        .expect("row")
        .clone();
    assert_eq!(row["provider"], "aimlapi");
    assert_eq!(row["revenue_credits"], 250);
    assert_eq!(row["revenue_micro_usd"], 2_500_000);
    assert_eq!(
        row["upstream_cost_micro_usd"], 500_000,
        "the reported cost, not the estimate"
    );
    assert_eq!(row["margin_micro_usd"], 2_000_000);

    let flagged: Value = app
        .admin_get("/admin/v1/reports/cost_mismatches")
        .await
        .json()
        .await
        .expect("json");
    let job = flagged["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|j| j["video_id"] == id)
        .expect("flagged")
        .clone();
    assert_eq!(job["reported_micro_usd"], 500_000);
    assert_eq!(job["estimated_micro_usd"], 250_000);
    let lenient: Value = app
        .admin_get("/admin/v1/reports/cost_mismatches?threshold_percent=150")
        .await
        .json()
        .await
        .expect("json");
    assert!(
        lenient["data"].as_array().expect("data").is_empty(),
        "a 100% difference is under 150%"
    );
}

#[tokio::test]
async fn the_prices_answer_is_the_canonical_form_of_what_was_set() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("live", 0).await;
    let put = |body: Value| {
        app.client
            .put(app.url(&format!("/admin/v1/tenants/{tenant}/prices")))
            .bearer_auth(common::ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    for (sent, answered) in [
        (
            json!({"kind": "cost_plus", "markup_percent": "12.50"}),
            json!({"kind": "cost_plus", "markup_percent": "12.5"}),
        ),
        (
            json!({"kind": "cost_plus", "markup_percent": "0.05"}),
            json!({"kind": "cost_plus", "markup_percent": "0.05"}),
        ),
        (
            json!({"kind": "fixed", "rules": [{"model": "Seedance-2.0-Fast", "resolution": "1080p", "input_mode": "image", "credits_per_second": 90}]}),
            json!({"kind": "fixed", "rules": [{"model": "seedance-2.0-fast", "resolution": "1080p", "input_mode": "image", "credits_per_second": 90}]}),
        ),
    ] {
        let response = put(sent).await.expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.expect("json"), answered);
    }
}

/// An operator corrects a provider's capabilities in configuration, without a release:
/// routing, quotes and the providers view all follow the corrected matrix, and a correction
/// that names no model or an impossible value stops the start with the key at fault.
#[tokio::test]
async fn configured_capability_corrections_take_effect_everywhere() {
    let (_fake, app) = all_providers(|config| {
        let fast = seedance_gateway::config::CapabilityOverride {
            resolutions: Some(vec!["480p".into(), "720p".into(), "1080p".into()]),
            ..Default::default()
        };
        config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::AimlApi)
            .capabilities
            .insert("seedance-2.0-fast".into(), fast);
        let gone = seedance_gateway::config::CapabilityOverride {
            offered: Some(false),
            ..Default::default()
        };
        config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::AiGateway)
            .capabilities
            .insert("seedance-2.0-fast".into(), gone);
    })
    .await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    // AI/ML API takes Fast at 1080p again (the operator knows better), and is the cheapest.
    let (status, quote) = ask_quote(
        &app,
        &key,
        json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 10, "resolution": "1080p"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{quote}");
    assert_eq!(quote["pick"], "aimlapi", "{quote}");
    // AIgateway no longer offers Fast, its only model.
    let (_, quote) = ask_quote(
        &app,
        &key,
        json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5}),
    )
    .await;
    let excluded = quote["excluded"].as_array().expect("excluded");
    assert!(
        excluded
            .iter()
            .any(|e| e["provider"] == "aigateway"
                && e["reason"] == "does not offer seedance-2.0-fast"),
        "{quote}"
    );
    let providers: Value = app
        .admin_get("/admin/v1/providers")
        .await
        .json()
        .await
        .expect("json");
    let view = |name: &str| {
        providers["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|p| p["name"] == name)
            .expect("listed")["capabilities"]["models"]
            .clone()
    };
    assert_eq!(view("aigateway"), json!([]));
    let aimlapi_fast = view("aimlapi")
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["model"] == "seedance-2.0-fast")
        .expect("fast")
        .clone();
    assert_eq!(
        aimlapi_fast["resolutions"],
        json!(["480p", "720p", "1080p"])
    );

    // A correction the gateway cannot apply stops the start, naming the key.
    for (model, fix, key_at_fault) in [
        (
            "seedance-3.0",
            seedance_gateway::config::CapabilityOverride::default(),
            "providers.aimlapi.capabilities",
        ),
        (
            "seedance-2.0",
            seedance_gateway::config::CapabilityOverride {
                durations: Some(vec![3]),
                ..Default::default()
            },
            "providers.aimlapi.capabilities.seedance-2.0.durations",
        ),
        (
            "seedance-2.0",
            seedance_gateway::config::CapabilityOverride {
                resolutions: Some(vec!["4k".into()]),
                ..Default::default()
            },
            "providers.aimlapi.capabilities.seedance-2.0.resolutions",
        ),
    ] {
        let mut config = app.config.clone();
        config.server.listen = "127.0.0.1:0".parse().expect("addr");
        config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::AimlApi)
            .capabilities
            .clear();
        config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::AimlApi)
            .capabilities
            .insert(model.into(), fix);
        let error = match seedance_gateway::App::build(config).await {
            Ok(_) => panic!("{model}: started"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.contains(key_at_fault), "{error}");
    }
}

/// The sandbox costs nothing, so while it was live-eligible beside real providers, cheapest
/// routing sent every live job there and charged the live balance for sandbox clips. With a
/// real provider enabled, live keys never reach it; test keys still do.
#[tokio::test]
async fn live_keys_never_reach_the_sandbox_while_a_real_provider_is_enabled() {
    let (_fake, app) = all_providers(|config| config.providers.sandbox.enabled = true).await;
    let (tenant, live) = app.tenant_with_key("live", 100_000).await;
    let body = json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 5});
    let (_, quote) = ask_quote(&app, &live, body.clone()).await;
    let names: Vec<&str> = quote["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .chain(quote["excluded"].as_array().expect("excluded"))
        .map(|c| c["provider"].as_str().expect("name"))
        .collect();
    assert!(!names.contains(&"sandbox"), "{quote}");
    assert!(names.len() >= 5, "{quote}");
    let response = app.create_video(&live, body.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(response.headers()["x-gateway-provider"], "sandbox");
    let mut pinned = body.clone();
    pinned["routing"] = json!({"providers": ["sandbox"]});
    let response = app.create_video(&live, pinned).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let key: Value = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant}/keys"),
            json!({"mode": "test"}),
        )
        .await
        .json()
        .await
        .expect("key");
    let test_key = key["secret"].as_str().expect("secret");
    let response = app.create_video(test_key, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-gateway-provider"], "sandbox");
}

#[tokio::test]
async fn a_cost_plus_failover_to_a_dearer_provider_never_charges_more_than_the_hold() {
    let (fake, app) = all_providers(|_| {}).await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    assert_eq!(
        put_prices(
            &app,
            &tenant,
            json!({"kind": "cost_plus", "markup_percent": "25"})
        )
        .await,
        StatusCode::OK
    );
    // Priced (8 credits) and held at the cheapest, aigateway, which is out of credit: the job
    // fails over to a dearer provider.
    fake.inject(
        "aigateway",
        "submit",
        Fault::Status {
            status: 402,
            retry_after: None,
        },
    );
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["cost"]["reserved"], 8);
    let id = created["id"].as_str().expect("id");
    let done = app.wait_terminal(&key, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_ne!(done["provider"], "aigateway", "{done}");
    assert_eq!(done["cost"]["charged"], 8, "{done}");
    common::assert_postings(&app.db, id, &[("hold", -8), ("capture", 0)]).await;
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(100_000 - 8), Some(0))
    );
    app.assert_ledger_consistent().await;
}

/// A failover or resubmit asks the same question routing does at that moment: a fallback
/// whose circuit opened after the job was routed is skipped, not used.
#[tokio::test]
async fn a_resubmit_never_lands_on_a_provider_that_routing_would_refuse_now() {
    let (fake, app) = all_providers(|config| {
        config.routing.circuit_failure_threshold = 2;
        config.routing.circuit_cooldown_secs = 600;
    })
    .await;
    let (tenant, key) = app.tenant_with_key("live", 100_000).await;
    let put = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/routing")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"resubmit_failed": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(put.status(), StatusCode::OK);
    // Routed to aigateway with fallbacks aimlapi, seedanceapi, seedance-it; it fails there
    // after a while.
    fake.set_provider_job_duration("aigateway", std::time::Duration::from_secs(3));
    fake.fail_next_jobs("aigateway", 1);
    let body = json!({"prompt": "x", "model": "seedance-2.0-fast", "seconds": 5});
    let created: Value = app
        .create_video(&key, body.clone())
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    assert_eq!(created["provider"], "aigateway");
    // Meanwhile aimlapi fails twice and its circuit opens.
    for _ in 0..2 {
        fake.inject(
            "aimlapi",
            "submit",
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        );
        let mut other = body.clone();
        other["routing"] = json!({"providers": ["aimlapi", "seedanceapi"]});
        let response = app.create_video(&key, other).await;
        assert_eq!(response.headers()["x-gateway-provider"], "seedanceapi");
    }
    let (_, quote) = ask_quote(&app, &key, body).await;
    assert!(quote["excluded"]
        .as_array()
        .expect("excluded")
        .iter()
        .any(|e| e["provider"] == "aimlapi"));
    let aimlapi_submits = fake.jobs_made("aimlapi");
    let done = app.wait_terminal(&key, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["provider"], "seedanceapi", "aimlapi was skipped");
    assert_eq!(fake.jobs_made("aimlapi"), aimlapi_submits);
    assert_eq!(done["cost"]["charged"], 250);
    app.assert_ledger_consistent().await;
}
