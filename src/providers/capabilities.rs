//! What a provider can serve, per model: durations, resolutions, aspect ratios, input kinds
//! and counts. A request that a provider cannot serve is never sent to it; the reason says
//! which field is out of reach.

use crate::types::video::{AspectRatio, Model, NewVideo, Resolution};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Durations {
    /// Any whole number of seconds in the range.
    Range(i64, i64),
    /// Only these lengths.
    List(Vec<i64>),
}

impl Durations {
    pub fn allows(&self, seconds: i64) -> bool {
        match self {
            Durations::Range(lo, hi) => (*lo..=*hi).contains(&seconds),
            Durations::List(list) => list.contains(&seconds),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelCapabilities {
    pub model: Model,
    pub durations: Durations,
    pub resolutions: Vec<Resolution>,
    pub aspect_ratios: Vec<AspectRatio>,
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

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Capabilities {
    pub models: Vec<ModelCapabilities>,
}

impl Capabilities {
    /// These capabilities with the operator's corrections (`providers.<name>.capabilities`,
    /// per model id) applied. A model the provider does not declare can be added only with
    /// its durations, resolutions and aspect ratios; it starts with no inputs but the prompt.
    pub fn corrected(
        &self,
        provider: &str,
        overrides: &std::collections::BTreeMap<String, crate::config::CapabilityOverride>,
    ) -> anyhow::Result<Capabilities> {
        let mut models = self.models.clone();
        for (id, fix) in overrides {
            let model = Model::parse(id).filter(|m| m.id() == id).ok_or_else(|| {
                anyhow::anyhow!("providers.{provider}.capabilities: `{id}` is not a model id")
            })?;
            if fix.offered == Some(false) {
                models.retain(|m| m.model != model);
                continue;
            }
            let index = match models.iter().position(|m| m.model == model) {
                Some(index) => index,
                None => {
                    let (Some(_), Some(_), Some(_)) =
                        (&fix.durations, &fix.resolutions, &fix.aspect_ratios)
                    else {
                        anyhow::bail!(
                            "providers.{provider}.capabilities.{id}: {provider} does not declare \
                             this model, so durations, resolutions and aspect_ratios are needed"
                        );
                    };
                    models.push(ModelCapabilities {
                        model,
                        durations: Durations::List(Vec::new()),
                        resolutions: Vec::new(),
                        aspect_ratios: Vec::new(),
                        first_frame: false,
                        last_frame: false,
                        max_reference_images: 0,
                        max_reference_videos: 0,
                        max_reference_audio: 0,
                        audio: false,
                        seed: false,
                        camera_fixed: false,
                    });
                    models.len() - 1
                }
            };
            let caps = &mut models[index];
            let at = |what: &str| format!("providers.{provider}.capabilities.{id}.{what}");
            if let Some(durations) = &fix.durations {
                if durations.is_empty() || durations.iter().any(|d| !(4..=15).contains(d)) {
                    anyhow::bail!("{}: lengths from 4 to 15 seconds", at("durations"));
                }
                caps.durations = Durations::List(durations.clone());
            }
            if let Some(resolutions) = &fix.resolutions {
                caps.resolutions = resolutions
                    .iter()
                    .map(|r| {
                        Resolution::parse(r).ok_or_else(|| {
                            anyhow::anyhow!(
                                "{}: `{r}` is not 480p, 720p or 1080p",
                                at("resolutions")
                            )
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            if let Some(ratios) = &fix.aspect_ratios {
                caps.aspect_ratios = ratios
                    .iter()
                    .map(|r| {
                        AspectRatio::parse(r).ok_or_else(|| {
                            anyhow::anyhow!("{}: `{r}` is not an aspect ratio", at("aspect_ratios"))
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            let flags = [
                (&mut caps.first_frame, fix.first_frame),
                (&mut caps.last_frame, fix.last_frame),
                (&mut caps.audio, fix.audio),
                (&mut caps.seed, fix.seed),
                (&mut caps.camera_fixed, fix.camera_fixed),
            ];
            for (flag, value) in flags {
                if let Some(value) = value {
                    *flag = value;
                }
            }
            let counts = [
                (&mut caps.max_reference_images, fix.max_reference_images),
                (&mut caps.max_reference_videos, fix.max_reference_videos),
                (&mut caps.max_reference_audio, fix.max_reference_audio),
            ];
            for (count, value) in counts {
                if let Some(value) = value {
                    *count = value.min(16);
                }
            }
        }
        models.sort_by_key(|m| m.model);
        Ok(Capabilities { models })
    }

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
