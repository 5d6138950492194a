//! The archiver: copies each completed output from its upstream URL into the gateway's
//! storage, so it stays downloadable after the upstream's link expires (7 days at some
//! providers, 24 h at others), and removes stored copies when they expire or their video is
//! deleted.
//!
//! The download goes through the SSRF-guarded client (the upstream's URL is not trusted to
//! stay public), must declare an MP4-compatible content type and start like an MP4 (`ftyp`),
//! and may not exceed `storage.max_output_bytes`; it is streamed into storage chunk by chunk.
//! A failed copy is retried with backoff a few times, then left `failed`: content then keeps
//! redirecting to the upstream's URL for as long as that works.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::domain::services::Services;

/// Copies running at once on one replica.
const PARALLEL: i64 = 4;

pub async fn run(state: Arc<Services>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = &state.config.storage;
    let timeout = Duration::from_secs(config.archive_timeout_secs.max(1));
    let client = crate::domain::ssrf::guarded_client(
        &state.config.security.url_allowlist,
        timeout,
        state.config.webhooks.max_redirects,
    )?;
    let tick = Duration::from_millis(state.config.workers.tick_ms.clamp(10, 1000));
    let lease_ms = timeout.as_millis() as i64 + 10_000;
    let sweep_every = Duration::from_secs(config.sweep_interval_secs.max(1));
    let mut last_sweep = std::time::Instant::now() - sweep_every;
    while !shutdown.is_cancelled() {
        let now = now_ms();
        let tasks = match state.db.claim_archive_tasks(now, lease_ms, PARALLEL).await {
            Ok(tasks) => tasks,
            Err(error) => {
                tracing::warn!(%error, "claiming archive tasks failed; retrying");
                Vec::new()
            }
        };
        let busy = !tasks.is_empty();
        let copies = tasks.into_iter().map(|task| {
            let state = state.clone();
            let client = client.clone();
            async move {
                let id = task.video_id.clone();
                if let Err(error) = archive(&state, &client, task).await {
                    tracing::warn!(video = %id, error = ?error, "recording an archive copy failed");
                }
            }
        });
        futures::future::join_all(copies).await;
        if last_sweep.elapsed() >= sweep_every {
            last_sweep = std::time::Instant::now();
            if let Err(error) = crate::domain::archive::sweep(&state).await {
                tracing::warn!(error = ?error, "removing expired outputs failed; retrying later");
            }
        }
        if !busy {
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
    Ok(())
}

async fn archive(
    state: &Arc<Services>,
    client: &reqwest::Client,
    task: crate::domain::archive::ArchiveTask,
) -> anyhow::Result<()> {
    let key = crate::domain::archive::object_key(&task);
    let copied = copy(state, client, &task.output_url, &key).await;
    crate::domain::archive::record_copy(state, &task, &key, copied).await
}

/// Streams the output at `url` into storage under `key`; returns its size.
async fn copy(
    state: &Arc<Services>,
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> anyhow::Result<u64> {
    let limit = state.config.storage.max_output_bytes;
    if let Some(bytes) = crate::domain::archive::built_in_output(url) {
        let chunks = futures::stream::iter(
            bytes
                .chunks(64 * 1024)
                .map(|c| Ok(bytes::Bytes::from_static(c))),
        );
        return state.objects.put_stream(key, chunks.boxed(), limit).await;
    }
    let parsed = url::Url::parse(url)?;
    if let Err(why) =
        crate::domain::ssrf::check_without_dns(&parsed, &state.config.security.url_allowlist)
    {
        anyhow::bail!("the output URL is not allowed: {why}");
    }
    let response = client.get(url).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "the upstream answered {}",
        response.status()
    );
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    anyhow::ensure!(
        content_type.is_empty()
            || content_type.starts_with("video/mp4")
            || content_type.starts_with("video/quicktime")
            || content_type.starts_with("application/octet-stream")
            || content_type.starts_with("binary/octet-stream"),
        "the output's content type is {content_type}, not video/mp4"
    );
    if let Some(length) = response.content_length() {
        anyhow::ensure!(
            length <= limit,
            "the output is {length} bytes, more than storage.max_output_bytes ({limit})"
        );
    }
    let mut checked = false;
    let chunks = response.bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        if !checked && !chunk.is_empty() {
            checked = true;
            anyhow::ensure!(
                chunk.len() >= 8 && &chunk[4..8] == b"ftyp",
                "the output does not start like an MP4 file"
            );
        }
        Ok(chunk)
    });
    state.objects.put_stream(key, chunks.boxed(), limit).await
}
