//! The stylesheet, compiled into the binary and served under a name that
//! carries its content hash, so browsers may keep it for a year: a new
//! build with a changed stylesheet links a new name.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};

use super::error::PageError;

const STYLESHEET: &str = include_str!("dashboard.css");

/// `/dashboard/static/dashboard.<first 16 hex of the SHA-256>.css`.
static STYLESHEET_PATH: LazyLock<String> = LazyLock::new(|| {
    let hash: String = Sha256::digest(STYLESHEET.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("/dashboard/static/dashboard.{hash}.css")
});

pub fn stylesheet_path() -> &'static str {
    STYLESHEET_PATH.as_str()
}

/// `GET /dashboard/static/{name}`.
pub async fn serve(name: web::Path<String>) -> Result<HttpResponse, PageError> {
    if format!("/dashboard/static/{name}") != stylesheet_path() {
        return Err(PageError::NotFound("file"));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(STYLESHEET))
}
