//! No secret reaches a log line or an error body: a courier process logging
//! at debug level goes through everything that handles a secret (API keys
//! issued, used, rotated and refused; signing secrets issued, rotated and
//! used to sign; the encryption key; SMTP credentials), then its whole output
//! and every error body it answered are searched for each secret.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{test_settings, ADMIN_KEY};
use crate::process::{create_account, Courier};
use crate::receiver::{Receiver, Reply};

const SMTP_PASSWORD: &str = "smtp-pa55word-never-logged";

/// A request whose answer is kept when it is an error.
async fn call(
    c: &Courier,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
    errors: &mut Vec<String>,
) -> Value {
    let client = awc::Client::default();
    let url = format!("{}{path}", c.base);
    let req = match method {
        "GET" => client.get(url),
        "PATCH" => client.patch(url),
        _ => client.post(url),
    }
    .insert_header(("Authorization", format!("Bearer {key}")));
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .unwrap();
    let raw = res.body().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&raw).into_owned();
    if !res.status().is_success() {
        errors.push(text.clone());
    }
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[actix_web::test]
async fn no_secret_appears_in_any_log_line_or_error_body() {
    let rx = Receiver::start().await;
    rx.script("/hook", vec![Reply::status(500)]);
    rx.default_reply("/hook", Reply::status(200));
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let smtp_port = crate::helpers::free_port();
    let smtp_url = format!("smtp://courier:{SMTP_PASSWORD}@127.0.0.1:{smtp_port}");
    let courier = Courier::start_with(
        &prefix,
        &[
            ("COURIER__LOG__LEVEL", "debug"),
            ("COURIER__SMTP__URL", &smtp_url),
        ],
    )
    .await;
    let mut errors = Vec::new();
    let mut secrets: Vec<String> = vec![ADMIN_KEY.into(), SMTP_PASSWORD.into()];
    secrets.extend(
        test_settings()
            .auth
            .encryption_keys
            .iter()
            .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned()),
    );

    let (account, key) = create_account(&courier, "ops@acme.example").await;
    secrets.push(key.clone());
    // Credentials and a token in the webhook URL itself.
    let hook_url = rx
        .url("/hook?token=url-query-token")
        .replace("http://", "http://hookuser:url-pa55word@");
    secrets.extend(["url-pa55word".to_owned(), "url-query-token".to_owned()]);
    let sub = call(
        &courier,
        "POST",
        "/v1/subscriptions",
        &key,
        Some(json!({"event_types": ["*"], "channel": {"type": "webhook", "url": hook_url}})),
        &mut errors,
    )
    .await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    secrets.push(sub["secret"].as_str().unwrap().to_owned());
    call(
        &courier,
        "POST",
        "/v1/subscriptions",
        &key,
        Some(json!({"event_types": ["*"], "channel": {"type": "email", "address": "dev@acme.example"}})),
        &mut errors,
    )
    .await;
    // Delivered (after one failed attempt), signed; the email attempts fail
    // against an SMTP server that is not there.
    call(
        &courier,
        "POST",
        "/v1/events",
        ADMIN_KEY,
        Some(json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": "cus_1"}})),
        &mut errors,
    )
    .await;
    rx.wait_for("/hook", 2, Duration::from_secs(10)).await;
    let rotated = call(
        &courier,
        "POST",
        &format!("/v1/subscriptions/{sub_id}/secret/rotate"),
        &key,
        None,
        &mut errors,
    )
    .await;
    secrets.push(rotated["secret"].as_str().unwrap().to_owned());
    call(
        &courier,
        "POST",
        &format!("/v1/subscriptions/{sub_id}/test"),
        &key,
        None,
        &mut errors,
    )
    .await;
    let new_key = call(
        &courier,
        "POST",
        "/v1/api-keys/rotate",
        &key,
        None,
        &mut errors,
    )
    .await;
    let new_key = new_key["api_key"].as_str().unwrap().to_owned();
    secrets.push(new_key.clone());
    // A dashboard sign-in through a one-time link: the link's token is in
    // the request path, the session id in a cookie.
    let link = call(
        &courier,
        "POST",
        "/v1/dashboard/links",
        &new_key,
        Some(json!({"scope": "manage"})),
        &mut errors,
    )
    .await;
    let link = link["url"].as_str().unwrap().to_owned();
    let token = link.rsplit('/').next().unwrap().to_owned();
    let browser = awc::Client::builder().disable_redirects().finish();
    let res = browser
        .get(format!("{}/dashboard/links/{token}", courier.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session = res
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.strip_prefix("courier_session="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let used = browser
        .get(format!("{}/dashboard/links/{token}", courier.base))
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 410);
    // Tokens are base64url: checked whole only (a piece after a `_` could
    // be short enough to match anything).
    let tokens = [token, session];

    // Refusals that carry a key: the old key, a damaged one, an admin key
    // where an account key belongs, a key in a body.
    let before = errors.len();
    call(
        &courier,
        "GET",
        "/v1/subscriptions",
        &key,
        None,
        &mut errors,
    )
    .await;
    call(
        &courier,
        "GET",
        "/v1/subscriptions",
        &format!("{new_key}x"),
        None,
        &mut errors,
    )
    .await;
    call(
        &courier,
        "GET",
        "/v1/subscriptions",
        ADMIN_KEY,
        None,
        &mut errors,
    )
    .await;
    call(
        &courier,
        "PATCH",
        &format!("/v1/subscriptions/{sub_id}"),
        &new_key,
        Some(json!({"secret": new_key, "description": 7})),
        &mut errors,
    )
    .await;
    assert_eq!(errors.len(), before + 4, "every refusal answered an error");
    // Let the email attempts run and fail.
    actix_web::rt::time::sleep(Duration::from_millis(1_500)).await;

    let output = courier.output();
    courier.stop().await;
    crate::helpers::cleanup_prefix(&prefix);
    assert!(
        output.lines().count() > 10,
        "debug logging produced output:\n{output}"
    );
    for token in &tokens {
        assert!(
            !output.contains(token.as_str()),
            "a token is in the log:\n{output}"
        );
    }
    assert!(
        output.contains("/dashboard/links/[redacted]"),
        "the link's request was logged:\n{output}"
    );
    for secret in &secrets {
        // Also the secret part alone (after `ck_<id>_` or `whsec_`; not
        // after its last `_`: base64url has `_` too, and a tail of a few
        // characters may well be in the log by chance).
        let tail = secret
            .strip_prefix("whsec_")
            .or_else(|| secret.strip_prefix("ck_")?.split_once('_').map(|(_, t)| t))
            .unwrap_or(secret);
        for needle in [secret.as_str(), tail] {
            assert!(
                !output.contains(needle),
                "a secret is in the log:\n{output}"
            );
            for e in &errors {
                assert!(!e.contains(needle), "a secret is in an error body: {e}");
            }
        }
    }
}

/// With `log.format = "json"` every line is one flat JSON object a log
/// shipper can take as it is: a request's lines carry its `request_id`, and
/// the ingest and the delivery attempt lines the ids they concern.
#[actix_web::test]
async fn json_logs_are_one_object_per_line_with_request_account_event_and_delivery_ids() {
    let rx = Receiver::start().await;
    rx.default_reply("/hook", Reply::status(204));
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let courier = Courier::start_with(
        &prefix,
        &[
            ("COURIER__LOG__FORMAT", "json"),
            ("COURIER__LOG__LEVEL", "info,courier=debug"),
        ],
    )
    .await;
    let (account, key) = create_account(&courier, "ops@acme.example").await;
    let sub = courier
        .post(
            "/v1/subscriptions",
            &key,
            &json!({"event_types": ["*"], "channel": {"type": "webhook", "url": rx.url("/hook")}}),
        )
        .await;
    assert!(sub["id"].is_string(), "{sub}");
    let event = courier
        .post(
            "/v1/events",
            ADMIN_KEY,
            &json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": "cus_1"}}),
        )
        .await;
    let event = event["id"].as_str().unwrap().to_owned();
    rx.wait_for("/hook", 1, Duration::from_secs(10)).await;
    // The attempt's line is written once its outcome is recorded.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !courier.output().contains("\"delivered\"") && std::time::Instant::now() < until {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let output = courier.output();
    courier.stop().await;
    crate::helpers::cleanup_prefix(&prefix);

    let lines: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for l in &lines {
        assert!(l.is_object(), "{l}");
        for field in ["timestamp", "level", "message"] {
            assert!(l[field].is_string(), "{field} missing: {l}");
        }
    }
    let find = |message: &str| -> &Value {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no line `{message}`:\n{output}"))
    };
    let created = find("account created");
    assert_eq!(created["account"], account.as_str(), "{created}");
    assert!(
        created["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{created}"
    );
    assert_eq!(created["http.route"], "/v1/accounts", "{created}");
    let accepted = find("event accepted");
    assert_eq!(accepted["account"], account.as_str(), "{accepted}");
    assert_eq!(accepted["event"], event.as_str(), "{accepted}");
    assert_eq!(accepted["event_type"], "customer.created", "{accepted}");
    assert!(accepted["request_id"].is_string(), "{accepted}");
    assert_ne!(accepted["request_id"], created["request_id"]);
    let delivered = find("delivered");
    assert_eq!(delivered["account"], account.as_str(), "{delivered}");
    assert_eq!(delivered["event"], event.as_str(), "{delivered}");
    assert_eq!(delivered["subscription"], sub["id"], "{delivered}");
    assert!(
        delivered["delivery"]
            .as_str()
            .is_some_and(|d| uuid::Uuid::parse_str(d).is_ok()),
        "{delivered}"
    );
    assert_eq!(delivered["status"], "204", "{delivered}");
}
