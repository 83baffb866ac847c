use clap::{Parser, Subcommand};

use std::process::ExitCode;

use actix_web::http::StatusCode;
use courier::delivery::signing::SigningKey;
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
    #[command(flatten)]
    Configured(Configured),
    /// Receive webhooks on 127.0.0.1 for development: print each request
    /// (headers, signature check, body) and answer it. Needs no
    /// configuration and no Redis.
    Listen(ListenArgs),
}

/// The commands that read the configuration.
#[derive(Subcommand)]
enum Configured {
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
    /// Print every shard's delivery queues, digests, operational outbox
    /// and open circuits, read from Redis (the whole fleet's); or re-queue
    /// failed deliveries (`queues retry`) and replay archived events
    /// (`queues replay`) of any account.
    Queues(courier::queues::QueuesArgs),
}

#[derive(clap::Args)]
struct ListenArgs {
    /// Port to listen on (127.0.0.1 only).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// The subscription's signing secret (whsec_…): every request's
    /// Standard Webhooks signature is checked with it.
    #[arg(long, env = "COURIER_LISTEN_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Status to answer every request with, e.g. 500 to watch retries or
    /// 410 to have the subscription disabled.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..=599))]
    status: u16,
}

/// `courier listen`: binds the port, then hands over to the library.
async fn listen(args: ListenArgs) -> ExitCode {
    let key = match args.secret.as_deref().map(SigningKey::from_secret) {
        Some(None) => {
            eprintln!("courier listen: the secret is not a whsec_ secret (whsec_ and base64)");
            return ExitCode::from(BAD_CONFIG);
        }
        Some(key) => key,
        None => None,
    };
    let status = StatusCode::from_u16(args.status).expect("clap checked the range");
    let listener = match std::net::TcpListener::bind(("127.0.0.1", args.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "courier listen: cannot listen on 127.0.0.1:{}: {e} (choose another port with --port)",
                args.port
            );
            return ExitCode::FAILURE;
        }
    };
    match courier::listen::run(listener, courier::listen::Options { key, status }).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("courier listen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Listen(args) => listen(args).await,
        Command::Configured(command) => configured(command).await,
    }
}

async fn configured(command: Configured) -> ExitCode {
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("courier: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    match command {
        Configured::CheckConfig => match startup::prepare(&settings) {
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
        Configured::Reencrypt => {
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
        Configured::Queues(args) => {
            let prepared = match startup::prepare(&settings) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("courier: {e}");
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            let result = async {
                let store = courier::store::Store::connect(&settings, &prepared.redis).await?;
                courier::queues::run(&store, args).await
            }
            .await;
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("courier queues: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Configured::Serve => {
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
