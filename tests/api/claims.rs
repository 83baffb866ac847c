//! Claims as the store hands them out and takes them back: a lease sized by
//! the subscription's channel, and a release fenced by the claim token.

use serde_json::json;
use uuid::Uuid;

use courier::domain::delivery::{DeliveryStatus, Outcome};
use courier::store::{Claimed, LeaseMs, Store};

use crate::helpers::{spawn_app_with, test_settings, TestApp};

const LEASE: LeaseMs = LeaseMs {
    webhook: 5_000,
    email: 92_000,
};

/// A courier that creates deliveries but claims none (no delivery engine):
/// the test claims them itself. Returns the app, the account and its key.
async fn without_engine() -> (TestApp, Uuid, String) {
    let app = spawn_app_with(|s| s.delivery.enabled = false).await;
    let (account, key) = app.create_account().await;
    (app, Uuid::parse_str(&account).unwrap(), key)
}

async fn store_of(app: &TestApp) -> Store {
    let mut settings = test_settings();
    settings.redis.key_prefix = app.prefix.clone();
    crate::helpers::connect_store(&settings).await
}

/// Claims whatever is due at `now_ms` in every shard.
async fn claim_all(store: &Store, now_ms: i64) -> Vec<Claimed> {
    let mut claimed = Vec::new();
    for shard in 0..store.keys().shards() {
        claimed.extend(store.claim(shard, now_ms, LEASE, 100).await.unwrap());
    }
    claimed
}

/// A moment after every delivery created so far.
fn soon() -> i64 {
    chrono::Utc::now().timestamp_millis() + 1_000
}

#[actix_web::test]
async fn a_claims_lease_follows_its_subscriptions_channel() {
    let (app, account, key) = without_engine().await;
    let (webhook, _) = app
        .subscribe(&key, "https://hooks.example.com/in", &["*"], json!({}))
        .await;
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["*"], "channel": {"type": "email", "address": "ops@acme.example"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(app.ingest(&account.to_string(), "c1").await.status, 202);
    let store = store_of(&app).await;
    let now = soon();

    let claimed = claim_all(&store, now).await;

    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        let lease = if c.subscription_id.to_string() == webhook {
            LEASE.webhook
        } else {
            LEASE.email
        };
        assert_eq!(c.lease_until_ms, now + lease, "{c:?}");
    }
}

#[actix_web::test]
async fn a_released_claim_is_due_at_once_with_no_attempt_spent_and_records_nothing() {
    let (app, account, key) = without_engine().await;
    app.subscribe(&key, "https://hooks.example.com/in", &["*"], json!({}))
        .await;
    assert_eq!(app.ingest(&account.to_string(), "c1").await.status, 202);
    let store = store_of(&app).await;
    let now = soon();
    let c = claim_all(&store, now).await.remove(0);

    // Another token (a newer or an older claim) is not this claim.
    let mut other = c.claim_ref();
    other.token = format!("{}0", c.token);
    assert_eq!(store.release(&[other], now + 10).await.unwrap(), 0);
    assert_eq!(store.release(&[c.claim_ref()], now + 10).await.unwrap(), 1);

    assert_eq!(store.queue_depths().await.unwrap(), (1, 0));
    assert_eq!(store.next_due_any().await.unwrap(), Some(now + 10));
    let d = store.get_delivery(&account, &c.delivery_id).await.unwrap();
    let d = d.unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(d.next_attempt_at_ms, Some(now + 10));
    // The released claim can neither be released again nor record an outcome.
    assert_eq!(store.release(&[c.claim_ref()], now + 20).await.unwrap(), 0);
    let recorded = store.finish(&c, &Outcome::Success, None, now + 30).await;
    assert!(!recorded.unwrap(), "a released claim recorded an outcome");
    // The delivery is claimed again like any due one.
    let again = claim_all(&store, now + 40).await;
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].token, c.token);
}

#[actix_web::test]
async fn releasing_a_finished_claim_changes_nothing() {
    let (app, account, key) = without_engine().await;
    app.subscribe(&key, "https://hooks.example.com/in", &["*"], json!({}))
        .await;
    assert_eq!(app.ingest(&account.to_string(), "c1").await.status, 202);
    let store = store_of(&app).await;
    let now = soon();
    let c = claim_all(&store, now).await.remove(0);
    let retry = Outcome::Retry {
        due_ms: now + 60_000,
    };
    assert!(store.finish(&c, &retry, None, now + 10).await.unwrap());

    assert_eq!(store.release(&[c.claim_ref()], now + 20).await.unwrap(), 0);

    assert_eq!(store.queue_depths().await.unwrap(), (1, 0));
    assert_eq!(store.next_due_any().await.unwrap(), Some(now + 60_000));
}

#[actix_web::test]
async fn an_outcome_of_a_delivery_deleted_while_in_flight_leaves_nothing_behind() {
    // The retention pass deletes an event's deliveries with it, even one
    // that is being sent: its outcome must not bring a fragment of it back
    // (deliveries have no expiry of their own, so it would stay for good).
    let (app, account, key) = without_engine().await;
    app.subscribe(&key, "https://hooks.example.com/in", &["*"], json!({}))
        .await;
    for c in ["c1", "c2", "c3"] {
        assert_eq!(app.ingest(&account.to_string(), c).await.status, 202);
    }
    let store = store_of(&app).await;
    let now = soon();
    let claimed = claim_all(&store, now).await;
    assert_eq!(claimed.len(), 3);
    let mut conn = app.redis();
    for c in &claimed {
        let _: () = redis::cmd("DEL")
            .arg(store.keys().delivery(&account, &c.delivery_id))
            .query(&mut conn)
            .unwrap();
    }
    let outcomes = [
        Outcome::Success,
        Outcome::Retry {
            due_ms: now + 60_000,
        },
        Outcome::Wait {
            due_ms: now + 60_000,
        },
    ];
    for (c, outcome) in claimed.iter().zip(&outcomes) {
        assert!(store.finish(c, outcome, None, now + 10).await.unwrap());
    }
    let left: Vec<String> = app
        .redis_keys()
        .into_iter()
        .filter(|k| k.contains(":dlv:"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Nothing waits for them either (or, if a schedule entry is left, a
    // claim drops it).
    assert!(claim_all(&store, now + 120_000).await.is_empty());
}

#[actix_web::test]
async fn a_claim_whose_lease_ran_out_records_nothing_after_the_delivery_went_back() {
    let (app, account, key) = without_engine().await;
    app.subscribe(&key, "https://hooks.example.com/in", &["*"], json!({}))
        .await;
    assert_eq!(app.ingest(&account.to_string(), "c1").await.status, 202);
    let store = store_of(&app).await;
    let now = soon();
    let c = claim_all(&store, now).await.remove(0);
    // Past the lease, the delivery goes back to the schedule and is claimed
    // again by another process.
    let later = now + LEASE.webhook + 1;
    assert_eq!(store.reclaim(c.shard, later).await.unwrap(), 1);
    let again = claim_all(&store, later).await.remove(0);
    assert_eq!(again.delivery_id, c.delivery_id);
    assert_ne!(again.token, c.token);

    // The first claim can neither finish nor renew nor hand it back.
    assert!(!store
        .finish(&c, &Outcome::Success, None, later + 1)
        .await
        .unwrap());
    assert!(store
        .renew(c.shard, &[c.claim_ref()], later + 10_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.release(&[c.claim_ref()], later + 2).await.unwrap(), 0);
    // The second claim still holds it.
    assert_eq!(
        store
            .renew(again.shard, &[again.claim_ref()], later + 10_000)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .finish(&again, &Outcome::Success, None, later + 3)
        .await
        .unwrap());
    let d = store
        .get_delivery(&account, &c.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Succeeded, 0));
}
