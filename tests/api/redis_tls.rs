//! Redis over TLS (managed Redis services require it): courier connects to
//! `rediss://` URLs, trusting the CA of `redis.tls_ca_file`, or, with
//! `#insecure`, any certificate.

use crate::helpers::{spawn_app_with, PrivateRedis, TestApp};

/// Ingests an event and reads it back, through `app`'s Redis.
async fn ingest_and_read_back(app: &TestApp) {
    assert_eq!(app.get("/readyz", None).await.status, 200);
    let (account, key) = app.create_account().await;
    let r = app.ingest(&account, "cus_tls").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/v1/events/{id}"), Some(&key)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["payload"]["customer_id"], "cus_tls");
}

#[actix_web::test]
async fn events_are_stored_and_read_back_through_redis_over_tls() {
    if crate::helpers::cluster() {
        // A single TLS redis-server of its own: nothing of the cluster run's.
        return;
    }
    let redis = PrivateRedis::start_tls();
    let (url, ca) = (redis.url(), redis.ca_file());
    let app = spawn_app_with(|s| {
        s.redis.url = url.into();
        s.redis.tls_ca_file = Some(ca);
    })
    .await;
    ingest_and_read_back(&app).await;
}

#[actix_web::test]
async fn a_redis_certificate_from_an_unknown_ca_is_refused_unless_insecure() {
    if crate::helpers::cluster() {
        // A single TLS redis-server of its own: nothing of the cluster run's.
        return;
    }
    let redis = PrivateRedis::start_tls();
    let url = redis.url();
    // Only the public roots are trusted: the test CA is not among them.
    let app = spawn_app_with(|s| s.redis.url = url.clone().into()).await;
    assert_eq!(app.get("/readyz", None).await.status, 503);
    let insecure = spawn_app_with(|s| s.redis.url = format!("{url}/#insecure").into()).await;
    ingest_and_read_back(&insecure).await;
}
