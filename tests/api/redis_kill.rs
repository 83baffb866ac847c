//! Redis itself killed: a redis-server of the test's own, with an
//! append-only file fsynced once a second, is SIGKILLed while events stream
//! into a `courier serve` process, and restarted from the same directory
//! (it reloads its AOF). The same courier keeps serving. Every 202 answered
//! before the last fsync window must have survived and be delivered; 202s
//! inside the window may be lost, and the test reports how many were.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::crash::subscribe;
use crate::helpers::{PrivateRedis, ADMIN_KEY};
use crate::process::{create_account, Courier};
use crate::receiver::Receiver;

/// What `appendfsync everysec` may lose: the writes of the last second, and
/// a margin for a write Redis put off while a slow fsync was still running.
const FSYNC_WINDOW: Duration = Duration::from_secs(2);
/// How long any answer may take, 503s included (the test configuration
/// bounds a store call at 1.5 s).
const ANSWER_BOUND: Duration = Duration::from_secs(5);

/// One event courier answered 202 for.
struct Accepted {
    id: String,
    sent: Instant,
    answered: Instant,
}

/// What one ingest loop saw.
#[derive(Default)]
struct Log {
    accepted: Vec<Accepted>,
    /// Events answered 503 (a single request or a batch item).
    unavailable: usize,
    /// Anything else: other statuses, requests that got no answer.
    unexpected: Vec<String>,
    slowest: Duration,
}

/// Posts events for `account` until `stop` is set and reached, or a hard
/// bound of requests or time: one event per request, or `batch` per batch.
async fn ingest_loop(
    base: String,
    account: String,
    batch: Option<usize>,
    stop: Rc<Cell<Option<Instant>>>,
) -> Log {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let give_up = Instant::now() + Duration::from_secs(25);
    let mut log = Log::default();
    for n in 0..2_000 {
        let now = Instant::now();
        if now > give_up || stop.get().is_some_and(|t| now > t) {
            break;
        }
        let event = |i: usize| json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": format!("c{n}-{i}")}});
        let (path, body, events) = match batch {
            None => ("/v1/events", event(0), 1),
            Some(k) => (
                "/v1/events/batch",
                json!({"events": (0..k).map(event).collect::<Vec<_>>()}),
                k,
            ),
        };
        let sent = Instant::now();
        let res = client
            .post(format!("{base}{path}"))
            .insert_header(("Authorization", format!("Bearer {ADMIN_KEY}")))
            .send_json(&body)
            .await;
        let mut res = match res {
            Ok(r) => r,
            Err(e) => {
                log.unexpected.push(format!("{path}: no answer: {e}"));
                continue;
            }
        };
        let reply: Value = res.json().await.unwrap_or(Value::Null);
        let answered = Instant::now();
        log.slowest = log.slowest.max(answered - sent);
        let mut item = |status: u64, id: &Value| match (status, id.as_str()) {
            (202, Some(id)) => log.accepted.push(Accepted {
                id: id.to_owned(),
                sent,
                answered,
            }),
            (503, _) => log.unavailable += 1,
            _ => log.unexpected.push(format!("{path}: {status} {reply}")),
        };
        match (res.status().as_u16(), batch) {
            (503, _) => (0..events).for_each(|_| item(503, &Value::Null)),
            (status @ 202, None) => item(status.into(), &reply["id"]),
            (200, Some(_)) => {
                for r in reply["results"].as_array().cloned().unwrap_or_default() {
                    item(r["status"].as_u64().unwrap_or(0), &r["id"]);
                }
            }
            (status, _) => item(status.into(), &Value::Null),
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    log
}

/// `GET /v1/events/{id}` for each id: the ids that answer 404.
async fn missing_events(base: &str, key: &str, ids: &[&str]) -> HashSet<String> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut missing = HashSet::new();
    for chunk in ids.chunks(16) {
        let replies = futures_util::future::join_all(chunk.iter().map(|id| {
            client
                .get(format!("{base}/v1/events/{id}"))
                .insert_header(("Authorization", format!("Bearer {key}")))
                .send()
        }))
        .await;
        for (id, reply) in chunk.iter().zip(replies) {
            match reply.expect("courier answers").status().as_u16() {
                200 => {}
                404 => {
                    missing.insert((*id).to_owned());
                }
                other => panic!("GET /v1/events/{id} answered {other}"),
            }
        }
    }
    missing
}

/// Waits (at most `limit`) until every one of `events` reached `path`;
/// returns the webhook-ids each event id arrived under.
async fn deliveries(
    rx: &Receiver,
    path: &str,
    events: &HashSet<&str>,
    limit: Duration,
) -> HashMap<String, HashSet<String>> {
    let until = Instant::now() + limit;
    loop {
        let mut per_event: HashMap<String, HashSet<String>> = HashMap::new();
        for r in rx.received(path) {
            per_event
                .entry(r.json()["event_id"].as_str().unwrap_or("").to_owned())
                .or_default()
                .insert(r.header("webhook-id").to_owned());
        }
        let all = events.iter().all(|e| per_event.contains_key(*e));
        if all || Instant::now() > until {
            return per_event;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_killed_redis_keeps_every_event_acknowledged_before_its_last_fsync() {
    if crate::helpers::cluster() {
        // It kills a single redis-server of its own: nothing of the cluster run's.
        return;
    }
    let rx = Receiver::start().await;
    let mut redis = PrivateRedis::start_with_aof();
    let redis_url = redis.url();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let courier = Courier::start_with(&prefix, &[("COURIER__REDIS__URL", &redis_url)]).await;
    let (account, key) = create_account(&courier, "ops@acme.example").await;
    subscribe(
        &courier,
        &key,
        json!({"type": "webhook", "url": rx.url("/hooks")}),
    )
    .await;

    // Singles and batches of 10, side by side, until 3 s after the restart.
    let stop = Rc::new(Cell::new(None));
    let loops = [None, Some(10)].map(|batch| {
        actix_web::rt::spawn(ingest_loop(
            courier.base.clone(),
            account.clone(),
            batch,
            stop.clone(),
        ))
    });
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let kill_at = Instant::now();
    redis.kill();
    let killed = Instant::now();
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    // Restarting blocks until Redis loaded its AOF; the loops keep going.
    let redis = actix_web::rt::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap();
    let restarted = Instant::now();
    stop.set(Some(restarted + Duration::from_secs(3)));
    let mut log = Log::default();
    for l in loops {
        let l = l.await.expect("an ingest loop finished");
        log.accepted.extend(l.accepted);
        log.unavailable += l.unavailable;
        log.unexpected.extend(l.unexpected);
        log.slowest = log.slowest.max(l.slowest);
    }

    assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
    assert!(
        log.slowest < ANSWER_BOUND,
        "an answer took {:?}",
        log.slowest
    );
    assert!(log.unavailable > 0, "no 503 while Redis was down");
    let after_restart = log.accepted.iter().filter(|a| a.sent > restarted).count();
    assert!(
        after_restart > 0,
        "courier accepted nothing after the restart"
    );

    // Inside the window: acknowledged after its start and sent before the
    // kill (later requests can only have been stored by the new Redis).
    let inside = |a: &Accepted| a.answered + FSYNC_WINDOW >= kill_at && a.sent <= killed;
    let ids: Vec<&str> = log.accepted.iter().map(|a| a.id.as_str()).collect();
    let missing = missing_events(&courier.base, &key, &ids).await;
    let (window, outside): (Vec<&Accepted>, Vec<&Accepted>) =
        log.accepted.iter().partition(|a| inside(a));
    let lost_outside: Vec<&str> = outside
        .iter()
        .filter(|a| missing.contains(&a.id))
        .map(|a| a.id.as_str())
        .collect();
    let lost_inside = window.iter().filter(|a| missing.contains(&a.id)).count();
    assert!(
        lost_outside.is_empty(),
        "{} events acknowledged outside the fsync window are gone: {lost_outside:?}",
        lost_outside.len()
    );

    let present: HashSet<&str> = ids
        .iter()
        .copied()
        .filter(|id| !missing.contains(*id))
        .collect();
    let delivered = deliveries(&rx, "/hooks", &present, Duration::from_secs(20)).await;
    let undelivered: Vec<&&str> = present
        .iter()
        .filter(|e| !delivered.contains_key(**e))
        .collect();
    assert!(
        undelivered.is_empty(),
        "{} stored events were never delivered: {undelivered:?}",
        undelivered.len()
    );
    for (event, webhook_ids) in &delivered {
        assert_eq!(
            webhook_ids.len(),
            1,
            "event {event} arrived under several webhook-ids"
        );
    }
    let requests = rx.received("/hooks").len();
    let lost_but_notified = missing
        .iter()
        .filter(|e| delivered.contains_key(*e))
        .count();
    println!(
        "redis kill: {} events accepted ({} after the restart), {} answered 503, slowest answer {:?}; \
         {} accepted inside the {:?} fsync window, {lost_inside} of them lost \
         ({lost_but_notified} lost but already notified); {} outside, 0 lost; \
         {requests} webhook requests for {} stored events",
        log.accepted.len(),
        after_restart,
        log.unavailable,
        log.slowest,
        window.len(),
        FSYNC_WINDOW,
        outside.len(),
        present.len(),
    );
    courier.assert_no_panic();
    courier.stop().await;
    drop(redis);
}
