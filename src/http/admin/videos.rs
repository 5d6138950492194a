//! `GET /admin/v1/videos/{video_id}`: any tenant's job, with its upstream attempts.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::params::video_id;
use crate::domain::admin::AttemptRow;
use crate::domain::video_object::VideoObject;
use crate::error::Result;
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiPath;
use crate::http::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminVideo {
    #[serde(flatten)]
    pub video: VideoObject,
    pub tenant_id: String,
    pub upstream_id: Option<String>,
    /// What the upstream reported it charged, as it wrote it.
    pub upstream_cost: Option<String>,
    pub upstream_cost_micro_usd: Option<i64>,
    /// Providers still available to fail over to.
    pub fallbacks: Vec<String>,
    /// Every upstream call made for the job, oldest first.
    pub attempts: Vec<AttemptRow>,
}

/// Retrieve any job with its upstream attempts
#[utoipa::path(
    get, path = "/admin/v1/videos/{video_id}", tag = "admin",
    params(("video_id" = String, Path)),
    responses((status = 200, body = AdminVideo), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn get_video(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AdminVideo>> {
    let id = video_id(&id)?;
    let (video, attempts) = crate::domain::admin::video(&state.db, &id).await?;
    Ok(Json(AdminVideo {
        video: VideoObject::from(&video),
        tenant_id: video.tenant_id.to_string(),
        upstream_id: video.upstream_id.clone(),
        upstream_cost: video.upstream_cost.clone(),
        upstream_cost_micro_usd: video.upstream_cost_micro_usd.map(|m| m.get()),
        fallbacks: video
            .fallbacks
            .iter()
            .map(|p| p.as_str().to_string())
            .collect(),
        attempts,
    }))
}
