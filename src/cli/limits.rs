//! `limits set` (a tenant's request rate) and `quotas set` (a tenant's caps).

use clap::Subcommand;

use super::args::tenant_arg;
use super::database::open_db;
use crate::config::Config;
use crate::domain::admin;

#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Set a tenant's request rate and burst, replacing `limits.tenant_requests_per_minute`
    /// for it.
    Set {
        /// The tenant (ten_…).
        #[arg(long)]
        tenant: String,
        /// Requests per minute for all the tenant's keys together (1-1000000).
        #[arg(long)]
        requests_per_minute: i64,
        /// Requests allowed back to back before the rate applies (1-100000).
        #[arg(long)]
        burst: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuotasCommand {
    /// Set a tenant's caps, replacing them all: one left out has no cap.
    Set {
        /// The tenant (ten_…).
        #[arg(long)]
        tenant: String,
        /// Most of the tenant's jobs running at once.
        #[arg(long)]
        max_concurrent: Option<i64>,
        /// Most credits the tenant's jobs may take per UTC day.
        #[arg(long, allow_hyphen_values = true)]
        credits_per_day: Option<i64>,
        /// Most credits the tenant's jobs may take per calendar month (UTC).
        #[arg(long, allow_hyphen_values = true)]
        credits_per_month: Option<i64>,
        /// Most seconds of video the tenant's jobs may make per UTC day.
        #[arg(long)]
        video_seconds_per_day: Option<i64>,
    },
}

pub(super) async fn run_limits(config: &Config, command: LimitsCommand) -> anyhow::Result<()> {
    let LimitsCommand::Set {
        tenant,
        requests_per_minute,
        burst,
    } = command;
    let db = open_db(config).await?;
    admin::set_tenant_rate(&db, &tenant_arg(&tenant)?, requests_per_minute, burst)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    out!("{tenant}: {requests_per_minute} requests per minute, burst {burst} (replicas pick it up within 5 s)");
    Ok(())
}

pub(super) async fn run_quotas(config: &Config, command: QuotasCommand) -> anyhow::Result<()> {
    let QuotasCommand::Set {
        tenant,
        max_concurrent,
        credits_per_day,
        credits_per_month,
        video_seconds_per_day,
    } = command;
    let db = open_db(config).await?;
    let quotas = crate::domain::end_users::TenantQuotas {
        max_concurrent,
        credits_per_day,
        credits_per_month,
        video_seconds_per_day,
    };
    admin::set_tenant_quotas(&db, &tenant_arg(&tenant)?, &quotas)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    out!("{tenant}: {}", serde_json::to_string(&quotas)?);
    Ok(())
}
