use clap::{Parser, Subcommand};

use std::process::ExitCode;

use courier::settings::Settings;
use courier::startup::{self, Application, StartupError};

/// Exit status of a configuration that cannot work.
const BAD_CONFIG: u8 = 2;

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
    /// Run every check of the configuration that `serve` runs before it
    /// connects (values, event catalogue, Redis URL and TLS files), then exit:
    /// 0 when valid, 2 with a message naming the key otherwise.
    CheckConfig,
    /// Seal every subscription's signing secret with the first key of
    /// `auth.encryption_keys` (after putting a new key first); prints how
    /// many were rewritten. Safe while courier runs.
    Reencrypt,
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("courier: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    match cli.command {
        Command::CheckConfig => match startup::prepare(&settings) {
            Ok(prepared) => {
                for w in &prepared.warnings {
                    eprintln!("courier: warning: `{}` {}", w.key, w.message);
                }
                println!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("courier: {e}");
                ExitCode::from(BAD_CONFIG)
            }
        },
        Command::Reencrypt => {
            let prepared = match startup::prepare(&settings) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("courier: {e}");
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            let result = async {
                let store = courier::store::Store::connect(&settings, &prepared.redis).await?;
                store.reencrypt_subscriptions().await
            }
            .await;
            match result {
                Ok((rewritten, seen)) => {
                    println!("{rewritten} of {seen} subscriptions re-encrypted");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("courier: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => {
            courier::telemetry::init(&settings.log);
            let host = settings.server.host.clone();
            let app = match Application::build(settings).await {
                Ok(app) => app,
                Err(e) => {
                    tracing::error!("courier cannot start: {e}");
                    eprintln!("courier: {e}");
                    return match e {
                        StartupError::Config(_) => ExitCode::from(BAD_CONFIG),
                        _ => ExitCode::FAILURE,
                    };
                }
            };
            tracing::info!("courier listening on http://{host}:{}", app.port());
            match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("courier: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
