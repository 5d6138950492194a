//! `tenants create` and `tenants list`.

use clap::Subcommand;

use super::args::cli_amount;
use super::database::open_db;
use crate::config::Config;
use crate::domain::admin::{self, NewTenant};
use crate::domain::billing::{self, ledger, Mode};
use crate::domain::tenants::BillingKind;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its id (ten_…).
    Create {
        /// The tenant's name, as listings show it.
        #[arg(long)]
        name: String,
        /// Billed afterwards, allowed down to --credit-floor.
        #[arg(long)]
        postpaid: bool,
        /// The lowest the balance may go (zero or negative; postpaid only below zero).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        credit_floor: i64,
    },
    /// List tenants: id, name, billing kind and live balance.
    List,
}

pub(super) async fn run(config: &Config, command: TenantsCommand) -> anyhow::Result<()> {
    let db = open_db(config).await?;
    match command {
        TenantsCommand::Create {
            name,
            postpaid,
            credit_floor,
        } => {
            let tenant = admin::create_tenant(
                &db,
                NewTenant {
                    name,
                    billing_kind: if postpaid {
                        BillingKind::Postpaid
                    } else {
                        BillingKind::Prepaid
                    },
                    credit_floor: cli_amount(billing::amount("credit-floor", credit_floor))?,
                },
            )
            .await?;
            out!("{}", tenant.id);
        }
        TenantsCommand::List => {
            for tenant in admin::tenants(&db).await? {
                let live = ledger::balance(&db, &tenant.id, Mode::Live).await?;
                out!(
                    "{}\t{}\t{}\tavailable {}\theld {}",
                    tenant.id,
                    tenant.name,
                    tenant.billing_kind.as_str(),
                    live.available,
                    live.held
                );
            }
        }
    }
    Ok(())
}
