//! The statistics behind the overview's charts and the operator page: what
//! the engine delivers shows up, per subscription and for the fleet, from
//! counters in Redis that expire.

use std::time::Duration;

use serde_json::json;

use super::{Browser, Page};
use crate::helpers::{spawn_app, TestApp, ADMIN_KEY};
use crate::receiver::{Receiver, Reply};

/// Reloads `path` until `done` holds (statistics reach Redis within a
/// flush), at most 10 s.
async fn page_until(b: &mut Browser<'_>, path: &str, done: impl Fn(&Page) -> bool) -> Page {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let p = b.get(path).await;
        assert_eq!(p.status, 200, "{}", p.body);
        if done(&p) || std::time::Instant::now() > deadline {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn hourly_keys(app: &TestApp) -> Vec<(String, i64)> {
    let keys = crate::helpers::keys_matching(&app.redis_url, &format!("{}:*:stats:*", app.prefix));
    let mut conn = app.redis();
    let mut out = Vec::new();
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut conn).unwrap();
        out.push((k, ttl));
    }
    out
}

#[actix_web::test]
async fn the_overview_charts_each_subscriptions_attempts_success_and_latency() {
    let rx = Receiver::start().await;
    // Every event's first attempt fails; its retry succeeds.
    rx.script(
        "/hook",
        vec![Reply::status(500), Reply::status(500), Reply::status(500)],
    );
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/hook"), &["customer.created"], json!({}))
        .await;
    let (quiet, _) = app
        .subscribe(&key, &rx.url("/quiet"), &["meter_data.received"], json!({}))
        .await;
    for i in 0..3 {
        let r = app.ingest(&account, &format!("cus_{i}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    rx.wait_for("/hook", 6, Duration::from_secs(20)).await;

    let mut b = Browser::new(&app);
    b.sign_in(&key).await;
    let p = page_until(&mut b, "/dashboard", |p| p.body.contains("6 attempts")).await;
    let card = |id: &str| {
        let start = p
            .body
            .find(&format!("/dashboard/subscriptions/{id}"))
            .unwrap();
        let end = p.body[start..].find("</article>").unwrap() + start;
        p.body[start..end].to_owned()
    };
    let busy = card(&sub);
    assert!(busy.contains("6 attempts"), "{busy}");
    assert!(busy.contains("3 failed"), "{busy}");
    assert!(busy.contains("50.0 %"), "{busy}");
    assert!(busy.contains("≤ "), "a p95 latency: {busy}");
    // Three charts of 24 hourly bars; this hour's bars drawn, failures red.
    assert_eq!(busy.matches("<svg class=\"spark\"").count(), 3, "{busy}");
    assert!(busy.contains("class=\"spark-bad\""), "{busy}");
    assert!(
        busy.contains("aria-label=\"success rate per hour"),
        "{busy}"
    );
    let idle = card(&quiet);
    assert!(idle.contains("0 attempts"), "{idle}");
    assert!(idle.contains("no attempts"), "{idle}");
    assert!(
        !idle.contains("class=\"spark-bar\" x"),
        "nothing drawn: {idle}"
    );

    // One counter per subscription and hour, expiring two days on.
    let keys = hourly_keys(&app).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (name, ttl) = &keys[0];
    assert!(name.contains(&sub), "{name}");
    let hours = *ttl as f64 / 3_600_000.0;
    assert!((48.0..=49.0).contains(&hours), "expires in {hours} h");
}

#[actix_web::test]
async fn the_operator_page_shows_traffic_open_circuits_and_the_most_failing_endpoints() {
    let rx = Receiver::start().await;
    rx.default_reply("/down", Reply::status(503));
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    // Credentials and query are the endpoint's secrets: never shown.
    let down = rx
        .url("/down?token=s3cret")
        .replace("http://", "http://user:pa55@");
    app.subscribe(&key, &down, &["customer.created"], json!({}))
        .await;
    for i in 0..8 {
        let r = app.ingest(&account, &format!("cus_{i}")).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    // Five failures in a row open the circuit.
    rx.wait_for("/down", 5, Duration::from_secs(20)).await;

    let mut op = Browser::new(&app);
    op.sign_in(ADMIN_KEY).await;
    let p = page_until(&mut op, "/dashboard/operator", |p| {
        p.body.contains("circuit-open") && p.body.contains("8 in all")
    })
    .await;
    // The endpoint as the engine redacts it.
    let endpoint = format!("{}?…", rx.url("/down"));
    let circuits = &p.body[p.body.find("<h2>Open circuits</h2>").unwrap()..];
    assert!(
        circuits.contains(&format!(
            "<code>{endpoint}</code></td><td><span class=\"circuit-open\">open</span>"
        )),
        "{}",
        p.body
    );
    let failing = &p.body[p.body.find("<h2>Most failures").unwrap()..];
    assert!(
        failing.contains(&format!("<code>{endpoint}</code>")),
        "{failing}"
    );
    assert!(p.body.contains("8 in all"), "events ingested: {}", p.body);
    assert!(p.body.contains("failed</span>"), "{}", p.body);
    assert!(
        !p.body.contains("s3cret") && !p.body.contains("pa55"),
        "{}",
        p.body
    );
}
