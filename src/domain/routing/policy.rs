//! Routing policy at three levels: the operator's default (`[routing]` in the configuration),
//! the tenant's, and the API key's, each set by the operator. A level's unset fields inherit
//! from the level above; its `providers` list can only narrow the allowed set, never widen it.
//! A request's own `routing` narrows further: it may pick a strategy and name providers, but a
//! provider its policy does not allow is left out with that reason.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::types::ids::ProviderId;
use crate::types::video::Strategy;

/// One level's settings, as storage keeps them; parsed from what an operator writes here.
pub use crate::storage::policies::PolicyLevel;

impl PolicyLevel {
    /// A level as an operator writes it (the admin API's body, the CLI's flags): the strategy
    /// by name, provider names in either spelling (the configuration's `seedance_it` is
    /// `seedance-it`), each checked against the providers the gateway knows.
    pub fn parse(
        strategy: Option<&str>,
        providers: Option<Vec<String>>,
        fallback: Option<bool>,
        resubmit: Option<bool>,
    ) -> Result<PolicyLevel> {
        let strategy = strategy
            .map(|s| {
                Strategy::parse(s).ok_or_else(|| {
                    Error::invalid("strategy", "strategy must be cheapest, fastest or ordered")
                })
            })
            .transpose()?;
        let providers = providers
            .map(|names| {
                names
                    .into_iter()
                    .map(|name| {
                        ProviderId::parse(&name).ok_or_else(|| {
                            Error::invalid(
                                "providers",
                                format!(
                                    "unknown provider `{}`; the providers are {}",
                                    name.trim().to_ascii_lowercase().replace('_', "-"),
                                    ProviderId::all_names()
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(PolicyLevel {
            strategy,
            providers,
            fallback,
            resubmit,
        })
    }
}

// One level as the operator writes it (admin API and CLI): names as text, checked by
// `into_level`. A plain comment: a doc comment would become the schema's description.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"strategy": "ordered", "providers": ["seedanceapi", "aimlapi"], "fallback": true, "resubmit_failed": false}))]
pub struct RoutingPolicyBody {
    /// `cheapest`, `fastest` or `ordered`; null inherits.
    pub strategy: Option<String>,
    /// Providers allowed (in order for `ordered`); null inherits, and a list can only narrow
    /// what the level above allows.
    pub providers: Option<Vec<String>>,
    /// Whether a failing provider may hand a job to the next candidate; null inherits.
    pub fallback: Option<bool>,
    /// Whether a job that fails upstream is resubmitted to the next candidate; null inherits.
    pub resubmit_failed: Option<bool>,
}

impl RoutingPolicyBody {
    pub fn into_level(self) -> Result<PolicyLevel> {
        PolicyLevel::parse(
            self.strategy.as_deref(),
            self.providers,
            self.fallback,
            self.resubmit_failed,
        )
    }

    pub fn from_level(level: PolicyLevel) -> Self {
        RoutingPolicyBody {
            strategy: level.strategy.map(|s| s.as_str().to_string()),
            providers: level
                .providers
                .map(|ids| ids.iter().map(|id| id.as_str().to_string()).collect()),
            fallback: level.fallback,
            resubmit_failed: level.resubmit,
        }
    }
}

/// The policy in force for one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub strategy: Strategy,
    /// `None`: every enabled provider.
    pub providers: Option<Vec<ProviderId>>,
    pub fallback: bool,
    pub resubmit: bool,
}

impl Policy {
    /// Layers levels from the top (operator) down (key).
    pub fn resolve(levels: &[&PolicyLevel]) -> Policy {
        let mut policy = Policy {
            strategy: Strategy::Cheapest,
            providers: None,
            fallback: true,
            resubmit: false,
        };
        for level in levels {
            if let Some(strategy) = level.strategy {
                policy.strategy = strategy;
            }
            if let Some(fallback) = level.fallback {
                policy.fallback = fallback;
            }
            if let Some(resubmit) = level.resubmit {
                policy.resubmit = resubmit;
            }
            if let Some(list) = &level.providers {
                policy.providers = Some(match &policy.providers {
                    None => list.clone(),
                    Some(allowed) => list
                        .iter()
                        .filter(|p| allowed.contains(p))
                        .cloned()
                        .collect(),
                });
            }
        }
        policy
    }

    pub fn allows(&self, provider: ProviderId) -> bool {
        self.providers
            .as_ref()
            .is_none_or(|list| list.contains(&provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_levels_narrow_and_override() {
        let operator = PolicyLevel {
            providers: Some(vec![
                ProviderId::Apiframe,
                ProviderId::AimlApi,
                ProviderId::SeedanceApi,
            ]),
            ..Default::default()
        };
        let tenant = PolicyLevel {
            strategy: Some(Strategy::Ordered),
            providers: Some(vec![
                ProviderId::SeedanceApi,
                ProviderId::AimlApi,
                ProviderId::Sandbox,
            ]),
            resubmit: Some(true),
            ..Default::default()
        };
        let key = PolicyLevel {
            fallback: Some(false),
            ..Default::default()
        };
        let policy = Policy::resolve(&[&operator, &tenant, &key]);
        assert_eq!(policy.strategy, Strategy::Ordered);
        assert_eq!(
            policy.providers,
            Some(vec![ProviderId::SeedanceApi, ProviderId::AimlApi]),
            "sandbox is not widened in"
        );
        assert!(!policy.fallback && policy.resubmit);
        assert!(policy.allows(ProviderId::AimlApi) && !policy.allows(ProviderId::Apiframe));
    }

    #[test]
    fn a_written_level_takes_either_spelling_and_names_the_providers_when_one_is_unknown() {
        let level = PolicyLevel::parse(
            Some("ordered"),
            Some(vec![" Seedance_IT ".into(), "aimlapi".into()]),
            Some(false),
            None,
        )
        .expect("a valid level");
        assert_eq!(level.strategy, Some(Strategy::Ordered));
        assert_eq!(
            level.providers,
            Some(vec![ProviderId::SeedanceIt, ProviderId::AimlApi])
        );
        assert_eq!((level.fallback, level.resubmit), (Some(false), None));

        let unknown = PolicyLevel::parse(None, Some(vec!["nope".into()]), None, None)
            .expect_err("an unknown provider");
        assert!(unknown
            .to_string()
            .contains("the providers are seedance-it"));
        assert!(PolicyLevel::parse(Some("random"), None, None, None).is_err());
    }
}
