//! Files kept by the gateway (uploaded inputs) under `storage.dir`.

use std::path::Path;

use anyhow::Context;

use crate::types::ids::random_token;

/// Stores an uploaded first frame and returns its name within the storage directory.
pub async fn save_upload(dir: &Path, extension: &str, bytes: &[u8]) -> anyhow::Result<String> {
    let name = format!("uploads/{}.{extension}", random_token(32));
    let path = dir.join(&name);
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    tokio::fs::write(&path, bytes)
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(name)
}

/// Removes a stored file; a file that is already gone is not an error.
pub async fn remove(dir: &Path, name: &str) {
    if let Err(error) = tokio::fs::remove_file(dir.join(name)).await {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%error, file = name, "could not remove a stored file");
        }
    }
}
