//! The dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`; `scripts/test` installs them), driven over WebDriver
//! with fantoccini: follow a one-time link, browse every page, rotate a
//! secret, retry and replay; create a subscription through the form, see
//! its first attempt fail with the next retry time, press Retry now and see
//! the success; follow an email's dashboard link, with and without a
//! session. Every page is saved as a PNG under
//! `target/dashboard-screenshots/`, and every resource a page loaded must
//! have come from courier itself.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{delay, free_port, spawn_app_with, TestApp, ADMIN_KEY};
use crate::receiver::{Receiver, Reply};
use crate::smtp::SmtpServer;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// A chromedriver of the test's own on a free loopback port, with a
/// Chromium profile in a fresh directory; both go when it is dropped.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Self {
        for path in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver (scripts/test does)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            port,
            profile: tempfile::tempdir().unwrap(),
        };
        let status = format!("http://127.0.0.1:{port}/status");
        let until = Instant::now() + Duration::from_secs(20);
        while awc::Client::default().get(&status).send().await.is_err() {
            assert!(Instant::now() < until, "chromedriver did not answer");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    async fn browser(&self) -> Client {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-default-apps",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves the page as `<name>.png` and checks that everything it loaded
/// came from `origin`.
async fn snap(c: &Client, origin: &str, name: &str) {
    // The whole page: the window grows to the page's height for the shot.
    let (w, h) = c.get_window_size().await.unwrap();
    let extra = c
        .execute(
            "return document.documentElement.scrollHeight - window.innerHeight",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(0);
    if extra > 0 {
        c.set_window_size(w as u32, (h + extra) as u32)
            .await
            .unwrap();
    }
    let png = c.screenshot().await.expect("a screenshot");
    if extra > 0 {
        c.set_window_size(w as u32, h as u32).await.unwrap();
    }
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
    let loaded = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)",
            vec![],
        )
        .await
        .unwrap();
    for url in loaded.as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(url.starts_with(origin), "{name} loaded {url}");
    }
    let page = c.current_url().await.unwrap();
    assert!(page.as_str().starts_with(origin), "{name} is at {page}");
}

/// Fills the open subscription form for a webhook to `url` taking
/// `event_type`, submits it and waits for the page showing its secret.
async fn submit_webhook_form(c: &Client, description: &str, event_type: &str, url: &str) {
    c.find(Locator::Css("input[name='description']"))
        .await
        .unwrap()
        .send_keys(description)
        .await
        .unwrap();
    c.find(Locator::Css(&format!("input[value='{event_type}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("input[name='url']"))
        .await
        .unwrap()
        .send_keys(url)
        .await
        .unwrap();
    c.find(Locator::Css("form.editor button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !c.source().await.unwrap().contains("whsec_") {
        assert!(Instant::now() < until, "no secret shown");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the browser is at `path` (a click that submits a form
/// returns before the navigation it starts has finished).
async fn wait_for_path(c: &Client, path: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let at = c.current_url().await.unwrap();
        let ready = c
            .execute("return document.readyState", vec![])
            .await
            .unwrap();
        if at.path() == path && ready == "complete" {
            return;
        }
        assert!(Instant::now() < until, "still at {at}, not {path}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A customer's account with a webhook subscription to `rx` whose first
/// attempt fails, and two delivered events; returns (key, event id).
async fn busy_account(app: &TestApp, rx: &Receiver) -> (String, String) {
    let (account, key) = app.create_account().await;
    rx.script("/hooks/billing", vec![Reply::status(500)]);
    rx.default_reply("/hooks/billing", Reply::status(200));
    let (billing, _) = app
        .subscribe(
            &key,
            &rx.url("/hooks/billing"),
            &["customer.created", "meter.created"],
            json!({"description": "billing sync"}),
        )
        .await;
    app.subscribe(
        &key,
        &rx.url("/hooks/meters"),
        &["meter_data.received"],
        json!({"description": "meter data pipeline"}),
    )
    .await;
    rx.default_reply("/hooks/meters", Reply::status(200));
    let r = app
        .post(
            "/v1/events",
            Some(ADMIN_KEY),
            &json!({"type": "meter.created", "account_id": account,
                    "payload": {"meter_id": "mtr_123", "customer_id": "cus_42"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = app
        .post(
            "/v1/events",
            Some(ADMIN_KEY),
            &json!({"type": "customer.created", "account_id": account,
                    "payload": {"customer_id": "cus_42", "name": "<b>Jane</b> Doe",
                                "email": "jane@example.com"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let event = r.body["id"].as_str().unwrap().to_owned();
    // One of the two first attempts fails (whichever reaches the receiver
    // first), its retry succeeds.
    app.poll_until(
        &format!("/v1/subscriptions/{billing}/deliveries"),
        &key,
        Duration::from_secs(10),
        |b| {
            b["data"]
                .as_array()
                .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["status"] == "succeeded"))
        },
    )
    .await;
    (key, event)
}

#[actix_web::test]
async fn a_browser_signs_in_with_a_link_browses_and_replays_an_event() {
    if crate::helpers::cluster() {
        // Browser, not storage: once (on the single Redis) is enough.
        return;
    }
    let rx = Receiver::start().await;
    let app = spawn_app_with(|_| {}).await;
    let origin = app.address.clone();
    let (key, event) = busy_account(&app, &rx).await;
    let r = app
        .post(
            "/v1/dashboard/links",
            Some(&key),
            &json!({"scope": "manage"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let link = r.body["url"].as_str().unwrap();
    let link = format!("{origin}{}", &link[link.find("/dashboard/").unwrap()..]);

    let driver = Driver::start().await;
    let c = driver.browser().await;
    c.goto(&link).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/dashboard");
    let source = c.source().await.unwrap();
    assert!(source.contains("billing sync"), "{source}");
    assert!(source.contains("meter data pipeline"));
    snap(&c, &origin, "overview").await;

    c.find(Locator::LinkText("billing sync"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(c.source().await.unwrap().contains("succeeded"));
    snap(&c, &origin, "subscription").await;
    // Rotating the signing secret shows the new one, once.
    let sub_path = c.current_url().await.unwrap().path().to_owned();
    c.find(Locator::Css("form[action$='/secret'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !c.source().await.unwrap().contains("whsec_") {
        assert!(Instant::now() < until, "no new secret shown");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    snap(&c, &origin, "secret-rotated").await;
    c.goto(&format!("{origin}{sub_path}")).await.unwrap();
    assert!(!c.source().await.unwrap().contains("whsec_"));

    // The delivery that took two attempts.
    c.find(Locator::XPath("//tr[td[4][text()='2']]/td[1]/a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let source = c.source().await.unwrap();
    assert!(source.contains("Attempts"), "{source}");
    assert!(source.contains("500"), "{source}");
    snap(&c, &origin, "delivery").await;
    // "Retry now" sends it once more: a third attempt appears.
    let delivery_path = c.current_url().await.unwrap().path().to_owned();
    c.find(Locator::Css("form[action$='/retry'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        c.goto(&format!("{origin}{delivery_path}")).await.unwrap();
        if c.source().await.unwrap().matches("<li>").count() == 3 {
            break;
        }
        assert!(Instant::now() < until, "no third attempt");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    snap(&c, &origin, "delivery-retried").await;

    c.goto(&format!("{origin}/dashboard/events")).await.unwrap();
    snap(&c, &origin, "events").await;
    c.goto(&format!("{origin}/dashboard/events/{event}"))
        .await
        .unwrap();
    let source = c.source().await.unwrap();
    assert!(source.contains("&lt;b&gt;Jane&lt;/b&gt; Doe"), "{source}");
    assert_eq!(source.matches("status-succeeded").count(), 1, "{source}");
    snap(&c, &origin, "event").await;

    c.find(Locator::Css("form[action$='/replay'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Back on the event page, which now lists the replay.
    let until = Instant::now() + Duration::from_secs(10);
    while !c.source().await.unwrap().contains(">replay<") {
        assert!(Instant::now() < until, "the replay is not listed");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_path(&c, &format!("/dashboard/events/{event}")).await;
    // The replay is delivered; reloading shows it.
    rx.wait_for("/hooks/billing", 4, Duration::from_secs(10))
        .await;
    app.poll_until(
        &format!("/v1/events/{event}"),
        &key,
        Duration::from_secs(10),
        |b| {
            b["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().all(|d| d["status"] == "succeeded"))
        },
    )
    .await;
    c.refresh().await.unwrap();
    assert_eq!(
        c.source()
            .await
            .unwrap()
            .matches("status-succeeded")
            .count(),
        2
    );
    snap(&c, &origin, "event-replayed").await;

    // A new webhook subscription through the form: its secret is shown.
    c.goto(&format!("{origin}/dashboard/subscriptions/new"))
        .await
        .unwrap();
    snap(&c, &origin, "new-subscription").await;
    submit_webhook_form(
        &c,
        "audit log",
        "hosted_consent.revoked",
        &rx.url("/hooks/audit"),
    )
    .await;
    snap(&c, &origin, "secret").await;
    let subs = app.get("/v1/subscriptions", Some(&key)).await;
    assert!(subs.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["description"] == "audit log"
            && s["event_types"] == json!(["hosted_consent.revoked"])));

    c.goto(&format!("{origin}/dashboard/event-types"))
        .await
        .unwrap();
    snap(&c, &origin, "event-types").await;
    c.goto(&format!("{origin}/dashboard/notices"))
        .await
        .unwrap();
    snap(&c, &origin, "notices").await;

    // A phone-sized window.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{origin}/dashboard")).await.unwrap();
    snap(&c, &origin, "overview-phone").await;
    c.goto(&format!("{origin}/dashboard/events/{event}"))
        .await
        .unwrap();
    snap(&c, &origin, "event-phone").await;

    // Sign out ends the session: the overview sends the browser to sign-in.
    c.set_window_size(1280, 900).await.unwrap();
    c.find(Locator::Css("form[action='/dashboard/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&c, "/dashboard/login").await;
    snap(&c, &origin, "login").await;
    c.goto(&link).await.unwrap();
    assert!(c.source().await.unwrap().contains("no longer works"));

    // An operator signs in with an admin key and sees the queues.
    c.goto(&format!("{origin}/dashboard/login")).await.unwrap();
    c.find(Locator::Id("api_key"))
        .await
        .unwrap()
        .send_keys(ADMIN_KEY)
        .await
        .unwrap();
    c.find(Locator::Css("form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&c, "/dashboard/operator").await;
    assert!(c.source().await.unwrap().contains("Queues"));
    snap(&c, &origin, "operator").await;
    c.close().await.unwrap();
}

/// Waits until the page at `path` (reloaded) holds `text`.
async fn reload_until(c: &Client, origin: &str, path: &str, text: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        c.goto(&format!("{origin}{path}")).await.unwrap();
        let source = c.source().await.unwrap();
        if source.contains(text) {
            return source;
        }
        assert!(
            Instant::now() < until,
            "{path} never showed {text:?}: {source}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_failed_attempt_is_retried_from_the_browser_and_an_emails_link_opens_its_event() {
    if crate::helpers::cluster() {
        // Browser, not storage: once (on the single Redis) is enough.
        return;
    }
    let rx = Receiver::start().await;
    let smtp = SmtpServer::start();
    let smtp_url = smtp.url();
    // The retry is an hour away: the failed attempt waits for the button.
    let app = spawn_app_with(move |s| {
        s.delivery.retry_schedule = vec![delay("1h")];
        s.smtp.url = smtp_url.into();
    })
    .await;
    let origin = app.address.clone();
    let (account, key) = app.create_account().await;
    rx.script("/hooks/orders", vec![Reply::status(500)]);
    rx.default_reply("/hooks/orders", Reply::status(200));
    let r = app
        .post(
            "/v1/dashboard/links",
            Some(&key),
            &json!({"scope": "manage"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let link = r.body["url"].as_str().unwrap();
    let link = format!("{origin}{}", &link[link.find("/dashboard/").unwrap()..]);

    let driver = Driver::start().await;
    let c = driver.browser().await;
    c.goto(&link).await.unwrap();
    wait_for_path(&c, "/dashboard").await;

    // A webhook subscription through the form.
    c.goto(&format!("{origin}/dashboard/subscriptions/new"))
        .await
        .unwrap();
    submit_webhook_form(
        &c,
        "order sync",
        "customer.created",
        &rx.url("/hooks/orders"),
    )
    .await;

    // The platform publishes an event; the endpoint fails the first try.
    let r = app.ingest(&account, "cus_7").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let event = r.body["id"].as_str().unwrap().to_owned();
    rx.wait_for("/hooks/orders", 1, Duration::from_secs(10))
        .await;
    let detail = app
        .poll_until(
            &format!("/v1/events/{event}"),
            &key,
            Duration::from_secs(10),
            |b| b["deliveries"][0]["attempts"] == 1,
        )
        .await;
    let delivery = detail["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/dashboard/deliveries/{delivery}");
    let source = reload_until(&c, &origin, &path, "Next attempt").await;
    assert!(source.contains("status-pending"), "{source}");
    assert!(
        source.contains("500"),
        "the failed attempt's status: {source}"
    );
    snap(&c, &origin, "delivery-failed").await;

    // Retry now: the second attempt succeeds at once, not an hour later.
    c.find(Locator::Css("form[action$='/retry'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let source = reload_until(&c, &origin, &path, "status-succeeded").await;
    assert_eq!(source.matches("<li>").count(), 2, "two attempts: {source}");
    assert_eq!(rx.received("/hooks/orders").len(), 2);
    snap(&c, &origin, "delivery-succeeded").await;

    // An email subscription; its message links to the event's page.
    let r = app
        .post(
            "/v1/subscriptions",
            Some(&key),
            &json!({"event_types": ["hosted_consent.revoked"],
                    "channel": {"type": "email", "address": "dev@acme.example"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app
        .post(
            "/v1/events",
            Some(ADMIN_KEY),
            &json!({"type": "hosted_consent.revoked", "account_id": account,
                    "payload": {"consent_id": "cons_9", "customer_id": "cus_7"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let revoked = r.body["id"].as_str().unwrap().to_owned();
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    let text = &mails[0].text;
    let at = text.find("/dashboard/events/").expect("a dashboard link");
    let link_path: String = text[at..]
        .chars()
        .take_while(|ch| !ch.is_whitespace() && *ch != '>' && *ch != ')')
        .collect();
    assert_eq!(link_path, format!("/dashboard/events/{revoked}"));
    // The link's host is `server.public_base_url`; this courier is on a
    // random port.
    c.goto(&format!("{origin}{link_path}")).await.unwrap();
    let source = c.source().await.unwrap();
    assert!(source.contains("cons_9"), "{source}");
    snap(&c, &origin, "email-link").await;

    // Followed without a session, it asks for the key and then opens the
    // same page.
    c.find(Locator::Css("form[action='/dashboard/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&c, "/dashboard/login").await;
    c.goto(&format!("{origin}{link_path}")).await.unwrap();
    wait_for_path(&c, "/dashboard/login").await;
    c.find(Locator::Id("api_key"))
        .await
        .unwrap()
        .send_keys(&key)
        .await
        .unwrap();
    c.find(Locator::Css("form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&c, &link_path).await;
    assert!(c.source().await.unwrap().contains("cons_9"));
    c.close().await.unwrap();
}
