//! `[storage]`: where uploaded inputs and archived outputs are kept (a local directory or
//! S3-compatible object storage), and how outputs are copied and swept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for uploaded inputs, and for archived outputs with the local backend.
    pub dir: PathBuf,
    /// Whether completed outputs are copied to the gateway's storage.
    pub archive: bool,
    /// Where archived outputs go: `local` (under `dir`) or `s3`.
    pub backend: StorageBackend,
    /// Largest output the archiver copies, in bytes; a larger one stays at the upstream.
    pub max_output_bytes: u64,
    /// Time one copy may take, in seconds.
    pub archive_timeout_secs: u64,
    /// How often expired outputs and those of deleted videos are removed, in seconds.
    pub sweep_interval_secs: u64,
    /// S3-compatible object storage, used when `backend = "s3"`.
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    Local,
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    /// Endpoint of an S3-compatible service; unset for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// Object key prefix, e.g. `gateway/`.
    pub prefix: String,
    /// Allow a plain-http endpoint (a local S3-compatible server).
    pub allow_http: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("data/storage"),
            archive: true,
            backend: StorageBackend::Local,
            max_output_bytes: 2 * 1024 * 1024 * 1024,
            archive_timeout_secs: 600,
            sweep_interval_secs: 30,
            s3: S3Config::default(),
        }
    }
}
