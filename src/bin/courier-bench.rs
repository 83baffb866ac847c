//! courier-bench: a load generator for courier.
//!
//! Starts a courier (or targets a running one), creates accounts and
//! webhook subscriptions pointing at its own built-in receiver on loopback,
//! drives ingest at a fixed rate or flat out for a bounded time or count, and
//! reports the ingest rate, the delivered rate, ingest-to-receipt latency
//! percentiles, the deliveries missing at the end and the duplicates.
//! Every loop is bounded in count and time; only loopback is ever a target.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug, Clone)]
#[command(about = "Load generator for courier: ingest rate, delivery rate, latency, losses")]
struct Args {
    /// Use a running courier at this URL instead of starting one.
    #[arg(long)]
    target: Option<String>,
    /// Admin key of the courier.
    #[arg(long, default_value = "bench-admin-key")]
    admin_key: String,
    /// courier binary to start (when no --target).
    #[arg(long, default_value = "target/release/courier")]
    courier_bin: PathBuf,
    /// Redis for the started courier.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Key prefix for the started courier (default: a fresh one).
    #[arg(long)]
    prefix: Option<String>,
    /// Extra KEY=VALUE environment for the started courier.
    #[arg(long = "courier-env")]
    courier_env: Vec<String>,
    /// Start courier with delivery disabled (ingest only).
    #[arg(long)]
    no_delivery: bool,
    /// Accounts; events are spread over them round-robin.
    #[arg(long, default_value_t = 1)]
    accounts: usize,
    /// Webhook subscriptions per account, each its own endpoint.
    #[arg(long, default_value_t = 1)]
    subs_per_account: usize,
    /// The first N endpoints hang (hold each request for --hang-secs).
    #[arg(long, default_value_t = 0)]
    hanging: usize,
    #[arg(long, default_value_t = 20)]
    hang_secs: u64,
    /// Target events per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds of ingest (ignored with --count).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Ingest exactly this many events instead.
    #[arg(long)]
    count: Option<u64>,
    /// Events per request; 1 uses POST /v1/events, more /v1/events/batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Concurrent ingest requests.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Client threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Size of each event's payload in bytes (approximately).
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// After ingest, wait at most this long for the deliveries.
    #[arg(long, default_value_t = 60)]
    drain_secs: u64,
    /// Receiver worker threads.
    #[arg(long, default_value_t = 1)]
    receiver_workers: usize,
    /// Before ingest, put this many failed-once deliveries in the schedule,
    /// due tomorrow (a retry backlog), and report Redis memory per entry.
    #[arg(long, default_value_t = 0)]
    prefill_waiting: u64,
    /// courier processes to start on the same Redis and key prefix (a
    /// fleet); ingest connections are spread over them round-robin.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Shards of the started courier (must match `redis.shards`).
    #[arg(long, default_value_t = 16)]
    shards: u16,
}

/// Writes `n` waiting retries shaped exactly like courier's own (delivery
/// hash after one failed attempt with its attempt in its own fields, the
/// schedule entry, the subscription's index entry), spread over the shards.
const PREFILL: &str = r#"
local base, n0, n, now, due = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local sid, acct, eid = ARGV[6], ARGV[7], ARGV[8]
-- A delivery whose first attempt timed out, as finish.lua leaves it: the
-- attempt in the delivery's own hash (a1, a1e), no attempt list, no expiry
-- (it goes with its event).
local a1 = now .. '|15000||' .. due
local a1e = 'timeout: no response within 15000 ms'
for i = n0, n0 + n - 1 do
  local did = string.format('%08x-0000-8000-8000-%012x', tonumber(ARGV[9]), i)
  local dkey = base .. K.dlv .. did
  redis.call('HSET', dkey, 'event_id', eid, 'sub_id', sid, 'account_id', acct, 'event_type', 'customer.created',
    'status', 'pending', 'created_at', now, 'attempts', 1, 'next_attempt_at', due, 'last_attempt_at', now,
    'a1', a1, 'a1e', a1e)
  redis.call('ZADD', KEYS[1], due, did)
  redis.call('ZADD', base .. K.sub_dlv .. sid, now, did)
end
return n
"#;

fn used_memory(conn: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(conn)
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Redis's `used_memory`, summed over the masters `url` names.
fn total_used_memory(url: &str) -> i64 {
    master_connections(url).iter_mut().map(used_memory).sum()
}

/// Fills the schedule; returns bytes of Redis memory per waiting retry.
fn prefill(url: &str, prefix: &str, shards: u16, n: u64) -> f64 {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_connection().expect("redis reachable");
    // The key names as courier's own scripts get them (`K`).
    let script = redis::Script::new(&format!("{}{PREFILL}", courier::store::keys::lua_names()));
    let before = used_memory(&mut conn);
    let now = chrono::Utc::now().timestamp_millis();
    let (sid, acct, eid) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    let chunk = 20_000u64;
    let mut done = 0u64;
    let keys = courier::store::Keys::new(prefix, shards);
    let started = Instant::now();
    while done < n {
        let shard = ((done / chunk) % u64::from(shards)) as u16;
        let count = chunk.min(n - done);
        let _: u64 = script
            .key(keys.schedule(shard))
            .arg(keys.shard_base(shard))
            .arg(done)
            .arg(count)
            .arg(now)
            .arg(now + 86_400_000)
            .arg(sid.to_string())
            .arg(acct.to_string())
            .arg(eid.to_string())
            .arg(shard)
            .invoke(&mut conn)
            .expect("prefill script");
        done += count;
    }
    let per_entry = (used_memory(&mut conn) - before) as f64 / n as f64;
    println!(
        "prefill    {n} waiting retries in {:.1} s; Redis used_memory +{:.0} MB = {per_entry:.0} bytes per waiting retry",
        started.elapsed().as_secs_f64(),
        (used_memory(&mut conn) - before) as f64 / 1_048_576.0
    );
    per_entry
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    ids: HashSet<u128>,
    total: u64,
    /// Latencies of healthy endpoints, microseconds.
    latencies: Vec<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

struct Receiver {
    seen: Mutex<Seen>,
    hanging: usize,
    hang: Duration,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = body.find(&key)? + key.len();
    let end = body[start..].find('"')? + start;
    Some(&body[start..end])
}

async fn receive(req: HttpRequest, body: web::Bytes, rx: web::Data<Receiver>) -> HttpResponse {
    let at = now_us();
    let endpoint: usize = req
        .path()
        .trim_start_matches("/r/")
        .parse()
        .unwrap_or(usize::MAX);
    let text = std::str::from_utf8(&body).unwrap_or("");
    let id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
        .map(|u| u.as_u128());
    let ts = field(text, "event_timestamp")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_micros());
    {
        let mut s = rx.seen.lock().unwrap();
        s.total += 1;
        if let Some(id) = id {
            s.ids.insert(id);
        }
        if endpoint >= rx.hanging {
            if let Some(ts) = ts {
                s.latencies.push((at - ts).max(0) as u64);
            }
        }
        let now = Instant::now();
        s.first.get_or_insert(now);
        s.last = Some(now);
    }
    if endpoint < rx.hanging {
        actix_web::rt::time::sleep(rx.hang).await;
    }
    HttpResponse::Ok().finish()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Courier {
    child: Option<Child>,
    base: String,
}

impl Drop for Courier {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn start_courier(args: &Args, prefix: &str) -> Courier {
    if let Some(t) = &args.target {
        return Courier {
            child: None,
            base: t.trim_end_matches('/').to_owned(),
        };
    }
    let port = free_port();
    let config_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut cmd = Command::new(&args.courier_bin);
    cmd.arg("serve")
        .env("COURIER_ENV", "bench")
        .env("COURIER_CONFIG_DIR", config_dir)
        .env("COURIER__SERVER__PORT", port.to_string())
        .env("COURIER__REDIS__URL", &args.redis_url)
        .env("COURIER__REDIS__KEY_PREFIX", prefix)
        .env("COURIER__AUTH__ADMIN_KEYS", &args.admin_key)
        .env(
            "COURIER__DELIVERY__ENABLED",
            (!args.no_delivery).to_string(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for kv in &args.courier_env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.courier_bin.display()));
    // Dropping the handle kills and reaps the child on every path.
    let courier = Courier {
        child: Some(child),
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = awc::Client::default();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if let Ok(r) = client.get(format!("{}/readyz", courier.base)).send().await {
            if r.status() == 200 {
                return courier;
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("courier did not become ready");
}

async fn post(client: &awc::Client, url: &str, key: &str, body: &Value) -> Value {
    let mut r = client
        .post(url)
        .insert_header(("Authorization", format!("Bearer {key}")))
        .send_json(body)
        .await
        .expect("courier answers");
    r.json().limit(64 << 20).await.unwrap_or(Value::Null)
}

/// Ingest loop of one client thread; returns (accepted, rejected).
fn ingest_thread(
    args: Args,
    bases: Arc<Vec<String>>,
    accounts: Arc<Vec<String>>,
    thread: usize,
    stop_at: Instant,
    budget: Arc<AtomicU64>,
    payload: Arc<String>,
) -> (u64, u64) {
    actix_web::rt::System::new().block_on(async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .connector(awc::Connector::new().limit(args.connections))
            .finish();
        let per_thread = args.connections.div_ceil(args.threads);
        let accepted = Arc::new(AtomicU64::new(0));
        let rejected = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut loops = Vec::new();
        for c in 0..per_thread {
            let slot = thread * per_thread + c;
            let base = bases[slot % bases.len()].clone();
            let (client, accounts, budget, payload) =
                (client.clone(), accounts.clone(), budget.clone(), payload.clone());
            let (accepted, rejected, args) = (accepted.clone(), rejected.clone(), args.clone());
            loops.push(actix_web::rt::spawn(async move {
                let single = args.batch == 1;
                let url = if single { format!("{base}/v1/events") } else { format!("{base}/v1/events/batch") };
                let mut k: u64 = 0;
                let total_slots = (per_thread * args.threads) as f64;
                loop {
                    if Instant::now() >= stop_at {
                        break;
                    }
                    let n = args.batch as u64;
                    let took = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(n));
                    if took.is_err() {
                        break;
                    }
                    if args.rate > 0 {
                        // Open-loop pacing: this connection's k-th request.
                        let requests_per_sec = args.rate as f64 / args.batch as f64;
                        let due = started + Duration::from_secs_f64((k as f64 * total_slots + slot as f64) / requests_per_sec);
                        let now = Instant::now();
                        if due > now {
                            actix_web::rt::time::sleep(due - now).await;
                        }
                    }
                    let events: Vec<String> = (0..args.batch)
                        .map(|i| {
                            let account = &accounts[(slot + i + k as usize * args.batch) % accounts.len()];
                            format!(r#"{{"type":"customer.created","account_id":"{account}","payload":{payload}}}"#)
                        })
                        .collect();
                    let body = if single { events[0].clone() } else { format!(r#"{{"events":[{}]}}"#, events.join(",")) };
                    let res = client
                        .post(&url)
                        .insert_header(("Authorization", format!("Bearer {}", args.admin_key)))
                        .insert_header(("Content-Type", "application/json"))
                        .send_body(body)
                        .await;
                    match res {
                        Ok(mut r) if single => {
                            let _ = r.body().await;
                            if r.status() == 202 {
                                accepted.fetch_add(1, Ordering::Relaxed);
                            } else {
                                rejected.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(mut r) => {
                            let v: Value = r.json().limit(64 << 20).await.unwrap_or(Value::Null);
                            let a = v["accepted"].as_u64().unwrap_or(0);
                            accepted.fetch_add(a, Ordering::Relaxed);
                            rejected.fetch_add(n - a, Ordering::Relaxed);
                        }
                        Err(_) => {
                            rejected.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                    k += 1;
                }
            }));
        }
        for l in loops {
            let _ = l.await;
        }
        (accepted.load(Ordering::Relaxed), rejected.load(Ordering::Relaxed))
    })
}

fn main() {
    let args = Args::parse();
    let rx = web::Data::new(Receiver {
        seen: Mutex::new(Seen::default()),
        hanging: args.hanging,
        hang: Duration::from_secs(args.hang_secs),
    });
    let rx_port = free_port();
    let server = {
        let rx = rx.clone();
        HttpServer::new(move || {
            App::new()
                .app_data(rx.clone())
                .default_service(web::to(receive))
        })
        .workers(args.receiver_workers)
        .backlog(4096)
        .max_connections(100_000)
        .disable_signals()
        .bind(("127.0.0.1", rx_port))
        .unwrap()
        .run()
    };
    let server_handle = server.handle();
    let server_thread = std::thread::spawn(move || actix_web::rt::System::new().block_on(server));

    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("bench-{}", uuid::Uuid::new_v4().simple()));
    let sys = actix_web::rt::System::new();
    let (courier, others, accounts) = sys.block_on(async {
        let courier = start_courier(&args, &prefix).await;
        let mut others = Vec::new();
        for _ in 1..args.replicas.max(1) {
            others.push(start_courier(&args, &prefix).await);
        }
        let client = awc::Client::default();
        let mut accounts = Vec::new();
        let mut endpoint = 0;
        for a in 0..args.accounts {
            let acc = post(
                &client,
                &format!("{}/v1/accounts", courier.base),
                &args.admin_key,
                &json!({"name": format!("bench {a}"), "contact_email": "bench@example.com"}),
            )
            .await;
            let key = acc["api_key"].as_str().expect("account created").to_owned();
            for _ in 0..args.subs_per_account {
                let url = format!("http://127.0.0.1:{rx_port}/r/{endpoint}");
                endpoint += 1;
                let s = post(
                    &client,
                    &format!("{}/v1/subscriptions", courier.base),
                    &key,
                    &json!({"event_types": ["*"], "channel": {"type": "webhook", "url": url}}),
                )
                .await;
                assert!(s["id"].is_string(), "subscription not created: {s}");
            }
            accounts.push(acc["account"]["id"].as_str().unwrap().to_owned());
        }
        (courier, others, accounts)
    });
    let pid = courier.child.as_ref().map(Child::id);
    let per_waiting = (args.prefill_waiting > 0)
        .then(|| prefill(&args.redis_url, &prefix, args.shards, args.prefill_waiting));
    let payload = {
        let pad = args.payload_bytes.saturating_sub(40);
        Arc::new(format!(
            r#"{{"customer_id":"cus_bench","pad":"{}"}}"#,
            "x".repeat(pad)
        ))
    };
    let accounts = Arc::new(accounts);
    let budget = Arc::new(AtomicU64::new(args.count.unwrap_or(u64::MAX / 2)));
    let duration = if args.count.is_some() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(args.duration)
    };

    // Sample courier's memory while the run lasts.
    let sampling = Arc::new(AtomicBool::new(true));
    let max_rss = Arc::new(Mutex::new(0.0f64));
    let sampler = pid.map(|pid| {
        let (sampling, max_rss) = (sampling.clone(), max_rss.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(mb) = rss_mb(pid) {
                    let mut m = max_rss.lock().unwrap();
                    *m = m.max(mb);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    });

    // Redis's memory before the first event (the setup and any prefill
    // included), to report what each accepted event leaves in Redis.
    let memory_before = total_used_memory(&args.redis_url);
    let started = Instant::now();
    let stop_at = started + duration;
    let bases: Arc<Vec<String>> = Arc::new(
        std::iter::once(&courier)
            .chain(others.iter())
            .map(|c| c.base.clone())
            .collect(),
    );
    let threads: Vec<_> = (0..args.threads)
        .map(|t| {
            let (args, base, accounts, budget, payload) = (
                args.clone(),
                bases.clone(),
                accounts.clone(),
                budget.clone(),
                payload.clone(),
            );
            std::thread::spawn(move || {
                ingest_thread(args, base, accounts, t, stop_at, budget, payload)
            })
        })
        .collect();
    let (mut accepted, mut rejected) = (0, 0);
    for t in threads {
        let (a, r) = t.join().unwrap();
        accepted += a;
        rejected += r;
    }
    let ingest_secs = started.elapsed().as_secs_f64();

    let expected = if args.no_delivery {
        0
    } else {
        accepted * args.subs_per_account as u64
    };
    let hanging_share = if args.hanging > 0 {
        // Deliveries to hanging endpoints are not waited for.
        let endpoints = (args.accounts * args.subs_per_account) as u64;
        expected * args.hanging as u64 / endpoints
    } else {
        0
    };
    let drain_until = Instant::now() + Duration::from_secs(args.drain_secs);
    while !args.no_delivery && Instant::now() < drain_until {
        if rx.seen.lock().unwrap().ids.len() as u64 >= expected - hanging_share {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !args.no_delivery {
        // Late duplicates would show up now.
        std::thread::sleep(Duration::from_millis(500));
    }
    let memory_after = total_used_memory(&args.redis_url);
    let bytes_per_event =
        (accepted > 0).then(|| (memory_after - memory_before) as f64 / accepted as f64);
    sampling.store(false, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.join();
    }
    let seen = rx.seen.lock().unwrap();
    let mut lat = seen.latencies.clone();
    lat.sort_unstable();
    let unique = seen.ids.len() as u64;
    let deliver_secs = match (seen.first, seen.last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-3),
        _ => 0.0,
    };
    let report = json!({
        "ingest": {"accepted": accepted, "rejected": rejected, "seconds": ingest_secs, "per_second": accepted as f64 / ingest_secs},
        "delivery": {
            "expected": expected, "unique": unique, "requests": seen.total,
            "missing": expected.saturating_sub(unique + hanging_share),
            "duplicates": seen.total.saturating_sub(unique),
            "seconds": deliver_secs,
            "per_second": if deliver_secs > 0.0 { unique as f64 / deliver_secs } else { 0.0 },
        },
        "latency_ms": {"p50": percentile(&lat, 0.5), "p90": percentile(&lat, 0.9), "p99": percentile(&lat, 0.99), "max": percentile(&lat, 1.0), "samples": lat.len()},
        "courier_max_rss_mb": *max_rss.lock().unwrap(),
        "prefill": {"waiting": args.prefill_waiting, "bytes_per_waiting": per_waiting},
        "redis_bytes_per_event": bytes_per_event,
    });
    println!(
        "ingest     {accepted} accepted, {rejected} rejected in {ingest_secs:.1} s = {:.0} events/s",
        accepted as f64 / ingest_secs
    );
    if !args.no_delivery {
        println!(
            "delivery   {unique} of {expected} unique in {deliver_secs:.1} s = {:.0}/s; missing {}, duplicates {}",
            report["delivery"]["per_second"].as_f64().unwrap_or(0.0),
            report["delivery"]["missing"],
            report["delivery"]["duplicates"]
        );
        println!(
            "latency    p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
            lat.len()
        );
    }
    println!("courier    max RSS {:.0} MB", *max_rss.lock().unwrap());
    if let Some(b) = bytes_per_event {
        println!(
            "memory     Redis used_memory +{:.1} MB after the run = {b:.0} bytes per accepted event (its archive, indexes and deliveries as they stand)",
            (memory_after - memory_before) as f64 / 1_048_576.0
        );
    }
    println!("json {report}");
    drop(seen);
    drop(others);
    drop(courier);
    sys.block_on(server_handle.stop(false));
    let _ = server_thread.join();
    if args.target.is_none() {
        cleanup(&args.redis_url, &prefix);
    }
}

/// Removes the run's keys: on each master of a cluster (`url` lists its
/// seeds, comma-separated), as SCAN sees one node's keys only.
fn cleanup(url: &str, prefix: &str) {
    for mut conn in master_connections(url) {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}:*"))
                .arg("COUNT")
                .arg(10_000)
                .query(&mut conn)
                .unwrap_or((0, vec![]));
            if !keys.is_empty() {
                // One key per command: keys of several slots in one
                // command are refused on a cluster node.
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("UNLINK").arg(k).ignore();
                }
                let _: Result<(), _> = pipe.query(&mut conn);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// A connection to the one Redis of `url`, or to each master of the
/// cluster whose seeds it lists (from the first seed's `CLUSTER NODES`).
fn master_connections(url: &str) -> Vec<redis::Connection> {
    let connect = |u: &str| redis::Client::open(u).ok()?.get_connection().ok();
    let seeds: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if seeds.len() < 2 {
        return seeds.first().and_then(|s| connect(s)).into_iter().collect();
    }
    let Some(nodes) = seeds.iter().find_map(|s| {
        let mut c = connect(s)?;
        redis::cmd("CLUSTER")
            .arg("NODES")
            .query::<String>(&mut c)
            .ok()
    }) else {
        return Vec::new();
    };
    nodes
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let serving = f.len() > 8 && f[2].contains("master") && !f[2].contains("fail");
            let addr = f.get(1)?.split('@').next()?;
            serving.then(|| connect(&format!("redis://{addr}")))?
        })
        .collect()
}
