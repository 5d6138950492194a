//! `routing set` and `routing show`: a tenant's or an API key's routing policy, checked as the
//! admin API checks it, with a warning for providers this configuration does not enable.

use clap::Subcommand;

use super::args::{key_arg, tenant_arg};
use super::database::open_db;
use crate::config::Config;
use crate::domain::admin::{self, PolicyOwner};
use crate::domain::routing::policy::PolicyLevel;

#[derive(Debug, Subcommand)]
pub enum RoutingCommand {
    /// Set the policy of a tenant (`--tenant`) or of an API key (`--key`).
    ///
    /// The policy is replaced as a whole: a setting left out inherits from the level above
    /// (the key's tenant, then `[routing]` in the configuration).
    Set {
        /// The tenant whose policy to set (ten_…).
        #[arg(long, conflicts_with = "key", required_unless_present = "key")]
        tenant: Option<String>,
        /// The API key whose policy to set (key_…); it can only narrow its tenant's.
        #[arg(long)]
        key: Option<String>,
        /// cheapest, fastest or ordered.
        #[arg(long)]
        strategy: Option<String>,
        /// Allowed providers, comma-separated, in order for `ordered`.
        #[arg(long, value_delimiter = ',')]
        providers: Option<Vec<String>>,
        /// Whether a failing provider may hand a job to the next candidate (true or false).
        #[arg(long)]
        fallback: Option<bool>,
        /// Whether a job that fails upstream is resubmitted to the next candidate (true or
        /// false).
        #[arg(long)]
        resubmit_failed: Option<bool>,
    },
    /// Show a tenant's policy.
    Show {
        /// The tenant (ten_…).
        #[arg(long)]
        tenant: String,
    },
}

pub(super) async fn run(config: &Config, command: RoutingCommand) -> anyhow::Result<()> {
    let db = open_db(config).await?;
    match command {
        RoutingCommand::Set {
            tenant,
            key,
            strategy,
            providers,
            fallback,
            resubmit_failed,
        } => {
            let level =
                PolicyLevel::parse(strategy.as_deref(), providers, fallback, resubmit_failed)?;
            let (owner, scope, id) = match (tenant, key) {
                (Some(tenant), _) => {
                    let id = tenant_arg(&tenant)?;
                    let shown = id.to_string();
                    (PolicyOwner::Tenant(id), "tenant", shown)
                }
                (None, Some(key)) => {
                    let id = key_arg(&key)?;
                    let shown = id.to_string();
                    (PolicyOwner::Key(id), "key", shown)
                }
                (None, None) => anyhow::bail!("give --tenant or --key"),
            };
            let level = admin::set_routing_level(&db, &owner, level).await?;
            warn_about_providers_not_live(config, &level);
            out!("{scope} {id}: {}", serde_json::to_string(&level)?);
        }
        RoutingCommand::Show { tenant } => {
            let owner = PolicyOwner::Tenant(tenant_arg(&tenant)?);
            let level = admin::routing_policy(&db, &owner).await?;
            out!("{}", serde_json::to_string_pretty(&level)?);
        }
    }
    Ok(())
}

/// Warns, on stderr, about each provider of the policy that `serve` would not route live keys
/// to with this configuration (none known when it cannot start its providers, e.g. a key file
/// missing here).
fn warn_about_providers_not_live(config: &Config, level: &PolicyLevel) {
    let live: Vec<&str> = crate::domain::providers::live_in(config)
        .map(|ids| ids.into_iter().map(|id| id.as_str()).collect())
        .unwrap_or_default();
    for name in level.providers.iter().flatten() {
        if !live.contains(&name.as_str()) {
            eprintln!(
                "warning: provider `{name}` is not enabled for live keys in this \
                 configuration, so this policy's live creates will not reach it \
                 (enabled: {})",
                if live.is_empty() {
                    "none".to_string()
                } else {
                    live.join(", ")
                }
            );
        }
    }
}
