//! `courier listen` receiving what a courier delivers: it prints each
//! notification, checks its signature with the secret it was given, and
//! answers with the status it was told.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, ADMIN_KEY};
use crate::process::Listener;

/// Ingests a `customer.created` event for `account`; returns its id.
async fn ingest(app: &TestApp, account: &str) -> String {
    let r = app
        .post(
            "/v1/events",
            Some(ADMIN_KEY),
            &json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": "cus_42"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn listen_prints_a_delivered_notification_and_finds_its_signature_valid() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    // The subscription's secret is only known once it exists: subscribe to
    // the port first, then start the listener there with the secret.
    let port = crate::helpers::free_port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let (sub, secret) = app
        .subscribe(&key, &url, &["customer.created"], json!({}))
        .await;
    let listener = Listener::start_on(port, &["--secret", &secret], &[]);

    let event = ingest(&app, &account).await;

    let out = listener.wait_for("answered").await;
    assert!(out.contains("--- POST /hooks "), "{out}");
    assert!(out.contains("webhook-id: "), "{out}");
    assert!(out.contains("webhook-timestamp: "), "{out}");
    assert!(out.contains("webhook-signature: v1,"), "{out}");
    assert!(out.contains("signature: valid"), "{out}");
    assert!(
        out.contains(&format!("\n  \"event_id\": \"{event}\",\n")),
        "{out}"
    );
    assert!(out.contains("\"customer_id\": \"cus_42\""), "{out}");
    assert!(out.contains("answered 200 OK"), "{out}");
    let list = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries"),
            &key,
            Duration::from_secs(10),
            |b| b["data"][0]["status"] == "succeeded",
        )
        .await;
    assert_eq!(list["data"][0]["status"], "succeeded", "{list}");
}

#[actix_web::test]
async fn listen_with_another_secret_from_the_environment_reports_the_signature_invalid() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let wrong = courier::domain::api_key::new_signing_secret();
    let listener = Listener::start(&[], &[("COURIER_LISTEN_SECRET", &wrong)]);
    app.subscribe(&key, &listener.url("/in"), &["customer.created"], json!({}))
        .await;

    ingest(&app, &account).await;

    let out = listener.wait_for("answered").await;
    assert!(out.contains("--- POST /in "), "{out}");
    assert!(
        out.contains("signature: INVALID (no signature matches the secret)"),
        "{out}"
    );
    assert!(!out.contains("signature: valid"), "{out}");
}

#[actix_web::test]
async fn listen_with_status_500_makes_the_attempt_fail_with_500() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let listener = Listener::start(&["--status", "500"], &[]);
    let (sub, _) = app
        .subscribe(
            &key,
            &listener.url("/hooks"),
            &["customer.created"],
            json!({}),
        )
        .await;

    ingest(&app, &account).await;

    let out = listener.wait_for("answered").await;
    assert!(out.contains("answered 500 Internal Server Error"), "{out}");
    assert!(out.contains("signature: not checked"), "{out}");
    let list = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries"),
            &key,
            Duration::from_secs(10),
            |b| b["data"][0]["attempts"].as_u64().unwrap_or(0) >= 1,
        )
        .await;
    let delivery = list["data"][0]["id"]
        .as_str()
        .expect("a delivery")
        .to_owned();
    let one = app
        .poll_until(
            &format!("/v1/deliveries/{delivery}"),
            &key,
            Duration::from_secs(10),
            |b| b["history"].as_array().is_some_and(|h| !h.is_empty()),
        )
        .await;
    let first: &Value = &one["history"][0];
    assert_eq!(first["status_code"], 500, "{one}");
    assert_ne!(one["status"], "succeeded", "{one}");
}
