//! `serve`: the gateway until SIGTERM or Ctrl-C, then a drain. (The fake providers are a
//! binary of their own, `fake-upstream`, in the `fake/` crate.)

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
