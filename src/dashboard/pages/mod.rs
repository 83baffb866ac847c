//! The account pages and their forms. Each handler reads through the same
//! store calls (and, for writes, the same functions) as the API, shapes rows
//! for its template and renders; a write answers 303 back to the page.
//! Another account's ids are "not found", exactly as in the API.
//!
//! This module holds what several pages show (a subscription's row, a
//! delivery's row); `subscription_pages`, `subscription_actions`,
//! `delivery_pages`, `event_pages` and `catalog` hold the pages.

mod catalog;
mod delivery_pages;
mod event_pages;
mod subscription_actions;
mod subscription_pages;

pub use catalog::{event_types, notices};
pub use delivery_pages::{delivery, retry};
pub use event_pages::{event, events, replay};
pub use subscription_actions::{
    confirm_delete, delete, recover, rotate_secret, secret_page, send_test, set_enabled,
};
pub use subscription_pages::{overview, subscription};

use serde::Deserialize;
use uuid::Uuid;

use super::error::PageError;
use super::session::Viewer;
use super::view::when;
use crate::api::{AppState, PageQuery};
use crate::delivery::breaker::BreakerState;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::parse_id;
use crate::domain::subscription::{Channel, Subscription};
use crate::store::DeliveryRecord;

/// `?cursor=` of a listing page.
#[derive(Debug, Deserialize)]
pub struct CursorQuery {
    cursor: Option<String>,
}

impl CursorQuery {
    fn page(&self) -> PageQuery {
        PageQuery {
            limit: None,
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
        }
    }
}

/// A subscription as the pages show it.
pub struct SubRow {
    id: Uuid,
    /// `webhook` or `email`.
    kind: &'static str,
    /// The URL or the address (and digest).
    target: String,
    description: Option<String>,
    event_types: String,
    enabled: bool,
    disabled_reason: Option<String>,
    /// `closed`, `open`, `half-open`, or `—` for email.
    circuit: &'static str,
    circuit_detail: Option<String>,
    last_error: Option<String>,
}

impl SubRow {
    fn new(s: &Subscription, circuit: Option<BreakerState>, last_error: Option<String>) -> Self {
        let (kind, target) = match &s.channel {
            Channel::Webhook { url } => ("webhook", url.clone()),
            Channel::Email { address, digest } => {
                ("email", format!("{address} ({})", digest.as_str()))
            }
        };
        let (circuit, circuit_detail) = match circuit {
            None => ("n/a", None),
            Some(BreakerState::Closed {
                consecutive_failures: 0,
            }) => ("closed", None),
            Some(BreakerState::Closed {
                consecutive_failures: n,
            }) => ("closed", Some(format!("{n} failures in a row"))),
            Some(BreakerState::Open { until_ms, .. }) => {
                ("open", Some(format!("probe after {}", when(until_ms))))
            }
            Some(BreakerState::HalfOpen { .. }) => ("half-open", Some("probe under way".into())),
        };
        Self {
            id: s.id,
            kind,
            target,
            description: s.description.clone(),
            event_types: s.event_types.join(", "),
            enabled: s.enabled,
            disabled_reason: s.disabled_reason.clone(),
            circuit,
            circuit_detail,
            last_error,
        }
    }
}

/// The circuit of a webhook subscription's endpoint (None for email).
async fn circuit_of(st: &AppState, s: &Subscription) -> Result<Option<BreakerState>, PageError> {
    match &s.channel {
        Channel::Webhook { url } => {
            let state = st.store.endpoint_state(url).await?;
            Ok(Some(state.circuit.state(st.clock.now_ms())))
        }
        Channel::Email { .. } => Ok(None),
    }
}

/// A delivery as a table row.
pub struct DeliveryRow {
    id: Uuid,
    event_id: Uuid,
    event_type: String,
    subscription_id: Uuid,
    status: DeliveryStatus,
    attempts: u32,
    created: String,
    next_attempt: Option<String>,
    replay: bool,
    error: Option<String>,
}

impl From<DeliveryRecord> for DeliveryRow {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            subscription_id: d.subscription_id,
            next_attempt: d
                .next_attempt_at_ms
                .filter(|_| d.status == DeliveryStatus::Pending)
                .map(when),
            status: d.status,
            attempts: d.attempts,
            created: when(d.created_at_ms),
            replay: d.replay,
            error: d.error,
        }
    }
}

/// How a subscription is named in a list: its description, or its
/// channel's target.
fn label(s: &Subscription) -> String {
    match (&s.description, &s.channel) {
        (Some(d), _) => d.clone(),
        (None, Channel::Webhook { url }) => url.clone(),
        (None, Channel::Email { address, .. }) => address.clone(),
    }
}

async fn load_subscription(
    st: &AppState,
    viewer: &Viewer,
    id: &str,
) -> Result<Subscription, PageError> {
    let id = parse_id(id).ok_or(PageError::NotFound("subscription"))?;
    st.store
        .get_subscription(&viewer.account.id, &id)
        .await?
        .ok_or(PageError::NotFound("subscription"))
}

/// An optional form time, 400 when it is not one.
pub(super) fn time_field(name: &str, text: Option<&str>) -> Result<Option<i64>, PageError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => super::view::parse_time_input(t).map(Some).ok_or_else(|| {
            PageError::BadRequest(format!(
                "{name} must be a time such as 2026-11-29T18:00 (UTC)"
            ))
        }),
    }
}
