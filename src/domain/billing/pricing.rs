//! The tenant's price of a request, in credits. Three sources, in order:
//!
//! - a **fixed price list** set for the tenant: credits per second for a model, optionally
//!   narrowed to a resolution and an input mode (`text`, `image`, `reference_video`); the most
//!   specific matching rule wins;
//! - **cost-plus** for the tenant: the upstream cost at the chosen provider × (1 + markup),
//!   converted at `pricing.credits_per_usd` and rounded up once;
//! - otherwise the operator's `pricing.credits_per_second` for the model.
//!
//! The quote and the hold use the same function, so the charge equals the quote. A job that
//! comes back shorter than asked is charged pro rata, rounded up, never more than its hold.

use crate::config::PricingConfig;
use crate::error::Error;
use crate::types::money::{Credits, MicroUsd};
use crate::types::video::{Model, NewVideo};

/// A tenant's price list is storage's row; which rule prices a request is decided here.
pub use crate::storage::prices::{InputMode, PriceRule, TenantPrices};

impl InputMode {
    pub fn of(video: &NewVideo) -> InputMode {
        let inputs = &video.inputs;
        if !inputs.reference_video_urls.is_empty() {
            InputMode::ReferenceVideo
        } else if inputs.has_first_frame() || !inputs.reference_image_urls.is_empty() {
            InputMode::Image
        } else {
            InputMode::Text
        }
    }
}

impl PriceRule {
    fn matches(&self, video: &NewVideo, mode: InputMode) -> bool {
        self.model == video.model
            && self.resolution.is_none_or(|r| r == video.resolution)
            && self.input_mode.is_none_or(|m| m == mode)
    }

    fn specificity(&self) -> u8 {
        u8::from(self.resolution.is_some()) + u8::from(self.input_mode.is_some())
    }
}

/// A tenant's own prices, if the operator set any.
pub async fn tenant_prices(
    db: &crate::storage::Db,
    tenant: &crate::types::ids::TenantId,
) -> Result<Option<TenantPrices>, Error> {
    Ok(db.tenant_prices(tenant).await?)
}

/// The price per second a tenant's list shows for a model: its own fixed rule for the model
/// (any resolution and inputs), else the configured price; `None` under cost-plus prices,
/// which follow the upstream cost of each request (see the quote).
pub fn list_price_per_second(
    config: &PricingConfig,
    prices: Option<&TenantPrices>,
    model: Model,
) -> Option<i64> {
    let configured = || credits_per_second(config, model).map(Credits::get);
    match prices {
        None => configured(),
        Some(TenantPrices::Fixed { rules }) => rules
            .iter()
            .find(|r| r.model == model && r.resolution.is_none() && r.input_mode.is_none())
            .map(|r| r.credits_per_second)
            .or_else(configured),
        Some(TenantPrices::CostPlus { .. }) => None,
    }
}

pub fn credits_per_second(config: &PricingConfig, model: Model) -> Option<Credits> {
    config
        .credits_per_second
        .get(model.id())
        .copied()
        .map(Credits::from_stored)
}

fn operator_rate(config: &PricingConfig, model: Model) -> Result<Credits, Error> {
    credits_per_second(config, model).ok_or_else(|| Error::UnsupportedCapability {
        message: format!(
            "model {} has no price configured on this gateway",
            model.id()
        ),
        param: Some("model".into()),
    })
}

fn times(rate: Credits, seconds: i64) -> Result<Credits, Error> {
    rate.checked_mul(seconds)
        .map_err(|_| Error::invalid("seconds", "price overflow"))
}

/// The price of a request for a tenant with `prices` (or none), given the upstream cost at
/// the chosen provider in micro-USD (needed for cost-plus).
pub fn price(
    config: &PricingConfig,
    prices: Option<&TenantPrices>,
    video: &NewVideo,
    upstream_cost: Option<MicroUsd>,
) -> Result<Credits, Error> {
    let seconds = video.seconds.get();
    match prices {
        None => times(operator_rate(config, video.model)?, seconds),
        Some(TenantPrices::Fixed { rules }) => {
            let mode = InputMode::of(video);
            let rule = rules
                .iter()
                .filter(|r| r.matches(video, mode))
                .max_by_key(|r| r.specificity());
            match rule {
                Some(rule) => times(Credits::from_stored(rule.credits_per_second), seconds),
                None => times(operator_rate(config, video.model)?, seconds),
            }
        }
        Some(TenantPrices::CostPlus { markup_bps }) => {
            let cost = upstream_cost.ok_or_else(|| Error::UnsupportedCapability {
                message:
                    "the chosen provider cannot be priced, so a cost-plus price cannot be computed"
                        .into(),
                param: None,
            })?;
            cost_plus(cost, *markup_bps, config.credits_per_usd)
        }
    }
}

/// A cost-plus markup given in percent with up to two decimals (`"25"`, `"12.5"`), in basis
/// points, exactly; from 0 to 10000 %.
pub fn markup_bps(percent: &str) -> Option<i64> {
    MicroUsd::parse_usd(percent)
        .map(MicroUsd::get)
        .filter(|m| *m >= 0 && m % 10_000 == 0 && *m <= 10_000 * 1_000_000)
        .map(|m| m / 10_000)
}

/// A markup in basis points as percent, the way it is written: `2500` → `"25"`, `1250` →
/// `"12.5"`, `1234` → `"12.34"`.
pub fn markup_percent(bps: i64) -> String {
    let (whole, hundredths) = (bps / 100, bps % 100);
    match hundredths {
        0 => whole.to_string(),
        h if h % 10 == 0 => format!("{whole}.{}", h / 10),
        h => format!("{whole}.{h:02}"),
    }
}

/// ceil(cost × (1 + markup) × credits_per_usd), all in integers: one rounding, up.
pub fn cost_plus(cost: MicroUsd, markup_bps: i64, credits_per_usd: i64) -> Result<Credits, Error> {
    let numerator =
        i128::from(cost.get()) * i128::from(10_000 + markup_bps) * i128::from(credits_per_usd);
    let denominator: i128 = 10_000 * 1_000_000;
    let credits = (numerator + denominator - 1).div_euclid(denominator);
    i64::try_from(credits)
        .ok()
        .and_then(|c| Credits::new(c).ok())
        .ok_or_else(|| Error::invalid("seconds", "price overflow"))
}

/// What a job that generated `generated` of its `requested` seconds is charged: its hold pro
/// rata, rounded up, never more than the hold.
pub fn pro_rata(reserved: Credits, generated: i64, requested: i64) -> Credits {
    if generated >= requested || requested <= 0 {
        return reserved;
    }
    let generated = generated.max(0);
    let charge = (i128::from(reserved.get()) * i128::from(generated) + i128::from(requested) - 1)
        / i128::from(requested);
    // At most `reserved`, since generated < requested.
    Credits::from_stored(i64::try_from(charge).unwrap_or(reserved.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(model: &str, seconds: i64, resolution: &str, inputs: serde_json::Value) -> NewVideo {
        serde_json::from_value(serde_json::json!({
            "model": model, "prompt": "x", "seconds": seconds, "resolution": resolution,
            "aspect_ratio": "16:9", "inputs": inputs, "generate_audio": null, "seed": null,
            "camera_fixed": null, "user": null, "metadata": {}, "webhook_url": null
        }))
        .expect("video")
    }

    #[test]
    fn the_operator_price_is_rate_times_seconds() {
        let config = PricingConfig::default();
        let v = video("seedance-2.0-fast", 10, "720p", serde_json::json!({}));
        assert_eq!(
            price(&config, None, &v, None).ok(),
            Some(Credits::from_stored(500))
        );
    }

    #[test]
    fn the_most_specific_rule_of_a_price_list_wins() {
        let config = PricingConfig::default();
        let rules = serde_json::from_value(serde_json::json!({"kind": "fixed", "rules": [
            {"model": "seedance-2.0-fast", "resolution": null, "input_mode": null, "credits_per_second": 40},
            {"model": "seedance-2.0-fast", "resolution": "1080p", "input_mode": null, "credits_per_second": 70},
            {"model": "seedance-2.0-fast", "resolution": "1080p", "input_mode": "reference_video", "credits_per_second": 90}
        ]}))
        .expect("rules");
        let text_720 = video("seedance-2.0-fast", 5, "720p", serde_json::json!({}));
        let text_1080 = video("seedance-2.0-fast", 5, "1080p", serde_json::json!({}));
        let refs_1080 = video(
            "seedance-2.0-fast",
            5,
            "1080p",
            serde_json::json!({"reference_video_urls": ["https://v.example.com/a.mp4"]}),
        );
        let mini = video("seedance-2.0-mini", 5, "720p", serde_json::json!({}));
        assert_eq!(
            price(&config, Some(&rules), &text_720, None).ok(),
            Some(Credits::from_stored(200))
        );
        assert_eq!(
            price(&config, Some(&rules), &text_1080, None).ok(),
            Some(Credits::from_stored(350))
        );
        assert_eq!(
            price(&config, Some(&rules), &refs_1080, None).ok(),
            Some(Credits::from_stored(450))
        );
        assert_eq!(
            price(&config, Some(&rules), &mini, None).ok(),
            Some(Credits::from_stored(175)),
            "falls back to the operator's price"
        );
    }

    #[test]
    fn cost_plus_rounds_up_once() {
        // $0.05775 × 1.25 = $0.0721875 → 7.21875 credits → 8.
        assert_eq!(
            cost_plus(MicroUsd::from_stored(57_750), 2_500, 100).ok(),
            Some(Credits::from_stored(8))
        );
        assert_eq!(
            cost_plus(MicroUsd::from_stored(2_420_000), 0, 100).ok(),
            Some(Credits::from_stored(242))
        );
        assert_eq!(
            cost_plus(MicroUsd::from_stored(2_420_001), 0, 100).ok(),
            Some(Credits::from_stored(243))
        );
    }

    #[test]
    fn a_shorter_video_is_charged_pro_rata_and_never_more() {
        assert_eq!(
            pro_rata(Credits::from_stored(300), 3, 5),
            Credits::from_stored(180)
        );
        assert_eq!(
            pro_rata(Credits::from_stored(301), 3, 5),
            Credits::from_stored(181)
        );
        assert_eq!(
            pro_rata(Credits::from_stored(300), 9, 5),
            Credits::from_stored(300)
        );
    }

    #[test]
    fn a_markup_in_percent_becomes_basis_points_exactly_and_reads_back_the_same() {
        for (percent, bps) in [("25", 2_500), ("12.5", 1_250), ("12.34", 1_234), ("0", 0)] {
            assert_eq!(markup_bps(percent), Some(bps), "{percent}");
            assert_eq!(markup_percent(bps), percent);
        }
        assert_eq!(markup_bps("10000"), Some(1_000_000));
        assert_eq!(markup_bps("10000.01"), None);
        assert_eq!(markup_bps("12.345"), None);
        assert_eq!(markup_bps("-5"), None);
    }
}
