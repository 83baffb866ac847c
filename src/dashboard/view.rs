//! What every page shows around its content (the stylesheet, the account,
//! the navigation, the sign-out form) and the helpers pages render with.

use actix_web::HttpResponse;
use askama::Template;

use super::assets;
use super::error::PageError;
use super::session::Viewer;
use crate::domain::event::format_ms;

/// The page around the content (`c` in every template).
pub struct Chrome {
    /// URL of the stylesheet (versioned by its content hash).
    pub css: &'static str,
    /// Which navigation entry is current.
    pub section: &'static str,
    /// The signed-in account (or operator); None on the sign-in and error
    /// pages.
    pub who: Option<Who>,
    /// An operator's session: the navigation is the operator page's.
    pub operator: bool,
}

/// The signed-in account, as the header shows it.
pub struct Who {
    pub account_name: String,
    pub scope: &'static str,
    /// Whether forms are shown (manage scope).
    pub manage: bool,
    /// The session's CSRF token, for the hidden field of every form.
    pub csrf: String,
}

impl Chrome {
    pub fn anonymous(section: &'static str) -> Self {
        Self {
            css: assets::stylesheet_path(),
            section,
            who: None,
            operator: false,
        }
    }

    pub fn operator(session: &crate::domain::session::Session) -> Self {
        Self {
            css: assets::stylesheet_path(),
            section: "operator",
            who: Some(Who {
                account_name: "Operator".into(),
                scope: "admin",
                manage: false,
                csrf: session.csrf.clone(),
            }),
            operator: true,
        }
    }

    pub fn signed_in(viewer: &Viewer, section: &'static str) -> Self {
        Self {
            css: assets::stylesheet_path(),
            section,
            who: Some(Who {
                account_name: viewer.account.name.clone(),
                scope: viewer.session.scope.as_str(),
                manage: viewer.can_manage(),
                csrf: viewer.session.csrf.clone(),
            }),
            operator: false,
        }
    }

    /// Whether the page shows its forms.
    pub fn manage(&self) -> bool {
        self.who.as_ref().is_some_and(|w| w.manage)
    }

    /// The CSRF token for a form's hidden field.
    pub fn csrf(&self) -> &str {
        self.who.as_ref().map_or("", |w| w.csrf.as_str())
    }
}

/// A rendered page, 200.
pub fn html(page: &impl Template) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

/// A 303 to `location` (after a form was handled).
pub fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// A time for people: `2026-11-29 18:04:05 UTC`.
pub fn when(ms: i64) -> String {
    let rfc = format_ms(ms);
    human(&rfc)
}

/// An RFC 3339 time (as attempts record it) for people.
pub fn human(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// A time typed into a form: what a `datetime-local` field sends
/// (`2026-11-29T18:04` or with seconds), taken as UTC, or RFC 3339. In ms.
pub fn parse_time_input(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .map(|t| t.and_utc().timestamp_millis())
}

/// The `datetime-local` value (UTC) of a time in ms, to fill a field again.
pub fn time_input(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_utc_minutes_or_rfc_3339() {
        let ms = 1_764_439_440_000; // 2025-11-29T18:04:00Z
        assert_eq!(parse_time_input("2025-11-29T18:04"), Some(ms));
        assert_eq!(parse_time_input(" 2025-11-29T18:04:00 "), Some(ms));
        assert_eq!(parse_time_input("2025-11-29T19:04:00+01:00"), Some(ms));
        assert_eq!(parse_time_input("yesterday"), None);
        assert_eq!(time_input(ms), "2025-11-29T18:04");
        assert_eq!(when(ms), "2025-11-29 18:04:00 UTC");
    }
}
