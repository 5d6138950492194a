//! The fields of a create request, parsed into a [`NewVideo`]. Every field is checked here;
//! nothing past this module sees unvalidated input. Reading the request off the wire (JSON or
//! `multipart/form-data`) is [`super::input`]'s.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::VideosConfig;
use crate::error::Error;
use crate::types::ids::EndUserId;
use crate::types::money::Credits;
use crate::types::video::{
    parse_size, AspectRatio, MediaUrl, Model, NewVideo, Resolution, RoutingRequest, Seconds,
    Strategy, VideoInputs,
};

/// A number given as a JSON number or a string (multipart sends everything as text).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Flexible {
    Int(i64),
    Bool(bool),
    Text(String),
    /// Any other JSON number (a fraction, or beyond `i64`), so that it is refused by the
    /// field's own rule ("… must be an integer …") rather than as a value of the wrong type.
    Number(f64),
}

impl Flexible {
    fn as_int(&self) -> Option<i64> {
        // 2^63 as f64: `i64::MAX as f64` rounds up to it, so the range is half-open.
        const BEYOND_I64: f64 = 9_223_372_036_854_775_808.0;
        match self {
            Flexible::Int(n) => Some(*n),
            Flexible::Text(s) => s.trim().parse().ok(),
            // JSON does not tell 5 from 5.0; a whole number is an integer however written.
            Flexible::Number(n) if n.fract() == 0.0 && (-BEYOND_I64..BEYOND_I64).contains(n) => {
                Some(*n as i64)
            }
            Flexible::Number(_) | Flexible::Bool(_) => None,
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
            Flexible::Int(_) | Flexible::Number(_) => None,
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
}
