//! Configuration that cannot work stops courier before it starts:
//! `courier check-config` runs every check `courier serve` runs, and both
//! exit with status 2 and a message naming the key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::courier_command;

/// Runs `cmd` to its end (at most `limit`; killed and reported otherwise).
fn run(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("courier binary starts");
    let until = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "courier still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn check_config(env: &[(&str, &str)]) -> Output {
    let mut cmd = courier_command("check-config");
    cmd.envs(env.iter().copied());
    run(cmd, Duration::from_secs(30))
}

/// Asserts a refusal: exit status 2 and `key` named on stderr.
fn assert_refused(out: &Output, key: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
    assert!(
        stderr.contains(&format!("`{key}`")),
        "the message does not name `{key}`: {stderr}"
    );
}

#[test]
fn check_config_accepts_the_shipped_test_configuration() {
    let out = check_config(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn check_config_refuses_values_that_cannot_work_naming_the_key() {
    for (var, value, key) in [
        // Every delivery would be handed back forever.
        ("DELIVERY__ENDPOINT_QUEUE", "0", "delivery.endpoint_queue"),
        // Was silently raised to 1.
        ("DELIVERY__MAX_CONNECTIONS", "0", "delivery.max_connections"),
        ("DELIVERY__CLAIM_BATCH", "0", "delivery.claim_batch"),
        // One claim script's ZREM/ZADD would exceed Lua's argument stack.
        ("DELIVERY__CLAIM_BATCH", "2001", "delivery.claim_batch"),
        // Renewals every quarter of a lease under 2 s, or a dead replica's
        // deliveries held for more than five minutes.
        ("DELIVERY__LEASE_SECS", "1", "delivery.lease_secs"),
        ("DELIVERY__LEASE_SECS", "301", "delivery.lease_secs"),
        ("DELIVERY__INDEX_TRIM_SECS", "0", "delivery.index_trim_secs"),
        ("DASHBOARD__STATS_FLUSH_MS", "0", "dashboard.stats_flush_ms"),
        ("DELIVERY__TIMEOUT_MS", "0", "delivery.timeout_ms"),
        ("REDIS__CONNECT_TIMEOUT_MS", "0", "redis.connect_timeout_ms"),
        (
            "LIMITS__MAX_EVENT_TYPES_PER_SUBSCRIPTION",
            "0",
            "limits.max_event_types_per_subscription",
        ),
        ("SMTP__MAX_CONNECTIONS", "0", "smtp.max_connections"),
        ("EVENTS__RETENTION_DAYS", "0", "events.retention_days"),
    ] {
        let out = check_config(&[(&format!("COURIER__{var}"), value)]);
        assert_refused(&out, key);
    }
}

#[test]
fn check_config_refuses_redis_tls_settings_that_cannot_work() {
    let out = check_config(&[
        ("COURIER__REDIS__URL", "rediss://127.0.0.1:6379"),
        ("COURIER__REDIS__TLS_CA_FILE", "/nonexistent/ca.pem"),
    ]);
    assert_refused(&out, "redis.tls_ca_file");
    // A CA for a connection without TLS would silently do nothing.
    let ca = tempfile::NamedTempFile::new().unwrap();
    let out = check_config(&[
        ("COURIER__REDIS__URL", "redis://127.0.0.1:6379"),
        ("COURIER__REDIS__TLS_CA_FILE", ca.path().to_str().unwrap()),
    ]);
    assert_refused(&out, "redis.tls_ca_file");
    // A file that holds no certificate.
    let out = check_config(&[
        ("COURIER__REDIS__URL", "rediss://127.0.0.1:6379"),
        ("COURIER__REDIS__TLS_CA_FILE", ca.path().to_str().unwrap()),
    ]);
    assert_refused(&out, "redis.tls_ca_file");
}

/// A copy of the shipped configuration with `extra` appended to test.toml.
fn config_dir_with(extra: &str) -> tempfile::TempDir {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let dir = tempfile::tempdir().unwrap();
    for name in ["default.toml", "test.toml"] {
        std::fs::copy(shipped.join(name), dir.path().join(name)).unwrap();
    }
    let test = dir.path().join("test.toml");
    let mut text = std::fs::read_to_string(&test).unwrap();
    text.push_str(extra);
    std::fs::write(&test, text).unwrap();
    dir
}

fn with_config_dir(mut cmd: Command, dir: &Path) -> Command {
    cmd.env("COURIER_CONFIG_DIR", dir);
    cmd
}

#[test]
fn check_config_builds_the_event_catalogue_like_serve() {
    let dir = config_dir_with(
        "\n[[events.extra_types]]\nname = \"invoice.paid\"\ndescription = \"An invoice was paid.\"\nschema = '{not json'\n",
    );
    let out = run(
        with_config_dir(courier_command("check-config"), dir.path()),
        Duration::from_secs(30),
    );
    assert_refused(&out, "events.extra_types");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invoice.paid"));
}

#[test]
fn serve_refuses_what_check_config_refuses_before_it_listens() {
    let mut cmd = courier_command("serve");
    cmd.env("COURIER__DELIVERY__ENDPOINT_QUEUE", "0");
    assert_refused(
        &run(cmd, Duration::from_secs(20)),
        "delivery.endpoint_queue",
    );

    let dir = config_dir_with(
        "\n[[events.extra_types]]\nname = \"invoice.paid\"\ndescription = \"An invoice was paid.\"\nschema = '{not json'\n",
    );
    let out = run(
        with_config_dir(courier_command("serve"), dir.path()),
        Duration::from_secs(20),
    );
    assert_refused(&out, "events.extra_types");
}

#[test]
fn production_refuses_what_cannot_be_right_and_warns_about_what_is_probably_wrong() {
    let out = check_config(&[("COURIER_ENV", "production")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "auth.admin_keys",
        "auth.encryption_keys",
        "server.public_base_url",
        "smtp.from",
    ] {
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{key} is not named: {stderr}"
        );
    }

    let out = check_config(&[
        ("COURIER_ENV", "production"),
        ("COURIER__AUTH__ADMIN_KEYS", "an-admin-key"),
        (
            "COURIER__AUTH__ENCRYPTION_KEYS",
            "Vv6Lk8L+Tz2VHcPpy0fIrx3v8mGSTkG3jXGLfKz6zRM=",
        ),
        (
            "COURIER__SERVER__PUBLIC_BASE_URL",
            "https://webhooks.platform.example",
        ),
        ("COURIER__SMTP__URL", "smtps://u:p@mail.platform.example"),
        (
            "COURIER__SMTP__FROM",
            "Platform <notifications@platform.example>",
        ),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
    // The test Redis is on this machine: a warning, not a refusal.
    assert!(stderr.contains("warning: `redis.url`"), "{stderr}");
    assert!(!stderr.contains("smtp.url"), "{stderr}");
}
