//! `GET /openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! annotations and the request/response types.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    accounts, dashboard_links, deliveries, error, event_types, events, health, subscriptions,
};
use crate::domain::subscription::Channel;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_owned()))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin_key",
            bearer("An admin key from courier's configuration"),
        );
        components.add_security_scheme("account_key", bearer("An account API key (`ck_…`)"));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "courier", description = "Event notifications by signed webhook and email."),
    paths(
        health::healthz, health::readyz, health::metrics,
        accounts::create, accounts::rotate_key,
        dashboard_links::create,
        event_types::list,
        events::ingest, events::ingest_batch, events::list, events::get, events::replay,
        subscriptions::create, subscriptions::list, subscriptions::get,
        subscriptions::update, subscriptions::delete,
        subscriptions::rotate_secret, subscriptions::test,
        deliveries::list, deliveries::get, deliveries::retry, deliveries::recover,
    ),
    components(schemas(Channel, error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerSchemes),
)]
pub struct ApiDoc;

/// The document.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
