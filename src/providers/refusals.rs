//! What each provider refused lately. When an upstream says it cannot serve a request (an
//! unknown model, a length, resolution or ratio it does not make, a field it does not take)
//! although its declared capabilities said it could, the gateway remembers that provider and
//! that shape of request for [`REMEMBER_FOR`], so routing leaves the provider out, with the
//! upstream's own reason, instead of asking again for every job.
//!
//! Trade-off: kept per replica and in memory, so a restart or another replica learns it again
//! at the cost of one refused call; the lasting fix is a corrected capability matrix.

use crate::types::ids::ProviderId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::types::video::NewVideo;

/// How long a refusal keeps a provider out of a shape of request.
pub const REMEMBER_FOR: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct Refusals {
    learned: Mutex<HashMap<(ProviderId, String), (Instant, String)>>,
}

/// The parts of a request a provider's refusal is about: model, length, resolution, ratio and
/// which kinds of input it has.
pub fn shape(video: &NewVideo) -> String {
    let inputs = &video.inputs;
    format!(
        "{}|{}s|{}|{}|first:{}|last:{}|images:{}|videos:{}|audio:{}|sound:{}|seed:{}|fixed:{}",
        video.model.id(),
        video.seconds.get(),
        video.resolution.as_str(),
        video.aspect_ratio.as_str(),
        inputs.has_first_frame(),
        inputs.last_frame_url.is_some(),
        inputs.reference_image_urls.len(),
        inputs.reference_video_urls.len(),
        inputs.reference_audio_urls.len(),
        video.generate_audio == Some(true),
        video.seed.is_some(),
        video.camera_fixed == Some(true),
    )
}

impl Refusals {
    /// Remembers that `provider` refused requests shaped like `video`, and why.
    pub fn learn(&self, provider: ProviderId, video: &NewVideo, reason: &str) {
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        learned.retain(|_, (until, _)| *until > now);
        learned.insert(
            (provider, shape(video)),
            (now + REMEMBER_FOR, reason.to_string()),
        );
    }

    /// `Err` with the remembered reason while `provider` is kept out of this shape.
    pub fn check(&self, provider: ProviderId, video: &NewVideo) -> Result<(), String> {
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        match learned.get(&(provider, shape(video))) {
            Some((until, reason)) if *until > Instant::now() => Err(format!(
                "refused this kind of request recently ({reason}); left out for {} min",
                REMEMBER_FOR.as_secs() / 60
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(changes: serde_json::Value) -> NewVideo {
        let mut json = serde_json::json!({
            "model": "seedance-2.0-fast", "prompt": "x", "seconds": 5, "resolution": "720p",
            "aspect_ratio": "16:9", "inputs": {}, "generate_audio": null, "seed": null,
            "camera_fixed": null, "user": null, "metadata": {}, "webhook_url": null
        });
        if let (Some(base), serde_json::Value::Object(changes)) = (json.as_object_mut(), changes) {
            base.extend(changes);
        }
        serde_json::from_value(json).expect("a NewVideo")
    }

    #[test]
    fn a_refusal_keeps_one_provider_out_of_one_shape_only() {
        let refusals = Refusals::default();
        let refused = video(serde_json::json!({"resolution": "1080p"}));
        refusals.learn(
            ProviderId::AimlApi,
            &refused,
            "aimlapi refused the request: bad resolution",
        );
        assert!(refusals
            .check(ProviderId::AimlApi, &refused)
            .is_err_and(|why| why.contains("bad resolution")));
        assert!(refusals.check(ProviderId::SeedanceApi, &refused).is_ok());
        assert!(refusals
            .check(ProviderId::AimlApi, &video(serde_json::json!({})))
            .is_ok());
        // The prompt is not part of the shape.
        let same_shape = video(serde_json::json!({"resolution": "1080p", "prompt": "other"}));
        assert!(refusals.check(ProviderId::AimlApi, &same_shape).is_err());
    }
}
