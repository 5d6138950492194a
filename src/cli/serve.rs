//! `serve` (the gateway until SIGTERM or Ctrl-C, then a drain) and `fake-upstream` (the fake
//! providers, for tests, demos and benchmarks, until the same signals).

use crate::config::Config;

pub(super) async fn serve(config: Config) -> anyhow::Result<()> {
    // Held until the process exits: one serving process per SQLite file.
    let _serving = crate::storage::claim_for_serving(&config.database)?;
    let app = crate::App::build(config).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining");
        shutdown.cancel();
    });
    app.run().await
}

pub(super) async fn fake_upstream(
    host: std::net::IpAddr,
    port: u16,
    job_ms: u64,
) -> anyhow::Result<()> {
    let fake = crate::fake::FakeUpstream::start((host, port).into()).await?;
    fake.set_job_duration(std::time::Duration::from_millis(job_ms));
    for (prefix, _) in crate::fake::PROVIDERS {
        out!("{prefix}: {}", fake.base_url(prefix));
    }
    out!("API key for every provider: {}", crate::fake::FAKE_KEY);
    wait_for_signal().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
