//! Who is looking: the [`Viewer`] extractor reads the session cookie, finds
//! the session in Redis by the hash of its id, extends its idle time and
//! loads the account. Without a live session a page redirects to sign-in;
//! a session started before the account's API key was last rotated is
//! ended (the rotation may answer a leak).
//!
//! Cookies are written by hand (two of them, fixed attributes): the
//! session cookie `courier_session` (`HttpOnly; SameSite=Lax;
//! Path=/dashboard`, `Secure` when `server.public_base_url` is https) and
//! the sign-in form's CSRF cookie `courier_login` (`Path=/dashboard/login`).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::PageError;
use crate::api::AppState;
use crate::domain::session::{hash_token, is_token, Holder, Scope, Session, SessionLimits};
use crate::settings::Settings;
use crate::store::AccountRecord;

pub const SESSION_COOKIE: &str = "courier_session";
pub const LOGIN_COOKIE: &str = "courier_login";

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn secure(settings: &Settings) -> &'static str {
    if settings.server.public_base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// `Set-Cookie` for a new session id.
pub fn session_cookie(settings: &Settings, id: &str, max_age_secs: i64) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/dashboard; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        secure(settings)
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(settings: &Settings) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Lax; Max-Age=0{}",
        secure(settings)
    )
}

/// `Set-Cookie` for the sign-in form's CSRF token.
pub fn login_cookie(settings: &Settings, token: &str) -> String {
    format!(
        "{LOGIN_COOKIE}={token}; Path=/dashboard/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure(settings)
    )
}

pub fn limits(settings: &Settings) -> SessionLimits {
    let d = &settings.dashboard;
    SessionLimits {
        idle_ms: d.session_idle_minutes.get() as i64 * 60_000,
        max_ms: d.session_max_hours.get() as i64 * 3_600_000,
    }
}

/// A signed-in browser.
pub struct Viewer {
    pub account: AccountRecord,
    pub session: Session,
    /// The Redis name of the session (the hash of its id), to end it.
    pub id_hash: String,
}

impl Viewer {
    pub fn can_manage(&self) -> bool {
        self.session.scope == Scope::Manage
    }

    /// A form post: the session's CSRF token must come with it (403
    /// otherwise).
    pub fn check_csrf(&self, presented: &str) -> Result<(), PageError> {
        csrf(&self.session, presented)
    }

    /// A write: the CSRF token, and a session of the `manage` scope.
    pub fn check_write(&self, presented: &str) -> Result<(), PageError> {
        self.check_csrf(presented)?;
        if !self.can_manage() {
            return Err(PageError::Forbidden(
                "this session may only read: sign in with a manage link or the API key to change anything",
            ));
        }
        Ok(())
    }
}

/// Any live session, an account's or an operator's (signing out needs no
/// more).
pub struct SignedIn {
    pub session: Session,
    /// The Redis name of the session (the hash of its id), to end it.
    pub id_hash: String,
}

impl SignedIn {
    /// The session the cookie names, if it lives; extends its idle time.
    async fn find(st: &AppState, id: Option<String>) -> Result<Self, PageError> {
        let id = id.filter(|i| is_token(i)).ok_or(PageError::SignIn)?;
        let id_hash = hash_token(&id);
        let session = st
            .store
            .get_session(&id_hash)
            .await?
            .ok_or(PageError::SignIn)?;
        let limits = limits(&st.settings);
        let Some(ttl) = session.ttl_ms(st.clock.now_ms(), limits) else {
            st.store.delete_session(&id_hash).await?;
            return Err(PageError::SignIn);
        };
        st.store.touch_session(&id_hash, ttl).await?;
        Ok(Self { session, id_hash })
    }

    /// An account's session: the account, unless its key was rotated
    /// since the session began (then the session ends).
    async fn viewer(self, st: &AppState) -> Result<Viewer, PageError> {
        let Holder::Account(account_id) = self.session.holder else {
            return Err(PageError::OperatorHome);
        };
        let account = st
            .store
            .get_account(&account_id)
            .await?
            .ok_or(PageError::SignIn)?;
        if self.session.predates_rotation(account.key_rotated_at_ms) {
            st.store.delete_session(&self.id_hash).await?;
            return Err(PageError::SignIn);
        }
        Ok(Viewer {
            account,
            session: self.session,
            id_hash: self.id_hash,
        })
    }

    /// Checks a form's CSRF token against the session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), PageError> {
        csrf(&self.session, presented)
    }
}

/// 403 unless `presented` is the session's CSRF token.
fn csrf(session: &Session, presented: &str) -> Result<(), PageError> {
    if session.csrf_matches(presented) {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "the form is out of date or did not come from this dashboard; reload the page and try again",
        ))
    }
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, PageError>>>>;

/// Where sign-in may send the browser back to: a dashboard page (an
/// email's link, say), never the sign-in pages themselves nor anything
/// outside (so `next=` cannot be used to redirect elsewhere).
pub fn return_path(path: &str) -> Option<&str> {
    // The overview is where sign-in goes anyway.
    let page = path.starts_with("/dashboard/") && path != "/dashboard/";
    let excluded = [
        "/dashboard/login",
        "/dashboard/links/",
        "/dashboard/logout",
        "/dashboard/static/",
    ]
    .iter()
    .any(|p| path.starts_with(p));
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
        && !path.contains("//")
        && !path.contains("..");
    (page && !excluded && plain && path.len() <= 200).then_some(path)
}

fn extract<T: 'static>(
    req: &HttpRequest,
    then: impl AsyncFnOnce(SignedIn, web::Data<AppState>) -> Result<T, PageError> + 'static,
) -> Extracted<T> {
    let id = cookie(req, SESSION_COOKIE).map(str::to_owned);
    let st = req.app_data::<web::Data<AppState>>().cloned();
    // A page asked for without a session is shown after sign-in.
    let next = (req.method() == actix_web::http::Method::GET)
        .then(|| return_path(req.path()).map(str::to_owned))
        .flatten();
    Box::pin(async move {
        let st = st.ok_or(PageError::SignIn)?;
        let found = match SignedIn::find(&st, id).await {
            Err(PageError::SignIn) => Err(next.map_or(PageError::SignIn, PageError::SignInThen)),
            other => other,
        };
        let signed_in = found?;
        then(signed_in, st).await
    })
}

impl FromRequest for SignedIn {
    type Error = PageError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, async |s, _| Ok(s))
    }
}

impl FromRequest for Viewer {
    type Error = PageError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, async |s, st| s.viewer(&st).await)
    }
}

/// An operator's session (signed in with an admin key).
pub struct Operator {
    pub session: Session,
}

impl FromRequest for Operator {
    type Error = PageError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(req, async |s, _| match s.session.holder {
            Holder::Operator => Ok(Operator { session: s.session }),
            Holder::Account(_) => Err(PageError::Forbidden(
                "this page is for the platform's operators: sign in with an admin key",
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_plain_dashboard_pages() {
        let event = "/dashboard/events/01a22615-5517-7000-8000-000000000000";
        assert_eq!(return_path(event), Some(event));
        for bad in [
            "/dashboard",
            "/dashboard/",
            "https://evil.example/",
            "//evil.example/dashboard",
            "/dashboard//evil.example",
            "/dashboardx",
            "/dashboard/login",
            "/dashboard/links/abc",
            "/dashboard/logout",
            "/dashboard/../v1/accounts",
            "/dashboard/a\\b",
            "/dashboard/a%2f",
            "/v1/events",
        ] {
            assert_eq!(return_path(bad), None, "{bad}");
        }
    }
}
