//! `courier serve` as a child process: started on a free port with the test
//! configuration and `COURIER__…` overrides, its output captured (a test can
//! check it never panicked, or search it), stopped with SIGTERM or SIGKILL.

use std::fs::OpenOptions;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{courier_command, free_port, ADMIN_KEY};

pub struct Courier {
    child: Child,
    pub base: String,
    /// Everything the process wrote to stdout and stderr, so a test can
    /// check it never panicked.
    output: tempfile::NamedTempFile,
}

impl Courier {
    pub async fn start(prefix: &str) -> Self {
        Self::start_with(prefix, &[]).await
    }

    /// Starts `courier serve` with further `COURIER__…` overrides.
    pub async fn start_with(prefix: &str, settings: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), prefix, settings).await
    }

    /// [`Courier::start_with`] on a given port (a replica restarted where a
    /// load balancer expects it).
    pub async fn start_on(port: u16, prefix: &str, settings: &[(&str, &str)]) -> Self {
        let output = tempfile::NamedTempFile::new().unwrap();
        let append = || OpenOptions::new().append(true).open(output.path()).unwrap();
        let child = courier_command("serve")
            .env("COURIER__REDIS__KEY_PREFIX", prefix)
            .env("COURIER__SERVER__PORT", port.to_string())
            .env("COURIER__DELIVERY__TIMEOUT_MS", "1000")
            .env("COURIER__DELIVERY__ENDPOINT_CONCURRENCY", "4")
            .env("COURIER__SERVER__SHUTDOWN_TIMEOUT_SECS", "5")
            .envs(settings.iter().copied())
            .stdout(append())
            .stderr(append())
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
        Self {
            child,
            base,
            output,
        }
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Value {
        let mut res = awc::Client::default()
            .post(format!("{}{path}", self.base))
            .insert_header(("Authorization", format!("Bearer {key}")))
            .send_json(body)
            .await
            .unwrap();
        res.json().await.unwrap()
    }

    /// What the process has written so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.output.path()).unwrap_or_default()
    }

    pub fn assert_no_panic(&self) {
        let out = self.output();
        assert!(!out.contains("panicked"), "courier panicked:\n{out}");
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.assert_no_panic();
    }

    /// SIGTERM, then waits for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < until, "courier did not stop after SIGTERM");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops with SIGTERM and checks that the process exited cleanly.
    pub async fn stop(mut self) {
        let exit = self.terminate().await;
        assert!(exit.success(), "exit status {exit:?}\n{}", self.output());
        self.assert_no_panic();
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Courier {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process, KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// A GET with `key`; (status, body as JSON or null).
    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let mut res = awc::Client::default()
            .get(format!("{}{path}", self.base))
            .insert_header(("Authorization", format!("Bearer {key}")))
            .send()
            .await
            .unwrap();
        let body = res.body().await.unwrap_or_default();
        (
            res.status().as_u16(),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }
}

/// Creates an account whose operational email goes to `contact`; returns
/// (account id, API key).
pub async fn create_account(c: &Courier, contact: &str) -> (String, String) {
    let acc = c
        .post(
            "/v1/accounts",
            ADMIN_KEY,
            &json!({"name": "A", "contact_email": contact}),
        )
        .await;
    (
        acc["account"]["id"].as_str().unwrap().to_owned(),
        acc["api_key"].as_str().unwrap().to_owned(),
    )
}

/// `courier listen` as a child process, run with no configuration at all
/// (an empty working directory and config directory), its output captured.
pub struct Listener {
    child: Child,
    pub port: u16,
    output: tempfile::NamedTempFile,
    /// The empty directory it runs in.
    _dir: tempfile::TempDir,
}

impl Listener {
    /// Starts `courier listen --port <free port>` with `args` and `env`
    /// added; waits until it accepts connections.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(free_port(), args, env)
    }

    /// The same on `port`.
    pub fn start_on(port: u16, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let output = tempfile::NamedTempFile::new().unwrap();
        let append = || OpenOptions::new().append(true).open(output.path()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["listen", "--port", &port.to_string()])
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("COURIER_CONFIG_DIR", dir.path())
            .envs(env.iter().copied())
            .stdout(append())
            .stderr(append())
            .spawn()
            .expect("courier binary starts");
        let mut listener = Self {
            child,
            port,
            output,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(exit) = listener.child.try_wait().unwrap() {
                panic!("courier listen exited {exit}:\n{}", listener.output());
            }
            assert!(
                Instant::now() < until,
                "courier listen did not come up:\n{}",
                listener.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        listener
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What it has printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.output.path()).unwrap_or_default()
    }

    /// Waits (10 s at most) until it has printed `text`; returns the output.
    pub async fn wait_for(&self, text: &str) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.output();
            if out.contains(text) || Instant::now() > until {
                return out;
            }
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
