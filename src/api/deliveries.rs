//! Delivery history and manual re-delivery.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Account;
use super::error::{ApiError, ErrorBody};
use super::{body, AppState, PageQuery};
use crate::domain::delivery::DeliveryStatus;
use crate::domain::event::format_ms;
use crate::domain::{parse_id, Invalid};
use crate::store::{Attempt, DeliveryFilter, DeliveryRecord, Requeued};

/// A delivery of one event to one subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Also the `webhook-id` header of every attempt.
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub subscription_id: Uuid,
    /// `pending`, `succeeded` or `failed`.
    #[schema(value_type = String)]
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// Made by `POST /v1/events/{id}/replay`.
    pub replay: bool,
    /// Why it failed without an attempt (subscription disabled or deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every attempt, oldest first (only on `GET /v1/deliveries/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Attempt>>,
}

impl DeliveryView {
    pub fn new(d: DeliveryRecord, with_history: bool) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            subscription_id: d.subscription_id,
            next_attempt_at: d
                .next_attempt_at_ms
                .filter(|_| d.status == DeliveryStatus::Pending)
                .map(format_ms),
            status: d.status,
            attempts: d.attempts,
            created_at: format_ms(d.created_at_ms),
            last_attempt_at: d.last_attempt_at_ms.map(format_ms),
            replay: d.replay,
            error: d.error,
            history: with_history.then_some(d.history),
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub data: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// `?status=&from=&to=` of a delivery listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// `pending`, `succeeded` or `failed`.
    pub status: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<String>,
    /// Created at or before (RFC 3339).
    pub to: Option<String>,
}

/// Answer of a retry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// How many deliveries were queued.
    pub queued: usize,
    /// Deliveries left alone because an attempt is under way.
    pub in_flight: usize,
}

/// Body of `POST /v1/subscriptions/{id}/recover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// Re-queue failed deliveries created at or after this time (RFC 3339).
    pub since: String,
}

/// A subscription's deliveries, newest first.
#[utoipa::path(
    get, path = "/v1/subscriptions/{id}/deliveries", tag = "deliveries", operation_id = "list_deliveries",
    params(("id" = Uuid, Path, description = "Subscription id"), StatusQuery, PageQuery),
    security(("account_key" = [])),
    responses(
        (status = 200, body = DeliveryList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn list(
    caller: Account,
    id: web::Path<String>,
    filter: web::Query<StatusQuery>,
    page: web::Query<PageQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sub = super::subscriptions::load(&st, &caller, &id).await?;
    let (limit, cursor) = st.paging(&page)?;
    let status = match filter.status.as_deref() {
        None => None,
        Some(text) => Some(
            DeliveryStatus::parse(text)
                .ok_or_else(|| Invalid::new("status", "must be pending, succeeded or failed"))?,
        ),
    };
    let page = st
        .store
        .list_deliveries(
            &caller.account.id,
            &sub.id,
            &DeliveryFilter {
                status,
                from_ms: super::events::parse_time("from", filter.from.as_deref())?,
                to_ms: super::events::parse_time("to", filter.to.as_deref())?,
                cursor: cursor.as_ref(),
                limit,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        data: page
            .items
            .into_iter()
            .map(|d| DeliveryView::new(d, false))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// One delivery with every attempt.
#[utoipa::path(
    get, path = "/v1/deliveries/{id}", tag = "deliveries", operation_id = "get_delivery",
    params(("id" = Uuid, Path, description = "Delivery id")),
    security(("account_key" = [])),
    responses(
        (status = 200, body = DeliveryView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn get(
    caller: Account,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id).ok_or(ApiError::NotFound("delivery"))?;
    let d = st
        .store
        .get_delivery(&caller.account.id, &id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    Ok(HttpResponse::Ok().json(DeliveryView::new(d, true)))
}

/// Retry a delivery now, whatever its status (a failed one gets a fresh
/// attempt; its history is kept).
#[utoipa::path(
    post, path = "/v1/deliveries/{id}/retry", tag = "deliveries", operation_id = "retry_delivery",
    params(("id" = Uuid, Path, description = "Delivery id")),
    security(("account_key" = [])),
    responses(
        (status = 202, body = Queued),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "An attempt is under way"),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn retry(
    caller: Account,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    retry_now(&st, &caller.account.id, &id).await?;
    Ok(HttpResponse::Accepted().json(Queued {
        queued: 1,
        in_flight: 0,
    }))
}

/// Queues the account's delivery `id` for an attempt now (404 for none,
/// 409 while an attempt is under way). The API and the dashboard both
/// retry here.
pub(crate) async fn retry_now(st: &AppState, account: &Uuid, id: &str) -> Result<(), ApiError> {
    let id = parse_id(id).ok_or(ApiError::NotFound("delivery"))?;
    let now = st.clock.now_ms();
    match st.store.requeue(account, &[id], now).await?.first() {
        Some(Requeued::Queued) => {
            st.wake.notify_one();
            Ok(())
        }
        Some(Requeued::InFlight) => Err(ApiError::Conflict(
            "in_flight",
            "an attempt of this delivery is under way".into(),
        )),
        _ => Err(ApiError::NotFound("delivery")),
    }
}

/// Re-queue every failed delivery of the subscription created since a time.
#[utoipa::path(
    post, path = "/v1/subscriptions/{id}/recover", tag = "deliveries", operation_id = "recover_deliveries",
    params(("id" = Uuid, Path, description = "Subscription id")),
    request_body = RecoverRequest,
    security(("account_key" = [])),
    responses(
        (status = 202, body = Queued),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn recover(
    caller: Account,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let input: RecoverRequest =
        body::json(&req, payload, st.settings.limits.max_body_bytes).await?;
    let since = DateTime::parse_from_rfc3339(&input.since)
        .map_err(|_| Invalid::new("since", "must be an RFC 3339 timestamp"))?
        .timestamp_millis();
    let sub = super::subscriptions::load(&st, &caller, &id).await?;
    let queued = recover_since(&st, &caller.account.id, &sub.id, since).await?;
    Ok(HttpResponse::Accepted().json(queued))
}

/// Re-queues every failed delivery of the account's subscription created at
/// or after `since_ms`. The API and the dashboard both recover here.
pub(crate) async fn recover_since(
    st: &AppState,
    account: &Uuid,
    subscription: &Uuid,
    since_ms: i64,
) -> Result<Queued, ApiError> {
    let now = st.clock.now_ms();
    let done = st
        .store
        .recover_failed(account, subscription, since_ms, now)
        .await?;
    if done.queued > 0 {
        st.wake.notify_one();
    }
    Ok(Queued {
        queued: done.queued as usize,
        in_flight: done.in_flight as usize,
    })
}
