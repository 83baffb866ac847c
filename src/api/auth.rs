//! Who is calling: an admin (the platform's own services, keys from
//! configuration) or an account (its API key). Extractors, so a handler's
//! signature says who may call it.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::ExposeSecret;

use super::error::ApiError;
use super::AppState;
use crate::domain::api_key;
use crate::store::AccountRecord;

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))
}

/// Whether `token` is one of the configured admin keys.
pub fn is_admin_key(st: &AppState, token: &str) -> bool {
    let mut ok = false;
    for key in &st.settings.auth.admin_keys {
        // No early exit: every key is compared.
        ok |= api_key::secrets_equal(token, key.expose_secret());
    }
    ok
}

/// A caller holding an admin key.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready((|| {
            let token = bearer(req).ok_or(ApiError::Unauthorized)?;
            let st = state(req)?;
            if is_admin_key(st, token) {
                Ok(Admin)
            } else if api_key::account_of(token).is_some() {
                Err(ApiError::Forbidden("this route needs an admin key".into()))
            } else {
                Err(ApiError::Unauthorized)
            }
        })())
    }
}

/// The account whose key `token` is (`id` taken from it), or 401: what the
/// API and the dashboard's sign-in both check.
async fn account_for_key(
    st: &AppState,
    id: &uuid::Uuid,
    token: &str,
) -> Result<AccountRecord, ApiError> {
    let account = st
        .store
        .get_account(id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if !api_key::verify(token, &account.key_hash) {
        return Err(ApiError::Unauthorized);
    }
    Ok(account)
}

/// The account an API key belongs to, checked exactly as the API checks a
/// bearer key (401 for anything else, admin keys included).
pub async fn verify_account_key(st: &AppState, token: &str) -> Result<AccountRecord, ApiError> {
    let id = api_key::account_of(token).ok_or(ApiError::Unauthorized)?;
    account_for_key(st, &id, token).await
}

/// A caller holding a valid account API key.
pub struct Account {
    pub account: AccountRecord,
    /// The key presented, to check a rotation against.
    pub key: String,
}

impl FromRequest for Account {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(str::to_owned);
        let st = state(req).cloned();
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthorized)?;
            let st = st?;
            let Some(id) = api_key::account_of(&token) else {
                return Err(if is_admin_key(&st, &token) {
                    ApiError::Forbidden(
                        "this route needs an account key (ck_…): an admin key acts for the platform, not for an account"
                            .into(),
                    )
                } else {
                    ApiError::Unauthorized
                });
            };
            let account = account_for_key(&st, &id, &token).await?;
            Ok(Account {
                account,
                key: token,
            })
        })
    }
}
