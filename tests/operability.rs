//! `/metrics` scraped and parsed as Prometheus text; slow and surplus clients cut off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::Duration;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("text");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => {
                buckets.last().map_or(0.0, |b| b.count)
            }
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .reduce(|a, b| a + b)
}

#[tokio::test]
async fn metrics_count_requests_jobs_credits_and_limits() {
    let app = TestApp::spawn_with(|config| {
        config.providers.sandbox.delay_ms = 200;
    })
    .await;
    let (tenant, key) = app.tenant_with_key("test", 10_000).await;
    let created = app
        .create_video(&key, json!({"prompt": "a fox", "seconds": 4}))
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let id = created.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let done = app.wait_terminal(&key, &id).await;
    assert_eq!(done["status"], "completed");
    // A refused request is counted by its limit code.
    let put = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/limits")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"requests_per_minute": 1, "burst": 1}))
        .send()
        .await
        .expect("limits");
    assert!(put.status().is_success(), "{}", put.status());
    let mut saw_429 = false;
    for _ in 0..5 {
        let (status, _) = app.get_json(&key, "/v1/videos").await;
        saw_429 |= status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(saw_429, "the tenant limit never refused");

    let scrape = scrape(&app).await;
    let created_count = value(
        &scrape,
        "gateway_http_requests_total",
        &[
            ("route", "/v1/videos"),
            ("method", "POST"),
            ("status", "200"),
        ],
    );
    assert_eq!(created_count, Some(1.0), "one create counted");
    assert!(
        value(
            &scrape,
            "gateway_http_request_duration_seconds_count",
            &[("route", "/v1/videos/:video_id"), ("method", "GET")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "GET by id timed under its route template: {:?}",
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "gateway_http_requests_total")
            .map(|s| (s.labels.get("route"), s.labels.get("method")))
            .collect::<Vec<_>>()
    );
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| ["route", "provider", "state", "limit"]
                .iter()
                .filter_map(|l| s.labels.get(l))
                .all(|v| !v.contains(&id) && !v.contains(&tenant))),
        "no ids in labels"
    );
    assert_eq!(
        value(
            &scrape,
            "gateway_upstream_requests_total",
            &[
                ("provider", "sandbox"),
                ("operation", "submit"),
                ("outcome", "ok")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &scrape,
            "gateway_jobs_finished_total",
            &[("state", "completed")]
        ),
        Some(1.0)
    );
    let charged = done["cost"]["charged"]
        .as_f64()
        .expect("a completed video's charge");
    assert!(charged > 0.0, "{done}");
    let captured = value(&scrape, "gateway_credits_captured_total", &[]).expect("captured");
    assert_eq!(
        captured, charged,
        "the credits captured are the video's charge"
    );
    assert_eq!(value(&scrape, "gateway_credits_held", &[]), Some(0.0));
    assert_eq!(value(&scrape, "gateway_queue_depth", &[]), Some(0.0));
    assert!(
        value(
            &scrape,
            "gateway_rate_limited_total",
            &[("limit", "rate_limited")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "rate-limit refusals counted by limit: {:?}",
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "gateway_rate_limited_total")
            .collect::<Vec<_>>()
    );
    assert_eq!(
        value(&scrape, "gateway_circuit_state", &[("provider", "sandbox")]),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = TestApp::spawn_with(|config| {
        config.server.header_read_timeout_secs = 1;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("partial head");
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buffer)).await;
    assert!(
        read.is_ok(),
        "the connection stayed open past the header timeout"
    );
    // Whatever was written back, it was not an answer to the unfinished request.
    assert!(!String::from_utf8_lossy(&buffer).contains("200 OK"));
    // The server still serves well-behaved clients.
    let healthy = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthy.status(), StatusCode::OK);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_accept() {
    let app = TestApp::spawn_with(|config| {
        config.server.max_connections = 2;
        config.server.header_read_timeout_secs = 30;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let first = TcpStream::connect(&address).await.expect("first");
    let second = TcpStream::connect(&address).await.expect("second");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(&address)
        .await
        .expect("third connects at TCP level");
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the surplus connection was not closed");
    assert!(buffer.is_empty(), "the surplus connection was served");
    drop(first);
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let healthy = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthy.status(), StatusCode::OK);
    let scrape = scrape(&app).await;
    assert!(value(&scrape, "gateway_connections_rejected_total", &[]).unwrap_or(0.0) >= 1.0);
}

#[tokio::test]
async fn readiness_fails_while_the_shared_rate_store_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server runs (CI installs it)");
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let app = TestApp::spawn_with(move |config| {
        config.limits.redis_url = Some(seedance_gateway::config::Secret::new(url));
    })
    .await;
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    redis.kill().expect("stop redis");
    redis.wait().expect("reaped");
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "redis unreachable");
    // Liveness is unaffected: the process is fine, only not ready.
    let live = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(live.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_whose_body_outlasts_the_request_timeout_gets_408() {
    let app = TestApp::spawn_with(|config| config.server.request_timeout_secs = 1).await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&address).await.expect("connect");
    // Headers at once, then a tenth of the promised body, and nothing more.
    let head = format!(
        "POST /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"prompt\":"
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let started = std::time::Instant::now();
    let mut buffer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buffer)).await;
    let n = read.expect("no answer within 10 s").expect("read");
    let answer = String::from_utf8_lossy(&buffer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered before the timeout: {answer}"
    );
    let (_, list) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(1000)
    );
}

#[tokio::test]
async fn a_request_arriving_while_the_gateway_drains_gets_503_with_retry_after_5() {
    let mut app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    // A connection that has begun its request before the drain finishes it after; the drain
    // must not close a connection hyper has not read yet, so a lost race is tried again.
    let mut answer = String::new();
    for _ in 0..3 {
        let address = app.base.trim_start_matches("http://").to_owned();
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        stream
            .write_all(b"GET /v1/videos HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.begin_drain();
        let draining = common::eventually(Duration::from_secs(5), || {
            let started = app.is_draining();
            async move { started }
        })
        .await;
        assert!(draining, "the gateway never started draining");
        let rest = format!("Authorization: Bearer {key}\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(rest.as_bytes()).await;
        let mut buffer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buffer)).await;
        assert!(read.is_ok(), "no answer within 10 s");
        answer = String::from_utf8_lossy(&buffer).to_lowercase();
        app.restart().await;
        if !answer.is_empty() {
            break;
        }
    }
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("\r\nretry-after: 5\r\n"), "{answer}");
    assert!(answer.contains("\"draining\""), "{answer}");
}
