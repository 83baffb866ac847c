//! The dashboard's handlers over HTTP, as a browser without JavaScript
//! uses them: sign-in with the key or a one-time link, sessions and
//! sign-out, scopes and CSRF, escaping, other accounts' ids, and the
//! security headers.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{spawn_app_with, TestApp, ADMIN_KEY};

/// A cookie-keeping browser that does not follow redirects.
pub struct Browser<'a> {
    app: &'a TestApp,
    client: awc::Client,
    /// The `courier_session` cookie's value, once signed in.
    pub session: Option<String>,
}

/// A page as the browser got it.
pub struct Page {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let start = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body))
            + r#"name="csrf" value=""#.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }

    /// The value `Set-Cookie` gives `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<(String, String)> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                let value = c.strip_prefix(&format!("{name}="))?;
                let (v, attrs) = value.split_once(';').unwrap_or((value, ""));
                Some((v.to_owned(), attrs.to_owned()))
            })
    }
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: awc::Client::builder()
                .disable_redirects()
                .timeout(Duration::from_secs(30))
                .finish(),
            session: None,
        }
    }

    async fn send(&mut self, req: awc::ClientRequest, form: Option<&[(&str, &str)]>) -> Page {
        let req = match &self.session {
            Some(s) => req.insert_header(("Cookie", format!("courier_session={s}"))),
            None => req,
        };
        let mut res = match form {
            Some(f) => req.send_form(&f),
            None => req.send(),
        }
        .await
        .expect("request reaches courier");
        let body = res.body().limit(16 << 20).await.expect("body arrives");
        let page = Page {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        if let Some((v, _)) = page.set_cookie("courier_session") {
            self.session = (!v.is_empty()).then_some(v);
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(self.app.url(path));
        self.send(req, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.client.post(self.app.url(path));
        self.send(req, Some(form)).await
    }

    /// Follows a one-time link (a URL as `POST /v1/dashboard/links` gave it).
    pub async fn follow(&mut self, url: &str) -> Page {
        let path = url.strip_prefix("http://127.0.0.1:8080").unwrap_or(url);
        let path = &path[path.find("/dashboard").expect("a dashboard URL")..];
        self.get(path).await
    }

    /// Signs in with an API key through the form.
    pub async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/dashboard/login").await;
        let (login, _) = form.set_cookie("courier_login").expect("a login cookie");
        let csrf = form.csrf();
        let req = self
            .client
            .post(self.app.url("/dashboard/login"))
            .insert_header(("Cookie", format!("courier_login={login}")));
        self.send(req, Some(&[("api_key", key), ("csrf", &csrf)]))
            .await
    }
}

async fn spawn() -> TestApp {
    // No engine: deliveries stay pending and nothing leaves the machine.
    spawn_app_with(|s| s.delivery.enabled = false).await
}

/// `POST /v1/dashboard/links` as `key`.
async fn make_link(app: &TestApp, key: &str, body: Value) -> crate::helpers::Reply {
    app.post("/v1/dashboard/links", Some(key), &body).await
}

/// A one-time link's URL for the account of `key`.
async fn link_for(app: &TestApp, key: &str, scope: &str) -> String {
    let r = make_link(app, key, json!({"scope": scope})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["url"].as_str().unwrap().to_owned()
}

/// An account with a webhook subscription, a `customer.created` event
/// whose customer id is `customer`, and its (pending) delivery; returns
/// (key, subscription id, event id, delivery id).
async fn account_with_delivery(app: &TestApp, customer: &str) -> (String, String, String, String) {
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(
            &key,
            "http://127.0.0.1:9/hook",
            &["customer.created"],
            json!({}),
        )
        .await;
    let r = app.ingest(&account, customer).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let event = r.body["id"].as_str().unwrap().to_owned();
    let e = app.get(&format!("/v1/events/{event}"), Some(&key)).await;
    let delivery = e.body["deliveries"][0]["id"].as_str().unwrap().to_owned();
    (key, sub, event, delivery)
}

#[actix_web::test]
async fn signing_in_with_the_api_key_opens_the_overview_and_a_wrong_key_does_not() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let mut b = Browser::new(&app);

    let before = b.get("/dashboard").await;
    assert_eq!(before.status, 303);
    assert_eq!(before.header("location"), "/dashboard/login");

    let wrong = b.sign_in(&format!("{key}x")).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not a valid API key"));
    assert!(b.session.is_none());

    let signed = b.sign_in(&key).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.header("location"), "/dashboard");
    let (_, attrs) = signed.set_cookie("courier_session").unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/dashboard"] {
        assert!(attrs.contains(attr), "{attrs}");
    }
    // The test server's public URL is http: no Secure attribute.
    assert!(!attrs.contains("Secure"), "{attrs}");
    let overview = b.get("/dashboard").await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("Acme Energy"), "{}", overview.body);
    assert!(overview.body.contains("Subscriptions"));
}

#[actix_web::test]
async fn the_sign_in_form_needs_its_own_csrf_token() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let mut b = Browser::new(&app);
    let r = b.post("/dashboard/login", &[("api_key", &key)]).await;
    assert_eq!(r.status, 403);
    let r = b
        .post("/dashboard/login", &[("api_key", &key), ("csrf", "forged")])
        .await;
    assert_eq!(r.status, 403);
    assert!(b.session.is_none());
}

#[actix_web::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let app = spawn_app_with(|s| {
        s.delivery.enabled = false;
        s.server.public_base_url = "https://webhooks.platform.example".into();
    })
    .await;
    let (_, key) = app.create_account().await;
    let url = link_for(&app, &key, "read").await;
    assert!(url.starts_with("https://webhooks.platform.example/dashboard/links/"));
    let mut b = Browser::new(&app);
    let r = b.follow(&url).await;
    assert_eq!(r.status, 303);
    let (_, attrs) = r.set_cookie("courier_session").unwrap();
    assert!(attrs.contains("Secure"), "{attrs}");
}

#[actix_web::test]
async fn a_one_time_link_signs_in_once_and_is_stored_only_as_a_hash() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let r = make_link(&app, &key, json!({"scope": "manage"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["scope"], "manage");
    assert!(r.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let url = r.body["url"].as_str().unwrap().to_owned();
    let token = url.rsplit('/').next().unwrap().to_owned();
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    let hash: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let snapshot = app.redis_snapshot();
    assert!(snapshot
        .keys()
        .any(|k| k.ends_with(&format!("dash-link:{hash}"))));
    assert!(
        snapshot
            .iter()
            .all(|(k, v)| !k.contains(&token) && !v.contains(&token)),
        "the token itself is in Redis"
    );

    let mut first = Browser::new(&app);
    let r = first.follow(&url).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/dashboard");
    let session = first.session.clone().expect("a session cookie");
    assert_eq!(first.get("/dashboard").await.status, 200);
    // The session id is not in Redis either.
    let snapshot = app.redis_snapshot();
    assert!(snapshot
        .iter()
        .all(|(k, v)| !k.contains(&session) && !v.contains(&session)));

    let mut second = Browser::new(&app);
    let again = second.follow(&url).await;
    assert_eq!(again.status, 410);
    assert!(again.body.contains("no longer works"));
    assert!(second.session.is_none());
    assert_eq!(second.get("/dashboard").await.status, 303);
}

#[actix_web::test]
async fn a_one_time_link_expires() {
    let app = spawn_app_with(|s| {
        s.delivery.enabled = false;
        s.dashboard.link_ttl_secs = std::num::NonZeroU64::new(1).unwrap();
    })
    .await;
    let (_, key) = app.create_account().await;
    let url = link_for(&app, &key, "manage").await;
    actix_web::rt::time::sleep(Duration::from_millis(1_500)).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.follow(&url).await.status, 410);
    assert!(b.session.is_none());
}

#[actix_web::test]
async fn admins_make_links_for_any_account_and_accounts_only_for_themselves() {
    let app = spawn().await;
    let (account, key) = app.create_account().await;
    let (other, _) = app.create_account().await;

    let r = make_link(
        &app,
        ADMIN_KEY,
        json!({"account_id": account, "scope": "read"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut b = Browser::new(&app);
    b.follow(r.body["url"].as_str().unwrap()).await;
    let overview = b.get("/dashboard").await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains(">read<"), "{}", overview.body);

    let r = make_link(&app, ADMIN_KEY, json!({"scope": "read"})).await;
    assert_eq!(r.status, 422);
    let r = make_link(
        &app,
        ADMIN_KEY,
        json!({"account_id": uuid::Uuid::now_v7().to_string(), "scope": "read"}),
    )
    .await;
    assert_eq!(r.status, 422);
    let r = make_link(&app, &key, json!({"account_id": other, "scope": "manage"})).await;
    assert_eq!(r.status, 403);
    let r = make_link(
        &app,
        &key,
        json!({"account_id": account, "scope": "manage"}),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = make_link(&app, &key, json!({"scope": "admin"})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["field"], "scope");
    let r = app
        .post("/v1/dashboard/links", None, &json!({"scope": "read"}))
        .await;
    assert_eq!(r.status, 401);
}

#[actix_web::test]
async fn a_read_session_sees_every_page_without_forms_and_its_writes_are_refused() {
    let app = spawn().await;
    let (key, sub, event, delivery) = account_with_delivery(&app, "cus_1").await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "read").await).await;
    for path in [
        "/dashboard".to_owned(),
        format!("/dashboard/subscriptions/{sub}"),
        format!("/dashboard/deliveries/{delivery}"),
        "/dashboard/events".to_owned(),
        format!("/dashboard/events/{event}"),
        "/dashboard/event-types".to_owned(),
        "/dashboard/notices".to_owned(),
    ] {
        let p = b.get(&path).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(
            !p.body.contains("Retry now") && !p.body.contains(">Replay<"),
            "{path}"
        );
    }
    let csrf = b.get("/dashboard").await.csrf();
    let before = app.redis_snapshot();
    let r = b
        .post(
            &format!("/dashboard/deliveries/{delivery}/retry"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = b
        .post(
            &format!("/dashboard/events/{event}/replay"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);
    let after = app.redis_snapshot();
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| !k.contains("dash-session") && before.get(*k) != Some(v))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}

async fn event_deliveries(app: &TestApp, key: &str, event: &str) -> usize {
    let r = app.get(&format!("/v1/events/{event}"), Some(key)).await;
    r.body["deliveries"].as_array().unwrap().len()
}

#[actix_web::test]
async fn a_manage_session_replays_and_retries_with_the_sessions_csrf_token_only() {
    let app = spawn().await;
    let (key, _, event, delivery) = account_with_delivery(&app, "cus_1").await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let page = b.get(&format!("/dashboard/events/{event}")).await;
    assert!(page.body.contains(">Replay<"), "{}", page.body);
    let csrf = page.csrf();
    let replay = format!("/dashboard/events/{event}/replay");

    assert_eq!(b.post(&replay, &[]).await.status, 403);
    assert_eq!(b.post(&replay, &[("csrf", "wrong")]).await.status, 403);
    let other_session = {
        let mut o = Browser::new(&app);
        o.follow(&link_for(&app, &key, "manage").await).await;
        o.get("/dashboard").await.csrf()
    };
    assert_eq!(
        b.post(&replay, &[("csrf", &other_session)]).await.status,
        403
    );
    assert_eq!(event_deliveries(&app, &key, &event).await, 1);

    let r = b.post(&replay, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), format!("/dashboard/events/{event}"));
    assert_eq!(event_deliveries(&app, &key, &event).await, 2);
    let page = b.get(&format!("/dashboard/events/{event}")).await;
    assert!(page.body.contains(">replay<"), "{}", page.body);

    let retry = format!("/dashboard/deliveries/{delivery}/retry");
    assert_eq!(b.post(&retry, &[("csrf", "wrong")]).await.status, 403);
    let r = b.post(&retry, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.body);
}

#[actix_web::test]
async fn a_payload_holding_a_script_shows_as_text() {
    let app = spawn().await;
    let script = "<script>alert(1)</script>";
    let (key, sub, event, delivery) = account_with_delivery(&app, script).await;
    let r = app
        .patch(
            &format!("/v1/subscriptions/{sub}"),
            Some(&key),
            &json!({"description": "<img src=x onerror=alert(2)>"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let page = b.get(&format!("/dashboard/events/{event}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(script), "{}", page.body);
    assert!(
        page.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        page.body
    );
    for path in [
        "/dashboard".to_owned(),
        format!("/dashboard/subscriptions/{sub}"),
    ] {
        let page = b.get(&path).await;
        assert!(!page.body.contains("<img"), "{}", page.body);
        assert!(page.body.contains("&#60;img src=x"), "{}", page.body);
    }
    let page = b.get(&format!("/dashboard/deliveries/{delivery}")).await;
    assert_eq!(page.status, 200);
}

#[actix_web::test]
async fn another_accounts_ids_are_not_found() {
    let app = spawn().await;
    let (_, sub, event, delivery) = account_with_delivery(&app, "cus_1").await;
    let (_, stranger) = app.create_account().await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &stranger, "manage").await).await;
    for path in [
        format!("/dashboard/subscriptions/{sub}"),
        format!("/dashboard/events/{event}"),
        format!("/dashboard/deliveries/{delivery}"),
        "/dashboard/events/not-an-id".to_owned(),
    ] {
        let p = b.get(&path).await;
        assert_eq!(p.status, 404, "{path}");
        assert!(p.header("content-type").starts_with("text/html"), "{path}");
    }
    let csrf = b.get("/dashboard").await.csrf();
    let r = b
        .post(
            &format!("/dashboard/events/{event}/replay"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = b
        .post(
            &format!("/dashboard/deliveries/{delivery}/retry"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
}

#[actix_web::test]
async fn signing_out_ends_the_session_on_the_server() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let mut b = Browser::new(&app);
    b.sign_in(&key).await;
    let cookie = b.session.clone().unwrap();
    let csrf = b.get("/dashboard").await.csrf();
    assert_eq!(b.post("/dashboard/logout", &[]).await.status, 403);
    let out = b.post("/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.header("location"), "/dashboard/login");
    assert!(b.session.is_none(), "the cookie is cleared");
    // A copy of the old cookie is worth nothing now.
    b.session = Some(cookie);
    let r = b.get("/dashboard").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/dashboard/login");
    assert!(!app.redis_keys().iter().any(|k| k.contains("dash-session")));
}

#[actix_web::test]
async fn rotating_the_api_key_ends_the_sessions_started_before() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let mut by_key = Browser::new(&app);
    by_key.sign_in(&key).await;
    let mut by_link = Browser::new(&app);
    by_link.follow(&link_for(&app, &key, "read").await).await;
    assert_eq!(by_link.get("/dashboard").await.status, 200);
    app.clock.advance(Duration::from_secs(1));
    let r = app
        .post("/v1/api-keys/rotate", Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(by_key.get("/dashboard").await.status, 303);
    assert_eq!(by_link.get("/dashboard").await.status, 303);
    let mut again = Browser::new(&app);
    again.sign_in(r.body["api_key"].as_str().unwrap()).await;
    assert_eq!(again.get("/dashboard").await.status, 200);
}

#[actix_web::test]
async fn a_session_ends_at_its_absolute_age_however_busy() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let mut b = Browser::new(&app);
    b.sign_in(&key).await;
    app.clock.advance(Duration::from_secs(11 * 3600));
    assert_eq!(b.get("/dashboard").await.status, 200);
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(b.get("/dashboard").await.status, 303);
}

#[actix_web::test]
async fn every_dashboard_response_carries_the_security_headers() {
    let app = spawn_app_with(|s| {
        s.delivery.enabled = false;
        s.dashboard.frame_ancestors = "https://console.platform.example".into();
    })
    .await;
    let (_, key) = app.create_account().await;
    let mut b = Browser::new(&app);
    let mut pages = vec![
        ("/dashboard/login", b.get("/dashboard/login").await),
        ("/dashboard (signed out)", b.get("/dashboard").await),
        ("/dashboard/links/x", b.get("/dashboard/links/x").await),
    ];
    b.sign_in(&key).await;
    pages.push(("/dashboard", b.get("/dashboard").await));
    pages.push(("/dashboard/nowhere", b.get("/dashboard/nowhere").await));
    for (path, p) in &pages {
        let csp = p.header("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(
            csp.contains("frame-ancestors https://console.platform.example"),
            "{path}: {csp}"
        );
        assert_eq!(p.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(p.header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(p.header("cache-control"), "no-store", "{path}");
    }
    // The stylesheet may be cached for long: its name changes with it.
    let page = &pages[3].1;
    let start = page.body.find("/dashboard/static/").unwrap();
    let css = page.body[start..].split('"').next().unwrap().to_owned();
    let r = b.get(&css).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("text/css"));
    assert!(r.header("cache-control").contains("max-age=31536000"));
    assert_eq!(b.get("/dashboard/static/dashboard.0.css").await.status, 404);
    // No page loads anything from elsewhere, and none has a script.
    for (path, p) in &pages {
        assert!(!p.body.contains("<script"), "{path}");
        assert!(!p.body.contains("src=\"http"), "{path}");
        assert!(!p.body.contains("href=\"http"), "{path}");
    }
}

#[actix_web::test]
async fn the_frame_ancestors_default_forbids_framing() {
    let app = spawn().await;
    let mut b = Browser::new(&app);
    let p = b.get("/dashboard/login").await;
    assert!(p
        .header("content-security-policy")
        .contains("frame-ancestors 'none'"));
}

#[actix_web::test]
async fn the_pages_list_subscriptions_deliveries_events_types_and_notices() {
    let app = spawn().await;
    let (key, sub, event, delivery) = account_with_delivery(&app, "cus_42").await;
    // A key rotation leaves a notice.
    let r = app
        .post("/v1/api-keys/rotate", Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key = r.body["api_key"].as_str().unwrap().to_owned();
    let mut b = Browser::new(&app);
    b.sign_in(&key).await;

    let p = b.get("/dashboard").await;
    assert!(p.body.contains(&format!("/dashboard/subscriptions/{sub}")));
    assert!(p.body.contains("http://127.0.0.1:9/hook"));
    assert!(p.body.contains("customer.created"));
    assert!(p.body.contains("enabled"));
    assert!(p.body.contains("closed"));

    let p = b.get(&format!("/dashboard/subscriptions/{sub}")).await;
    assert!(p
        .body
        .contains(&format!("/dashboard/deliveries/{delivery}")));
    let p = b
        .get(&format!("/dashboard/subscriptions/{sub}?status=failed"))
        .await;
    assert_eq!(p.status, 200);
    assert!(!p
        .body
        .contains(&format!("/dashboard/deliveries/{delivery}")));
    let p = b
        .get(&format!("/dashboard/subscriptions/{sub}?status=bogus"))
        .await;
    assert_eq!(p.status, 400);

    let p = b.get(&format!("/dashboard/deliveries/{delivery}")).await;
    assert!(p.body.contains("pending"));
    assert!(p.body.contains("Retry now"));
    // The notification it sends, byte for byte (HTML-escaped).
    assert!(
        p.body.contains("POST http://127.0.0.1:9/hook"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains(&format!(
            "&#34;delivery_id&#34;:&#34;{delivery}&#34;,&#34;payload&#34;:{{&#34;customer_id&#34;:&#34;cus_42&#34;}}"
        )),
        "{}",
        p.body
    );
    assert!(p.body.contains(&format!("webhook-id: {delivery}")));

    let p = b.get("/dashboard/events?type=customer.created").await;
    assert!(p.body.contains(&format!("/dashboard/events/{event}")));
    let p = b.get("/dashboard/events?type=meter.created").await;
    assert!(!p.body.contains(&format!("/dashboard/events/{event}")));
    let p = b.get(&format!("/dashboard/events?id={event}")).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.header("location"), format!("/dashboard/events/{event}"));
    let p = b.get(&format!("/dashboard/events/{event}")).await;
    assert!(
        p.body.contains("&#34;customer_id&#34;: &#34;cus_42&#34;"),
        "{}",
        p.body
    );

    let p = b.get("/dashboard/event-types").await;
    assert!(p.body.contains("meter_data.received"));
    assert!(p.body.contains("start_interval"));
    assert!(p.body.contains("Example payload"));
    assert!(p.body.contains("mtr_123"), "{}", p.body);

    let p = b.get("/dashboard/notices").await;
    assert!(p.body.contains("API key rotated"), "{}", p.body);
}

#[actix_web::test]
async fn failed_deliveries_are_recovered_from_the_subscription_page() {
    let rx = crate::receiver::Receiver::start().await;
    rx.default_reply("/down", crate::receiver::Reply::status(500));
    let app = crate::helpers::spawn_app().await;
    let (account, key) = app.create_account().await;
    let (sub, _) = app
        .subscribe(&key, &rx.url("/down"), &["customer.created"], json!({}))
        .await;
    let event = app.ingest(&account, "cus_1").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.poll_until(
        &format!("/v1/events/{event}"),
        &key,
        Duration::from_secs(10),
        |b| b["deliveries"][0]["status"] == "failed",
    )
    .await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let page = b.get(&format!("/dashboard/subscriptions/{sub}")).await;
    assert!(
        page.body.contains("Recover failed deliveries"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let recover = format!("/dashboard/subscriptions/{sub}/recover");
    let r = b
        .post(&recover, &[("csrf", &csrf), ("since", "yesterday")])
        .await;
    assert_eq!(r.status, 400);
    let sent = rx.received("/down").len();
    let r = b
        .post(&recover, &[("csrf", &csrf), ("since", "2000-01-01T00:00")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.header("location").to_owned();
    assert!(location.contains("recovered=1"), "{location}");
    let page = b.get(&location).await;
    assert!(
        page.body.contains("1 failed delivery was queued again"),
        "{}",
        page.body
    );
    // Sent once more (and failed again: the receiver is still down).
    let now = rx
        .wait_for("/down", sent + 1, Duration::from_secs(10))
        .await;
    assert!(now.len() > sent, "not sent again");
    // A read session may not.
    let mut reader = Browser::new(&app);
    reader.follow(&link_for(&app, &key, "read").await).await;
    let page = reader.get(&format!("/dashboard/subscriptions/{sub}")).await;
    assert!(!page.body.contains("Recover failed deliveries"));
    let r = reader
        .post(
            &recover,
            &[("csrf", &page.csrf()), ("since", "2000-01-01T00:00")],
        )
        .await;
    assert_eq!(r.status, 403);
}

#[actix_web::test]
async fn events_are_filtered_by_time_range() {
    let app = spawn().await;
    let (key, _, event, _) = account_with_delivery(&app, "cus_1").await;
    let mut b = Browser::new(&app);
    b.sign_in(&key).await;
    let link = format!("/dashboard/events/{event}");
    let hour = chrono::Duration::hours(1);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    let now = chrono::Utc::now();
    let p = b
        .get(&format!("/dashboard/events?from={}", fmt(now - hour)))
        .await;
    assert!(p.body.contains(&link), "{}", p.body);
    let p = b
        .get(&format!("/dashboard/events?from={}", fmt(now + hour)))
        .await;
    assert_eq!(p.status, 200);
    assert!(!p.body.contains(&link));
    let p = b
        .get(&format!("/dashboard/events?to={}", fmt(now - hour)))
        .await;
    assert!(!p.body.contains(&link));
    assert_eq!(b.get("/dashboard/events?from=soon").await.status, 400);
}

#[actix_web::test]
async fn a_subscription_is_disabled_enabled_and_deleted_after_confirmation() {
    let app = spawn().await;
    let (key, sub, _, _) = account_with_delivery(&app, "cus_1").await;
    let api = format!("/v1/subscriptions/{sub}");
    let page_path = format!("/dashboard/subscriptions/{sub}");
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let page = b.get(&page_path).await;
    assert!(page.body.contains(">Disable<"), "{}", page.body);
    let csrf = page.csrf();
    let switch = format!("{page_path}/enabled");

    assert_eq!(b.post(&switch, &[("enabled", "false")]).await.status, 403);
    let r = b
        .post(&switch, &[("csrf", &csrf), ("enabled", "false")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(app.get(&api, Some(&key)).await.body["enabled"], false);
    assert!(b.get(&page_path).await.body.contains(">Enable<"));
    let r = b
        .post(&switch, &[("csrf", &csrf), ("enabled", "true")])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(app.get(&api, Some(&key)).await.body["enabled"], true);

    // A read session sees neither the switch nor the delete page.
    let mut reader = Browser::new(&app);
    reader.follow(&link_for(&app, &key, "read").await).await;
    let page = reader.get(&page_path).await;
    assert!(!page.body.contains(">Disable<") && !page.body.contains("Delete…"));
    let read_csrf = page.csrf();
    assert_eq!(
        reader
            .post(&switch, &[("csrf", &read_csrf), ("enabled", "false")])
            .await
            .status,
        403
    );
    let delete = format!("{page_path}/delete");
    assert_eq!(reader.get(&delete).await.status, 403);
    assert_eq!(
        reader.post(&delete, &[("csrf", &read_csrf)]).await.status,
        403
    );

    let confirm = b.get(&delete).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Delete this subscription?"));
    assert_eq!(
        app.get(&api, Some(&key)).await.status,
        200,
        "asking deletes nothing"
    );
    assert_eq!(b.post(&delete, &[("csrf", "wrong")]).await.status, 403);
    let r = b.post(&delete, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/dashboard");
    assert_eq!(app.get(&api, Some(&key)).await.status, 404);
    assert_eq!(b.get(&page_path).await.status, 404);
}

#[actix_web::test]
async fn the_signing_secret_is_rotated_and_shown_once_and_a_test_notification_reports_the_answer() {
    let rx = crate::receiver::Receiver::start().await;
    rx.default_reply("/hook", crate::receiver::Reply::status(204));
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let (sub, old_secret) = app
        .subscribe(&key, &rx.url("/hook"), &["customer.created"], json!({}))
        .await;
    let page_path = format!("/dashboard/subscriptions/{sub}");
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    let csrf = b.get(&page_path).await.csrf();

    let rotate = format!("{page_path}/secret");
    assert_eq!(b.post(&rotate, &[]).await.status, 403);
    let shown = b.post(&rotate, &[("csrf", &csrf)]).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.header("cache-control"), "no-store");
    let start = shown.body.find("whsec_").expect("the new secret is shown");
    let secret = shown.body[start..].split('<').next().unwrap().to_owned();
    assert_ne!(secret, old_secret);
    assert!(
        !b.get(&page_path).await.body.contains(&secret),
        "shown once"
    );

    let test = format!("{page_path}/test");
    let r = b.post(&test, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("delivered") && r.body.contains("204"),
        "{}",
        r.body
    );
    let got = rx.wait_for("/hook", 1, Duration::from_secs(5)).await;
    let n = &got[0];
    assert!(crate::delivery::verify(
        &secret,
        n.header("webhook-id"),
        n.header("webhook-timestamp"),
        &n.body,
        n.header("webhook-signature"),
    ));

    let mut reader = Browser::new(&app);
    reader.follow(&link_for(&app, &key, "read").await).await;
    let page = reader.get(&page_path).await;
    assert!(!page.body.contains("Rotate the signing secret"));
    let read_csrf = page.csrf();
    assert_eq!(
        reader.post(&rotate, &[("csrf", &read_csrf)]).await.status,
        403
    );
    assert_eq!(
        reader.post(&test, &[("csrf", &read_csrf)]).await.status,
        403
    );
    assert_eq!(rx.received("/hook").len(), 1);
}

#[actix_web::test]
async fn subscriptions_are_created_and_edited_through_the_form_with_the_apis_checks() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let mut b = Browser::new(&app);
    b.follow(&link_for(&app, &key, "manage").await).await;
    assert!(b.get("/dashboard").await.body.contains("New subscription"));
    let form = b.get("/dashboard/subscriptions/new").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("meter_data.received"));
    let csrf = form.csrf();

    // Refused by the API's checks: shown again with what was typed.
    let r = b
        .post(
            "/dashboard/subscriptions/new",
            &[
                ("csrf", &csrf),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/typed"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("event_types"), "{}", r.body);
    assert!(r.body.contains("http://127.0.0.1:9/typed"));
    let r = b
        .post(
            "/dashboard/subscriptions/new",
            &[
                ("csrf", &csrf),
                ("event_types", "meter.created"),
                ("kind", "webhook"),
                ("url", "ftp://127.0.0.1/x"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("channel.url"), "{}", r.body);
    assert!(app.get("/v1/subscriptions", Some(&key)).await.body["data"]
        .as_array()
        .unwrap()
        .is_empty());

    // A webhook: its secret is shown once, in the answer.
    let r = b
        .post(
            "/dashboard/subscriptions/new",
            &[
                ("csrf", &csrf),
                ("description", "<b>pipeline</b>"),
                ("event_types", "meter.created"),
                ("event_types", "customer.created"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/hook"),
                ("digest", "immediate"),
                ("rate_limit", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("whsec_"));
    assert!(r.body.contains("&#60;b&#62;pipeline"), "{}", r.body);
    let list = app.get("/v1/subscriptions", Some(&key)).await;
    let sub = &list.body["data"][0];
    assert_eq!(sub["description"], "<b>pipeline</b>");
    assert_eq!(
        sub["event_types"],
        json!(["customer.created", "meter.created"])
    );
    assert_eq!(sub["channel"]["url"], "http://127.0.0.1:9/hook");
    let id = sub["id"].as_str().unwrap().to_owned();

    // Edited: the form starts from the stored values.
    let edit = format!("/dashboard/subscriptions/{id}/edit");
    let form = b.get(&edit).await;
    assert!(
        form.body.contains(r#"value="http://127.0.0.1:9/hook""#),
        "{}",
        form.body
    );
    assert!(form.body.contains(r#"value="meter.created" checked"#));
    let r = b
        .post(
            &edit,
            &[
                ("csrf", &csrf),
                ("description", ""),
                ("event_types", "*"),
                ("kind", "email"),
                ("address", "dev@acme.example"),
                ("digest", "hourly"),
                ("rate_limit", "5"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let sub = app
        .get(&format!("/v1/subscriptions/{id}"), Some(&key))
        .await;
    assert_eq!(sub.body["channel"]["type"], "email");
    assert_eq!(sub.body["channel"]["digest"], "hourly");
    assert_eq!(sub.body["event_types"], json!(["*"]));
    assert_eq!(sub.body["rate_limit"], 5);
    assert!(sub.body.get("description").is_none_or(Value::is_null));
    // Back to a webhook: a new secret, shown once.
    let r = b
        .post(
            &edit,
            &[
                ("csrf", &csrf),
                ("event_types", "*"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/again"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("whsec_"));

    // A read session may not.
    let mut reader = Browser::new(&app);
    reader.follow(&link_for(&app, &key, "read").await).await;
    let read_csrf = reader.get("/dashboard").await.csrf();
    assert!(!reader
        .get("/dashboard")
        .await
        .body
        .contains("New subscription"));
    assert_eq!(reader.get("/dashboard/subscriptions/new").await.status, 403);
    assert_eq!(reader.get(&edit).await.status, 403);
    let r = reader
        .post(
            "/dashboard/subscriptions/new",
            &[
                ("csrf", &read_csrf),
                ("event_types", "*"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/x"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        reader.post(&edit, &[("csrf", &read_csrf)]).await.status,
        403
    );
    assert_eq!(b.post(&edit, &[("csrf", "wrong")]).await.status, 403);
}

#[actix_web::test]
async fn an_admin_key_signs_in_to_the_operators_queue_page_only() {
    let app = spawn().await;
    // One delivery due now (no engine claims it).
    let (key, _, _, _) = account_with_delivery(&app, "cus_1").await;
    let mut op = Browser::new(&app);
    assert_eq!(op.get("/dashboard/operator").await.status, 303);
    let r = op.sign_in(ADMIN_KEY).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), "/dashboard/operator");
    let page = op.get("/dashboard/operator").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Queues"));
    assert!(
        page.body.contains("<td>all</td><td>1</td>"),
        "{}",
        page.body
    );
    assert!(page
        .header("content-security-policy")
        .contains("script-src 'none'"));
    // No account's pages for an operator.
    let r = op.get("/dashboard").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/dashboard/operator");
    // No operator page for an account.
    let mut dev = Browser::new(&app);
    dev.sign_in(&key).await;
    assert_eq!(dev.get("/dashboard/operator").await.status, 403);
    // Signing out ends it.
    let csrf = page.csrf();
    assert_eq!(
        op.post("/dashboard/logout", &[("csrf", &csrf)])
            .await
            .status,
        303
    );
    assert_eq!(op.get("/dashboard/operator").await.status, 303);
}

#[actix_web::test]
async fn a_page_asked_for_before_sign_in_is_shown_after_it() {
    let app = spawn().await;
    let (key, _, event, _) = account_with_delivery(&app, "cus_1").await;
    let path = format!("/dashboard/events/{event}");
    let mut b = Browser::new(&app);
    // As from an email's link.
    let r = b.get(&path).await;
    assert_eq!(r.status, 303);
    let login = r.header("location").to_owned();
    assert_eq!(
        login,
        format!("/dashboard/login?next=%2Fdashboard%2Fevents%2F{event}")
    );
    let form = b.get(&login).await;
    assert!(
        form.body
            .contains(&format!(r#"name="next" value="{path}""#)),
        "{}",
        form.body
    );
    let (cookie, _) = form.set_cookie("courier_login").unwrap();
    let post = |next: String| {
        let req = awc::Client::builder()
            .disable_redirects()
            .finish()
            .post(app.url("/dashboard/login"))
            .insert_header(("Cookie", format!("courier_login={cookie}")));
        let csrf = form.csrf();
        let key = key.clone();
        async move {
            let res = req
                .send_form(&[("api_key", key), ("csrf", csrf), ("next", next)])
                .await
                .unwrap();
            res.headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or("")
                .to_owned()
        }
    };
    assert_eq!(post(path.clone()).await, path);
    // Never anywhere else.
    for elsewhere in ["https://evil.example/", "//evil.example", "/v1/accounts"] {
        assert_eq!(
            post(elsewhere.to_owned()).await,
            "/dashboard",
            "{elsewhere}"
        );
    }
}

#[actix_web::test]
async fn a_subscriptions_deliveries_are_filtered_by_creation_time_in_the_api_and_the_dashboard() {
    let app = spawn().await;
    let (key, sub, _, delivery) = account_with_delivery(&app, "cus_1").await;
    let now = chrono::Utc::now();
    let hour = chrono::Duration::hours(1);
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let api = |q: String| {
        let path = format!("/v1/subscriptions/{sub}/deliveries?{q}");
        let key = key.clone();
        let app = &app;
        async move { app.get(&path, Some(&key)).await }
    };
    let listed = |r: &crate::helpers::Reply| r.body["data"].as_array().map_or(0, Vec::len);
    assert_eq!(listed(&api(format!("from={}", rfc(now - hour))).await), 1);
    assert_eq!(listed(&api(format!("from={}", rfc(now + hour))).await), 0);
    assert_eq!(listed(&api(format!("to={}", rfc(now - hour))).await), 0);
    assert_eq!(
        listed(&api(format!("status=pending&to={}", rfc(now + hour))).await),
        1
    );
    assert_eq!(api("from=soon".into()).await.status, 422);

    let mut b = Browser::new(&app);
    b.sign_in(&key).await;
    let link = format!("/dashboard/deliveries/{delivery}");
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    let page = |q: String| format!("/dashboard/subscriptions/{sub}?{q}");
    assert!(b
        .get(&page(format!("from={}", fmt(now - hour))))
        .await
        .body
        .contains(&link));
    assert!(!b
        .get(&page(format!("from={}", fmt(now + hour))))
        .await
        .body
        .contains(&link));
    assert!(!b
        .get(&page(format!("status=pending&to={}", fmt(now - hour))))
        .await
        .body
        .contains(&link));
    assert_eq!(b.get(&page("to=later".into())).await.status, 400);
}
