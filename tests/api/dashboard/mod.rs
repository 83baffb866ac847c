//! The dashboard's handlers over HTTP, as a browser without JavaScript
//! uses them: [`sessions`] (sign-in with the key, a one-time link or an
//! admin key, sessions and sign-out, CSRF, the security headers) and
//! [`pages`] (every page and form, scopes, escaping, other accounts' ids),
//! [`stats`] (the overview's charts and the operator page's traffic and
//! endpoints, from the delivery statistics).
//! This module holds the cookie-keeping [`Browser`] and the set-ups both use.

mod pages;
mod sessions;
mod stats;

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};

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
            Some(s) => req.append_header(("Cookie", format!("courier_session={s}"))),
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

pub async fn spawn() -> TestApp {
    // No engine: deliveries stay pending and nothing leaves the machine.
    spawn_app_with(|s| s.delivery.enabled = false).await
}

/// `POST /v1/dashboard/links` as `key`.
pub async fn make_link(app: &TestApp, key: &str, body: Value) -> crate::helpers::Reply {
    app.post("/v1/dashboard/links", Some(key), &body).await
}

/// A one-time link's URL for the account of `key`.
pub async fn link_for(app: &TestApp, key: &str, scope: &str) -> String {
    let r = make_link(app, key, json!({"scope": scope})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["url"].as_str().unwrap().to_owned()
}

/// An account with a webhook subscription, a `customer.created` event
/// whose customer id is `customer`, and its (pending) delivery; returns
/// (key, subscription id, event id, delivery id).
pub async fn account_with_delivery(
    app: &TestApp,
    customer: &str,
) -> (String, String, String, String) {
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
