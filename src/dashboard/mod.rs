//! The developer dashboard: server-rendered HTML pages under `/dashboard`
//! for an account's subscriptions, deliveries, events, event types and
//! notices. No JavaScript; one stylesheet; askama templates compiled into
//! the binary (`templates/dashboard/`), which escape every value.
//!
//! - [`session`]: the session cookie, the [`session::Viewer`] extractor,
//!   CSRF and scope checks.
//! - [`signin`]: sign-in with the API key or a one-time link, sign-out.
//! - [`pages`]: the account pages and their forms; thin, over the same store
//!   calls the API makes. [`editor`]: the subscription form (create, edit).
//! - [`operator`]: the operators' queue page (admin-key sessions).
//! - [`charts`]: the small inline-SVG charts (subscription health, traffic).
//! - [`view`]: the page chrome and rendering helpers; [`assets`]: the
//!   stylesheet; [`error`]: failures as HTML pages.
//!
//! Every response carries the security headers of [`security_headers`].

pub mod assets;
pub mod charts;
pub mod editor;
pub mod error;
pub mod operator;
pub mod pages;
pub mod session;
pub mod signin;
pub mod view;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::web;

use crate::api::AppState;
use error::PageError;

/// The Content-Security-Policy of every dashboard page: nothing but this
/// origin's stylesheet and images, no script at all, forms post only here,
/// framed only by `dashboard.frame_ancestors`.
pub fn content_security_policy(frame_ancestors: &str) -> String {
    format!(
        "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; img-src 'self' data:; style-src 'self'; \
         frame-ancestors {frame_ancestors}"
    )
}

/// Adds the security headers to every dashboard response, error pages and
/// redirects included. `Cache-Control: no-store` unless the handler chose
/// otherwise (the stylesheet).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let csp = req
        .app_data::<web::Data<AppState>>()
        .map(|st| content_security_policy(&st.settings.dashboard.frame_ancestors))
        .unwrap_or_else(|| content_security_policy("'none'"));
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// The request target as logged: one-time link tokens are cut out, so a
/// log line never holds a working link.
pub fn loggable_target(path_and_query: &str) -> std::borrow::Cow<'_, str> {
    match path_and_query.strip_prefix("/dashboard/links/") {
        Some(_) => "/dashboard/links/[redacted]".into(),
        None => path_and_query.into(),
    }
}

async fn not_found() -> Result<actix_web::HttpResponse, PageError> {
    Err(PageError::NotFound("page"))
}

/// Registers `/dashboard` and everything under it.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{get, post, resource};
    cfg.service(
        web::scope("/dashboard")
            .wrap(from_fn(security_headers))
            .app_data(
                web::FormConfig::default()
                    .limit(64 * 1024)
                    .error_handler(|e, _| {
                        PageError::BadRequest(format!("the form is invalid: {e}")).into()
                    }),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                PageError::BadRequest(format!("the query is invalid: {e}")).into()
            }))
            .service(resource("").route(get().to(pages::overview)))
            .service(resource("/").route(get().to(pages::overview)))
            .service(
                resource("/login")
                    .route(get().to(signin::form))
                    .route(post().to(signin::submit)),
            )
            .service(resource("/links/{token}").route(get().to(signin::follow)))
            .service(resource("/logout").route(post().to(signin::logout)))
            .service(resource("/static/{name}").route(get().to(assets::serve)))
            .service(
                resource("/subscriptions/new")
                    .route(get().to(editor::new_form))
                    .route(post().to(editor::create)),
            )
            .service(resource("/subscriptions/{id}").route(get().to(pages::subscription)))
            .service(
                resource("/subscriptions/{id}/edit")
                    .route(get().to(editor::edit_form))
                    .route(post().to(editor::update)),
            )
            .service(resource("/subscriptions/{id}/recover").route(post().to(pages::recover)))
            .service(resource("/subscriptions/{id}/enabled").route(post().to(pages::set_enabled)))
            .service(resource("/subscriptions/{id}/secret").route(post().to(pages::rotate_secret)))
            .service(resource("/subscriptions/{id}/test").route(post().to(pages::send_test)))
            .service(
                resource("/subscriptions/{id}/delete")
                    .route(get().to(pages::confirm_delete))
                    .route(post().to(pages::delete)),
            )
            .service(resource("/deliveries/{id}").route(get().to(pages::delivery)))
            .service(resource("/deliveries/{id}/retry").route(post().to(pages::retry)))
            .service(resource("/events").route(get().to(pages::events)))
            .service(resource("/events/{id}").route(get().to(pages::event)))
            .service(resource("/events/{id}/replay").route(post().to(pages::replay)))
            .service(resource("/event-types").route(get().to(pages::event_types)))
            .service(resource("/notices").route(get().to(pages::notices)))
            .service(resource("/operator").route(get().to(operator::queues)))
            .default_service(web::to(not_found)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_never_reach_the_log() {
        assert_eq!(
            loggable_target("/dashboard/links/abcDEF123"),
            "/dashboard/links/[redacted]"
        );
        assert_eq!(
            loggable_target("/dashboard/events?type=a"),
            "/dashboard/events?type=a"
        );
    }

    #[test]
    fn the_policy_allows_no_script_and_frames_as_configured() {
        let csp = content_security_policy("https://console.example");
        assert!(csp.contains("script-src 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.ends_with("frame-ancestors https://console.example"));
    }
}
