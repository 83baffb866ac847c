//! Signing in and out: with the account's API key (a form), or through a
//! one-time link made by `POST /v1/dashboard/links`. Either way the browser
//! gets a new server-side session.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::error::PageError;
use super::session::{self, SignedIn, LOGIN_COOKIE, SESSION_COOKIE};
use super::view::{self, Chrome};
use crate::api::auth::{is_admin_key, verify_account_key};
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::domain::api_key::secrets_equal;
use crate::domain::session::{hash_token, is_token, new_token, Holder, Scope, Session};

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    c: Chrome,
    csrf: String,
    problem: Option<&'static str>,
    /// The page to go to once signed in, if one was asked for.
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/link_used.html")]
struct LinkUsed {
    c: Chrome,
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `?next=` of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn next_page(next: Option<&str>) -> Option<String> {
    next.and_then(session::return_path).map(str::to_owned)
}

/// The sign-in form, with a fresh CSRF token in a cookie and in the form
/// (they must match when it is posted).
fn login_form(
    st: &AppState,
    status: actix_web::http::StatusCode,
    problem: Option<&'static str>,
    next: Option<String>,
) -> Result<HttpResponse, PageError> {
    let csrf = new_token();
    let page = LoginPage {
        c: Chrome::anonymous("login"),
        csrf: csrf.clone(),
        problem,
        next,
    };
    Ok(HttpResponse::build(status)
        .insert_header((
            header::SET_COOKIE,
            session::login_cookie(&st.settings, &csrf),
        ))
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

/// `GET /dashboard/login`.
pub async fn form(
    q: web::Query<NextQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    login_form(
        &st,
        actix_web::http::StatusCode::OK,
        None,
        next_page(q.next.as_deref()),
    )
}

/// `POST /dashboard/login`: checks the key as the API does, then starts a
/// `manage` session (the key can do everything through the API anyway); an
/// admin key starts an operator's session (the queue page only).
pub async fn submit(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let expected = session::cookie(&req, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !secrets_equal(&form.csrf, expected) {
        return Err(PageError::Forbidden(
            "the sign-in form is out of date; reload it and try again",
        ));
    }
    let key = form.api_key.trim();
    let next = next_page(Some(&form.next));
    let (holder, scope, next) = if is_admin_key(&st, key) {
        (Holder::Operator, Scope::Read, None)
    } else {
        match verify_account_key(&st, key).await {
            Ok(account) => (Holder::Account(account.id), Scope::Manage, next),
            Err(ApiError::Unauthorized) => {
                return login_form(
                    &st,
                    actix_web::http::StatusCode::UNAUTHORIZED,
                    Some("That is not a valid API key."),
                    next,
                )
            }
            Err(e) => return Err(e.into()),
        }
    };
    end_previous(&st, &req).await?;
    start_session(&st, holder, scope, next).await
}

/// `GET /dashboard/links/{token}`: takes the link (it works once) and signs
/// the browser in with the link's scope.
pub async fn follow(
    req: HttpRequest,
    token: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let grant = if is_token(&token) {
        st.store.take_dashboard_link(&hash_token(&token)).await?
    } else {
        None
    };
    match grant {
        Some(grant) => {
            end_previous(&st, &req).await?;
            start_session(&st, Holder::Account(grant.account_id), grant.scope, None).await
        }
        None => {
            let page = LinkUsed {
                c: Chrome::anonymous("login"),
            };
            Ok(HttpResponse::Gone()
                .content_type("text/html; charset=utf-8")
                .body(page.render()?))
        }
    }
}

/// Ends the session the browser held before signing in again (another
/// account, another scope): one browser, one session.
async fn end_previous(st: &AppState, req: &HttpRequest) -> Result<(), PageError> {
    if let Some(id) = session::cookie(req, SESSION_COOKIE).filter(|i| is_token(i)) {
        st.store.delete_session(&hash_token(id)).await?;
    }
    Ok(())
}

/// Stores a new session and sends the browser to its first page (the one
/// asked for before sign-in, the overview, or the operator page) with its
/// cookie.
async fn start_session(
    st: &AppState,
    holder: Holder,
    scope: Scope,
    next: Option<String>,
) -> Result<HttpResponse, PageError> {
    let limits = session::limits(&st.settings);
    let now = st.clock.now_ms();
    let s = Session::new(holder, scope, now, limits);
    let id = new_token();
    let ttl = s.ttl_ms(now, limits).unwrap_or(limits.idle_ms);
    st.store.put_session(&hash_token(&id), &s, ttl).await?;
    tracing::info!(
        holder = %holder.encode(),
        scope = scope.as_str(),
        "dashboard session started"
    );
    let home = match holder {
        Holder::Account(_) => next.unwrap_or_else(|| "/dashboard".to_owned()),
        Holder::Operator => "/dashboard/operator".to_owned(),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, home))
        .insert_header((
            header::SET_COOKIE,
            session::session_cookie(&st.settings, &id, limits.max_ms / 1000),
        ))
        .finish())
}

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /dashboard/logout`: ends the session in Redis, so the cookie is
/// worthless even if it was copied.
pub async fn logout(
    viewer: SignedIn,
    form: web::Form<CsrfForm>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    viewer.check_csrf(&form.csrf)?;
    st.store.delete_session(&viewer.id_hash).await?;
    let mut res = view::see_other("/dashboard/login".into());
    res.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&session::clear_session_cookie(&st.settings))
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(res)
}
