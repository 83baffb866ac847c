//! A validated event, ready to be stored exactly as it arrived.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::catalog::Catalog;
use super::{parse_id, Invalid};

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 422: a field is wrong.
    Invalid(Invalid),
    /// 413: the payload is larger than the configured limit.
    TooLarge { limit: usize, actual: usize },
}

impl From<Invalid> for Rejection {
    fn from(i: Invalid) -> Self {
        Rejection::Invalid(i)
    }
}

/// The limits ingest enforces; from configuration.
#[derive(Debug, Clone, Copy)]
pub struct IngestRules {
    pub max_payload_bytes: usize,
    pub retention: Duration,
    pub max_future_skew: Duration,
}

/// An event as submitted, fields still unchecked.
#[derive(Debug, Clone, Copy)]
pub struct Submitted<'a> {
    pub event_type: &'a str,
    pub account_id: &'a str,
    pub payload: &'a RawValue,
    pub occurred_at: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

/// An event that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: Uuid,
    pub account_id: Uuid,
    pub event_type: String,
    /// When it happened, ms since the epoch (defaults to receipt time).
    pub occurred_at_ms: i64,
    /// The payload's JSON text, byte for byte as received.
    pub payload: String,
    pub idempotency_key: Option<String>,
    /// Hash of what the client sent, to tell a retry (same fingerprint)
    /// from a reuse of the key for a different event (409).
    pub fingerprint: String,
}

/// Checks `s` and makes a [`NewEvent`] received at `now`.
pub fn accept(
    s: Submitted<'_>,
    catalog: &Catalog,
    rules: &IngestRules,
    now: DateTime<Utc>,
) -> Result<NewEvent, Rejection> {
    let account_id = parse_id(s.account_id)
        .ok_or_else(|| Invalid::new("account_id", "must be an account id (a UUID)"))?;
    if !catalog.contains(s.event_type) {
        return Err(Invalid::new("type", format!("unknown event type `{}`", s.event_type)).into());
    }
    let raw = s.payload.get();
    if raw.len() > rules.max_payload_bytes {
        return Err(Rejection::TooLarge {
            limit: rules.max_payload_bytes,
            actual: raw.len(),
        });
    }
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| Invalid::new("payload", format!("is not valid JSON: {e}")))?;
    catalog.validate_payload(s.event_type, &value)?;

    let occurred_at_ms = match s.occurred_at {
        None => now.timestamp_millis(),
        Some(text) => check_occurred_at(text, rules, now)?,
    };
    let idempotency_key = s.idempotency_key.map(check_idempotency_key).transpose()?;

    let mut h = Sha256::new();
    for part in [s.event_type, s.account_id, s.occurred_at.unwrap_or(""), raw] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();

    Ok(NewEvent {
        id: Uuid::now_v7(),
        account_id,
        event_type: s.event_type.to_owned(),
        occurred_at_ms,
        payload: raw.to_owned(),
        idempotency_key,
        fingerprint,
    })
}

fn check_occurred_at(text: &str, rules: &IngestRules, now: DateTime<Utc>) -> Result<i64, Invalid> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| Invalid::new("occurred_at", "must be an RFC 3339 timestamp"))?
        .with_timezone(&Utc);
    let oldest = now - chrono::Duration::from_std(rules.retention).unwrap_or(chrono::Duration::MAX);
    let newest = now + chrono::Duration::from_std(rules.max_future_skew).unwrap_or_default();
    if at <= oldest {
        return Err(Invalid::new(
            "occurred_at",
            "is older than the archive's retention",
        ));
    }
    if at > newest {
        return Err(Invalid::new("occurred_at", "lies too far in the future"));
    }
    Ok(at.timestamp_millis())
}

/// An `Idempotency-Key`: 1 to 255 printable ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<String, Invalid> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(Invalid::new(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"),
        ));
    }
    if !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Invalid::new("idempotency_key", "must be printable ASCII"));
    }
    Ok(key.to_owned())
}

/// Milliseconds since the epoch as RFC 3339 with milliseconds, UTC (`Z`).
pub fn format_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> IngestRules {
        IngestRules {
            max_payload_bytes: 64,
            retention: Duration::from_secs(30 * 86_400),
            max_future_skew: Duration::from_secs(300),
        }
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn submit<'a>(account: &'a str, payload: &'a RawValue) -> Submitted<'a> {
        Submitted {
            event_type: "customer.created",
            account_id: account,
            payload,
            occurred_at: None,
            idempotency_key: None,
        }
    }

    #[test]
    fn accepted_events_keep_the_payload_text_exactly() {
        let account = Uuid::now_v7().to_string();
        let p = raw(r#"{ "customer_id" : "c1", "name": "Zoë" }"#);
        let now = Utc::now();
        let e = accept(
            submit(&account, &p),
            &Catalog::new(&[]).unwrap(),
            &rules(),
            now,
        )
        .unwrap();
        assert_eq!(e.payload, r#"{ "customer_id" : "c1", "name": "Zoë" }"#);
        assert_eq!(e.occurred_at_ms, now.timestamp_millis());
        assert_eq!(e.id.get_version_num(), 7);
    }

    #[test]
    fn oversized_payloads_are_too_large_not_invalid() {
        let account = Uuid::now_v7().to_string();
        let big = format!(r#"{{"customer_id": "{}"}}"#, "x".repeat(64));
        let p = raw(&big);
        let r = accept(
            submit(&account, &p),
            &Catalog::new(&[]).unwrap(),
            &rules(),
            Utc::now(),
        );
        assert!(matches!(r, Err(Rejection::TooLarge { limit: 64, .. })));
    }

    #[test]
    fn occurred_at_must_lie_inside_the_window() {
        let now = Utc::now();
        assert!(check_occurred_at("2020-01-01T00:00:00Z", &rules(), now).is_err());
        let soon = (now + chrono::Duration::seconds(60)).to_rfc3339();
        assert!(check_occurred_at(&soon, &rules(), now).is_ok());
        let later = (now + chrono::Duration::hours(1)).to_rfc3339();
        assert!(check_occurred_at(&later, &rules(), now).is_err());
        assert!(check_occurred_at("yesterday", &rules(), now).is_err());
    }

    #[test]
    fn fingerprints_tell_a_retry_from_a_different_event() {
        let account = Uuid::now_v7().to_string();
        let c = Catalog::new(&[]).unwrap();
        let a = raw(r#"{"customer_id": "c1"}"#);
        let b = raw(r#"{"customer_id": "c2"}"#);
        let fa1 = accept(submit(&account, &a), &c, &rules(), Utc::now()).unwrap();
        let fa2 = accept(submit(&account, &a), &c, &rules(), Utc::now()).unwrap();
        let fb = accept(submit(&account, &b), &c, &rules(), Utc::now()).unwrap();
        assert_eq!(fa1.fingerprint, fa2.fingerprint);
        assert_ne!(fa1.fingerprint, fb.fingerprint);
        assert_ne!(fa1.id, fa2.id);
    }

    #[test]
    fn idempotency_keys_are_printable_and_bounded() {
        assert!(check_idempotency_key("order-42 retry").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("a\nb").is_err());
        assert!(check_idempotency_key(&"k".repeat(256)).is_err());
    }

    #[test]
    fn timestamps_print_with_milliseconds_in_utc() {
        assert_eq!(format_ms(1_714_653_086_257), "2024-05-02T12:31:26.257Z");
    }
}
