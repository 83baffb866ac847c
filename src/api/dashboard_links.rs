//! `POST /v1/dashboard/links`: one-time sign-in links to the dashboard, so
//! the platform can put a "Webhooks" button in its own console. An admin
//! makes them for any account, an account for itself.

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Account, Admin};
use super::error::{ApiError, ErrorBody};
use super::{body, AppState};
use crate::domain::session::{hash_token, new_token, Grant, Scope};
use crate::domain::{parse_id, Invalid};

/// Body of `POST /v1/dashboard/links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The account to sign in to: required with an admin key; with an
    /// account key it may only name the caller's own account.
    pub account_id: Option<String>,
    /// `read` (every page, no forms) or `manage` (every page and form).
    pub scope: String,
}

/// A one-time sign-in link.
#[derive(Debug, Serialize, ToSchema)]
pub struct Link {
    /// Works once, until `expires_at`; following it signs the browser in.
    pub url: String,
    pub expires_at: String,
    pub scope: Scope,
}

/// Make a one-time dashboard sign-in link.
#[utoipa::path(
    post, path = "/v1/dashboard/links", tag = "dashboard",
    request_body = LinkRequest,
    security(("admin_key" = []), ("account_key" = [])),
    responses(
        (status = 201, body = Link),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let is_admin = Admin::extract(&req).await.is_ok();
    let caller = if is_admin {
        None
    } else {
        Some(Account::extract(&req).await?)
    };
    let input: LinkRequest = body::json(&req, payload, st.settings.limits.max_body_bytes).await?;
    let scope = Scope::parse(&input.scope)
        .ok_or_else(|| Invalid::new("scope", "must be read or manage"))?;
    let named = input
        .account_id
        .as_deref()
        .map(|a| parse_id(a).ok_or_else(|| Invalid::new("account_id", "no such account")))
        .transpose()?;
    let account_id = match (caller, named) {
        (Some(c), None) => c.account.id,
        (Some(c), Some(id)) if id == c.account.id => id,
        (Some(_), Some(_)) => {
            return Err(ApiError::Forbidden(
                "an account key makes links for its own account only".into(),
            ))
        }
        (None, None) => {
            return Err(Invalid::new("account_id", "is required with an admin key").into())
        }
        (None, Some(id)) => {
            st.store
                .get_account(&id)
                .await?
                .ok_or_else(|| Invalid::new("account_id", "no such account"))?
                .id
        }
    };
    let token = new_token();
    let ttl_secs = st.settings.dashboard.link_ttl_secs.get();
    st.store
        .put_dashboard_link(
            &hash_token(&token),
            &Grant { account_id, scope },
            ttl_secs * 1000,
        )
        .await?;
    let expires = st.clock.now() + Duration::seconds(ttl_secs as i64);
    Ok(HttpResponse::Created().json(Link {
        url: format!(
            "{}/dashboard/links/{token}",
            st.settings.server.public_base_url.trim_end_matches('/')
        ),
        expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        scope,
    }))
}
