//! A test notification: one signed `courier.test` request to a webhook
//! subscription, sent now with the webhook client's settings; the answer is
//! reported and nothing is recorded. `POST /v1/subscriptions/{id}/test` and
//! the dashboard's "send test" both send through [`send_test`].

use std::num::NonZeroUsize;

use uuid::Uuid;

use super::notification;
use super::resolve::TargetResolver;
use super::sender::Sender;
use super::signing::webhook_headers;
use crate::domain::subscription::{Channel, Subscription};
use crate::settings::DeliverySettings;

/// The payload of every test notification.
const TEST_PAYLOAD: &str = r#"{"message":"This is a test notification from courier."}"#;

/// How the endpoint answered a test notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestAnswer {
    /// True for a 2xx answer.
    pub success: bool,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    /// The start of the response body.
    pub response: Option<String>,
    pub error: Option<String>,
    /// The `webhook-id` the test carried.
    pub webhook_id: Uuid,
}

/// Only webhook subscriptions can be sent a test notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("test notifications are for webhook subscriptions")]
pub struct NotAWebhook;

/// Sends a signed `courier.test` notification to `sub`'s webhook at
/// `now_ms` (its own client, one connection, `delivery.timeout_ms`, the
/// same target checks as deliveries) and reports the answer.
pub async fn send_test(
    sub: &Subscription,
    settings: &DeliverySettings,
    resolver: &TargetResolver,
    now_ms: i64,
) -> Result<TestAnswer, NotAWebhook> {
    let Channel::Webhook { url } = &sub.channel else {
        return Err(NotAWebhook);
    };
    let webhook_id = Uuid::now_v7();
    let body = notification::body(
        &sub.id,
        &Uuid::now_v7(),
        notification::TEST_EVENT_TYPE,
        now_ms,
        &webhook_id,
        TEST_PAYLOAD,
    );
    let headers = webhook_headers(sub, &webhook_id.to_string(), now_ms, body.as_bytes());
    let sender = Sender::new(
        settings.timeout_ms.get(),
        settings.allow_private_targets,
        resolver.clone(),
        NonZeroUsize::MIN,
    );
    let r = sender.post(url, &headers, body.into()).await;
    Ok(TestAnswer {
        success: r.error.is_none() && r.status.is_some_and(|s| (200..300).contains(&s)),
        status_code: r.status,
        duration_ms: r.duration_ms,
        response: r.response,
        error: r.error,
        webhook_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::subscription::Digest;
    use crate::settings::Settings;

    fn settings() -> DeliverySettings {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut s = Settings::load_from(&dir, "test").unwrap().delivery;
        s.allow_private_targets = false;
        s
    }

    fn subscription(channel: Channel) -> Subscription {
        Subscription {
            id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            event_types: vec!["*".into()],
            channel,
            description: None,
            enabled: true,
            secret: Some(crate::domain::api_key::new_signing_secret()),
            previous_secret: None,
            previous_secret_expires_at_ms: None,
            rate_limit: None,
            disabled_reason: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 1,
        }
    }

    #[actix_web::test]
    async fn only_webhooks_are_tested() {
        let email = subscription(Channel::Email {
            address: "ops@example.com".into(),
            digest: Digest::Immediate,
        });
        let r = send_test(&email, &settings(), &TargetResolver::default(), 0).await;
        assert_eq!(r, Err(NotAWebhook));
    }

    #[actix_web::test]
    async fn a_test_is_refused_where_a_delivery_would_be() {
        let sub = subscription(Channel::Webhook {
            url: "http://127.0.0.1:9/hook".into(),
        });
        let r = send_test(&sub, &settings(), &TargetResolver::default(), 0)
            .await
            .unwrap();
        assert!(!r.success);
        assert_eq!(r.status_code, None);
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.contains("blocked target")),
            "{r:?}"
        );
    }
}
