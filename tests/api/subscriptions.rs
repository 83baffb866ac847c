use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

fn members(app: &TestApp, key_suffix: &str) -> HashSet<String> {
    let mut conn = app.redis();
    match app
        .redis_keys()
        .into_iter()
        .find(|k| k.ends_with(key_suffix))
    {
        None => HashSet::new(),
        Some(k) => redis::cmd("SMEMBERS").arg(k).query(&mut conn).unwrap(),
    }
}

#[actix_web::test]
async fn a_webhook_subscription_gets_a_secret_shown_only_on_create() {
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["meter_data.received", "meter.created"],
                    "channel": {"type": "webhook", "url": "https://hooks.example.com/in"},
                    "description": "ingestion pipeline"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(r.body["enabled"], true);
    assert_eq!(
        r.body["event_types"],
        json!(["meter.created", "meter_data.received"])
    );
    assert_eq!(
        r.body["channel"],
        json!({"type": "webhook", "url": "https://hooks.example.com/in"})
    );

    let id = r.body["id"].as_str().unwrap();
    let g = app
        .get(&format!("/v1/subscriptions/{id}"), Some(&key))
        .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["description"], "ingestion pipeline");
    assert!(g.body.get("secret").is_none());
}

#[actix_web::test]
async fn an_email_subscription_has_no_secret() {
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["*"], "channel": {"type": "email", "address": "cs@acme.example"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(r.body.get("secret").is_none());
    assert_eq!(r.body["event_types"], json!(["*"]));
}

#[actix_web::test]
async fn invalid_subscriptions_are_rejected_with_the_field_named() {
    let app = spawn_app_with(|s| s.delivery.allow_private_targets = false).await;
    let (_, key) = app.create_account().await;
    let hook = |url: &str| json!({"type": "webhook", "url": url});
    for (body, field) in [
        (
            json!({"event_types": [], "channel": hook("https://x.example/")}),
            "event_types",
        ),
        (
            json!({"event_types": ["nope.nope"], "channel": hook("https://x.example/")}),
            "event_types",
        ),
        (
            json!({"event_types": ["*"], "channel": hook("ftp://x.example/")}),
            "channel.url",
        ),
        (
            json!({"event_types": ["*"], "channel": hook("/relative")}),
            "channel.url",
        ),
        (
            json!({"event_types": ["*"], "channel": hook("http://127.0.0.1:8080/")}),
            "channel.url",
        ),
        (
            json!({"event_types": ["*"], "channel": hook("http://169.254.169.254/latest")}),
            "channel.url",
        ),
        (
            json!({"event_types": ["*"], "channel": hook("http://10.0.0.8/")}),
            "channel.url",
        ),
        (
            json!({"event_types": ["*"], "channel": hook("http://localhost/")}),
            "channel.url",
        ),
        (
            json!({"event_types": ["*"], "channel": {"type": "email", "address": "nobody"}}),
            "channel.address",
        ),
        (
            json!({"event_types": ["*"], "channel": hook("https://x.example/"), "description": "a\r\nb"}),
            "description",
        ),
    ] {
        let r = app.post("/v1/subscriptions", Some(&key), &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{body}: {}", r.body);
    }
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["*"], "channel": {"type": "pigeon"}}),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[actix_web::test]
async fn an_account_cannot_exceed_its_subscription_limit() {
    let app =
        spawn_app_with(|s| s.limits.max_subscriptions_per_account = 2.try_into().unwrap()).await;
    let (_, key) = app.create_account().await;
    app.create_webhook(&key, &["*"]).await;
    app.create_webhook(&key, &["*"]).await;
    let r = app
        .post("/v1/subscriptions", Some(&key), &json!({"event_types": ["*"], "channel": {"type": "webhook", "url": "https://x.example/"}}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "too_many_subscriptions");
}

#[actix_web::test]
async fn patch_changes_only_the_given_fields_and_the_routing() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let created = app.create_webhook(&key, &["meter.created"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/subscriptions/{id}");
    assert_eq!(
        members(&app, &format!("route:{account}:meter.created")),
        HashSet::from([id.clone()])
    );

    let r = app
        .patch(
            &path,
            Some(&key),
            &json!({"event_types": ["customer.created"], "description": "crm"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["event_types"], json!(["customer.created"]));
    assert_eq!(r.body["description"], "crm");
    assert_eq!(r.body["channel"], created.body["channel"]);
    assert!(members(&app, &format!("route:{account}:meter.created")).is_empty());
    assert_eq!(
        members(&app, &format!("route:{account}:customer.created")),
        HashSet::from([id.clone()])
    );

    let r = app
        .patch(
            &path,
            Some(&key),
            &json!({"enabled": false, "description": null}),
        )
        .await;
    assert_eq!(r.body["enabled"], false);
    assert!(r.body["description"].is_null());
    assert!(members(&app, &format!("route:{account}:customer.created")).is_empty());

    let r = app
        .patch(&path, Some(&key), &json!({"enabled": true}))
        .await;
    assert_eq!(r.body["enabled"], true);
    assert_eq!(
        members(&app, &format!("route:{account}:customer.created")),
        HashSet::from([id.clone()])
    );

    let r = app
        .patch(
            &path,
            Some(&key),
            &json!({"channel": {"type": "webhook", "url": "ftp://x"}}),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .patch(&path, Some(&key), &json!({"colour": "blue"}))
        .await;
    assert_eq!(r.status, 422);
}

#[actix_web::test]
async fn switching_email_to_webhook_issues_a_secret() {
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["*"], "channel": {"type": "email", "address": "a@b.example"}}),
        )
        .await;
    let path = format!("/v1/subscriptions/{}", r.body["id"].as_str().unwrap());
    let r = app
        .patch(
            &path,
            Some(&key),
            &json!({"channel": {"type": "webhook", "url": "https://x.example/in"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));
}

#[actix_web::test]
async fn delete_removes_the_subscription_and_its_routing() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let id = app.create_webhook(&key, &["*"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/subscriptions/{id}");
    assert_eq!(app.delete(&path, Some(&key)).await.status, 204);
    assert_eq!(app.get(&path, Some(&key)).await.status, 404);
    assert_eq!(app.delete(&path, Some(&key)).await.status, 404);
    assert!(members(&app, &format!("route:{account}:*")).is_empty());
    assert_eq!(
        app.get("/v1/subscriptions", Some(&key)).await.body["data"],
        json!([])
    );
}

#[actix_web::test]
async fn listing_pages_through_subscriptions() {
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    let mut created = HashSet::new();
    for _ in 0..7 {
        created.insert(
            app.create_webhook(&key, &["*"]).await.body["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = HashSet::new();
    let mut path = "/v1/subscriptions?limit=3".to_owned();
    for _ in 0..5 {
        let r = app.get(&path, Some(&key)).await;
        for s in r.body["data"].as_array().unwrap() {
            assert!(s.get("secret").is_none());
            assert!(
                seen.insert(s["id"].as_str().unwrap().to_owned()),
                "repeated"
            );
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/subscriptions?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, created);
}

#[actix_web::test]
async fn another_accounts_subscriptions_are_not_found() {
    let app = spawn_app().await;
    let (_, alice) = app.create_account().await;
    let (_, bob) = app.create_account().await;
    let id = app.create_webhook(&alice, &["*"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/subscriptions/{id}");
    assert_eq!(app.get(&path, Some(&bob)).await.status, 404);
    assert_eq!(
        app.patch(&path, Some(&bob), &json!({"enabled": false}))
            .await
            .status,
        404
    );
    assert_eq!(app.delete(&path, Some(&bob)).await.status, 404);
    assert_eq!(
        app.get("/v1/subscriptions", Some(&bob)).await.body["data"],
        json!([])
    );
    // Alice's subscription is untouched.
    assert_eq!(app.get(&path, Some(&alice)).await.body["enabled"], true);
}

#[actix_web::test]
async fn a_change_made_on_one_replica_is_seen_by_another() {
    let first = spawn_app().await;
    let prefix = first.prefix.clone();
    let second = spawn_app_with(|s| s.redis.key_prefix = prefix).await;
    let (_, key) = first.create_account().await;
    let id = first.create_webhook(&key, &["*"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/subscriptions/{id}");
    assert_eq!(second.get(&path, Some(&key)).await.status, 200);
    assert_eq!(
        second
            .patch(&path, Some(&key), &json!({"enabled": false}))
            .await
            .status,
        200
    );
    assert_eq!(first.get(&path, Some(&key)).await.body["enabled"], false);
}

/// The deliveries an event got, by subscription id.
async fn routed(app: &TestApp, key: &str, account: &str, event_type: &str) -> HashSet<String> {
    let r = app
        .post(
            "/v1/events",
            Some(crate::helpers::ADMIN_KEY),
            &json!({"type": event_type, "account_id": account,
                    "payload": {"meter_id": "m", "customer_id": "c"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let e = app.get(&format!("/v1/events/{id}"), Some(key)).await;
    e.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["subscription_id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn ingest_routes_by_the_accounts_route_fields_and_builds_them_for_an_older_account() {
    let app = spawn_app_with(|s| s.delivery.enabled = false).await;
    let (account, key) = app.create_account().await;
    let url = "https://hooks.example.com/in";
    let (typed, _) = app
        .subscribe(&key, url, &["customer.created"], json!({}))
        .await;
    let (all, _) = app.subscribe(&key, url, &["*"], json!({})).await;
    let (other, _) = app
        .subscribe(&key, url, &["meter.created"], json!({}))
        .await;
    let (off, _) = app.subscribe(&key, url, &["*"], json!({})).await;
    let r = app
        .patch(
            &format!("/v1/subscriptions/{off}"),
            Some(&key),
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let want: HashSet<String> = [typed.clone(), all.clone()].into();
    assert_eq!(routed(&app, &key, &account, "customer.created").await, want);
    let want_other: HashSet<String> = [other.clone(), all.clone()].into();
    assert_eq!(
        routed(&app, &key, &account, "meter.created").await,
        want_other
    );

    // An account as an earlier version wrote it: no route fields, only the
    // route sets. Its first ingest builds the fields from its subscriptions.
    let akey = app
        .redis_keys()
        .into_iter()
        .find(|k| k.ends_with(&format!(":account:{account}")))
        .unwrap();
    let mut conn = app.redis();
    let fields: Vec<String> = redis::cmd("HKEYS").arg(&akey).query(&mut conn).unwrap();
    for f in fields.iter().filter(|f| f.starts_with("routes")) {
        let _: () = redis::cmd("HDEL")
            .arg(&akey)
            .arg(f)
            .query(&mut conn)
            .unwrap();
    }
    assert_eq!(routed(&app, &key, &account, "customer.created").await, want);
    let v: Option<String> = redis::cmd("HGET")
        .arg(&akey)
        .arg("routes_v")
        .query(&mut conn)
        .unwrap();
    assert_eq!(v.as_deref(), Some("2"));
    assert_eq!(
        routed(&app, &key, &account, "meter.created").await,
        want_other
    );
    // And the fields follow later changes.
    let r = app
        .delete(&format!("/v1/subscriptions/{all}"), Some(&key))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let only_typed: HashSet<String> = [typed].into();
    assert_eq!(
        routed(&app, &key, &account, "customer.created").await,
        only_typed
    );
}
