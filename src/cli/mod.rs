//! Command line: `serve`, `check-config`, `openapi`, `bootstrap`, and the operator commands
//! (`tenants`, `keys`, `credits`, `ledger`, `routing`, `limits`, `quotas`) that mirror the
//! admin API. This module holds the clap root, the dispatch and what every command shares
//! (opening the database, writing output); each command group has its own file. Every command
//! and flag carries help text (`seedance-gateway <command> --help`). The fake upstreams are a
//! binary of their own (`fake-upstream`, the `fake/` crate).

/// `println!` for command output: a reader that goes away (`| head -1`) ends the command
/// quietly instead of with a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::out_raw(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod args;
mod bootstrap;
mod credits;
mod database;
mod keys;
mod limits;
mod output;
mod routing;
mod serve;
mod tenants;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, LogFormat};

pub use args::{ModeArg, OutputFormat};
pub use credits::{CreditsCommand, LedgerCommand};
pub use keys::KeysCommand;
pub use limits::{LimitsCommand, QuotasCommand};
pub use routing::RoutingCommand;
pub use tenants::TenantsCommand;

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
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (HTTP API and workers).
    Serve,
    /// Validate the configuration and print it with secrets masked.
    CheckConfig,
    /// Print the OpenAPI document.
    Openapi,
    /// Create an admin token (unless one is configured) and a demo tenant with credits and a test key.
    Bootstrap {
        /// Name of the demo tenant; a tenant of that name already there is reused, without new
        /// credits.
        #[arg(long, default_value = "demo")]
        tenant_name: String,
        /// Credits granted to the demo tenant, in both live and test mode.
        #[arg(long, default_value_t = 10_000, allow_hyphen_values = true)]
        credits: i64,
        /// How to print the credentials: text to read, env for `eval "$(…)"`.
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

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        config.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    let _telemetry = crate::telemetry::init(&config.log);
    // For tests of machines whose clocks disagree (docs/configuration.md): every command,
    // `serve` and the operator commands alike, then sets its clock to the database's.
    if let Ok(skew) = std::env::var("SGW_TEST_MACHINE_CLOCK_SKEW_MS") {
        let skew: i64 = skew.parse().map_err(|_| {
            anyhow::anyhow!("SGW_TEST_MACHINE_CLOCK_SKEW_MS must be a number of milliseconds")
        })?;
        crate::clock::set_machine_skew_ms(skew);
    }
    match cli.command {
        Command::Serve => serve::serve(config).await,
        Command::CheckConfig => {
            output::out_raw(&config.to_masked_toml());
            Ok(())
        }
        Command::Openapi => {
            output::out_raw(&crate::App::openapi_document());
            Ok(())
        }
        Command::Bootstrap {
            tenant_name,
            credits,
            format,
        } => bootstrap::bootstrap(&config, &tenant_name, credits, format).await,
        Command::Tenants(command) => tenants::run(&config, command).await,
        Command::Routing(command) => routing::run(&config, command).await,
        Command::Limits(command) => limits::run_limits(&config, command).await,
        Command::Quotas(command) => limits::run_quotas(&config, command).await,
        Command::Keys(command) => keys::run(&config, command).await,
        Command::Credits(command) => credits::run_credits(&config, command).await,
        Command::Ledger(command) => credits::run_ledger(&config, command).await,
    }
}
