//! `PUT /admin/v1/tenants/{tenant_id}/prices`: a tenant's own price list (fixed credits per
//! second, or cost-plus), as [`crate::domain::billing::pricing`] applies it.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::tenant_id;
use crate::domain::admin;
use crate::domain::billing::pricing::{self, InputMode, PriceRule, TenantPrices};
use crate::error::{Error, Result};
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::AppState;
use crate::types::video::{Model, Resolution};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[schema(example = json!({"kind": "fixed", "rules": [
    {"model": "seedance-2.0-fast", "credits_per_second": 40},
    {"model": "seedance-2.0-fast", "resolution": "1080p", "credits_per_second": 70},
    {"model": "seedance-2.0", "resolution": "1080p", "input_mode": "reference_video", "credits_per_second": 120}
]}))]
pub enum PricesBody {
    /// Credits per second by model, optionally by resolution and input mode (`text`, `image`,
    /// `reference_video`); the most specific matching rule wins, else the operator's price.
    Fixed { rules: Vec<PriceRuleBody> },
    /// Upstream cost at the chosen provider × (1 + markup), rounded up once.
    CostPlus {
        /// Markup in percent as a decimal string, e.g. `"25"` or `"12.5"`.
        markup_percent: String,
    },
}

/// One rule of a fixed price list.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceRuleBody {
    /// A model id, e.g. `seedance-2.0-fast`.
    pub model: String,
    /// `480p`, `720p` or `1080p`; absent: any.
    pub resolution: Option<String>,
    /// `text`, `image` or `reference_video`; absent: any.
    #[schema(value_type = Option<String>, pattern = "^(text|image|reference_video)$")]
    pub input_mode: Option<InputMode>,
    /// Credits per second of video (0 or more).
    #[schema(minimum = 0)]
    pub credits_per_second: i64,
}

impl PriceRuleBody {
    fn into_rule(self) -> Result<PriceRule> {
        let model = Model::parse(&self.model).ok_or_else(|| {
            Error::invalid("rules.model", format!("unknown model `{}`", self.model))
        })?;
        let resolution = self
            .resolution
            .as_deref()
            .map(|x| {
                Resolution::parse(x).ok_or_else(|| {
                    Error::invalid("rules.resolution", "resolution must be 480p, 720p or 1080p")
                })
            })
            .transpose()?;
        let rate = crate::domain::billing::non_negative_amount(
            "rules.credits_per_second",
            self.credits_per_second,
        )?;
        Ok(PriceRule {
            model,
            resolution,
            input_mode: self.input_mode,
            credits_per_second: rate.get(),
        })
    }
}

impl PricesBody {
    /// The prices as set, in the shape they are sent in: canonical model names, the markup
    /// in percent.
    fn from_prices(prices: TenantPrices) -> PricesBody {
        match prices {
            TenantPrices::Fixed { rules } => PricesBody::Fixed {
                rules: rules
                    .into_iter()
                    .map(|rule| PriceRuleBody {
                        model: rule.model.id().to_owned(),
                        resolution: rule.resolution.map(|r| r.as_str().to_owned()),
                        input_mode: rule.input_mode,
                        credits_per_second: rule.credits_per_second,
                    })
                    .collect(),
            },
            TenantPrices::CostPlus { markup_bps } => PricesBody::CostPlus {
                markup_percent: pricing::markup_percent(markup_bps),
            },
        }
    }

    fn into_prices(self) -> Result<TenantPrices> {
        match self {
            PricesBody::Fixed { rules } => {
                if rules.is_empty() || rules.len() > 200 {
                    return Err(Error::invalid("rules", "give 1 to 200 rules"));
                }
                let rules = rules
                    .into_iter()
                    .map(PriceRuleBody::into_rule)
                    .collect::<Result<Vec<_>>>()?;
                Ok(TenantPrices::Fixed { rules })
            }
            PricesBody::CostPlus { markup_percent } => {
                let markup_bps = pricing::markup_bps(&markup_percent)
                    .ok_or_else(|| Error::invalid("markup_percent", "markup_percent must be a percentage like \"25\" or \"12.5\" (at most two decimals)"))?;
                Ok(TenantPrices::CostPlus { markup_bps })
            }
        }
    }
}

/// Set a tenant's prices
///
/// A fixed price list or cost-plus. Quotes and holds use it at once; jobs already running keep
/// the price they reserved.
#[utoipa::path(
    put, path = "/admin/v1/tenants/{tenant_id}/prices", tag = "admin", request_body = PricesBody,
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = PricesBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn put_prices(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PricesBody>,
) -> Result<Json<PricesBody>> {
    let tenant = tenant_id(&id)?;
    let prices = body.into_prices()?;
    admin::set_prices(&state.db, &tenant, &prices).await?;
    Ok(Json(PricesBody::from_prices(prices)))
}
