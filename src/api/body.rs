//! Request bodies: read with an explicit size limit (413 past it) and parsed
//! as JSON (400 when it is not JSON, 422 when it has the wrong shape).

use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut, Payload};
use actix_web::HttpRequest;
use futures_util::StreamExt;
use serde::Deserialize;

use super::error::ApiError;

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::BadRequest("bad_body", format!("could not read the body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses JSON, telling malformed JSON (400) from a wrong shape (422).
pub fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "bad_json",
            "request body is empty: send a JSON object (Content-Type: application/json)".into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            // A shape error can be met before a later syntax error:
            // malformed JSON is always a 400, whatever was read first.
            Category::Data => match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => ApiError::Unprocessable(
                    "validation_failed",
                    format!("request body has the wrong shape: {e}"),
                ),
                Err(syntax) => ApiError::bad_json(syntax),
            },
            _ => ApiError::bad_json(e),
        }
    })
}

/// Reads and parses in one step (for bodies that need no raw access).
pub async fn json<T: for<'de> Deserialize<'de>>(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read(req, payload, limit).await?;
    parse(&bytes)
}
