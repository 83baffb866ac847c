//! Tenant isolation: every route that takes an id answers 404 for another
//! account's object and changes nothing in Redis, whether the caller's
//! account shares the victim's shard (same key space, ids alone tell
//! objects apart) or not.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, TestApp};
use crate::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(10);

/// Calls every id-taking route with the victim's ids as `key`; returns
/// `(route, status)` for each answer that is not the expected one.
async fn probe_every_route(
    app: &TestApp,
    key: &str,
    own_event: &str,
    victim: &Victim,
) -> Vec<(String, u16, String)> {
    let Victim {
        event,
        subscription: sub,
        delivery,
    } = victim;
    let mut wrong = Vec::new();
    let mut expect = |route: &str, r: crate::helpers::Reply, status: u16| {
        if r.status != status {
            wrong.push((route.to_owned(), r.status.as_u16(), r.body.to_string()));
        }
    };
    expect(
        "GET event",
        app.get(&format!("/v1/events/{event}"), Some(key)).await,
        404,
    );
    expect(
        "POST event replay",
        app.post(&format!("/v1/events/{event}/replay"), Some(key), &json!({}))
            .await,
        404,
    );
    expect(
        "POST event replay to the victim's subscription",
        app.post(
            &format!("/v1/events/{event}/replay"),
            Some(key),
            &json!({"subscription_id": sub}),
        )
        .await,
        404,
    );
    // The caller's own event to the victim's subscription: the same answer
    // as for a subscription that does not exist.
    let unknown = app
        .post(
            &format!("/v1/events/{own_event}/replay"),
            Some(key),
            &json!({"subscription_id": uuid::Uuid::now_v7()}),
        )
        .await;
    let r = app
        .post(
            &format!("/v1/events/{own_event}/replay"),
            Some(key),
            &json!({"subscription_id": sub}),
        )
        .await;
    if r.body != unknown.body {
        expect("POST own event replay to the victim's subscription", r, 0);
    } else {
        expect("POST own event replay to the victim's subscription", r, 422);
    }
    let s = format!("/v1/subscriptions/{sub}");
    expect("GET subscription", app.get(&s, Some(key)).await, 404);
    expect(
        "PATCH subscription",
        app.patch(&s, Some(key), &json!({"description": "taken over"}))
            .await,
        404,
    );
    expect(
        "POST secret rotate",
        app.post(&format!("{s}/secret/rotate"), Some(key), &json!({}))
            .await,
        404,
    );
    expect(
        "POST test",
        app.post(&format!("{s}/test"), Some(key), &json!({})).await,
        404,
    );
    expect(
        "GET subscription deliveries",
        app.get(&format!("{s}/deliveries"), Some(key)).await,
        404,
    );
    expect(
        "GET failed subscription deliveries",
        app.get(&format!("{s}/deliveries?status=failed"), Some(key))
            .await,
        404,
    );
    expect(
        "POST recover",
        app.post(
            &format!("{s}/recover"),
            Some(key),
            &json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await,
        404,
    );
    expect(
        "GET delivery",
        app.get(&format!("/v1/deliveries/{delivery}"), Some(key))
            .await,
        404,
    );
    expect(
        "POST delivery retry",
        app.post(
            &format!("/v1/deliveries/{delivery}/retry"),
            Some(key),
            &json!({}),
        )
        .await,
        404,
    );
    expect("DELETE subscription", app.delete(&s, Some(key)).await, 404);
    wrong
}

struct Victim {
    event: String,
    subscription: String,
    delivery: String,
}

#[actix_web::test]
async fn another_account_in_the_same_shard_or_another_gets_404_and_changes_nothing() {
    let rx = Receiver::start().await;
    rx.default_reply("/hook", Reply::status(200));
    let app = spawn_app().await;
    let (victim_account, victim_key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&victim_key, &rx.url("/hook"), &["*"], json!({}))
        .await;
    let event = app.ingest(&victim_account, "cus_victim").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = app
        .poll_until(&format!("/v1/events/{event}"), &victim_key, WAIT, |b| {
            b["deliveries"][0]["status"] == "succeeded"
        })
        .await;
    assert_eq!(detail["deliveries"][0]["status"], "succeeded", "{detail}");
    let victim = Victim {
        event,
        subscription: sub,
        delivery: detail["deliveries"][0]["id"].as_str().unwrap().to_owned(),
    };

    let shard = app.shard_of(&victim_account);
    let (neighbour, neighbour_key) = app.create_account_in_shard(shard, true).await;
    let (stranger, stranger_key) = app.create_account_in_shard(shard, false).await;
    assert_eq!(app.shard_of(&neighbour), shard);
    assert_ne!(app.shard_of(&stranger), shard);
    let own_events = [
        app.ingest(&neighbour, "cus_n").await.body["id"].clone(),
        app.ingest(&stranger, "cus_s").await.body["id"].clone(),
    ];
    let received = rx.received("/hook").len();
    // The statistics of the work above reach Redis within a flush
    // (`dashboard.stats_flush_ms`, 100 ms in tests): let them land first.
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let before = app.redis_snapshot();

    for (who, key, own) in [
        ("same shard", &neighbour_key, &own_events[0]),
        ("other shard", &stranger_key, &own_events[1]),
    ] {
        let wrong = probe_every_route(&app, key, own.as_str().unwrap(), &victim).await;
        assert!(
            wrong.is_empty(),
            "{who}: routes that did not answer as for an unknown id: {wrong:#?}"
        );
    }

    // Nothing the engine could have picked up either.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let after = app.redis_snapshot();
    // A shard's minute of traffic counts (`traffic:<minute>`) is no one
    // account's data, and the counts of the set-up above may land late on
    // a loaded machine: left out. Every per-subscription count is compared.
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|k| !k.contains(":traffic:") && before.get(*k) != after.get(*k))
        .collect();
    assert!(changed.is_empty(), "keys changed: {changed:?}");
    assert_eq!(rx.received("/hook").len(), received);

    // The victim still sees everything as it was.
    let d = app
        .get(
            &format!("/v1/deliveries/{}", victim.delivery),
            Some(&victim_key),
        )
        .await;
    assert_eq!(d.body["status"], "succeeded");
    assert_eq!(d.body["attempts"], 1);
}
