use clap::{Parser, Subcommand};

use courier::settings::Settings;
use courier::startup::Application;

/// courier: event notifications by signed webhook and email.
///
/// Configuration comes from config/default.toml, config/<COURIER_ENV>.toml
/// and COURIER__SECTION__KEY environment variables.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve,
    /// Load and validate the configuration, then exit.
    CheckConfig,
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("courier: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match cli.command {
        Command::CheckConfig => {
            println!("configuration is valid");
            std::process::ExitCode::SUCCESS
        }
        Command::Serve => {
            courier::telemetry::init(&settings.log);
            let host = settings.server.host.clone();
            let app = match Application::build(settings).await {
                Ok(app) => app,
                Err(e) => {
                    tracing::error!("courier cannot start: {e}");
                    eprintln!("courier: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            tracing::info!("courier listening on http://{host}:{}", app.port());
            match app.run_until_stopped().await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("courier: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
