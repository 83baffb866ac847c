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
use crate::domain::stats::{hour_of, minute_of, HOUR_MS, MINUTE_MS};
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

/// `12 ms`, `4 s`, `3 min`, `2 h`.
fn age(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{} s", ms / 1_000)
    } else if ms < 3_600_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h", ms / 3_600_000)
    }
}

/// `GET /dashboard/operator`.
pub async fn queues(op: Operator, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let now = st.clock.now_ms();
    let minute = minute_of(now);
    let hour = hour_of(now);
    let (shards, traffic, open, failing) = tokio::try_join!(
        st.store.shard_queues(now),
        st.store.traffic(minute - TRAFFIC_MINUTES + 1, minute),
        st.store.open_circuits(now - HOUR_MS),
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
    let mut total = ShardQueues::default();
    for q in &shards {
        total.due += q.due;
        total.later += q.later;
        total.leased += q.leased;
        total.lease_expired += q.lease_expired;
        total.digests += q.digests;
        total.digests_sending += q.digests_sending;
        total.outbox += q.outbox;
        total.oldest_due_ms = match (total.oldest_due_ms, q.oldest_due_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let due_age = |q: &ShardQueues| {
        q.oldest_due_ms
            .filter(|due| *due <= now && q.due > 0)
            .map(|due| age(now - due))
    };
    view::html(&OperatorPage {
        c: Chrome::operator(&op.session),
        rows: shards
            .into_iter()
            .map(|q| QueueRow {
                oldest_due_age: due_age(&q),
                q,
            })
            .collect(),
        total,
        traffic: TrafficChart::new(&traffic, now - minute * MINUTE_MS),
        open_circuits,
        failing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(age(12), "12 ms");
        assert_eq!(age(4_500), "4 s");
        assert_eq!(age(180_000), "3 min");
        assert_eq!(age(7_300_000), "2 h");
    }
}
