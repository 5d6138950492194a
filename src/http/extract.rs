//! Extractors whose rejections speak the API's error envelope instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::Error;

/// `axum::Json` with enveloped 400/413/415 rejections.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        json_body(req, state).await.map(ApiJson)
    }
}

/// A JSON body, which must be a JSON object. Without a `Content-Type` the body is read as
/// JSON (what curl and most clients mean); another declared type is a 415 that names it.
pub async fn json_body<T, S>(req: Request, state: &S) -> Result<T, Error>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    if let Some(declared) = declared.filter(|declared| !is_json(declared)) {
        return Err(Error::UnsupportedMediaType(format!(
            "send the body as application/json (received Content-Type `{}`)",
            declared.chars().take(100).collect::<String>()
        )));
    }
    let body = read_body(req, state).await?;
    from_object(&body)
}

/// Whether a Content-Type is JSON: `application/json` or any `+json` type, with parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge
        } else {
            Error::invalid_body(rejection.body_text())
        }
    })
}

/// Every request body is a JSON object. Anything else is refused as such before it reaches
/// serde, which would otherwise read an array into a struct field by field and blame a
/// member (`param: "[0]"`) of a body that was wrong as a whole.
fn from_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Malformed JSON keeps its syntax error; well-formed JSON of another kind is named.
        axum::Json::<serde::de::IgnoredAny>::from_bytes(body)
            .map(drop)
            .map_err(json_rejection)?;
        return Err(Error::invalid_body("the body must be a JSON object"));
    }
    axum::Json::<T>::from_bytes(body)
        .map(|axum::Json(value)| value)
        .map_err(json_rejection)
}

pub fn json_rejection(rejection: JsonRejection) -> Error {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Error::UnsupportedMediaType("send the body as application/json".into())
        }
        JsonRejection::JsonSyntaxError(e) => {
            Error::invalid_body(format!("malformed JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => field_error(&e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        other => Error::invalid_body(other.body_text()),
    }
}

/// A body that is JSON but not the expected shape, as one field error: the field in `param`
/// (from the path serde reports, or the field an unknown or missing field names) and what was
/// expected, in words rather than in the names of the gateway's types.
fn field_error(text: &str) -> Error {
    let text = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .unwrap_or(text);
    // Serde's position suffix means nothing to a client that sent one line of JSON.
    let text = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => text,
    };
    let is_path = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
    };
    let (path, message) = match text.split_once(": ") {
        Some((path, message)) if is_path(path) => (Some(path.to_string()), message),
        _ => (None, text),
    };
    // `unknown field `x`, expected …` and `missing field `x`` name the field themselves.
    let named = || {
        let start = message.find('`')? + 1;
        let end = start + message[start..].find('`')?;
        Some(message[start..end].to_string())
    };
    // serde's path of an unknown field ends with the field; a missing one is named only in the
    // message, below its parent's path.
    let missing = message.starts_with("missing field");
    let param = match (path, named()) {
        (Some(path), Some(name)) if missing => Some(format!("{path}.{name}")),
        (Some(path), _) => Some(path),
        (None, Some(name)) if missing || message.starts_with("unknown field") => Some(name),
        (None, _) => None,
    };
    let message = if message.starts_with("data did not match any variant of untagged enum") {
        "has the wrong type: expected a number, a boolean or a string".to_string()
    } else if message.starts_with("invalid type: floating point") && expects_integer(message) {
        // serde says `expected i64`: the type's name, not what the client should send.
        "must be an integer (a whole number)".to_string()
    } else {
        message.to_string()
    };
    match param {
        Some(param) => {
            let message = format!("{param}: {message}");
            Error::invalid(param, message)
        }
        None => Error::invalid_body(message),
    }
}

/// Whether serde's message ends by expecting one of Rust's integer types.
fn expects_integer(message: &str) -> bool {
    message
        .rsplit_once("expected ")
        .is_some_and(|(_, expected)| {
            matches!(
                expected.trim(),
                "i8" | "i16" | "i32" | "i64" | "isize" | "u8" | "u16" | "u32" | "u64" | "usize"
            )
        })
}

/// An optional JSON body: `None` when the body is empty (or JSON `null`), else `T` with
/// [`ApiJson`]'s rejections (a non-empty body must be sent as `application/json`).
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(is_json);
        let body = read_body(req, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !is_json {
            return Err(Error::UnsupportedMediaType(
                "send the body as application/json, or send none".into(),
            ));
        }
        if body.trim_ascii() == b"null" {
            return Ok(OptionalJson(None));
        }
        from_object(&body).map(|value| OptionalJson(Some(value)))
    }
}

/// `axum::extract::Query` with an enveloped 400 rejection.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Error::invalid_body(
                format!("invalid query string: {}", e.body_text()),
            )),
            Err(other) => Err(Error::invalid_body(other.body_text())),
        }
    }
}

/// `axum::extract::Path` with an enveloped 400 rejection: a path parameter that is not valid
/// UTF-8 once percent-decoded (`/v1/videos/%ff`) is refused like any other bad parameter.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let rejection = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => return Ok(ApiPath(value)),
            Err(rejection) => rejection,
        };
        // The other rejections (a route without the parameters, a type axum cannot
        // deserialize into) are the gateway's own mistakes: a 500, logged.
        if rejection.status() != StatusCode::BAD_REQUEST {
            return Err(Error::Internal(anyhow::anyhow!(
                "path parameters: {}",
                rejection.body_text()
            )));
        }
        match rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.into_kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    let message = format!("{key} is not valid UTF-8 once percent-decoded");
                    Err(Error::invalid(key, message))
                }
                kind => Err(Error::invalid_body(format!("invalid path: {kind}"))),
            },
            other => Err(Error::invalid_body(format!(
                "invalid path: {}",
                other.body_text()
            ))),
        }
    }
}
