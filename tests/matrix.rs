//! Every model × resolution × length at every provider, pinned, against the fake upstreams
//! (written from each provider's documents): a combination the provider's capabilities admit
//! completes there; any other is refused at create with `unsupported_capability` naming the
//! provider and the reason. Never a late 400, never a failed job.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::Duration;

use common::TestApp;
use fake_upstream::{FakeUpstream, FAKE_KEY};
use reqwest::StatusCode;
use seedance_gateway::config::Secret;
use serde_json::{json, Value};
use tokio::task::JoinSet;

const PROVIDERS: [&str; 5] = [
    "seedance-it",
    "apiframe",
    "aigateway",
    "seedanceapi",
    "aimlapi",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_combination_completes_or_is_refused_at_create() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(100));
    let bases: Vec<(String, String)> = PROVIDERS
        .iter()
        .map(|p| (p.to_string(), fake.base_url(p)))
        .collect();
    let app = TestApp::spawn_with(move |config| {
        config.providers.sandbox.enabled = false;
        config.pricing.apiframe_usd_per_credit = Some("0.01".into());
        config.workers.tick_ms = 20;
        for (prefix, base) in bases {
            let upstream = config.providers.upstream_mut(
                seedance_gateway::types::ids::ProviderId::parse(&prefix).expect("a known provider"),
            );
            upstream.enabled = true;
            upstream.base_url = Some(base);
            upstream.api_key = Some(Secret::new(FAKE_KEY));
            upstream.poll_interval_ms = Some(50);
            upstream.max_concurrent = Some(200);
        }
    })
    .await;
    let (_, key) = app.tenant_with_key("live", 100_000_000).await;

    let mut requests = JoinSet::new();
    for provider in PROVIDERS {
        for model in ["seedance-2.0", "seedance-2.0-fast", "seedance-2.0-mini"] {
            for resolution in ["480p", "720p", "1080p"] {
                for seconds in 4..=15 {
                    let client = app.client.clone();
                    let url = app.url("/v1/videos");
                    let key = key.clone();
                    requests.spawn(async move {
                        let body = json!({
                            "model": model, "prompt": "a paper boat", "seconds": seconds,
                            "resolution": resolution, "routing": {"providers": [provider]},
                        });
                        let response = client
                            .post(url)
                            .bearer_auth(key)
                            .json(&body)
                            .send()
                            .await
                            .expect("send");
                        let status = response.status();
                        let answer: Value = response.json().await.expect("json");
                        (provider, body, status, answer)
                    });
                }
            }
        }
    }
    let mut created = Vec::new();
    let mut refused = 0;
    while let Some(outcome) = requests.join_next().await {
        let (provider, body, status, answer) = outcome.expect("task");
        match status {
            StatusCode::OK => created.push((
                provider,
                body,
                answer["id"].as_str().expect("id").to_string(),
            )),
            StatusCode::BAD_REQUEST => {
                assert_eq!(
                    answer["error"]["code"], "unsupported_capability",
                    "{provider} {body}: {answer}"
                );
                assert!(
                    answer["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(provider)),
                    "{provider} {body}: {answer}"
                );
                refused += 1;
            }
            other => panic!("{provider} {body}: {other} {answer}"),
        }
    }
    let mut completed = 0;
    let mut by_provider = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for (provider, body, id) in &created {
        let done =
            common::wait_terminal(&app.client, &app.base, &key, id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "completed", "{provider} {body}: {done}");
        assert_eq!(done["provider"], *provider, "{body}: {done}");
        completed += 1;
        by_provider.entry(provider).or_default().0 += 1;
    }
    assert_eq!(completed + refused, 5 * 3 * 3 * 12);
    // Each provider serves something, and refuses something.
    for provider in PROVIDERS {
        let served = by_provider.get(provider).map_or(0, |(n, _)| *n);
        assert!(served > 0, "{provider} served nothing");
        assert!(served < 3 * 3 * 12, "{provider} refused nothing");
        eprintln!("{provider}: {served} of 108 combinations served");
    }
    app.assert_ledger_consistent().await;
}
