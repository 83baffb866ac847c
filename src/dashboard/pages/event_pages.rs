//! The events page (by type, time range or id) and an event's page with
//! its payload, deliveries and "Replay".

use actix_web::{web, HttpResponse};
use askama::Template;
use futures_util::future::join_all;
use serde::Deserialize;
use uuid::Uuid;

use super::{label, time_field, DeliveryRow};
use crate::api::{events as api_events, AppState, PageQuery};
use crate::dashboard::error::PageError;
use crate::dashboard::session::Viewer;
use crate::dashboard::view::{self, when, Chrome};
use crate::domain::parse_id;
use crate::store::{EventFilter, EventRecord};

/// `?type=&id=&cursor=` of the events page.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    id: Option<String>,
    /// Occurred at or after (a form time, UTC).
    from: Option<String>,
    /// Occurred at or before.
    to: Option<String>,
    cursor: Option<String>,
}

/// An event as a table row.
pub struct EventRow {
    id: Uuid,
    event_type: String,
    occurred: String,
}

impl From<&EventRecord> for EventRow {
    fn from(e: &EventRecord) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type.clone(),
            occurred: when(e.occurred_at_ms),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/events.html")]
struct EventsPage {
    c: Chrome,
    types: Vec<String>,
    event_type: String,
    /// The time range as typed (to fill the form and the next page's link).
    from: String,
    to: String,
    rows: Vec<EventRow>,
    next: Option<String>,
}

/// `GET /dashboard/events`: the archive, newest first, by type and time
/// range; `?id=` jumps to one event.
pub async fn events(
    viewer: Viewer,
    q: web::Query<EventsQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    if let Some(id) = q.id.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
        let id = parse_id(id).ok_or(PageError::NotFound("event"))?;
        return Ok(view::see_other(format!("/dashboard/events/{id}")));
    }
    let event_type = q.event_type.clone().filter(|t| !t.is_empty());
    if let Some(t) = &event_type {
        if !st.catalog.contains(t) {
            return Err(PageError::BadRequest(format!("unknown event type `{t}`")));
        }
    }
    let (limit, cursor) = st.paging(&PageQuery {
        limit: None,
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
    })?;
    let from_ms = time_field("from", q.from.as_deref())?;
    let to_ms = time_field("to", q.to.as_deref())?;
    let filter = EventFilter {
        event_type: event_type.clone(),
        from_ms,
        to_ms,
        cursor,
        limit,
    };
    let page = st
        .store
        .list_events(&viewer.account.id, &filter, st.clock.now_ms())
        .await?;
    view::html(&EventsPage {
        c: Chrome::signed_in(&viewer, "events"),
        types: st.catalog.iter().map(|t| t.name.clone()).collect(),
        event_type: event_type.unwrap_or_default(),
        from: from_ms.map(view::time_input).unwrap_or_default(),
        to: to_ms.map(view::time_input).unwrap_or_default(),
        rows: page.items.iter().map(EventRow::from).collect(),
        next: page.next.map(|c| c.encode()),
    })
}

#[derive(Template)]
#[template(path = "dashboard/event.html")]
struct EventPage {
    c: Chrome,
    e: EventRow,
    received: String,
    payload: String,
    deliveries: Vec<DeliveryRow>,
    /// Enabled subscriptions taking this type (id, label): where a replay
    /// can go.
    targets: Vec<(Uuid, String)>,
}

/// `GET /dashboard/events/{id}`: the payload and its deliveries.
pub async fn event(
    viewer: Viewer,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let account = viewer.account.id;
    let id = parse_id(&id).ok_or(PageError::NotFound("event"))?;
    let e = st
        .store
        .get_event(&account, &id, st.clock.now_ms())
        .await?
        .ok_or(PageError::NotFound("event"))?;
    let deliveries = st.store.event_deliveries(&account, &id).await?;
    let routes = st.store.routes_for(&account, &e.event_type).await?;
    let targets = join_all(
        routes
            .iter()
            .map(|id| st.store.get_subscription(&account, id)),
    )
    .await
    .into_iter()
    .filter_map(|s| s.transpose())
    .map(|s| s.map(|s| (s.id, label(&s))))
    .collect::<Result<Vec<_>, _>>()?;
    let payload = serde_json::from_str::<serde_json::Value>(&e.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| e.payload.clone());
    view::html(&EventPage {
        c: Chrome::signed_in(&viewer, "events"),
        e: EventRow::from(&e),
        received: when(e.received_at_ms),
        payload,
        deliveries: deliveries.into_iter().map(DeliveryRow::from).collect(),
        targets,
    })
}

/// The replay form: all matching subscriptions, or one.
#[derive(Debug, Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subscription_id: String,
}

/// `POST /dashboard/events/{id}/replay` (manage).
pub async fn replay(
    viewer: Viewer,
    id: web::Path<String>,
    form: web::Form<ReplayForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_write(&form.csrf)?;
    let target = match form.subscription_id.trim() {
        "" => None,
        s => Some(parse_id(s).ok_or(PageError::NotFound("subscription"))?),
    };
    api_events::replay_event(&st, &viewer.account.id, &id, target).await?;
    Ok(view::see_other(format!("/dashboard/events/{id}")))
}
