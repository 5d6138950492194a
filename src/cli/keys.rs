//! `keys create`, `keys list` and `keys revoke`.

use clap::Subcommand;

use super::args::{key_arg, tenant_arg, ModeArg};
use super::database::open_db;
use crate::config::Config;
use crate::domain::admin;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print its id and secret (the secret is shown only this once).
    Create {
        /// The tenant the key belongs to (ten_…).
        #[arg(long)]
        tenant: String,
        /// A live key spends the live balance on the enabled providers; a test key the test
        /// balance, on the sandbox.
        #[arg(long, value_enum, default_value_t = ModeArg::Live)]
        mode: ModeArg,
        /// A label to tell the tenant's keys apart.
        #[arg(long)]
        name: Option<String>,
    },
    /// List a tenant's keys: id, mode, prefix, active or revoked, name.
    List {
        /// The tenant (ten_…).
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key: requests with it are refused from then on.
    Revoke {
        /// The key's id (key_…), as `keys create` and `keys list` print it.
        key_id: String,
    },
}

pub(super) async fn run(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let db = open_db(config).await?;
    match command {
        KeysCommand::Create { tenant, mode, name } => {
            let issued = admin::create_key(
                &db,
                &tenant_arg(&tenant)?,
                mode.into(),
                name,
                admin::KeyOptions::default(),
            )
            .await?;
            out!("{}\t{}", issued.key.id, issued.secret);
        }
        KeysCommand::List { tenant } => {
            for key in admin::list_keys(&db, &tenant_arg(&tenant)?).await? {
                let state = if key.revoked_at_ms.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                out!(
                    "{}\t{}\t{}…\t{}\t{}",
                    key.id,
                    key.mode.as_str(),
                    key.display_prefix,
                    state,
                    key.name
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            let id = key_arg(&key_id)?;
            admin::revoke_key(&db, &id).await?;
            out!("revoked {key_id}");
        }
    }
    Ok(())
}
