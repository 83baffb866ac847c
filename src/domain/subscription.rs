//! Subscriptions: which event types an account wants, and where they go.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::account::EmailAddress;
use super::catalog::{Catalog, WILDCARD};
use super::target::WebhookUrl;
use super::{check_text, Invalid};

/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Channel {
    /// A signed HTTP POST to `url`.
    Webhook { url: String },
    /// An email to `address`, one per event or gathered into a digest.
    Email {
        address: String,
        #[serde(default)]
        digest: Digest,
    },
}

/// How often an email subscription is written to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Digest {
    /// One message per event.
    #[default]
    Immediate,
    /// One message per clock hour (UTC) with that hour's events.
    Hourly,
    /// One message per day (UTC) with that day's events.
    Daily,
}

impl Digest {
    pub fn as_str(&self) -> &'static str {
        match self {
            Digest::Immediate => "immediate",
            Digest::Hourly => "hourly",
            Digest::Daily => "daily",
        }
    }

    /// The end of the period `now_ms` falls in (ms since the epoch): when a
    /// digest holding an event that arrived at `now_ms` is sent. `None` for
    /// immediate delivery.
    pub fn period_end(&self, now_ms: i64) -> Option<i64> {
        let len = match self {
            Digest::Immediate => return None,
            Digest::Hourly => 3_600_000,
            Digest::Daily => 86_400_000,
        };
        Some((now_ms.div_euclid(len) + 1) * len)
    }
}

impl Channel {
    pub fn is_webhook(&self) -> bool {
        matches!(self, Channel::Webhook { .. })
    }
}

/// What subscription input is checked against; from configuration.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionRules {
    pub allow_private_targets: bool,
    pub max_event_types: usize,
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: Uuid,
    pub account_id: Uuid,
    /// Sorted, unique; `["*"]` for every type.
    pub event_types: Vec<String>,
    pub channel: Channel,
    pub description: Option<String>,
    pub enabled: bool,
    /// `whsec_…` signing secret of webhook subscriptions.
    pub secret: Option<String>,
    /// The secret before the last rotation; it keeps signing alongside the
    /// new one until `previous_secret_expires_at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at_ms: Option<i64>,
    /// Most notifications per second to this subscription (None: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Why courier disabled it (410 Gone, days of failure), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Bumped on every change; writes check it (optimistic concurrency).
    pub version: u64,
}

/// Normalises a list of event types: known names or `*`, at most `max`,
/// sorted and without repeats; `*` with anything else is just `*`.
pub fn check_event_types(
    types: &[String],
    catalog: &Catalog,
    max: usize,
) -> Result<Vec<String>, Invalid> {
    if types.is_empty() {
        return Err(Invalid::new(
            "event_types",
            "must name at least one event type or \"*\"",
        ));
    }
    if types.len() > max {
        return Err(Invalid::new(
            "event_types",
            format!("may name at most {max} types"),
        ));
    }
    for t in types {
        if t != WILDCARD && !catalog.contains(t) {
            return Err(Invalid::new(
                "event_types",
                format!("unknown event type `{t}`"),
            ));
        }
    }
    if types.iter().any(|t| t == WILDCARD) {
        return Ok(vec![WILDCARD.to_owned()]);
    }
    let mut out = types.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Validates a channel and returns it normalised.
pub fn check_channel(channel: &Channel, rules: &SubscriptionRules) -> Result<Channel, Invalid> {
    Ok(match channel {
        Channel::Webhook { url } => Channel::Webhook {
            url: WebhookUrl::parse("channel.url", url, rules.allow_private_targets)?
                .as_str()
                .to_owned(),
        },
        Channel::Email { address, digest } => Channel::Email {
            address: EmailAddress::parse("channel.address", address)?
                .as_str()
                .to_owned(),
            digest: *digest,
        },
    })
}

impl Subscription {
    /// Whether events of `event_type` are delivered to it.
    pub fn takes(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == "*" || t == event_type)
    }

    /// The secrets that sign a notification at `now_ms`: the current one,
    /// and the previous one during its grace period.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut out: Vec<&str> = self.secret.iter().map(String::as_str).collect();
        if let (Some(prev), Some(until)) =
            (&self.previous_secret, self.previous_secret_expires_at_ms)
        {
            if now_ms < until {
                out.push(prev);
            }
        }
        out
    }
}

/// Most notifications per second a subscription may ask for.
pub const MAX_RATE_LIMIT: u32 = 100_000;

/// Validates an optional per-subscription rate limit.
pub fn check_rate_limit(rate: Option<u32>) -> Result<Option<u32>, Invalid> {
    match rate {
        Some(0) => Err(Invalid::new("rate_limit", "must be at least 1 per second")),
        Some(r) if r > MAX_RATE_LIMIT => Err(Invalid::new(
            "rate_limit",
            format!("must be at most {MAX_RATE_LIMIT} per second"),
        )),
        other => Ok(other),
    }
}

/// Validates an optional description; blank means none.
pub fn check_description(description: Option<&str>) -> Result<Option<String>, Invalid> {
    match description.map(str::trim) {
        None | Some("") => Ok(None),
        Some(d) => {
            check_text("description", d, MAX_DESCRIPTION_CHARS)?;
            Ok(Some(d.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SubscriptionRules {
        SubscriptionRules {
            allow_private_targets: false,
            max_event_types: 3,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn event_types_are_normalised() {
        let c = Catalog::new(&[]).unwrap();
        assert_eq!(
            check_event_types(
                &strings(&["meter.created", "customer.created", "meter.created"]),
                &c,
                3
            )
            .unwrap(),
            strings(&["customer.created", "meter.created"])
        );
        assert_eq!(
            check_event_types(&strings(&["*", "meter.created"]), &c, 3).unwrap(),
            strings(&["*"])
        );
    }

    #[test]
    fn digest_periods_end_on_the_clock() {
        // 2026-11-29T10:17:05.123Z
        let t = 1_795_947_425_123;
        assert_eq!(Digest::Immediate.period_end(t), None);
        // 11:00:00.000 the same day
        assert_eq!(Digest::Hourly.period_end(t), Some(1_795_950_000_000));
        // midnight after
        assert_eq!(Digest::Daily.period_end(t), Some(1_795_996_800_000));
        // An event at the very start of a period waits for all of it.
        assert_eq!(
            Digest::Hourly.period_end(1_795_950_000_000),
            Some(1_795_953_600_000)
        );
    }

    #[test]
    fn email_channels_default_to_immediate() {
        let c: Channel =
            serde_json::from_str(r#"{"type":"email","address":"a@example.com"}"#).unwrap();
        assert_eq!(
            c,
            Channel::Email {
                address: "a@example.com".into(),
                digest: Digest::Immediate
            }
        );
        let c: Channel =
            serde_json::from_str(r#"{"type":"email","address":"a@example.com","digest":"daily"}"#)
                .unwrap();
        assert!(matches!(
            c,
            Channel::Email {
                digest: Digest::Daily,
                ..
            }
        ));
        assert!(serde_json::from_str::<Channel>(
            r#"{"type":"email","address":"a@example.com","digest":"weekly"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Channel>(
            r#"{"type":"webhook","url":"https://x.example","digest":"daily"}"#
        )
        .is_err());
    }

    #[test]
    fn a_subscription_takes_its_types_or_all_with_a_star() {
        let mut sub = sample();
        sub.event_types = strings(&["customer.created", "meter_data.received"]);
        assert!(sub.takes("meter_data.received"));
        assert!(!sub.takes("hosted_consent.revoked"));
        sub.event_types = strings(&["*"]);
        assert!(sub.takes("hosted_consent.revoked"));
    }

    #[test]
    fn event_types_are_checked() {
        let c = Catalog::new(&[]).unwrap();
        assert!(check_event_types(&[], &c, 3).is_err());
        assert!(check_event_types(&strings(&["meter.exploded"]), &c, 3).is_err());
        assert!(check_event_types(&strings(&["a", "b", "c", "d"]), &c, 3).is_err());
    }

    #[test]
    fn channels_are_validated() {
        let hook = Channel::Webhook {
            url: "https://Example.COM/hook".into(),
        };
        assert_eq!(
            check_channel(&hook, &rules()).unwrap(),
            Channel::Webhook {
                url: "https://example.com/hook".into()
            }
        );
        let local = Channel::Webhook {
            url: "http://127.0.0.1/".into(),
        };
        assert_eq!(
            check_channel(&local, &rules()).unwrap_err().field,
            "channel.url"
        );
        let mail = Channel::Email {
            address: "not-an-address".into(),
            digest: Digest::Immediate,
        };
        assert_eq!(
            check_channel(&mail, &rules()).unwrap_err().field,
            "channel.address"
        );
    }

    #[test]
    fn channels_read_and_write_the_documented_json() {
        let c: Channel =
            serde_json::from_str(r#"{"type": "email", "address": "a@b.example"}"#).unwrap();
        assert_eq!(
            c,
            Channel::Email {
                address: "a@b.example".into(),
                digest: Digest::Immediate
            }
        );
        assert!(serde_json::from_str::<Channel>(r#"{"type": "pigeon"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Channel::Webhook {
                url: "https://x.example/".into()
            })
            .unwrap(),
            r#"{"type":"webhook","url":"https://x.example/"}"#
        );
    }

    fn sample() -> Subscription {
        Subscription {
            id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            event_types: vec!["*".into()],
            channel: Channel::Webhook {
                url: "https://x.example/".into(),
            },
            description: None,
            enabled: true,
            secret: Some("whsec_new".into()),
            previous_secret: Some("whsec_old".into()),
            previous_secret_expires_at_ms: Some(1_000),
            rate_limit: None,
            disabled_reason: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 1,
        }
    }

    #[test]
    fn the_previous_secret_signs_only_during_its_grace_period() {
        let sub = sample();
        assert_eq!(sub.signing_secrets(999), ["whsec_new", "whsec_old"]);
        assert_eq!(sub.signing_secrets(1_000), ["whsec_new"]);
    }

    #[test]
    fn rate_limits_are_bounded() {
        assert_eq!(check_rate_limit(None), Ok(None));
        assert_eq!(check_rate_limit(Some(5)), Ok(Some(5)));
        assert!(check_rate_limit(Some(0)).is_err());
        assert!(check_rate_limit(Some(MAX_RATE_LIMIT + 1)).is_err());
    }

    #[test]
    fn descriptions_reject_header_injection() {
        assert_eq!(check_description(Some("  ")).unwrap(), None);
        assert_eq!(
            check_description(Some(" ops ")).unwrap(),
            Some("ops".into())
        );
        assert!(check_description(Some("x\r\nBcc: evil@example.com")).is_err());
    }
}
