//! Path segments and fields every operator resource parses the same way.

use crate::error::{Error, Result};
use crate::types::ids::{ApiKeyId, TenantId, VideoId};
use crate::types::money::Mode;

/// A `mode` field: `live` (the default) or `test`.
pub(super) fn parse_mode(raw: Option<&str>) -> Result<Mode> {
    match raw {
        None => Ok(Mode::Live),
        Some(raw) => {
            Mode::parse(raw).ok_or_else(|| Error::invalid("mode", "mode must be live or test"))
        }
    }
}

/// A `{tenant_id}` path segment; one that is not a tenant id names no tenant.
pub(super) fn tenant_id(raw: &str) -> Result<TenantId> {
    TenantId::parse(raw).ok_or(Error::NotFound("tenant"))
}

/// A `{key_id}` path segment.
pub(super) fn key_id(raw: &str) -> Result<ApiKeyId> {
    ApiKeyId::parse(raw).ok_or(Error::NotFound("API key"))
}

/// A `{video_id}` path segment.
pub(super) fn video_id(raw: &str) -> Result<VideoId> {
    VideoId::parse(raw).ok_or(Error::NotFound("video"))
}
