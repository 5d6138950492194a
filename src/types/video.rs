//! The vocabulary of a video request: models, durations, resolutions, aspect ratios, sizes,
//! inputs and the lifecycle status. Everything here is already valid by construction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{ApiKeyId, EndUserId, ProviderId, TenantId, VideoId};
use super::money::Credits;
use super::money::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Model {
    #[serde(rename = "seedance-2.0")]
    Standard,
    #[serde(rename = "seedance-2.0-fast")]
    Fast,
    #[serde(rename = "seedance-2.0-mini")]
    Mini,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::Standard, Model::Fast, Model::Mini];

    /// The canonical id, and the common aliases resellers and SDKs use for it.
    pub fn parse(raw: &str) -> Option<Model> {
        let lowered = raw.trim().to_ascii_lowercase();
        let name = lowered.strip_prefix("bytedance/").unwrap_or(&lowered);
        match name {
            "seedance-2.0"
            | "seedance-2"
            | "seedance-2-0"
            | "seedance-2.0-pro"
            | "seedance-2-pro"
            | "seedance-2.0-standard"
            | "dreamina-seedance-2-0" => Some(Model::Standard),
            "seedance-2.0-fast"
            | "seedance-2-fast"
            | "seedance-2-0-fast"
            | "dreamina-seedance-2-0-fast" => Some(Model::Fast),
            "seedance-2.0-mini"
            | "seedance-2-mini"
            | "seedance-2-0-mini"
            | "dreamina-seedance-2-0-mini" => Some(Model::Mini),
            _ => None,
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Model::Standard => "seedance-2.0",
            Model::Fast => "seedance-2.0-fast",
            Model::Mini => "seedance-2.0-mini",
        }
    }
}

/// Whole seconds of output video, 4 to 15 inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Seconds(u8);

impl Seconds {
    pub const MIN: i64 = 4;
    pub const MAX: i64 = 15;
    pub const DEFAULT: Seconds = Seconds(5);

    pub fn new(value: i64) -> Option<Seconds> {
        (Self::MIN..=Self::MAX)
            .contains(&value)
            .then_some(Seconds(value as u8))
    }

    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resolution {
    #[serde(rename = "480p")]
    P480,
    #[serde(rename = "720p")]
    P720,
    #[serde(rename = "1080p")]
    P1080,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::P480, Resolution::P720, Resolution::P1080];

    pub fn parse(raw: &str) -> Option<Resolution> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "480p" => Some(Resolution::P480),
            "720p" => Some(Resolution::P720),
            "1080p" => Some(Resolution::P1080),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::P480 => "480p",
            Resolution::P720 => "720p",
            Resolution::P1080 => "1080p",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AspectRatio {
    #[serde(rename = "21:9")]
    R21x9,
    #[serde(rename = "16:9")]
    R16x9,
    #[serde(rename = "4:3")]
    R4x3,
    #[serde(rename = "1:1")]
    R1x1,
    #[serde(rename = "3:4")]
    R3x4,
    #[serde(rename = "9:16")]
    R9x16,
    #[serde(rename = "adaptive")]
    Adaptive,
}

impl AspectRatio {
    pub const ALL: [AspectRatio; 7] = [
        AspectRatio::R21x9,
        AspectRatio::R16x9,
        AspectRatio::R4x3,
        AspectRatio::R1x1,
        AspectRatio::R3x4,
        AspectRatio::R9x16,
        AspectRatio::Adaptive,
    ];

    pub fn parse(raw: &str) -> Option<AspectRatio> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw.trim())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AspectRatio::R21x9 => "21:9",
            AspectRatio::R16x9 => "16:9",
            AspectRatio::R4x3 => "4:3",
            AspectRatio::R1x1 => "1:1",
            AspectRatio::R3x4 => "3:4",
            AspectRatio::R9x16 => "9:16",
            AspectRatio::Adaptive => "adaptive",
        }
    }
}

/// Output frame sizes of Seedance 2.0 per resolution and aspect ratio (width, height).
/// `adaptive` follows the input image; its nominal size is the 16:9 one.
pub fn frame_size(resolution: Resolution, ratio: AspectRatio) -> (u32, u32) {
    use AspectRatio::*;
    use Resolution::*;
    match (resolution, ratio) {
        (P480, R21x9) => (992, 432),
        (P480, R16x9 | Adaptive) => (864, 496),
        (P480, R4x3) => (752, 560),
        (P480, R1x1) => (640, 640),
        (P480, R3x4) => (560, 752),
        (P480, R9x16) => (496, 864),
        (P720, R21x9) => (1470, 630),
        (P720, R16x9 | Adaptive) => (1280, 720),
        (P720, R4x3) => (1112, 834),
        (P720, R1x1) => (960, 960),
        (P720, R3x4) => (834, 1112),
        (P720, R9x16) => (720, 1280),
        (P1080, R21x9) => (2206, 946),
        (P1080, R16x9 | Adaptive) => (1920, 1080),
        (P1080, R4x3) => (1664, 1248),
        (P1080, R1x1) => (1440, 1440),
        (P1080, R3x4) => (1248, 1664),
        (P1080, R9x16) => (1080, 1920),
    }
}

/// Reads an OpenAI-style `size` ("1280x720"): any exact Seedance frame size, the usual
/// 16:9 / 9:16 sizes (`854x480`, `480x854`), and OpenAI's Sora sizes (`1792x1024`,
/// `1024x1792`, taken as 1080p).
pub fn parse_size(raw: &str) -> Option<(Resolution, AspectRatio)> {
    let (w, h) = raw.trim().split_once(['x', 'X'])?;
    let (w, h): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    for resolution in Resolution::ALL {
        for ratio in AspectRatio::ALL {
            if ratio != AspectRatio::Adaptive && frame_size(resolution, ratio) == (w, h) {
                return Some((resolution, ratio));
            }
        }
    }
    match (w, h) {
        (854, 480) | (848, 480) => Some((Resolution::P480, AspectRatio::R16x9)),
        (480, 854) | (480, 848) => Some((Resolution::P480, AspectRatio::R9x16)),
        (1792, 1024) => Some((Resolution::P1080, AspectRatio::R16x9)),
        (1024, 1792) => Some((Resolution::P1080, AspectRatio::R9x16)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    Queued,
    InProgress,
    Completed,
    Failed,
    Canceled,
}

impl VideoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoStatus::Queued => "queued",
            VideoStatus::InProgress => "in_progress",
            VideoStatus::Completed => "completed",
            VideoStatus::Failed => "failed",
            VideoStatus::Canceled => "canceled",
        }
    }

    pub fn parse(raw: &str) -> Option<VideoStatus> {
        match raw {
            "queued" => Some(VideoStatus::Queued),
            "in_progress" => Some(VideoStatus::InProgress),
            "completed" => Some(VideoStatus::Completed),
            "failed" => Some(VideoStatus::Failed),
            "canceled" => Some(VideoStatus::Canceled),
            _ => None,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            VideoStatus::Completed | VideoStatus::Failed | VideoStatus::Canceled
        )
    }
}

/// Why a running job is next due upstream. A job whose provider calls back is polled only as a
/// safety net (`Safety`) and confirmed by one poll when its webhook arrives (`Webhook`);
/// other jobs follow the regular schedule (`Scheduled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollCause {
    Scheduled,
    Safety,
    Webhook,
}

impl PollCause {
    pub fn as_str(self) -> &'static str {
        match self {
            PollCause::Scheduled => "scheduled",
            PollCause::Safety => "safety",
            PollCause::Webhook => "webhook",
        }
    }

    pub fn parse(raw: &str) -> Option<PollCause> {
        match raw {
            "scheduled" => Some(PollCause::Scheduled),
            "safety" => Some(PollCause::Safety),
            "webhook" => Some(PollCause::Webhook),
            _ => None,
        }
    }

    /// The cause as the metrics name a poll made for it.
    pub fn request_label(self) -> &'static str {
        match self {
            PollCause::Scheduled => "scheduled_poll",
            PollCause::Safety => "safety_poll",
            PollCause::Webhook => "webhook_confirmation",
        }
    }
}

/// Where the gateway's own copy of a completed output stands: being copied (`Pending`),
/// copied (`Stored`), given up on (`Failed`), or removed after its expiry (`Expired`) or its
/// video's deletion (`Deleted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveState {
    Pending,
    Stored,
    Failed,
    Expired,
    Deleted,
}

impl ArchiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveState::Pending => "pending",
            ArchiveState::Stored => "stored",
            ArchiveState::Failed => "failed",
            ArchiveState::Expired => "expired",
            ArchiveState::Deleted => "deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<ArchiveState> {
        match raw {
            "pending" => Some(ArchiveState::Pending),
            "stored" => Some(ArchiveState::Stored),
            "failed" => Some(ArchiveState::Failed),
            "expired" => Some(ArchiveState::Expired),
            "deleted" => Some(ArchiveState::Deleted),
            _ => None,
        }
    }
}

/// A validated absolute http(s) URL handed to an upstream or called back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaUrl(String);

impl MediaUrl {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(raw: &str) -> Result<MediaUrl, &'static str> {
        if raw.len() > Self::MAX_LEN {
            return Err("is longer than 2048 characters");
        }
        let url = url::Url::parse(raw).map_err(|_| "is not a valid absolute URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must use http or https");
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials");
        }
        Ok(MediaUrl(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The image, video and audio inputs of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoInputs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_frame_url: Option<MediaUrl>,
    /// A first frame uploaded as a multipart file, kept in the gateway's storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_frame_upload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame_url: Option<MediaUrl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_image_urls: Vec<MediaUrl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_video_urls: Vec<MediaUrl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_audio_urls: Vec<MediaUrl>,
}

impl VideoInputs {
    pub const MAX_REFERENCE_IMAGES: usize = 9;
    pub const MAX_REFERENCE_VIDEOS: usize = 3;
    pub const MAX_REFERENCE_AUDIO: usize = 3;

    pub fn has_first_frame(&self) -> bool {
        self.first_frame_url.is_some() || self.first_frame_upload.is_some()
    }
}

/// How a request wants to be routed. It can only narrow what its tenant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    #[default]
    Cheapest,
    Fastest,
    Ordered,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Cheapest => "cheapest",
            Strategy::Fastest => "fastest",
            Strategy::Ordered => "ordered",
        }
    }

    pub fn parse(raw: &str) -> Option<Strategy> {
        match raw {
            "cheapest" => Some(Strategy::Cheapest),
            "fastest" => Some(Strategy::Fastest),
            "ordered" => Some(Strategy::Ordered),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRequest {
    /// `None`: the caller's policy decides.
    pub strategy: Option<Strategy>,
    /// Allowed providers (empty: any the tenant may use), in preference order for `ordered`.
    pub providers: Vec<String>,
    /// Whether another candidate may take the job when its provider cannot.
    pub fallback: bool,
    pub max_cost: Option<Credits>,
    /// Resubmit the job to the next candidate if it fails upstream (set from the policy at
    /// create, never by the request).
    #[serde(default)]
    pub resubmit: bool,
}

impl Default for RoutingRequest {
    fn default() -> Self {
        RoutingRequest {
            strategy: None,
            providers: Vec::new(),
            fallback: true,
            max_cost: None,
            resubmit: false,
        }
    }
}

/// A create request, parsed and validated at the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewVideo {
    pub model: Model,
    pub prompt: String,
    pub seconds: Seconds,
    pub resolution: Resolution,
    pub aspect_ratio: AspectRatio,
    pub inputs: VideoInputs,
    pub generate_audio: Option<bool>,
    pub seed: Option<i64>,
    pub camera_fixed: Option<bool>,
    pub user: Option<EndUserId>,
    pub metadata: BTreeMap<String, String>,
    pub webhook_url: Option<MediaUrl>,
    #[serde(default)]
    pub routing: RoutingRequest,
}

/// The error a job ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// A video job as stored.
#[derive(Debug, Clone)]
pub struct Video {
    pub id: VideoId,
    pub tenant_id: TenantId,
    pub api_key_id: Option<ApiKeyId>,
    pub mode: Mode,
    pub request: NewVideo,
    pub status: VideoStatus,
    pub progress: i64,
    pub provider: Option<ProviderId>,
    pub upstream_id: Option<String>,
    pub error: Option<JobError>,
    pub cost_reserved: Credits,
    pub cost_charged: Option<Credits>,
    pub output_url: Option<String>,
    pub created_at_ms: i64,
    /// When the current upstream accepted the job.
    pub submitted_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    /// The copy of the output in the gateway's storage; `None` when no copy was made.
    pub archive_state: Option<ArchiveState>,
    /// Transient upstream failures so far.
    pub attempts: i64,
    /// Secret part of this job's provider callback URL.
    pub callback_token: Option<String>,
    /// Providers to fail over to, in order, if the current one cannot take the job.
    pub fallbacks: Vec<ProviderId>,
    /// The provider whose concurrency slot this job holds.
    pub slot_provider: Option<ProviderId>,
    /// Upstream cost at the most expensive eligible provider and at the baseline provider,
    /// in micro-USD, as routed at create (for the savings report).
    pub cost_ceiling_micro: Option<super::money::MicroUsd>,
    pub cost_baseline_micro: Option<super::money::MicroUsd>,
    /// What the upstream reported it charged, as written, and in micro-USD.
    pub upstream_cost: Option<String>,
    pub upstream_cost_micro_usd: Option<super::money::MicroUsd>,
    /// The catalog's estimate of the upstream cost at the provider that did the job.
    pub upstream_estimate_micro: Option<super::money::MicroUsd>,
    /// Why the job is next due upstream.
    pub poll_cause: PollCause,
    /// Requests made upstream for the job so far (submits and polls).
    pub upstream_requests: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_aliases_resolve_to_canonical_ids() {
        assert_eq!(
            Model::parse("bytedance/seedance-2.0-fast"),
            Some(Model::Fast)
        );
        assert_eq!(Model::parse("seedance-2-0"), Some(Model::Standard));
        assert_eq!(Model::parse("Seedance-2-Mini"), Some(Model::Mini));
        assert_eq!(Model::parse("sora-2"), None);
    }

    #[test]
    fn seconds_are_bounded_to_four_through_fifteen() {
        assert!(Seconds::new(3).is_none());
        assert_eq!(Seconds::new(4).map(Seconds::get), Some(4));
        assert_eq!(Seconds::new(15).map(Seconds::get), Some(15));
        assert!(Seconds::new(16).is_none());
    }

    #[test]
    fn sizes_map_to_resolution_and_ratio() {
        assert_eq!(
            parse_size("1280x720"),
            Some((Resolution::P720, AspectRatio::R16x9))
        );
        assert_eq!(
            parse_size("720x1280"),
            Some((Resolution::P720, AspectRatio::R9x16))
        );
        assert_eq!(
            parse_size("1024x1792"),
            Some((Resolution::P1080, AspectRatio::R9x16))
        );
        assert_eq!(
            parse_size("640x640"),
            Some((Resolution::P480, AspectRatio::R1x1))
        );
        assert_eq!(parse_size("100x100"), None);
        assert_eq!(parse_size("big"), None);
    }

    #[test]
    fn archive_states_read_back_as_written_and_nothing_else() {
        for state in [
            ArchiveState::Pending,
            ArchiveState::Stored,
            ArchiveState::Failed,
            ArchiveState::Expired,
            ArchiveState::Deleted,
        ] {
            assert_eq!(ArchiveState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ArchiveState::parse("Stored"), None);
        assert_eq!(ArchiveState::parse(""), None);
    }

    #[test]
    fn media_urls_must_be_http() {
        assert!(MediaUrl::parse("https://cdn.example.com/a.png").is_ok());
        assert!(MediaUrl::parse("file:///etc/passwd").is_err());
        assert!(MediaUrl::parse("https://user:pw@example.com/").is_err());
        assert!(MediaUrl::parse("not a url").is_err());
    }
}
