//! Where archived outputs live: a local directory (default) or S3-compatible object storage,
//! both behind `object_store`. Objects are written in parts as they stream in and read as
//! streams (whole or by byte range), so memory use does not grow with the file.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::io::AsyncWriteExt;

use crate::config::{StorageBackend, StorageConfig};

/// Where a video's archived output is stored.
pub fn object_key(video_id: &str) -> String {
    format!("videos/{video_id}.mp4")
}

#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl Objects {
    pub fn from_config(config: &StorageConfig) -> anyhow::Result<Objects> {
        match config.backend {
            StorageBackend::Local => {
                let dir = config.dir.join("outputs");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .context("opening the local output store")?;
                Ok(Objects {
                    store: Arc::new(store),
                    prefix: String::new(),
                })
            }
            StorageBackend::S3 => {
                let s3 = &config.s3;
                anyhow::ensure!(
                    !s3.bucket.is_empty(),
                    "storage.s3.bucket is required for the s3 backend"
                );
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(if s3.region.is_empty() {
                        "us-east-1"
                    } else {
                        &s3.region
                    })
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(id) = &s3.access_key_id {
                    builder = builder.with_access_key_id(id.expose());
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose());
                }
                Ok(Objects {
                    store: Arc::new(builder.build().context("configuring the S3 output store")?),
                    prefix: s3.prefix.clone(),
                })
            }
        }
    }

    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}{key}", self.prefix))
    }

    /// Streams `chunks` into the object `key`, at most `limit` bytes; returns the size. A
    /// failed or oversized copy leaves no object behind.
    pub async fn put_stream(
        &self,
        key: &str,
        mut chunks: BoxStream<'_, anyhow::Result<Bytes>>,
        limit: u64,
    ) -> anyhow::Result<u64> {
        let path = self.path(key);
        let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), path.clone());
        let mut written: u64 = 0;
        let result: anyhow::Result<()> = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                written += chunk.len() as u64;
                anyhow::ensure!(
                    written <= limit,
                    "the output is larger than storage.max_output_bytes ({limit})"
                );
                writer.write_all(&chunk).await?;
            }
            writer.shutdown().await?;
            Ok(())
        }
        .await;
        if let Err(error) = result {
            let _ = writer.abort().await;
            let _ = self.store.delete(&path).await;
            return Err(error);
        }
        Ok(written)
    }

    /// The object's size, if it exists.
    pub async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The bytes `start..end` (end exclusive) of the object, as a stream.
    pub async fn read(
        &self,
        key: &str,
        start: u64,
        end: u64,
    ) -> anyhow::Result<BoxStream<'static, object_store::Result<Bytes>>> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..end)),
            ..GetOptions::default()
        };
        Ok(self
            .store
            .get_opts(&self.path(key), options)
            .await?
            .into_stream())
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}
