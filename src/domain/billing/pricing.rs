//! The tenant price of a request, in credits. First cut: a configured price per second of
//! video for each model (`pricing.credits_per_second`); test-key jobs cost the same, drawn
//! from the tenant's separate test balance.

use crate::config::PricingConfig;
use crate::domain::billing::Credits;
use crate::domain::video::{Model, NewVideo};
use crate::error::Error;

pub fn credits_per_second(config: &PricingConfig, model: Model) -> Option<Credits> {
    config
        .credits_per_second
        .get(model.id())
        .copied()
        .map(Credits)
}

/// The price of generating `seconds` of `model`.
pub fn price_for_seconds(
    config: &PricingConfig,
    model: Model,
    seconds: i64,
) -> Result<Credits, Error> {
    let rate = credits_per_second(config, model).ok_or_else(|| Error::UnsupportedCapability {
        message: format!(
            "model {} has no price configured on this gateway",
            model.id()
        ),
        param: Some("model".into()),
    })?;
    rate.0
        .checked_mul(seconds)
        .map(Credits)
        .ok_or_else(|| Error::invalid("seconds", "price overflow"))
}

pub fn price(config: &PricingConfig, video: &NewVideo) -> Result<Credits, Error> {
    price_for_seconds(config, video.model, video.seconds.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_is_rate_times_seconds() {
        let config = PricingConfig::default();
        assert_eq!(
            price_for_seconds(&config, Model::Fast, 10).ok(),
            Some(Credits(500))
        );
    }

    #[test]
    fn an_unpriced_model_is_refused() {
        let mut config = PricingConfig::default();
        config.credits_per_second.remove("seedance-2.0-mini");
        assert!(price_for_seconds(&config, Model::Mini, 5).is_err());
    }
}
