//! What a subscriber receives, and how its answer is judged. Pure.

use std::time::Duration;

use uuid::Uuid;

use super::retry::RetryPolicy;
use crate::domain::delivery::Outcome;
use crate::domain::event::format_ms;

/// Longest response body kept in an attempt's record.
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// The notification body:
/// `{"subscription_id", "event_id", "event_type", "event_timestamp", "delivery_id", "payload"}`.
/// Every field but the payload is a UUID, a catalogue type name or a
/// timestamp (no characters that need escaping); the payload is the stored
/// JSON text, inserted unchanged.
pub fn body(
    subscription_id: &Uuid,
    event_id: &Uuid,
    event_type: &str,
    occurred_at_ms: i64,
    delivery_id: &Uuid,
    payload: &str,
) -> String {
    debug_assert!(
        crate::domain::catalog::is_valid_type_name(event_type) || event_type == TEST_EVENT_TYPE
    );
    format!(
        r#"{{"subscription_id":"{subscription_id}","event_id":"{event_id}","event_type":"{event_type}","event_timestamp":"{}","delivery_id":"{delivery_id}","payload":{payload}}}"#,
        format_ms(occurred_at_ms)
    )
}

/// Event type of `POST /v1/subscriptions/{id}/test` notifications.
pub const TEST_EVENT_TYPE: &str = "courier.test";

/// How the receiver answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Delivered,
    /// 410: the receiver wants no more; the subscription is disabled.
    Gone,
    /// 429/503 with a usable Retry-After.
    RetryAfter(Duration),
    /// Anything else: another status, a timeout, a connection error.
    Failed,
}

/// Judges an HTTP answer (`None` when no answer came).
pub fn judge(status: Option<u16>, retry_after: Option<Duration>) -> Verdict {
    match status {
        Some(s) if (200..300).contains(&s) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        Some(429 | 503) => retry_after.map_or(Verdict::Failed, Verdict::RetryAfter),
        _ => Verdict::Failed,
    }
}

/// What happens next, after the `attempts_made`-th attempt (this one
/// included) got `verdict` at `now_ms`. `unit` is a uniform random number in
/// [0, 1) for the jitter.
pub fn next_step(
    verdict: Verdict,
    attempts_made: u32,
    policy: &RetryPolicy,
    now_ms: i64,
    unit: f64,
) -> Outcome {
    let delay = match verdict {
        Verdict::Delivered => return Outcome::Success,
        Verdict::Gone => {
            return Outcome::Fail {
                error: "the endpoint answered 410 Gone; the subscription was disabled".into(),
            }
        }
        Verdict::RetryAfter(wait) => policy.delay_with_retry_after(attempts_made, wait),
        Verdict::Failed => policy.delay_after(attempts_made, unit),
    };
    match delay {
        Some(d) => Outcome::Retry {
            due_ms: now_ms + d.as_millis() as i64,
        },
        None => Outcome::Fail {
            error: format!("gave up after {attempts_made} attempts"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(vec![Duration::from_secs(5), Duration::from_secs(30)], 0.1)
    }

    #[test]
    fn the_body_has_the_documented_fields_and_the_payload_verbatim() {
        let (s, e, d) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let payload = r#"{ "meter_id" : "m1", "ü": [1, 2.50] }"#;
        let text = body(&s, &e, "meter.created", 1_714_653_086_257, &d, payload);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["subscription_id"], s.to_string());
        assert_eq!(v["event_id"], e.to_string());
        assert_eq!(v["event_type"], "meter.created");
        assert_eq!(v["event_timestamp"], "2024-05-02T12:31:26.257Z");
        assert_eq!(v["delivery_id"], d.to_string());
        assert!(text.ends_with(&format!(r#""payload":{payload}}}"#)));
        assert_eq!(v.as_object().unwrap().len(), 6);
    }

    #[test]
    fn answers_are_judged() {
        assert_eq!(judge(Some(200), None), Verdict::Delivered);
        assert_eq!(judge(Some(204), None), Verdict::Delivered);
        assert_eq!(judge(Some(301), None), Verdict::Failed);
        assert_eq!(judge(Some(410), None), Verdict::Gone);
        assert_eq!(
            judge(Some(500), Some(Duration::from_secs(9))),
            Verdict::Failed
        );
        assert_eq!(
            judge(Some(503), Some(Duration::from_secs(9))),
            Verdict::RetryAfter(Duration::from_secs(9))
        );
        assert_eq!(judge(Some(429), None), Verdict::Failed);
        assert_eq!(judge(None, None), Verdict::Failed);
    }

    #[test]
    fn failures_retry_until_the_schedule_ends() {
        let p = policy();
        assert_eq!(
            next_step(Verdict::Failed, 1, &p, 1_000, 0.5),
            Outcome::Retry { due_ms: 6_000 }
        );
        assert_eq!(
            next_step(Verdict::RetryAfter(Duration::from_secs(40)), 2, &p, 0, 0.5),
            Outcome::Retry { due_ms: 40_000 }
        );
        assert!(matches!(
            next_step(Verdict::Failed, 3, &p, 0, 0.5),
            Outcome::Fail { .. }
        ));
        assert!(matches!(
            next_step(Verdict::Gone, 1, &p, 0, 0.5),
            Outcome::Fail { .. }
        ));
        assert_eq!(
            next_step(Verdict::Delivered, 3, &p, 0, 0.5),
            Outcome::Success
        );
    }
}
