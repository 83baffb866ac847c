//! The operators' page (a session signed in with an admin key): every
//! shard's queues, read straight from Redis, so it shows the whole fleet
//! whichever replica serves it.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::charts::TrafficChart;
use super::error::PageError;
use super::session::Operator;
use super::view::{self, Chrome};
use crate::api::AppState;
use crate::domain::stats::{hour_of, minute_of, MINUTE_MS};
use crate::queues::{age, oldest_due_age, CIRCUITS_WITHIN_MS};
use crate::store::ShardQueues;

/// A shard's row, with the age of its oldest due delivery.
pub struct QueueRow {
    q: ShardQueues,
    /// How long the oldest due delivery has waited, e.g. `3 s`.
    oldest_due_age: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/operator.html")]
struct OperatorPage {
    c: Chrome,
    rows: Vec<QueueRow>,
    total: ShardQueues,
    traffic: TrafficChart,
    open_circuits: Vec<OpenCircuit>,
    failing: Vec<(String, u64)>,
}

/// An endpoint last seen with an open circuit.
pub struct OpenCircuit {
    endpoint: String,
    /// `probe after 14:02:11 UTC`, or `cooldown over, waiting for a probe`.
    state: String,
}

/// Minutes of traffic the page shows.
const TRAFFIC_MINUTES: i64 = 30;
/// Endpoints listed by failures.
const TOP_FAILING: usize = 10;

/// `GET /dashboard/operator`.
pub async fn queues(op: Operator, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let now = st.clock.now_ms();
    let minute = minute_of(now);
    let hour = hour_of(now);
    let (shards, traffic, open, failing) = tokio::try_join!(
        st.store.shard_queues(now),
        st.store.traffic(minute - TRAFFIC_MINUTES + 1, minute),
        st.store.open_circuits(now - CIRCUITS_WITHIN_MS),
        st.store.top_failing_endpoints(hour - 23, hour, TOP_FAILING),
    )?;
    let open_circuits = open
        .into_iter()
        .map(|(endpoint, until)| OpenCircuit {
            endpoint,
            state: if until > now {
                format!("probe after {}", view::when(until))
            } else {
                "cooldown over: the next delivery probes it".to_owned()
            },
        })
        .collect();
    let total = ShardQueues::total(&shards);
    view::html(&OperatorPage {
        c: Chrome::operator(&op.session),
        rows: shards
            .into_iter()
            .map(|q| QueueRow {
                oldest_due_age: oldest_due_age(&q, now).map(age),
                q,
            })
            .collect(),
        total,
        traffic: TrafficChart::new(&traffic, now - minute * MINUTE_MS),
        open_circuits,
        failing,
    })
}
