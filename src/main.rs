use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = seedance_gateway::cli::Cli::parse();
    match seedance_gateway::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
