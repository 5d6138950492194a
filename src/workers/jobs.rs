//! The job worker: claims due jobs with a lease and takes each one step further through the
//! job lifecycle (`domain::jobs`). The rules — submit, poll schedule, settlement — live there;
//! this loop only decides when to claim and how many steps run at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::domain::jobs::{advance, expire_overdue, hand_out_slots};
use crate::domain::services::Services;

/// How often the worker looks for jobs past their hold timeout.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub async fn run(state: Arc<Services>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = &state.config.workers;
    let slots = Arc::new(Semaphore::new(workers.concurrency));
    let tick = Duration::from_millis(workers.tick_ms.max(10));
    let lease_ms = (workers.lease_secs * 1000) as i64;
    let mut last_sweep = std::time::Instant::now() - SWEEP_EVERY;
    while !shutdown.is_cancelled() {
        let available = slots.available_permits().min(workers.batch_size as usize) as i64;
        let claimed = if available > 0 {
            let now = now_ms();
            match crate::domain::jobs::claim_due(&state, now, lease_ms, available).await {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::warn!(%error, "claiming due jobs failed; retrying");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let full_batch = claimed.len() as i64 == available && available > 0;
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = std::time::Instant::now();
            if let Err(error) = expire_overdue(&state).await {
                tracing::warn!(error = ?error, "expiring overdue jobs failed; retrying later");
            }
        }
        let claimed = hand_out_slots(&state, claimed).await;
        for job in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let id = job.id.clone();
                if let Err(error) = advance(&state, job).await {
                    tracing::warn!(video = %id, error = ?error, "advancing job failed; it will be retried after its lease");
                }
                drop(permit);
            });
        }
        if full_batch || available == 0 {
            // More jobs are likely due: claim again as soon as half the step permits are free,
            // rather than a tick later (a tick per batch would cap the worker at
            // `concurrency` steps per tick, however quick the steps).
            let half = (workers.concurrency as u32).div_ceil(2);
            tokio::select! {
                _ = slots.acquire_many(half) => {}
                () = shutdown.cancelled() => {}
            }
        } else {
            tokio::select! {
                () = state.wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
    // Let in-flight job steps finish so their results are recorded rather than re-done.
    let all = workers.concurrency as u32;
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
    Ok(())
}
