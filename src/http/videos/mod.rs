//! `/v1/videos`: thin handlers that parse, call [`crate::domain::videos`], and serialize.

pub mod create;
pub mod input;
pub mod object;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use self::create::CreateVideoBody;
use self::input::CreateInput;
use self::object::{VideoDeleted, VideoList, VideoObject};
use crate::domain::access::{self, VideoAction};
use crate::domain::idempotency::{request_hash, Committed};
use crate::domain::videos;
use crate::domain::videos::{Content, ListQuery, Variant};
use crate::error::{Error, Result};
use crate::http::auth::Caller;
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::idempotency::{self, IdempotencyHeader};
use crate::http::AppState;
use crate::types::ids::VideoId;
use crate::types::video::{Video, VideoStatus};

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
    key: IdempotencyHeader,
    input: CreateInput,
) -> Result<Response> {
    let reach = access::videos(&principal, VideoAction::Write)?;
    let CreateInput { body, upload } = input;
    // Validated and admitted first, so that bad input never leaves a stored file behind.
    let request = body.into_new_video(&state.config.videos, upload.is_some())?;
    let request = videos::admit(&state, &principal, request).await?;
    let claim = key.claim(principal.tenant_id.as_str(), || {
        let upload_digest = upload.as_ref().map(|u| request_hash(&u.bytes.as_ref()));
        (principal.mode.as_str(), &request, upload_digest)
    })?;
    let first_frame = upload.map(|u| videos::FirstFrame {
        bytes: u.bytes,
        extension: u.extension,
    });
    let run = async {
        match videos::create(&state, &principal, request, first_frame, claim.as_ref()).await {
            Ok(created) => Ok(created_response(
                &state,
                &created.video,
                Some(created.route),
            )),
            Err(race @ Error::Conflict("idempotency_race", _)) => Err(race),
            // A refusal after the key was claimed is the key's answer too.
            Err(error) => Ok(error.into_response()),
        }
    };
    // A create whose answer was lost answers with its job as it stands now.
    let rebuild = async |committed: Committed| {
        let id = committed.video_id.ok_or(Error::NotFound("video"))?;
        let video = videos::get(&state, &reach, &id).await?;
        Ok(created_response(&state, &video, None))
    };
    idempotency::once(&state, claim.as_ref(), run, rebuild).await
}

/// The answer to a create. `route` is the routing decision's reason, known to the request
/// that made the decision (not to an answer rebuilt later).
fn created_response(state: &AppState, video: &Video, route: Option<&'static str>) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(provider) = video
        .provider
        .and_then(|p| HeaderValue::from_str(p.as_str()).ok())
    {
        headers.insert(HeaderName::from_static("x-gateway-provider"), provider);
    }
    if let Some(route) = route {
        headers.insert(
            HeaderName::from_static("x-gateway-route"),
            HeaderValue::from_static(route),
        );
    }
    video_response(state, video, headers)
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
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let reach = access::videos(&principal, VideoAction::Read)?;
    let video = videos::get(&state, &reach, &parse_id(&id)?).await?;
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
    let reach = access::videos(&principal, VideoAction::Read)?;
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
        tenant: &reach.tenant,
        mode: reach.mode,
        after: after.as_ref(),
        limit,
        newest_first,
        status,
        user: reach.user_filter(params.user.as_deref()),
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
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let reach = access::videos(&principal, VideoAction::Write)?;
    let video = videos::cancel(&state, &reach, &parse_id(&id)?).await?;
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
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VideoDeleted>> {
    let reach = access::videos(&principal, VideoAction::Write)?;
    let id = parse_id(&id)?;
    videos::delete(&state, &reach, &id).await?;
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
    #[param(inline, value_type = Option<ContentVariant>)]
    pub variant: Option<String>,
}

/// The file `GET /v1/videos/{video_id}/content` answers, for the document: the handler reads
/// the name and answers 400 `invalid_request` for any other.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
// Never built: it only names the accepted values in the OpenAPI document.
#[allow(dead_code)]
pub enum ContentVariant {
    Video,
    Thumbnail,
}

/// Download a video's content
///
/// The MP4 of a completed video (`variant=video`), or its last frame (`variant=thumbnail`).
#[utoipa::path(
    get, path = "/v1/videos/{video_id}/content", tag = "videos",
    params(("video_id" = String, Path, description = "The video's id"), ContentParams),
    responses(
        (status = 200, description = "The MP4, or with `variant=thumbnail` the last frame as JPEG", content(
            (crate::http::schema::Binary = "video/mp4"),
            (crate::http::schema::Binary = "image/jpeg"),
        )),
        (status = 206, description = "The requested byte range of the MP4 (`Range: bytes=…`)", content_type = "video/mp4", body = crate::http::schema::Binary),
        (status = 302, description = "Redirect to the upstream's copy, while the gateway's own copy is pending"),
        (status = 404, body = ErrorBody),
        (status = 410, description = "The content has expired (`expires_at`)", body = ErrorBody),
        (status = 416, description = "The range starts beyond the end of the file"),
        (status = 409, description = "Not completed yet", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn video_content(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ContentParams>,
    method: axum::http::Method,
    request_headers: HeaderMap,
) -> Result<Response> {
    let reach = access::videos(&principal, VideoAction::Read)?;
    let variant = match params.variant.as_deref() {
        None | Some("video") => Ok(Variant::Video),
        Some("thumbnail") => Ok(Variant::Thumbnail),
        Some(other) => Err(Error::invalid(
            "variant",
            format!("unknown variant `{other}`; use video or thumbnail"),
        )),
    };
    let (video, content) = videos::content(&state, &reach, &parse_id(&id)?, variant).await?;
    match content {
        Content::Stored { key, size } => {
            stored_content(&state, &video, &key, size, &method, &request_headers).await
        }
        Content::Bytes {
            bytes,
            content_type,
            extension,
        } => {
            let disposition = format!("inline; filename=\"{}.{extension}\"", video.id);
            let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            Ok(response)
        }
        Content::Redirect(url) => {
            let location =
                HeaderValue::from_str(&url).map_err(|_| Error::NotFound("video content"))?;
            Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
        }
    }
}

/// A single byte range of a `Range` header, resolved against the file size: `Some(Ok(..))`
/// to serve, `Some(Err(()))` when it cannot be satisfied, `None` to ignore the header (absent,
/// malformed or several ranges — serving the whole file is then correct).
fn byte_range(headers: &HeaderMap, size: u64) -> Option<std::result::Result<(u64, u64), ()>> {
    let value = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = value.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(suffix), size.saturating_sub(1))
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size.saturating_sub(1)
        } else {
            let end: u64 = last.parse().ok()?;
            if end < start {
                return None;
            }
            end.min(size.saturating_sub(1))
        };
        (start, end)
    };
    if size == 0 || range.0 >= size {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// Serves an archived output from storage as a stream, honouring `Range` and `HEAD`.
async fn stored_content(
    state: &AppState,
    video: &Video,
    key: &str,
    size: u64,
    method: &axum::http::Method,
    request_headers: &HeaderMap,
) -> Result<Response> {
    let (status, start, end) = match byte_range(request_headers, size) {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(Ok((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(Err(())) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    let body = if *method == axum::http::Method::HEAD || length == 0 {
        Body::empty()
    } else {
        Body::from_stream(videos::read_stored(state, key, start, end + 1).await?)
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{}.mp4\"", video.id)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
