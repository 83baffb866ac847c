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
use courier::settings::{PositiveDuration, Settings};
use courier::startup::Application;

pub const ADMIN_KEY: &str = "test-admin-key";

/// The Redis the tests share (each test under its own prefix).
pub fn redis_url() -> String {
    std::env::var("COURIER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether the tests run on a Redis Cluster (`COURIER_TEST_REDIS_URL` lists
/// several seed nodes, comma-separated, as `redis.url` does).
pub fn cluster() -> bool {
    seeds(&redis_url()).len() > 1
}

fn seeds(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A blocking connection to the Redis at `url` (one URL, or the seed nodes
/// of a cluster: then a cluster connection that routes each command by its
/// key's slot and follows MOVED/ASK). Multi-key commands and pipelines sent
/// through it must stay in one slot.
pub enum SyncConn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

pub fn redis_connection(url: &str) -> SyncConn {
    let seeds = seeds(url);
    if seeds.len() > 1 {
        let client = redis::cluster::ClusterClient::new(seeds).expect("valid cluster seeds");
        SyncConn::Cluster(Box::new(
            client.get_connection().expect("the cluster is reachable"),
        ))
    } else {
        let client = redis::Client::open(seeds[0].as_str()).expect("a valid Redis URL");
        SyncConn::Single(client.get_connection().expect("redis is reachable"))
    }
}

impl SyncConn {
    fn inner(&mut self) -> &mut dyn redis::ConnectionLike {
        match self {
            SyncConn::Single(c) => c,
            SyncConn::Cluster(c) => c.as_mut(),
        }
    }

    fn inner_ref(&self) -> &dyn redis::ConnectionLike {
        match self {
            SyncConn::Single(c) => c,
            SyncConn::Cluster(c) => c.as_ref(),
        }
    }
}

impl redis::ConnectionLike for SyncConn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<redis::Value> {
        self.inner().req_packed_command(cmd)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<redis::Value>> {
        self.inner().req_packed_commands(cmd, offset, count)
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
        self.inner().req_command(cmd)
    }

    fn get_db(&self) -> i64 {
        self.inner_ref().get_db()
    }

    fn supports_pipelining(&self) -> bool {
        self.inner_ref().supports_pipelining()
    }

    fn check_connection(&mut self) -> bool {
        self.inner().check_connection()
    }

    fn is_open(&self) -> bool {
        self.inner_ref().is_open()
    }
}

/// One plain connection per master of the Redis at `url` (just the one for
/// a single Redis): for commands that act on one node's keys only (KEYS,
/// SCAN), which a cluster must be asked node by node.
pub fn master_connections(url: &str) -> Vec<redis::Connection> {
    let seeds = seeds(url);
    let connect = |u: &str| {
        redis::Client::open(u)
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()
    };
    if seeds.len() == 1 {
        return connect(&seeds[0]).into_iter().collect();
    }
    // Ask the first seed that answers for the masters that serve slots.
    let Some(nodes) = seeds.iter().find_map(|s| {
        let mut c = connect(s)?;
        redis::cmd("CLUSTER")
            .arg("NODES")
            .query::<String>(&mut c)
            .ok()
    }) else {
        return Vec::new();
    };
    cluster_masters(&nodes)
        .iter()
        .filter_map(|addr| connect(&format!("redis://{addr}")))
        .collect()
}

/// `host:port` of every healthy master with slots in a `CLUSTER NODES` reply.
pub fn cluster_masters(nodes: &str) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = f.get(2)?;
            let serving = f.len() > 8;
            (flags.contains("master") && !flags.contains("fail") && serving)
                .then(|| f[1].split('@').next().unwrap_or(f[1]).to_owned())
        })
        .collect()
}

/// Keys matching `pattern` on every master of the Redis at `url`.
pub fn keys_matching(url: &str, pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    for mut conn in master_connections(url) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut conn)
            .unwrap_or_default();
        out.extend(keys);
    }
    out
}

/// Deletes every key under `prefix` on every master (one key per command,
/// so nothing crosses a slot).
fn delete_prefix(url: &str, prefix: &str) {
    for mut conn in master_connections(url) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query(&mut conn)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("UNLINK").arg(k).ignore();
            }
            let _: Result<(), _> = pipe.query(&mut conn);
        }
    }
}

/// A delay of `delivery.retry_schedule`, e.g. `delay("50ms")`.
pub fn delay(text: &str) -> PositiveDuration {
    text.parse().expect("a valid delay")
}

/// A value of a `_ms` key.
pub fn millis(ms: u64) -> PositiveDuration {
    PositiveDuration::from_millis(ms).expect("a positive duration")
}

pub fn test_settings() -> Settings {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut s = Settings::load_from(&dir, "test").expect("test configuration loads");
    s.redis.url = redis_url().into();
    s.redis.key_prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    s
}

/// A store on `settings`' Redis, for tests that drive the scripts directly.
pub async fn connect_store(settings: &Settings) -> courier::store::Store {
    let target = courier::store::RedisTarget::from_settings(&settings.redis).unwrap();
    courier::store::Store::connect(settings, &target)
        .await
        .expect("redis is reachable")
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
        let mut conn = redis_connection(&self.redis_url);
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

    /// The value of one sample of `GET /metrics`, e.g.
    /// `courier_deliveries_finished_total{outcome="dropped"}` (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        let r = self.get("/metrics", None).await;
        assert_eq!(r.status, 200);
        String::from_utf8_lossy(&r.raw)
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| {
                v.trim().parse().expect("a sample value is a number")
            })
    }

    /// Keys under this test's prefix (from every master of a cluster).
    pub fn redis_keys(&self) -> Vec<String> {
        keys_matching(&self.redis_url, &format!("{}:*", self.prefix))
    }

    /// A blocking connection to this courier's Redis (see [`redis_connection`]).
    pub fn redis(&self) -> SyncConn {
        redis_connection(&self.redis_url)
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
        delete_prefix(&self.redis_url, &self.prefix);
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

/// A redis-server of the test's own, for tests that stop Redis or need TLS.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Serves TLS only (the plain port is off), with a certificate for
    /// 127.0.0.1 signed by a throwaway CA (`ca.pem` in `dir`).
    tls: bool,
    /// Keeps an append-only file in `dir`, fsynced once a second (as in
    /// production), which a restart reloads; otherwise nothing is persisted.
    aof: bool,
}

impl PrivateRedis {
    pub fn start() -> Self {
        Self::start_with(false, false)
    }

    /// A Redis that speaks only TLS; clients must trust [`Self::ca_file`].
    pub fn start_tls() -> Self {
        Self::start_with(true, false)
    }

    /// A Redis with `appendonly yes` and `appendfsync everysec`: after
    /// [`Self::kill`] and [`Self::restart`] it holds what reached its AOF.
    pub fn start_with_aof() -> Self {
        Self::start_with(false, true)
    }

    fn start_with(tls: bool, aof: bool) -> Self {
        let mut r = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
            tls,
            aof,
        };
        if tls {
            make_test_certificates(r.dir.path());
        }
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA that signed a TLS Redis's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// (Re)starts the server on the same port and directory and waits until
    /// it answers (with an AOF: until it has loaded it).
    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        if self.tls {
            let file = |name: &str| self.dir.path().join(name);
            cmd.args([
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(file("server.pem"))
            .arg("--tls-key-file")
            .arg(file("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(file("ca.pem"));
        } else {
            cmd.args(["--port", &port]);
        }
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.answers_ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private redis-server did not come up on port {}", self.port);
    }

    fn answers_ping(&self) -> bool {
        if self.tls {
            // redis-cli checks the certificate against the CA as a client would.
            let out = Command::new("redis-cli")
                .args(["--tls", "-p", &self.port.to_string(), "--cacert"])
                .arg(self.ca_file())
                .arg("ping")
                .stderr(Stdio::null())
                .output();
            return out.is_ok_and(|o| o.stdout.starts_with(b"PONG"));
        }
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        client
            .get_connection_with_timeout(Duration::from_millis(200))
            .is_ok_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Writes a throwaway CA (`ca.pem`) and a server certificate for 127.0.0.1
/// signed by it (`server.pem`, `server.key`) into `dir`, with openssl
/// (scripts/test installs it).
fn make_test_certificates(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=courier test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
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

/// `courier <subcommand>` as a child process with the test configuration;
/// add `COURIER__…` overrides with `.env`.
pub fn courier_command(subcommand: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_courier"));
    cmd.arg(subcommand)
        .env("COURIER_ENV", "test")
        .env(
            "COURIER_CONFIG_DIR",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
        )
        .env("COURIER__REDIS__URL", redis_url());
    cmd
}

/// Deletes every key under `prefix` (for tests that run courier as a
/// separate process).
pub fn cleanup_prefix(prefix: &str) {
    delete_prefix(&redis_url(), prefix);
}
