//! Signing in and out, one-time links, sessions, CSRF and the security
//! headers.

use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{account_with_delivery, link_for, make_link, spawn, Browser};
use crate::helpers::{spawn_app_with, ADMIN_KEY};

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
async fn signing_in_again_ends_the_browsers_previous_session() {
    let app = spawn().await;
    let (_, key) = app.create_account().await;
    let (_, other) = app.create_account().await;
    let mut b = Browser::new(&app);
    b.sign_in(&key).await;
    let first = b.session.clone().unwrap();
    b.follow(&link_for(&app, &other, "read").await).await;
    let second = b.session.clone().unwrap();
    assert_ne!(first, second);
    assert_eq!(b.get("/dashboard").await.status, 200);
    b.sign_in(&key).await;
    for old in [first, second] {
        let mut copy = Browser::new(&app);
        copy.session = Some(old);
        assert_eq!(copy.get("/dashboard").await.status, 303);
    }
    assert_eq!(b.get("/dashboard").await.status, 200);
}
