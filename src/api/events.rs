//! Ingest (admin) and the archive (account).

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Account, Admin};
use super::error::{ApiError, ErrorBody, ErrorDetail};
use super::{body, AppState, PageQuery};
use crate::domain::event::{self, format_ms, NewEvent, Rejection, Submitted};
use crate::domain::{parse_id, Invalid};
use crate::store::{self, EventFilter, EventRecord, IngestOutcome};

/// Header carrying a client's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Response header set when an idempotent retry returned the first event.
pub const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";

/// An event to ingest.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// An event type from `GET /v1/event-types`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The account the event belongs to.
    pub account_id: String,
    /// JSON matching the type's schema; stored and returned byte for byte.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// When it happened (RFC 3339); defaults to now.
    pub occurred_at: Option<String>,
    /// Batch items only: the item's idempotency key (single requests use
    /// the `Idempotency-Key` header; the header wins if both are given).
    pub idempotency_key: Option<String>,
}

/// Ingest accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The event id (UUIDv7).
    pub id: Uuid,
    /// `accepted`, or `duplicate` when an Idempotency-Key matched an earlier
    /// identical request (the id is that request's).
    pub status: &'static str,
}

/// Body of `POST /v1/events/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 1,000 events (configurable), each shaped like `POST /v1/events`.
    #[schema(value_type = Vec<IngestRequest>)]
    pub events: Vec<Box<RawValue>>,
}

/// The outcome of one batch item.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// Position in the request.
    pub index: usize,
    /// The status a single ingest would have answered: 202, 409, 413 or
    /// 422; 503 when this item was not stored because Redis failed (the
    /// batch's other items were: retry this one).
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// `accepted` or `duplicate` for a 202.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Per-item results of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

/// An archived event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub account_id: Uuid,
    /// RFC 3339, milliseconds, UTC.
    pub occurred_at: String,
    pub received_at: String,
    /// The payload exactly as ingested.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
}

impl TryFrom<EventRecord> for EventView {
    type Error = ApiError;

    fn try_from(e: EventRecord) -> Result<Self, ApiError> {
        Ok(Self {
            id: e.id,
            event_type: e.event_type,
            account_id: e.account_id,
            occurred_at: format_ms(e.occurred_at_ms),
            received_at: format_ms(e.received_at_ms),
            payload: RawValue::from_string(e.payload)
                .map_err(|err| ApiError::Internal(format!("stored payload of {}: {err}", e.id)))?,
        })
    }
}

/// An event with its deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventView,
    pub deliveries: Vec<super::deliveries::DeliveryView>,
}

/// Body of `POST /v1/events/{id}/replay`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Only this subscription (it must be enabled); all matching enabled
    /// subscriptions when absent.
    pub subscription_id: Option<Uuid>,
}

/// New deliveries made by a replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    pub deliveries: Vec<Uuid>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub data: Vec<EventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events that occurred at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Only events that occurred at or before this time (RFC 3339).
    pub to: Option<String>,
}

fn rejection(r: Rejection) -> ApiError {
    match r {
        Rejection::Invalid(i) => ApiError::Invalid(i),
        Rejection::TooLarge { limit, .. } => ApiError::PayloadTooLarge { limit },
    }
}

fn check(
    req: &IngestRequest,
    header_key: Option<&str>,
    st: &AppState,
    now: DateTime<Utc>,
) -> Result<NewEvent, ApiError> {
    event::accept(
        Submitted {
            event_type: &req.event_type,
            account_id: &req.account_id,
            payload: &req.payload,
            occurred_at: req.occurred_at.as_deref(),
            idempotency_key: header_key.or(req.idempotency_key.as_deref()),
        },
        &st.catalog,
        &st.ingest_rules(),
        now,
    )
    .map_err(rejection)
}

fn outcome_result(o: &IngestOutcome) -> Result<Accepted, ApiError> {
    match o {
        IngestOutcome::Created { id, .. } => Ok(Accepted {
            id: *id,
            status: "accepted",
        }),
        IngestOutcome::Duplicate(id) => Ok(Accepted {
            id: *id,
            status: "duplicate",
        }),
        IngestOutcome::Conflict(_) => Err(ApiError::Conflict(
            "idempotency_conflict",
            "this Idempotency-Key was already used for a different event".into(),
        )),
        IngestOutcome::NoAccount => Err(Invalid::new("account_id", "no such account").into()),
        IngestOutcome::NotStored(cause) => Err(ApiError::Unavailable(cause.clone())),
    }
}

/// Ingest one event (admin). Answers 202 only once the event is stored in
/// Redis. With an `Idempotency-Key`, a retry of the same request answers the
/// first event's id and stores nothing.
#[utoipa::path(
    post, path = "/v1/events", tag = "events", operation_id = "ingest_event",
    request_body = IngestRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and request return the first event")),
    security(("admin_key" = [])),
    responses(
        (status = 202, body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Idempotency-Key reused for a different event"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn ingest(
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limits = &st.settings.limits;
    let bytes = body::read(
        &req,
        payload,
        limits.max_payload_bytes.get() + limits.max_body_bytes,
    )
    .await?;
    let input: IngestRequest = body::parse(&bytes)?;
    let header_key = match req.headers().get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Invalid::new("idempotency_key", "must be printable ASCII"))?,
        ),
    };
    let now = st.clock.now();
    let event = check(&input, header_key, &st, now)?;
    let outcomes = st
        .store
        .ingest(std::slice::from_ref(&event), now.timestamp_millis())
        .await?;
    st.after_ingest(std::slice::from_ref(&event), &outcomes);
    let accepted = outcome_result(&outcomes[0])?;
    let mut res = HttpResponse::Accepted();
    if accepted.status == "duplicate" {
        res.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    Ok(res.json(accepted))
}

/// Ingest up to 1,000 events in one request (admin). Every item gets its own
/// result; valid items are stored even when others are rejected. The
/// response comes once every accepted item is stored.
#[utoipa::path(
    post, path = "/v1/events/batch", tag = "events", operation_id = "ingest_batch",
    request_body = BatchRequest,
    security(("admin_key" = [])),
    responses(
        (status = 200, body = BatchResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn ingest_batch(
    _admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limits = &st.settings.limits;
    let bytes = body::read(&req, payload, limits.max_batch_body_bytes).await?;
    let batch: BatchRequest = body::parse(&bytes)?;
    if batch.events.is_empty() || batch.events.len() > limits.max_batch_events.get() {
        return Err(Invalid::new(
            "events",
            format!("must hold 1 to {} events", limits.max_batch_events),
        )
        .into());
    }
    let now = st.clock.now();
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(batch.events.len());
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for (index, raw) in batch.events.iter().enumerate() {
        let checked = body::parse::<IngestRequest>(raw.get().as_bytes())
            .and_then(|item| check(&item, None, &st, now));
        match checked {
            Ok(e) => {
                valid.push(e);
                positions.push(index);
                results.push(None);
            }
            Err(err) => results.push(Some(failed(index, &err))),
        }
    }
    if !valid.is_empty() {
        let outcomes = st.store.ingest(&valid, now.timestamp_millis()).await?;
        st.after_ingest(&valid, &outcomes);
        for (index, outcome) in positions.into_iter().zip(outcomes) {
            results[index] = Some(match outcome_result(&outcome) {
                Ok(a) => BatchItem {
                    index,
                    status: 202,
                    id: Some(a.id),
                    outcome: Some(a.status),
                    error: None,
                },
                Err(err) => failed(index, &err),
            });
        }
    }
    let results: Vec<BatchItem> = results.into_iter().flatten().collect();
    let accepted = results.iter().filter(|r| r.status == 202).count();
    Ok(HttpResponse::Ok().json(BatchResponse {
        accepted,
        rejected: results.len() - accepted,
        results,
    }))
}

fn failed(index: usize, err: &ApiError) -> BatchItem {
    BatchItem {
        index,
        status: err.status_code().as_u16(),
        id: None,
        outcome: None,
        error: Some(err.body().error),
    }
}

pub(crate) fn parse_time(field: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp_millis())
            .map_err(|_| Invalid::new(field, "must be an RFC 3339 timestamp").into())
    })
    .transpose()
}

/// List the account's events, newest first.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "list_events",
    params(EventQuery, PageQuery),
    security(("account_key" = [])),
    responses(
        (status = 200, body = EventList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn list(
    caller: Account,
    filter: web::Query<EventQuery>,
    page: web::Query<PageQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = st.paging(&page)?;
    if let Some(t) = &filter.event_type {
        if !st.catalog.contains(t) {
            return Err(Invalid::new("type", format!("unknown event type `{t}`")).into());
        }
    }
    let from_ms = parse_time("from", filter.from.as_deref())?;
    let to_ms = parse_time("to", filter.to.as_deref())?;
    let f = EventFilter {
        event_type: filter.event_type.clone(),
        from_ms,
        to_ms,
        cursor,
        limit,
    };
    let page = st
        .store
        .list_events(&caller.account.id, &f, st.clock.now_ms())
        .await?;
    let data = page
        .items
        .into_iter()
        .map(EventView::try_from)
        .collect::<Result<_, _>>()?;
    Ok(HttpResponse::Ok().json(EventList {
        data,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// One of the account's events with its stored payload and its deliveries.
#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events", operation_id = "get_event",
    params(("id" = Uuid, Path, description = "Event id")),
    security(("account_key" = [])),
    responses(
        (status = 200, body = EventDetail),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn get(
    caller: Account,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id).ok_or(ApiError::NotFound("event"))?;
    let event = st
        .store
        .get_event(&caller.account.id, &id, st.clock.now_ms())
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    let deliveries = st.store.event_deliveries(&caller.account.id, &id).await?;
    Ok(HttpResponse::Ok().json(EventDetail {
        event: EventView::try_from(event)?,
        deliveries: deliveries
            .into_iter()
            .map(|d| super::deliveries::DeliveryView::new(d, false))
            .collect(),
    }))
}

/// Deliver an archived event again: to every enabled subscription that
/// matches its type now, or to one given subscription. The new deliveries
/// have new ids and are marked as replays.
#[utoipa::path(
    post, path = "/v1/events/{id}/replay", tag = "events", operation_id = "replay_event",
    params(("id" = Uuid, Path, description = "Event id")),
    request_body(content = Option<ReplayRequest>),
    security(("account_key" = [])),
    responses(
        (status = 202, body = Replayed),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn replay(
    caller: Account,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(&req, payload, st.settings.limits.max_body_bytes).await?;
    // No body, an empty one and `null` all mean "every matching subscription".
    let input: ReplayRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        body::parse::<Option<ReplayRequest>>(&bytes)?.unwrap_or_default()
    };
    let deliveries = replay_event(&st, &caller.account.id, &id, input.subscription_id).await?;
    Ok(HttpResponse::Accepted().json(Replayed { deliveries }))
}

/// Delivers the account's event `id` again: to `subscription` (which must
/// be enabled and take the event's type) or to every matching one. Returns
/// the new deliveries' ids. The API and the dashboard both replay here.
pub(crate) async fn replay_event(
    st: &AppState,
    account: &Uuid,
    id: &str,
    subscription: Option<Uuid>,
) -> Result<Vec<Uuid>, ApiError> {
    let id = parse_id(id).ok_or(ApiError::NotFound("event"))?;
    let event = st
        .store
        .get_event(account, &id, st.clock.now_ms())
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    let targets = match subscription {
        Some(sub_id) => {
            let sub = st
                .store
                .get_subscription(account, &sub_id)
                .await?
                .ok_or_else(|| Invalid::new("subscription_id", "no such subscription"))?;
            if !sub.enabled {
                return Err(Invalid::new("subscription_id", "the subscription is disabled").into());
            }
            if !sub.takes(&event.event_type) {
                return Err(Invalid::new(
                    "subscription_id",
                    format!(
                        "the subscription does not take `{}` events",
                        event.event_type
                    ),
                )
                .into());
            }
            vec![sub.id]
        }
        None => st.store.routes_for(account, &event.event_type).await?,
    };
    let now = st.clock.now_ms();
    let deliveries = match st.store.replay(account, &id, &targets, now).await? {
        store::Replayed::Created(ids) => ids,
        store::Replayed::EventGone => return Err(ApiError::NotFound("event")),
        store::Replayed::SubscriptionGone => {
            return Err(Invalid::new("subscription_id", "no such subscription").into())
        }
    };
    if !deliveries.is_empty() {
        metrics::counter!(crate::metrics::DELIVERIES_CREATED).increment(deliveries.len() as u64);
        st.wake.notify_one();
    }
    Ok(deliveries)
}
