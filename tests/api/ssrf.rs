//! Server-side request forgery: webhook targets that are this machine, a
//! private network, link-local or a cloud metadata service are refused when
//! a subscription is written and again at every delivery, in every spelling
//! and through DNS (static host entries stand in for DNS answers here).

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app_with, TestApp};
use crate::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(10);

async fn refused(app: &TestApp, key: &str, url: &str) -> Option<String> {
    let r = app
        .post(
            "/v1/subscriptions",
            Some(key),
            &json!({"event_types": ["*"], "channel": {"type": "webhook", "url": url}}),
        )
        .await;
    if r.status != 422 || r.body["error"]["field"] != "channel.url" {
        return Some(format!("{url}: {} {}", r.status, r.body));
    }
    None
}

#[actix_web::test]
async fn internal_targets_are_refused_at_create_in_every_spelling() {
    let app = spawn_app_with(|s| {
        s.delivery.allow_private_targets = false;
        s.delivery.hosts = [
            ("intranet.partner.example", "10.1.2.3"),
            ("cgnat.partner.example", "100.64.1.2"),
            ("meta.partner.example", "169.254.169.254"),
            ("v6.partner.example", "fd12::1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.parse().unwrap()))
        .collect();
    })
    .await;
    let (_, key) = app.create_account().await;
    let mut accepted = Vec::new();
    for url in [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://017700000001/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[64:ff9b::a00:1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://100.64.0.1/",
        "http://10.0.0.1/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1%25eth0]/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "http://instance-data/latest/meta-data",
        "http://localhost:9000/",
        "http://intranet.partner.example/hook",
        "http://CGNAT.partner.example./hook",
        "http://meta.partner.example/hook",
        "http://v6.partner.example/hook",
    ] {
        accepted.extend(refused(&app, &key, url).await);
    }
    assert!(accepted.is_empty(), "not refused: {accepted:#?}");

    // A change to such a target is refused too.
    let (sub, _) = app
        .subscribe(&key, "https://hooks.example.com/in", &["*"], json!({}))
        .await;
    let r = app
        .patch(
            &format!("/v1/subscriptions/{sub}"),
            Some(&key),
            &json!({"channel": {"type": "webhook", "url": "http://intranet.partner.example/"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10.1.2.3"),
        "{}",
        r.body
    );
}

#[actix_web::test]
async fn link_local_and_metadata_targets_are_refused_even_where_private_ones_are_allowed() {
    let app = spawn_app_with(|s| s.delivery.allow_private_targets = true).await;
    let (_, key) = app.create_account().await;
    let mut accepted = Vec::new();
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://0xa9fea9fe/",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/",
        "http://100.100.100.200/latest/meta-data",
    ] {
        accepted.extend(refused(&app, &key, url).await);
    }
    assert!(accepted.is_empty(), "not refused: {accepted:#?}");
    // Loopback stays allowed for local testing.
    app.subscribe(&key, "http://127.0.0.1:9/hook", &["*"], json!({}))
        .await;
}

#[actix_web::test]
async fn a_target_that_turned_internal_after_create_is_refused_at_delivery() {
    let rx = Receiver::start().await;
    rx.default_reply("/hook", Reply::status(200));
    let port = rx
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    // When the subscriptions were made, the name resolved to a public
    // address (this replica delivers nothing) and loopback was allowed.
    let writer = spawn_app_with(|s| {
        s.delivery.enabled = false;
        s.delivery.allow_private_targets = true;
        s.delivery.hosts = [(
            "flip.partner.example".to_owned(),
            "93.184.216.34".parse().unwrap(),
        )]
        .into_iter()
        .collect();
    })
    .await;
    let (account, key) = writer.create_account().await;
    let by_name = format!("http://flip.partner.example:{port}/hook");
    let by_ip = rx.url("/hook");
    writer.subscribe(&key, &by_name, &["*"], json!({})).await;
    writer.subscribe(&key, &by_ip, &["*"], json!({})).await;

    // Now the name resolves to this machine, and the replica that delivers
    // allows no private targets.
    let prefix = writer.prefix.clone();
    let deliverer = spawn_app_with(|s| {
        s.redis.key_prefix = prefix;
        s.delivery.allow_private_targets = false;
        s.delivery.hosts = [(
            "flip.partner.example".to_owned(),
            "127.0.0.1".parse().unwrap(),
        )]
        .into_iter()
        .collect();
    })
    .await;
    let event = deliverer.ingest(&account, "cus_1").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = deliverer
        .poll_until(&format!("/v1/events/{event}"), &key, WAIT, |b| {
            b["deliveries"].as_array().is_some_and(|d| {
                d.len() == 2 && d.iter().all(|d| d["attempts"].as_u64() >= Some(1))
            })
        })
        .await;
    for d in detail["deliveries"].as_array().unwrap() {
        let id = d["id"].as_str().unwrap();
        let full = deliverer
            .get(&format!("/v1/deliveries/{id}"), Some(&key))
            .await;
        let error = full.body["history"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains("blocked target"), "{}", full.body);
    }
    assert!(
        rx.received("/hook").is_empty(),
        "nothing reached the receiver"
    );
}
