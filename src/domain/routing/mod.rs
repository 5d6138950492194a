//! Where a job runs. Eligible providers are those enabled for live keys that can serve the
//! request (declared capabilities), allowed by the request's `routing.providers`, and able to
//! fetch its inputs; every provider left out gets a reason. Among the eligible:
//!
//! - `cheapest` (default): lowest upstream cost from the [`catalog`]; a provider that cannot
//!   be priced is left out, with that reason;
//! - `ordered`: the order of `routing.providers`, else the configuration order;
//! - pinned: a request naming exactly one provider goes there.
//!
//! - `fastest`: lowest observed time to completion (a moving average per provider and model,
//!   updated as jobs complete); providers not yet observed follow, cheapest first.
//!
//! Ties are broken by configuration order, so the same request always routes the same way.
//! Test keys are always pinned to the sandbox.

pub mod catalog;
pub mod eligibility;
pub mod offers;
pub mod policy;

use crate::domain::services::Services;
use crate::domain::tenants::Principal;
use crate::error::{Error, Result};
use crate::types::ids::ProviderId;
use crate::types::money::{Credits, MicroUsd, Mode};
use crate::types::video::{NewVideo, Strategy};
pub use offers::{models, ModelOffer};
use policy::{Policy, PolicyLevel};

/// A provider that can take the job, with what it would cost upstream.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub provider: ProviderId,
    /// Upstream cost in micro-USD; `None` where the provider cannot be priced.
    pub upstream_cost: Option<MicroUsd>,
}

#[derive(Debug, Clone)]
pub struct Exclusion {
    pub provider: ProviderId,
    pub reason: String,
}

/// The outcome of routing one request.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Eligible providers, best first.
    pub ranked: Vec<Candidate>,
    pub excluded: Vec<Exclusion>,
    /// Why the first candidate was chosen: `cheapest`, `fastest`, `ordered`, `pinned` or
    /// `test-key`.
    pub route: &'static str,
    /// Whether the job may move to the next candidate (policy and request agree).
    pub fallback: bool,
    /// Whether a job that fails upstream is resubmitted to the next candidate.
    pub resubmit: bool,
}

impl Decision {
    pub fn pick(&self) -> Option<&Candidate> {
        self.ranked.first()
    }

    /// The pick, or the error that explains why there is none.
    pub fn require_pick(&self) -> Result<&Candidate> {
        if let Some(pick) = self.pick() {
            return Ok(pick);
        }
        if self.excluded.is_empty() {
            return Err(Error::UpstreamUnavailable(
                "no upstream provider is enabled for live keys".into(),
            ));
        }
        let reasons: Vec<String> = self
            .excluded
            .iter()
            .map(|e| format!("{} {}", e.provider, e.reason))
            .collect();
        Err(Error::UnsupportedCapability {
            message: format!(
                "no enabled provider can serve this request: {}",
                reasons.join("; ")
            ),
            param: None,
        })
    }
}

/// The routing policy in force for a caller: operator default, then tenant, then key.
pub async fn policy_for(state: &Services, principal: &Principal) -> Result<Policy> {
    let operator = PolicyLevel {
        strategy: Some(state.config.routing.strategy),
        // Names the configuration's validation admitted.
        providers: state.config.routing.providers.as_ref().map(|names| {
            names
                .iter()
                .filter_map(|name| ProviderId::parse(name))
                .collect()
        }),
        fallback: Some(state.config.routing.fallback),
        resubmit: Some(state.config.routing.resubmit_failed),
    };
    let tenant = state
        .db
        .routing_policy("tenant", principal.tenant_id.as_str())
        .await?
        .unwrap_or_default();
    let key = state
        .db
        .routing_policy("key", principal.key_id.as_str())
        .await?
        .unwrap_or_default();
    Ok(Policy::resolve(&[&operator, &tenant, &key]))
}

pub async fn decide(
    state: &Services,
    principal: &Principal,
    request: &NewVideo,
) -> Result<Decision> {
    let mut wanted = Vec::with_capacity(request.routing.providers.len());
    for name in &request.routing.providers {
        match ProviderId::parse(name).filter(|id| state.providers.get(*id).is_some()) {
            Some(id) => wanted.push(id),
            None => {
                return Err(Error::invalid(
                    "routing.providers",
                    format!("unknown provider `{name}`"),
                ))
            }
        }
    }
    if principal.mode == Mode::Test {
        // Test keys run where test money goes, at no upstream cost, whatever they ask for.
        let mut ranked = Vec::new();
        let mut excluded = Vec::new();
        for provider in eligibility::reachable(state, Mode::Test) {
            match eligibility::check(state, Mode::Test, provider, request) {
                Ok(_) => ranked.push(Candidate {
                    provider,
                    upstream_cost: Some(MicroUsd::ZERO),
                }),
                Err(reason) => excluded.push(Exclusion { provider, reason }),
            }
        }
        return Ok(Decision {
            ranked,
            excluded,
            route: "test-key",
            fallback: false,
            resubmit: false,
        });
    }
    let policy = policy_for(state, principal).await?;
    let pricing = &state.config.pricing;
    let strategy = request.routing.strategy.unwrap_or(policy.strategy);
    let allowed_count = if wanted.is_empty() {
        policy.providers.as_ref().map(Vec::len)
    } else {
        Some(wanted.iter().filter(|w| policy.allows(**w)).count())
    };
    let pinned = allowed_count == Some(1);
    let cheapest = strategy == Strategy::Cheapest && !pinned;
    let mut ranked = Vec::new();
    let mut excluded = Vec::new();
    let mut exclude =
        |provider: ProviderId, reason: String| excluded.push(Exclusion { provider, reason });
    for name in eligibility::reachable(state, Mode::Live) {
        if !policy.allows(name) {
            exclude(
                name,
                "is not allowed by this caller's routing policy".into(),
            );
            continue;
        }
        if !wanted.is_empty() && !wanted.contains(&name) {
            exclude(name, "is not in routing.providers".into());
            continue;
        }
        if let Err(reason) = eligibility::check(state, Mode::Live, name, request) {
            exclude(name, reason);
            continue;
        }
        let cost = catalog::upstream_cost(name, request, pricing);
        if cheapest {
            match cost {
                Ok(cost) => ranked.push(Candidate {
                    provider: name,
                    upstream_cost: Some(cost),
                }),
                Err(reason) => exclude(name, format!("cannot be priced: it {reason}")),
            }
        } else {
            ranked.push(Candidate {
                provider: name,
                upstream_cost: cost.ok(),
            });
        }
    }
    let preference: Vec<ProviderId> = if !wanted.is_empty() {
        wanted
    } else {
        policy.providers.clone().unwrap_or_default()
    };
    let route = if pinned {
        "pinned"
    } else if strategy == Strategy::Fastest {
        let speeds = state.db.provider_speeds(request.model.id()).await?;
        let speed = |p: ProviderId| {
            speeds
                .iter()
                .find(|(n, _)| n == p.as_str())
                .map(|(_, ms)| *ms)
        };
        ranked.sort_by_key(|c| {
            (
                speed(c.provider).unwrap_or(i64::MAX),
                c.upstream_cost.unwrap_or(MicroUsd::MAX),
            )
        });
        "fastest"
    } else if cheapest {
        // Stable sort: equal costs keep configuration order.
        ranked.sort_by_key(|c| c.upstream_cost.unwrap_or(MicroUsd::MAX));
        "cheapest"
    } else {
        ranked.sort_by_key(|c| {
            preference
                .iter()
                .position(|w| *w == c.provider)
                .unwrap_or(usize::MAX)
        });
        "ordered"
    };
    Ok(Decision {
        ranked,
        excluded,
        route,
        fallback: policy.fallback && request.routing.fallback,
        resubmit: policy.resubmit,
    })
}

/// The caller's price for a request routed as `decision` says (its tenant's price list or
/// cost-plus at the picked provider, else the operator's price), checked against the
/// request's `max_cost_credits`.
pub async fn price(
    state: &Services,
    principal: &Principal,
    request: &NewVideo,
    decision: &Decision,
) -> Result<Credits> {
    let prices = state.db.tenant_prices(&principal.tenant_id).await?;
    let upstream = decision.pick().and_then(|c| c.upstream_cost);
    let price = crate::domain::billing::pricing::price(
        &state.config.pricing,
        prices.as_ref(),
        request,
        upstream,
    )?;
    if let Some(max) = request.routing.max_cost {
        if price > max {
            return Err(Error::UnsupportedCapability {
                message: format!(
                    "this request costs {price} credits, above routing.max_cost_credits ({max})"
                ),
                param: Some("routing.max_cost_credits".into()),
            });
        }
    }
    Ok(price)
}
