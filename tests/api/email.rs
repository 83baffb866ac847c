//! Email end to end against a real SMTP server (aiosmtpd, see `smtp.rs`):
//! event messages, retries while the server is down, permanent refusals,
//! digests across replicas and restarts, operational email.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{delay, spawn_app_with, test_settings, TestApp, ADMIN_KEY};
use crate::receiver::{Receiver, Reply};
use crate::smtp::SmtpServer;

const WAIT: Duration = Duration::from_secs(15);

async fn app_for(smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    spawn_app_with(move |s| s.smtp.url = url.into()).await
}

async fn email_subscription(app: &TestApp, key: &str, types: &[&str], channel: Value) -> String {
    let r = app
        .post(
            "/v1/subscriptions",
            Some(key),
            &json!({"event_types": types, "channel": channel, "description": "Consent desk <b>ops</b>"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.body.get("secret").is_none_or(Value::is_null),
        "{}",
        r.body
    );
    r.body["id"].as_str().unwrap().to_owned()
}

async fn ingest(app: &TestApp, account: &str, event_type: &str, payload: Value) -> String {
    let r = app
        .post(
            "/v1/events",
            Some(ADMIN_KEY),
            &json!({"type": event_type, "account_id": account, "payload": payload}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// One subscription's place in the digest schedule (`Keys::digests`), read
/// and moved by hand: tests cannot wait for the end of an hour.
struct DigestSchedule {
    conn: crate::helpers::SyncConn,
    key: String,
    sub: String,
}

impl DigestSchedule {
    fn of(app: &TestApp, account: &str, sub: &str) -> Self {
        let keys = courier::store::Keys::new(app.prefix.clone(), test_settings().redis.shards);
        let shard = keys.shard_of(&uuid::Uuid::parse_str(account).unwrap());
        Self {
            conn: app.redis(),
            key: keys.digests(shard),
            sub: sub.to_owned(),
        }
    }

    /// Ends the subscription's digest period now.
    fn end_period(&mut self) {
        let _: i64 = redis::cmd("ZADD")
            .arg(&self.key)
            .arg(0)
            .arg(&self.sub)
            .query(&mut self.conn)
            .unwrap();
    }

    /// When its open digest is due (ms), if it has one.
    fn due(&mut self) -> Option<f64> {
        redis::cmd("ZSCORE")
            .arg(&self.key)
            .arg(&self.sub)
            .query(&mut self.conn)
            .unwrap()
    }
}

/// The subscription's single delivery once `done` holds for it.
async fn delivery_when(
    app: &TestApp,
    key: &str,
    sub: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let list = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries"),
            key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| !d.is_empty()),
        )
        .await;
    let id = list["data"][0]["id"]
        .as_str()
        .expect("a delivery")
        .to_owned();
    app.poll_until(&format!("/v1/deliveries/{id}"), key, WAIT, done)
        .await
}

#[actix_web::test]
async fn an_event_arrives_as_an_email_with_both_parts_and_every_value_escaped() {
    let smtp = SmtpServer::start();
    let app = app_for(&smtp).await;
    let (account, key) = app.create_account().await;
    let sub = email_subscription(
        &app,
        &key,
        &["hosted_consent.revoked"],
        json!({"type": "email", "address": "cs@acme.example"}),
    )
    .await;
    let hostile = "<script>alert(1)</script>\r\nBcc: victim@evil.example\r\n\r\nforged body";
    let event = ingest(
        &app,
        &account,
        "hosted_consent.revoked",
        json!({"consent_id": "cons_1", "customer_id": "cus_1", "reason": hostile}),
    )
    .await;

    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1, "one message");
    let m = &mails[0];
    assert_eq!(m.subject, "[courier] hosted_consent.revoked");
    assert_eq!(m.to, "cs@acme.example");
    assert!(
        m.head.contains("From: courier <courier@localhost>"),
        "{}",
        m.head
    );
    assert!(
        !m.head.to_ascii_lowercase().contains("\nbcc:"),
        "{}",
        m.head
    );
    assert!(
        !m.head.contains("victim@evil.example"),
        "no payload text in the headers: {}",
        m.head
    );
    assert!(
        m.list_unsubscribe
            .contains(&format!("/dashboard/subscriptions/{sub}")),
        "{m:?}"
    );
    // Both parts: ids, type, time, the payload pretty-printed, links.
    for part in [&m.text, &m.html] {
        assert!(part.contains(&event), "{part}");
        assert!(part.contains("hosted_consent.revoked"), "{part}");
        assert!(
            part.contains(&format!("/dashboard/events/{event}")),
            "{part}"
        );
    }
    assert!(m.text.contains("\"consent_id\": \"cons_1\""), "{}", m.text);
    assert!(m.text.contains("Consent desk <b>ops</b>"), "{}", m.text);
    // The HTML part escapes what came from the payload and the description.
    assert!(!m.html.contains("<script>"), "{}", m.html);
    assert!(!m.html.contains("<b>ops"), "{}", m.html);
    assert!(
        m.html.contains("&lt;script&gt;") || m.html.contains("&#60;script&#62;"),
        "{}",
        m.html
    );

    let d = delivery_when(&app, &key, &sub, |d| d["status"] == "succeeded").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert!(m.message_id.contains(d["id"].as_str().unwrap()), "{m:?}");
    assert_eq!(d["history"][0]["status_code"], 250, "{d}");
}

#[actix_web::test]
async fn crlf_in_a_description_or_address_and_a_bad_digest_are_422() {
    let smtp = SmtpServer::start();
    let app = app_for(&smtp).await;
    let (_, key) = app.create_account().await;
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["*"], "channel": {"type": "email", "address": "a@acme.example"},
                    "description": "ops\r\nBcc: victim@evil.example"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "description", "{}", r.body);
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["*"], "channel": {"type": "email", "address": "a@acme.example\r\nBcc: v@evil.example"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["*"], "channel": {"type": "webhook", "url": "https://hooks.example.com/x", "digest": "daily"}}),
        )
        .await;
    assert_eq!(r.status, 422, "a webhook has no digest: {}", r.body);
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["*"], "channel": {"type": "email", "address": "a@acme.example", "digest": "weekly"}}),
        )
        .await;
    assert_eq!(r.status, 422, "an unknown period: {}", r.body);
}

#[actix_web::test]
async fn a_message_is_retried_while_the_smtp_server_is_down_and_sent_once_it_is_back() {
    let mut smtp = SmtpServer::stopped(crate::helpers::free_port());
    let url = smtp.url();
    let app = spawn_app_with(move |s| {
        s.smtp.url = url.into();
        s.delivery.retry_schedule = vec![delay("500ms"); 20];
    })
    .await;
    let (account, key) = app.create_account().await;
    let sub = email_subscription(
        &app,
        &key,
        &["*"],
        json!({"type": "email", "address": "cs@acme.example"}),
    )
    .await;
    ingest(
        &app,
        &account,
        "customer.created",
        json!({"customer_id": "cus_1"}),
    )
    .await;
    let failing = delivery_when(&app, &key, &sub, |d| d["attempts"].as_u64() >= Some(2)).await;
    assert_eq!(failing["status"], "pending", "{failing}");
    let first = &failing["history"][0];
    assert!(first.get("status_code").is_none(), "{first}");
    assert!(
        first["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{first}"
    );
    assert!(first["next_attempt_at"].is_string(), "{first}");

    smtp.run();
    let d = delivery_when(&app, &key, &sub, |d| d["status"] == "succeeded").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let history = d["history"].as_array().unwrap();
    assert!(history.len() >= 3, "{d}");
    assert_eq!(history.last().unwrap()["status_code"], 250, "{d}");
    assert_eq!(smtp.wait_for(1, WAIT).await.len(), 1);
}

#[actix_web::test]
async fn a_permanent_refusal_fails_at_once_and_a_temporary_one_is_retried() {
    let smtp = SmtpServer::start();
    let app = app_for(&smtp).await;
    let (account, key) = app.create_account().await;
    let refused = email_subscription(
        &app,
        &key,
        &["*"],
        json!({"type": "email", "address": "reject-me@acme.example"}),
    )
    .await;
    let busy = email_subscription(
        &app,
        &key,
        &["*"],
        json!({"type": "email", "address": "busy-desk@acme.example"}),
    )
    .await;
    ingest(
        &app,
        &account,
        "customer.created",
        json!({"customer_id": "cus_1"}),
    )
    .await;

    let d = delivery_when(&app, &key, &refused, |d| d["status"] == "failed").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"], 1, "no retry after a 5xx: {d}");
    assert_eq!(d["history"][0]["status_code"], 550, "{d}");
    assert!(
        d["history"][0]["error"]
            .as_str()
            .unwrap()
            .contains("mailbox unavailable"),
        "the server's reply is recorded: {d}"
    );
    assert!(d["error"].as_str().unwrap().contains("refused"), "{d}");

    let d = delivery_when(&app, &key, &busy, |d| d["attempts"].as_u64() >= Some(2)).await;
    assert_eq!(d["history"][0]["status_code"], 451, "{d}");
    assert!(d["attempts"].as_u64() >= Some(2), "4xx is retried: {d}");
    assert!(smtp.messages().is_empty());
}

#[actix_web::test]
async fn a_digest_gathers_the_period_and_is_sent_once_by_two_replicas_after_a_restart() {
    let smtp = SmtpServer::start();
    let first = app_for(&smtp).await;
    let prefix = first.prefix.clone();
    let (account, key) = first.create_account().await;
    let sub = email_subscription(
        &first,
        &key,
        &["*"],
        json!({"type": "email", "address": "digest@acme.example", "digest": "hourly"}),
    )
    .await;
    let mut events = Vec::new();
    for i in 0..5 {
        let payload = json!({"intervals": [{"meter_id": format!("mtr_{i}"),
            "start_interval": "2026-11-01T00:00:00Z", "end_interval": "2026-11-02T00:00:00Z"}]});
        events.push(ingest(&first, &account, "meter_data.received", payload).await);
    }
    for i in 0..2 {
        let payload = json!({"customer_id": format!("cus_{i}")});
        events.push(ingest(&first, &account, "customer.created", payload).await);
    }
    // Held for the digest: pending, due at the end of the hour, nothing sent.
    let held = first
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries"),
            &key,
            WAIT,
            |b| {
                b["data"].as_array().is_some_and(|d| {
                    d.len() == 7
                        && d.iter().all(|x| {
                            x["next_attempt_at"]
                                .as_str()
                                .is_some_and(|t| t.ends_with(":00:00.000Z"))
                        })
                })
            },
        )
        .await;
    assert_eq!(held["data"].as_array().unwrap().len(), 7, "{held}");
    assert!(held["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "pending"));
    assert!(smtp.messages().is_empty());

    // Restart: the first replica stops (its data stays in Redis); two new
    // replicas share the prefix.
    first.stop_keeping_data();
    let url = smtp.url();
    let replicas = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let (p, u) = (prefix.clone(), url.clone());
            v.push(
                spawn_app_with(move |s| {
                    s.redis.key_prefix = p;
                    s.smtp.url = u.into();
                })
                .await,
            );
        }
        v
    };
    let mut schedule = DigestSchedule::of(&replicas[0], &account, &sub);
    schedule.end_period();

    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
    let m = &mails[0];
    assert_eq!(m.subject, "[courier] hourly digest: 7 events");
    assert!(m.text.contains("7 events received between"), "{}", m.text);
    assert_eq!(m.to, "digest@acme.example");
    assert!(m.text.contains("meter_data.received: 5"), "{}", m.text);
    assert!(m.text.contains("customer.created: 2"), "{}", m.text);
    for e in &events {
        assert!(m.text.contains(e.as_str()), "{e} listed: {}", m.text);
        assert!(m.html.contains(e.as_str()), "{e} listed: {}", m.html);
    }
    // The newest first.
    let newest = m.text.find(events[6].as_str()).unwrap();
    let oldest = m.text.find(events[0].as_str()).unwrap();
    assert!(newest < oldest, "{}", m.text);
    assert!(m.list_unsubscribe.contains(&sub));

    // Every delivery of the digest shows the one SMTP attempt.
    let done = replicas[0]
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=succeeded"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 7),
        )
        .await;
    assert_eq!(done["data"].as_array().unwrap().len(), 7, "{done}");
    let id = done["data"][0]["id"].as_str().unwrap();
    let d = replicas[0]
        .get(&format!("/v1/deliveries/{id}"), Some(&key))
        .await
        .body;
    assert_eq!(d["history"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["history"][0]["status_code"], 250, "{d}");

    // Events after the digest start the next one.
    ingest(
        &replicas[1],
        &account,
        "customer.created",
        json!({"customer_id": "cus_9"}),
    )
    .await;
    let until = std::time::Instant::now() + WAIT;
    let next = loop {
        match schedule.due() {
            Some(due) => break due,
            None if std::time::Instant::now() < until => {
                actix_web::rt::time::sleep(Duration::from_millis(50)).await
            }
            None => panic!("the new event opened no digest"),
        }
    };
    let now = chrono::Utc::now().timestamp_millis() as f64;
    assert!(next > now, "due at the end of this hour");
    assert_eq!(smtp.messages().len(), 1);
}

#[actix_web::test]
async fn the_contact_is_emailed_when_the_api_key_rotates_and_when_a_subscription_is_disabled() {
    let smtp = SmtpServer::start();
    let app = app_for(&smtp).await;
    let (account, key) = app.create_account().await;
    let r = app
        .post("/v1/api-keys/rotate", Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_key = r.body["api_key"].as_str().unwrap().to_owned();
    let event = r.body["event_id"].as_str().unwrap().to_owned();
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "[courier] API key rotated");
    assert_eq!(mails[0].to, "ops@acme.example");
    assert!(mails[0].text.contains(&event), "{}", mails[0].text);
    assert!(mails[0].text.contains(&account), "{}", mails[0].text);
    assert!(
        mails[0].list_unsubscribe.is_empty(),
        "operational mail has no unsubscribe"
    );

    let rx = Receiver::start().await;
    rx.default_reply("/gone", Reply::status(410));
    let (sub, _) = app
        .subscribe(&new_key, &rx.url("/gone"), &["customer.created"], json!({}))
        .await;
    ingest(
        &app,
        &account,
        "customer.created",
        json!({"customer_id": "cus_1"}),
    )
    .await;
    let mails = smtp.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2);
    let m = &mails[1];
    assert_eq!(m.subject, "[courier] Subscription disabled");
    assert!(m.text.contains(&sub), "{}", m.text);
    assert!(m.text.contains("410 Gone"), "{}", m.text);
    assert!(m.text.contains(&rx.url("/gone")), "{}", m.text);
}

#[actix_web::test]
async fn an_endpoint_failing_with_its_circuit_open_is_reported_once() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = spawn_app_with(move |s| {
        s.smtp.url = url.into();
        s.email.circuit_alert_minutes = 0;
        s.delivery.breaker_failure_threshold = 2.try_into().unwrap();
    })
    .await;
    let (account, key) = app.create_account().await;
    let rx = Receiver::start().await;
    rx.default_reply("/down", Reply::status(500));
    let (sub, _) = app
        .subscribe(&key, &rx.url("/down"), &["customer.created"], json!({}))
        .await;
    for i in 0..4 {
        ingest(
            &app,
            &account,
            "customer.created",
            json!({"customer_id": format!("cus_{i}")}),
        )
        .await;
    }
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "[courier] Endpoint failing");
    assert!(
        mails[0].text.contains(&rx.url("/down")),
        "{}",
        mails[0].text
    );
    assert!(mails[0].text.contains(&sub), "{}", mails[0].text);
    // Probes keep failing (cooldowns of 0.5–2 s); the streak is reported once.
    actix_web::rt::time::sleep(Duration::from_secs(4)).await;
    assert!(
        rx.received("/down").len() > 4,
        "the endpoint was probed again"
    );
    assert_eq!(smtp.messages().len(), 1, "one report per failure streak");
}

#[actix_web::test]
async fn a_failed_digest_can_be_recovered_into_the_next_one() {
    let smtp = SmtpServer::start();
    let app = app_for(&smtp).await;
    let (account, key) = app.create_account().await;
    let sub = email_subscription(
        &app,
        &key,
        &["*"],
        json!({"type": "email", "address": "reject-digest@acme.example", "digest": "daily"}),
    )
    .await;
    ingest(
        &app,
        &account,
        "customer.created",
        json!({"customer_id": "cus_1"}),
    )
    .await;
    ingest(
        &app,
        &account,
        "customer.created",
        json!({"customer_id": "cus_2"}),
    )
    .await;
    let mut schedule = DigestSchedule::of(&app, &account, &sub);
    // Wait until both are held, then end the period: the server refuses it.
    app.poll_until(
        &format!("/v1/subscriptions/{sub}/deliveries"),
        &key,
        WAIT,
        |b| {
            b["data"]
                .as_array()
                .is_some_and(|d| d.len() == 2 && d.iter().all(|x| x["next_attempt_at"].is_string()))
        },
    )
    .await;
    schedule.end_period();
    let failed = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=failed"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 2),
        )
        .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 2, "{failed}");

    // Fixed address, recover: both go into the next digest and arrive.
    let r = app
        .patch(
            &format!("/v1/subscriptions/{sub}"),
            Some(&key),
            &json!({"channel": {"type": "email", "address": "desk@acme.example", "digest": "daily"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(
            &format!("/v1/subscriptions/{sub}/recover"),
            Some(&key),
            &json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    app.poll_until(
        &format!("/v1/subscriptions/{sub}/deliveries"),
        &key,
        WAIT,
        |b| {
            b["data"].as_array().is_some_and(|d| {
                d.iter()
                    .all(|x| x["status"] == "pending" && x["next_attempt_at"].is_string())
            })
        },
    )
    .await;
    // Held again (not stuck): once the period ends the digest goes out.
    let mut mails = Vec::new();
    for _ in 0..40 {
        schedule.end_period();
        mails = smtp.wait_for(1, Duration::from_millis(250)).await;
        if !mails.is_empty() {
            break;
        }
    }
    assert_eq!(mails.len(), 1, "the recovered deliveries were sent");
    assert_eq!(mails[0].subject, "[courier] daily digest: 2 events");
    let done = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=succeeded"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 2),
        )
        .await;
    assert_eq!(done["data"].as_array().unwrap().len(), 2, "{done}");
}
