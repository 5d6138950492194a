//! The upstream price catalog: what a request costs at each provider, in integer micro-USD,
//! following each provider's own price rule and rounding (docs/providers.md; list prices on the
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
use crate::domain::video::{Model, NewVideo, Resolution};
use crate::providers::upstream::usd_to_micros;

/// One reseller credit ($0.01) in micro-USD.
const CENT: i64 = 10_000;

/// Integer ceil(a / b) for positive b.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

/// The upstream cost of `request` at `provider`, or why it cannot be priced.
pub fn upstream_cost(
    provider: &str,
    request: &NewVideo,
    pricing: &PricingConfig,
) -> Result<i64, String> {
    let seconds = request.seconds.get();
    if let Some(rate) = pricing
        .upstream_usd_per_second
        .get(provider)
        .and_then(|models| models.get(request.model.id()))
    {
        let micros = usd_to_micros(rate)
            .ok_or_else(|| format!("has an unreadable price override `{rate}`"))?;
        return Ok(micros * seconds);
    }
    let with_reference_video = !request.inputs.reference_video_urls.is_empty();
    match provider {
        "sandbox" => Ok(0),
        "seedance-it" => {
            let fast = match seconds {
                4 => 194,
                5 => 242,
                8 => 387,
                10 => 484,
                15 => 726,
                s => ceil_div(484 * s, 10),
            };
            let credits = match request.model {
                Model::Fast => fast,
                Model::Standard => ceil_div(fast * 12, 10),
                Model::Mini => return Err("has no price for seedance-2.0-mini".into()),
            };
            Ok(credits * CENT)
        }
        "apiframe" => {
            let per_credit = pricing.apiframe_usd_per_credit.as_deref().ok_or(
                "has no known dollar value per credit (set pricing.apiframe_usd_per_credit)",
            )?;
            let per_credit = usd_to_micros(per_credit)
                .ok_or("has an unreadable pricing.apiframe_usd_per_credit")?;
            let per_second = match request.resolution {
                Resolution::P480 => 1,
                Resolution::P720 => 2,
                Resolution::P1080 => return Err("has no price for 1080p".into()),
            } * if with_reference_video { 2 } else { 1 };
            Ok(per_second * seconds * per_credit)
        }
        "aigateway" => match request.model {
            Model::Fast => Ok(11_550 * seconds),
            _ => Err(format!("does not offer {}", request.model.id())),
        },
        "seedanceapi" => {
            let credits = match request.model {
                Model::Standard | Model::Fast => {
                    let per_five = if request.model == Model::Standard {
                        240
                    } else {
                        160
                    };
                    if seconds % 5 != 0 {
                        return Err(format!(
                            "has no price for {seconds} s with {}",
                            request.model.id()
                        ));
                    }
                    per_five * seconds / 5
                }
                Model::Mini => match (request.resolution, with_reference_video) {
                    (Resolution::P480, false) => ceil_div(1425 * seconds, 100),
                    (Resolution::P480, true) => 9 * seconds,
                    (_, false) => ceil_div(3075 * seconds, 100),
                    (_, true) => ceil_div(1875 * seconds, 100),
                },
            };
            Ok(credits * CENT)
        }
        "aimlapi" => match request.model {
            Model::Fast => Ok(100_000 * seconds),
            Model::Standard => Ok(250_000 * seconds),
            Model::Mini => Err("has no published price for seedance-2.0-mini".into()),
        },
        other => Err(format!("{other} has no price rule")),
    }
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
                provider,
                &request(model, seconds, resolution, reference_video),
                &pricing,
            );
            assert_eq!(
                got.map_err(|_| ()),
                expected,
                "{provider} {model} {seconds}s {resolution}"
            );
        }
        assert!(upstream_cost(
            "apiframe",
            &request("seedance-2.0", 5, "720p", false),
            &pricing
        )
        .is_err());
        assert!(upstream_cost(
            "seedanceapi",
            &request("seedance-2.0", 7, "720p", false),
            &pricing
        )
        .is_err());
        pricing.apiframe_usd_per_credit = Some("0.05".into());
        assert_eq!(
            upstream_cost(
                "apiframe",
                &request("seedance-2.0", 5, "720p", true),
                &pricing
            ),
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
                "aimlapi",
                &request("seedance-2.0-mini", 4, "480p", false),
                &pricing
            ),
            Ok(180_000)
        );
        assert_eq!(format_usd(180_000), "0.180000");
    }
}
