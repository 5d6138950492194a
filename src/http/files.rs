//! `GET /files/uploads/{name}`: uploaded input images, served without authentication so that
//! an upstream can fetch them from the URL the gateway hands it. The names are 32 random
//! base62 characters, so a file can only be reached by whoever was given its URL.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::http::extract::ApiPath;
use crate::http::AppState;

/// An uploaded input image
///
/// Served without authentication to the upstream the gateway handed its URL to.
#[utoipa::path(
    get, path = "/files/uploads/{name}", tag = "operations",
    params(("name" = String, Path, description = "32 random characters and the image's extension")),
    responses(
        (status = 200, description = "The image", content(
            (crate::http::schema::Binary = "image/jpeg"),
            (crate::http::schema::Binary = "image/png"),
            (crate::http::schema::Binary = "image/webp"),
        )),
        (status = 404, body = crate::http::error::ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, Error> {
    let (stem, extension) = name.rsplit_once('.').ok_or(Error::NotFound("file"))?;
    let content_type = match extension {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        _ => return Err(Error::NotFound("file")),
    };
    if stem.len() != 32 || !stem.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::NotFound("file"));
    }
    let path = state.config.storage.dir.join("uploads").join(&name);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| Error::NotFound("file"))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(bytes),
    )
        .into_response())
}
