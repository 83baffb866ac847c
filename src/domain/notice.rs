//! Operational notices: what courier tells an account's contact address on
//! its own (a subscription disabled, an endpoint failing for long, the API
//! key rotated). Stored in Redis and sent by the email notifier.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// courier switched a subscription off (410 Gone, days of failure).
    SubscriptionDisabled,
    /// An endpoint's circuit has been open (the endpoint failing) for long.
    CircuitOpen,
    /// The account's API key was replaced.
    ApiKeyRotated,
}

/// One notice, as stored and as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub id: Uuid,
    pub account_id: Uuid,
    pub kind: NoticeKind,
    /// When it happened, ms since the epoch.
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when the endpoint has failed without a success, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<i64>,
    /// The event that records what happened (`api_keys.rotated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
}

impl Notice {
    pub fn new(account_id: Uuid, kind: NoticeKind, at_ms: i64) -> Self {
        Self {
            id: Uuid::now_v7(),
            account_id,
            kind,
            at_ms,
            subscription_id: None,
            endpoint: None,
            reason: None,
            failing_since_ms: None,
            event_id: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a notice serialises")
    }
}
