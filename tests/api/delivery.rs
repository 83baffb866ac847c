use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{delay, millis, spawn_app, spawn_app_with, ADMIN_KEY};
use crate::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(10);

/// Standard Webhooks verification written from the specification, not with
/// courier's code: HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed by the
/// base64-decoded secret; any of the space-separated `v1,` signatures may match.
pub fn verify(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .any(|sig| sig.strip_prefix("v1,") == Some(expected.as_str()))
}

#[actix_web::test]
async fn an_event_is_delivered_signed_with_the_documented_body() {
    let rx = Receiver::start().await;
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let (sub, secret) = app
        .subscribe(&key, &rx.url("/hook"), &["meter.created"], json!({}))
        .await;
    let payload = r#"{"meter_id": "mtr_1", "customer_id": "cus_1", "mpan": "Zoë"}"#;
    let r = app
        .post_raw(
            "/v1/events",
            Some(ADMIN_KEY),
            format!(
                r#"{{"type": "meter.created", "account_id": "{account}", "payload": {payload}}}"#
            )
            .into_bytes(),
        )
        .await;
    let event_id = r.body["id"].as_str().unwrap().to_owned();

    let got = rx.wait_for("/hook", 1, WAIT).await;
    assert_eq!(got.len(), 1);
    let n = &got[0];
    let body = n.json();
    assert_eq!(body["subscription_id"], sub.as_str());
    assert_eq!(body["event_id"], event_id.as_str());
    assert_eq!(body["event_type"], "meter.created");
    assert!(body["event_timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["payload"]["mpan"], "Zoë");
    assert!(
        String::from_utf8(n.body.clone()).unwrap().contains(payload),
        "payload not verbatim"
    );
    assert_eq!(
        n.header("webhook-id"),
        body["delivery_id"].as_str().unwrap()
    );
    assert_eq!(n.header("content-type"), "application/json");
    let ts: i64 = n.header("webhook-timestamp").parse().unwrap();
    assert!((ts - chrono::Utc::now().timestamp()).abs() < 60);
    assert!(verify(
        &secret,
        n.header("webhook-id"),
        n.header("webhook-timestamp"),
        &n.body,
        n.header("webhook-signature")
    ));
    assert!(!verify(
        &secret,
        n.header("webhook-id"),
        "1",
        &n.body,
        n.header("webhook-signature")
    ));

    let event = app
        .poll_until(&format!("/v1/events/{event_id}"), &key, WAIT, |b| {
            b["deliveries"][0]["status"] == "succeeded"
        })
        .await;
    assert_eq!(event["deliveries"][0]["id"], n.header("webhook-id"));
    assert_eq!(event["deliveries"][0]["attempts"], 1);
}

#[actix_web::test]
async fn a_failed_attempt_is_retried_and_both_attempts_are_recorded() {
    let rx = Receiver::start().await;
    rx.script("/flaky", vec![Reply::status(500)]);
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    app.subscribe(&key, &rx.url("/flaky"), &["*"], json!({}))
        .await;
    app.ingest(&account, "cus_1").await;

    let got = rx.wait_for("/flaky", 2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "retries keep the webhook-id"
    );
    let id = got[0].header("webhook-id").to_owned();
    let d = app
        .poll_until(&format!("/v1/deliveries/{id}"), &key, WAIT, |b| {
            b["status"] == "succeeded"
        })
        .await;
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"], 2);
    let history = d["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["status_code"], 500);
    assert_eq!(history[0]["response"], "ok");
    assert!(history[0]["next_attempt_at"].is_string());
    assert_eq!(history[1]["status_code"], 200);
    assert!(history[1].get("next_attempt_at").is_none());
}

#[actix_web::test]
async fn a_timeout_is_a_failed_attempt() {
    let rx = Receiver::start().await;
    rx.script(
        "/slow",
        vec![Reply::status(200).delayed(Duration::from_millis(1_500))],
    );
    let app = spawn_app_with(|s| s.delivery.timeout_ms = millis(300)).await;
    let (account, key) = app.create_account().await;
    app.subscribe(&key, &rx.url("/slow"), &["*"], json!({}))
        .await;
    app.ingest(&account, "cus_1").await;
    let got = rx.wait_for("/slow", 2, WAIT).await;
    let id = got[0].header("webhook-id").to_owned();
    let d = app
        .poll_until(&format!("/v1/deliveries/{id}"), &key, WAIT, |b| {
            b["status"] == "succeeded"
        })
        .await;
    let first = &d["history"][0];
    assert!(
        first["error"].as_str().unwrap().contains("timeout"),
        "{first}"
    );
    assert!(first.get("status_code").is_none());
    assert_eq!(d["history"][1]["status_code"], 200);
}

#[actix_web::test]
async fn gone_disables_the_subscription() {
    let rx = Receiver::start().await;
    rx.default_reply("/gone", Reply::status(410));
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/gone"), &["*"], json!({}))
        .await;
    app.ingest(&account, "cus_1").await;
    let s = app
        .poll_until(&format!("/v1/subscriptions/{sub}"), &key, WAIT, |b| {
            b["enabled"] == false
        })
        .await;
    assert_eq!(s["enabled"], false);
    assert!(s["disabled_reason"].as_str().unwrap().contains("410"));
    // A 410 is no sign of a healthy endpoint.
    assert!(s["endpoint"].get("last_success_at").is_none(), "{s}");
    let list = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=failed"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 1),
        )
        .await;
    assert_eq!(list["data"][0]["attempts"], 1);
    // Nothing more is sent to it.
    app.ingest(&account, "cus_2").await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received("/gone").len(), 1);
}

#[actix_web::test]
async fn retry_after_is_honoured_within_the_schedule_bounds() {
    let rx = Receiver::start().await;
    // Retry-After 1 s against a first step of 100 ms: capped at 2 x 100 ms.
    rx.script("/busy", vec![Reply::status(503).header("Retry-After", "1")]);
    rx.script(
        "/busy-long",
        vec![Reply::status(429).header("Retry-After", "0")],
    );
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    app.subscribe(&key, &rx.url("/busy"), &["*"], json!({}))
        .await;
    app.ingest(&account, "cus_1").await;
    let got = rx.wait_for("/busy", 2, WAIT).await;
    let id = got[0].header("webhook-id").to_owned();
    let d = app
        .poll_until(&format!("/v1/deliveries/{id}"), &key, WAIT, |b| {
            b["status"] == "succeeded"
        })
        .await;
    let first = &d["history"][0];
    let at = chrono::DateTime::parse_from_rfc3339(first["at"].as_str().unwrap()).unwrap();
    let next =
        chrono::DateTime::parse_from_rfc3339(first["next_attempt_at"].as_str().unwrap()).unwrap();
    let waited = (next - at).num_milliseconds() - first["duration_ms"].as_i64().unwrap();
    assert!(
        (195..=215).contains(&waited),
        "waited {waited} ms instead of 200"
    );
}

#[actix_web::test]
async fn the_circuit_opens_probes_and_closes() {
    let rx = Receiver::start().await;
    rx.script(
        "/down",
        vec![Reply::status(500), Reply::status(500), Reply::status(500)],
    );
    let app = spawn_app_with(|s| {
        s.delivery.breaker_failure_threshold = 3.try_into().unwrap();
        s.delivery.endpoint_concurrency = 1.try_into().unwrap();
        s.delivery.retry_schedule = vec![delay("50ms"); 6];
    })
    .await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/down"), &["*"], json!({}))
        .await;
    for i in 0..5 {
        app.ingest(&account, &format!("cus_{i}")).await;
    }
    let s = app
        .poll_until(&format!("/v1/subscriptions/{sub}"), &key, WAIT, |b| {
            b["endpoint"]["circuit"]["state"] == "open"
        })
        .await;
    assert_eq!(s["endpoint"]["circuit"]["state"], "open", "{s}");
    assert!(s["endpoint"]["failing_since"].is_string());
    // While open nothing is sent: exactly the three failures so far.
    assert_eq!(rx.received("/down").len(), 3);

    let list = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=succeeded"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 5),
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 5);
    // Three failures, one successful probe, four more: waiting spent no attempts.
    assert_eq!(rx.received("/down").len(), 8);
    let attempts: u64 = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(attempts, 8);
    let s = app
        .get(&format!("/v1/subscriptions/{sub}"), Some(&key))
        .await;
    assert_eq!(s.body["endpoint"]["circuit"]["state"], "closed");
    assert!(s.body["endpoint"]["last_success_at"].is_string());
}

#[actix_web::test]
async fn a_hanging_endpoint_does_not_delay_a_healthy_one() {
    let rx = Receiver::start().await;
    rx.default_reply("/hang", Reply::status(200).delayed(Duration::from_secs(3)));
    let app = spawn_app_with(|s| s.delivery.timeout_ms = millis(5_000)).await;
    let (account, key) = app.create_account().await;
    app.subscribe(&key, &rx.url("/hang"), &["*"], json!({}))
        .await;
    app.subscribe(&key, &rx.url("/fine"), &["*"], json!({}))
        .await;
    let events: Vec<Value> = (0..40)
        .map(|i| json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": format!("c{i}")}}))
        .collect();
    let r = app
        .post(
            "/v1/events/batch",
            Some(ADMIN_KEY),
            &json!({ "events": events }),
        )
        .await;
    assert_eq!(r.body["accepted"], 40);
    let fine = rx.wait_for("/fine", 40, WAIT).await;
    assert_eq!(fine.len(), 40);
    // Every healthy delivery arrived while the hanging endpoint had not
    // answered a single request.
    assert_eq!(rx.completed("/hang"), 0);
    assert!(!rx.received("/hang").is_empty());
}

#[actix_web::test]
async fn a_rate_limited_subscription_is_not_sent_more_than_its_rate() {
    let rx = Receiver::start().await;
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    app.subscribe(&key, &rx.url("/limited"), &["*"], json!({"rate_limit": 5}))
        .await;
    let events: Vec<Value> = (0..12)
        .map(|i| json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": format!("c{i}")}}))
        .collect();
    app.post(
        "/v1/events/batch",
        Some(ADMIN_KEY),
        &json!({ "events": events }),
    )
    .await;
    let got = rx.wait_for("/limited", 12, WAIT).await;
    assert_eq!(got.len(), 12);
    // A burst of 5, then one every 200 ms: no window of one second holds more
    // than 5 + 5 requests, and the whole takes at least 1.4 s.
    let first = got[0].at;
    let spread = got[11].at - first;
    assert!(
        spread >= Duration::from_millis(1_350),
        "12 requests in {spread:?}"
    );
    for (i, r) in got.iter().enumerate() {
        let in_window = got[i..]
            .iter()
            .filter(|x| x.at - r.at < Duration::from_secs(1))
            .count();
        assert!(in_window <= 10, "{in_window} requests within one second");
    }
}

#[actix_web::test]
async fn replay_and_manual_retry_send_again() {
    let rx = Receiver::start().await;
    rx.default_reply("/always-fails", Reply::status(500));
    let app = spawn_app_with(|s| s.delivery.retry_schedule = vec![delay("50ms")]).await;
    let (account, key) = app.create_account().await;
    let (ok_sub, _) = app.subscribe(&key, &rx.url("/ok"), &["*"], json!({})).await;
    let (bad_sub, _) = app
        .subscribe(&key, &rx.url("/always-fails"), &["*"], json!({}))
        .await;
    let event = app.ingest(&account, "cus_1").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Replay to one subscription: a new delivery id, marked as a replay.
    let first = rx.wait_for("/ok", 1, WAIT).await;
    let r = app
        .post(
            &format!("/v1/events/{event}/replay"),
            Some(&key),
            &json!({"subscription_id": ok_sub}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["deliveries"].as_array().unwrap().len(), 1);
    let got = rx.wait_for("/ok", 2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_ne!(got[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(got[1].json()["event_id"], event.as_str());
    let replayed = app
        .get(
            &format!("/v1/deliveries/{}", got[1].header("webhook-id")),
            Some(&key),
        )
        .await;
    assert_eq!(replayed.body["replay"], true);

    // The failing one gives up after two attempts; a manual retry sends again.
    let failed = app
        .poll_until(
            &format!("/v1/subscriptions/{bad_sub}/deliveries?status=failed"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 1),
        )
        .await;
    let delivery = failed["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(failed["data"][0]["attempts"], 2);
    rx.default_reply("/always-fails", Reply::status(200));
    let r = app
        .post(
            &format!("/v1/deliveries/{delivery}/retry"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 202);
    let d = app
        .poll_until(&format!("/v1/deliveries/{delivery}"), &key, WAIT, |b| {
            b["status"] == "succeeded"
        })
        .await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(rx.received("/always-fails").len(), 3);

    // Replay to all: both subscriptions match.
    let r = app
        .post(
            &format!("/v1/events/{event}/replay"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.body["deliveries"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn recover_requeues_failed_deliveries_since_a_time() {
    let rx = Receiver::start().await;
    rx.default_reply("/later", Reply::status(500));
    let app = spawn_app_with(|s| s.delivery.retry_schedule = vec![delay("50ms")]).await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/later"), &["*"], json!({}))
        .await;
    let since = chrono::Utc::now().to_rfc3339();
    for i in 0..3 {
        app.ingest(&account, &format!("c{i}")).await;
    }
    app.poll_until(
        &format!("/v1/subscriptions/{sub}/deliveries?status=failed"),
        &key,
        WAIT,
        |b| b["data"].as_array().is_some_and(|d| d.len() == 3),
    )
    .await;
    rx.default_reply("/later", Reply::status(204));
    let r = app
        .post(
            &format!("/v1/subscriptions/{sub}/recover"),
            Some(&key),
            &json!({"since": since}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["queued"], 3);
    let ok = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=succeeded"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 3),
        )
        .await;
    assert_eq!(ok["data"].as_array().unwrap().len(), 3);
    let r = app
        .post(
            &format!("/v1/subscriptions/{sub}/recover"),
            Some(&key),
            &json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[actix_web::test]
async fn during_a_secret_rotation_both_secrets_sign() {
    let rx = Receiver::start().await;
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let (sub, old_secret) = app
        .subscribe(&key, &rx.url("/rotating"), &["*"], json!({}))
        .await;
    let r = app
        .post(
            &format!("/v1/subscriptions/{sub}/secret/rotate"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_secret = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    app.ingest(&account, "cus_1").await;
    let n = &rx.wait_for("/rotating", 1, WAIT).await[0];
    let header = n.header("webhook-signature");
    assert_eq!(header.split(' ').count(), 2, "{header}");
    for secret in [&old_secret, &new_secret] {
        assert!(verify(
            secret,
            n.header("webhook-id"),
            n.header("webhook-timestamp"),
            &n.body,
            header
        ));
    }
}

#[actix_web::test]
async fn a_test_notification_is_sent_signed_and_reported() {
    let rx = Receiver::start().await;
    rx.script("/t", vec![Reply::status(200), Reply::status(418)]);
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    let (sub, secret) = app.subscribe(&key, &rx.url("/t"), &["*"], json!({})).await;
    let r = app
        .post(
            &format!("/v1/subscriptions/{sub}/test"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["status_code"], 200);
    let n = &rx.received("/t")[0];
    assert_eq!(n.json()["event_type"], "courier.test");
    assert!(verify(
        &secret,
        n.header("webhook-id"),
        n.header("webhook-timestamp"),
        &n.body,
        n.header("webhook-signature")
    ));
    let r = app
        .post(
            &format!("/v1/subscriptions/{sub}/test"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.body["success"], false);
    assert_eq!(r.body["status_code"], 418);
}

#[actix_web::test]
async fn private_targets_are_refused_at_delivery_time_too() {
    let rx = Receiver::start().await;
    // An API-only replica that allows loopback targets accepts the subscription...
    let api = spawn_app_with(|s| s.delivery.enabled = false).await;
    let prefix = api.prefix.clone();
    // ...and a delivering replica that does not refuses to send to it.
    let deliverer = spawn_app_with(|s| {
        s.redis.key_prefix = prefix;
        s.delivery.allow_private_targets = false;
        s.delivery.retry_schedule = vec![delay("50ms")];
    })
    .await;
    let (account, key) = api.create_account().await;
    let (sub, _) = api
        .subscribe(&key, &rx.url("/internal"), &["*"], json!({}))
        .await;
    api.ingest(&account, "cus_1").await;
    let failed = deliverer
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=failed"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 1),
        )
        .await;
    let id = failed["data"][0]["id"].as_str().unwrap();
    let d = deliverer
        .get(&format!("/v1/deliveries/{id}"), Some(&key))
        .await;
    assert!(
        d.body["history"][0]["error"]
            .as_str()
            .unwrap()
            .contains("blocked"),
        "{}",
        d.body
    );
    assert!(rx.received("/internal").is_empty());
}

#[actix_web::test]
async fn two_replicas_never_deliver_the_same_claim_twice() {
    let rx = Receiver::start().await;
    let first = spawn_app().await;
    let prefix = first.prefix.clone();
    let second = spawn_app_with(|s| s.redis.key_prefix = prefix).await;
    let (account, key) = first.create_account().await;
    first
        .subscribe(&key, &rx.url("/both"), &["*"], json!({}))
        .await;
    for batch in 0..3 {
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": format!("c{batch}-{i}")}}))
            .collect();
        let app = if batch % 2 == 0 { &first } else { &second };
        assert_eq!(
            app.post(
                "/v1/events/batch",
                Some(ADMIN_KEY),
                &json!({ "events": events })
            )
            .await
            .body["accepted"],
            100
        );
    }
    let got = rx.wait_for("/both", 300, WAIT).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let got_after = rx.received("/both");
    assert_eq!(got.len(), 300);
    assert_eq!(got_after.len(), 300, "a delivery was sent twice");
    let ids: HashSet<&str> = got_after.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 300);
}

#[actix_web::test]
async fn a_panicking_scheduler_is_restarted_and_keeps_delivering() {
    let rx = Receiver::start().await;
    let mut settings = crate::helpers::test_settings();
    settings.log.level = "error".into();
    let app = courier::startup::Application::build(settings.clone())
        .await
        .unwrap();
    let engine = app.engine().unwrap();
    let ctx = engine.context().clone();
    engine
        .scheduler()
        .send(courier::delivery::scheduler::InjectPanic)
        .await
        .unwrap();
    let until = std::time::Instant::now() + WAIT;
    while ctx
        .scheduler_restarts
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
        && std::time::Instant::now() < until
    {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ctx.scheduler_restarts
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let port = app.port();
    actix_web::rt::spawn(app.run_until_stopped());
    let client = awc::Client::default();
    let base = format!("http://127.0.0.1:{port}");
    let mut res = client
        .post(format!("{base}/v1/accounts"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_KEY}")))
        .send_json(&json!({"name": "A", "contact_email": "a@b.example"}))
        .await
        .unwrap();
    let acc: Value = res.json().await.unwrap();
    let key = acc["api_key"].as_str().unwrap();
    client
        .post(format!("{base}/v1/subscriptions"))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .send_json(&json!({"event_types": ["*"], "channel": {"type": "webhook", "url": rx.url("/after-restart")}}))
        .await
        .unwrap();
    client
        .post(format!("{base}/v1/events"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_KEY}")))
        .send_json(&json!({"type": "customer.created", "account_id": acc["account"]["id"], "payload": {"customer_id": "c"}}))
        .await
        .unwrap();
    assert_eq!(rx.wait_for("/after-restart", 1, WAIT).await.len(), 1);
}

#[actix_web::test]
async fn an_endpoint_failing_for_days_is_disabled_with_a_notice() {
    let rx = Receiver::start().await;
    rx.default_reply("/dead", Reply::status(500));
    let app = spawn_app_with(|s| s.delivery.disable_after_hours = 120.try_into().unwrap()).await;
    let (account, key) = app.create_account().await;
    let url = rx.url("/dead");
    let (sub, _) = app.subscribe(&key, &url, &["*"], json!({})).await;
    // The endpoint has been failing for six days (state shared in Redis).
    let six_days_ago = chrono::Utc::now().timestamp_millis() - 6 * 86_400_000;
    let mut conn = app.redis();
    let _: () = redis::cmd("HSET")
        .arg(format!("{}:endpoint:{url}", app.prefix))
        .arg("failing_since")
        .arg(six_days_ago)
        .query(&mut conn)
        .unwrap();
    app.ingest(&account, "cus_1").await;
    app.ingest(&account, "cus_2").await;
    let s = app
        .poll_until(&format!("/v1/subscriptions/{sub}"), &key, WAIT, |b| {
            b["enabled"] == false
        })
        .await;
    assert!(
        s["disabled_reason"].as_str().unwrap().contains("120 hours"),
        "{s}"
    );
    let failed = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=failed"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 2),
        )
        .await;
    assert_eq!(
        failed["data"].as_array().unwrap().len(),
        2,
        "pending deliveries end as failed"
    );
    let notices_key = app
        .redis_keys()
        .into_iter()
        .find(|k| k.contains(":notices:"))
        .unwrap();
    let notices: Vec<String> = redis::cmd("LRANGE")
        .arg(notices_key)
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    let notice: Value = serde_json::from_str(&notices[0]).unwrap();
    assert_eq!(notice["kind"], "subscription_disabled");
    assert_eq!(notice["subscription_id"], sub.as_str());
}

#[actix_web::test]
async fn a_change_on_another_replica_reaches_the_delivering_one_at_once() {
    let rx = Receiver::start().await;
    let delivering = spawn_app().await;
    let prefix = delivering.prefix.clone();
    let api_only = spawn_app_with(|s| {
        s.redis.key_prefix = prefix;
        s.delivery.enabled = false;
    })
    .await;
    let (account, key) = delivering.create_account().await;
    let (sub, _) = delivering
        .subscribe(&key, &rx.url("/old"), &["*"], json!({}))
        .await;
    delivering.ingest(&account, "cus_1").await;
    assert_eq!(rx.wait_for("/old", 1, WAIT).await.len(), 1);
    // The delivering replica has the subscription cached now; change it
    // elsewhere. Pub/sub evicts the cached copy long before its 30 s expiry.
    let r = api_only
        .patch(
            &format!("/v1/subscriptions/{sub}"),
            Some(&key),
            &json!({"channel": {"type": "webhook", "url": rx.url("/new")}}),
        )
        .await;
    assert_eq!(r.status, 200);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    delivering.ingest(&account, "cus_2").await;
    assert_eq!(rx.wait_for("/new", 1, WAIT).await.len(), 1);
    assert_eq!(rx.received("/old").len(), 1);
}

#[actix_web::test]
async fn metrics_count_ingest_and_deliveries() {
    let rx = Receiver::start().await;
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    app.subscribe(&key, &rx.url("/m"), &["*"], json!({})).await;
    app.ingest(&account, "cus_1").await;
    rx.wait_for("/m", 1, WAIT).await;
    actix_web::rt::time::sleep(Duration::from_millis(1_200)).await;
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.raw).unwrap();
    for name in [
        "courier_events_ingested_total",
        "courier_deliveries_created_total",
        "courier_delivery_attempts_total{result=\"success\"}",
        "courier_attempt_duration_seconds_bucket",
        "courier_schedule_depth",
        "courier_leases_depth",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
}

#[actix_web::test]
async fn replay_to_a_subscription_that_does_not_take_the_type_is_refused() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(
            &key,
            "https://hooks.example.com/meter",
            &["meter_data.received"],
            json!({}),
        )
        .await;
    let event = app.ingest(&account, "cus_1").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/v1/events/{event}/replay"),
            Some(&key),
            &json!({"subscription_id": sub}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "subscription_id");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("customer.created"),
        "{}",
        r.body
    );
    let d = app
        .get(&format!("/v1/subscriptions/{sub}/deliveries"), Some(&key))
        .await;
    assert_eq!(d.body["data"], json!([]), "no delivery was made");
}

#[actix_web::test]
async fn replay_takes_a_null_or_empty_body_as_every_matching_subscription() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    app.create_webhook(&key, &["customer.created"]).await;
    let event = app.ingest(&account, "cus_1").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for body in [&b"null"[..], b"", b" "] {
        let r = app
            .post_raw(
                &format!("/v1/events/{event}/replay"),
                Some(&key),
                body.to_vec(),
            )
            .await;
        assert_eq!(
            r.status,
            202,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            r.body
        );
        assert_eq!(r.body["deliveries"].as_array().unwrap().len(), 1);
    }
}

#[actix_web::test]
async fn walking_a_status_filtered_listing_sees_each_match_exactly_once() {
    let rx = Receiver::start().await;
    // A fixed mix of successes and failures; a failure waits an hour for its
    // retry, so every delivery keeps its status while the pages are read.
    let pattern = [
        200, 500, 500, 200, 200, 200, 500, 200, 500, 500, 500, 200, 200, 500, 200, 200, 500, 200,
        500, 500, 200, 500, 200, 200,
    ];
    rx.script("/mix", pattern.iter().map(|s| Reply::status(*s)).collect());
    let app = spawn_app_with(|s| {
        s.delivery.retry_schedule = vec![delay("1h")];
        s.delivery.breaker_failure_threshold = 1_000.try_into().unwrap();
        s.delivery.endpoint_concurrency = 1.try_into().unwrap();
    })
    .await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/mix"), &["*"], json!({}))
        .await;
    for i in 0..pattern.len() {
        app.ingest(&account, &format!("cus_{i}")).await;
    }
    rx.wait_for("/mix", pattern.len(), WAIT).await;

    let walk = |status: Option<&'static str>| {
        let app = &app;
        let key = key.clone();
        let sub = sub.clone();
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..100 {
                let mut path = format!("/v1/subscriptions/{sub}/deliveries?limit=3");
                if let Some(s) = status {
                    path.push_str(&format!("&status={s}"));
                }
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let r = app.get(&path, Some(&key)).await;
                assert_eq!(r.status, 200, "{}", r.body);
                for d in r.body["data"].as_array().unwrap() {
                    seen.push((
                        d["id"].as_str().unwrap().to_owned(),
                        d["status"].as_str().unwrap().to_owned(),
                    ));
                }
                match r.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => return seen,
                }
            }
            panic!("the walk did not end");
        }
    };
    // Wait until every first attempt is recorded.
    let until = std::time::Instant::now() + WAIT;
    let all = loop {
        let all = walk(None).await;
        let settled = all.len() == pattern.len()
            && all.iter().filter(|(_, s)| s == "succeeded").count()
                == pattern.iter().filter(|s| **s == 200).count();
        if settled || std::time::Instant::now() > until {
            break all;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(all.len(), pattern.len());
    for status in ["succeeded", "pending"] {
        let expected: Vec<_> = all.iter().filter(|(_, s)| s == status).cloned().collect();
        let got = walk(Some(status)).await;
        assert_eq!(got, expected, "status={status}: every match once, in order");
    }
}

#[actix_web::test]
async fn a_delivery_listing_refuses_a_status_it_does_not_know() {
    let rx = Receiver::start().await;
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    let (sub, _) = app.subscribe(&key, &rx.url("/h"), &["*"], json!({})).await;
    for status in ["bogus", "Pending", "dropped", "pending%20"] {
        let r = app
            .get(
                &format!("/v1/subscriptions/{sub}/deliveries?status={status}"),
                Some(&key),
            )
            .await;
        assert_eq!(r.status, 422, "status={status}: {}", r.body);
        assert_eq!(
            r.body["error"],
            json!({
                "code": "validation_failed",
                "message": "status: must be pending, succeeded or failed",
                "field": "status",
            }),
            "status={status}"
        );
    }
    for status in ["pending", "succeeded", "failed"] {
        let r = app
            .get(
                &format!("/v1/subscriptions/{sub}/deliveries?status={status}"),
                Some(&key),
            )
            .await;
        assert_eq!(r.status, 200, "status={status}: {}", r.body);
    }
}

#[actix_web::test]
async fn a_delivery_whose_subscription_was_disabled_is_counted_as_dropped() {
    const DROPPED: &str = r#"courier_deliveries_finished_total{outcome="dropped"}"#;
    let rx = Receiver::start().await;
    // An API-only replica takes the event; the subscription is disabled
    // before any replica delivers it.
    let api = spawn_app_with(|s| s.delivery.enabled = false).await;
    let (account, key) = api.create_account().await;
    let (sub, _) = api
        .subscribe(&key, &rx.url("/off"), &["*"], json!({}))
        .await;
    assert_eq!(api.ingest(&account, "cus_1").await.status, 202);
    let r = api
        .patch(
            &format!("/v1/subscriptions/{sub}"),
            Some(&key),
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The counter is shared by every courier of this test process: only its
    // growth is this test's.
    let before = api.metric(DROPPED).await;
    let prefix = api.prefix.clone();
    let deliverer = spawn_app_with(|s| s.redis.key_prefix = prefix).await;
    let failed = deliverer
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=failed"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 1),
        )
        .await;
    assert_eq!(failed["data"].as_array().map(Vec::len), Some(1), "{failed}");
    let mut after = before;
    for _ in 0..40 {
        after = deliverer.metric(DROPPED).await;
        if after > before {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(after >= before + 1.0, "dropped stayed at {after}");
    assert!(rx.received("/off").is_empty());
}

#[actix_web::test]
async fn a_delivery_written_with_its_first_attempt_in_the_list_reads_and_retries_in_order() {
    // Earlier versions kept every attempt in `dlv:<id>:attempts`; now the
    // first one lives in the delivery's hash. Data written before the
    // upgrade is read in place.
    let rx = Receiver::start().await;
    rx.script("/hook", vec![Reply::status(500)]);
    let app = spawn_app_with(|s| s.delivery.retry_schedule = vec![delay("1h")]).await;
    let (account, key) = app.create_account().await;
    app.subscribe(&key, &rx.url("/hook"), &["*"], json!({}))
        .await;
    app.ingest(&account, "cus_1").await;
    rx.wait_for("/hook", 1, WAIT).await;
    let id = rx.received("/hook")[0].header("webhook-id").to_owned();
    let before = app
        .poll_until(&format!("/v1/deliveries/{id}"), &key, WAIT, |b| {
            b["attempts"] == 1
        })
        .await;
    assert_eq!(before["history"].as_array().unwrap().len(), 1, "{before}");

    // Rewrite it as an earlier version stored it.
    let dkey = app
        .redis_keys()
        .into_iter()
        .find(|k| k.ends_with(&format!(":dlv:{id}")))
        .unwrap();
    let mut conn = app.redis();
    let a1: Option<String> = redis::cmd("HGET")
        .arg(&dkey)
        .arg("a1")
        .query(&mut conn)
        .unwrap();
    assert!(a1.is_some(), "the first attempt is in the hash");
    let ttl: i64 = redis::cmd("PTTL").arg(&dkey).query(&mut conn).unwrap();
    // One command at a time (a blocking cluster connection sends no
    // pipelines; nothing else touches the delivery meanwhile).
    let _: () = redis::cmd("HDEL")
        .arg(&dkey)
        .arg("a1")
        .arg("a1r")
        .arg("a1e")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{dkey}:attempts"))
        .arg(before["history"][0].to_string())
        .query(&mut conn)
        .unwrap();
    // Deliveries carry no expiry now (they go with their event); one
    // written by an earlier version had one, and its list the same.
    if ttl > 0 {
        let _: () = redis::cmd("PEXPIRE")
            .arg(format!("{dkey}:attempts"))
            .arg(ttl)
            .query(&mut conn)
            .unwrap();
    }
    let old = app.get(&format!("/v1/deliveries/{id}"), Some(&key)).await;
    assert_eq!(old.body["history"], before["history"], "read in place");

    // A retry under the new version appends after it.
    let r = app
        .post(
            &format!("/v1/deliveries/{id}/retry"),
            Some(&key),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let d = app
        .poll_until(&format!("/v1/deliveries/{id}"), &key, WAIT, |b| {
            b["status"] == "succeeded"
        })
        .await;
    let history = d["history"].as_array().unwrap();
    assert_eq!(d["attempts"], 2);
    assert_eq!(history.len(), 2, "{d}");
    assert_eq!(history[0], before["history"][0]);
    assert_eq!(history[1]["status_code"], 200);
}
