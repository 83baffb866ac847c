//! The dashboard's one error type: every failure is an HTML page with the
//! status that fits (or, for a missing session, a redirect to sign-in). The
//! cause of a 5xx is logged, never shown.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::view::Chrome;
use crate::api::error::ApiError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No (live) session: go and sign in.
    #[error("sign in first")]
    SignIn,
    /// No session, on a page worth coming back to after sign-in (a path
    /// [`super::session::return_path`] accepted).
    #[error("sign in first")]
    SignInThen(String),
    /// An operator's session on an account page: go to the operator page.
    #[error("this is an operator's session")]
    OperatorHome,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    /// What the API would answer (validation, conflict, Redis down, …).
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::Api(e.into())
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Api(ApiError::Internal(format!("rendering a page: {e}")))
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage<'a> {
    c: Chrome,
    status: u16,
    title: &'a str,
    message: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn | PageError::SignInThen(_) | PageError::OperatorHome => {
                StatusCode::SEE_OTHER
            }
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let home = match self {
            PageError::SignIn => Some("/dashboard/login".to_owned()),
            PageError::SignInThen(next) => Some(format!(
                "/dashboard/login?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            )),
            PageError::OperatorHome => Some("/dashboard/operator".to_owned()),
            _ => None,
        };
        if let Some(location) = home {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .finish();
        }
        if let PageError::Api(e) = self {
            // Logs the cause of a 5xx, as the API does.
            let _ = e.error_response();
        }
        let status = self.status_code();
        let page = ErrorPage {
            c: Chrome::anonymous("error"),
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: self.to_string(),
        };
        let body = page
            .render()
            .unwrap_or_else(|_| "<!DOCTYPE html><title>Error</title>".into());
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}
