use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_KEY};

#[actix_web::test]
async fn creating_an_account_returns_it_with_a_key_that_works() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/accounts",
            Some(ADMIN_KEY),
            &json!({"name": "Acme", "contact_email": "ops@acme.example"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["account"]["name"], "Acme");
    assert_eq!(r.body["account"]["contact_email"], "ops@acme.example");
    let key = r.body["api_key"].as_str().unwrap();
    assert!(key.starts_with("ck_"));
    assert_eq!(app.get("/v1/subscriptions", Some(key)).await.status, 200);
}

#[actix_web::test]
async fn account_keys_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let (id, key) = app.create_account().await;
    let mut conn = app.redis();
    let account_key = app
        .redis_keys()
        .into_iter()
        .find(|k| k.ends_with(&format!("account:{id}")))
        .unwrap();
    let fields: Vec<String> = redis::cmd("HVALS")
        .arg(&account_key)
        .query(&mut conn)
        .unwrap();
    assert!(
        !fields.iter().any(|v| v.contains(&key[10..])),
        "plaintext key in redis"
    );
}

#[actix_web::test]
async fn account_creation_rejects_invalid_input() {
    let app = spawn_app().await;
    for (body, field) in [
        (
            json!({"name": "", "contact_email": "ops@acme.example"}),
            "name",
        ),
        (
            json!({"name": "Acme", "contact_email": "not an address"}),
            "contact_email",
        ),
        (
            json!({"name": "Acme\r\nX-Evil: 1", "contact_email": "ops@acme.example"}),
            "name",
        ),
    ] {
        let r = app.post("/v1/accounts", Some(ADMIN_KEY), &body).await;
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(r.body["error"]["field"], field);
    }
    let r = app
        .post("/v1/accounts", Some(ADMIN_KEY), &json!({"name": "Acme"}))
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .post_raw("/v1/accounts", Some(ADMIN_KEY), b"{not json".to_vec())
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "bad_json");
}

#[actix_web::test]
async fn admin_routes_need_an_admin_key() {
    let app = spawn_app().await;
    let body = json!({"name": "Acme", "contact_email": "ops@acme.example"});
    let r = app.post("/v1/accounts", None, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "unauthorized");
    assert_eq!(
        app.post("/v1/accounts", Some("wrong-key"), &body)
            .await
            .status,
        401
    );
    let (_, account_key) = app.create_account().await;
    let r = app.post("/v1/accounts", Some(&account_key), &body).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "forbidden");
}

#[actix_web::test]
async fn account_routes_reject_missing_wrong_and_admin_keys() {
    let app = spawn_app().await;
    let (id, key) = app.create_account().await;
    assert_eq!(app.get("/v1/events", None).await.status, 401);
    // An admin key where an account key belongs: told what is wrong.
    let r = app.get("/v1/events", Some(ADMIN_KEY)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.code(), "forbidden");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs an account key"),
        "{}",
        r.body
    );
    // Right account, wrong secret.
    let forged = format!(
        "{}{}",
        &key[..key.len() - 4],
        if key.ends_with("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        }
    );
    assert_eq!(app.get("/v1/events", Some(&forged)).await.status, 401);
    let unknown = key.replace(
        &id.replace('-', ""),
        &uuid::Uuid::now_v7().simple().to_string(),
    );
    assert_eq!(app.get("/v1/events", Some(&unknown)).await.status, 401);
}

#[actix_web::test]
async fn rotating_a_key_invalidates_the_old_one_and_records_an_event() {
    let app = spawn_app().await;
    let (id, old_key) = app.create_account().await;
    let r = app
        .post("/v1/api-keys/rotate", Some(&old_key), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_key = r.body["api_key"].as_str().unwrap().to_owned();
    let event_id = r.body["event_id"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);

    assert_eq!(app.get("/v1/events", Some(&old_key)).await.status, 401);
    assert_eq!(
        app.post("/v1/api-keys/rotate", Some(&old_key), &json!({}))
            .await
            .status,
        401
    );

    let events = app
        .get("/v1/events?type=api_keys.rotated", Some(&new_key))
        .await;
    assert_eq!(events.status, 200);
    let data = events.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], event_id.as_str());
    assert_eq!(data[0]["type"], "api_keys.rotated");
    assert_eq!(data[0]["payload"]["account_id"], id.as_str());
    assert!(data[0]["payload"]["key_hint"]
        .as_str()
        .unwrap()
        .ends_with(&new_key[new_key.len() - 4..]));
}

#[actix_web::test]
async fn concurrent_rotations_with_one_key_issue_exactly_one_new_key() {
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    let empty = json!({});
    let attempts = (0..8).map(|_| app.post("/v1/api-keys/rotate", Some(&key), &empty));
    let replies = futures_util::future::join_all(attempts).await;
    let ok: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        ok.len(),
        1,
        "statuses: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 401));
    let new_key = ok[0].body["api_key"].as_str().unwrap();
    let events = app
        .get("/v1/events?type=api_keys.rotated", Some(new_key))
        .await;
    assert_eq!(events.body["data"].as_array().unwrap().len(), 1);
}
