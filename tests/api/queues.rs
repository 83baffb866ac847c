//! `courier queues` as the operator runs it: the real binary with the test
//! configuration, against Redis under the test's own prefix. The queue
//! counts are checked against entries written straight into the shards'
//! keys; retry and replay against deliveries a running courier made.

use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{courier_command, delay, redis_url, spawn_app_with, test_settings};
use crate::receiver::{Receiver, Reply};

const WAIT: Duration = Duration::from_secs(10);

/// `courier queues <args>` under `prefix`.
fn queues(prefix: &str, args: &[&str]) -> Output {
    courier_command("queues")
        .args(args)
        .env("COURIER__REDIS__KEY_PREFIX", prefix)
        .output()
        .expect("courier runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn zadd(conn: &mut crate::helpers::SyncConn, key: &str, member: &str, score: i64) {
    let _: () = redis::cmd("ZADD")
        .arg(key)
        .arg(score)
        .arg(member)
        .query(conn)
        .unwrap();
}

#[test]
fn courier_queues_counts_every_shard_in_json_and_in_a_table() {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let shards = test_settings().redis.shards;
    assert!(shards > 1, "the test spreads entries over two shards");
    let keys = courier::store::Keys::new(prefix.clone(), shards);
    let mut conn = crate::helpers::redis_connection(&redis_url());
    let now = chrono::Utc::now().timestamp_millis();
    // Shard 0: two due (the oldest a minute ago), one later, an open
    // digest, one being sent, an operational email, an open circuit.
    zadd(&mut conn, &keys.schedule(0), "d1", now - 60_000);
    zadd(&mut conn, &keys.schedule(0), "d2", now - 1_000);
    zadd(&mut conn, &keys.schedule(0), "d3", now + 3_600_000);
    zadd(&mut conn, &keys.digests(0), "s1", now + 60_000);
    zadd(&mut conn, &keys.digests_sending(0), "s2", now + 60_000);
    zadd(&mut conn, &keys.outbox(0), "n1", now);
    zadd(
        &mut conn,
        &keys.open_circuits(0),
        "https://down.example/hook",
        now + 60_000,
    );
    // Shard 1: two leases, one past its deadline.
    zadd(&mut conn, &keys.leases(1), "l1", now - 5_000);
    zadd(&mut conn, &keys.leases(1), "l2", now + 60_000);

    let out = queues(&prefix, &["--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(v["shards"].as_array().unwrap().len(), usize::from(shards));
    let total = &v["total"];
    for (field, n) in [
        ("due", 2),
        ("scheduled", 1),
        ("leased", 2),
        ("leases_expired", 1),
        ("digests_open", 1),
        ("digests_sending", 1),
        ("outbox", 1),
    ] {
        assert_eq!(total[field], n, "{field}: {v}");
    }
    let age = v["shards"][0]["oldest_due_age_ms"].as_i64().unwrap();
    assert!((60_000..120_000).contains(&age), "{age}");
    assert_eq!(v["shards"][1]["leases_expired"], 1);
    assert_eq!(v["shards"][1]["oldest_due_age_ms"], Value::Null);
    assert_eq!(
        v["open_circuits"],
        json!([{"endpoint": "https://down.example/hook",
                "open_until": courier::domain::event::format_ms(now + 60_000),
                "cooldown_over": false}])
    );

    let out = queues(&prefix, &[]);
    let (table, stderr) = text(&out);
    assert!(out.status.success(), "{table}\n{stderr}");
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("0"),
        ["0", "2", "1", "1", "min", "0", "0", "1", "1", "1"],
        "{table}"
    );
    assert_eq!(
        row("1"),
        ["1", "0", "0", "-", "2", "1", "0", "0", "0"],
        "{table}"
    );
    assert_eq!(
        row("total"),
        ["total", "2", "1", "1", "min", "2", "1", "1", "1", "1"],
        "{table}"
    );
    assert!(table.contains("open circuits: 1"), "{table}");
    assert!(
        table.contains("https://down.example/hook  probe after"),
        "{table}"
    );

    // Watching, bounded: two refreshes a second apart, one JSON line each.
    let out = queues(&prefix, &["--json", "--watch", "1", "--count", "2"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines.iter().all(|l| l["total"]["due"] == 2));

    // Data written with another shard count is refused, not misread.
    let _: () = redis::cmd("HSET")
        .arg(keys.meta())
        .arg("shards")
        .arg(shards + 1)
        .query(&mut conn)
        .unwrap();
    let out = queues(&prefix, &["--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("redis.shards"), "{stderr}");
    crate::helpers::cleanup_prefix(&prefix);
}

#[test]
fn bad_queues_arguments_are_refused_with_a_message() {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let nobody = uuid::Uuid::now_v7().to_string();
    for (args, code, says) in [
        (vec!["retry", "--subscription", "nope"], 2, "invalid value"),
        (
            vec!["retry", "--subscription", &nobody],
            1,
            "no subscription",
        ),
        (
            vec!["retry", "--subscription", &nobody, "--since", "yesterday"],
            2,
            "RFC 3339",
        ),
        (
            vec![
                "replay",
                "--account",
                &nobody,
                "--since",
                "2024-01-01T00:00:00Z",
            ],
            1,
            "no account",
        ),
        (vec!["replay", "--account", &nobody], 2, "--since"),
        (
            vec![
                "replay",
                "--account",
                &nobody,
                "--since",
                "2024-01-01T00:00:00Z",
                "--limit",
                "0",
            ],
            2,
            "--limit",
        ),
        (vec!["--count", "2"], 2, "--watch"),
        (vec!["--watch", "0"], 2, "--watch"),
        (
            vec!["--json", "retry", "--subscription", &nobody],
            2,
            "cannot be used",
        ),
    ] {
        let out = queues(&prefix, &args);
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}\n{stdout}\n{stderr}"
        );
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    crate::helpers::cleanup_prefix(&prefix);
}

#[actix_web::test]
async fn queues_retry_requeues_failed_deliveries_and_replay_makes_new_ones() {
    let rx = Receiver::start().await;
    rx.default_reply("/down", Reply::status(500));
    let app = spawn_app_with(|s| s.delivery.retry_schedule = vec![delay("50ms")]).await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/down"), &["*"], json!({}))
        .await;
    let since = chrono::Utc::now().to_rfc3339();
    for i in 0..3 {
        app.ingest(&account, &format!("c{i}")).await;
    }
    let count = |status: &'static str| {
        let path = format!("/v1/subscriptions/{sub}/deliveries?status={status}");
        let app = &app;
        let key = key.clone();
        async move {
            app.get(&path, Some(&key)).await.body["data"]
                .as_array()
                .map_or(0, Vec::len)
        }
    };
    app.poll_until(
        &format!("/v1/subscriptions/{sub}/deliveries?status=failed"),
        &key,
        WAIT,
        |b| b["data"].as_array().is_some_and(|d| d.len() == 3),
    )
    .await;
    assert_eq!(count("failed").await, 3);

    rx.default_reply("/down", Reply::status(204));
    let out = queues(
        &app.prefix,
        &["retry", "--subscription", &sub, "--since", &since],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("subscription {sub} (account {account})")),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 failed deliveries, 3 queued, 0 left alone"),
        "{stdout}"
    );
    // No longer failed: pending, then delivered by the running courier.
    assert_eq!(count("failed").await, 0);
    app.poll_until(
        &format!("/v1/subscriptions/{sub}/deliveries?status=succeeded"),
        &key,
        WAIT,
        |b| b["data"].as_array().is_some_and(|d| d.len() == 3),
    )
    .await;
    assert_eq!(count("succeeded").await, 3);
    // Nothing failed is left to retry.
    let out = queues(&app.prefix, &["retry", "--subscription", &sub]);
    assert!(text(&out).0.contains("0 failed deliveries, 0 queued"));

    // Replay, two at most: the output says where the next run starts.
    let out = queues(
        &app.prefix,
        &[
            "replay",
            "--account",
            &account,
            "--since",
            &since,
            "--limit",
            "2",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("2 events replayed: 2 deliveries created; 0 events skipped"),
        "{stdout}"
    );
    let next = stdout
        .split("--since ")
        .nth(1)
        .expect("the limit was reached")
        .trim()
        .to_owned();
    let out = queues(
        &app.prefix,
        &[
            "replay",
            "--account",
            &account,
            "--since",
            &next,
            "--type",
            "customer.created",
            "--subscription",
            &sub,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("1 events replayed: 1 deliveries created"),
        "{stdout}"
    );
    assert!(!stdout.contains("limit"), "{stdout}");
    // An event type without subscribers replays nothing.
    let out = queues(
        &app.prefix,
        &[
            "replay",
            "--account",
            &account,
            "--since",
            &since,
            "--type",
            "invoice.paid",
        ],
    );
    assert!(
        text(&out).0.starts_with("0 events replayed"),
        "{:?}",
        text(&out)
    );
    let all = app
        .poll_until(
            &format!("/v1/subscriptions/{sub}/deliveries?status=succeeded"),
            &key,
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 6),
        )
        .await;
    let data = all["data"].as_array().unwrap();
    assert_eq!(data.len(), 6, "{all}");
    assert_eq!(data.iter().filter(|d| d["replay"] == true).count(), 3);
}
