//! Creating and editing a subscription: one form for both, posted as
//! `application/x-www-form-urlencoded` with one `event_types` field per
//! ticked box. The fields become the API's own request types and go
//! through the API's own checks (`create_in`, `update_in`); a refusal
//! shows the form again with the values typed and the reason.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::error::PageError;
use super::session::Viewer;
use super::view::{self, Chrome};
use crate::api::error::ApiError;
use crate::api::subscriptions::{self as api_subs, CreateSubscription, UpdateSubscription};
use crate::api::AppState;
use crate::domain::catalog::WILDCARD;
use crate::domain::subscription::{Channel, Digest, Subscription};
use crate::domain::Invalid;

/// What the form holds (typed, or read from a subscription).
#[derive(Debug, Default)]
pub struct Fields {
    csrf: String,
    event_types: Vec<String>,
    /// `webhook` or `email`.
    kind: String,
    url: String,
    address: String,
    digest: String,
    description: String,
    rate_limit: String,
}

impl Fields {
    /// Reads a posted form; repeated `event_types` fields are the ticked
    /// boxes.
    fn parse(body: &[u8]) -> Self {
        let mut f = Fields::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            let v = v.into_owned();
            match k.as_ref() {
                "csrf" => f.csrf = v,
                "event_types" => f.event_types.push(v),
                "kind" => f.kind = v,
                "url" => f.url = v,
                "address" => f.address = v,
                "digest" => f.digest = v,
                "description" => f.description = v,
                "rate_limit" => f.rate_limit = v,
                _ => {}
            }
        }
        f
    }

    fn of(s: &Subscription) -> Self {
        let (kind, url, address, digest) = match &s.channel {
            Channel::Webhook { url } => ("webhook", url.clone(), String::new(), Digest::default()),
            Channel::Email { address, digest } => {
                ("email", String::new(), address.clone(), *digest)
            }
        };
        Fields {
            csrf: String::new(),
            event_types: s.event_types.clone(),
            kind: kind.into(),
            url,
            address,
            digest: digest.as_str().into(),
            description: s.description.clone().unwrap_or_default(),
            rate_limit: s.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
        }
    }

    fn channel(&self) -> Result<Channel, Invalid> {
        match self.kind.as_str() {
            "webhook" => Ok(Channel::Webhook {
                url: self.url.trim().to_owned(),
            }),
            "email" => Ok(Channel::Email {
                address: self.address.trim().to_owned(),
                digest: serde_json::from_value(serde_json::Value::String(self.digest.clone()))
                    .map_err(|_| Invalid::new("channel.digest", "is immediate, hourly or daily"))?,
            }),
            _ => Err(Invalid::new("channel.type", "is webhook or email")),
        }
    }

    fn description(&self) -> Option<String> {
        Some(self.description.trim().to_owned()).filter(|d| !d.is_empty())
    }

    fn rate_limit(&self) -> Result<Option<u32>, Invalid> {
        match self.rate_limit.trim() {
            "" => Ok(None),
            r => r
                .parse()
                .map(Some)
                .map_err(|_| Invalid::new("rate_limit", "is a whole number per second")),
        }
    }

    fn checked(&self, t: &str) -> bool {
        self.event_types.iter().any(|e| e == t)
    }
}

#[derive(Template)]
#[template(path = "dashboard/editor.html")]
struct EditorPage {
    c: Chrome,
    /// None for a new subscription.
    id: Option<uuid::Uuid>,
    f: Fields,
    types: Vec<String>,
    wildcard: &'static str,
    digests: [&'static str; 3],
    problem: Option<String>,
}

fn editor(
    viewer: &Viewer,
    st: &AppState,
    id: Option<uuid::Uuid>,
    f: Fields,
    problem: Option<String>,
) -> Result<HttpResponse, PageError> {
    let page = EditorPage {
        c: Chrome::signed_in(viewer, "overview"),
        id,
        f,
        types: st.catalog.iter().map(|t| t.name.clone()).collect(),
        wildcard: WILDCARD,
        digests: ["immediate", "hourly", "daily"],
        problem: problem.clone(),
    };
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

/// A refusal the form can show (what the user typed is wrong) or a real
/// error.
fn shown(e: ApiError) -> Result<String, PageError> {
    match e {
        ApiError::Invalid(i) => Ok(format!("{}: {}", i.field, i.message)),
        ApiError::Unprocessable(_, m) => Ok(m),
        other => Err(other.into()),
    }
}

fn manage_only(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.can_manage() {
        Ok(())
    } else {
        Err(PageError::Forbidden("this session may only read"))
    }
}

/// `GET /dashboard/subscriptions/new` (manage).
pub async fn new_form(viewer: Viewer, st: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    manage_only(&viewer)?;
    let f = Fields {
        kind: "webhook".into(),
        digest: "immediate".into(),
        ..Fields::default()
    };
    editor(&viewer, &st, None, f, None)
}

/// `POST /dashboard/subscriptions/new` (manage): creates it; a webhook's
/// signing secret is shown once, in the answer.
pub async fn create(
    viewer: Viewer,
    body: web::Bytes,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let f = Fields::parse(&body);
    viewer.check_write(&f.csrf)?;
    let input = match (f.channel(), f.rate_limit()) {
        (Ok(channel), Ok(rate_limit)) => CreateSubscription {
            event_types: f.event_types.clone(),
            channel,
            description: f.description(),
            enabled: None,
            rate_limit,
        },
        (Err(e), _) | (_, Err(e)) => return editor(&viewer, &st, None, f, Some(shown(e.into())?)),
    };
    match api_subs::create_in(&st, &viewer.account.id, &input).await {
        Ok(sub) => after_write(&viewer, &sub, true),
        Err(e) => {
            let problem = shown(e)?;
            editor(&viewer, &st, None, f, Some(problem))
        }
    }
}

/// `GET /dashboard/subscriptions/{id}/edit` (manage).
pub async fn edit_form(
    viewer: Viewer,
    id: web::Path<String>,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let sub = api_subs::load_in(&st, &viewer.account.id, &id).await?;
    manage_only(&viewer)?;
    editor(&viewer, &st, Some(sub.id), Fields::of(&sub), None)
}

/// `POST /dashboard/subscriptions/{id}/edit` (manage).
pub async fn update(
    viewer: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
    st: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let f = Fields::parse(&body);
    viewer.check_write(&f.csrf)?;
    let sub = api_subs::load_in(&st, &viewer.account.id, &id).await?;
    let input = match (f.channel(), f.rate_limit()) {
        (Ok(channel), Ok(rate_limit)) => UpdateSubscription {
            event_types: Some(f.event_types.clone()),
            channel: Some(channel),
            description: Some(f.description()),
            enabled: None,
            rate_limit: Some(rate_limit),
        },
        (Err(e), _) | (_, Err(e)) => {
            return editor(&viewer, &st, Some(sub.id), f, Some(shown(e.into())?))
        }
    };
    match api_subs::update_in(&st, &viewer.account.id, &id, &input).await {
        Ok((next, new_secret)) => after_write(&viewer, &next, new_secret),
        Err(e) => {
            let problem = shown(e)?;
            editor(&viewer, &st, Some(sub.id), f, Some(problem))
        }
    }
}

/// After a write: the new signing secret, shown once, or back to the
/// subscription.
fn after_write(
    viewer: &Viewer,
    sub: &Subscription,
    show_secret: bool,
) -> Result<HttpResponse, PageError> {
    match (&sub.secret, show_secret) {
        (Some(secret), true) => super::pages::secret_page(viewer, sub, secret.clone(), None),
        _ => Ok(view::see_other(format!(
            "/dashboard/subscriptions/{}",
            sub.id
        ))),
    }
}
