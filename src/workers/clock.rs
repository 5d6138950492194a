//! Keeps this replica's clock set to the database's (`crate::clock`), so that replicas on
//! machines whose clocks disagree stamp and schedule on one time line. The app sets it once
//! before it serves; this loop measures again every little while (a machine's clock drifts,
//! or is stepped by NTP).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::services::Services;

/// How often the database's clock is read again.
const ALIGN_EVERY: Duration = Duration::from_secs(30);

pub async fn run(state: Arc<Services>, shutdown: CancellationToken) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            () = tokio::time::sleep(ALIGN_EVERY) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
        if let Err(error) = state.align_clock().await {
            tracing::warn!(error = ?error, "reading the database's clock failed; keeping the last alignment");
        }
    }
}
