//! `/v1/videos`: thin handlers that parse, call [`crate::domain::videos`], and serialize.

pub mod create;
pub mod object;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use self::create::{CreateInput, CreateVideoBody};
use self::object::{VideoDeleted, VideoList, VideoObject};
use crate::app::AppState;
use crate::domain::idempotency::{self, Claim, IdempotencyKey, Outcome, StoredAnswer};
use crate::domain::ids::VideoId;
use crate::domain::video::{Video, VideoStatus};
use crate::domain::videos;
use crate::error::{Error, ErrorBody, Result};
use crate::http::auth::Caller;
use crate::http::extract::ApiQuery;
use crate::providers::sandbox;
use crate::storage::jobs::ListQuery;

const POLL_AFTER: HeaderName = HeaderName::from_static("openai-poll-after-ms");

fn parse_id(raw: &str) -> Result<VideoId> {
    VideoId::parse(raw).ok_or(Error::NotFound("video"))
}

/// The video object, with `openai-poll-after-ms` while it is still running.
fn video_response(state: &AppState, video: &Video, extra: HeaderMap) -> Response {
    let mut response = Json(VideoObject::from(video)).into_response();
    if !video.status.is_terminal() {
        response.headers_mut().insert(
            POLL_AFTER,
            HeaderValue::from(state.config.videos.poll_after_ms),
        );
    }
    response.headers_mut().extend(extra);
    response
}

/// Create a video
///
/// Accepts JSON or `multipart/form-data` (as the OpenAI SDK sends it). Reserves the price
/// from the tenant's balance and answers with the queued video; the headers
/// `x-gateway-provider` and `x-gateway-route` name the chosen upstream and why.
#[utoipa::path(
    post, path = "/v1/videos", tag = "videos",
    params(("Idempotency-Key" = Option<String>, Header,
            description = "Same key and body within 24 h replays the first answer (`idempotent-replayed: true`); another body is 409 `idempotency_conflict`")),
    request_body(content(
        (CreateVideoBody = "application/json"),
        (CreateVideoBody = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The queued video", body = VideoObject,
         headers(("x-gateway-provider" = String, description = "Provider chosen"),
                 ("x-gateway-route" = String, description = "Why it was chosen"))),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 402, description = "Insufficient credits", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body, or still in flight", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Unsupported content type", body = ErrorBody),
        (status = 503, description = "No upstream available", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create_video(
    State(state): State<AppState>,
    Caller(principal): Caller,
    request_headers: HeaderMap,
    input: CreateInput,
) -> Result<Response> {
    principal.require(crate::domain::tenants::Scope::VideosWrite)?;
    let CreateInput { body, upload } = input;
    // Validate first, so bad input never leaves a stored file behind.
    let mut request = body.into_new_video(&state.config.videos, upload.is_some())?;
    crate::domain::ssrf::check_request(&request, &state.config.security.url_allowlist).await?;
    if let Some(end_user) = &principal.end_user {
        // A token that speaks for one end user can only create that user's videos.
        match &request.user {
            Some(user) if user != end_user => {
                return Err(Error::Forbidden(
                    "this token may only create videos for its own end user".into(),
                ))
            }
            _ => request.user = Some(end_user.clone()),
        }
    }
    let claim = match request_headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = IdempotencyKey::parse(value.to_str().unwrap_or(""))?;
            let upload_digest = upload
                .as_ref()
                .map(|u| idempotency::request_hash(&u.bytes.as_ref()));
            Some(Claim {
                scope: principal.tenant_id.to_string(),
                key,
                hash: idempotency::request_hash(&(
                    principal.mode.as_str(),
                    &request,
                    upload_digest,
                )),
            })
        }
    };
    if let Some(claim) = &claim {
        if let Outcome::Replay(answer) = idempotency::check(&state.db, claim).await? {
            return Ok(replay(answer));
        }
    }
    let mut stored = None;
    if let Some(upload) = upload {
        let name = crate::storage::files::save_upload(
            &state.config.storage.dir,
            upload.extension,
            &upload.bytes,
        )
        .await?;
        request.inputs.first_frame_upload = Some(name.clone());
        stored = Some(name);
    }
    let outcome = videos::create(&state, &principal, request, claim.as_ref()).await;
    if outcome.is_err() {
        if let Some(name) = stored {
            crate::storage::files::remove(&state.config.storage.dir, &name).await;
        }
    }
    let response = match outcome {
        Ok(created) => created_response(&state, &created),
        Err(Error::Conflict("idempotency_race", _)) => {
            // Another request with this key got there first: answer as it did.
            let claim = claim
                .as_ref()
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("race without a key")))?;
            return match idempotency::check(&state.db, claim).await? {
                Outcome::Replay(answer) => Ok(replay(answer)),
                Outcome::Proceed => Err(Error::Conflict(
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being processed; retry shortly"
                        .into(),
                )),
            };
        }
        Err(error) => error.into_response(),
    };
    match &claim {
        Some(claim) => remember(&state, claim, response).await,
        None => Ok(response),
    }
}

fn created_response(state: &AppState, created: &videos::Created) -> Response {
    let video = &created.video;
    let mut headers = HeaderMap::new();
    if let Some(provider) = video
        .provider
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        headers.insert(HeaderName::from_static("x-gateway-provider"), provider);
    }
    headers.insert(
        HeaderName::from_static("x-gateway-route"),
        HeaderValue::from_static(created.route),
    );
    video_response(state, video, headers)
}

/// Headers that are part of an answer worth replaying.
const REPLAYED_HEADERS: [&str; 5] = [
    "content-type",
    "x-gateway-provider",
    "x-gateway-route",
    "openai-poll-after-ms",
    "retry-after",
];

/// Stores the answer of a key's first request (if the request created anything) and returns it.
pub async fn remember(state: &AppState, claim: &Claim, response: Response) -> Result<Response> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("reading an answer to store it: {e}")))?;
    let answer = StoredAnswer {
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        headers: REPLAYED_HEADERS
            .iter()
            .filter_map(|name| {
                parts
                    .headers
                    .get(*name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| (name.to_string(), v.to_string()))
            })
            .collect(),
    };
    state
        .db
        .store_idempotent_answer(&claim.scope, claim.key.as_str(), &answer)
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// A stored answer, as it was first given, marked as replayed.
pub fn replay(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    );
    response
}

/// Retrieve a video
#[utoipa::path(
    get, path = "/v1/videos/{video_id}", tag = "videos",
    params(("video_id" = String, Path, description = "The video's id")),
    responses(
        (status = 200, description = "The video", body = VideoObject,
         headers(("openai-poll-after-ms" = i64, description = "Suggested poll interval while running"))),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get_video(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    principal.require(crate::domain::tenants::Scope::VideosRead)?;
    let video = videos::get(&state, &principal, &parse_id(&id)?).await?;
    Ok(video_response(&state, &video, HeaderMap::new()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Return videos after this id (cursor).
    pub after: Option<String>,
    /// 1-100, default 20.
    pub limit: Option<i64>,
    /// `desc` (newest first, default) or `asc`.
    pub order: Option<String>,
    /// Only videos in this status.
    pub status: Option<String>,
    /// Only videos of this end user.
    pub user: Option<String>,
}

/// List videos
#[utoipa::path(
    get, path = "/v1/videos", tag = "videos",
    params(ListParams),
    responses((status = 200, body = VideoList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn list_videos(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<VideoList>> {
    principal.require(crate::domain::tenants::Scope::VideosRead)?;
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid("limit", "limit must be from 1 to 100"));
    }
    let newest_first = match params.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(Error::invalid("order", "order must be asc or desc")),
    };
    let status = params
        .status
        .as_deref()
        .map(|s| VideoStatus::parse(s).ok_or_else(|| Error::invalid("status", "unknown status")))
        .transpose()?;
    let after = params
        .after
        .as_deref()
        .map(|a| {
            VideoId::parse(a).ok_or_else(|| Error::invalid("after", "after must be a video id"))
        })
        .transpose()?;
    let query = ListQuery {
        tenant: &principal.tenant_id,
        after: after.as_ref(),
        limit,
        newest_first,
        status,
        user: params.user.as_deref(),
    };
    let page = videos::list(&state, &query).await?;
    let data: Vec<VideoObject> = page.videos.iter().map(VideoObject::from).collect();
    Ok(Json(VideoList {
        object: "list",
        first_id: data.first().map(|v| v.id.clone()),
        last_id: data.last().map(|v| v.id.clone()),
        has_more: page.has_more,
        data,
    }))
}

/// Cancel a video
///
/// Stops a queued or running video and releases its reserved credits.
#[utoipa::path(
    post, path = "/v1/videos/{video_id}/cancel", tag = "videos",
    params(("video_id" = String, Path, description = "The video's id")),
    responses(
        (status = 200, description = "The canceled video", body = VideoObject),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cancel_video(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    principal.require(crate::domain::tenants::Scope::VideosWrite)?;
    let video = videos::cancel(&state, &principal, &parse_id(&id)?).await?;
    Ok(video_response(&state, &video, HeaderMap::new()))
}

/// Delete a video
///
/// Cancels it first if it is still running (releasing its credits), then removes it.
#[utoipa::path(
    delete, path = "/v1/videos/{video_id}", tag = "videos",
    params(("video_id" = String, Path, description = "The video's id")),
    responses((status = 200, body = VideoDeleted), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn delete_video(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<VideoDeleted>> {
    principal.require(crate::domain::tenants::Scope::VideosWrite)?;
    let id = parse_id(&id)?;
    videos::delete(&state, &principal, &id).await?;
    Ok(Json(VideoDeleted {
        id: id.to_string(),
        object: "video.deleted",
        deleted: true,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ContentParams {
    /// `video` (default) or `thumbnail` (the last frame, as JPEG).
    pub variant: Option<String>,
}

/// Download a video's content
///
/// The MP4 of a completed video (`variant=video`), or its last frame (`variant=thumbnail`).
#[utoipa::path(
    get, path = "/v1/videos/{video_id}/content", tag = "videos",
    params(("video_id" = String, Path, description = "The video's id"), ContentParams),
    responses(
        (status = 200, description = "The MP4", content_type = "video/mp4", body = Vec<u8>),
        (status = 302, description = "Redirect to the upstream's copy"),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not completed yet", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn video_content(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<ContentParams>,
) -> Result<Response> {
    principal.require(crate::domain::tenants::Scope::VideosRead)?;
    let video = videos::get(&state, &principal, &parse_id(&id)?).await?;
    if video.status != VideoStatus::Completed {
        return Err(Error::Conflict(
            "video_not_ready",
            format!(
                "video {} is {}; content exists once it is completed",
                video.id,
                video.status.as_str()
            ),
        ));
    }
    let thumbnail = match params.variant.as_deref() {
        None | Some("video") => false,
        Some("thumbnail") => true,
        Some(other) => {
            return Err(Error::invalid(
                "variant",
                format!("unknown variant `{other}`; use video or thumbnail"),
            ))
        }
    };
    let output = video.output_url.as_deref().unwrap_or_default();
    if output == sandbox::OUTPUT_URL {
        let (bytes, content_type, extension) = if thumbnail {
            (sandbox::LAST_FRAME, "image/jpeg", "jpg")
        } else {
            (sandbox::VIDEO, "video/mp4", "mp4")
        };
        let disposition = format!("inline; filename=\"{}.{extension}\"", video.id);
        let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    if thumbnail {
        return Err(Error::NotFound("thumbnail"));
    }
    let location = HeaderValue::from_str(output).map_err(|_| Error::NotFound("video content"))?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}
