//! Secrets at rest: subscription signing secrets are sealed in Redis with
//! the configured key; a rotated-out key still opens them, and `courier
//! reencrypt` seals them all with the new key.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;

use crate::delivery::verify;
use crate::helpers::{redis_url, spawn_app_with, TestApp};
use crate::receiver::{Receiver, Reply};

const OLD_KEY: &str = "Vv6Lk8L+Tz2VHcPpy0fIrx3v8mGSTkG3jXGLfKz6zRM=";
const NEW_KEY: &str = "o1o0d7zKg9yIlcGt2yqXQ5V9mKqU2gP2sOQ8Jk4x0b4=";

fn keys(list: &[&str]) -> Vec<SecretString> {
    list.iter()
        .map(|k| SecretString::from(k.to_string()))
        .collect()
}

/// The stored JSON of a subscription, straight from Redis.
fn stored(app: &TestApp, sub: &str) -> String {
    let key = app
        .redis_keys()
        .into_iter()
        .find(|k| k.ends_with(&format!(":sub:{sub}")))
        .expect("the subscription is in redis");
    let mut conn = app.redis();
    redis::cmd("HGET")
        .arg(key)
        .arg("data")
        .query(&mut conn)
        .unwrap()
}

#[actix_web::test]
async fn signing_secrets_are_sealed_in_redis_and_survive_a_key_rotation() {
    let rx = Receiver::start().await;
    rx.default_reply("/hook", Reply::status(200));
    let writer = spawn_app_with(|s| {
        s.auth.encryption_keys = keys(&[OLD_KEY]);
        s.delivery.enabled = false;
    })
    .await;
    let (account, key) = writer.create_account().await;
    let (sub, secret) = writer
        .subscribe(&key, &rx.url("/hook"), &["*"], json!({}))
        .await;
    assert!(secret.starts_with("whsec_"));
    let raw = stored(&writer, &sub);
    assert!(
        !raw.contains(&secret),
        "the secret is not stored in clear: {raw}"
    );
    assert!(!raw.contains(secret.trim_start_matches("whsec_")));
    assert!(raw.contains("enc:v1:"), "{raw}");

    // A replica with a new first key and the old one still listed delivers
    // signed with the secret the subscriber was given.
    let prefix = writer.prefix.clone();
    let rotated = spawn_app_with(|s| {
        s.redis.key_prefix = prefix.clone();
        s.auth.encryption_keys = keys(&[NEW_KEY, OLD_KEY]);
    })
    .await;
    rotated.ingest(&account, "cus_1").await;
    let got = rx.wait_for("/hook", 1, Duration::from_secs(10)).await;
    let n = &got[0];
    assert!(verify(
        &secret,
        n.header("webhook-id"),
        n.header("webhook-timestamp"),
        &n.body,
        n.header("webhook-signature")
    ));

    // `courier reencrypt` seals everything with the new key...
    let out = Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("reencrypt")
        .env("COURIER_ENV", "test")
        .env(
            "COURIER_CONFIG_DIR",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
        )
        .env("COURIER__REDIS__URL", redis_url())
        .env("COURIER__REDIS__KEY_PREFIX", &prefix)
        .env(
            "COURIER__AUTH__ENCRYPTION_KEYS",
            format!("{NEW_KEY},{OLD_KEY}"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 of 1 subscriptions re-encrypted"),
        "{stdout}"
    );
    let resealed = stored(&writer, &sub);
    assert_ne!(resealed, raw);
    assert!(!resealed.contains(&secret));

    // ...so a replica that holds only the new key can sign with it.
    rotated.stop_keeping_data();
    let new_only = spawn_app_with(|s| {
        s.redis.key_prefix = prefix.clone();
        s.auth.encryption_keys = keys(&[NEW_KEY]);
    })
    .await;
    new_only.ingest(&account, "cus_2").await;
    let got = rx.wait_for("/hook", 2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    let n = &got[1];
    assert!(verify(
        &secret,
        n.header("webhook-id"),
        n.header("webhook-timestamp"),
        &n.body,
        n.header("webhook-signature")
    ));
    drop(new_only);
    drop(writer);
}
