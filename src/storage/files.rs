//! Files kept by the gateway (uploaded inputs) under `storage.dir`.

use std::path::Path;

use anyhow::Context;

use crate::domain::ids::random_token;

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
