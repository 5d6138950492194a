//! The create request as it arrives — JSON, or `multipart/form-data` exactly as the OpenAI
//! SDK sends it (every field a text part, `input_reference` a file part or
//! `input_reference[image_url]`) — read into a [`CreateVideoBody`] and the uploaded first
//! frame, if any, whose type and size are checked here.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use super::create::CreateVideoBody;
use crate::config::VideosConfig;
use crate::error::Error;
use crate::http::AppState;

/// An image uploaded as the `input_reference` file part.
pub struct UploadedImage {
    pub bytes: bytes::Bytes,
    pub extension: &'static str,
}

/// A parsed create request: the body, plus the uploaded first frame if any.
pub struct CreateInput {
    pub body: CreateVideoBody,
    pub upload: Option<UploadedImage>,
}

impl FromRequest<AppState> for CreateInput {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let multipart = Multipart::from_request(req, state).await.map_err(|e| {
                Error::invalid_body(format!("malformed multipart body: {}", e.body_text()))
            })?;
            read_multipart(multipart, &state.config.videos).await
        } else if content_type.starts_with("application/json") || content_type.is_empty() {
            // No Content-Type at all is read as JSON.
            let body = crate::http::extract::json_body::<CreateVideoBody, _>(req, state).await?;
            Ok(CreateInput { body, upload: None })
        } else {
            Err(Error::UnsupportedMediaType(format!(
                "send application/json or multipart/form-data (received Content-Type `{}`)",
                content_type.chars().take(100).collect::<String>()
            )))
        }
    }
}

const ARRAY_FIELDS: [&str; 3] = [
    "reference_image_urls",
    "reference_video_urls",
    "reference_audio_urls",
];

async fn read_multipart(
    mut multipart: Multipart,
    limits: &VideosConfig,
) -> Result<CreateInput, Error> {
    let mut fields = Map::new();
    let mut upload = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "input_reference" && field.file_name().is_some() {
            if upload.is_some() {
                return Err(Error::invalid(
                    "input_reference",
                    "only one input_reference file is accepted",
                ));
            }
            let bytes = field.bytes().await.map_err(multipart_error)?;
            upload = Some(check_image(bytes, limits)?);
            continue;
        }
        let value = field.text().await.map_err(multipart_error)?;
        insert_form_field(&mut fields, &name, value)?;
    }
    let body = serde_json::from_value(Value::Object(fields))
        .map_err(|e| Error::invalid_body(e.to_string()))?;
    Ok(CreateInput { body, upload })
}

fn multipart_error(error: axum::extract::multipart::MultipartError) -> Error {
    if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge
    } else {
        Error::invalid_body(format!("malformed multipart body: {}", error.body_text()))
    }
}

/// Places one form field into the JSON shape of [`CreateVideoBody`]: `a[b]` nests,
/// `a[]` and repeated list fields append, anything else may appear once.
fn insert_form_field(
    fields: &mut Map<String, Value>,
    name: &str,
    value: String,
) -> Result<(), Error> {
    let (head, rest) = match name.split_once('[') {
        Some((head, rest)) => (head, Some(rest)),
        None => (name, None),
    };
    match rest {
        None if ARRAY_FIELDS.contains(&head) => {
            push_to_array(fields, head, value);
            Ok(())
        }
        None => {
            if fields
                .insert(head.to_string(), Value::String(value))
                .is_some()
            {
                return Err(Error::invalid(
                    head,
                    format!("field `{head}` appears more than once"),
                ));
            }
            Ok(())
        }
        Some("]") => {
            push_to_array(fields, head, value);
            Ok(())
        }
        Some(rest) => {
            let Some((key, tail)) = rest.split_once(']') else {
                return Err(Error::invalid(
                    name,
                    format!("malformed field name `{name}`"),
                ));
            };
            let object = fields
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(object) = object else {
                return Err(Error::invalid(
                    head,
                    format!("field `{head}` given both as a value and as an object"),
                ));
            };
            match tail {
                "" => {
                    object.insert(key.to_string(), Value::String(value));
                }
                "[]" => push_to_array(object, key, value),
                _ => {
                    return Err(Error::invalid(
                        name,
                        format!("unsupported field name `{name}`"),
                    ))
                }
            }
            Ok(())
        }
    }
}

fn push_to_array(fields: &mut Map<String, Value>, key: &str, value: String) {
    let entry = fields
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = entry {
        items.push(Value::String(value));
    }
}

/// Accepts JPEG, PNG and WebP images, recognised by their magic bytes, within the size limit.
fn check_image(bytes: bytes::Bytes, limits: &VideosConfig) -> Result<UploadedImage, Error> {
    if bytes.len() > limits.max_input_file_bytes {
        return Err(Error::invalid(
            "input_reference",
            format!(
                "input_reference is larger than {} bytes",
                limits.max_input_file_bytes
            ),
        ));
    }
    let extension = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "jpg"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "webp"
    } else {
        return Err(Error::invalid(
            "input_reference",
            "input_reference must be a JPEG, PNG or WebP image",
        ));
    };
    Ok(UploadedImage { bytes, extension })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_nest_and_repeat_like_the_openai_sdk_sends_them() {
        let mut fields = Map::new();
        insert_form_field(
            &mut fields,
            "input_reference[image_url]",
            "https://a.example/f.png".into(),
        )
        .expect("ok");
        insert_form_field(&mut fields, "metadata[order]", "A-1".into()).expect("ok");
        insert_form_field(
            &mut fields,
            "reference_image_urls[]",
            "https://a.example/1.png".into(),
        )
        .expect("ok");
        insert_form_field(
            &mut fields,
            "reference_image_urls[]",
            "https://a.example/2.png".into(),
        )
        .expect("ok");
        insert_form_field(&mut fields, "prompt", "x".into()).expect("ok");
        assert!(insert_form_field(&mut fields, "prompt", "y".into()).is_err());
        let parsed: CreateVideoBody = serde_json::from_value(Value::Object(fields)).expect("shape");
        assert_eq!(parsed.reference_image_urls.map(|v| v.len()), Some(2));
        assert_eq!(
            parsed.metadata.and_then(|m| m.get("order").cloned()),
            Some("A-1".into())
        );
        assert!(parsed.input_reference.and_then(|r| r.image_url).is_some());
    }

    #[test]
    fn only_real_images_are_accepted_as_uploads() {
        let limits = VideosConfig::default();
        assert!(check_image(bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\nrest"), &limits).is_ok());
        assert!(check_image(bytes::Bytes::from_static(b"GIF89a...."), &limits).is_err());
    }
}
