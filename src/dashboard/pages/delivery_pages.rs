//! A delivery's page: the attempt timeline, the notification it sends,
//! and "Retry now".

use actix_web::{web, HttpResponse};
use askama::Template;

use super::DeliveryRow;
use crate::api::{deliveries, AppState};
use crate::dashboard::error::PageError;
use crate::dashboard::session::Viewer;
use crate::dashboard::signin::CsrfForm;
use crate::dashboard::view::{self, human, Chrome};
use crate::domain::parse_id;
use crate::domain::subscription::Channel;
use crate::store::{Attempt, DeliveryRecord};

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
        st.store.get_event(account, &d.event_id, st.clock.now_ms()),
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
