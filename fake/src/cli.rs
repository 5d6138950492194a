//! The `fake-upstream` command: every seed provider's protocol on one port, for tests, demos,
//! the bench and docker-compose, until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;

use crate::{FakeUpstream, FAKE_KEY, PROVIDERS};

#[derive(Debug, Parser)]
#[command(
    name = "fake-upstream",
    version,
    about = "Run the fake upstreams (all seed providers' protocols) for tests, demos and benchmarks"
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on; each provider is served under its own path prefix.
    #[arg(long, default_value_t = 9100)]
    pub port: u16,
    /// How long each fake job takes, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub job_ms: u64,
}

/// Starts the fake, prints each provider's base URL and the key, and serves until a signal.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let fake = FakeUpstream::start((cli.host, cli.port).into()).await?;
    fake.set_job_duration(Duration::from_millis(cli.job_ms));
    let mut lines = String::new();
    for (prefix, _) in PROVIDERS {
        lines.push_str(&format!("{prefix}: {}\n", fake.base_url(prefix)));
    }
    lines.push_str(&format!("API key for every provider: {FAKE_KEY}\n"));
    // A reader that went away (`| head -1`) is no reason to stop serving.
    let _ = std::io::stdout().lock().write_all(lines.as_bytes());
    wait_for_signal().await;
    Ok(())
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_flag_has_help_text_and_the_definition_is_consistent() {
        Cli::command().debug_assert();
        let mut command = Cli::command();
        command.build();
        let missing: Vec<_> = command
            .get_arguments()
            .filter(|arg| arg.get_help().is_none() && arg.get_long_help().is_none())
            .map(|arg| arg.get_id().to_string())
            .collect();
        assert!(missing.is_empty(), "flags without help text: {missing:?}");
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let cli = Cli::try_parse_from(["fake-upstream"]).expect("no flags needed");
        assert_eq!(cli.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(cli.port, 9100);
        assert_eq!(cli.job_ms, 5000);
    }
}
