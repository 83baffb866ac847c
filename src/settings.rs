//! Configuration: layered files chosen by `COURIER_ENV`, overridden by
//! `COURIER__SECTION__KEY` environment variables, validated once at start-up.
//!
//! Every key is documented in `config/default.toml`; the field comments here
//! say why a key exists.
//!
//! Values that could never work cannot be held: counts that must not be
//! zero are `NonZero…`, timeouts and delays are [`PositiveDuration`]s, so a
//! zero is refused while the files are read, with the key named. What
//! depends on several keys is checked by [`Settings::validate`].

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{de, Deserialize, Deserializer};

use crate::domain::catalog::ExtraType;

/// Why the configuration cannot be used; names the offending key.
/// The largest `delivery.claim_batch`.
pub const MAX_CLAIM_BATCH: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file could not be read or parsed, or a value has the wrong type or
    /// is out of its type's range (the message names the key).
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}` is invalid: {message}")]
    Invalid { key: &'static str, message: String },
    /// Values that cannot be right for a production deployment, each with
    /// its key.
    #[error("{}", unfit_message(.0))]
    Unfit(Vec<Finding>),
}

fn unfit_message(findings: &[Finding]) -> String {
    let mut out = String::from("this configuration cannot be right for production:");
    for f in findings {
        out.push_str(&format!("\n  - `{}`: {}", f.key, f.message));
    }
    out
}

/// One remark of [`Settings::review`] on a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub key: &'static str,
    pub message: String,
}

/// What [`Settings::review`] found: values to refuse, values to warn about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Review {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl SettingsError {
    /// The value of `key` cannot work, because of `message`.
    pub fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        SettingsError::Invalid {
            key,
            message: message.into(),
        }
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::invalid(key, message)
}

/// A duration greater than zero. Keys ending in `_ms` hold it as whole
/// milliseconds (`timeout_ms = 15000`); lists such as
/// `delivery.retry_schedule` hold it as text with a unit (`"5s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PositiveDuration(Duration);

impl PositiveDuration {
    /// `ms` milliseconds; None for 0.
    pub fn from_millis(ms: u64) -> Option<Self> {
        (ms > 0).then(|| Self(Duration::from_millis(ms)))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Whole milliseconds (at least 1).
    pub fn as_millis(self) -> u64 {
        self.0.as_millis() as u64
    }
}

impl FromStr for PositiveDuration {
    type Err = String;

    /// Parses `"5s"`, `"30m"`, `"2h"`, `"1d"` or `"250ms"`.
    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text).map(Self)
    }
}

/// From text with a unit: `"5s"`.
impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// For `_ms` keys: a whole number of milliseconds, greater than zero.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<PositiveDuration, D::Error> {
    let ms = u64::deserialize(d)?;
    PositiveDuration::from_millis(ms)
        .ok_or_else(|| de::Error::custom("must be a positive number of milliseconds, not 0"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The environment the configuration was loaded for (`COURIER_ENV`:
    /// `local`, `test`, `production`, …); production is reviewed more
    /// strictly (see [`Settings::review`]).
    #[serde(skip)]
    pub environment: String,
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub events: EventSettings,
    pub delivery: DeliverySettings,
    pub smtp: SmtpSettings,
    pub email: EmailSettings,
    pub log: LogSettings,
    pub dashboard: DashboardSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Interface to bind; `0.0.0.0` inside containers.
    pub host: String,
    /// 0 lets the OS choose (tests run many instances at once).
    pub port: u16,
    /// HTTP workers; 0 = one per core.
    pub workers: usize,
    /// Grace period for in-flight requests and deliveries on shutdown;
    /// deliveries still in flight after it go back to the schedule.
    pub shutdown_timeout_secs: u64,
    /// Base of links shown to people (dashboard, email).
    pub public_base_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// May hold a password, hence secret.
    pub url: SecretString,
    /// Isolates deployments and tests sharing one Redis.
    pub key_prefix: String,
    /// Hash-tag shards; the unit of atomicity and of cluster distribution.
    pub shards: u16,
    /// Bounds every round trip so a dead Redis means a quick 503, not a hang.
    #[serde(deserialize_with = "millis")]
    pub command_timeout_ms: PositiveDuration,
    /// Bounds connection establishment for the same reason.
    #[serde(deserialize_with = "millis")]
    pub connect_timeout_ms: PositiveDuration,
    /// PEM file of the CA(s) that signed the Redis server's certificate, for
    /// a `rediss://` Redis whose certificate is not from a public CA
    /// (self-hosted, some managed services). Replaces the public roots.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Keys of the platform's own services; secret.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub admin_keys: Vec<SecretString>,
    /// Keys (32 bytes, standard base64) that encrypt subscription signing
    /// secrets in Redis: the first seals, all open (rotation). Secret.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub encryption_keys: Vec<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Events larger than this are refused with 413.
    pub max_payload_bytes: NonZeroUsize,
    /// Items per batch request.
    pub max_batch_events: NonZeroUsize,
    /// Whole batch request body.
    pub max_batch_body_bytes: usize,
    /// Body of every other JSON endpoint.
    pub max_body_bytes: usize,
    /// Keeps one account from growing the fan-out without bound.
    pub max_subscriptions_per_account: NonZeroUsize,
    /// Keeps one subscription's routing entries bounded.
    pub max_event_types_per_subscription: NonZeroUsize,
    /// Page size when the client does not ask for one.
    pub default_page_size: NonZeroUsize,
    /// Largest page a client may ask for.
    pub max_page_size: NonZeroUsize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Archive retention; events and their index entries expire after it.
    pub retention_days: NonZeroU32,
    /// How long a repeated Idempotency-Key returns the first event.
    pub idempotency_ttl_hours: NonZeroU32,
    /// Tolerated clock skew of publishers.
    pub max_future_skew_secs: u64,
    /// Operator-defined event types added to the built-in catalogue.
    #[serde(default)]
    pub extra_types: Vec<ExtraEventType>,
}

impl EventSettings {
    /// `extra_types` as the event catalogue takes them.
    pub fn catalog_extras(&self) -> Vec<ExtraType> {
        self.extra_types.iter().map(ExtraType::from).collect()
    }
}

/// An event type added by the operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraEventType {
    pub name: String,
    pub description: String,
    /// JSON Schema of the payload, as a JSON document in a string.
    pub schema: String,
}

impl From<&ExtraEventType> for ExtraType {
    fn from(e: &ExtraEventType) -> Self {
        Self {
            name: e.name.clone(),
            description: e.description.clone(),
            schema: e.schema.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Allows loopback/private webhook targets (local testing only);
    /// link-local and metadata targets are refused regardless.
    pub allow_private_targets: bool,
    /// Static host entries (name → IP address) used before DNS, e.g. to
    /// pin a partner's endpoint; their addresses are checked like DNS
    /// answers.
    #[serde(default)]
    pub hosts: std::collections::HashMap<String, std::net::IpAddr>,
    /// One webhook request's deadline.
    #[serde(deserialize_with = "millis")]
    pub timeout_ms: PositiveDuration,
    /// How long a claimed delivery, digest or operational email is leased,
    /// seconds. The process holding it renews the lease every quarter of
    /// this while it is in its hands, so a live process keeps its claims
    /// however long a send takes, and a dead one's claims return within
    /// this (plus up to a second for the janitor or the next poll).
    pub lease_secs: NonZeroU64,
    /// Delays between attempts, e.g. `["5s", "30s", "2m"]`.
    pub retry_schedule: Vec<PositiveDuration>,
    /// Random spread of each delay (0.1 = ±10 %), so retries do not align.
    pub jitter: f64,
    /// Runs the delivery engine in this process (off for an API-only node).
    pub enabled: bool,
    /// Consecutive failures that open an endpoint's circuit.
    pub breaker_failure_threshold: NonZeroU32,
    /// First open period of a circuit, ms; doubles on each failed probe.
    #[serde(deserialize_with = "millis")]
    pub breaker_cooldown_ms: PositiveDuration,
    /// Longest open period, ms.
    #[serde(deserialize_with = "millis")]
    pub breaker_max_cooldown_ms: PositiveDuration,
    /// Concurrent requests to one endpoint.
    pub endpoint_concurrency: NonZeroUsize,
    /// Open webhook connections per process, all endpoints together.
    pub max_connections: NonZeroUsize,
    /// Most deliveries queued in memory per endpoint (0 would hand every
    /// delivery back forever).
    pub endpoint_queue: NonZeroUsize,
    /// An endpoint's deliverer (its queue and breaker copy) is stopped
    /// after this long without a delivery, seconds.
    pub deliverer_idle_secs: NonZeroU64,
    /// How often each replica's janitor trims the time indexes (an
    /// account's events, a subscription's deliveries) to the retention,
    /// seconds; ingest and outcomes only add to them.
    pub index_trim_secs: NonZeroU64,
    /// Deliveries claimed per shard per scheduling round (at most
    /// [`MAX_CLAIM_BATCH`]).
    pub claim_batch: NonZeroUsize,
    /// Deliveries claimed and unfinished per process.
    pub max_in_flight: NonZeroUsize,
    /// Longest pause between schedule checks, ms (work from other replicas
    /// is noticed within it; this replica's own ingest wakes it at once).
    #[serde(deserialize_with = "millis")]
    pub poll_interval_ms: PositiveDuration,
    /// An endpoint without a success for this long is disabled, hours.
    pub disable_after_hours: NonZeroU64,
    /// How long a rotated-out signing secret keeps signing, hours.
    pub secret_grace_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// May carry credentials, hence secret.
    pub url: SecretString,
    /// Sender address of every email.
    pub from: String,
    /// Deadline of one message: connecting, the SMTP dialogue and the data
    /// (it does not bound any lease: every email claim, deliveries, digests
    /// and operational emails alike, is leased for `delivery.lease_secs`
    /// and renewed while the message is sent).
    #[serde(deserialize_with = "millis")]
    pub timeout_ms: PositiveDuration,
    /// Most SMTP connections open at once (the pool size): also the most
    /// messages in flight.
    pub max_connections: NonZeroU32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Shown in every subject: `[<platform_name>] <event type>`.
    pub platform_name: String,
    /// Largest pretty-printed payload shown in a message, bytes; longer
    /// payloads are cut with a note and a link to the whole event.
    pub max_payload_bytes: usize,
    /// How many of the period's newest events a digest lists one by one.
    pub digest_latest: NonZeroUsize,
    /// A digest holding this many events goes out before its period ends.
    pub digest_max_events: NonZeroUsize,
    /// The account is emailed when an endpoint's circuit has been open (the
    /// endpoint failing) for this many minutes.
    pub circuit_alert_minutes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSettings {
    /// A one-time sign-in link is meant to be followed at once (a button in
    /// the platform's console): the shorter it lives, the less a leaked link
    /// is worth.
    pub link_ttl_secs: NonZeroU64,
    /// A session nobody uses for this long ends (a forgotten browser tab).
    pub session_idle_minutes: NonZeroU64,
    /// A session ends this long after sign-in however busy it is, so a
    /// stolen cookie is worth a bounded time.
    pub session_max_hours: NonZeroU64,
    /// The `frame-ancestors` of the dashboard's Content-Security-Policy:
    /// who may embed it in a frame (`'none'`, or the platform's console
    /// origin so it can show the dashboard inside its own pages).
    pub frame_ancestors: String,
    /// How often each replica adds the statistics it counted (the
    /// dashboard's charts and traffic) to Redis; what a crashed replica had
    /// not added yet is lost (statistics only, never deliveries).
    pub stats_flush_ms: NonZeroU64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// Filter used when `RUST_LOG` is unset.
    pub level: String,
}

/// Loopback or unnamed.
fn host_is_local(host: Option<&str>) -> bool {
    let Some(host) = host else { return true };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

fn list_or_comma_separated<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(d)? {
        Raw::One(s) => s.split(',').map(str::to_owned).collect(),
        Raw::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(SecretString::from)
        .collect())
}

impl Settings {
    /// Loads `config/default.toml`, then `config/<env>.toml`, then the
    /// `COURIER__…` environment, from `dir`; then validates.
    pub fn load_from(dir: &Path, env: &str) -> Result<Self, SettingsError> {
        let mut settings: Settings = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")))
            .add_source(config::File::from(dir.join(format!("{env}.toml"))).required(false))
            .add_source(
                config::Environment::with_prefix("COURIER")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        settings.environment = env.to_owned();
        settings.validate()?;
        Ok(settings)
    }

    /// Loads from `COURIER_CONFIG_DIR` (default `./config`) for the
    /// environment named by `COURIER_ENV` (default `local`).
    pub fn load() -> Result<Self, SettingsError> {
        let dir = std::env::var_os("COURIER_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let env = std::env::var("COURIER_ENV").unwrap_or_else(|_| "local".to_owned());
        Self::load_from(&dir, &env)
    }

    /// In production, what cannot be right (errors: courier refuses to
    /// start) and what is probably wrong (warnings); elsewhere nothing.
    pub fn review(&self) -> Review {
        let mut r = Review::default();
        if self.environment != "production" {
            return r;
        }
        let mut error = |key: &'static str, message: &str| {
            r.errors.push(Finding {
                key,
                message: message.to_owned(),
            })
        };
        if self.auth.encryption_keys.is_empty() {
            error(
                "auth.encryption_keys",
                "no key to encrypt signing secrets with (set COURIER__AUTH__ENCRYPTION_KEYS to `openssl rand -base64 32`)",
            );
        }
        if self.auth.admin_keys.is_empty() {
            error(
                "auth.admin_keys",
                "no admin key: nothing could create accounts or ingest events (set COURIER__AUTH__ADMIN_KEYS)",
            );
        }
        let base = url::Url::parse(&self.server.public_base_url).ok();
        if base.as_ref().is_some_and(|u| host_is_local(u.host_str())) {
            error(
                "server.public_base_url",
                "names this machine: links in emails would lead recipients to their own computer (set COURIER__SERVER__PUBLIC_BASE_URL to the address people reach courier at)",
            );
        }
        if self.delivery.allow_private_targets {
            error(
                "delivery.allow_private_targets",
                "lets accounts make courier call loopback and private addresses; it is for local testing only",
            );
        }
        let from_domain = self.smtp.from.rsplit('@').next().unwrap_or_default();
        if from_domain
            .trim_end_matches('>')
            .eq_ignore_ascii_case("localhost")
        {
            error(
                "smtp.from",
                "is an @localhost address, which recipients' mail servers reject (set COURIER__SMTP__FROM)",
            );
        }
        let mut warn = |key: &'static str, message: &str| {
            r.warnings.push(Finding {
                key,
                message: message.to_owned(),
            })
        };
        if base.as_ref().is_some_and(|u| u.scheme() == "http") {
            warn(
                "server.public_base_url",
                "is not https: dashboard sessions and links travel in clear text",
            );
        }
        let smtp = url::Url::parse(self.smtp.url.expose_secret()).ok();
        if smtp.as_ref().is_some_and(|u| host_is_local(u.host_str())) {
            warn(
                "smtp.url",
                "is a mail server on this machine: right only with a local relay (set COURIER__SMTP__URL)",
            );
        }
        let redis_local = self
            .redis
            .url
            .expose_secret()
            .split(',')
            .filter_map(|seed| url::Url::parse(seed.trim()).ok())
            .any(|u| host_is_local(u.host_str()));
        if redis_local {
            warn(
                "redis.url",
                "is a Redis on this machine (inside a container, usually not the shared one) (set COURIER__REDIS__URL)",
            );
        }
        r
    }

    /// Checks what the types alone cannot: formats, ranges and how keys
    /// relate. Start-up runs it (through `startup::prepare`, with the checks
    /// that need other parts of courier), and so does `courier check-config`.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.server.host.trim().is_empty() {
            return Err(invalid("server.host", "must not be empty"));
        }
        url::Url::parse(&self.server.public_base_url)
            .map_err(|e| invalid("server.public_base_url", e.to_string()))?;
        let ancestors = self.dashboard.frame_ancestors.trim();
        if ancestors.is_empty()
            || ancestors
                .chars()
                .any(|c| c.is_control() || c == ';' || c == ',')
        {
            return Err(invalid(
                "dashboard.frame_ancestors",
                "one or more CSP sources separated by spaces ('none', 'self', https://console.example), without ';' or ','",
            ));
        }
        for (i, seed) in self.redis.url.expose_secret().split(',').enumerate() {
            let parsed = url::Url::parse(seed.trim())
                .map_err(|e| invalid("redis.url", format!("seed {} is not a URL: {e}", i + 1)))?;
            if !matches!(parsed.scheme(), "redis" | "rediss") {
                return Err(invalid("redis.url", "scheme must be redis:// or rediss://"));
            }
            if self.redis.tls_ca_file.is_some() && parsed.scheme() != "rediss" {
                return Err(invalid(
                    "redis.tls_ca_file",
                    "is set but redis.url does not use TLS (rediss://)",
                ));
            }
        }
        let prefix = &self.redis.key_prefix;
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c))
            || prefix.contains('{')
        {
            return Err(invalid(
                "redis.key_prefix",
                "1 to 64 characters of letters, digits, '-', '_', ':' or '.'",
            ));
        }
        if !(1..=1024).contains(&self.redis.shards) {
            return Err(invalid("redis.shards", "must be between 1 and 1024"));
        }
        if !(2..=300).contains(&self.delivery.lease_secs.get()) {
            return Err(invalid(
                "delivery.lease_secs",
                "must be between 2 and 300 seconds",
            ));
        }
        // The claim script passes a batch to one ZREM/ZADD (Lua's argument
        // stack holds a few thousand values).
        if self.delivery.claim_batch.get() > MAX_CLAIM_BATCH {
            return Err(invalid(
                "delivery.claim_batch",
                format!("must be at most {MAX_CLAIM_BATCH}"),
            ));
        }
        let l = &self.limits;
        if l.max_body_bytes < 1024 {
            return Err(invalid("limits.max_body_bytes", "must be at least 1024"));
        }
        if l.max_batch_body_bytes < l.max_payload_bytes.get() {
            return Err(invalid(
                "limits.max_batch_body_bytes",
                "must be at least limits.max_payload_bytes",
            ));
        }
        if l.default_page_size > l.max_page_size {
            return Err(invalid(
                "limits.default_page_size",
                "must not exceed limits.max_page_size",
            ));
        }
        let d = &self.delivery;
        if !(0.0..=0.5).contains(&d.jitter) {
            return Err(invalid("delivery.jitter", "must be between 0 and 0.5"));
        }
        if d.breaker_max_cooldown_ms < d.breaker_cooldown_ms {
            return Err(invalid(
                "delivery.breaker_max_cooldown_ms",
                "must be at least delivery.breaker_cooldown_ms",
            ));
        }
        if d.retry_schedule.is_empty() {
            return Err(invalid(
                "delivery.retry_schedule",
                "needs at least one delay",
            ));
        }
        crate::email::transport::SmtpConfig::from_settings(&self.smtp)
            .map_err(|m| invalid("smtp.url", m))?;
        if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "smtp.from",
                "must be an address such as `courier <courier@example.com>`",
            ));
        }
        let e = &self.email;
        if e.platform_name.trim().is_empty()
            || e.platform_name.chars().count() > 60
            || e.platform_name.chars().any(char::is_control)
        {
            return Err(invalid(
                "email.platform_name",
                "must be 1 to 60 characters without control characters",
            ));
        }
        if e.max_payload_bytes < 256 {
            return Err(invalid("email.max_payload_bytes", "must be at least 256"));
        }
        if e.digest_latest.get() > 1_000 {
            return Err(invalid("email.digest_latest", "must be 1 to 1000"));
        }
        if e.digest_max_events.get() > 100_000 {
            return Err(invalid("email.digest_max_events", "must be 1 to 100000"));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be \"text\" or \"json\""));
        }
        Ok(())
    }

    /// The retry delays.
    pub fn retry_schedule(&self) -> Vec<Duration> {
        self.delivery
            .retry_schedule
            .iter()
            .map(|d| d.get())
            .collect()
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.events.retention_days.get()) * 86_400)
    }

    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.events.idempotency_ttl_hours.get()) * 3_600)
    }
}

/// Parses `"5s"`, `"30m"`, `"2h"`, `"1d"` or `"250ms"`; zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (s, m, h, d or ms)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3_600),
        "d" => Duration::from_secs(n * 86_400),
        _ => return Err(format!("`{text}` has an unknown unit (s, m, h, d or ms)")),
    };
    if d.is_zero() {
        return Err(format!("`{text}` is zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    fn keys_of(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.key).collect()
    }

    #[test]
    fn production_with_the_defaults_is_refused_naming_each_key() {
        let mut s = Settings::load_from(&config_dir(), "production").unwrap();
        let r = s.review();
        assert_eq!(
            keys_of(&r.errors),
            [
                "auth.encryption_keys",
                "auth.admin_keys",
                "server.public_base_url",
                "smtp.from"
            ]
        );
        assert_eq!(
            keys_of(&r.warnings),
            ["server.public_base_url", "smtp.url", "redis.url"]
        );
        // Elsewhere the same values are fine.
        s.environment = "local".into();
        assert_eq!(s.review(), Review::default());
    }

    #[test]
    fn a_production_configuration_set_as_documented_passes_without_warnings() {
        let mut s = Settings::load_from(&config_dir(), "production").unwrap();
        s.auth.admin_keys = vec![SecretString::from("k".to_owned())];
        s.auth.encryption_keys = vec![SecretString::from("x".to_owned())];
        s.server.public_base_url = "https://webhooks.platform.example".into();
        s.smtp.url = SecretString::from("smtps://u:p@mail.platform.example".to_owned());
        s.smtp.from = "Platform <notifications@platform.example>".into();
        s.redis.url = SecretString::from("rediss://redis.internal:6380".to_owned());
        assert_eq!(s.review(), Review::default());
        s.delivery.allow_private_targets = true;
        s.redis.url = SecretString::from("redis://[::1]:6379".to_owned());
        let r = s.review();
        assert_eq!(keys_of(&r.errors), ["delivery.allow_private_targets"]);
        assert_eq!(keys_of(&r.warnings), ["redis.url"]);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn every_shipped_environment_loads_and_validates() {
        for env in ["local", "production", "nonexistent"] {
            let s = Settings::load_from(&config_dir(), env).unwrap();
            assert_eq!(s.retry_schedule().len(), 12, "{env}");
        }
        let test = Settings::load_from(&config_dir(), "test").unwrap();
        assert_eq!(test.retry_schedule()[0], Duration::from_millis(100));
    }

    #[test]
    fn validation_names_the_bad_key() {
        let mut s = Settings::load_from(&config_dir(), "test").unwrap();
        s.redis.key_prefix = "bad{prefix".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("redis.key_prefix"), "{err}");

        let mut s = Settings::load_from(&config_dir(), "test").unwrap();
        s.delivery.retry_schedule.clear();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("delivery.retry_schedule"), "{err}");

        let mut s = Settings::load_from(&config_dir(), "test").unwrap();
        s.redis.tls_ca_file = Some("ca.pem".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("redis.tls_ca_file"), "{err}");

        let mut s = Settings::load_from(&config_dir(), "test").unwrap();
        s.smtp.url = SecretString::from("http://mail");
        assert!(s.validate().unwrap_err().to_string().contains("smtp.url"));
    }

    #[test]
    fn values_that_cannot_work_are_refused_while_reading_naming_the_key() {
        #[derive(Debug, Deserialize)]
        struct Probe {
            #[allow(dead_code)]
            #[serde(deserialize_with = "millis")]
            timeout_ms: PositiveDuration,
            #[allow(dead_code)]
            queue: NonZeroUsize,
            #[allow(dead_code)]
            delays: Vec<PositiveDuration>,
        }
        let read = |toml: &str| {
            config::Config::builder()
                .add_source(config::File::from_str(toml, config::FileFormat::Toml))
                .build()
                .and_then(|c| c.try_deserialize::<Probe>())
                .map_err(|e| SettingsError::from(e).to_string())
        };
        let ok = read("timeout_ms = 5\nqueue = 1\ndelays = [\"5s\"]").unwrap();
        assert_eq!(ok.timeout_ms.get(), Duration::from_millis(5));
        for (toml, key) in [
            ("timeout_ms = 0\nqueue = 1\ndelays = []", "timeout_ms"),
            ("timeout_ms = 5\nqueue = 0\ndelays = []", "queue"),
            (
                "timeout_ms = 5\nqueue = 1\ndelays = [\"5s\", \"soon\"]",
                "delays",
            ),
        ] {
            let err = read(toml).unwrap_err();
            assert!(err.contains(&format!("`{key}")), "{err}");
        }
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let mut s = Settings::load_from(&config_dir(), "test").unwrap();
        s.redis.url = SecretString::from("redis://:hunter2@127.0.0.1:6379");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("test-admin-key"));
    }

    #[test]
    fn admin_keys_accept_a_comma_separated_string() {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(deserialize_with = "list_or_comma_separated")]
            keys: Vec<SecretString>,
        }
        let p: Probe = serde_json::from_str(r#"{"keys": "a, b,,c"}"#).unwrap();
        let keys: Vec<&str> = p.keys.iter().map(|k| k.expose_secret()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }
}
