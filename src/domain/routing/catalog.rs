//! The upstream price catalog: what a request costs at each provider, in integer micro-USD,
//! following each provider's own price rule and rounding (each rule lives in its provider's
//! module) (docs/providers.md; list prices on the
//! day of the seed documents, so they are defaults, overridable per provider and model in
//! `pricing.upstream_usd_per_second`). No floats: decimal dollar amounts are parsed exactly.
//!
//! | provider        | rule                                                                 |
//! |-----------------|----------------------------------------------------------------------|
//! | seedance.it.com | Fast table 194/242/387/484/726 credits for 4/5/8/10/15 s, ceil(48.4 × s) between; standard ceil(1.2 ×); 1 credit = $0.01 |
//! | Apiframe        | credits/s: 480p 1, 720p 2, doubled with a reference video; × `pricing.apiframe_usd_per_credit` (unpublished: unset means unpriced) |
//! | AIgateway       | Fast only: $0.011 per second + 5% at top-up = $0.01155/s             |
//! | seedanceapi.org | 2.0 240/480/720 and Fast 160/320/480 credits for 5/10/15 s; Mini 480p ceil(14.25 × s), with reference video 9 × s, 720p ceil(30.75 × s), with reference video ceil(18.75 × s) |
//! | AI/ML API       | Fast $0.10/s, standard $0.25/s; Mini unpublished (unpriced)           |
//! | sandbox         | free                                                                 |

use crate::config::PricingConfig;
use crate::providers;
use crate::types::ids::ProviderId;
use crate::types::money::MicroUsd;
use crate::types::video::NewVideo;

/// The upstream cost of `request` at `provider`, or why it cannot be priced: the operator's
/// override (`pricing.upstream_usd_per_second`) where set, else the provider's own rule, kept
/// with its adapter (`providers::<name>::upstream_cost`).
pub fn upstream_cost(
    provider: ProviderId,
    request: &NewVideo,
    pricing: &PricingConfig,
) -> Result<MicroUsd, String> {
    if let Some(rate) = pricing
        .upstream_usd_per_second
        .get(provider.as_str())
        .and_then(|models| models.get(request.model.id()))
    {
        let per_second = MicroUsd::parse_usd(rate)
            .ok_or_else(|| format!("has an unreadable price override `{rate}`"))?;
        return per_second
            .checked_mul(request.seconds.get())
            .map_err(|e| e.to_string());
    }
    let rule = providers::registry::price_rule(provider);
    rule(request, pricing)
}

/// Micro-USD as a dollar string with six decimals, e.g. `2.420000`.
pub fn format_usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(model: &str, seconds: i64, resolution: &str, reference_video: bool) -> NewVideo {
        let mut json = serde_json::json!({
            "model": model, "prompt": "x", "seconds": seconds, "resolution": resolution,
            "aspect_ratio": "16:9", "inputs": {}, "generate_audio": null, "seed": null,
            "camera_fixed": null, "user": null, "metadata": {}, "webhook_url": null
        });
        if reference_video {
            json["inputs"]["reference_video_urls"] =
                serde_json::json!(["https://v.example.com/a.mp4"]);
        }
        serde_json::from_value(json).expect("request")
    }

    #[test]
    fn each_provider_prices_with_its_own_rule_and_rounding() {
        let mut pricing = PricingConfig::default();
        let cases = [
            (
                "seedance-it",
                "seedance-2.0-fast",
                5,
                "720p",
                false,
                Ok(2_420_000),
            ),
            (
                "seedance-it",
                "seedance-2.0-fast",
                7,
                "720p",
                false,
                Ok(3_390_000),
            ), // ceil(338.8)
            (
                "seedance-it",
                "seedance-2.0",
                4,
                "720p",
                false,
                Ok(2_330_000),
            ), // ceil(232.8)
            (
                "aigateway",
                "seedance-2.0-fast",
                10,
                "720p",
                false,
                Ok(115_500),
            ),
            (
                "seedanceapi",
                "seedance-2.0",
                10,
                "1080p",
                false,
                Ok(4_800_000),
            ),
            (
                "seedanceapi",
                "seedance-2.0-fast",
                15,
                "720p",
                false,
                Ok(4_800_000),
            ),
            (
                "seedanceapi",
                "seedance-2.0-mini",
                7,
                "480p",
                false,
                Ok(1_000_000),
            ), // ceil(99.75)
            (
                "seedanceapi",
                "seedance-2.0-mini",
                7,
                "480p",
                true,
                Ok(630_000),
            ),
            (
                "seedanceapi",
                "seedance-2.0-mini",
                5,
                "720p",
                false,
                Ok(1_540_000),
            ), // ceil(153.75)
            (
                "seedanceapi",
                "seedance-2.0-mini",
                5,
                "720p",
                true,
                Ok(940_000),
            ), // ceil(93.75)
            ("aimlapi", "seedance-2.0", 6, "1080p", false, Ok(1_500_000)),
            ("sandbox", "seedance-2.0", 15, "1080p", false, Ok(0)),
        ];
        for (provider, model, seconds, resolution, reference_video, expected) in cases {
            let got = upstream_cost(
                ProviderId::parse(provider).expect("a known provider"),
                &request(model, seconds, resolution, reference_video),
                &pricing,
            );
            assert_eq!(
                got.map(MicroUsd::get).map_err(|_| ()),
                expected,
                "{provider} {model} {seconds}s {resolution}"
            );
        }
        assert!(upstream_cost(
            ProviderId::parse("apiframe").expect("a known provider"),
            &request("seedance-2.0", 5, "720p", false),
            &pricing
        )
        .is_err());
        assert!(upstream_cost(
            ProviderId::parse("seedanceapi").expect("a known provider"),
            &request("seedance-2.0", 7, "720p", false),
            &pricing
        )
        .is_err());
        pricing.apiframe_usd_per_credit = Some("0.05".into());
        assert_eq!(
            upstream_cost(
                ProviderId::parse("apiframe").expect("a known provider"),
                &request("seedance-2.0", 5, "720p", true),
                &pricing
            )
            .map(MicroUsd::get),
            Ok(1_000_000)
        );
    }

    #[test]
    fn an_override_replaces_the_built_in_rule() {
        let mut pricing = PricingConfig::default();
        pricing.upstream_usd_per_second.insert(
            "aimlapi".into(),
            [("seedance-2.0-mini".to_string(), "0.045".to_string())]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            upstream_cost(
                ProviderId::parse("aimlapi").expect("a known provider"),
                &request("seedance-2.0-mini", 4, "480p", false),
                &pricing
            )
            .map(MicroUsd::get),
            Ok(180_000)
        );
        assert_eq!(format_usd(180_000), "0.180000");
    }
}
