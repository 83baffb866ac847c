//! Subscriptions: which event types an account receives, and where.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Account;
use super::error::{ApiError, ErrorBody};
use super::{body, AppState, PageQuery};
use crate::delivery::breaker::BreakerState;
use crate::delivery::test_send::{self, NotAWebhook, TestAnswer};
use crate::domain::api_key::new_signing_secret;
use crate::domain::event::format_ms;
use crate::domain::parse_id;
use crate::domain::subscription::{
    check_channel, check_description, check_event_types, check_rate_limit, Channel, Subscription,
};
use crate::store::PutOutcome;

/// Attempts of a read-modify-write before answering 409.
const WRITE_ATTEMPTS: usize = 5;

/// Body of `POST /v1/subscriptions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// Event types to receive, or `["*"]` for all.
    pub event_types: Vec<String>,
    pub channel: Channel,
    pub description: Option<String>,
    /// Defaults to true.
    pub enabled: Option<bool>,
    /// Most notifications per second (webhooks); absent means no limit.
    pub rate_limit: Option<u32>,
}

/// Body of `PATCH /v1/subscriptions/{id}`: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscription {
    pub event_types: Option<Vec<String>>,
    pub channel: Option<Channel>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "present_u32")]
    #[schema(value_type = Option<u32>)]
    pub rate_limit: Option<Option<u32>>,
}

fn present_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Tells "absent" (outer None) from "null" (Some(None)).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: Uuid,
    pub event_types: Vec<String>,
    pub channel: Channel,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why courier disabled the subscription, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Most notifications per second; absent means no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
    /// The `whsec_` signing secret; only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The webhook endpoint's health (on `GET /v1/subscriptions/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointView>,
}

/// What courier knows of a webhook endpoint, shared by every replica.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// The circuit breaker: `closed`, `open` (deliveries wait, no attempts
    /// spent) or `half_open` (one probe under way).
    pub circuit: BreakerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// First failure since the last success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
}

/// A rotated signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret; it signs every notification from now on.
    pub secret: String,
    /// Until then the previous secret signs too (a second signature).
    pub previous_secret_expires_at: String,
}

/// The result of a test notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// True for a 2xx answer.
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `webhook-id` the test carried.
    pub webhook_id: Uuid,
}

impl From<TestAnswer> for TestResult {
    fn from(a: TestAnswer) -> Self {
        Self {
            success: a.success,
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            response: a.response,
            error: a.error,
            webhook_id: a.webhook_id,
        }
    }
}

impl From<NotAWebhook> for ApiError {
    fn from(e: NotAWebhook) -> Self {
        ApiError::Unprocessable("not_a_webhook", e.to_string())
    }
}

impl SubscriptionView {
    fn new(s: &Subscription, show_secret: bool) -> Self {
        Self {
            id: s.id,
            event_types: s.event_types.clone(),
            channel: s.channel.clone(),
            description: s.description.clone(),
            enabled: s.enabled,
            disabled_reason: s.disabled_reason.clone(),
            rate_limit: s.rate_limit,
            created_at: format_ms(s.created_at_ms),
            updated_at: format_ms(s.updated_at_ms),
            secret: if show_secret { s.secret.clone() } else { None },
            endpoint: None,
        }
    }
}

/// A page of subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub data: Vec<SubscriptionView>,
    pub next_cursor: Option<String>,
}

fn limit_error(st: &AppState) -> ApiError {
    ApiError::Unprocessable(
        "too_many_subscriptions",
        format!(
            "an account may hold at most {} subscriptions",
            st.settings.limits.max_subscriptions_per_account
        ),
    )
}

/// Create a subscription. Webhook subscriptions get a signing secret, shown
/// only in this answer.
#[utoipa::path(
    post, path = "/v1/subscriptions", tag = "subscriptions", operation_id = "create_subscription",
    request_body = CreateSubscription,
    security(("account_key" = [])),
    responses(
        (status = 201, body = SubscriptionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn create(
    caller: Account,
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let input: CreateSubscription =
        body::json(&req, payload, st.settings.limits.max_body_bytes).await?;
    let sub = create_in(&st, &caller.account.id, &input).await?;
    Ok(HttpResponse::Created().json(SubscriptionView::new(&sub, true)))
}

/// Checks `input` and stores it as a new subscription of the account. The
/// API and the dashboard both create here.
pub(crate) async fn create_in(
    st: &AppState,
    account: &Uuid,
    input: &CreateSubscription,
) -> Result<Subscription, ApiError> {
    let event_types = check_event_types(
        &input.event_types,
        &st.catalog,
        st.settings.limits.max_event_types_per_subscription.get(),
    )?;
    let channel = check_channel(&input.channel, &st.subscription_rules())?;
    st.check_target(&channel).await?;
    let description = check_description(input.description.as_deref())?;
    let now = st.clock.now_ms();
    let sub = Subscription {
        id: Uuid::now_v7(),
        account_id: *account,
        event_types,
        secret: channel.is_webhook().then(new_signing_secret),
        previous_secret: None,
        previous_secret_expires_at_ms: None,
        rate_limit: check_rate_limit(input.rate_limit)?,
        disabled_reason: None,
        channel,
        description,
        enabled: input.enabled.unwrap_or(true),
        created_at_ms: now,
        updated_at_ms: now,
        version: 1,
    };
    match st
        .store
        .put_subscription(
            &sub,
            None,
            st.settings.limits.max_subscriptions_per_account.get(),
        )
        .await?
    {
        PutOutcome::Ok => Ok(sub),
        PutOutcome::Limit => Err(limit_error(st)),
        other => Err(ApiError::Internal(format!(
            "creating a subscription: {other:?}"
        ))),
    }
}

/// List the account's subscriptions, newest first.
#[utoipa::path(
    get, path = "/v1/subscriptions", tag = "subscriptions", operation_id = "list_subscriptions",
    params(PageQuery),
    security(("account_key" = [])),
    responses(
        (status = 200, body = SubscriptionList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn list(
    caller: Account,
    page: web::Query<PageQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = st.paging(&page)?;
    let page = st
        .store
        .list_subscriptions(&caller.account.id, cursor.as_ref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(SubscriptionList {
        data: page
            .items
            .iter()
            .map(|s| SubscriptionView::new(s, false))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

pub(crate) async fn load(
    st: &AppState,
    caller: &Account,
    id: &str,
) -> Result<Subscription, ApiError> {
    load_in(st, &caller.account.id, id).await
}

/// The account's subscription `id` (404 for another account's).
pub(crate) async fn load_in(
    st: &AppState,
    account: &Uuid,
    id: &str,
) -> Result<Subscription, ApiError> {
    let id = parse_id(id).ok_or(ApiError::NotFound("subscription"))?;
    st.store
        .get_subscription(account, &id)
        .await?
        .ok_or(ApiError::NotFound("subscription"))
}

fn concurrent_update() -> ApiError {
    ApiError::Conflict(
        "concurrent_update",
        "the subscription is being changed concurrently; retry".into(),
    )
}

/// Loads the caller's subscription, applies `change` and writes it back at
/// the version it read, starting over (up to `WRITE_ATTEMPTS` times) when
/// another write came first. Returns what was written.
async fn modify_in(
    st: &AppState,
    account: &Uuid,
    id: &str,
    mut change: impl FnMut(&mut Subscription) -> Result<(), ApiError>,
) -> Result<Subscription, ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        let current = load_in(st, account, id).await?;
        let mut next = current.clone();
        change(&mut next)?;
        next.version = current.version + 1;
        next.updated_at_ms = st.clock.now_ms();
        match st
            .store
            .put_subscription(&next, Some(current.version), 0)
            .await?
        {
            PutOutcome::Ok => return Ok(next),
            PutOutcome::Missing => return Err(ApiError::NotFound("subscription")),
            PutOutcome::Conflict => continue,
            other => {
                return Err(ApiError::Internal(format!(
                    "writing a subscription: {other:?}"
                )))
            }
        }
    }
    Err(concurrent_update())
}

/// One subscription.
#[utoipa::path(
    get, path = "/v1/subscriptions/{id}", tag = "subscriptions", operation_id = "get_subscription",
    params(("id" = Uuid, Path, description = "Subscription id")),
    security(("account_key" = [])),
    responses(
        (status = 200, body = SubscriptionView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn get(
    caller: Account,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sub = load(&st, &caller, &id).await?;
    let mut view = SubscriptionView::new(&sub, false);
    if let Channel::Webhook { url } = &sub.channel {
        let state = st.store.endpoint_state(url).await?;
        view.endpoint = Some(EndpointView {
            circuit: state.circuit.state(chrono::Utc::now().timestamp_millis()),
            last_success_at: state.last_success_ms.map(format_ms),
            failing_since: state.failing_since_ms.map(format_ms),
        });
    }
    Ok(HttpResponse::Ok().json(view))
}

/// Rotate the signing secret. For `delivery.secret_grace_hours` (24 h by
/// default) notifications carry two signatures, one per secret, so the
/// receiver can switch over without dropping any.
#[utoipa::path(
    post, path = "/v1/subscriptions/{id}/secret/rotate", tag = "subscriptions", operation_id = "rotate_subscription_secret",
    params(("id" = Uuid, Path, description = "Subscription id")),
    security(("account_key" = [])),
    responses(
        (status = 200, body = RotatedSecret),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody, description = "Not a webhook subscription"),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn rotate_secret(
    caller: Account,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(rotate_secret_in(&st, &caller.account.id, &id).await?))
}

/// Gives the account's webhook subscription `id` a new signing secret; the
/// old one signs alongside for `delivery.secret_grace_hours`. The API and
/// the dashboard both rotate here.
pub(crate) async fn rotate_secret_in(
    st: &AppState,
    account: &Uuid,
    id: &str,
) -> Result<RotatedSecret, ApiError> {
    let grace_ms = st.settings.delivery.secret_grace_hours as i64 * 3_600_000;
    let next = modify_in(st, account, id, |sub| {
        if !sub.channel.is_webhook() {
            return Err(ApiError::Unprocessable(
                "not_a_webhook",
                "only webhook subscriptions have a signing secret".into(),
            ));
        }
        sub.previous_secret = sub.secret.take();
        sub.previous_secret_expires_at_ms = Some(st.clock.now_ms() + grace_ms);
        sub.secret = Some(new_signing_secret());
        Ok(())
    })
    .await?;
    Ok(RotatedSecret {
        secret: next.secret.unwrap_or_default(),
        previous_secret_expires_at: format_ms(
            next.previous_secret_expires_at_ms.unwrap_or_default(),
        ),
    })
}

/// Send a signed test notification (`event_type` `courier.test`) to the
/// webhook now and report how the endpoint answered. Nothing is recorded.
#[utoipa::path(
    post, path = "/v1/subscriptions/{id}/test", tag = "subscriptions", operation_id = "test_subscription",
    params(("id" = Uuid, Path, description = "Subscription id")),
    security(("account_key" = [])),
    responses(
        (status = 200, body = TestResult),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "Not a webhook subscription"),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn test(
    caller: Account,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sub = load_in(&st, &caller.account.id, &id).await?;
    let now = st.clock.now_ms();
    let answer = test_send::send_test(&sub, &st.settings.delivery, &st.resolver, now).await?;
    Ok(HttpResponse::Ok().json(TestResult::from(answer)))
}

/// Change a subscription. Switching an email subscription to a webhook
/// creates a signing secret, shown in this answer.
#[utoipa::path(
    patch, path = "/v1/subscriptions/{id}", tag = "subscriptions", operation_id = "update_subscription",
    params(("id" = Uuid, Path, description = "Subscription id")),
    request_body = UpdateSubscription,
    security(("account_key" = [])),
    responses(
        (status = 200, body = SubscriptionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn update(
    caller: Account,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let input: UpdateSubscription =
        body::json(&req, payload, st.settings.limits.max_body_bytes).await?;
    let (next, new_secret) = update_in(&st, &caller.account.id, &id, &input).await?;
    Ok(HttpResponse::Ok().json(SubscriptionView::new(&next, new_secret)))
}

/// Checks `input` and applies it to the account's subscription `id`;
/// returns what was written and whether it got a new signing secret (an
/// email subscription turned webhook). The API and the dashboard both
/// change subscriptions here.
pub(crate) async fn update_in(
    st: &AppState,
    account: &Uuid,
    id: &str,
    input: &UpdateSubscription,
) -> Result<(Subscription, bool), ApiError> {
    let event_types = input
        .event_types
        .as_deref()
        .map(|t| {
            check_event_types(
                t,
                &st.catalog,
                st.settings.limits.max_event_types_per_subscription.get(),
            )
        })
        .transpose()?;
    let channel = input
        .channel
        .as_ref()
        .map(|c| check_channel(c, &st.subscription_rules()))
        .transpose()?;
    if let Some(c) = &channel {
        st.check_target(c).await?;
    }
    let description = input
        .description
        .as_ref()
        .map(|d| check_description(d.as_deref()))
        .transpose()?;
    let rate_limit = input.rate_limit.map(check_rate_limit).transpose()?;
    let mut new_secret = false;
    let next = modify_in(st, account, id, |next| {
        new_secret = false;
        if let Some(t) = &event_types {
            next.event_types = t.clone();
        }
        if let Some(c) = &channel {
            next.channel = c.clone();
            if !c.is_webhook() {
                next.secret = None;
                next.previous_secret = None;
                next.previous_secret_expires_at_ms = None;
            } else if next.secret.is_none() {
                next.secret = Some(new_signing_secret());
                new_secret = true;
            }
        }
        if let Some(d) = &description {
            next.description = d.clone();
        }
        if let Some(e) = input.enabled {
            apply_enabled(next, e);
        }
        if let Some(r) = rate_limit {
            next.rate_limit = r;
        }
        Ok(())
    })
    .await?;
    Ok((next, new_secret))
}

/// Delete a subscription. Events ingested afterwards are not delivered to it.
#[utoipa::path(
    delete, path = "/v1/subscriptions/{id}", tag = "subscriptions", operation_id = "delete_subscription",
    params(("id" = Uuid, Path, description = "Subscription id")),
    security(("account_key" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub async fn delete(
    caller: Account,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    delete_in(&st, &caller.account.id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Switches a subscription on or off; switching it on forgets why courier
/// had switched it off.
fn apply_enabled(sub: &mut Subscription, enabled: bool) {
    sub.enabled = enabled;
    if enabled {
        sub.disabled_reason = None;
    }
}

/// Enables or disables the account's subscription `id`, as `PATCH
/// {"enabled": …}` does. The dashboard's switch.
pub(crate) async fn set_enabled(
    st: &AppState,
    account: &Uuid,
    id: &str,
    enabled: bool,
) -> Result<Subscription, ApiError> {
    modify_in(st, account, id, |next| {
        apply_enabled(next, enabled);
        Ok(())
    })
    .await
}

/// Deletes the account's subscription `id`. The API and the dashboard both
/// delete here.
pub(crate) async fn delete_in(st: &AppState, account: &Uuid, id: &str) -> Result<(), ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        let current = load_in(st, account, id).await?;
        match st.store.delete_subscription(&current).await? {
            PutOutcome::Ok => return Ok(()),
            PutOutcome::Missing => return Err(ApiError::NotFound("subscription")),
            PutOutcome::Conflict => continue,
            other => {
                return Err(ApiError::Internal(format!(
                    "deleting a subscription: {other:?}"
                )))
            }
        }
    }
    Err(concurrent_update())
}
