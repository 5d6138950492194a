//! Command line: `serve`, `check-config`, `openapi`, `bootstrap`, and the operator commands
//! (`tenants`, `keys`, `credits`, `ledger`) that mirror the admin API.

/// `println!` for command output: a reader that goes away (`| head -1`) ends the command
/// quietly instead of with a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        out_raw(&format!("{}\n", format_args!($($arg)*)))
    };
}

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, LogFormat};
use crate::domain::admin::{self, NewTenant};
use crate::domain::billing::{self, ledger, Credits, Mode};
use crate::domain::ids::{ApiKeyId, TenantId};
use crate::domain::tenants::BillingKind;
use crate::storage::Db;

#[derive(Debug, Parser)]
#[command(
    name = "seedance-gateway",
    version,
    about = "One /v1/videos API in front of the Seedance 2.0 resellers"
)]
pub struct Cli {
    /// TOML configuration file (layered over the defaults, under SEEDANCE_GW_* variables).
    #[arg(long, global = true, env = "SEEDANCE_GW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: text or json (overrides log.format).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Live,
    Test,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Mode {
        match mode {
            ModeArg::Live => Mode::Live,
            ModeArg::Test => Mode::Test,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// `export NAME=value` lines, for `eval`.
    Env,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (HTTP API and workers).
    Serve,
    /// Validate the configuration and print it with secrets masked.
    CheckConfig,
    /// Print the OpenAPI document.
    Openapi,
    /// Run the fake upstreams (all seed providers' protocols) for tests, demos and benchmarks.
    FakeUpstream {
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        #[arg(long, default_value_t = 9100)]
        port: u16,
        /// How long each fake job takes, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        job_ms: u64,
    },
    /// Create an admin token (unless one is configured) and a demo tenant with credits and a test key.
    Bootstrap {
        #[arg(long, default_value = "demo")]
        tenant_name: String,
        /// Credits granted to the demo tenant, in both live and test mode.
        #[arg(long, default_value_t = 10_000, allow_hyphen_values = true)]
        credits: i64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Move credits.
    #[command(subcommand)]
    Credits(CreditsCommand),
    /// Inspect the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Set or show a tenant's or key's routing policy.
    #[command(subcommand)]
    Routing(RoutingCommand),
    /// Set a tenant's request rate (all its keys together).
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Set a tenant's caps: concurrent jobs, credits per day and month, video seconds per day.
    #[command(subcommand)]
    Quotas(QuotasCommand),
}

#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        requests_per_minute: i64,
        #[arg(long)]
        burst: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuotasCommand {
    /// Replaces the caps: one left out has no cap.
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        max_concurrent: Option<i64>,
        #[arg(long, allow_hyphen_values = true)]
        credits_per_day: Option<i64>,
        #[arg(long, allow_hyphen_values = true)]
        credits_per_month: Option<i64>,
        #[arg(long)]
        video_seconds_per_day: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoutingCommand {
    /// Set the policy of a tenant (`--tenant`) or of an API key (`--key`).
    Set {
        #[arg(long, conflicts_with = "key", required_unless_present = "key")]
        tenant: Option<String>,
        #[arg(long)]
        key: Option<String>,
        /// cheapest, fastest or ordered.
        #[arg(long)]
        strategy: Option<String>,
        /// Allowed providers, comma-separated, in order for `ordered`.
        #[arg(long, value_delimiter = ',')]
        providers: Option<Vec<String>>,
        #[arg(long)]
        fallback: Option<bool>,
        #[arg(long)]
        resubmit_failed: Option<bool>,
    },
    /// Show a tenant's policy.
    Show {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    Create {
        #[arg(long)]
        name: String,
        /// Billed afterwards, allowed down to --credit-floor.
        #[arg(long)]
        postpaid: bool,
        /// The lowest the balance may go (zero or negative; postpaid only below zero).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        credit_floor: i64,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum, default_value_t = ModeArg::Live)]
        mode: ModeArg,
        #[arg(long)]
        name: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Revoke {
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    Grant {
        #[arg(long)]
        tenant: String,
        /// Credits to grant: a positive integer of at most 10^15.
        #[arg(long, allow_hyphen_values = true)]
        amount: i64,
        #[arg(long)]
        reason: String,
        #[arg(long, value_enum, default_value_t = ModeArg::Live)]
        mode: ModeArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Check the journal against the cached balances.
    Audit,
}

fn tenant_arg(raw: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(raw).ok_or_else(|| anyhow::anyhow!("`{raw}` is not a tenant id (ten_…)"))
}

/// Opens (and migrates) the configured database, saying on stderr which one it is: a command
/// run from another directory than `serve` would otherwise work on another SQLite file
/// unnoticed.
async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let url = config.database.url.expose();
    let new_file = url.starts_with("sqlite:")
        && sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map(|options| !options.get_filename().exists())
            .unwrap_or(false);
    let db = Db::connect(&config.database).await?;
    db.migrate().await?;
    // Described now that a new file exists, so that its path is absolute.
    let location = crate::storage::describe_url(url);
    if new_file {
        eprintln!(
            "warning: created a new, empty database ({location}); if `serve` runs elsewhere, \
             run this command from its directory or give the same database.url"
        );
    } else {
        eprintln!("database: {location}");
    }
    Ok(db)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        config.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    let _telemetry = crate::telemetry::init(&config.log);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::CheckConfig => {
            out_raw(&config.to_masked_toml());
            Ok(())
        }
        Command::Openapi => {
            out_raw(&crate::http::openapi::document());
            Ok(())
        }
        Command::FakeUpstream { host, port, job_ms } => {
            let fake = crate::fake::FakeUpstream::start((host, port).into()).await?;
            fake.set_job_duration(std::time::Duration::from_millis(job_ms));
            for (prefix, _) in crate::fake::PROVIDERS {
                out!("{prefix}: {}", fake.base_url(prefix));
            }
            out!("API key for every provider: {}", crate::fake::FAKE_KEY);
            wait_for_signal().await;
            Ok(())
        }
        Command::Bootstrap {
            tenant_name,
            credits,
            format,
        } => bootstrap(&config, &tenant_name, credits, format).await,
        Command::Tenants(command) => tenants(&config, command).await,
        Command::Routing(command) => routing(&config, command).await,
        Command::Limits(LimitsCommand::Set {
            tenant,
            requests_per_minute,
            burst,
        }) => {
            let db = open_db(&config).await?;
            admin::set_tenant_rate(&db, &tenant_arg(&tenant)?, requests_per_minute, burst)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            out!("{tenant}: {requests_per_minute} requests per minute, burst {burst} (replicas pick it up within 5 s)");
            Ok(())
        }
        Command::Quotas(QuotasCommand::Set {
            tenant,
            max_concurrent,
            credits_per_day,
            credits_per_month,
            video_seconds_per_day,
        }) => {
            let db = open_db(&config).await?;
            let quotas = crate::storage::end_users::TenantQuotas {
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
        Command::Keys(command) => keys(&config, command).await,
        Command::Credits(CreditsCommand::Grant {
            tenant,
            amount,
            reason,
            mode,
        }) => {
            let db = open_db(&config).await?;
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
        Command::Ledger(LedgerCommand::Audit) => {
            let db = open_db(&config).await?;
            let report = db.audit_ledger().await?;
            out!("{}", serde_json::to_string_pretty(&report)?);
            if report.ok {
                Ok(())
            } else {
                anyhow::bail!("the ledger audit found inconsistencies")
            }
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Held until the process exits: one serving process per SQLite file.
    let _serving = crate::storage::claim_for_serving(&config.database)?;
    let app = crate::App::build(config).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining");
        shutdown.cancel();
    });
    app.run().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Writes command output; a closed pipe ends the process quietly (exit 0), any other write
/// error too, with a line on stderr.
fn out_raw(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing the output: {error}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
}

/// An amount refused at the command line exits non-zero with the field and the bound.
fn cli_amount(amount: crate::error::Result<Credits>) -> anyhow::Result<Credits> {
    amount.map_err(|e| anyhow::anyhow!("{e}"))
}

async fn bootstrap(
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

async fn tenants(config: &Config, command: TenantsCommand) -> anyhow::Result<()> {
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
            for tenant in db.list_tenants().await? {
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

async fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
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
            for key in db.list_api_keys(&tenant_arg(&tenant)?).await? {
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
            let id = ApiKeyId::parse(&key_id)
                .ok_or_else(|| anyhow::anyhow!("`{key_id}` is not a key id (key_…)"))?;
            admin::revoke_key(&db, &id).await?;
            out!("revoked {key_id}");
        }
    }
    Ok(())
}

async fn routing(config: &Config, command: RoutingCommand) -> anyhow::Result<()> {
    use crate::http::admin::RoutingPolicyBody;
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
            let level = RoutingPolicyBody {
                strategy,
                providers,
                fallback,
                resubmit_failed,
            }
            .into_level()?;
            let (scope, id) = match (tenant, key) {
                (Some(tenant), _) => (
                    "tenant",
                    admin::tenant(&db, &tenant_arg(&tenant)?)
                        .await?
                        .id
                        .to_string(),
                ),
                (None, Some(key)) => {
                    let id = ApiKeyId::parse(&key)
                        .ok_or_else(|| anyhow::anyhow!("`{key}` is not a key id (key_…)"))?;
                    let key = db
                        .get_api_key(&id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no such key {key}"))?;
                    ("key", key.id.to_string())
                }
                (None, None) => anyhow::bail!("give --tenant or --key"),
            };
            // What `serve` would route live keys to with this configuration (none known when
            // it cannot start its providers, e.g. a key file missing here).
            let live: Vec<&str> = crate::providers::Providers::from_config(
                config,
                &std::sync::Arc::new(crate::metrics::Metrics::new()),
            )
            .map(|providers| providers.live_names().collect())
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
            db.put_routing_policy(scope, &id, &level).await?;
            out!("{scope} {id}: {}", serde_json::to_string(&level)?);
        }
        RoutingCommand::Show { tenant } => {
            let tenant = admin::tenant(&db, &tenant_arg(&tenant)?).await?;
            let level = db
                .routing_policy("tenant", tenant.id.as_str())
                .await?
                .unwrap_or_default();
            out!("{}", serde_json::to_string_pretty(&level)?);
        }
    }
    Ok(())
}
