//! The one error type of the HTTP API. Every failure becomes
//! `{"error": {"code", "message", "field"?}}` with the status that fits; the
//! cause of a 5xx is logged, never shown.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Invalid;
use crate::store::StoreError;

/// Error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for people and for programs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The code (`bad_json`, `bad_query`, `bad_body`) and the message.
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    NoRoute(String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("request body or payload exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error("the store is unavailable, retry later")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_json(e: impl std::fmt::Display) -> Self {
        ApiError::BadRequest("bad_json", format!("request body is not valid JSON: {e}"))
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(code, _) => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) | ApiError::NoRoute(_) => "not_found",
            ApiError::Conflict(code, _) => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Invalid(_) => "validation_failed",
            ApiError::Unprocessable(code, _) => code,
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                field: match self {
                    ApiError::Invalid(i) => Some(i.field.clone()),
                    _ => None,
                },
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) | ApiError::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "answering 503"),
            ApiError::Internal(cause) => tracing::error!(%cause, "answering 500"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        res.json(self.body())
    }
}
