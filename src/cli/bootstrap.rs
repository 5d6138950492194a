//! `bootstrap`: the first minute of a new gateway — an admin token (unless one is configured),
//! a demo tenant with credits in both modes, and a test key, printed for reading or for `eval`.

use super::args::{cli_amount, OutputFormat};
use super::database::open_db;
use crate::config::Config;
use crate::domain::admin::{self, NewTenant};
use crate::domain::billing::{self, ledger, Credits, Mode};
use crate::domain::tenants::BillingKind;

pub(super) async fn bootstrap(
    config: &Config,
    tenant_name: &str,
    credits: i64,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let credits = cli_amount(billing::positive_amount("credits", credits))?;
    let db = open_db(config).await?;
    let admin_token = match &config.admin.token {
        Some(_) => None,
        None => Some(admin::issue_admin_token(&db).await?),
    };
    let existing = db
        .list_tenants()
        .await?
        .into_iter()
        .find(|t| t.name == tenant_name);
    let tenant = match existing {
        Some(tenant) => tenant,
        None => {
            let tenant = admin::create_tenant(
                &db,
                NewTenant {
                    name: tenant_name.to_string(),
                    billing_kind: BillingKind::Prepaid,
                    credit_floor: Credits::ZERO,
                },
            )
            .await?;
            for mode in [Mode::Live, Mode::Test] {
                admin::grant_credits(
                    &db,
                    &tenant.id,
                    mode,
                    credits,
                    admin::CreditType::Paid,
                    "bootstrap demo credit",
                    "bootstrap",
                    None,
                )
                .await?;
            }
            tenant
        }
    };
    let key = admin::create_key(
        &db,
        &tenant.id,
        Mode::Test,
        Some("bootstrap test key".into()),
        admin::KeyOptions::default(),
    )
    .await?;
    let balance = ledger::balance(&db, &tenant.id, Mode::Test).await?;
    match format {
        OutputFormat::Env => {
            if let Some(token) = &admin_token {
                out!("export SGW_ADMIN_TOKEN={token}");
            }
            out!("export SGW_TENANT={}", tenant.id);
            out!("export SGW_API_KEY={}", key.secret);
        }
        OutputFormat::Text => {
            match &admin_token {
                Some(token) => {
                    out!("admin token: {token}   (shown once; use it for /admin/v1)")
                }
                None => out!("admin token: the one configured in admin.token"),
            }
            out!("tenant:      {} ({})", tenant.id, tenant.name);
            out!(
                "test key:    {}   (shown once; runs on the sandbox)",
                key.secret
            );
            out!("test balance: {} credits available", balance.available);
        }
    }
    Ok(())
}
