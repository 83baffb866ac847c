//! Micro-benchmarks of the hot path: signing, the notification body, and
//! the claim script's round trip against a real Redis
//! (`COURIER_BENCH_REDIS_URL`, else `COURIER_TEST_REDIS_URL`, else
//! redis://127.0.0.1:6379; keys under a
//! fresh prefix, removed afterwards). Run: `cargo bench --bench hot`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::value::RawValue;
use uuid::Uuid;

use courier::delivery::notification;
use courier::delivery::signing::SigningKey;
use courier::domain::api_key::new_signing_secret;
use courier::domain::catalog::Catalog;
use courier::domain::event::{accept, IngestRules, Submitted};
use courier::domain::subscription::{Channel, Subscription};
use courier::settings::Settings;
use courier::store::{AccountRecord, LeaseMs, Store};

fn payload_1k() -> String {
    format!(
        r#"{{"customer_id":"cus_bench","pad":"{}"}}"#,
        "x".repeat(990)
    )
}

fn signing(c: &mut Criterion) {
    let key = SigningKey::from_secret(&new_signing_secret()).unwrap();
    let body = notification::body(
        &Uuid::now_v7(),
        &Uuid::now_v7(),
        "customer.created",
        0,
        &Uuid::now_v7(),
        &payload_1k(),
    );
    let mut g = c.benchmark_group("hot");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign 1 KiB notification", |b| {
        b.iter(|| {
            key.sign(
                "01a22630-f1f8-71ea-8e38-f94966bf7b88",
                1_795_937_071,
                body.as_bytes(),
            )
        })
    });
    let (s, e, d) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let payload = payload_1k();
    g.bench_function("notification body, 1 KiB payload", |b| {
        b.iter(|| notification::body(&s, &e, "customer.created", 1_714_653_086_257, &d, &payload))
    });
    g.finish();
}

fn claim_round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut settings = Settings::load_from(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
        "test",
    )
    .unwrap();
    settings.redis.url = std::env::var("COURIER_BENCH_REDIS_URL")
        .or_else(|_| std::env::var("COURIER_TEST_REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        .into();
    settings.redis.key_prefix = format!("bench-{}", Uuid::new_v4().simple());
    settings.redis.shards = 1;
    let target = courier::store::RedisTarget::from_settings(&settings.redis).unwrap();
    let store = rt.block_on(Store::connect(&settings, &target)).unwrap();
    let account = Uuid::now_v7();
    let catalog = Catalog::new(&[]).unwrap();
    let rules = IngestRules {
        max_payload_bytes: 1 << 20,
        retention: settings.retention(),
        max_future_skew: std::time::Duration::from_secs(60),
    };
    rt.block_on(async {
        store
            .create_account(&AccountRecord {
                id: account,
                name: "bench".into(),
                contact_email: "b@example.com".into(),
                key_hash: String::new(),
                created_at_ms: 0,
                key_rotated_at_ms: None,
            })
            .await
            .unwrap();
        let sub = Subscription {
            id: Uuid::now_v7(),
            account_id: account,
            event_types: vec!["*".into()],
            channel: Channel::Webhook {
                url: "http://127.0.0.1:1/".into(),
            },
            description: None,
            enabled: true,
            secret: Some(new_signing_secret()),
            previous_secret: None,
            previous_secret_expires_at_ms: None,
            rate_limit: None,
            disabled_reason: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 1,
        };
        store.put_subscription(&sub, None, 10).await.unwrap();
        let raw = RawValue::from_string(payload_1k()).unwrap();
        let account_id = account.to_string();
        let events: Vec<_> = (0..1_000)
            .map(|_| {
                let s = Submitted {
                    event_type: "customer.created",
                    account_id: &account_id,
                    payload: &raw,
                    occurred_at: None,
                    idempotency_key: None,
                };
                accept(s, &catalog, &rules, chrono::Utc::now()).unwrap()
            })
            .collect();
        store
            .ingest(&events, chrono::Utc::now().timestamp_millis())
            .await
            .unwrap();
    });
    let mut g = c.benchmark_group("hot");
    g.throughput(Throughput::Elements(100));
    g.bench_function(
        "claim 100 deliveries, hand each back (1 claim + 100 finish scripts)",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let now = chrono::Utc::now().timestamp_millis();
                    let lease = LeaseMs {
                        webhook: 60_000,
                        email: 60_000,
                    };
                    let claimed = store.claim(0, now, lease, 100).await.unwrap();
                    let ids: Vec<Uuid> = claimed.iter().map(|c| c.delivery_id).collect();
                    // Requeue needs the lease gone: finish as 'wait' due now.
                    for c in &claimed {
                        store
                            .finish(
                                c,
                                &courier::domain::delivery::Outcome::Wait { due_ms: now },
                                None,
                                now,
                            )
                            .await
                            .unwrap();
                    }
                    ids.len()
                })
            })
        },
    );
    g.finish();
    // Remove the benchmark's keys.
    let client =
        redis::Client::open(secrecy::ExposeSecret::expose_secret(&settings.redis.url)).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", settings.redis.key_prefix))
        .query(&mut conn)
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query(&mut conn).unwrap();
    }
}

criterion_group!(benches, signing, claim_round_trip);
criterion_main!(benches);
