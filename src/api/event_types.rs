//! `GET /v1/event-types`: the catalogue with payload schemas.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// One event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    pub name: String,
    pub description: String,
    /// JSON Schema every payload of this type satisfies.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// A payload of this type (built-in types have one).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub example: Option<serde_json::Value>,
}

/// The catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: Vec<EventTypeView>,
}

/// List every event type (no authentication needed).
#[utoipa::path(
    get, path = "/v1/event-types", tag = "events", operation_id = "list_event_types",
    responses((status = 200, body = EventTypeList))
)]
pub async fn list(st: web::Data<AppState>) -> HttpResponse {
    let data = st
        .catalog
        .iter()
        .map(|t| EventTypeView {
            name: t.name.clone(),
            description: t.description.clone(),
            schema: t.schema.clone(),
            example: t.example.clone(),
        })
        .collect();
    HttpResponse::Ok().json(EventTypeList { data })
}
