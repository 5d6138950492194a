//! `POST /v1/videos/quote` and `GET /v1/models`: what a request would cost where, and what
//! the gateway offers — without creating anything.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::routing::{self, catalog};
use crate::error::Result;
use crate::http::auth::Caller;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::http::videos::create::CreateVideoBody;
use crate::http::AppState;
use crate::types::ids::ProviderId;
use crate::types::video::{AspectRatio, Resolution};

#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteCandidate {
    pub provider: String,
    /// What the gateway would pay upstream, in US dollars (six decimals); null when unpriced.
    pub upstream_cost_usd: Option<String>,
    pub upstream_cost_micro_usd: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteExclusion {
    pub provider: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "object": "video.quote", "model": "seedance-2.0-fast", "seconds": "5",
    "price": {"credits": 250, "unit": "credits"}, "route": "cheapest", "pick": "aigateway",
    "candidates": [
        {"provider": "aigateway", "upstream_cost_usd": "0.057750", "upstream_cost_micro_usd": 57750},
        {"provider": "seedance-it", "upstream_cost_usd": "2.420000", "upstream_cost_micro_usd": 2420000}
    ],
    "excluded": [{"provider": "apiframe", "reason": "cannot be priced: it has no known dollar value per credit (set pricing.apiframe_usd_per_credit)"}]
}))]
pub struct Quote {
    /// Always `video.quote`.
    pub object: &'static str,
    pub model: &'static str,
    pub seconds: String,
    /// What the caller would be charged (and held at submit).
    pub price: QuotePrice,
    /// `cheapest`, `fastest`, `ordered`, `pinned` or `test-key`.
    pub route: &'static str,
    /// The provider a create would go to; null when none can serve the request.
    pub pick: Option<String>,
    /// Eligible providers, best first.
    pub candidates: Vec<QuoteCandidate>,
    /// Providers left out, each with its reason.
    pub excluded: Vec<QuoteExclusion>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotePrice {
    pub credits: i64,
    pub unit: &'static str,
}

/// Quote a video
///
/// Prices the request and routes it as a create would, without creating anything: the
/// caller's price, the eligible providers ranked with their upstream cost, the exclusions with
/// their reasons, and the pick.
#[utoipa::path(
    post, path = "/v1/videos/quote", tag = "videos", request_body = CreateVideoBody,
    responses(
        (status = 200, body = Quote),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn quote(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<CreateVideoBody>,
) -> Result<Json<Quote>> {
    crate::domain::access::videos(&principal, crate::domain::access::VideoAction::Read)?;
    let request = body.into_new_video(&state.config.videos, false)?;
    let request = crate::domain::videos::admit(&state, &principal, request).await?;
    let decision = routing::decide(&state, &principal, &request).await?;
    let price = routing::price(&state, &principal, &request, &decision).await?;
    Ok(Json(Quote {
        object: "video.quote",
        model: request.model.id(),
        seconds: request.seconds.get().to_string(),
        price: QuotePrice {
            credits: price.get(),
            unit: "credits",
        },
        route: decision.route,
        pick: decision.pick().map(|c| c.provider.to_string()),
        candidates: decision
            .ranked
            .iter()
            .map(|c| QuoteCandidate {
                provider: c.provider.to_string(),
                upstream_cost_usd: c.upstream_cost.map(|c| catalog::format_usd(c.get())),
                upstream_cost_micro_usd: c.upstream_cost.map(|c| c.get()),
            })
            .collect(),
        excluded: decision
            .excluded
            .iter()
            .map(|e| QuoteExclusion {
                provider: e.provider.to_string(),
                reason: e.reason.clone(),
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelObject {
    pub id: &'static str,
    /// Always `model`.
    pub object: &'static str,
    pub owned_by: &'static str,
    /// The caller's price per second of video, in credits (null under cost-plus pricing,
    /// which follows the upstream cost: ask for a quote).
    pub price_per_second: Option<i64>,
    /// What some enabled provider can do with this model (the union over providers).
    pub capabilities: ModelCapabilitiesObject,
    /// Enabled providers that offer it.
    pub providers: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCapabilitiesObject {
    pub seconds: Vec<i64>,
    pub resolutions: Vec<&'static str>,
    pub aspect_ratios: Vec<&'static str>,
    pub first_frame: bool,
    pub last_frame: bool,
    pub max_reference_images: usize,
    pub max_reference_videos: usize,
    pub max_reference_audio: usize,
    pub generate_audio: bool,
    pub seed: bool,
    pub camera_fixed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [{
    "id": "seedance-2.0-fast", "object": "model", "owned_by": "bytedance", "price_per_second": 50,
    "capabilities": {"seconds": [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], "resolutions": ["480p", "720p", "1080p"],
        "aspect_ratios": ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "adaptive"], "first_frame": true, "last_frame": true,
        "max_reference_images": 9, "max_reference_videos": 3, "max_reference_audio": 3,
        "generate_audio": true, "seed": true, "camera_fixed": true},
    "providers": ["seedance-it", "aigateway", "seedanceapi", "aimlapi"]}]}))]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// List models
///
/// The models the caller can use, with what the enabled providers can do with each (for test
/// keys: the sandbox) and the caller's price per second.
#[utoipa::path(
    get, path = "/v1/models", tag = "videos",
    responses((status = 200, body = ModelList), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn models(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<ModelList>> {
    crate::domain::access::videos(&principal, crate::domain::access::VideoAction::Read)?;
    let data = routing::models(&state, &principal)
        .await?
        .into_iter()
        .map(|offer| {
            let c = offer.capabilities;
            ModelObject {
                id: offer.model.id(),
                object: "model",
                owned_by: "bytedance",
                price_per_second: offer.price_per_second,
                capabilities: ModelCapabilitiesObject {
                    seconds: c.seconds,
                    resolutions: c.resolutions.into_iter().map(Resolution::as_str).collect(),
                    aspect_ratios: c
                        .aspect_ratios
                        .into_iter()
                        .map(AspectRatio::as_str)
                        .collect(),
                    first_frame: c.first_frame,
                    last_frame: c.last_frame,
                    max_reference_images: c.max_reference_images,
                    max_reference_videos: c.max_reference_videos,
                    max_reference_audio: c.max_reference_audio,
                    generate_audio: c.generate_audio,
                    seed: c.seed,
                    camera_fixed: c.camera_fixed,
                },
                providers: offer.providers.iter().map(ProviderId::to_string).collect(),
            }
        })
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}
