//! Background workers. Their state lives in the database, so any replica can pick up any job
//! after a crash; every task is spawned through [`spawn`], which logs failures and stops on
//! shutdown.

pub mod archive;
pub mod clock;
pub mod jobs;
pub mod webhooks;

use std::future::Future;

use tokio::task::JoinHandle;

/// Runs a long-lived worker; it watches `shutdown` itself so that it can finish what it
/// holds. A worker that returns an error is logged.
pub fn spawn<F>(name: &'static str, work: F) -> JoinHandle<()>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        match work.await {
            Ok(()) => tracing::debug!(worker = name, "worker stopped"),
            Err(error) => {
                tracing::error!(worker = name, error = ?error, "worker stopped with an error")
            }
        }
    })
}
