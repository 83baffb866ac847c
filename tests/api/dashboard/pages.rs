//! Every page and form: what each shows, scopes, escaping and other
//! accounts' ids.

use std::time::Duration;

use serde_json::{json, Value};

use super::{account_with_delivery, link_for, spawn, Browser};
use crate::helpers::TestApp;

#[actix_web::test]
async fn a_read_session_sees_every_page_without_forms_and_its_writes_are_refused() {
    let app = spawn().await;
    let (key, sub, event, delivery) = account_with_delivery(&app, "cus_1").await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "read").await).await;
    for path in [
        "/dashboard".to_owned(),
        format!("/dashboard/subscriptions/{sub}"),
        format!("/dashboard/deliveries/{delivery}"),
        "/dashboard/events".to_owned(),
        format!("/dashboard/events/{event}"),
        "/dashboard/event-types".to_owned(),
        "/dashboard/notices".to_owned(),
    ] {
        let p = b.get(&path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(
            !p.body.contains("Retry now") && !p.body.contains(">Replay<"),
            "{path}"
        );
        // The title is a short plain text, never part of the page's markup.
        let title = p
            .body
            .split_once("<title>")
            .and_then(|(_, rest)| rest.split_once("</title>"))
            .map(|(t, _)| t)
            .unwrap_or_default();
        assert!(
            title.ends_with(" · courier") && !title.contains('<') && title.len() < 100,
            "{path}: title {title:?}"
        );
    }
    let csrf = b.get("/dashboard").await.csrf();
    // The statistics of the delivery above reach Redis within a flush
    // (`dashboard.stats_flush_ms`, 100 ms in tests): let them land first,
    // or a flush between the snapshots shows as a change.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(400)).await;
    let before = app.redis_snapshot();
    let r = b
        .post(
            &format!("/dashboard/deliveries/{delivery}/retry"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = b
        .post(
            &format!("/dashboard/events/{event}/replay"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);
    let after = app.redis_snapshot();
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| {
            // Sessions are touched by every request; a shard's minute of
            // traffic counts may land late on a loaded machine.
            !k.contains("dash-session") && !k.contains(":traffic:") && before.get(*k) != Some(v)
        })
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}

async fn event_deliveries(app: &TestApp, key: &str, event: &str) -> usize {
    let r = app.get(&format!("/v1/events/{event}"), Some(key)).await;
    r.body["deliveries"].as_array().unwrap().len()
}

#[actix_web::test]
async fn a_manage_session_replays_and_retries_with_the_sessions_csrf_token_only() {
    let app = spawn().await;
    let (key, _, event, delivery) = account_with_delivery(&app, "cus_1").await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let page = b.get(&format!("/dashboard/events/{event}")).await;
    assert!(page.body.contains(">Replay<"), "{}", page.body);
    let csrf = page.csrf();
    let replay = format!("/dashboard/events/{event}/replay");

    assert_eq!(b.post(&replay, &[]).await.status, 403);
    assert_eq!(b.post(&replay, &[("csrf", "wrong")]).await.status, 403);
    let other_session = {
        let mut o = Browser::new(&app);
        o.follow(&link_for(&app, &key, "manage").await).await;
        o.get("/dashboard").await.csrf()
    };
    assert_eq!(
        b.post(&replay, &[("csrf", &other_session)]).await.status,
        403
    );
    assert_eq!(event_deliveries(&app, &key, &event).await, 1);

    let r = b.post(&replay, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), format!("/dashboard/events/{event}"));
    assert_eq!(event_deliveries(&app, &key, &event).await, 2);
    let page = b.get(&format!("/dashboard/events/{event}")).await;
    assert!(page.body.contains(">replay<"), "{}", page.body);

    let retry = format!("/dashboard/deliveries/{delivery}/retry");
    assert_eq!(b.post(&retry, &[("csrf", "wrong")]).await.status, 403);
    let r = b.post(&retry, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.body);
}

#[actix_web::test]
async fn a_payload_holding_a_script_shows_as_text() {
    let app = spawn().await;
    let script = "<script>alert(1)</script>";
    let (key, sub, event, delivery) = account_with_delivery(&app, script).await;
    let r = app
        .patch(
            &format!("/v1/subscriptions/{sub}"),
            Some(&key),
            &json!({"description": "<img src=x onerror=alert(2)>"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let page = b.get(&format!("/dashboard/events/{event}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(script), "{}", page.body);
    assert!(
        page.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        page.body
    );
    for path in [
        "/dashboard".to_owned(),
        format!("/dashboard/subscriptions/{sub}"),
    ] {
        let page = b.get(&path).await;
        assert!(!page.body.contains("<img"), "{}", page.body);
        assert!(page.body.contains("&#60;img src=x"), "{}", page.body);
    }
    let page = b.get(&format!("/dashboard/deliveries/{delivery}")).await;
    assert_eq!(page.status, 200);
}

#[actix_web::test]
async fn another_accounts_ids_are_not_found() {
    let app = spawn().await;
    let (_, sub, event, delivery) = account_with_delivery(&app, "cus_1").await;
    let (_, stranger) = app.create_account().await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &stranger, "manage").await).await;
    for path in [
        format!("/dashboard/subscriptions/{sub}"),
        format!("/dashboard/events/{event}"),
        format!("/dashboard/deliveries/{delivery}"),
        "/dashboard/events/not-an-id".to_owned(),
    ] {
        let p = b.get(&path).await;
        assert_eq!(p.status, 404, "{path}");
        assert!(p.header("content-type").starts_with("text/html"), "{path}");
    }
    let csrf = b.get("/dashboard").await.csrf();
    let r = b
        .post(
            &format!("/dashboard/events/{event}/replay"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = b
        .post(
            &format!("/dashboard/deliveries/{delivery}/retry"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
}

#[actix_web::test]
async fn the_pages_list_subscriptions_deliveries_events_types_and_notices() {
    let app = spawn().await;
    let (key, sub, event, delivery) = account_with_delivery(&app, "cus_42").await;
    // A key rotation leaves a notice.
    let r = app
        .post("/v1/api-keys/rotate", Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key = r.body["api_key"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&app);
    b.sign_in(&key).await;

    let p = b.get("/dashboard").await;
    assert!(p.body.contains(&format!("/dashboard/subscriptions/{sub}")));
    assert!(p.body.contains("http://127.0.0.1:9/hook"));
    assert!(p.body.contains("customer.created"));
    assert!(p.body.contains("enabled"));
    assert!(p.body.contains("closed"));

    let p = b.get(&format!("/dashboard/subscriptions/{sub}")).await;
    assert!(p
        .body
        .contains(&format!("/dashboard/deliveries/{delivery}")));
    let p = b
        .get(&format!("/dashboard/subscriptions/{sub}?status=failed"))
        .await;
    assert_eq!(p.status, 200);
    assert!(!p
        .body
        .contains(&format!("/dashboard/deliveries/{delivery}")));
    let p = b
        .get(&format!("/dashboard/subscriptions/{sub}?status=bogus"))
        .await;
    assert_eq!(p.status, 400);

    let p = b.get(&format!("/dashboard/deliveries/{delivery}")).await;
    assert!(p.body.contains("pending"));
    assert!(p.body.contains("Retry now"));
    // The notification it sends, byte for byte (HTML-escaped).
    assert!(
        p.body.contains("POST http://127.0.0.1:9/hook"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains(&format!(
            "&#34;delivery_id&#34;:&#34;{delivery}&#34;,&#34;payload&#34;:{{&#34;customer_id&#34;:&#34;cus_42&#34;}}"
        )),
        "{}",
        p.body
    );
    assert!(p.body.contains(&format!("webhook-id: {delivery}")));

    let p = b.get("/dashboard/events?type=customer.created").await;
    assert!(p.body.contains(&format!("/dashboard/events/{event}")));
    let p = b.get("/dashboard/events?type=meter.created").await;
    assert!(!p.body.contains(&format!("/dashboard/events/{event}")));
    let p = b.get(&format!("/dashboard/events?id={event}")).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.header("location"), format!("/dashboard/events/{event}"));
    let p = b.get(&format!("/dashboard/events/{event}")).await;
    assert!(
        p.body.contains("&#34;customer_id&#34;: &#34;cus_42&#34;"),
        "{}",
        p.body
    );

    let p = b.get("/dashboard/event-types").await;
    assert!(p.body.contains("meter_data.received"));
    assert!(p.body.contains("start_interval"));
    assert!(p.body.contains("Example payload"));
    assert!(p.body.contains("mtr_123"), "{}", p.body);

    let p = b.get("/dashboard/notices").await;
    assert!(p.body.contains("API key rotated"), "{}", p.body);
}

#[actix_web::test]
async fn failed_deliveries_are_recovered_from_the_subscription_page() {
    let rx = crate::receiver::Receiver::start().await;
    rx.default_reply("/down", crate::receiver::Reply::status(500));
    let app = crate::helpers::spawn_app().await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/down"), &["customer.created"], json!({}))
        .await;
    let event = app.ingest(&account, "cus_1").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.poll_until(
        &format!("/v1/events/{event}"),
        &key,
        Duration::from_secs(10),
        |b| b["deliveries"][0]["status"] == "failed",
    )
    .await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let page = b.get(&format!("/dashboard/subscriptions/{sub}")).await;
    assert!(
        page.body.contains("Recover failed deliveries"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let recover = format!("/dashboard/subscriptions/{sub}/recover");
    let r = b
        .post(&recover, &[("csrf", &csrf), ("since", "yesterday")])
        .await;
    assert_eq!(r.status, 400);
    let sent = rx.received("/down").len();
    let r = b
        .post(&recover, &[("csrf", &csrf), ("since", "2000-01-01T00:00")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.header("location").to_owned();
    assert!(location.contains("recovered=1"), "{location}");
    let page = b.get(&location).await;
    assert!(
        page.body.contains("1 failed delivery was queued again"),
        "{}",
        page.body
    );
    // Sent once more (and failed again: the receiver is still down).
    let now = rx
        .wait_for("/down", sent + 1, Duration::from_secs(10))
        .await;
    assert!(now.len() > sent, "not sent again");
    // A read session may not.
    let mut reader = Browser::new(&app);
    reader.follow(&link_for(&app, &key, "read").await).await;
    let page = reader.get(&format!("/dashboard/subscriptions/{sub}")).await;
    assert!(!page.body.contains("Recover failed deliveries"));
    let r = reader
        .post(
            &recover,
            &[("csrf", &page.csrf()), ("since", "2000-01-01T00:00")],
        )
        .await;
    assert_eq!(r.status, 403);
}

#[actix_web::test]
async fn events_are_filtered_by_time_range() {
    let app = spawn().await;
    let (key, _, event, _) = account_with_delivery(&app, "cus_1").await;
    let mut b = Browser::new(&app);
    b.sign_in(&key).await;
    let link = format!("/dashboard/events/{event}");
    let hour = chrono::Duration::hours(1);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    let now = chrono::Utc::now();
    let p = b
        .get(&format!("/dashboard/events?from={}", fmt(now - hour)))
        .await;
    assert!(p.body.contains(&link), "{}", p.body);
    let p = b
        .get(&format!("/dashboard/events?from={}", fmt(now + hour)))
        .await;
    assert_eq!(p.status, 200);
    assert!(!p.body.contains(&link));
    let p = b
        .get(&format!("/dashboard/events?to={}", fmt(now - hour)))
        .await;
    assert!(!p.body.contains(&link));
    assert_eq!(b.get("/dashboard/events?from=soon").await.status, 400);
}

#[actix_web::test]
async fn a_subscription_is_disabled_enabled_and_deleted_after_confirmation() {
    let app = spawn().await;
    let (key, sub, _, _) = account_with_delivery(&app, "cus_1").await;
    let api = format!("/v1/subscriptions/{sub}");
    let page_path = format!("/dashboard/subscriptions/{sub}");
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let page = b.get(&page_path).await;
    assert!(page.body.contains(">Disable<"), "{}", page.body);
    let csrf = page.csrf();
    let switch = format!("{page_path}/enabled");

    assert_eq!(b.post(&switch, &[("enabled", "false")]).await.status, 403);
    let r = b
        .post(&switch, &[("csrf", &csrf), ("enabled", "false")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(app.get(&api, Some(&key)).await.body["enabled"], false);
    assert!(b.get(&page_path).await.body.contains(">Enable<"));
    let r = b
        .post(&switch, &[("csrf", &csrf), ("enabled", "true")])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(app.get(&api, Some(&key)).await.body["enabled"], true);

    // A read session sees neither the switch nor the delete page.
    let mut reader = Browser::new(&app);
    reader.follow(&link_for(&app, &key, "read").await).await;
    let page = reader.get(&page_path).await;
    assert!(!page.body.contains(">Disable<") && !page.body.contains("Delete…"));
    let read_csrf = page.csrf();
    assert_eq!(
        reader
            .post(&switch, &[("csrf", &read_csrf), ("enabled", "false")])
            .await
            .status,
        403
    );
    let delete = format!("{page_path}/delete");
    assert_eq!(reader.get(&delete).await.status, 403);
    assert_eq!(
        reader.post(&delete, &[("csrf", &read_csrf)]).await.status,
        403
    );

    let confirm = b.get(&delete).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Delete this subscription?"));
    assert_eq!(
        app.get(&api, Some(&key)).await.status,
        200,
        "asking deletes nothing"
    );
    assert_eq!(b.post(&delete, &[("csrf", "wrong")]).await.status, 403);
    let r = b.post(&delete, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/dashboard");
    assert_eq!(app.get(&api, Some(&key)).await.status, 404);
    assert_eq!(b.get(&page_path).await.status, 404);
}

#[actix_web::test]
async fn the_signing_secret_is_rotated_and_shown_once_and_a_test_notification_reports_the_answer() {
    let rx = crate::receiver::Receiver::start().await;
    rx.default_reply("/hook", crate::receiver::Reply::status(204));
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let (sub, old_secret) = app
        .subscribe(&key, &rx.url("/hook"), &["customer.created"], json!({}))
        .await;
    let page_path = format!("/dashboard/subscriptions/{sub}");
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let csrf = b.get(&page_path).await.csrf();

    let rotate = format!("{page_path}/secret");
    assert_eq!(b.post(&rotate, &[]).await.status, 403);
    let shown = b.post(&rotate, &[("csrf", &csrf)]).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.header("cache-control"), "no-store");
    let start = shown.body.find("whsec_").expect("the new secret is shown");
    let secret = shown.body[start..].split('<').next().unwrap().to_owned();
    assert_ne!(secret, old_secret);
    assert!(
        !b.get(&page_path).await.body.contains(&secret),
        "shown once"
    );

    let test = format!("{page_path}/test");
    let r = b.post(&test, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("delivered") && r.body.contains("204"),
        "{}",
        r.body
    );
    let got = rx.wait_for("/hook", 1, Duration::from_secs(5)).await;
    let n = &got[0];
    assert!(crate::delivery::verify(
        &secret,
        n.header("webhook-id"),
        n.header("webhook-timestamp"),
        &n.body,
        n.header("webhook-signature"),
    ));

    let mut reader = Browser::new(&app);
    reader.follow(&link_for(&app, &key, "read").await).await;
    let page = reader.get(&page_path).await;
    assert!(!page.body.contains("Rotate the signing secret"));
    let read_csrf = page.csrf();
    assert_eq!(
        reader.post(&rotate, &[("csrf", &read_csrf)]).await.status,
        403
    );
    assert_eq!(
        reader.post(&test, &[("csrf", &read_csrf)]).await.status,
        403
    );
    assert_eq!(rx.received("/hook").len(), 1);
}

#[actix_web::test]
async fn subscriptions_are_created_and_edited_through_the_form_with_the_apis_checks() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    assert!(b.get("/dashboard").await.body.contains("New subscription"));
    let form = b.get("/dashboard/subscriptions/new").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("meter_data.received"));
    let csrf = form.csrf();

    // Refused by the API's checks: shown again with what was typed.
    let r = b
        .post(
            "/dashboard/subscriptions/new",
            &[
                ("csrf", &csrf),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/typed"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("event_types"), "{}", r.body);
    assert!(r.body.contains("http://127.0.0.1:9/typed"));
    let r = b
        .post(
            "/dashboard/subscriptions/new",
            &[
                ("csrf", &csrf),
                ("event_types", "meter.created"),
                ("kind", "webhook"),
                ("url", "ftp://127.0.0.1/x"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("channel.url"), "{}", r.body);
    assert!(app.get("/v1/subscriptions", Some(&key)).await.body["data"]
        .as_array()
        .unwrap()
        .is_empty());

    // A webhook: its secret is shown once, in the answer.
    let r = b
        .post(
            "/dashboard/subscriptions/new",
            &[
                ("csrf", &csrf),
                ("description", "<b>pipeline</b>"),
                ("event_types", "meter.created"),
                ("event_types", "customer.created"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/hook"),
                ("digest", "immediate"),
                ("rate_limit", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("whsec_"));
    assert!(r.body.contains("&#60;b&#62;pipeline"), "{}", r.body);
    let list = app.get("/v1/subscriptions", Some(&key)).await;
    let sub = &list.body["data"][0];
    assert_eq!(sub["description"], "<b>pipeline</b>");
    assert_eq!(
        sub["event_types"],
        json!(["customer.created", "meter.created"])
    );
    assert_eq!(sub["channel"]["url"], "http://127.0.0.1:9/hook");
    let id = sub["id"].as_str().unwrap().to_owned();

    // Edited: the form starts from the stored values.
    let edit = format!("/dashboard/subscriptions/{id}/edit");
    let form = b.get(&edit).await;
    assert!(
        form.body.contains(r#"value="http://127.0.0.1:9/hook""#),
        "{}",
        form.body
    );
    assert!(form.body.contains(r#"value="meter.created" checked"#));
    let r = b
        .post(
            &edit,
            &[
                ("csrf", &csrf),
                ("description", ""),
                ("event_types", "*"),
                ("kind", "email"),
                ("address", "dev@acme.example"),
                ("digest", "hourly"),
                ("rate_limit", "5"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let sub = app
        .get(&format!("/v1/subscriptions/{id}"), Some(&key))
        .await;
    assert_eq!(sub.body["channel"]["type"], "email");
    assert_eq!(sub.body["channel"]["digest"], "hourly");
    assert_eq!(sub.body["event_types"], json!(["*"]));
    assert_eq!(sub.body["rate_limit"], 5);
    assert!(sub.body.get("description").is_none_or(Value::is_null));
    // Back to a webhook: a new secret, shown once.
    let r = b
        .post(
            &edit,
            &[
                ("csrf", &csrf),
                ("event_types", "*"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/again"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("whsec_"));

    // A read session may not.
    let mut reader = Browser::new(&app);
    reader.follow(&link_for(&app, &key, "read").await).await;
    let read_csrf = reader.get("/dashboard").await.csrf();
    assert!(!reader
        .get("/dashboard")
        .await
        .body
        .contains("New subscription"));
    assert_eq!(reader.get("/dashboard/subscriptions/new").await.status, 403);
    assert_eq!(reader.get(&edit).await.status, 403);
    let r = reader
        .post(
            "/dashboard/subscriptions/new",
            &[
                ("csrf", &read_csrf),
                ("event_types", "*"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/x"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        reader.post(&edit, &[("csrf", &read_csrf)]).await.status,
        403
    );
    assert_eq!(b.post(&edit, &[("csrf", "wrong")]).await.status, 403);
}

#[actix_web::test]
async fn a_subscriptions_deliveries_are_filtered_by_creation_time_in_the_api_and_the_dashboard() {
    let app = spawn().await;
    let (key, sub, _, delivery) = account_with_delivery(&app, "cus_1").await;
    let now = chrono::Utc::now();
    let hour = chrono::Duration::hours(1);
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let api = |q: String| {
        let path = format!("/v1/subscriptions/{sub}/deliveries?{q}");
        let key = key.clone();
        let app = &app;
        async move { app.get(&path, Some(&key)).await }
    };
    let listed = |r: &crate::helpers::Reply| r.body["data"].as_array().map_or(0, Vec::len);
    assert_eq!(listed(&api(format!("from={}", rfc(now - hour))).await), 1);
    assert_eq!(listed(&api(format!("from={}", rfc(now + hour))).await), 0);
    assert_eq!(listed(&api(format!("to={}", rfc(now - hour))).await), 0);
    assert_eq!(
        listed(&api(format!("status=pending&to={}", rfc(now + hour))).await),
        1
    );
    assert_eq!(api("from=soon".into()).await.status, 422);

    let mut b = Browser::new(&app);
    b.sign_in(&key).await;
    let link = format!("/dashboard/deliveries/{delivery}");
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    let page = |q: String| format!("/dashboard/subscriptions/{sub}?{q}");
    assert!(b
        .get(&page(format!("from={}", fmt(now - hour))))
        .await
        .body
        .contains(&link));
    assert!(!b
        .get(&page(format!("from={}", fmt(now + hour))))
        .await
        .body
        .contains(&link));
    assert!(!b
        .get(&page(format!("status=pending&to={}", fmt(now - hour))))
        .await
        .body
        .contains(&link));
    assert_eq!(b.get(&page("to=later".into())).await.status, 400);
}
