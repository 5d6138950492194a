//! The create request as it arrives — JSON, or `multipart/form-data` exactly as the OpenAI
//! SDK sends it (every field a text part, `input_reference` a file part or
//! `input_reference[image_url]`) — parsed into a [`NewVideo`]. Every field is checked here;
//! nothing past this module sees unvalidated input.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::config::VideosConfig;
use crate::domain::billing::Credits;
use crate::domain::ids::EndUserId;
use crate::domain::video::{
    parse_size, AspectRatio, MediaUrl, Model, NewVideo, Resolution, RoutingRequest, Seconds,
    Strategy, VideoInputs,
};
use crate::error::Error;

/// A number given as a JSON number or a string (multipart sends everything as text).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Flexible {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl Flexible {
    fn as_int(&self) -> Option<i64> {
        match self {
            Flexible::Int(n) => Some(*n),
            Flexible::Text(s) => s.trim().parse().ok(),
            Flexible::Bool(_) => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Flexible::Bool(b) => Some(*b),
            Flexible::Text(s) => match s.trim() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            Flexible::Int(_) => None,
        }
    }
}

/// `input_reference` given by URL (OpenAI's `input_reference[image_url]`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputReference {
    pub image_url: Option<String>,
}

/// Routing preferences of one request; they may only narrow what the tenant allows.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingBody {
    /// `cheapest` (default), `fastest` or `ordered`.
    pub strategy: Option<String>,
    /// Providers this request may use, in order of preference for `ordered`.
    pub providers: Option<Vec<String>>,
    /// Whether another provider may take the job when the first one fails.
    #[schema(value_type = Option<bool>)]
    pub fallback: Option<Flexible>,
    /// Refuse the request if its price would exceed this many credits.
    #[schema(value_type = Option<i64>)]
    pub max_cost_credits: Option<Flexible>,
}

impl RoutingBody {
    fn into_routing(self) -> Result<RoutingRequest, Error> {
        let strategy = match self.strategy.as_deref() {
            None => None,
            Some(raw) => Some(Strategy::parse(raw).ok_or_else(|| {
                Error::invalid(
                    "routing.strategy",
                    "routing.strategy must be cheapest, fastest or ordered",
                )
            })?),
        };
        let providers = self.providers.unwrap_or_default();
        if providers.len() > 16 || providers.iter().any(|p| p.is_empty() || p.len() > 64) {
            return Err(Error::invalid(
                "routing.providers",
                "routing.providers must list up to 16 provider names",
            ));
        }
        let max_cost = self
            .max_cost_credits
            .map(|v| {
                v.as_int()
                    .and_then(|n| Credits::new(n).ok())
                    .filter(|c| !c.is_negative())
                    .ok_or_else(|| {
                        Error::invalid(
                            "routing.max_cost_credits",
                            "routing.max_cost_credits must be an integer from 0 to 10^15",
                        )
                    })
            })
            .transpose()?;
        let fallback = self
            .fallback
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    Error::invalid("routing.fallback", "routing.fallback must be true or false")
                })
            })
            .transpose()?;
        Ok(RoutingRequest {
            strategy,
            providers,
            fallback: fallback.unwrap_or(true),
            max_cost,
            resubmit: false,
        })
    }
}

/// Body of `POST /v1/videos`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "seedance-2.0-fast", "prompt": "A paper boat drifting down a rainy street, cinematic", "seconds": "5", "resolution": "720p", "aspect_ratio": "16:9", "user": "customer-42", "metadata": {"order": "A-1001"}}))]
pub struct CreateVideoBody {
    /// `seedance-2.0` (default), `seedance-2.0-fast` or `seedance-2.0-mini`; aliases such as
    /// `bytedance/seedance-2.0-fast` are accepted.
    pub model: Option<String>,
    /// What to generate, up to 4000 characters.
    pub prompt: Option<String>,
    /// Length in seconds, 4-15 (string or integer). Default 5.
    #[schema(value_type = Option<String>, example = "5")]
    pub seconds: Option<Flexible>,
    /// Alias of `seconds`.
    #[schema(value_type = Option<i64>)]
    pub duration: Option<Flexible>,
    /// OpenAI-style `WIDTHxHEIGHT`, e.g. `1280x720`; sets resolution and aspect ratio.
    pub size: Option<String>,
    /// `480p`, `720p` (default) or `1080p`.
    pub resolution: Option<String>,
    /// `21:9`, `16:9` (default), `4:3`, `1:1`, `3:4`, `9:16` or `adaptive`.
    pub aspect_ratio: Option<String>,
    /// First frame (image-to-video). Alias: `first_frame_url`.
    pub image_url: Option<String>,
    pub first_frame_url: Option<String>,
    /// Last frame; needs a first frame.
    pub last_frame_url: Option<String>,
    /// Up to 9 reference images.
    pub reference_image_urls: Option<Vec<String>>,
    /// Up to 3 reference videos.
    pub reference_video_urls: Option<Vec<String>>,
    /// Up to 3 reference audio clips.
    pub reference_audio_urls: Option<Vec<String>>,
    /// OpenAI's first-frame reference by URL; in multipart it may also be a file part.
    pub input_reference: Option<InputReference>,
    #[schema(value_type = Option<bool>)]
    pub generate_audio: Option<Flexible>,
    /// -1 (random) to 4294967295.
    #[schema(value_type = Option<i64>)]
    pub seed: Option<Flexible>,
    #[schema(value_type = Option<bool>)]
    pub camera_fixed: Option<Flexible>,
    /// The tenant's end user this video is for.
    pub user: Option<String>,
    /// Up to 16 string pairs, returned on the video object.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Called when the video reaches a final state.
    pub webhook_url: Option<String>,
    pub routing: Option<RoutingBody>,
}

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

fn optional_url(param: &str, raw: Option<&str>) -> Result<Option<MediaUrl>, Error> {
    raw.map(|raw| {
        MediaUrl::parse(raw).map_err(|why| Error::invalid(param, format!("{param} {why}")))
    })
    .transpose()
}

fn url_list(param: &str, raw: Option<&[String]>, max: usize) -> Result<Vec<MediaUrl>, Error> {
    let raw = raw.unwrap_or_default();
    if raw.len() > max {
        return Err(Error::invalid(
            param,
            format!("{param} accepts at most {max} URLs"),
        ));
    }
    raw.iter()
        .map(|u| {
            MediaUrl::parse(u)
                .map_err(|why| Error::invalid(param, format!("every entry of {param} {why}")))
        })
        .collect()
}

/// Two spellings of one field must agree when both are given.
fn one_of<'a>(
    a: (&str, Option<&'a str>),
    b: (&str, Option<&'a str>),
) -> Result<Option<&'a str>, Error> {
    match (a.1, b.1) {
        (Some(x), Some(y)) if x != y => Err(Error::invalid(
            b.0,
            format!("{} and {} disagree; give one of them", a.0, b.0),
        )),
        (x, y) => Ok(x.or(y)),
    }
}

impl CreateVideoBody {
    /// Validates every field into a [`NewVideo`]. `has_upload` says a first-frame file came
    /// with the request; the caller records where it stored it.
    pub fn into_new_video(
        self,
        limits: &VideosConfig,
        has_upload: bool,
    ) -> Result<NewVideo, Error> {
        let model = match self.model.as_deref() {
            None => Model::Standard,
            Some(raw) => Model::parse(raw).ok_or_else(|| {
                Error::invalid(
                    "model",
                    format!("unknown model `{raw}`; use seedance-2.0, seedance-2.0-fast or seedance-2.0-mini"),
                )
            })?,
        };

        let prompt = self.prompt.unwrap_or_default();
        if prompt.trim().is_empty() {
            return Err(Error::invalid("prompt", "prompt is required"));
        }
        if prompt.chars().count() > limits.max_prompt_chars {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "prompt is longer than {} characters",
                    limits.max_prompt_chars
                ),
            ));
        }
        if prompt.contains('\0') {
            return Err(Error::invalid(
                "prompt",
                "prompt must not contain NUL characters",
            ));
        }

        let seconds = match (&self.seconds, &self.duration) {
            (None, None) => Seconds::DEFAULT,
            (a, b) => {
                let parse = |param: &str, v: &Flexible| {
                    v.as_int().and_then(Seconds::new).ok_or_else(|| {
                        Error::invalid(param, format!("{param} must be an integer from 4 to 15"))
                    })
                };
                let a = a.as_ref().map(|v| parse("seconds", v)).transpose()?;
                let b = b.as_ref().map(|v| parse("duration", v)).transpose()?;
                match (a, b) {
                    (Some(x), Some(y)) if x != y => {
                        return Err(Error::invalid(
                            "duration",
                            "seconds and duration disagree; give one of them",
                        ))
                    }
                    (x, y) => x.or(y).unwrap_or(Seconds::DEFAULT),
                }
            }
        };

        let mut resolution = self
            .resolution
            .as_deref()
            .map(|r| {
                Resolution::parse(r).ok_or_else(|| {
                    Error::invalid("resolution", "resolution must be 480p, 720p or 1080p")
                })
            })
            .transpose()?;
        let mut aspect_ratio = self
            .aspect_ratio
            .as_deref()
            .map(|r| {
                AspectRatio::parse(r).ok_or_else(|| {
                    Error::invalid(
                        "aspect_ratio",
                        "aspect_ratio must be one of 21:9, 16:9, 4:3, 1:1, 3:4, 9:16, adaptive",
                    )
                })
            })
            .transpose()?;
        if let Some(size) = self.size.as_deref() {
            let (r, a) = parse_size(size).ok_or_else(|| {
                Error::invalid(
                    "size",
                    format!(
                        "size `{size}` is not a supported WIDTHxHEIGHT, e.g. 1280x720 or 720x1280"
                    ),
                )
            })?;
            if resolution.is_some_and(|x| x != r)
                || aspect_ratio.is_some_and(|x| x != a && x != AspectRatio::Adaptive)
            {
                return Err(Error::invalid(
                    "size",
                    "size disagrees with resolution or aspect_ratio",
                ));
            }
            resolution = Some(r);
            aspect_ratio = Some(aspect_ratio.unwrap_or(a));
        }

        let input_reference_url = self
            .input_reference
            .as_ref()
            .and_then(|r| r.image_url.as_deref());
        let first = one_of(
            ("image_url", self.image_url.as_deref()),
            ("first_frame_url", self.first_frame_url.as_deref()),
        )?;
        let first = one_of(
            ("image_url", first),
            ("input_reference[image_url]", input_reference_url),
        )?;
        if first.is_some() && has_upload {
            return Err(Error::invalid(
                "input_reference",
                "give the first frame either as a file or as a URL, not both",
            ));
        }
        let inputs = VideoInputs {
            first_frame_url: optional_url("image_url", first)?,
            first_frame_upload: None,
            last_frame_url: optional_url("last_frame_url", self.last_frame_url.as_deref())?,
            reference_image_urls: url_list(
                "reference_image_urls",
                self.reference_image_urls.as_deref(),
                VideoInputs::MAX_REFERENCE_IMAGES,
            )?,
            reference_video_urls: url_list(
                "reference_video_urls",
                self.reference_video_urls.as_deref(),
                VideoInputs::MAX_REFERENCE_VIDEOS,
            )?,
            reference_audio_urls: url_list(
                "reference_audio_urls",
                self.reference_audio_urls.as_deref(),
                VideoInputs::MAX_REFERENCE_AUDIO,
            )?,
        };
        if inputs.last_frame_url.is_some() && !inputs.has_first_frame() && !has_upload {
            return Err(Error::invalid(
                "last_frame_url",
                "last_frame_url needs a first frame (image_url)",
            ));
        }

        let flag = |param: &str, v: &Option<Flexible>| {
            v.as_ref()
                .map(|v| {
                    v.as_bool().ok_or_else(|| {
                        Error::invalid(param, format!("{param} must be true or false"))
                    })
                })
                .transpose()
        };
        let seed = self
            .seed
            .as_ref()
            .map(|v| {
                v.as_int()
                    .filter(|s| (-1..=i64::from(u32::MAX)).contains(s))
                    .ok_or_else(|| {
                        Error::invalid("seed", "seed must be an integer from -1 to 4294967295")
                    })
            })
            .transpose()?;

        let user = self
            .user
            .as_deref()
            .map(|u| {
                EndUserId::parse(u).ok_or_else(|| {
                    Error::invalid(
                        "user",
                        "user must be 1-128 characters of letters, digits and - _ . @ :",
                    )
                })
            })
            .transpose()?;

        let metadata = self.metadata.unwrap_or_default();
        if metadata.len() > 16 {
            return Err(Error::invalid("metadata", "metadata holds at most 16 keys"));
        }
        for (key, value) in &metadata {
            let shown: String = key.chars().take(64).collect();
            if key.is_empty() {
                return Err(Error::invalid(
                    "metadata",
                    "metadata keys must not be empty",
                ));
            }
            if key.chars().count() > 64 {
                return Err(Error::invalid(
                    "metadata",
                    format!("metadata key `{shown}…` is longer than 64 characters"),
                ));
            }
            if value.chars().count() > 512 {
                return Err(Error::invalid(
                    format!("metadata.{key}"),
                    format!("the value of metadata key `{key}` is longer than 512 characters"),
                ));
            }
        }

        Ok(NewVideo {
            model,
            prompt,
            seconds,
            resolution: resolution.unwrap_or(Resolution::P720),
            aspect_ratio: aspect_ratio.unwrap_or(AspectRatio::R16x9),
            inputs,
            generate_audio: flag("generate_audio", &self.generate_audio)?,
            seed,
            camera_fixed: flag("camera_fixed", &self.camera_fixed)?,
            user,
            metadata,
            webhook_url: optional_url("webhook_url", self.webhook_url.as_deref())?,
            routing: self
                .routing
                .map(RoutingBody::into_routing)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> CreateVideoBody {
        serde_json::from_value(json).expect("valid body shape")
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let video = body(serde_json::json!({"prompt": "a cat"}))
            .into_new_video(&VideosConfig::default(), false)
            .expect("valid");
        assert_eq!(video.model, Model::Standard);
        assert_eq!(video.seconds.get(), 5);
        assert_eq!(video.resolution, Resolution::P720);
        assert_eq!(video.aspect_ratio, AspectRatio::R16x9);
    }

    #[test]
    fn seconds_may_be_a_string_and_size_sets_resolution() {
        let video =
            body(serde_json::json!({"prompt": "a cat", "seconds": "8", "size": "720x1280"}))
                .into_new_video(&VideosConfig::default(), false)
                .expect("valid");
        assert_eq!(video.seconds.get(), 8);
        assert_eq!(
            (video.resolution, video.aspect_ratio),
            (Resolution::P720, AspectRatio::R9x16)
        );
    }

    #[test]
    fn out_of_range_and_conflicting_fields_name_their_param() {
        let cases = [
            (serde_json::json!({"prompt": "x", "seconds": 16}), "seconds"),
            (
                serde_json::json!({"prompt": "x", "seconds": "four"}),
                "seconds",
            ),
            (
                serde_json::json!({"prompt": "x", "seconds": 5, "duration": 6}),
                "duration",
            ),
            (
                serde_json::json!({"prompt": "x", "model": "sora-2"}),
                "model",
            ),
            (serde_json::json!({"prompt": " "}), "prompt"),
            (
                serde_json::json!({"prompt": "x", "size": "1280x720", "resolution": "480p"}),
                "size",
            ),
            (
                serde_json::json!({"prompt": "x", "last_frame_url": "https://a.example/l.png"}),
                "last_frame_url",
            ),
            (
                serde_json::json!({"prompt": "x", "reference_video_urls": ["https://a.example/1", "https://a.example/2", "https://a.example/3", "https://a.example/4"]}),
                "reference_video_urls",
            ),
            (
                serde_json::json!({"prompt": "x", "webhook_url": "ftp://a.example/"}),
                "webhook_url",
            ),
            (
                serde_json::json!({"prompt": "x", "seed": 5_000_000_000_i64}),
                "seed",
            ),
        ];
        for (json, param) in cases {
            let err = body(json.clone())
                .into_new_video(&VideosConfig::default(), false)
                .expect_err("invalid");
            match err {
                Error::InvalidRequest { param: Some(p), .. } => assert_eq!(p, param, "for {json}"),
                other => panic!("unexpected {other:?} for {json}"),
            }
        }
    }

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
