use serde_json::json;

use crate::helpers::{spawn_app_with, PrivateRedis, ADMIN_KEY};

#[actix_web::test]
async fn redis_down_gives_503_and_the_service_recovers_when_it_returns() {
    if crate::helpers::cluster() {
        // It stops a single redis-server of its own: nothing of the cluster run's.
        return;
    }
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let app = spawn_app_with(|s| s.redis.url = url.into()).await;
    let (account, key) = app.create_account().await;
    assert_eq!(app.ingest(&account, "before").await.status, 202);

    redis.kill();
    let r = app.ingest(&account, "during").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), "unavailable");
    assert_eq!(app.get("/readyz", None).await.status, 503);
    assert_eq!(app.get("/v1/events", Some(&key)).await.status, 503);
    let r = app
        .post(
            "/v1/accounts",
            Some(ADMIN_KEY),
            &json!({"name": "A", "contact_email": "a@b.example"}),
        )
        .await;
    assert_eq!(r.status, 503);

    redis.restart();
    let mut ready = false;
    for _ in 0..100 {
        if app.get("/readyz", None).await.status == 200 {
            ready = true;
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "courier did not reconnect to redis");
    // The restarted Redis kept nothing (no persistence here): start over.
    let (account, _) = app.create_account().await;
    assert_eq!(app.ingest(&account, "after").await.status, 202);
}

#[actix_web::test]
async fn courier_starts_while_redis_is_down_and_serves_once_it_is_up() {
    if crate::helpers::cluster() {
        // It stops a single redis-server of its own: nothing of the cluster run's.
        return;
    }
    let mut redis = PrivateRedis::start();
    redis.kill();
    let url = redis.url();
    let app = spawn_app_with(|s| s.redis.url = url.into()).await;
    assert_eq!(app.get("/healthz", None).await.status, 200);
    assert_eq!(app.get("/readyz", None).await.status, 503);
    redis.restart();
    let mut status = 0;
    for _ in 0..100 {
        status = app.get("/readyz", None).await.status.as_u16();
        if status == 200 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    let (account, _) = app.create_account().await;
    assert_eq!(app.ingest(&account, "x").await.status, 202);
}
