//! courier: an event notification service.
//!
//! The platform's own services publish events; accounts (the platform's
//! developer customers) subscribe to event types and receive each event by
//! signed webhook or by email. Redis is the only store.
//!
//! Layout:
//! - [`settings`]: layered configuration, validated at start-up.
//! - [`domain`]: pure, validated types: event catalogue and payload schemas,
//!   events, accounts and API keys, subscriptions, webhook target checks.
//!   It reads no settings.
//! - [`store`]: the Redis key layout, Lua scripts and every query.
//! - [`api`]: the HTTP API (actix-web handlers, errors, auth, OpenAPI).
//! - [`dashboard`]: the developer dashboard, HTML pages under `/dashboard`
//!   (sessions in Redis, one-time sign-in links, CSRF, security headers).
//! - [`startup`]: `prepare` checks the configuration (all that `courier
//!   check-config` runs); `Application` runs it, binds a listener and runs
//!   the server until it is stopped.
//! - [`queues`]: `courier queues`, the operators' view of every shard's
//!   queues and their bulk retry and replay.
//! - [`listen`]: `courier listen`, a local webhook receiver that prints and
//!   verifies what it gets (no configuration, no Redis).
//! - [`telemetry`] sets up logging; [`clock`] is the time courier runs on
//!   (tests move it).
//!
//! Which module may use which is checked by a unit test (`layering.rs`):
//! `email` never reaches into `delivery`, `domain` reads no settings,
//! `store` has no `BreakerState`, and test notifications are sent by
//! `delivery::test_send`, not by the API or the dashboard.

pub mod api;
pub mod clock;
pub mod dashboard;
pub mod delivery;
pub mod domain;
pub mod email;
pub mod listen;
pub mod metrics;
pub mod queues;
pub mod secrets;
pub mod settings;
pub mod startup;
pub mod stats;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod layering;
