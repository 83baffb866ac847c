//! Building and running the service: [`Application::build`] binds the
//! listener (port 0 in tests) and wires the parts; [`Application::run_until_stopped`]
//! serves until SIGINT/SIGTERM (graceful: in-flight requests and deliveries
//! finish within `server.shutdown_timeout_secs`, claims still held then go
//! back to the schedule) or until the server handle stops it.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use tokio::sync::Notify;

use crate::api::{self, AppState};
use crate::clock::Clock;
use crate::delivery::engine::Engine;
use crate::delivery::resolve::TargetResolver;
use crate::domain::catalog::Catalog;
use crate::settings::{Finding, Settings, SettingsError};
use crate::stats::Stats;
use crate::store::{RedisTarget, Store, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration cannot work (the message names the key).
    #[error("{0}")]
    Config(#[from] SettingsError),
    #[error("redis: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Resolves on SIGTERM or SIGINT, naming it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => std::future::pending().await,
    }
}

/// What start-up makes of the configuration before it connects anywhere.
pub struct Prepared {
    /// The built-in event types and `events.extra_types`, schemas compiled.
    pub catalog: Catalog,
    /// `redis.url` and its TLS settings, checked.
    pub redis: RedisTarget,
    /// What is probably wrong for the environment (production): shown by
    /// `check-config`, logged by `serve`.
    pub warnings: Vec<Finding>,
}

/// Every check of the configuration, shared by `courier serve` (through
/// [`Application::build`]) and `courier check-config`: the values
/// ([`Settings::validate`]), the event catalogue (`events.extra_types`: names
/// and JSON Schemas), the Redis URL with its TLS CA file, the encryption
/// keys, and in production [`Settings::review`] (what cannot be right is an
/// error, what is probably wrong a warning). It contacts neither Redis nor
/// the SMTP server. An error names the key.
pub fn prepare(settings: &Settings) -> Result<Prepared, SettingsError> {
    settings.validate()?;
    let review = settings.review();
    if !review.errors.is_empty() {
        return Err(SettingsError::Unfit(review.errors));
    }
    let catalog = Catalog::new(&settings.events.catalog_extras())
        .map_err(|e| SettingsError::invalid("events.extra_types", e.to_string()))?;
    let redis = RedisTarget::from_settings(&settings.redis)?;
    crate::secrets::SecretBox::new(&settings.auth.encryption_keys)
        .map_err(|e| SettingsError::invalid("auth.encryption_keys", e.to_string()))?;
    Ok(Prepared {
        catalog,
        redis,
        warnings: review.warnings,
    })
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    /// The delivery engine (None when `delivery.enabled` is false).
    engine: Option<Engine>,
    stats: Arc<Stats>,
    shutdown_timeout: std::time::Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::default()).await
    }

    /// [`Application::build`] on a clock of the caller's (tests move it).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let Prepared {
            catalog,
            redis,
            warnings,
        } = prepare(&settings)?;
        for w in &warnings {
            tracing::warn!(key = w.key, "configuration: {}", w.message);
        }
        // One TLS crypto provider for every TLS client (webhooks, Redis,
        // SMTP); a second call finds it installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = Store::connect(&settings, &redis).await?;
        match store.check_layout().await {
            Ok(()) => {}
            Err(StoreError::Unavailable(cause)) => {
                tracing::warn!(%cause, "redis is not reachable yet; serving 503 until it is")
            }
            Err(e) => return Err(e.into()),
        }
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))?;
        let port = listener.local_addr()?.port();
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shutdown_timeout = settings.server.shutdown_timeout_secs;
        crate::metrics::handle();
        let wake = Arc::new(Notify::new());
        let stats = Arc::new(Stats::new(store.clone(), clock.clone()));
        actix_web::rt::spawn(stats.clone().flush_every(std::time::Duration::from_millis(
            settings.dashboard.stats_flush_ms.get(),
        )));
        let engine = settings.delivery.enabled.then(|| {
            Engine::start(
                store.clone(),
                &settings,
                wake.clone(),
                clock.clone(),
                stats.clone(),
            )
        });
        let resolver = TargetResolver::new(
            settings.delivery.allow_private_targets,
            &settings.delivery.hosts,
        );
        let state = web::Data::new(AppState {
            store,
            catalog,
            settings: Arc::new(settings),
            wake,
            clock,
            resolver,
            stats: stats.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(api::json_errors())
                .wrap(tracing_actix_web::TracingLogger::<
                    crate::telemetry::RequestSpan,
                >::new())
                .configure(api::configure)
        })
        .workers(workers)
        .shutdown_timeout(shutdown_timeout)
        // Signals are handled in `run_until_stopped`, which stops the
        // delivery engine gracefully too (actix's own handling would stop
        // the whole actor system, engine included, mid-delivery).
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            engine,
            stats,
            shutdown_timeout: std::time::Duration::from_secs(shutdown_timeout),
        })
    }

    /// The delivery engine, if this process runs one.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped. On SIGTERM/SIGINT the HTTP server and the
    /// delivery engine stop together: no new connections and no new claims;
    /// queued deliveries go back to the schedule at once; in-flight requests
    /// and deliveries get `server.shutdown_timeout_secs` to finish; every
    /// claim still held then goes back to the schedule, due now.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            engine,
            stats,
            shutdown_timeout,
            ..
        } = self;
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        let stop_engine = async {
            if let Some(engine) = &engine {
                engine.shutdown(shutdown_timeout).await;
            }
            // The last counts, so a rolling restart leaves no gap.
            if let Err(e) = stats.flush().await {
                tracing::warn!(error = %e, "could not write the last dashboard statistics");
            }
        };
        tokio::select! {
            served = &mut server => {
                stop_engine.await;
                served
            }
            signal = shutdown_signal() => {
                tracing::info!("{signal} received; shutting down gracefully");
                // The server future drives the stop, so all three run together.
                let (_, served, ()) = tokio::join!(handle.stop(true), server, stop_engine);
                served
            }
        }
    }
}
