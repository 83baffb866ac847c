//! The Lua scripts that keep an endpoint's circuit and a subscription's rate
//! limit in Redis follow the pure rules of `delivery::breaker` and
//! `delivery::ratelimit` step for step, and their keys expire.

use courier::delivery::breaker::{BreakerConfig, Circuit, Signal};
use courier::delivery::ratelimit::Gcra;
use courier::store::{Store, ENDPOINT_TTL_MS};
use uuid::Uuid;

use crate::helpers::{cleanup_prefix, connect_store, test_settings};

/// A store of its own under a fresh prefix (removed by `Cleanup`).
async fn store() -> (Store, Cleanup) {
    let settings = test_settings();
    let prefix = settings.redis.key_prefix.clone();
    let store = connect_store(&settings).await;
    (store, Cleanup(prefix))
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup_prefix(&self.0);
    }
}

fn pttl(key: &str) -> i64 {
    let mut conn = crate::helpers::redis_connection(&crate::helpers::redis_url());
    redis::cmd("PTTL").arg(key).query(&mut conn).unwrap()
}

/// One step applied to the model and to Redis.
enum Step {
    Record(i64, Signal, Option<&'static str>),
    Probe(i64, &'static str),
}

#[actix_web::test]
async fn the_circuit_scripts_follow_the_breaker_rules() {
    use Signal::*;
    use Step::*;
    let cfg = BreakerConfig {
        failure_threshold: 3,
        base_cooldown_ms: 1_000,
        max_cooldown_ms: 4_000,
    };
    let lease = 500;
    let steps = [
        Record(0, Failure, None),
        Record(1, Failure, None),
        Record(2, Success, None),
        Record(3, Failure, None),
        Record(4, Neutral, None),
        Record(5, Failure, None),
        Record(6, Failure, None),
        // Open. Requests sent before then fail later: no change.
        Record(7, Failure, None),
        Record(8, Failure, None),
        Probe(500, "early"),
        Probe(1_006, "a"),
        Probe(1_100, "b"),
        Record(1_200, Failure, Some("b")),
        Record(1_300, Failure, Some("a")),
        Probe(3_300, "c"),
        // The probe "c" was lost: its lease ran out.
        Probe(3_900, "d"),
        Record(3_950, Neutral, Some("d")),
        Record(3_960, Failure, Some("c")),
        Probe(3_970, "e"),
        Record(4_000, Failure, Some("e")),
        Probe(8_000, "f"),
        Record(8_100, Failure, Some("f")),
        Probe(12_100, "g"),
        Record(12_200, Success, Some("g")),
    ];
    let (store, _cleanup) = store().await;
    let url = format!("https://{}.example/in", Uuid::new_v4().simple());
    let mut model = Circuit::default();
    for (i, step) in steps.iter().enumerate() {
        let state = match *step {
            Record(now, signal, probe) => {
                model.record(signal, probe, now, &cfg);
                store
                    .record_endpoint(&url, signal, probe, &cfg, now)
                    .await
                    .unwrap()
            }
            Probe(now, token) => {
                let expected = model.try_probe(token, now, lease);
                let (taken, state) = store.take_probe(&url, token, lease, now).await.unwrap();
                assert_eq!(taken, expected, "step {i}: probe {token} at {now}");
                state
            }
        };
        assert_eq!(state.circuit, model, "step {i}");
    }
    assert_eq!(
        store.endpoint_state(&url).await.unwrap().circuit,
        Circuit::default()
    );
    let ttl = pttl(&store.keys().endpoint(&url));
    assert!(
        ttl > ENDPOINT_TTL_MS - 60_000 && ttl <= ENDPOINT_TTL_MS,
        "{ttl}"
    );
}

#[actix_web::test]
async fn failing_since_and_last_success_follow_the_attempts() {
    let cfg = BreakerConfig {
        failure_threshold: 5,
        base_cooldown_ms: 1_000,
        max_cooldown_ms: 4_000,
    };
    let (store, _cleanup) = store().await;
    let url = format!("https://{}.example/in", Uuid::new_v4().simple());
    let s = store
        .record_endpoint(&url, Signal::Failure, None, &cfg, 10)
        .await
        .unwrap();
    assert_eq!((s.failing_since_ms, s.last_success_ms), (Some(10), None));
    let s = store
        .record_endpoint(&url, Signal::Failure, None, &cfg, 20)
        .await
        .unwrap();
    assert_eq!(s.failing_since_ms, Some(10));
    // A 410 is no success.
    let s = store
        .record_endpoint(&url, Signal::Neutral, None, &cfg, 30)
        .await
        .unwrap();
    assert_eq!((s.failing_since_ms, s.last_success_ms), (Some(10), None));
    let s = store
        .record_endpoint(&url, Signal::Success, None, &cfg, 40)
        .await
        .unwrap();
    assert_eq!((s.failing_since_ms, s.last_success_ms), (None, Some(40)));
}

#[actix_web::test]
async fn the_rate_script_follows_the_gcra_rules() {
    let (store, _cleanup) = store().await;
    let (account, sub) = (Uuid::now_v7(), Uuid::now_v7());
    let limit = Gcra::per_second(3);
    let mut tat = None;
    let start = 1_700_000_000_000;
    for (i, at) in [
        0, 0, 0, 0, 1, 100, 333, 334, 335, 700, 1_000, 1_001, 5_000, 5_000, 5_000, 5_000,
    ]
    .into_iter()
    .enumerate()
    {
        let now = start + at;
        let expected = limit.check(tat, now);
        if let Ok(next) = expected {
            tat = Some(next);
        }
        let got = store.take_rate(&account, &sub, &limit, now).await.unwrap();
        assert_eq!(got, expected.map(|_| ()), "step {i} at {at}");
    }
    // The key lives until its TAT has passed (and a second more).
    let ttl = pttl(&store.keys().rate(&account, &sub));
    assert!(ttl > 0, "{ttl}");
}
