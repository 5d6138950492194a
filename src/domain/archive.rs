//! The copies of outputs kept in the gateway's storage: what a finished copy attempt means
//! (stored; retried with backoff; given up after [`MAX_ATTEMPTS`], when content keeps
//! redirecting to the upstream's URL for as long as that works) and when a stored copy is
//! removed (past its `expires_at`, or its video deleted). The worker (`workers::archive`)
//! claims the tasks and moves the bytes.

use crate::domain::services::Services;
use crate::storage::now_ms;
use crate::types::video::ArchiveState;

/// One output to copy, as the worker claims it.
pub use crate::storage::archive::ArchiveTask;

/// Attempts before a copy is given up.
pub const MAX_ATTEMPTS: i64 = 5;

/// The bytes of an output the gateway itself holds (the sandbox's clip), which are copied
/// without a download.
pub fn built_in_output(url: &str) -> Option<&'static [u8]> {
    (url == crate::providers::sandbox::OUTPUT_URL).then_some(crate::providers::sandbox::VIDEO)
}

/// Where the copy of `task`'s output is stored (the key content is served from).
pub fn object_key(task: &ArchiveTask) -> String {
    crate::storage::objects::object_key(&task.video_id)
}

/// Records the outcome of one copy attempt of `task`'s output, stored under `key`.
pub async fn record_copy(
    state: &Services,
    task: &ArchiveTask,
    key: &str,
    copied: anyhow::Result<u64>,
) -> anyhow::Result<()> {
    match copied {
        Ok(bytes) => {
            state.metrics.archive_copy("stored");
            let recorded = state
                .db
                .finish_archive(
                    &task.video_id,
                    ArchiveState::Stored,
                    Some(key),
                    Some(bytes as i64),
                    None,
                )
                .await?;
            if !recorded {
                // Deleted while the copy ran: the copy must not outlive it.
                state.objects.delete(key).await?;
            }
        }
        Err(error) => {
            let attempts = task.attempts + 1;
            tracing::warn!(
                video = %task.video_id,
                attempts,
                error = %error,
                "copying the output failed (an output URL on a private or loopback address is \
                 refused unless security.url_allowlist names its host)"
            );
            let (state_now, next_at) = if attempts >= MAX_ATTEMPTS {
                state.metrics.archive_copy("failed");
                (ArchiveState::Failed, None)
            } else {
                state.metrics.archive_copy("retrying");
                let wait = 5_000_i64 << attempts.min(8);
                (ArchiveState::Pending, Some(now_ms() + wait))
            };
            state
                .db
                .finish_archive(&task.video_id, state_now, None, None, next_at)
                .await?;
        }
    }
    Ok(())
}

/// Removes stored copies past their `expires_at` or of deleted videos, up to 100 at a time.
pub async fn sweep(state: &Services) -> anyhow::Result<()> {
    for (video, key, deleted) in state.db.archives_to_remove(now_ms(), 100).await? {
        state.objects.delete(&key).await?;
        let next = if deleted {
            ArchiveState::Deleted
        } else {
            ArchiveState::Expired
        };
        state.db.set_archive_state(&video, next).await?;
        tracing::info!(video = %video, state = next.as_str(), "stored output removed");
    }
    Ok(())
}
