//! `POST /v1/accounts` and `POST /v1/api-keys/rotate`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Account, Admin};
use super::error::{ApiError, ErrorBody};
use super::{body, AppState};
use crate::domain::account::NewAccount;
use crate::domain::api_key;
use crate::domain::event::{self, format_ms, Submitted};
use crate::store::{AccountRecord, IngestOutcome, RotateOutcome};

/// Body of `POST /v1/accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Display name, 1 to 200 characters.
    pub name: String,
    /// Where operational email goes.
    pub contact_email: String,
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub name: String,
    pub contact_email: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; absent until the first rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_rotated_at: Option<String>,
}

impl From<&AccountRecord> for AccountView {
    fn from(a: &AccountRecord) -> Self {
        Self {
            id: a.id,
            name: a.name.clone(),
            contact_email: a.contact_email.clone(),
            created_at: format_ms(a.created_at_ms),
            key_rotated_at: a.key_rotated_at_ms.map(format_ms),
        }
    }
}

/// A new account and its first API key (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAccount {
    pub account: AccountView,
    /// Bearer key for the account's own API calls. Store it now: courier
    /// keeps only its hash.
    pub api_key: String,
}

/// A rotated key.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    /// The new key; the old one stopped working when this was issued.
    pub api_key: String,
    pub rotated_at: String,
    /// The `api_keys.rotated` event recorded for the rotation.
    pub event_id: Uuid,
}

/// Create an account (admin).
#[utoipa::path(
    post, path = "/v1/accounts", tag = "accounts", operation_id = "create_account",
    request_body = CreateAccount,
    security(("admin_key" = [])),
    responses(
        (status = 201, body = CreatedAccount),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn create(
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let input: CreateAccount = body::json(&req, payload, st.settings.limits.max_body_bytes).await?;
    let new = NewAccount::parse(&input.name, &input.contact_email)?;
    let id = Uuid::now_v7();
    let key = api_key::issue(id);
    let record = AccountRecord {
        id,
        name: new.name,
        contact_email: new.contact_email.as_str().to_owned(),
        key_hash: key.hash,
        created_at_ms: st.clock.now_ms(),
        key_rotated_at_ms: None,
    };
    st.store.create_account(&record).await?;
    tracing::info!(account = %id, "account created");
    Ok(HttpResponse::Created().json(CreatedAccount {
        account: AccountView::from(&record),
        api_key: key.plaintext,
    }))
}

/// Rotate the calling account's API key. The presented key stops working at
/// once, and an `api_keys.rotated` event is recorded for the account.
#[utoipa::path(
    post, path = "/v1/api-keys/rotate", tag = "accounts", operation_id = "rotate_api_key",
    security(("account_key" = [])),
    responses(
        (status = 200, body = RotatedKey),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn rotate_key(
    caller: Account,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = st.clock.now();
    let id = caller.account.id;
    let key = api_key::issue(id);
    let hint = &key.plaintext[key.plaintext.len() - 4..];
    let payload = serde_json::json!({
        "account_id": id,
        "rotated_at": format_ms(now.timestamp_millis()),
        "key_hint": format!("ck_…{hint}"),
    })
    .to_string();
    let raw = RawValue::from_string(payload).map_err(|e| ApiError::Internal(e.to_string()))?;
    let account_id = id.to_string();
    let event = event::accept(
        Submitted {
            event_type: "api_keys.rotated",
            account_id: &account_id,
            payload: &raw,
            occurred_at: None,
            idempotency_key: None,
        },
        &st.catalog,
        &st.ingest_rules(),
        now,
    )
    .map_err(|r| ApiError::Internal(format!("rotation event rejected: {r:?}")))?;
    let old_hash = api_key::hash_key(&caller.key);
    match st
        .store
        .rotate_key(&id, &old_hash, &key.hash, &event, now.timestamp_millis())
        .await?
    {
        RotateOutcome::Stale => Err(ApiError::Unauthorized),
        RotateOutcome::Rotated(outcome @ IngestOutcome::Created { id: event_id, .. }) => {
            st.after_ingest(std::slice::from_ref(&event), std::slice::from_ref(&outcome));
            tracing::info!(account = %id, "api key rotated");
            Ok(HttpResponse::Ok().json(RotatedKey {
                api_key: key.plaintext,
                rotated_at: format_ms(now.timestamp_millis()),
                event_id,
            }))
        }
        RotateOutcome::Rotated(other) => {
            Err(ApiError::Internal(format!("rotation event: {other:?}")))
        }
    }
}
