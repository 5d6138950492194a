//! The model catalog a caller sees (`GET /v1/models`): each model some provider it reaches
//! offers, what those providers can do with it together, and the caller's price per second.

use crate::domain::billing::pricing;
use crate::domain::routing::eligibility;
use crate::domain::services::Services;
use crate::domain::tenants::Principal;
use crate::error::Result;
use crate::providers::capabilities::ModelCapabilities;
use crate::types::ids::ProviderId;
use crate::types::video::{AspectRatio, Model, Resolution};

/// One model as the caller can use it.
pub struct ModelOffer {
    pub model: Model,
    /// The caller's price per second of video, in credits; `None` under cost-plus pricing,
    /// which follows the upstream cost.
    pub price_per_second: Option<i64>,
    /// What some reachable provider can do with the model (the union over providers).
    pub capabilities: OfferedCapabilities,
    /// The reachable providers that offer it, in configuration order.
    pub providers: Vec<ProviderId>,
}

/// The union of the capabilities of the providers that offer a model.
pub struct OfferedCapabilities {
    pub seconds: Vec<i64>,
    pub resolutions: Vec<Resolution>,
    pub aspect_ratios: Vec<AspectRatio>,
    pub first_frame: bool,
    pub last_frame: bool,
    pub max_reference_images: usize,
    pub max_reference_videos: usize,
    pub max_reference_audio: usize,
    pub generate_audio: bool,
    pub seed: bool,
    pub camera_fixed: bool,
}

/// The models the caller can use (for test keys: what the sandbox offers), in model order;
/// a model no reachable provider offers is left out.
pub async fn models(state: &Services, principal: &Principal) -> Result<Vec<ModelOffer>> {
    let prices = pricing::tenant_prices(&state.db, &principal.tenant_id).await?;
    let reachable = eligibility::reachable(state, principal.mode);
    let mut offers = Vec::new();
    for model in Model::ALL {
        let offered: Vec<(ProviderId, &ModelCapabilities)> = reachable
            .iter()
            .filter_map(|id| {
                let provider = state.providers.get(*id)?;
                provider.capabilities().for_model(model).map(|c| (*id, c))
            })
            .collect();
        if offered.is_empty() {
            continue;
        }
        offers.push(ModelOffer {
            model,
            price_per_second: pricing::list_price_per_second(
                &state.config.pricing,
                prices.as_ref(),
                model,
            ),
            capabilities: union(offered.iter().map(|(_, c)| *c)),
            providers: offered.iter().map(|(id, _)| *id).collect(),
        });
    }
    Ok(offers)
}

fn union<'a>(offered: impl Iterator<Item = &'a ModelCapabilities> + Clone) -> OfferedCapabilities {
    let any = |f: fn(&ModelCapabilities) -> bool| offered.clone().any(f);
    let most = |f: fn(&ModelCapabilities) -> usize| offered.clone().map(f).max().unwrap_or(0);
    OfferedCapabilities {
        seconds: (4..=15)
            .filter(|s| offered.clone().any(|c| c.durations.allows(*s)))
            .collect(),
        resolutions: Resolution::ALL
            .into_iter()
            .filter(|r| offered.clone().any(|c| c.resolutions.contains(r)))
            .collect(),
        aspect_ratios: AspectRatio::ALL
            .into_iter()
            .filter(|a| offered.clone().any(|c| c.aspect_ratios.contains(a)))
            .collect(),
        first_frame: any(|c| c.first_frame),
        last_frame: any(|c| c.last_frame),
        max_reference_images: most(|c| c.max_reference_images),
        max_reference_videos: most(|c| c.max_reference_videos),
        max_reference_audio: most(|c| c.max_reference_audio),
        generate_audio: any(|c| c.audio),
        seed: any(|c| c.seed),
        camera_fixed: any(|c| c.camera_fixed),
    }
}
