//! `[videos]`: how long finished videos stay downloadable, how often clients are told to poll,
//! and the largest prompt and input file accepted.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideosConfig {
    /// Value of the `openai-poll-after-ms` header on reads of unfinished videos.
    pub poll_after_ms: u64,
    /// How long a finished video stays downloadable, in seconds (`expires_at`).
    pub retention_secs: i64,
    /// Largest `input_reference` file accepted in a multipart create, in bytes.
    pub max_input_file_bytes: usize,
    /// Longest prompt accepted, in characters.
    pub max_prompt_chars: usize,
}

impl Default for VideosConfig {
    fn default() -> Self {
        VideosConfig {
            poll_after_ms: 2000,
            retention_secs: 7 * 24 * 3600,
            max_input_file_bytes: 10 * 1024 * 1024,
            max_prompt_chars: 4000,
        }
    }
}
