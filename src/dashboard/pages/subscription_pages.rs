//! The overview (every subscription with its health) and a subscription's
//! page with its deliveries.

use actix_web::{web, HttpResponse};
use askama::Template;
use futures_util::future::join_all;
use serde::Deserialize;

use super::{circuit_of, load_subscription, time_field, CursorQuery, DeliveryRow, SubRow};
use crate::api::{AppState, PageQuery};
use crate::dashboard::charts::Health;
use crate::dashboard::error::PageError;
use crate::dashboard::session::Viewer;
use crate::dashboard::view::{self, when, Chrome};
use crate::domain::delivery::DeliveryStatus;
use crate::domain::stats::hour_of;
use crate::store::DeliveryFilter;

/// A subscription on the overview: its row and its last 24 hours.
struct OverviewRow {
    sub: SubRow,
    health: Health,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    c: Chrome,
    rows: Vec<OverviewRow>,
    next: Option<String>,
}

/// `GET /dashboard`: every subscription with its health.
pub async fn overview(
    viewer: Viewer,
    q: web::Query<CursorQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let (limit, cursor) = st.paging(&q.page())?;
    let account = viewer.account.id;
    let page = st
        .store
        .list_subscriptions(&account, cursor.as_ref(), limit)
        .await?;
    // The last 24 hours, the current one included.
    let now_hour = hour_of(st.clock.now_ms());
    let ids: Vec<_> = page.items.iter().map(|s| s.id).collect();
    let mut stats = st
        .store
        .sub_stats(
            st.store.keys().shard_of(&account),
            &ids,
            now_hour - 23,
            now_hour,
        )
        .await?;
    let rows = join_all(page.items.iter().map(|s| {
        let st = &st;
        async move {
            let circuit = circuit_of(st, s).await?;
            let newest = st
                .store
                .list_deliveries(
                    &account,
                    &s.id,
                    &DeliveryFilter {
                        status: None,
                        from_ms: None,
                        to_ms: None,
                        cursor: None,
                        limit: 1,
                    },
                )
                .await?;
            let last_error = newest.items.into_iter().next().and_then(|d| d.error);
            Ok::<_, PageError>((s.id, SubRow::new(s, circuit, last_error)))
        }
    }))
    .await
    .into_iter()
    .map(|row| {
        row.map(|(id, row)| OverviewRow {
            health: Health::new(&stats.remove(&id).unwrap_or_default()),
            sub: row,
        })
    })
    .collect::<Result<Vec<_>, _>>()?;
    view::html(&OverviewPage {
        c: Chrome::signed_in(&viewer, "overview"),
        rows,
        next: page.next.map(|c| c.encode()),
    })
}

/// `?status=&cursor=` of a subscription page (and what a recovery did).
#[derive(Debug, Deserialize)]
pub struct DeliveryQuery {
    status: Option<String>,
    /// Created at or after / at or before (form times, UTC).
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    recovered: Option<usize>,
    in_flight: Option<usize>,
}

#[derive(Template)]
#[template(path = "dashboard/subscription.html")]
struct SubscriptionPage {
    c: Chrome,
    sub: SubRow,
    created: String,
    rate_limit: Option<u32>,
    /// The status filter; None for any.
    status: Option<DeliveryStatus>,
    statuses: [DeliveryStatus; 3],
    /// The time range as typed (to fill the form and the next page's link).
    from: String,
    to: String,
    deliveries: Vec<DeliveryRow>,
    next: Option<String>,
    /// After a recovery: (queued, left alone because in flight).
    recovered: Option<(usize, usize)>,
    /// The recover form's default: a day ago.
    recover_since: String,
}

impl SubscriptionPage {
    /// The status filter as the next page's link carries it ('' for any).
    fn status_text(&self) -> &'static str {
        self.status.map_or("", DeliveryStatus::as_str)
    }
}

/// `GET /dashboard/subscriptions/{id}`: the subscription and its
/// deliveries, newest first, by status and creation time, a page at a time.
pub async fn subscription(
    viewer: Viewer,
    id: web::Path<String>,
    q: web::Query<DeliveryQuery>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let sub = load_subscription(&st, &viewer, &id).await?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            PageError::BadRequest("status must be pending, succeeded or failed".into())
        })?),
    };
    let from_ms = time_field("from", q.from.as_deref())?;
    let to_ms = time_field("to", q.to.as_deref())?;
    let (limit, cursor) = st.paging(&PageQuery {
        limit: None,
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
    })?;
    let page = st
        .store
        .list_deliveries(
            &viewer.account.id,
            &sub.id,
            &DeliveryFilter {
                status,
                from_ms,
                to_ms,
                cursor: cursor.as_ref(),
                limit,
            },
        )
        .await?;
    let circuit = circuit_of(&st, &sub).await?;
    view::html(&SubscriptionPage {
        c: Chrome::signed_in(&viewer, "overview"),
        created: when(sub.created_at_ms),
        rate_limit: sub.rate_limit,
        sub: SubRow::new(&sub, circuit, None),
        status,
        statuses: DeliveryStatus::ALL,
        from: from_ms.map(view::time_input).unwrap_or_default(),
        to: to_ms.map(view::time_input).unwrap_or_default(),
        deliveries: page.items.into_iter().map(DeliveryRow::from).collect(),
        next: page.next.map(|c| c.encode()),
        recovered: q.recovered.map(|n| (n, q.in_flight.unwrap_or(0))),
        recover_since: view::time_input(st.clock.now_ms() - 86_400_000),
    })
}
