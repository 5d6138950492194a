//! What a provider can serve, per model: durations, resolutions, aspect ratios, input kinds
//! and counts. A request that a provider cannot serve is never sent to it; the reason says
//! which field is out of reach.

use crate::domain::video::{AspectRatio, Model, NewVideo, Resolution};

#[derive(Debug, Clone, Copy)]
pub enum Durations {
    /// Any whole number of seconds in the range.
    Range(i64, i64),
    /// Only these lengths.
    List(&'static [i64]),
}

impl Durations {
    pub fn allows(self, seconds: i64) -> bool {
        match self {
            Durations::Range(lo, hi) => (lo..=hi).contains(&seconds),
            Durations::List(list) => list.contains(&seconds),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelCapabilities {
    pub model: Model,
    pub durations: Durations,
    pub resolutions: &'static [Resolution],
    pub aspect_ratios: &'static [AspectRatio],
    pub first_frame: bool,
    pub last_frame: bool,
    pub max_reference_images: usize,
    pub max_reference_videos: usize,
    pub max_reference_audio: usize,
    /// Whether `generate_audio` can be set.
    pub audio: bool,
    pub seed: bool,
    pub camera_fixed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub models: Vec<ModelCapabilities>,
}

impl Capabilities {
    pub fn for_model(&self, model: Model) -> Option<&ModelCapabilities> {
        self.models.iter().find(|m| m.model == model)
    }

    /// `Ok` when the provider can serve the request, else why not.
    pub fn check(&self, video: &NewVideo) -> Result<(), String> {
        let caps = self
            .for_model(video.model)
            .ok_or_else(|| format!("does not offer {}", video.model.id()))?;
        let seconds = video.seconds.get();
        if !caps.durations.allows(seconds) {
            return Err(format!(
                "cannot make {seconds} s videos with {}",
                video.model.id()
            ));
        }
        if !caps.resolutions.contains(&video.resolution) {
            return Err(format!(
                "does not offer {} for {}",
                video.resolution.as_str(),
                video.model.id()
            ));
        }
        if !caps.aspect_ratios.contains(&video.aspect_ratio) {
            return Err(format!(
                "does not offer aspect ratio {}",
                video.aspect_ratio.as_str()
            ));
        }
        let inputs = &video.inputs;
        if inputs.has_first_frame() && !caps.first_frame {
            return Err("does not take a first frame".into());
        }
        if inputs.last_frame_url.is_some() && !caps.last_frame {
            return Err("does not take a last frame".into());
        }
        let counts = [
            (
                "reference images",
                inputs.reference_image_urls.len(),
                caps.max_reference_images,
            ),
            (
                "reference videos",
                inputs.reference_video_urls.len(),
                caps.max_reference_videos,
            ),
            (
                "reference audio clips",
                inputs.reference_audio_urls.len(),
                caps.max_reference_audio,
            ),
        ];
        for (what, given, max) in counts {
            if given > max {
                return Err(if max == 0 {
                    format!("does not take {what}")
                } else {
                    format!("takes at most {max} {what}")
                });
            }
        }
        if video.generate_audio == Some(true) && !caps.audio {
            return Err("cannot generate audio".into());
        }
        if video.seed.is_some() && !caps.seed {
            return Err("does not take a seed".into());
        }
        if video.camera_fixed == Some(true) && !caps.camera_fixed {
            return Err("cannot fix the camera".into());
        }
        Ok(())
    }
}

pub const ALL_RATIOS: &[AspectRatio] = &[
    AspectRatio::R21x9,
    AspectRatio::R16x9,
    AspectRatio::R4x3,
    AspectRatio::R1x1,
    AspectRatio::R3x4,
    AspectRatio::R9x16,
    AspectRatio::Adaptive,
];
