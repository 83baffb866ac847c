//! Test harness: a courier on a random port with its own Redis key prefix,
//! typed request helpers, and a private redis-server for outage tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use awc::http::StatusCode;
use serde_json::{json, Value};

use courier::clock::Clock;
use courier::delivery::engine::EngineCtx;
use courier::settings::Settings;
use courier::startup::Application;

pub const ADMIN_KEY: &str = "test-admin-key";

/// The Redis the tests share (each test under its own prefix).
pub fn redis_url() -> String {
    std::env::var("COURIER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn test_settings() -> Settings {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut s = Settings::load_from(&dir, "test").expect("test configuration loads");
    s.redis.url = redis_url().into();
    s.redis.key_prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    s
}

/// A running courier.
pub struct TestApp {
    pub address: String,
    pub prefix: String,
    pub redis_url: String,
    pub client: awc::Client,
    /// The time this courier runs on (tests move it).
    pub clock: Clock,
    /// Its delivery engine, to look at what it holds.
    pub engine: Option<std::sync::Arc<EngineCtx>>,
    handle: ServerHandle,
    /// Leave the Redis keys in place when dropped.
    keep_data: bool,
}

/// A JSON response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Reply {
    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    change(&mut settings);
    let prefix = settings.redis.key_prefix.clone();
    let redis_url = secrecy::ExposeSecret::expose_secret(&settings.redis.url).to_owned();
    let clock = Clock::default();
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("application builds");
    let engine = app.engine().map(|e| e.context().clone());
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        prefix,
        redis_url,
        client: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
        handle,
        clock,
        engine,
        keep_data: false,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn send(
        &self,
        mut req: awc::ClientRequest,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        if let Some(k) = key {
            req = req.insert_header(("Authorization", format!("Bearer {k}")));
        }
        let mut res = match body {
            Some(b) => req.content_type("application/json").send_body(b).await,
            None => req.send().await,
        }
        .expect("request reaches courier");
        let raw = res
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .expect("body arrives")
            .to_vec();
        Reply {
            status: res.status(),
            headers: res.headers().clone(),
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.send(self.client.get(self.url(path)), key, None).await
    }

    /// A request with any method and no body.
    pub async fn send_method(
        &self,
        method: awc::http::Method,
        path: &str,
        key: Option<&str>,
    ) -> Reply {
        self.send(self.client.request(method, self.url(path)), key, None)
            .await
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> Reply {
        self.send(self.client.delete(self.url(path)), key, None)
            .await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.post_raw(path, key, serde_json::to_vec(body).unwrap())
            .await
    }

    pub async fn post_raw(&self, path: &str, key: Option<&str>, body: Vec<u8>) -> Reply {
        self.send(self.client.post(self.url(path)), key, Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.send(
            self.client.patch(self.url(path)),
            key,
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    /// Creates an account; returns (account id, API key).
    pub async fn create_account(&self) -> (String, String) {
        let r = self
            .post(
                "/v1/accounts",
                Some(ADMIN_KEY),
                &json!({"name": "Acme Energy", "contact_email": "ops@acme.example"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        (
            r.body["account"]["id"].as_str().unwrap().to_owned(),
            r.body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Ingests a valid `customer.created` event; returns the reply.
    pub async fn ingest(&self, account: &str, customer: &str) -> Reply {
        self.post(
            "/v1/events",
            Some(ADMIN_KEY),
            &json!({"type": "customer.created", "account_id": account, "payload": {"customer_id": customer}}),
        )
        .await
    }

    pub async fn create_webhook(&self, key: &str, types: &[&str]) -> Reply {
        let r = self
            .post(
                "/v1/subscriptions",
                Some(key),
                &json!({"event_types": types, "channel": {"type": "webhook", "url": "https://hooks.example.com/in"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r
    }

    /// Every key under this test's prefix with its value as text (hashes
    /// and sets sorted; expiries left out), to compare Redis before and
    /// after something that must change nothing.
    pub fn redis_snapshot(&self) -> std::collections::BTreeMap<String, String> {
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let mut out = std::collections::BTreeMap::new();
        for key in self.redis_keys() {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
            let value = match kind.as_str() {
                "string" => redis::cmd("GET").arg(&key).query::<String>(&mut conn),
                "hash" => redis::cmd("HGETALL")
                    .arg(&key)
                    .query::<std::collections::BTreeMap<String, String>>(&mut conn)
                    .map(|h| format!("{h:?}")),
                "set" => redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query::<std::collections::BTreeSet<String>>(&mut conn)
                    .map(|m| format!("{m:?}")),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query::<Vec<String>>(&mut conn)
                    .map(|m| format!("{m:?}")),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query::<Vec<String>>(&mut conn)
                    .map(|m| format!("{m:?}")),
                other => Ok(other.to_owned()),
            };
            if let Ok(v) = value {
                out.insert(key, format!("{kind} {v}"));
            }
        }
        out
    }

    /// Creates accounts until one lands in `shard` (`same`) or in any other
    /// shard (`!same`); returns (account id, API key).
    pub async fn create_account_in_shard(&self, shard: u16, same: bool) -> (String, String) {
        let keys = courier::store::Keys::new(self.prefix.clone(), test_settings().redis.shards);
        for _ in 0..500 {
            let (id, key) = self.create_account().await;
            let here = keys.shard_of(&uuid::Uuid::parse_str(&id).unwrap()) == shard;
            if here == same {
                return (id, key);
            }
        }
        panic!("no account landed where wanted after 500 tries");
    }

    /// The shard of an account.
    pub fn shard_of(&self, account: &str) -> u16 {
        courier::store::Keys::new(self.prefix.clone(), test_settings().redis.shards)
            .shard_of(&uuid::Uuid::parse_str(account).unwrap())
    }

    /// Keys under this test's prefix.
    pub fn redis_keys(&self) -> Vec<String> {
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut conn = client.get_connection().unwrap();
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut conn)
            .unwrap()
    }
}

impl TestApp {
    /// Stops this courier like a restart would: its data stays in Redis for
    /// the next one with the same prefix.
    pub fn stop_keeping_data(mut self) {
        self.keep_data = true;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if self.keep_data {
            return;
        }
        // Best effort: leave the shared Redis as we found it.
        if let Ok(client) = redis::Client::open(self.redis_url.as_str()) {
            if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}:*", self.prefix))
                    .query(&mut conn)
                    .unwrap_or_default();
                for chunk in keys.chunks(500) {
                    let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
                }
            }
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of the test's own, for tests that stop Redis.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200)) {
                    if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private redis-server did not come up on port {}", self.port);
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

impl TestApp {
    /// Creates a webhook subscription to `url`; returns (id, secret).
    pub async fn subscribe(
        &self,
        key: &str,
        url: &str,
        types: &[&str],
        extra: Value,
    ) -> (String, String) {
        let mut body = json!({"event_types": types, "channel": {"type": "webhook", "url": url}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self.post("/v1/subscriptions", Some(key), &body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["secret"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Polls `GET path` until `done` holds for the body (at most `limit`).
    pub async fn poll_until(
        &self,
        path: &str,
        key: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let until = Instant::now() + limit;
        loop {
            let r = self.get(path, Some(key)).await;
            if done(&r.body) || Instant::now() > until {
                return r.body;
            }
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Deletes every key under `prefix` (for tests that run courier as a
/// separate process).
pub fn cleanup_prefix(prefix: &str) {
    if let Ok(client) = redis::Client::open(redis_url()) {
        if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query(&mut conn)
                .unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        }
    }
}
