//! courier as a fleet, without Docker: three `courier serve` processes on
//! one Redis (or the cluster the suite runs on) behind nginx from Debian's
//! package, with `deploy/nginx.conf` itself (its upstreams and listen
//! address written next to a copy of it). Ingest and API calls go through
//! nginx; one replica is SIGKILLed mid-load and, later, every replica is
//! restarted in turn with SIGTERM. Every event must reach the subscription
//! (counted by delivery id); duplicates are counted and reported.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{free_port, ADMIN_KEY};
use crate::process::Courier;
use crate::receiver::{Receiver, Reply};

const NGINX: &str = "/usr/sbin/nginx";

/// Events ingested in each of the three phases.
const PER_PHASE: usize = 150;

/// nginx in front of `ports`, from `deploy/nginx.conf`; stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(ports: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf");
        std::fs::copy(&conf, d.join("nginx.conf")).unwrap();
        let servers: String = ports
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n"))
            .collect();
        let temp = |name: &str| d.join(name).display().to_string();
        std::fs::write(
            d.join("upstreams.conf"),
            format!(
                "upstream courier {{\n{servers}    keepalive 16;\n}}\n\
                 client_body_temp_path {};\nproxy_temp_path {};\n\
                 fastcgi_temp_path {};\nuwsgi_temp_path {};\nscgi_temp_path {};\n",
                temp("body"),
                temp("proxy"),
                temp("fastcgi"),
                temp("uwsgi"),
                temp("scgi"),
            ),
        )
        .unwrap();
        let port = free_port();
        std::fs::write(d.join("listen.conf"), format!("listen 127.0.0.1:{port};\n")).unwrap();
        let child = Command::new(NGINX)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-p")
            .arg(d)
            .arg("-g")
            .arg(format!(
                "pid {}; daemon off;",
                d.join("nginx.pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (scripts/test installs Debian's nginx)");
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request through nginx; `None` when it could not be answered at all.
async fn call(
    client: &awc::Client,
    method: &str,
    url: &str,
    key: &str,
    body: Option<&Value>,
    idempotency: Option<&str>,
) -> Option<(u16, Value)> {
    let mut req = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    }
    .insert_header(("Authorization", format!("Bearer {key}")));
    if let Some(k) = idempotency {
        req = req.insert_header(("Idempotency-Key", k));
    }
    let sent = match body {
        Some(b) => req.send_json(b).await,
        None => req.send().await,
    };
    let mut res = sent.ok()?;
    let status = res.status().as_u16();
    let body = res
        .json::<Value>()
        .limit(1 << 20)
        .await
        .unwrap_or(Value::Null);
    Some((status, body))
}

/// Ingests events `from..to` for `account` through nginx, 8 at a time,
/// each with an Idempotency-Key and retried (up to 100 times, 100 ms
/// apart: a restarted debug build on a loaded machine may take seconds to
/// serve, and nginx may have left the others out meanwhile) while the
/// answer is not 202: a request cut off with its replica is sent again.
/// Returns the event ids.
async fn ingest(nginx: &Nginx, account: &str, from: usize, to: usize) -> Vec<String> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(Mutex::new(from));
    let workers = (0..8).map(|_| {
        let (client, ids, next) = (client.clone(), ids.clone(), next.clone());
        let url = nginx.url("/v1/events");
        let account = account.to_owned();
        async move {
            loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    if *n >= to {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                let body = json!({"type": "customer.created", "account_id": account,
                                  "payload": {"customer_id": format!("cus_{i}")}});
                let key = format!("fleet-{i}");
                let mut tries = 0;
                loop {
                    tries += 1;
                    match call(&client, "POST", &url, ADMIN_KEY, Some(&body), Some(&key)).await {
                        Some((202, b)) => {
                            ids.lock()
                                .unwrap()
                                .push(b["id"].as_str().unwrap().to_owned());
                            break;
                        }
                        other => {
                            assert!(tries < 100, "event {i} never accepted: {other:?}");
                            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    let ids = ids.lock().unwrap().clone();
    ids
}

/// Delivery ids received per event id at `path`.
fn received(rx: &Receiver, path: &str) -> HashMap<String, Vec<String>> {
    let mut per_event: HashMap<String, Vec<String>> = HashMap::new();
    for r in rx.received(path) {
        per_event
            .entry(r.json()["event_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(r.header("webhook-id").to_owned());
    }
    per_event
}

/// Waits (at most 60 s) until every event in `events` arrived at `path`.
async fn wait_all(rx: &Receiver, path: &str, events: &HashSet<String>) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashSet<String> = received(rx, path).into_keys().collect();
        if events.is_subset(&got) || Instant::now() > until {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The deliveries a replica recorded, from its own `/metrics`.
async fn delivered_by(c: &Courier) -> f64 {
    let text = awc::Client::default()
        .get(format!("{}/metrics", c.base))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.starts_with("courier_deliveries_finished_total{") && l.contains("succeeded"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn nginx_available() -> bool {
    Path::new(NGINX).exists()
}

#[actix_web::test]
async fn three_replicas_behind_nginx_lose_nothing_through_a_kill_and_a_rolling_restart() {
    assert!(
        nginx_available(),
        "nginx is missing (scripts/test installs Debian's nginx)"
    );
    let settings = [
        ("COURIER__DELIVERY__LEASE_SECS", "2"),
        ("COURIER__SERVER__SHUTDOWN_TIMEOUT_SECS", "3"),
    ];
    let rx = Receiver::start().await;
    rx.default_reply(
        "/fleet",
        Reply::status(200).delayed(Duration::from_millis(20)),
    );
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut replicas = Vec::new();
    for p in &ports {
        replicas.push(Some(Courier::start_on(*p, &prefix, &settings).await));
    }
    let nginx = Nginx::start(&ports);
    let client = awc::Client::default();

    // An account and a subscription, created through nginx (so through
    // whichever replica it picks); every replica delivers with it at once.
    let (s, acc) = call(
        &client,
        "POST",
        &nginx.url("/v1/accounts"),
        ADMIN_KEY,
        Some(&json!({"name": "Fleet", "contact_email": "ops@fleet.example"})),
        None,
    )
    .await
    .unwrap();
    assert_eq!(s, 201, "{acc}");
    let account = acc["account"]["id"].as_str().unwrap().to_owned();
    let key = acc["api_key"].as_str().unwrap().to_owned();
    let (s, sub) = call(
        &client,
        "POST",
        &nginx.url("/v1/subscriptions"),
        &key,
        Some(
            &json!({"event_types": ["*"], "channel": {"type": "webhook", "url": rx.url("/fleet")}}),
        ),
        None,
    )
    .await
    .unwrap();
    assert_eq!(s, 201, "{sub}");

    // Phase 1: all three up.
    let mut events: HashSet<String> = ingest(&nginx, &account, 0, PER_PHASE)
        .await
        .into_iter()
        .collect();
    wait_all(&rx, "/fleet", &events).await;
    for (i, r) in replicas.iter().enumerate() {
        let n = delivered_by(r.as_ref().unwrap()).await;
        assert!(
            n > 0.0,
            "replica {i} delivered nothing with the new subscription"
        );
    }

    // Phase 2: one replica is SIGKILLed while events flow; nginx routes
    // around it and its claims come back within a lease.
    let load = ingest(&nginx, &account, PER_PHASE, 2 * PER_PHASE);
    let kill = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        replicas[1].as_mut().unwrap().kill();
    };
    let (ids, ()) = futures_util::future::join(load, kill).await;
    events.extend(ids);
    replicas[1] = Some(Courier::start_on(ports[1], &prefix, &settings).await);

    // Phase 3: a rolling restart under load, SIGTERM one replica at a time.
    let load = ingest(&nginx, &account, 2 * PER_PHASE, 3 * PER_PHASE);
    let roll = async {
        for i in 0..3 {
            let r = replicas[i].take().unwrap();
            r.stop().await;
            replicas[i] = Some(Courier::start_on(ports[i], &prefix, &settings).await);
        }
    };
    let (ids, ()) = futures_util::future::join(load, roll).await;
    events.extend(ids);

    wait_all(&rx, "/fleet", &events).await;
    let got = received(&rx, "/fleet");
    let lost = events.iter().filter(|e| !got.contains_key(*e)).count();
    let requests: usize = got.values().map(Vec::len).sum();
    let mut by_delivery: HashMap<&str, usize> = HashMap::new();
    for ids in got.values() {
        for id in ids {
            *by_delivery.entry(id.as_str()).or_default() += 1;
        }
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            1,
            "an event arrived under two delivery ids: {ids:?}"
        );
    }
    let duplicates = requests - by_delivery.len();
    println!(
        "fleet test: {} events, {} delivered, {duplicates} duplicates (same delivery id), {lost} lost",
        events.len(),
        by_delivery.len()
    );
    assert_eq!(events.len(), 3 * PER_PHASE);
    assert_eq!(lost, 0, "events never delivered");
    for r in replicas.into_iter().flatten() {
        r.assert_no_panic();
        r.stop().await;
    }
    drop(nginx);
    crate::helpers::cleanup_prefix(&prefix);
}
