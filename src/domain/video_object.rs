//! The public shape of a video — what the API answers and what tenant webhooks carry:
//! OpenAI's shape (`object: "video"`, `seconds` as a string, `size`, `progress`, unix-second
//! timestamps) with the gateway's fields added. It is the domain's, so the API and the webhook
//! sender render a video the same way.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::types::video::{frame_size, Video};

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "video_3kTq9ZxWb1mN7pLr2sVd8yHc", "object": "video", "model": "seedance-2.0-fast",
    "status": "completed", "progress": 100, "created_at": 1763700000, "completed_at": 1763700042,
    "expires_at": 1764304842, "seconds": "5", "size": "1280x720", "resolution": "720p",
    "aspect_ratio": "16:9", "prompt": "A paper boat drifting down a rainy street", "user": "customer-42",
    "metadata": {"order": "A-1001"}, "error": null, "cost": {"reserved": 250, "charged": 250, "unit": "credits"},
    "provider": "sandbox", "mode": "test"
}))]
pub struct VideoObject {
    pub id: String,
    /// Always `video`.
    pub object: &'static str,
    pub model: &'static str,
    /// `queued`, `in_progress`, `completed`, `failed` or `canceled`.
    pub status: &'static str,
    /// 0-100.
    pub progress: i64,
    /// Unix seconds.
    pub created_at: i64,
    pub completed_at: Option<i64>,
    /// When the output stops being downloadable (unix seconds).
    pub expires_at: Option<i64>,
    /// Length in seconds, as a string like OpenAI's.
    pub seconds: String,
    /// `WIDTHxHEIGHT` of the output.
    pub size: String,
    pub resolution: &'static str,
    pub aspect_ratio: &'static str,
    pub prompt: String,
    /// The tenant's end user, if given.
    pub user: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub error: Option<VideoError>,
    pub cost: VideoCost,
    /// The upstream that runs the job.
    pub provider: Option<String>,
    /// `live` or `test` (the key that created it).
    pub mode: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoCost {
    /// Credits held when the job was accepted.
    pub reserved: i64,
    /// Credits charged once the job ended (0 when it failed or was canceled).
    pub charged: Option<i64>,
    /// Always `credits`.
    pub unit: &'static str,
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

impl From<&Video> for VideoObject {
    fn from(video: &Video) -> Self {
        let request = &video.request;
        let (width, height) = frame_size(request.resolution, request.aspect_ratio);
        VideoObject {
            id: video.id.to_string(),
            object: "video",
            model: request.model.id(),
            status: video.status.as_str(),
            progress: video.progress,
            created_at: secs(video.created_at_ms),
            completed_at: video.completed_at_ms.map(secs),
            expires_at: video.expires_at_ms.map(secs),
            seconds: request.seconds.get().to_string(),
            size: format!("{width}x{height}"),
            resolution: request.resolution.as_str(),
            aspect_ratio: request.aspect_ratio.as_str(),
            prompt: request.prompt.clone(),
            user: request.user.as_ref().map(|u| u.as_str().to_string()),
            metadata: request.metadata.clone(),
            error: video.error.as_ref().map(|e| VideoError {
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            cost: VideoCost {
                reserved: video.cost_reserved.get(),
                charged: video.cost_charged.map(|c| c.get()),
                unit: "credits",
            },
            provider: video.provider.map(|p| p.as_str().to_string()),
            mode: video.mode.as_str(),
        }
    }
}
