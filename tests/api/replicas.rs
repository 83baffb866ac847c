//! Several couriers on one Redis prefix behave as one fleet: an endpoint's
//! circuit and a subscription's rate limit hold for all of them together.

use std::time::{Duration, Instant};

use serde_json::json;

use courier::settings::Settings;

use crate::helpers::{delay, millis, spawn_app_with, TestApp};
use crate::receiver::{Receiver, Reply};

/// Two couriers sharing one key prefix, both tuned by `tune`.
async fn two_replicas(tune: impl Fn(&mut Settings)) -> (TestApp, TestApp) {
    let first = spawn_app_with(&tune).await;
    let prefix = first.prefix.clone();
    let second = spawn_app_with(|s| {
        tune(s);
        s.redis.key_prefix = prefix;
    })
    .await;
    (first, second)
}

/// Gaps between consecutive arrivals.
fn gaps(at: &[Instant]) -> Vec<Duration> {
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

#[actix_web::test]
async fn a_fleet_sends_one_probe_per_cooldown_to_a_failing_endpoint() {
    let rx = Receiver::start().await;
    rx.default_reply("/down", Reply::status(500));
    let (first, second) = two_replicas(|s| {
        s.delivery.breaker_failure_threshold = 3.try_into().unwrap();
        s.delivery.breaker_cooldown_ms = millis(2_000);
        s.delivery.breaker_max_cooldown_ms = millis(8_000);
        s.delivery.retry_schedule = vec![delay("50ms"); 30];
    })
    .await;
    let (account, key) = first.create_account().await;
    first
        .subscribe(&key, &rx.url("/down"), &["*"], json!({}))
        .await;

    // Events keep arriving on both replicas for twelve seconds.
    let until = Instant::now() + Duration::from_secs(12);
    let mut i = 0;
    while Instant::now() < until {
        let app = if i % 2 == 0 { &first } else { &second };
        assert_eq!(app.ingest(&account, &format!("cus_{i}")).await.status, 202);
        i += 1;
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    }

    let at: Vec<Instant> = rx.received("/down").iter().map(|r| r.at).collect();
    // Until the circuit opens, the failures come every 150 ms or so; a
    // replica that has not heard of the opening yet may send for up to a
    // second more. The first pause longer than that is the wait for the
    // first probe.
    let gaps = gaps(&at);
    let opened = gaps
        .iter()
        .position(|g| *g > Duration::from_millis(1_500))
        .unwrap_or_else(|| panic!("the circuit never held: gaps {gaps:?}"));
    let after = &gaps[opened..];
    // The first probe follows one base cooldown (2 s, less the second a
    // late replica may take): the failures still in flight when the circuit
    // opened did not lengthen it to 4 s or more.
    assert!(
        after[0] < Duration::from_millis(3_500),
        "first probe after {:?}",
        after[0]
    );
    // From then on the whole fleet sends one request per cooldown at most
    // (2 s, then 4 s).
    assert!(
        after[1..]
            .iter()
            .all(|g| *g >= Duration::from_millis(1_800)),
        "requests closer than one cooldown after the first probe: {after:?}"
    );
    assert!(after.len() >= 2, "the probes went on: {after:?}");
}

#[actix_web::test]
async fn a_rate_limit_holds_for_the_fleet() {
    let rx = Receiver::start().await;
    let (first, second) = two_replicas(|_| {}).await;
    let (account, key) = first.create_account().await;
    first
        .subscribe(&key, &rx.url("/limited"), &["*"], json!({"rate_limit": 2}))
        .await;
    // The events arrive on both replicas in turn, so both deliver.
    for i in 0..16 {
        let app = if i % 2 == 0 { &first } else { &second };
        assert_eq!(app.ingest(&account, &format!("cus_{i}")).await.status, 202);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let got = rx.wait_for("/limited", 16, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 16);
    let at: Vec<Instant> = got.iter().map(|r| r.at).collect();
    // 2 per second with a burst of 2: a window of two seconds holds at most
    // 2 + 2 x 2 requests (one more for timing at the window's edges).
    for (i, start) in at.iter().enumerate() {
        let in_window = at[i..]
            .iter()
            .filter(|t| **t - *start < Duration::from_secs(2))
            .count();
        assert!(
            in_window <= 7,
            "{in_window} requests within two seconds: {:?}",
            gaps(&at)
        );
    }
    // After the burst, 14 requests at 2 per second take about seven seconds.
    let spread = at[15] - at[0];
    assert!(
        spread >= Duration::from_millis(5_500),
        "16 requests in {spread:?}"
    );
}
