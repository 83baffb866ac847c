//! Bounded growth: once the archive's retention has passed, nothing of the
//! expired events remains in Redis (indexes included, even those that keep
//! being written to), and the engine's in-memory state returns to empty.

use std::time::{Duration, Instant};

use courier::delivery::engine::Held;
use serde_json::json;

use crate::helpers::{spawn_app_with, test_settings, TestApp};
use crate::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(15);

fn count(app: &TestApp, pattern: &str) -> usize {
    app.redis_keys()
        .iter()
        .filter(|k| k.contains(pattern))
        .count()
}

fn zcard(app: &TestApp, key: &str) -> usize {
    let mut conn = app.redis();
    redis::cmd("ZCARD").arg(key).query(&mut conn).unwrap()
}

fn pttl(app: &TestApp, key: &str) -> i64 {
    let mut conn = app.redis();
    redis::cmd("PTTL").arg(key).query(&mut conn).unwrap()
}

async fn wait_for_failed(app: &TestApp, key: &str, sub: &str, n: usize) {
    let path = format!("/v1/subscriptions/{sub}/deliveries?status=failed&limit=100");
    let got = app
        .poll_until(&path, key, WAIT, |b| {
            b["data"].as_array().is_some_and(|d| d.len() == n)
        })
        .await;
    let all = app
        .get(&format!("/v1/subscriptions/{sub}/deliveries"), Some(key))
        .await;
    assert_eq!(
        got["data"].as_array().unwrap().len(),
        n,
        "{got} {} {:?}",
        all.body,
        app.redis_snapshot()
    );
}

#[actix_web::test]
async fn after_retention_no_expired_data_remains_and_memory_returns_to_its_baseline() {
    let rx = Receiver::start().await;
    rx.default_reply("/down", Reply::status(500));
    let app = spawn_app_with(|s| {
        s.delivery.breaker_failure_threshold = 1_000.try_into().unwrap();
        s.delivery.retry_schedule = vec![crate::helpers::delay("50ms")];
        s.delivery.deliverer_idle_secs = 1.try_into().unwrap();
        s.delivery.index_trim_secs = 1.try_into().unwrap();
    })
    .await;
    let engine = app.engine.clone().expect("the engine runs");
    let idle = Held {
        deliverers: 0,
        cached_subscriptions: 0,
    };
    assert_eq!(engine.held(), idle);
    let retention = test_settings().retention();
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/down"), &["*"], json!({}))
        .await;

    // Ten events from just under a retention ago: they pass the retention
    // a few seconds from now. Every delivery fails.
    let expires_in = Duration::from_secs(4);
    let rewound = Instant::now();
    app.clock.rewind(retention - expires_in);
    for i in 0..10 {
        assert_eq!(app.ingest(&account, &format!("old_{i}")).await.status, 202);
    }
    wait_for_failed(&app, &key, &sub, 10).await;
    assert!(engine.held().deliverers > 0);
    assert!(engine.held().cached_subscriptions > 0);

    // Retention passes; then one new event, which fails as well. The
    // janitor's retention pass (every second here) deletes the expired
    // events with their deliveries, then trims the indexes.
    app.clock.reset();
    actix_web::rt::time::sleep(
        (expires_in + Duration::from_millis(500)).saturating_sub(rewound.elapsed()),
    )
    .await;
    let fresh = app.ingest(&account, "new").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_failed(&app, &key, &sub, 1).await;

    let keys = courier::store::Keys::new(app.prefix.clone(), test_settings().redis.shards);
    let acct = uuid::Uuid::parse_str(&account).unwrap();
    let sub_id = uuid::Uuid::parse_str(&sub).unwrap();
    assert_eq!(count(&app, ":event:"), 1, "only the new event is archived");
    assert!(app.redis_keys().iter().any(|k| k.ends_with(&fresh)));
    // Only the new delivery (its hash, and its list of attempts after the
    // first, if any).
    let new_delivery = app
        .get(&format!("/v1/events/{fresh}"), Some(&key))
        .await
        .body["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deliveries: Vec<String> = app
        .redis_keys()
        .into_iter()
        .filter(|k| k.contains(":dlv:"))
        .collect();
    assert!(
        !deliveries.is_empty() && deliveries.iter().all(|k| k.contains(&new_delivery)),
        "only the new delivery: {deliveries:?}"
    );
    let indexes = [
        keys.events(&acct, None),
        keys.events(&acct, Some("customer.created")),
        keys.subscription_deliveries(&acct, &sub_id),
        keys.failed_deliveries(&acct, &sub_id),
    ];
    // The next trim (within a second) finds the old entries past the
    // retention.
    let until = Instant::now() + WAIT;
    while indexes.iter().any(|i| zcard(&app, i) != 1) && Instant::now() < until {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    for index in &indexes {
        assert_eq!(zcard(&app, index), 1, "{index} holds only the new entry");
        assert!(
            pttl(&app, index) > 0,
            "{index} expires when no trim keeps it"
        );
    }

    // In memory: the idle endpoint's deliverer stops, and the cached
    // subscription goes once it is older than the cache's TTL.
    app.clock.advance(Duration::from_secs(120));
    let until = Instant::now() + WAIT;
    while engine.held() != idle && Instant::now() < until {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(engine.held(), idle);
}
