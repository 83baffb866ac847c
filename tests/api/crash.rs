//! Crash safety with real processes: `courier serve` runs as a child, is
//! killed with SIGKILL (or stopped with SIGTERM) while deliveries are in
//! flight, and another one finishes the work.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{courier_command, free_port, ADMIN_KEY};
use crate::receiver::{Receiver, Reply};

struct Courier {
    child: Child,
    base: String,
}

impl Courier {
    async fn start(prefix: &str) -> Self {
        let port = free_port();
        let child = courier_command("serve")
            .env("COURIER__REDIS__KEY_PREFIX", prefix)
            .env("COURIER__SERVER__PORT", port.to_string())
            .env("COURIER__DELIVERY__TIMEOUT_MS", "1000")
            .env("COURIER__DELIVERY__ENDPOINT_CONCURRENCY", "4")
            .env("COURIER__SERVER__SHUTDOWN_TIMEOUT_SECS", "5")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("courier binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = awc::Client::default();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(res) = client.get(format!("{base}/readyz")).send().await {
                if res.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < until, "courier did not become ready");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, base }
    }

    async fn post(&self, path: &str, key: &str, body: &Value) -> Value {
        let mut res = awc::Client::default()
            .post(format!("{}{path}", self.base))
            .insert_header(("Authorization", format!("Bearer {key}")))
            .send_json(body)
            .await
            .unwrap();
        res.json().await.unwrap()
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an account subscribed to `url` and ingests `n` events; returns
/// the event ids.
async fn setup_and_ingest(c: &Courier, url: &str, n: usize) -> HashSet<String> {
    let acc = c
        .post(
            "/v1/accounts",
            ADMIN_KEY,
            &json!({"name": "A", "contact_email": "a@b.example"}),
        )
        .await;
    let key = acc["api_key"].as_str().unwrap().to_owned();
    let account = acc["account"]["id"].as_str().unwrap().to_owned();
    c.post(
        "/v1/subscriptions",
        &key,
        &json!({"event_types": ["*"], "channel": {"type": "webhook", "url": url}}),
    )
    .await;
    let mut ids = HashSet::new();
    for chunk in 0..n.div_ceil(100) {
        let events: Vec<Value> = (0..100.min(n - chunk * 100))
            .map(|i| json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": format!("c{chunk}-{i}")}}))
            .collect();
        let r = c
            .post("/v1/events/batch", ADMIN_KEY, &json!({ "events": events }))
            .await;
        for item in r["results"].as_array().unwrap() {
            assert_eq!(item["status"], 202);
            ids.insert(item["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// Waits until every event reached `path`; checks that duplicates, if any,
/// repeat one webhook-id. Returns (requests, duplicates).
async fn all_delivered(
    rx: &Receiver,
    path: &str,
    events: &HashSet<String>,
    limit: Duration,
) -> (usize, usize) {
    let until = Instant::now() + limit;
    loop {
        let got = rx.received(path);
        let mut per_event: HashMap<String, HashSet<String>> = HashMap::new();
        for r in &got {
            per_event
                .entry(r.json()["event_id"].as_str().unwrap().to_owned())
                .or_default()
                .insert(r.header("webhook-id").to_owned());
        }
        let seen: HashSet<String> = per_event.keys().cloned().collect();
        if seen == *events || Instant::now() > until {
            let missing = events.difference(&seen).count();
            assert_eq!(missing, 0, "{missing} events never arrived");
            for (event, ids) in &per_event {
                assert_eq!(
                    ids.len(),
                    1,
                    "event {event} arrived under several webhook-ids"
                );
            }
            return (got.len(), got.len() - events.len());
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_killed_courier_loses_nothing() {
    let rx = Receiver::start().await;
    rx.default_reply(
        "/crash",
        Reply::status(200).delayed(Duration::from_millis(50)),
    );
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let first = Courier::start(&prefix).await;
    let events = setup_and_ingest(&first, &rx.url("/crash"), 300).await;
    rx.wait_for("/crash", 30, Duration::from_secs(20)).await;
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL, mid-flight
    first.child.wait().unwrap();
    let at_kill = rx.received("/crash").len();
    assert!(at_kill < 300, "everything was delivered before the kill");

    let _second = Courier::start(&prefix).await;
    let (requests, duplicates) =
        all_delivered(&rx, "/crash", &events, Duration::from_secs(60)).await;
    println!("crash test: 300 events, {at_kill} requests before SIGKILL, {requests} requests in all, {duplicates} duplicates (same webhook-id)");
    crate::helpers::cleanup_prefix(&prefix);
}

#[actix_web::test]
async fn sigterm_hands_back_work_and_exits_cleanly() {
    let rx = Receiver::start().await;
    rx.default_reply(
        "/term",
        Reply::status(200).delayed(Duration::from_millis(100)),
    );
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut first = Courier::start(&prefix).await;
    let events = setup_and_ingest(&first, &rx.url("/term"), 100).await;
    rx.wait_for("/term", 5, Duration::from_secs(20)).await;
    let status = Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = first.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < until, "courier did not stop after SIGTERM");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    let before = rx.received("/term").len();
    assert!(before < 100);

    let _second = Courier::start(&prefix).await;
    let (_, duplicates) = all_delivered(&rx, "/term", &events, Duration::from_secs(60)).await;
    // In-flight requests were finished and recorded before exit, queued ones
    // handed back: nothing was sent twice.
    assert_eq!(duplicates, 0);
    crate::helpers::cleanup_prefix(&prefix);
}
