//! A subscription's forms: enable/disable, delete (after a confirmation
//! page), rotate the signing secret (shown once), send a test
//! notification, recover failed deliveries.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{load_subscription, SubRow};
use crate::api::error::ApiError;
use crate::api::{deliveries, subscriptions as api_subs, AppState};
use crate::dashboard::error::PageError;
use crate::dashboard::session::Viewer;
use crate::dashboard::signin::CsrfForm;
use crate::dashboard::view::{self, human, Chrome};
use crate::delivery::test_send::{self, TestAnswer};
use crate::domain::subscription::Subscription;

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
    r: TestAnswer,
}

/// `POST /dashboard/subscriptions/{id}/test` (manage): sends a signed test
/// notification now, as the API's test does, and shows the endpoint's
/// answer.
pub async fn send_test(
    viewer: Viewer,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_write(&form.csrf)?;
    let sub = load_subscription(&st, &viewer, &id).await?;
    let now = st.clock.now_ms();
    let r = test_send::send_test(&sub, &st.settings.delivery, &st.resolver, now)
        .await
        .map_err(ApiError::from)?;
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
