//! Crash safety with real processes: `courier serve` runs as a child, is
//! killed with SIGKILL (or stopped with SIGTERM) while deliveries are in
//! flight, and another one finishes the work. After a SIGTERM nothing may
//! stay claimed; every process's output is captured and must show no panic.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use courier::store::Keys;

use crate::helpers::{redis_url, ADMIN_KEY};
use crate::process::{create_account, Courier};
use crate::receiver::{Receiver, Reply};
use crate::smtp::{SilentServer, SmtpServer};

/// Subscribes the account of `key` to every event type through `channel`.
pub(crate) async fn subscribe(c: &Courier, key: &str, channel: Value) {
    let r = c
        .post(
            "/v1/subscriptions",
            key,
            &json!({"event_types": ["*"], "channel": channel}),
        )
        .await;
    assert!(r["id"].is_string(), "{r}");
}

/// Ingests `n` events for `account`; returns their ids.
async fn ingest(c: &Courier, account: &str, n: usize) -> HashSet<String> {
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

/// Creates an account subscribed to `url` and ingests `n` events; returns
/// the event ids.
async fn setup_and_ingest(c: &Courier, url: &str, n: usize) -> HashSet<String> {
    let (account, key) = create_account(c, "a@b.example").await;
    subscribe(c, &key, json!({"type": "webhook", "url": url})).await;
    ingest(c, &account, n).await
}

/// courier's Redis data under one prefix, read straight from Redis.
struct Data {
    conn: crate::helpers::SyncConn,
    keys: Keys,
}

impl Data {
    fn of(prefix: &str) -> Self {
        let mut conn = crate::helpers::redis_connection(&crate::helpers::redis_url());
        let shards: u16 = redis::cmd("HGET")
            .arg(Keys::new(prefix, 1).meta())
            .arg("shards")
            .query(&mut conn)
            .unwrap();
        Self {
            conn,
            keys: Keys::new(prefix, shards),
        }
    }

    /// A sorted set's members and their scores.
    fn scored(&mut self, key: &str) -> HashMap<String, i64> {
        let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut self.conn)
            .unwrap();
        members.into_iter().map(|(m, s)| (m, s as i64)).collect()
    }

    /// Members and scores of one per-shard sorted set over all shards.
    fn scored_in_every_shard(
        &mut self,
        key: impl Fn(&Keys, u16) -> String,
    ) -> HashMap<String, i64> {
        let mut all = HashMap::new();
        for shard in 0..self.keys.shards() {
            let k = key(&self.keys, shard);
            all.extend(self.scored(&k));
        }
        all
    }

    fn hget(&mut self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query(&mut self.conn)
            .unwrap()
    }
}

/// The delivery queues under `prefix`.
struct Queues {
    /// Deliveries under a lease (claimed by some process).
    leased: Vec<String>,
    /// Deliveries in the schedule and when they are due (ms).
    due: HashMap<String, i64>,
    /// Every delivery record.
    deliveries: HashMap<String, HashMap<String, String>>,
}

fn queues(prefix: &str) -> Queues {
    let mut data = Data::of(prefix);
    let leased = data.scored_in_every_shard(Keys::leases);
    let due = data.scored_in_every_shard(Keys::schedule);
    let records = crate::helpers::keys_matching(&redis_url(), &format!("{prefix}:*:dlv:*"));
    let mut deliveries = HashMap::new();
    for key in records.iter().filter(|k| !k.ends_with(":attempts")) {
        let id = key.rsplit(':').next().unwrap().to_owned();
        let record: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(key)
            .query(&mut data.conn)
            .unwrap();
        deliveries.insert(id, record);
    }
    Queues {
        // A lease's member is `<delivery>|<claim token>`.
        leased: leased
            .into_keys()
            .map(|m| m.split('|').next().unwrap_or_default().to_owned())
            .collect(),
        due,
        deliveries,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Waits until an event ingested for a digest subscription of `shard` is
/// held in the subscription's open digest, then ends the digest's period
/// now; returns the subscription id.
async fn digest_due_now(data: &mut Data, shard: u16) -> String {
    let digests = data.keys.digests(shard);
    let until = Instant::now() + Duration::from_secs(20);
    let sub = loop {
        if let Some(sub) = data.scored(&digests).into_keys().next() {
            break sub;
        }
        assert!(
            Instant::now() < until,
            "the event was not held for a digest"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let _: i64 = redis::cmd("ZADD")
        .arg(&digests)
        .arg(0)
        .arg(&sub)
        .query(&mut data.conn)
        .unwrap();
    sub
}

/// Waits until the digest of `sub` and a notice of `shard` are both
/// claimed (pushed back by their leases while they are sent); returns the
/// notice's id.
async fn digest_and_notice_claimed(data: &mut Data, shard: u16, sub: &str) -> String {
    let (outbox, sending) = (data.keys.outbox(shard), data.keys.digests_sending(shard));
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let now = now_ms();
        let notices = data.scored(&outbox);
        let digest_due = data.scored(&sending).get(sub).copied();
        if let (Some((notice, due)), Some(digest_due)) = (notices.into_iter().next(), digest_due) {
            if due > now && digest_due > now {
                return notice;
            }
        }
        assert!(
            Instant::now() < until,
            "the digest and the notice were not claimed"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
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
    first.kill(); // mid-flight
    let at_kill = rx.received("/crash").len();
    assert!(at_kill < 300, "everything was delivered before the kill");

    let second = Courier::start(&prefix).await;
    let (requests, duplicates) =
        all_delivered(&rx, "/crash", &events, Duration::from_secs(60)).await;
    println!("crash test: 300 events, {at_kill} requests before SIGKILL, {requests} requests in all, {duplicates} duplicates (same webhook-id)");
    second.stop().await;
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
    let exit = first.terminate().await;
    assert!(exit.success(), "exit status {exit:?}");
    let leased = queues(&prefix).leased;
    assert!(
        leased.is_empty(),
        "the stopped process left claims leased: {leased:?}"
    );
    first.assert_no_panic();
    let before = rx.received("/term").len();
    assert!(before < 100);

    let second = Courier::start(&prefix).await;
    let (_, duplicates) = all_delivered(&rx, "/term", &events, Duration::from_secs(60)).await;
    // In-flight requests were finished and recorded before exit, queued ones
    // handed back: nothing was sent twice.
    assert_eq!(duplicates, 0);
    second.stop().await;
    crate::helpers::cleanup_prefix(&prefix);
}

#[actix_web::test]
async fn sigterm_returns_every_claim_due_now_without_spending_an_attempt() {
    // Both channels hold their deliveries far beyond the grace period.
    let rx = Receiver::start().await;
    rx.default_reply("/held", Reply::status(200).delayed(Duration::from_secs(60)));
    let smtp = SmtpServer::start();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let smtp_url = smtp.url();
    let mut first = Courier::start_with(
        &prefix,
        &[
            ("COURIER__DELIVERY__TIMEOUT_MS", "30000"),
            ("COURIER__SMTP__URL", &smtp_url),
            ("COURIER__SMTP__TIMEOUT_MS", "30000"),
            ("COURIER__SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let (account, key) = create_account(&first, "a@b.example").await;
    subscribe(
        &first,
        &key,
        json!({"type": "webhook", "url": rx.url("/held")}),
    )
    .await;
    subscribe(
        &first,
        &key,
        json!({"type": "email", "address": "slow@acme.example"}),
    )
    .await;
    ingest(&first, &account, 50).await;
    // Every delivery claimed: some being sent, the rest queued behind them.
    let until = Instant::now() + Duration::from_secs(20);
    while queues(&prefix).leased.len() < 100 {
        assert!(
            Instant::now() < until,
            "the deliveries were not all claimed"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    rx.wait_for("/held", 4, Duration::from_secs(20)).await;

    let exit = first.terminate().await;
    let exited_ms = now_ms();
    assert!(exit.success(), "exit status {exit:?}\n{}", first.output());
    first.assert_no_panic();

    let q = queues(&prefix);
    assert_eq!(q.deliveries.len(), 100);
    assert!(
        q.leased.is_empty(),
        "{} deliveries still leased by the stopped process",
        q.leased.len()
    );
    for (id, d) in &q.deliveries {
        assert_eq!(d["status"], "pending", "delivery {id}: {d:?}");
        let attempts = d.get("attempts").map_or("0", String::as_str);
        assert_eq!(attempts, "0", "delivery {id} spent an attempt: {d:?}");
        let due = q.due.get(id).copied();
        assert!(
            due.is_some_and(|due| due <= exited_ms),
            "delivery {id} is not due now (due {due:?}, exit at {exited_ms})"
        );
    }
    crate::helpers::cleanup_prefix(&prefix);
}

#[actix_web::test]
async fn sigterm_returns_digests_and_notices_being_emailed_due_now() {
    // The SMTP server holds every message to slow@ far beyond the grace period.
    let smtp = SmtpServer::start();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let smtp_url = smtp.url();
    let mut first = Courier::start_with(
        &prefix,
        &[
            ("COURIER__SMTP__URL", &smtp_url),
            ("COURIER__SMTP__TIMEOUT_MS", "30000"),
            ("COURIER__SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let (account, key) = create_account(&first, "slow@acme.example").await;
    subscribe(
        &first,
        &key,
        json!({"type": "email", "address": "slow@acme.example", "digest": "hourly"}),
    )
    .await;
    ingest(&first, &account, 1).await;
    let mut data = Data::of(&prefix);
    let account_id = uuid::Uuid::parse_str(&account).unwrap();
    let shard = data.keys.shard_of(&account_id);
    // The event waits in the subscription's open digest; its period ends now.
    let sub = digest_due_now(&mut data, shard).await;
    // And a notice: the API key rotated.
    let rotated = first.post("/v1/api-keys/rotate", &key, &json!({})).await;
    assert!(rotated["api_key"].is_string(), "{rotated}");
    // Both claimed: pushed back by their leases while they are sent.
    let (outbox, sending) = (data.keys.outbox(shard), data.keys.digests_sending(shard));
    let notice = digest_and_notice_claimed(&mut data, shard, &sub).await;

    let exit = first.terminate().await;
    let exited_ms = now_ms();
    assert!(exit.success(), "exit status {exit:?}\n{}", first.output());
    first.assert_no_panic();

    let digest_due = data.scored(&sending).get(&sub).copied();
    assert!(
        digest_due.is_some_and(|due| due <= exited_ms),
        "the digest is not due now (due {digest_due:?}, exit at {exited_ms})"
    );
    let digest = data
        .keys
        .digest(&account_id, &uuid::Uuid::parse_str(&sub).unwrap());
    let digest_attempts = data.hget(&format!("{digest}:sending:meta"), "attempts");
    assert_eq!(
        digest_attempts.as_deref(),
        Some("0"),
        "the digest spent an attempt"
    );
    let notice_due = data.scored(&outbox).get(&notice).copied();
    assert!(
        notice_due.is_some_and(|due| due <= exited_ms),
        "the notice is not due now (due {notice_due:?}, exit at {exited_ms})"
    );
    let notice_id = uuid::Uuid::parse_str(&notice).unwrap();
    let notice_attempts = data.hget(&data.keys.notice(shard, &notice_id), "attempts");
    assert_eq!(
        notice_attempts.as_deref(),
        Some("0"),
        "the notice spent an attempt"
    );
    crate::helpers::cleanup_prefix(&prefix);
}

#[actix_web::test]
async fn a_killed_replicas_claims_return_within_one_lease() {
    // Leases of 2 s; a webhook timeout of 4 s (a lease that had to cover
    // the request and its wait, as before renewals, was 3 × 4 + 2 = 14 s).
    let settings = [
        ("COURIER__DELIVERY__LEASE_SECS", "2"),
        ("COURIER__DELIVERY__TIMEOUT_MS", "4000"),
    ];
    let rx = Receiver::start().await;
    rx.default_reply(
        "/slow",
        Reply::status(200).delayed(Duration::from_millis(1_500)),
    );
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut first = Courier::start_with(&prefix, &settings).await;
    let events = setup_and_ingest(&first, &rx.url("/slow"), 40).await;
    rx.wait_for("/slow", 4, Duration::from_secs(20)).await;
    // Every delivery is claimed by the first replica, four in flight.
    first.kill();
    let killed = Instant::now();
    rx.default_reply("/slow", Reply::status(200));
    let second = Courier::start_with(&prefix, &settings).await;
    all_delivered(&rx, "/slow", &events, Duration::from_secs(30)).await;
    let took = killed.elapsed();
    println!("lease test: the last of 40 deliveries arrived {took:?} after SIGKILL (lease 2 s)");
    assert!(
        took < Duration::from_secs(7),
        "the dead replica's claims came back only after {took:?}"
    );
    second.stop().await;
    crate::helpers::cleanup_prefix(&prefix);
}

#[actix_web::test]
async fn a_send_longer_than_the_lease_keeps_its_claim_on_a_live_replica() {
    // A 2 s lease and requests that take 5 s: only renewals keep the other
    // replica from claiming (and sending) them again.
    let settings = [
        ("COURIER__DELIVERY__LEASE_SECS", "2"),
        ("COURIER__DELIVERY__TIMEOUT_MS", "8000"),
    ];
    let rx = Receiver::start().await;
    rx.default_reply("/long", Reply::status(200).delayed(Duration::from_secs(5)));
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let a = Courier::start_with(&prefix, &settings).await;
    let b = Courier::start_with(&prefix, &settings).await;
    let events = setup_and_ingest(&a, &rx.url("/long"), 3).await;
    let until = Instant::now() + Duration::from_secs(20);
    while rx.completed("/long") < 3 && Instant::now() < until {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a second claim to show, had a lease run out.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let (requests, duplicates) = all_delivered(&rx, "/long", &events, Duration::from_secs(1)).await;
    assert_eq!((requests, duplicates), (3, 0), "each sent exactly once");
    a.stop().await;
    b.stop().await;
    crate::helpers::cleanup_prefix(&prefix);
}

#[actix_web::test]
async fn a_killed_replicas_digest_and_notice_are_sent_by_another_within_one_lease() {
    // Leases of 2 s and a 30 s SMTP timeout (the fixed, unrenewed lease of
    // earlier versions, 3 × the timeout + 2 s, held them for 92 s). The
    // first replica's SMTP server accepts and never answers: its digest and
    // its notice are in flight when it is SIGKILLed.
    let silent = SilentServer::start();
    let smtp = SmtpServer::start();
    let (silent_url, smtp_url) = (silent.url(), smtp.url());
    let lease = ("COURIER__DELIVERY__LEASE_SECS", "2");
    let timeout = ("COURIER__SMTP__TIMEOUT_MS", "30000");
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut first = Courier::start_with(
        &prefix,
        &[lease, timeout, ("COURIER__SMTP__URL", &silent_url)],
    )
    .await;
    let (account, key) = create_account(&first, "ops@acme.example").await;
    subscribe(
        &first,
        &key,
        json!({"type": "email", "address": "digest@acme.example", "digest": "hourly"}),
    )
    .await;
    ingest(&first, &account, 1).await;
    let mut data = Data::of(&prefix);
    let shard = data
        .keys
        .shard_of(&uuid::Uuid::parse_str(&account).unwrap());
    let sub = digest_due_now(&mut data, shard).await;
    let rotated = first.post("/v1/api-keys/rotate", &key, &json!({})).await;
    assert!(rotated["api_key"].is_string(), "{rotated}");
    digest_and_notice_claimed(&mut data, shard, &sub).await;
    let until = Instant::now() + Duration::from_secs(20);
    while silent.accepted() < 2 {
        assert!(Instant::now() < until, "the two messages were not sent");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // A second replica, whose SMTP server answers. While the first one
    // lives, its renewals keep both claims, longer than a lease.
    let second = Courier::start_with(
        &prefix,
        &[lease, timeout, ("COURIER__SMTP__URL", &smtp_url)],
    )
    .await;
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    assert!(
        smtp.messages().is_empty(),
        "sent by the second replica while the first one held them"
    );

    first.kill();
    let killed = Instant::now();
    let mut arrived: HashMap<String, Duration> = HashMap::new();
    while arrived.len() < 2 && killed.elapsed() < Duration::from_secs(20) {
        for m in smtp.messages() {
            arrived.entry(m.to).or_insert_with(|| killed.elapsed());
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (digest, notice) = (
        arrived.get("digest@acme.example").copied(),
        arrived.get("ops@acme.example").copied(),
    );
    println!(
        "email lease test: after SIGKILL the digest arrived after {digest:?}, the notice after {notice:?} (lease 2 s, SMTP timeout 30 s)"
    );
    for (what, took) in [("digest", digest), ("notice", notice)] {
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(5)),
            "the dead replica's {what} came back only after {took:?}"
        );
    }
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.messages().len(), 2, "each sent once");
    second.stop().await;
    crate::helpers::cleanup_prefix(&prefix);
}

#[actix_web::test]
async fn a_digest_and_a_notice_sent_longer_than_the_lease_go_out_once_from_live_replicas() {
    // A 2 s lease and an SMTP server that takes 5 s to accept each message:
    // only renewals keep the other replica from claiming (and sending) them
    // again.
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let settings = [
        ("COURIER__DELIVERY__LEASE_SECS", "2"),
        ("COURIER__SMTP__TIMEOUT_MS", "15000"),
        ("COURIER__SMTP__URL", url.as_str()),
    ];
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let a = Courier::start_with(&prefix, &settings).await;
    let b = Courier::start_with(&prefix, &settings).await;
    let (account, key) = create_account(&a, "late-ops@acme.example").await;
    subscribe(
        &a,
        &key,
        json!({"type": "email", "address": "late-digest@acme.example", "digest": "hourly"}),
    )
    .await;
    ingest(&a, &account, 1).await;
    let mut data = Data::of(&prefix);
    let shard = data
        .keys
        .shard_of(&uuid::Uuid::parse_str(&account).unwrap());
    digest_due_now(&mut data, shard).await;
    let rotated = b.post("/v1/api-keys/rotate", &key, &json!({})).await;
    assert!(rotated["api_key"].is_string(), "{rotated}");
    let started = Instant::now();
    let sent = smtp.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(sent.len(), 2, "the digest and the notice were not sent");
    println!(
        "long send test: both messages arrived {:?} after they were due (5 s sends, lease 2 s)",
        started.elapsed()
    );
    // A second claim, had a lease run out, would show within a lease plus
    // its own 5 s send.
    actix_web::rt::time::sleep(Duration::from_secs(8)).await;
    let mut to: Vec<String> = smtp.messages().into_iter().map(|m| m.to).collect();
    to.sort();
    assert_eq!(
        to,
        ["late-digest@acme.example", "late-ops@acme.example"],
        "each sent exactly once"
    );
    a.stop().await;
    b.stop().await;
    crate::helpers::cleanup_prefix(&prefix);
}
