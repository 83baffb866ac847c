use std::collections::HashSet;

use chrono::{Duration as ChronoDuration, SecondsFormat, Utc};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, ADMIN_KEY};

#[actix_web::test]
async fn an_ingested_event_can_be_read_back() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let r = app.ingest(&account, "cus_1").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "accepted");
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);

    let e = app.get(&format!("/v1/events/{id}"), Some(&key)).await;
    assert_eq!(e.status, 200);
    assert_eq!(e.body["id"], id);
    assert_eq!(e.body["type"], "customer.created");
    assert_eq!(e.body["account_id"], account.as_str());
    assert_eq!(e.body["payload"], json!({"customer_id": "cus_1"}));
    assert!(e.body["occurred_at"].as_str().unwrap().ends_with('Z'));
}

/// Builds the raw JSON of an ingest request around `payload` (kept verbatim).
fn raw_request(account: &str, event_type: &str, payload: &str) -> Vec<u8> {
    format!(r#"{{"type": "{event_type}", "account_id": "{account}", "payload": {payload}}}"#)
        .into_bytes()
}

#[actix_web::test]
async fn payloads_round_trip_byte_for_byte() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let payload = r#"{ "customer_id":"cus_ü→😀", "name" : "Zoë \"Q\" \u00e9",
  "nested": {"list": [1, 2.50, -0.0, 1e3, {"deep": [null, true, false]}], "empty": {}} }"#;
    let r = app
        .post_raw(
            "/v1/events",
            Some(ADMIN_KEY),
            raw_request(&account, "customer.created", payload),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let e = app
        .get(
            &format!("/v1/events/{}", r.body["id"].as_str().unwrap()),
            Some(&key),
        )
        .await;
    let text = String::from_utf8(e.raw).unwrap();
    assert!(text.contains(&format!(r#""payload":{payload}"#)), "{text}");
}

#[actix_web::test]
async fn a_payload_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let limit = 256 * 1024;
    let frame = r#"{"customer_id": "cus_big", "pad": ""}"#;
    let payload = format!(
        r#"{{"customer_id": "cus_big", "pad": "{}"}}"#,
        "é".repeat((limit - frame.len()) / 2)
    );
    let payload = if payload.len() < limit {
        payload.replacen("\"pad\"", "\"pad\" ", 1)
    } else {
        payload
    };
    assert_eq!(payload.len(), limit);
    let r = app
        .post_raw(
            "/v1/events",
            Some(ADMIN_KEY),
            raw_request(&account, "customer.created", &payload),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let e = app
        .get(
            &format!("/v1/events/{}", r.body["id"].as_str().unwrap()),
            Some(&key),
        )
        .await;
    assert!(String::from_utf8(e.raw).unwrap().contains(&payload));

    let bigger = payload.replacen("\"pad\"", "\"pad\" ", 1);
    assert_eq!(bigger.len(), limit + 1);
    let r = app
        .post_raw(
            "/v1/events",
            Some(ADMIN_KEY),
            raw_request(&account, "customer.created", &bigger),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "payload_too_large");
}

#[actix_web::test]
async fn a_huge_body_is_refused_with_413_without_being_read() {
    let app = spawn_app().await;
    let (account, _) = app.create_account().await;
    let payload = format!(r#"{{"customer_id": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let r = app
        .post_raw(
            "/v1/events",
            Some(ADMIN_KEY),
            raw_request(&account, "customer.created", &payload),
        )
        .await;
    assert_eq!(r.status, 413);
}

#[actix_web::test]
async fn invalid_events_are_rejected_with_the_field_named() {
    let app = spawn_app().await;
    let (account, _) = app.create_account().await;
    let hour_ago = (Utc::now() - ChronoDuration::hours(1)).to_rfc3339();
    let cases = [
        (
            json!({"type": "meter.exploded", "account_id": account, "payload": {}}),
            "type",
        ),
        (
            json!({"type": "meter.created", "account_id": account, "payload": {"meter_id": "m1"}}),
            "payload",
        ),
        (
            json!({"type": "meter.created", "account_id": "acct-1", "payload": {"meter_id": "m", "customer_id": "c"}}),
            "account_id",
        ),
        (
            json!({"type": "meter.created", "account_id": uuid::Uuid::now_v7(), "payload": {"meter_id": "m", "customer_id": "c"}}),
            "account_id",
        ),
        (
            json!({"type": "meter_data.received", "account_id": account, "payload": {"intervals": [
            {"meter_id": "m1", "start_interval": "2024-05-02T00:00:00Z", "end_interval": "2024-05-01T00:00:00Z"}]}}),
            "payload",
        ),
        (
            json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": "c"}, "occurred_at": "last tuesday"}),
            "occurred_at",
        ),
        (
            json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": "c"}, "occurred_at": "2001-01-01T00:00:00Z"}),
            "occurred_at",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/v1/events", Some(ADMIN_KEY), &body).await;
        assert_eq!(r.status, 422, "{body} -> {}", r.body);
        assert_eq!(r.body["error"]["field"], field, "{body} -> {}", r.body);
    }
    // A valid past occurred_at is kept.
    let ok = json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": "c"}, "occurred_at": hour_ago});
    assert_eq!(
        app.post("/v1/events", Some(ADMIN_KEY), &ok).await.status,
        202
    );
    // Shape errors: unknown field, missing payload.
    let r = app
        .post("/v1/events", Some(ADMIN_KEY), &json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": "c"}, "extra": 1}))
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .post(
            "/v1/events",
            Some(ADMIN_KEY),
            &json!({"type": "customer.created", "account_id": account}),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .post_raw("/v1/events", Some(ADMIN_KEY), b"[1, 2".to_vec())
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

async fn ingest_with_key(
    app: &crate::helpers::TestApp,
    account: &str,
    key: &str,
    customer: &str,
) -> crate::helpers::Reply {
    let req = app
        .client
        .post(app.url("/v1/events"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_KEY}")))
        .insert_header(("Idempotency-Key", key));
    let body = json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": customer}});
    let mut res = req.send_json(&body).await.unwrap();
    let raw = res.body().await.unwrap().to_vec();
    crate::helpers::Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: serde_json::from_slice(&raw).unwrap(),
        raw,
    }
}

#[actix_web::test]
async fn the_same_idempotency_key_returns_the_same_event_and_stores_nothing_new() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let first = ingest_with_key(&app, &account, "order-42", "cus_1").await;
    assert_eq!(first.status, 202);
    let second = ingest_with_key(&app, &account, "order-42", "cus_1").await;
    assert_eq!(second.status, 202);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(second.body["status"], "duplicate");
    assert_eq!(second.headers.get("Idempotent-Replayed").unwrap(), "true");

    let reused = ingest_with_key(&app, &account, "order-42", "cus_OTHER").await;
    assert_eq!(reused.status, 409);
    assert_eq!(reused.code(), "idempotency_conflict");

    let list = app.get("/v1/events", Some(&key)).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn concurrent_duplicates_create_exactly_one_event() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let replies = futures_util::future::join_all(
        (0..20).map(|_| ingest_with_key(&app, &account, "burst-1", "cus_1")),
    )
    .await;
    let ids: HashSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202);
            r.body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.body["status"] == "accepted")
            .count(),
        1
    );
    let list = app.get("/v1/events", Some(&key)).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_batch_answers_per_item_and_stores_the_valid_ones() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let batch = json!({"events": [
        {"type": "customer.created", "account_id": account, "payload": {"customer_id": "c1"}},
        {"type": "nope.nope", "account_id": account, "payload": {}},
        {"type": "customer.created", "account_id": account, "payload": {"customer_id": "c2"}, "idempotency_key": "b-1"},
        {"type": "customer.created", "account_id": account, "payload": {"customer_id": "c2"}, "idempotency_key": "b-1"},
        {"type": "customer.created", "account_id": account, "payload": {"customer_id": "c3"}, "idempotency_key": "b-1"},
        "not an object",
        {"type": "customer.created", "account_id": uuid::Uuid::now_v7(), "payload": {"customer_id": "c4"}},
    ]});
    let r = app.post("/v1/events/batch", Some(ADMIN_KEY), &batch).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 422, 202, 202, 409, 422, 422]);
    assert_eq!(results[1]["error"]["field"], "type");
    assert_eq!(results[3]["outcome"], "duplicate");
    assert_eq!(results[3]["id"], results[2]["id"]);
    assert_eq!(r.body["accepted"], 3);
    assert_eq!(r.body["rejected"], 4);
    let list = app.get("/v1/events", Some(&key)).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn a_batch_of_a_thousand_events_is_accepted_and_more_is_refused() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let events: Vec<_> = (0..1000)
        .map(|i| json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": format!("c{i}")}}))
        .collect();
    let r = app
        .post(
            "/v1/events/batch",
            Some(ADMIN_KEY),
            &json!({ "events": events }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["accepted"], 1000);
    let page = app.get("/v1/events?limit=250", Some(&key)).await;
    assert_eq!(page.body["data"].as_array().unwrap().len(), 250);

    let mut too_many = events.clone();
    too_many.push(events[0].clone());
    let r = app
        .post(
            "/v1/events/batch",
            Some(ADMIN_KEY),
            &json!({ "events": too_many }),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["field"], "events");
    let r = app
        .post(
            "/v1/events/batch",
            Some(ADMIN_KEY),
            &json!({ "events": [] }),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[actix_web::test]
async fn pagination_walks_every_event_once_newest_first() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    // Several events share a millisecond, so the cursor must break ties.
    let base = Utc::now() - ChronoDuration::minutes(10);
    let mut events = Vec::new();
    for i in 0..23 {
        let at = base + ChronoDuration::milliseconds((i / 4) as i64);
        events.push(json!({"type": "customer.created", "account_id": account,
            "payload": {"customer_id": format!("c{i}")},
            "occurred_at": at.to_rfc3339_opts(SecondsFormat::Millis, true)}));
    }
    let r = app
        .post(
            "/v1/events/batch",
            Some(ADMIN_KEY),
            &json!({ "events": events }),
        )
        .await;
    assert_eq!(r.body["accepted"], 23);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/v1/events?limit=5".to_owned(),
            Some(c) => format!("/v1/events?limit=5&cursor={c}"),
        };
        let page = app.get(&path, Some(&key)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for e in page.body["data"].as_array().unwrap() {
            seen.push((
                e["occurred_at"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            ));
        }
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen.len(), 23);
    let unique: HashSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(unique.len(), 23, "an event came twice");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "not newest first");
}

#[actix_web::test]
async fn listing_filters_by_type_and_time_range() {
    let app = spawn_app().await;
    let (account, key) = app.create_account().await;
    let t0 = Utc::now() - ChronoDuration::hours(3);
    let at = |h: i64| (t0 + ChronoDuration::hours(h)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let events = json!({"events": [
        {"type": "customer.created", "account_id": account, "payload": {"customer_id": "c0"}, "occurred_at": at(0)},
        {"type": "meter.created", "account_id": account, "payload": {"meter_id": "m1", "customer_id": "c0"}, "occurred_at": at(1)},
        {"type": "customer.created", "account_id": account, "payload": {"customer_id": "c2"}, "occurred_at": at(2)},
    ]});
    assert_eq!(
        app.post("/v1/events/batch", Some(ADMIN_KEY), &events)
            .await
            .body["accepted"],
        3
    );

    let ids = |r: &crate::helpers::Reply| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["payload"]["customer_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = app
        .get("/v1/events?type=customer.created", Some(&key))
        .await;
    assert_eq!(ids(&r), ["c2", "c0"]);
    let from = urlencode(&at(1));
    let r = app
        .get(&format!("/v1/events?from={from}"), Some(&key))
        .await;
    assert_eq!(ids(&r), ["c2", "c0"]);
    let to = urlencode(&at(1));
    let r = app
        .get(
            &format!("/v1/events?to={to}&type=customer.created"),
            Some(&key),
        )
        .await;
    assert_eq!(ids(&r), ["c0"]);
    let r = app
        .get(&format!("/v1/events?from={from}&to={to}"), Some(&key))
        .await;
    assert_eq!(r.body["data"][0]["type"], "meter.created");
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[actix_web::test]
async fn bad_list_parameters_are_rejected() {
    let app = spawn_app().await;
    let (_, key) = app.create_account().await;
    for (query, status) in [
        ("limit=0", 422),
        ("limit=100000", 422),
        ("limit=ten", 400),
        ("cursor=garbage", 422),
        ("type=nope.nope", 422),
        ("from=yesterday", 422),
    ] {
        let r = app.get(&format!("/v1/events?{query}"), Some(&key)).await;
        assert_eq!(r.status, status, "{query}: {}", r.body);
        assert!(r.body["error"]["code"].is_string());
    }
}

#[actix_web::test]
async fn another_accounts_events_are_not_found() {
    let app = spawn_app().await;
    let (alice, alice_key) = app.create_account().await;
    let (_, bob_key) = app.create_account().await;
    let r = app.ingest(&alice, "cus_1").await;
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/events/{id}"), Some(&alice_key))
            .await
            .status,
        200
    );
    let r = app.get(&format!("/v1/events/{id}"), Some(&bob_key)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");
    assert_eq!(
        app.get("/v1/events", Some(&bob_key)).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        app.get("/v1/events/not-a-uuid", Some(&bob_key))
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn events_expire_after_retention_and_leave_the_index() {
    let app = spawn_app_with(|s| {
        s.events.retention_days = 1.try_into().unwrap();
        s.delivery.index_trim_secs = 1.try_into().unwrap();
    })
    .await;
    let (account, key) = app.create_account().await;
    // Occurred just inside the retention window: it leaves it in ~2 s.
    let at = Utc::now() - ChronoDuration::days(1) + ChronoDuration::seconds(2);
    let body = json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": "old"},
        "occurred_at": at.to_rfc3339_opts(SecondsFormat::Millis, true)});
    let r = app.post("/v1/events", Some(ADMIN_KEY), &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/events", Some(&key)).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let mut conn = app.redis();
    let event_key = app
        .redis_keys()
        .into_iter()
        .find(|k| k.ends_with(&format!("event:{id}")))
        .unwrap();
    // No expiry of its own: the janitor's retention pass deletes it.
    let ttl: i64 = redis::cmd("PTTL").arg(&event_key).query(&mut conn).unwrap();
    assert_eq!(ttl, -1);

    actix_web::rt::time::sleep(std::time::Duration::from_millis(2_600)).await;
    assert_eq!(
        app.get(&format!("/v1/events/{id}"), Some(&key))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get("/v1/events", Some(&key)).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The janitor's next trim (every second here) takes the expired entry
    // out of the index; the new event stays.
    assert_eq!(app.ingest(&account, "new").await.status, 202);
    let index = app
        .redis_keys()
        .into_iter()
        .find(|k| k.ends_with(&format!("events:{account}")))
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let members = loop {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&index)
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .unwrap();
        if members.len() == 1 || std::time::Instant::now() > until {
            break members;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(members.len(), 1);
    assert!(!members.contains(&id));
    let exists: bool = redis::cmd("EXISTS")
        .arg(&event_key)
        .query(&mut conn)
        .unwrap();
    assert!(!exists, "the retention pass deleted the event");
}

#[actix_web::test]
async fn a_batch_whose_one_shard_fails_answers_503_for_that_shards_items_only() {
    let app = spawn_app().await;
    let (healthy, healthy_key) = app.create_account().await;
    let (broken, _) = app
        .create_account_in_shard(app.shard_of(&healthy), false)
        .await;
    // The broken shard's script fails on its first command for this item
    // (an idempotency record of the wrong type), before it writes anything.
    let keys = courier::store::Keys::new(
        app.prefix.clone(),
        crate::helpers::test_settings().redis.shards,
    );
    let idem = keys.idempotency(&uuid::Uuid::parse_str(&broken).unwrap(), "k-broken");
    let mut conn = app.redis();
    redis::cmd("HSET")
        .arg(&idem)
        .arg("not")
        .arg("a string")
        .query::<()>(&mut conn)
        .unwrap();
    let item = |account: &str, customer: &str, idem: &str| {
        json!({"type": "customer.created", "account_id": account,
               "payload": {"customer_id": customer}, "idempotency_key": idem})
    };
    let batch = json!({"events": [
        item(&healthy, "cus_1", "k-1"),
        item(&broken, "cus_2", "k-broken"),
        item(&healthy, "cus_3", "k-3"),
    ]});
    let r = app.post("/v1/events/batch", Some(ADMIN_KEY), &batch).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    let statuses: Vec<_> = results
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 503, 202], "{}", r.body);
    assert_eq!(results[1]["error"]["code"], "unavailable");
    assert_eq!(r.body["accepted"], 2);
    for i in [0, 2] {
        let id = results[i]["id"].as_str().unwrap();
        let e = app
            .get(&format!("/v1/events/{id}"), Some(&healthy_key))
            .await;
        assert_eq!(e.status, 200, "item {i} was stored");
    }

    // Retried once the shard is well again: the failed item is stored and
    // the stored ones are not duplicated (their idempotency keys match).
    redis::cmd("DEL").arg(&idem).query::<()>(&mut conn).unwrap();
    let again = app.post("/v1/events/batch", Some(ADMIN_KEY), &batch).await;
    let outcomes: Vec<_> = again.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["status"].as_u64().unwrap(),
                i["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [(202, "duplicate"), (202, "accepted"), (202, "duplicate")],
        "{}",
        again.body
    );
    let listed = app.get("/v1/events", Some(&healthy_key)).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);
}
