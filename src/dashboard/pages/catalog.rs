//! The event type catalogue and the account's notices.

use actix_web::{web, HttpResponse};
use askama::Template;
use uuid::Uuid;

use crate::api::AppState;
use crate::dashboard::error::PageError;
use crate::dashboard::session::Viewer;
use crate::dashboard::view::{self, when, Chrome};
use crate::domain::notice::{Notice, NoticeKind};

/// How many notices the notices page shows.
const NOTICES_SHOWN: usize = 100;

/// An event type as the catalogue page shows it.
pub struct TypeRow {
    name: String,
    description: String,
    schema: String,
    example: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/event_types.html")]
struct EventTypesPage {
    c: Chrome,
    types: Vec<TypeRow>,
}

/// `GET /dashboard/event-types`: the catalogue with each schema and
/// example payload.
pub async fn event_types(
    viewer: Viewer,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let types = st
        .catalog
        .iter()
        .map(|t| TypeRow {
            name: t.name.clone(),
            description: t.description.clone(),
            schema: serde_json::to_string_pretty(&t.schema).unwrap_or_default(),
            example: t
                .example
                .as_ref()
                .and_then(|e| serde_json::to_string_pretty(e).ok()),
        })
        .collect();
    view::html(&EventTypesPage {
        c: Chrome::signed_in(&viewer, "event-types"),
        types,
    })
}

/// A notice as the notices page shows it.
pub struct NoticeRow {
    at: String,
    what: &'static str,
    subscription_id: Option<Uuid>,
    endpoint: Option<String>,
    reason: Option<String>,
    failing_since: Option<String>,
    event_id: Option<Uuid>,
}

impl From<Notice> for NoticeRow {
    fn from(n: Notice) -> Self {
        Self {
            at: when(n.at_ms),
            what: match n.kind {
                NoticeKind::SubscriptionDisabled => "Subscription disabled",
                NoticeKind::CircuitOpen => "Endpoint failing (circuit open)",
                NoticeKind::ApiKeyRotated => "API key rotated",
            },
            subscription_id: n.subscription_id,
            endpoint: n.endpoint,
            reason: n.reason,
            failing_since: n.failing_since_ms.map(when),
            event_id: n.event_id,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/notices.html")]
struct NoticesPage {
    c: Chrome,
    notices: Vec<NoticeRow>,
}

/// `GET /dashboard/notices`: what courier told the account's contact.
pub async fn notices(viewer: Viewer, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let notices = st
        .store
        .list_notices(&viewer.account.id, NOTICES_SHOWN)
        .await?;
    view::html(&NoticesPage {
        c: Chrome::signed_in(&viewer, "notices"),
        notices: notices.into_iter().map(NoticeRow::from).collect(),
    })
}
