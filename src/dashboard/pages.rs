//! The account pages and their forms. Each handler reads through the same
//! store calls (and, for writes, the same functions) as the API, shapes rows
//! for its template and renders; a write answers 303 back to the page.
//! Another account's ids are "not found", exactly as in the API.

use actix_web::{web, HttpResponse};
use askama::Template;
use futures_util::future::join_all;
use serde::Deserialize;
use uuid::Uuid;

use super::error::PageError;
use super::session::Viewer;
use super::signin::CsrfForm;
use super::view::{self, human, when, Chrome};
use crate::api::{
    deliveries, events as api_events, subscriptions as api_subs, AppState, PageQuery,
};
use crate::delivery::breaker::BreakerState;
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::parse_id;
use crate::domain::subscription::{Channel, Subscription};
use crate::store::{Attempt, DeliveryRecord, EventFilter, EventRecord};

/// How many notices the notices page shows.
const NOTICES_SHOWN: usize = 100;

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
    status: String,
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
                .filter(|_| d.status == "pending")
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

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    c: Chrome,
    rows: Vec<SubRow>,
    next: Option<String>,
}

/// `GET /dashboard`: every subscription with its health.
pub async fn overview(
    viewer: Viewer,
    q: web::Query<CursorQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let (limit, cursor) = st.paging(&q.page())?;
    let account = viewer.account.id;
    let page = st
        .store
        .list_subscriptions(&account, cursor.as_ref(), limit)
        .await?;
    let rows = join_all(page.items.iter().map(|s| {
        let st = &st;
        async move {
            let circuit = circuit_of(st, s).await?;
            let newest = st
                .store
                .list_deliveries(&account, &s.id, None, None, 1)
                .await?;
            let last_error = newest.items.into_iter().next().and_then(|d| d.error);
            Ok::<_, PageError>(SubRow::new(s, circuit, last_error))
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    view::html(&OverviewPage {
        c: Chrome::signed_in(&viewer, "overview"),
        rows,
        next: page.next.map(|c| c.encode()),
    })
}

/// `?status=&cursor=` of a subscription page (and what a recovery did).
#[derive(Debug, Deserialize)]
pub struct DeliveryQuery {
    status: Option<String>,
    cursor: Option<String>,
    recovered: Option<usize>,
    in_flight: Option<usize>,
}

#[derive(Template)]
#[template(path = "dashboard/subscription.html")]
struct SubscriptionPage {
    c: Chrome,
    sub: SubRow,
    created: String,
    rate_limit: Option<u32>,
    status: String,
    statuses: [&'static str; 3],
    deliveries: Vec<DeliveryRow>,
    next: Option<String>,
    /// After a recovery: (queued, left alone because in flight).
    recovered: Option<(usize, usize)>,
    /// The recover form's default: a day ago.
    recover_since: String,
}

/// `GET /dashboard/subscriptions/{id}`: the subscription and its
/// deliveries, newest first, by status, a page at a time.
pub async fn subscription(
    viewer: Viewer,
    id: web::Path<String>,
    q: web::Query<DeliveryQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let sub = load_subscription(&st, &viewer, &id).await?;
    let status = q.status.clone().filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if !deliveries::STATUSES.contains(&s.as_str()) {
            return Err(PageError::BadRequest(
                "status must be pending, succeeded or failed".into(),
            ));
        }
    }
    let (limit, cursor) = st.paging(&PageQuery {
        limit: None,
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
    })?;
    let page = st
        .store
        .list_deliveries(
            &viewer.account.id,
            &sub.id,
            status.as_deref(),
            cursor.as_ref(),
            limit,
        )
        .await?;
    let circuit = circuit_of(&st, &sub).await?;
    view::html(&SubscriptionPage {
        c: Chrome::signed_in(&viewer, "overview"),
        created: when(sub.created_at_ms),
        rate_limit: sub.rate_limit,
        sub: SubRow::new(&sub, circuit, None),
        status: status.unwrap_or_default(),
        statuses: deliveries::STATUSES,
        deliveries: page.items.into_iter().map(DeliveryRow::from).collect(),
        next: page.next.map(|c| c.encode()),
        recovered: q.recovered.map(|n| (n, q.in_flight.unwrap_or(0))),
        recover_since: view::time_input(st.clock.now_ms() - 86_400_000),
    })
}

/// One attempt as the timeline shows it.
pub struct AttemptRow {
    at: String,
    duration_ms: u64,
    status_code: Option<u16>,
    response: Option<String>,
    error: Option<String>,
    next_attempt: Option<String>,
}

impl From<Attempt> for AttemptRow {
    fn from(a: Attempt) -> Self {
        Self {
            at: human(&a.at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            response: a.response,
            error: a.error,
            next_attempt: a.next_attempt_at.as_deref().map(human),
        }
    }
}

/// What a delivery sends, as far as it is the same on every attempt.
pub enum Notification {
    /// A webhook: the URL and the body, byte for byte (the signature and
    /// the timestamp headers differ per attempt and are not shown).
    Webhook { url: String, body: String },
    /// An email to this address (and digest setting).
    Email { to: String },
    /// The subscription or the event is gone (deleted, or past retention).
    Gone,
}

#[derive(Template)]
#[template(path = "dashboard/delivery.html")]
struct DeliveryPage {
    c: Chrome,
    d: DeliveryRow,
    attempts: Vec<AttemptRow>,
    notification: Notification,
}

/// The notification `d` sends: rebuilt from its event and subscription by
/// the function the deliverer uses.
async fn notification_of(st: &AppState, d: &DeliveryRecord) -> Result<Notification, PageError> {
    let account = &d.account_id;
    let (sub, event) = futures_util::future::try_join(
        st.store.get_subscription(account, &d.subscription_id),
        st.store.get_event(account, &d.event_id),
    )
    .await?;
    Ok(match (sub, event) {
        (Some(sub), Some(e)) => match &sub.channel {
            Channel::Webhook { url } => Notification::Webhook {
                url: url.clone(),
                body: crate::delivery::notification::body(
                    &sub.id,
                    &e.id,
                    &e.event_type,
                    e.occurred_at_ms,
                    &d.id,
                    &e.payload,
                ),
            },
            Channel::Email { address, digest } => Notification::Email {
                to: format!("{address} ({})", digest.as_str()),
            },
        },
        _ => Notification::Gone,
    })
}

/// `GET /dashboard/deliveries/{id}`: the attempt timeline, oldest first,
/// and the notification the delivery sends.
pub async fn delivery(
    viewer: Viewer,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let id = parse_id(&id).ok_or(PageError::NotFound("delivery"))?;
    let mut d = st
        .store
        .get_delivery(&viewer.account.id, &id)
        .await?
        .ok_or(PageError::NotFound("delivery"))?;
    let history = std::mem::take(&mut d.history);
    let notification = notification_of(&st, &d).await?;
    view::html(&DeliveryPage {
        c: Chrome::signed_in(&viewer, "overview"),
        d: d.into(),
        attempts: history.into_iter().map(AttemptRow::from).collect(),
        notification,
    })
}

/// `POST /dashboard/deliveries/{id}/retry` (manage).
pub async fn retry(
    viewer: Viewer,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_write(&form.csrf)?;
    deliveries::retry_now(&st, &viewer.account.id, &id).await?;
    Ok(view::see_other(format!("/dashboard/deliveries/{id}")))
}

/// The enable/disable switch.
#[derive(Debug, Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
}

/// `POST /dashboard/subscriptions/{id}/enabled` (manage): switches the
/// subscription on (`enabled=true`) or off.
pub async fn set_enabled(
    viewer: Viewer,
    id: web::Path<String>,
    form: web::Form<EnabledForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_write(&form.csrf)?;
    let enabled = match form.enabled.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return Err(PageError::BadRequest(
                "enabled must be true or false".into(),
            ))
        }
    };
    let sub = api_subs::set_enabled(&st, &viewer.account.id, &id, enabled).await?;
    Ok(view::see_other(format!(
        "/dashboard/subscriptions/{}",
        sub.id
    )))
}

#[derive(Template)]
#[template(path = "dashboard/delete.html")]
struct DeletePage {
    c: Chrome,
    sub: SubRow,
}

/// `GET /dashboard/subscriptions/{id}/delete` (manage): asks first.
pub async fn confirm_delete(
    viewer: Viewer,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let sub = load_subscription(&st, &viewer, &id).await?;
    if !viewer.can_manage() {
        return Err(PageError::Forbidden("this session may only read"));
    }
    view::html(&DeletePage {
        c: Chrome::signed_in(&viewer, "overview"),
        sub: SubRow::new(&sub, None, None),
    })
}

/// `POST /dashboard/subscriptions/{id}/delete` (manage).
pub async fn delete(
    viewer: Viewer,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_write(&form.csrf)?;
    api_subs::delete_in(&st, &viewer.account.id, &id).await?;
    Ok(view::see_other("/dashboard".into()))
}

#[derive(Template)]
#[template(path = "dashboard/secret.html")]
struct SecretPage {
    c: Chrome,
    sub: SubRow,
    secret: String,
    /// Until when the previous secret signs too (after a rotation).
    previous_until: Option<String>,
}

/// A page showing `sub`'s signing secret, once: the answer of the POST
/// that made it.
pub fn secret_page(
    viewer: &Viewer,
    sub: &Subscription,
    secret: String,
    previous_until: Option<String>,
) -> Result<HttpResponse, PageError> {
    view::html(&SecretPage {
        c: Chrome::signed_in(viewer, "overview"),
        sub: SubRow::new(sub, None, None),
        secret,
        previous_until,
    })
}

/// `POST /dashboard/subscriptions/{id}/secret` (manage): a new signing
/// secret, shown in this answer only (it is not a redirect: reloading the
/// subscription page does not show it again).
pub async fn rotate_secret(
    viewer: Viewer,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_write(&form.csrf)?;
    let rotated = api_subs::rotate_secret_in(&st, &viewer.account.id, &id).await?;
    let sub = load_subscription(&st, &viewer, &id).await?;
    secret_page(
        &viewer,
        &sub,
        rotated.secret,
        Some(human(&rotated.previous_secret_expires_at)),
    )
}

#[derive(Template)]
#[template(path = "dashboard/test_result.html")]
struct TestPage {
    c: Chrome,
    sub: SubRow,
    r: crate::api::subscriptions::TestResult,
}

/// `POST /dashboard/subscriptions/{id}/test` (manage): sends a signed test
/// notification now and shows the endpoint's answer.
pub async fn send_test(
    viewer: Viewer,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_write(&form.csrf)?;
    let sub = load_subscription(&st, &viewer, &id).await?;
    let r = api_subs::send_test(&st, &viewer.account.id, &id).await?;
    view::html(&TestPage {
        c: Chrome::signed_in(&viewer, "overview"),
        sub: SubRow::new(&sub, None, None),
        r,
    })
}

/// The recover form: failed deliveries created since a time.
#[derive(Debug, Deserialize)]
pub struct RecoverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    since: String,
}

/// `POST /dashboard/subscriptions/{id}/recover` (manage): queues the
/// failed deliveries created since the time given again.
pub async fn recover(
    viewer: Viewer,
    id: web::Path<String>,
    form: web::Form<RecoverForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_write(&form.csrf)?;
    let sub = load_subscription(&st, &viewer, &id).await?;
    let since = view::parse_time_input(&form.since).ok_or_else(|| {
        PageError::BadRequest("since must be a time such as 2026-11-29T18:00 (UTC)".into())
    })?;
    let done = deliveries::recover_since(&st, &viewer.account.id, &sub.id, since).await?;
    Ok(view::see_other(format!(
        "/dashboard/subscriptions/{}?recovered={}&in_flight={}",
        sub.id, done.queued, done.in_flight
    )))
}

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

/// An optional form time, 400 when it is not one.
fn time_field(name: &str, text: Option<&str>) -> Result<Option<i64>, PageError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => view::parse_time_input(t).map(Some).ok_or_else(|| {
            PageError::BadRequest(format!(
                "{name} must be a time such as 2026-11-29T18:00 (UTC)"
            ))
        }),
    }
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
        .get_event(&account, &id)
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
