//! `credits grant` and `ledger audit`: moving credits, and checking the journal.

use clap::Subcommand;

use super::args::{cli_amount, tenant_arg, ModeArg};
use super::database::open_db;
use crate::config::Config;
use crate::domain::admin;
use crate::domain::billing::{self, Mode};
use crate::domain::reports;

#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    /// Grant credits to a tenant (one journal entry, as through the admin API).
    Grant {
        /// The tenant (ten_…).
        #[arg(long)]
        tenant: String,
        /// Credits to grant: a positive integer of at most 10^15.
        #[arg(long, allow_hyphen_values = true)]
        amount: i64,
        /// Why, recorded with the journal entry.
        #[arg(long)]
        reason: String,
        /// The balance credited: live or test.
        #[arg(long, value_enum, default_value_t = ModeArg::Live)]
        mode: ModeArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check the journal against the cached balances.
    Audit,
}

pub(super) async fn run_credits(config: &Config, command: CreditsCommand) -> anyhow::Result<()> {
    let CreditsCommand::Grant {
        tenant,
        amount,
        reason,
        mode,
    } = command;
    let db = open_db(config).await?;
    let granted = admin::grant_credits(
        &db,
        &tenant_arg(&tenant)?,
        mode.into(),
        cli_amount(billing::positive_amount("amount", amount))?,
        admin::CreditType::Paid,
        &reason,
        "cli",
        None,
    )
    .await?;
    out!(
        "granted {amount} credits ({}) to {tenant}: available {}, held {} [{}]",
        Mode::from(mode).as_str(),
        granted.balance.available,
        granted.balance.held,
        granted.txn_id
    );
    Ok(())
}

pub(super) async fn run_ledger(config: &Config, command: LedgerCommand) -> anyhow::Result<()> {
    let LedgerCommand::Audit = command;
    let db = open_db(config).await?;
    let report = reports::audit(&db).await?;
    out!("{}", serde_json::to_string_pretty(&report)?);
    if report.ok {
        Ok(())
    } else {
        anyhow::bail!("the ledger audit found inconsistencies")
    }
}
