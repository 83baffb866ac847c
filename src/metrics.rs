//! Prometheus metrics: names in one place, one recorder per process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const EVENTS_INGESTED: &str = "courier_events_ingested_total";
pub const DELIVERIES_CREATED: &str = "courier_deliveries_created_total";
/// Label `result`: `success`, `failure`, `gone`.
pub const ATTEMPTS: &str = "courier_delivery_attempts_total";
/// Label `outcome`: `succeeded`, `failed`, `dropped`.
pub const DELIVERIES_FINISHED: &str = "courier_deliveries_finished_total";
pub const ATTEMPT_DURATION: &str = "courier_attempt_duration_seconds";
pub const SCHEDULE_DEPTH: &str = "courier_schedule_depth";
pub const LEASES_DEPTH: &str = "courier_leases_depth";
pub const IN_FLIGHT: &str = "courier_in_flight";
pub const OPEN_CIRCUITS: &str = "courier_open_circuits";
/// Endpoint deliverers alive in this process.
pub const DELIVERERS: &str = "courier_endpoint_deliverers";
/// Subscriptions in this process's cache.
pub const CACHED_SUBSCRIPTIONS: &str = "courier_cached_subscriptions";
pub const SUBSCRIPTIONS_DISABLED: &str = "courier_subscriptions_disabled_total";
/// Emails handed to the SMTP server, by kind and result.
pub const EMAILS: &str = "courier_emails_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first use and returns the handle that renders
/// the text format.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(ATTEMPT_DURATION.to_owned()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ],
            )
            .expect("bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may exist (e.g. a host application's): then
        // courier's metrics go there and /metrics shows what this one has.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(EVENTS_INGESTED, "Events stored by ingest");
    metrics::describe_counter!(
        DELIVERIES_CREATED,
        "Deliveries created by fan-out and replay"
    );
    metrics::describe_counter!(ATTEMPTS, "Delivery attempts by result");
    metrics::describe_counter!(
        EMAILS,
        "Emails sent (kind: event, digest, notice; result: accepted, transient, permanent)"
    );
    metrics::describe_counter!(DELIVERIES_FINISHED, "Deliveries that reached a final state");
    metrics::describe_histogram!(ATTEMPT_DURATION, "Duration of one delivery attempt");
    metrics::describe_gauge!(
        SCHEDULE_DEPTH,
        "Deliveries waiting in the schedule (all shards)"
    );
    metrics::describe_gauge!(
        LEASES_DEPTH,
        "Deliveries claimed and in flight (all replicas)"
    );
    metrics::describe_gauge!(
        IN_FLIGHT,
        "Deliveries claimed by this process and unfinished"
    );
    metrics::describe_gauge!(
        OPEN_CIRCUITS,
        "Endpoints whose circuit is open in this process"
    );
    metrics::describe_gauge!(
        DELIVERERS,
        "Endpoint deliverers alive in this process (idle ones are stopped)"
    );
    metrics::describe_gauge!(
        CACHED_SUBSCRIPTIONS,
        "Subscriptions held in this process's cache"
    );
    metrics::describe_counter!(
        SUBSCRIPTIONS_DISABLED,
        "Subscriptions disabled by courier (410, days of failure)"
    );
}
