//! Configuration: layered files chosen by `COURIER_ENV`, overridden by
//! `COURIER__SECTION__KEY` environment variables, validated once at start-up.
//!
//! Every key is documented in `config/default.toml`; the field comments here
//! say why a key exists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// Why the configuration cannot be used; names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}` is invalid: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub events: EventSettings,
    pub delivery: DeliverySettings,
    pub smtp: SmtpSettings,
    pub email: EmailSettings,
    pub log: LogSettings,
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
    pub command_timeout_ms: u64,
    /// Bounds connection establishment for the same reason.
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Keys of the platform's own services; secret.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub admin_keys: Vec<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Events larger than this are refused with 413.
    pub max_payload_bytes: usize,
    /// Items per batch request.
    pub max_batch_events: usize,
    /// Whole batch request body.
    pub max_batch_body_bytes: usize,
    /// Body of every other JSON endpoint.
    pub max_body_bytes: usize,
    /// Keeps one account from growing the fan-out without bound.
    pub max_subscriptions_per_account: usize,
    /// Keeps one subscription's routing entries bounded.
    pub max_event_types_per_subscription: usize,
    /// Page size when the client does not ask for one.
    pub default_page_size: usize,
    /// Largest page a client may ask for.
    pub max_page_size: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Archive retention; events and their index entries expire after it.
    pub retention_days: u32,
    /// How long a repeated Idempotency-Key returns the first event.
    pub idempotency_ttl_hours: u32,
    /// Tolerated clock skew of publishers.
    pub max_future_skew_secs: u64,
    /// Operator-defined event types added to the built-in catalogue.
    #[serde(default)]
    pub extra_types: Vec<ExtraEventType>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Allows loopback/private webhook targets (local testing only).
    pub allow_private_targets: bool,
    /// One webhook request's deadline (webhook claims are leased for three
    /// times this plus 2 s).
    pub timeout_ms: u64,
    /// Delays between attempts, e.g. `["5s", "30s", "2m"]`.
    pub retry_schedule: Vec<String>,
    /// Random spread of each delay (0.1 = ±10 %), so retries do not align.
    pub jitter: f64,
    /// Runs the delivery engine in this process (off for an API-only node).
    pub enabled: bool,
    /// Consecutive failures that open an endpoint's circuit.
    pub breaker_failure_threshold: u32,
    /// First open period of a circuit, ms; doubles on each failed probe.
    pub breaker_cooldown_ms: u64,
    /// Longest open period, ms.
    pub breaker_max_cooldown_ms: u64,
    /// Concurrent requests to one endpoint.
    pub endpoint_concurrency: usize,
    /// Open webhook connections per process, all endpoints together.
    pub max_connections: usize,
    /// Most deliveries queued in memory per endpoint.
    pub endpoint_queue: usize,
    /// Deliveries claimed per shard per scheduling round.
    pub claim_batch: usize,
    /// Deliveries claimed and unfinished per process.
    pub max_in_flight: usize,
    /// Longest pause between schedule checks, ms (work from other replicas
    /// is noticed within it; this replica's own ingest wakes it at once).
    pub poll_interval_ms: u64,
    /// An endpoint without a success for this long is disabled, hours.
    pub disable_after_hours: u64,
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
    /// (email claims are leased for three times this plus 2 s).
    pub timeout_ms: u64,
    /// Most SMTP connections open at once (the pool size): also the most
    /// messages in flight.
    pub max_connections: u32,
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
    pub digest_latest: usize,
    /// A digest holding this many events goes out before its period ends.
    pub digest_max_events: usize,
    /// The account is emailed when an endpoint's circuit has been open (the
    /// endpoint failing) for this many minutes.
    pub circuit_alert_minutes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// Filter used when `RUST_LOG` is unset.
    pub level: String,
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
        let settings: Settings = config::Config::builder()
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

    /// Checks every value a running service depends on.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.server.host.trim().is_empty() {
            return Err(invalid("server.host", "must not be empty"));
        }
        url::Url::parse(&self.server.public_base_url)
            .map_err(|e| invalid("server.public_base_url", e.to_string()))?;
        for (i, seed) in self.redis.url.expose_secret().split(',').enumerate() {
            let parsed = url::Url::parse(seed.trim())
                .map_err(|e| invalid("redis.url", format!("seed {} is not a URL: {e}", i + 1)))?;
            if !matches!(parsed.scheme(), "redis" | "rediss") {
                return Err(invalid("redis.url", "scheme must be redis:// or rediss://"));
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
        if self.redis.command_timeout_ms == 0 || self.redis.connect_timeout_ms == 0 {
            return Err(invalid(
                "redis.command_timeout_ms",
                "timeouts must be positive",
            ));
        }
        let l = &self.limits;
        if l.max_payload_bytes == 0 {
            return Err(invalid("limits.max_payload_bytes", "must be positive"));
        }
        if l.max_batch_events == 0 {
            return Err(invalid("limits.max_batch_events", "must be positive"));
        }
        if l.max_body_bytes < 1024 {
            return Err(invalid("limits.max_body_bytes", "must be at least 1024"));
        }
        if l.max_batch_body_bytes < l.max_payload_bytes {
            return Err(invalid(
                "limits.max_batch_body_bytes",
                "must be at least limits.max_payload_bytes",
            ));
        }
        if l.default_page_size == 0 || l.default_page_size > l.max_page_size {
            return Err(invalid(
                "limits.default_page_size",
                "must be between 1 and limits.max_page_size",
            ));
        }
        if l.max_subscriptions_per_account == 0 || l.max_event_types_per_subscription == 0 {
            return Err(invalid(
                "limits.max_subscriptions_per_account",
                "must be positive",
            ));
        }
        if self.events.retention_days == 0 {
            return Err(invalid("events.retention_days", "must be at least 1"));
        }
        if self.events.idempotency_ttl_hours == 0 {
            return Err(invalid(
                "events.idempotency_ttl_hours",
                "must be at least 1",
            ));
        }
        let d = &self.delivery;
        if d.timeout_ms == 0 {
            return Err(invalid("delivery.timeout_ms", "must be positive"));
        }
        if !(0.0..=0.5).contains(&d.jitter) {
            return Err(invalid("delivery.jitter", "must be between 0 and 0.5"));
        }
        if d.breaker_failure_threshold == 0 {
            return Err(invalid(
                "delivery.breaker_failure_threshold",
                "must be at least 1",
            ));
        }
        if d.breaker_cooldown_ms == 0 || d.breaker_max_cooldown_ms < d.breaker_cooldown_ms {
            return Err(invalid(
                "delivery.breaker_max_cooldown_ms",
                "cooldowns must be positive and the maximum at least the first",
            ));
        }
        if d.endpoint_concurrency == 0 {
            return Err(invalid(
                "delivery.endpoint_concurrency",
                "must be at least 1",
            ));
        }
        if d.claim_batch == 0 || d.max_in_flight == 0 {
            return Err(invalid(
                "delivery.max_in_flight",
                "claim_batch and max_in_flight must be at least 1",
            ));
        }
        if d.poll_interval_ms == 0 {
            return Err(invalid("delivery.poll_interval_ms", "must be positive"));
        }
        if d.disable_after_hours == 0 {
            return Err(invalid(
                "delivery.disable_after_hours",
                "must be at least 1",
            ));
        }
        self.retry_schedule()?;
        crate::email::transport::SmtpConfig::from_settings(&self.smtp)
            .map_err(|m| invalid("smtp.url", m))?;
        if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "smtp.from",
                "must be an address such as `courier <courier@example.com>`",
            ));
        }
        if self.smtp.timeout_ms == 0 {
            return Err(invalid("smtp.timeout_ms", "must be positive"));
        }
        if self.smtp.max_connections == 0 {
            return Err(invalid("smtp.max_connections", "must be at least 1"));
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
        if e.digest_latest == 0 || e.digest_latest > 1_000 {
            return Err(invalid("email.digest_latest", "must be 1 to 1000"));
        }
        if e.digest_max_events == 0 || e.digest_max_events > 100_000 {
            return Err(invalid("email.digest_max_events", "must be 1 to 100000"));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be \"text\" or \"json\""));
        }
        Ok(())
    }

    /// The retry delays, parsed.
    pub fn retry_schedule(&self) -> Result<Vec<Duration>, SettingsError> {
        if self.delivery.retry_schedule.is_empty() {
            return Err(invalid(
                "delivery.retry_schedule",
                "needs at least one delay",
            ));
        }
        self.delivery
            .retry_schedule
            .iter()
            .map(|s| parse_duration(s).map_err(|m| invalid("delivery.retry_schedule", m)))
            .collect()
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.events.retention_days) * 86_400)
    }

    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.events.idempotency_ttl_hours) * 3_600)
    }
}

/// Parses `"5s"`, `"30m"`, `"2h"`, `"1d"` or `"250ms"`.
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
            assert_eq!(s.retry_schedule().unwrap().len(), 12, "{env}");
        }
        let test = Settings::load_from(&config_dir(), "test").unwrap();
        assert_eq!(
            test.retry_schedule().unwrap()[0],
            Duration::from_millis(100)
        );
    }

    #[test]
    fn validation_names_the_bad_key() {
        let mut s = Settings::load_from(&config_dir(), "test").unwrap();
        s.redis.key_prefix = "bad{prefix".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("redis.key_prefix"), "{err}");

        let mut s = Settings::load_from(&config_dir(), "test").unwrap();
        s.delivery.retry_schedule = vec!["5s".into(), "soon".into()];
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("delivery.retry_schedule"), "{err}");

        let mut s = Settings::load_from(&config_dir(), "test").unwrap();
        s.smtp.url = SecretString::from("http://mail");
        assert!(s.validate().unwrap_err().to_string().contains("smtp.url"));
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
