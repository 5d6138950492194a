//! The API's wrappers around the video object (`domain::video_object`): a page, a deletion.

use serde::Serialize;
use utoipa::ToSchema;

pub use crate::domain::video_object::{VideoCost, VideoError, VideoObject};

/// A page of videos.
#[derive(Debug, Serialize, ToSchema)]
pub struct VideoList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<VideoObject>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoDeleted {
    pub id: String,
    /// Always `video.deleted`.
    pub object: &'static str,
    pub deleted: bool,
}
